//! The upstream Hub client (`modelgate::hub`) against the stub Hub.

use std::path::Path;

use modelgate::hub::{FileRef, HubClient, HubLimits, RepoKind, lfs_sha256};
use sha2::{Digest, Sha256};

use crate::hub_stub::HubStub;

fn repo(root: &Path) {
    let m = root.join("models/acme/tiny");
    std::fs::create_dir_all(m.join("sub/deeper")).unwrap();
    std::fs::write(m.join("config.json"), b"{\"model_type\": \"bert\"}\n").unwrap();
    std::fs::write(m.join("model.safetensors"), vec![7u8; 5000]).unwrap();
    for i in 0..7 {
        std::fs::write(m.join(format!("sub/f{i}.txt")), format!("file {i}\n")).unwrap();
    }
    std::fs::write(m.join("sub/deeper/x.txt"), b"x\n").unwrap();
    std::fs::create_dir_all(root.join("models/acme/other")).unwrap();
    std::fs::write(root.join("models/acme/other/README.md"), b"hi\n").unwrap();
    std::fs::create_dir_all(root.join("models/zeta/z")).unwrap();
    std::fs::write(root.join("models/zeta/z/README.md"), b"z\n").unwrap();
}

#[tokio::test]
async fn tree_paginates_through_link_headers() {
    let d = tempfile::tempdir().unwrap();
    repo(d.path());
    let stub = HubStub::start(d.path());
    stub.control
        .page_size
        .store(3, std::sync::atomic::Ordering::Relaxed);
    let c = HubClient::new(&stub.url(), HubLimits::default()).unwrap();
    let tree = c
        .tree(RepoKind::Model, "acme/tiny", "main", None)
        .await
        .unwrap();
    let files: Vec<&str> = tree
        .iter()
        .filter(|e| e["type"] == "file")
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 10, "{tree:?}");
    assert!(files.contains(&"sub/deeper/x.txt"));
    let st = tree
        .iter()
        .find(|e| e["path"] == "model.safetensors")
        .unwrap();
    let sha = modelgate::hub::hex(&Sha256::digest(vec![7u8; 5000]));
    assert_eq!(st["lfs"]["oid"], sha.as_str());
    assert_eq!(st["size"], 5000);
    // 12 entries (10 files, 2 directories) in pages of 3.
    assert_eq!(
        stub.control.hits("/api/models/acme/tiny/tree/main"),
        4,
        "one request per page"
    );
    let models = c.list_models("acme", None).await.unwrap();
    let ids: Vec<&str> = models.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["acme/other", "acme/tiny"]);
    let info = c
        .revision_info(RepoKind::Model, "acme/tiny", "main", None)
        .await
        .unwrap();
    assert_eq!(info["id"], "acme/tiny");
    assert_eq!(info["siblings"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn paths_info_answers_files_and_folders() {
    let d = tempfile::tempdir().unwrap();
    repo(d.path());
    let stub = HubStub::start(d.path());
    let c = HubClient::new(&stub.url(), HubLimits::default()).unwrap();
    let v = c
        .paths_info(
            RepoKind::Model,
            "acme/tiny",
            "main",
            &["config.json", "sub", "missing.bin"],
            None,
        )
        .await
        .unwrap();
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 2, "{v}");
    assert_eq!(a[0]["type"], "file");
    assert!(a[0].get("lfs").is_none(), "small text files are not LFS");
    assert_eq!(a[1]["type"], "directory");
}

#[tokio::test]
async fn lfs_download_follows_the_cdn_redirect_and_matches_its_sha() {
    let d = tempfile::tempdir().unwrap();
    repo(d.path());
    let stub = HubStub::start(d.path());
    let c = HubClient::new(&stub.url(), HubLimits::default()).unwrap();
    let dest = d.path().join("spool");
    let f = FileRef {
        kind: RepoKind::Model,
        repo: "acme/tiny",
        rev: "main",
        path: "model.safetensors",
    };
    let (spooled, hub_headers) = c.download(&f, None, &dest, 1 << 20).await.unwrap();
    assert_eq!(spooled.size, 5000);
    assert_eq!(lfs_sha256(&hub_headers), Some(spooled.sha256.clone()));
    assert!(hub_headers.contains_key("x-xet-hash"));
    assert_eq!(std::fs::read(&dest).unwrap(), vec![7u8; 5000]);
    assert_eq!(stub.control.hits_under("/cdn/"), 1);
    // A small file comes straight from the resolve URL with a git ETag.
    let f = FileRef {
        path: "config.json",
        ..f
    };
    let (s, h) = c.download(&f, None, &dest, 1 << 20).await.unwrap();
    assert_eq!(lfs_sha256(&h), None);
    assert_eq!(s.size, 23);
}

#[tokio::test]
async fn hostile_modes_fail_the_download() {
    use crate::hub_stub::Mode;
    let d = tempfile::tempdir().unwrap();
    repo(d.path());
    let stub = HubStub::start(d.path());
    let limits = HubLimits {
        idle_timeout: std::time::Duration::from_millis(500),
        ..HubLimits::default()
    };
    let c = HubClient::new(&stub.url(), limits).unwrap();
    let dest = d.path().join("spool");
    let f = FileRef {
        kind: RepoKind::Model,
        repo: "acme/tiny",
        rev: "main",
        path: "model.safetensors",
    };
    stub.control
        .set_mode("acme/tiny", "model.safetensors", Mode::LyingLength);
    let e = c.download(&f, None, &dest, 1 << 20).await.unwrap_err();
    assert!(e.to_string().contains("announced"), "{e}");
    stub.control
        .set_mode("acme/tiny", "model.safetensors", Mode::HangAfter(100));
    let e = c.download(&f, None, &dest, 1 << 20).await.unwrap_err();
    assert!(e.to_string().contains("sent no data"), "{e}");
    stub.control
        .set_mode("acme/tiny", "model.safetensors", Mode::WrongSha);
    let (s, h) = c.download(&f, None, &dest, 1 << 20).await.unwrap();
    assert_ne!(lfs_sha256(&h), Some(s.sha256));
    stub.control
        .set_mode("acme/tiny", "model.safetensors", Mode::GzipBomb);
    let (s, _) = c.download(&f, None, &dest, 1 << 20).await.unwrap();
    assert!(s.size < 1 << 20, "the client never inflates");
}
