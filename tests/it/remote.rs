//! `modelgate scan hf://…` against the stub Hub on 127.0.0.1: the real
//! binary lists repositories through the Hub API, downloads only what the
//! verdict cache does not know, and never trusts bytes that are not the
//! ones the listing named.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

use crate::hub_stub::{HubStub, Mode};

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(rel),
    )
    .expect("fixture")
}

/// Two organisations' worth of repositories: the same safetensors blob in
/// two repos (judged once), a malicious pickle, small text files.
fn hub_root(root: &Path) {
    let weights = fixture("rules/SFT001/good_exact_length.safetensors");
    for (repo, files) in [
        (
            "models/acme/tiny",
            vec![
                ("config.json", b"{\"model_type\": \"bert\"}\n".to_vec()),
                ("model.safetensors", weights.clone()),
            ],
        ),
        (
            "models/acme/tiny-ft",
            vec![("weights/model.safetensors", weights.clone())],
        ),
        (
            "models/acme/evil",
            vec![
                ("README.md", b"a perfectly normal model\n".to_vec()),
                (
                    "pytorch_model.bin",
                    fixture("rules/PKL001/bad_os_system.pkl"),
                ),
            ],
        ),
        (
            "datasets/acme/data",
            vec![("train.safetensors", weights.clone())],
        ),
    ] {
        for (path, bytes) in files {
            let p = root.join(repo).join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, bytes).expect("write");
        }
    }
}

fn scan(stub: &HubStub, cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelgate"))
        .env("HF_ENDPOINT", stub.url())
        .env_remove("HF_TOKEN")
        .env_remove("MODELGATE_POLICY")
        .args(["scan", "--format", "json", "--cache"])
        .arg(cache)
        .args(args)
        .current_dir(cache.parent().expect("parent"))
        .output()
        .expect("modelgate runs")
}

fn files(out: &Output) -> Vec<(String, String, Vec<String>)> {
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut v: Vec<_> = doc["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            let rules = f["findings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x["rule"].as_str().map(str::to_string))
                .collect();
            (
                f["path"].as_str().unwrap_or_default().to_string(),
                f["verdict"].as_str().unwrap_or_default().to_string(),
                rules,
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn an_org_is_scanned_once_and_a_rerun_downloads_nothing_from_lfs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("hub");
    hub_root(&root);
    let stub = HubStub::start(&root);
    stub.control
        .page_size
        .store(2, std::sync::atomic::Ordering::Relaxed);
    let cache = tmp.path().join("cache");

    let out = scan(&stub, &cache, &["hf://acme"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let seen = files(&out);
    let paths: Vec<&str> = seen.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "hf://acme/evil@main/README.md",
            "hf://acme/evil@main/pytorch_model.bin",
            "hf://acme/tiny-ft@main/weights/model.safetensors",
            "hf://acme/tiny@main/config.json",
            "hf://acme/tiny@main/model.safetensors",
        ],
        "{seen:?}"
    );
    let evil = &seen[1];
    assert_eq!(evil.1, "malicious");
    assert!(evil.2.contains(&"PKL001".to_string()), "{evil:?}");
    assert!(
        seen.iter()
            .filter(|(p, _, _)| !p.ends_with(".bin"))
            .all(|(_, v, _)| v == "clean"),
        "{seen:?}"
    );
    let lfs_first = stub.control.hits_under("/cdn/");
    // Two distinct LFS blobs (weights twice, the pickle once); the second
    // copy of the weights is a cache hit only if the first finished, so
    // allow either, but never more than one fetch per LFS file.
    assert!((2..=3).contains(&lfs_first), "{lfs_first} LFS downloads");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("5 remote file(s)"), "{stderr}");

    let out = scan(&stub, &cache, &["hf://acme"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(files(&out), seen, "a rerun reports the same");
    assert_eq!(
        stub.control.hits_under("/cdn/"),
        lfs_first,
        "every LFS file came from the verdict cache"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Small files carry no sha256 in a listing: they are fetched, but
    // their verdict still comes from the cache.
    assert!(
        stderr.contains("2 downloaded, 0 scanned, 5 from the cache"),
        "{stderr}"
    );

    // --no-cache: everything is downloaded again.
    let out = scan(&stub, &cache, &["--no-cache", "hf://acme/evil"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(stub.control.hits_under("/cdn/"), lfs_first + 1);
}

#[test]
fn a_repo_at_a_revision_and_a_dataset_are_read_from_their_own_routes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("hub");
    hub_root(&root);
    let stub = HubStub::start(&root);
    let cache = tmp.path().join("cache");
    let out = scan(
        &stub,
        &cache,
        &["hf://acme/tiny@main", "hf://datasets/acme/data"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let paths: Vec<String> = files(&out).into_iter().map(|f| f.0).collect();
    assert_eq!(
        paths,
        [
            "hf://acme/tiny@main/config.json",
            "hf://acme/tiny@main/model.safetensors",
            "hf://datasets/acme/data@main/train.safetensors",
        ]
    );
}

#[test]
fn bytes_other_than_the_listed_ones_are_an_error_never_a_pass() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("hub");
    hub_root(&root);
    let stub = HubStub::start(&root);
    let cache = tmp.path().join("cache");
    stub.control
        .set_mode("acme/evil", "pytorch_model.bin", Mode::WrongSha);
    let out = scan(&stub, &cache, &["hf://acme/evil"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    let errors = doc["errors"].to_string();
    assert!(
        errors.contains("pytorch_model.bin") && errors.contains("listed sha256"),
        "{errors}"
    );
    stub.control
        .set_mode("acme/evil", "pytorch_model.bin", Mode::LyingLength);
    let out = scan(&stub, &cache, &["hf://acme/evil"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // Names the Hub would never accept are refused before any request.
    let before = stub.control.hits_under("/");
    let out = scan(&stub, &cache, &["hf://acme/../evil"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not an hf:// source"),
        "{out:?}"
    );
    assert_eq!(stub.control.hits_under("/"), before);
}

/// A manifest may name Hub files by URL: a `sha256` the cache knows means
/// no download; the rest is fetched; other schemes are an error line.
#[test]
fn manifest_url_entries_are_fetched_only_on_a_cache_miss() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("hub");
    hub_root(&root);
    let stub = HubStub::start(&root);
    let cache = tmp.path().join("cache");
    let out = scan(&stub, &cache, &["hf://acme/tiny"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let weights_sha = {
        use sha2::Digest;
        modelgate::hub::hex(&sha2::Sha256::digest(fixture(
            "rules/SFT001/good_exact_length.safetensors",
        )))
    };
    let manifest = tmp.path().join("manifest.jsonl");
    std::fs::write(
        &manifest,
        format!(
            "{{\"url\": \"hf://acme/tiny-ft/weights/model.safetensors\", \"sha256\": \"{weights_sha}\"}}\n\
             {{\"url\": \"hf://acme/evil@main/pytorch_model.bin\"}}\n\
             {{\"url\": \"s3://bucket/model.bin\"}}\n"
        ),
    )
    .expect("manifest");
    let cdn_before = stub.control.hits_under("/cdn/");
    let results = tmp.path().join("out.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_modelgate"))
        .env("HF_ENDPOINT", stub.url())
        .env_remove("MODELGATE_POLICY")
        .arg("scan")
        .arg("--cache")
        .arg(&cache)
        .arg("--manifest")
        .arg(&manifest)
        .arg("--results")
        .arg(&results)
        .current_dir(tmp.path())
        .output()
        .expect("modelgate runs");
    assert_eq!(
        out.status.code(),
        Some(2),
        "the s3:// line is an error: {out:?}"
    );
    let lines: Vec<Value> = std::fs::read_to_string(&results)
        .expect("results")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let by = |url: &str| {
        lines
            .iter()
            .find(|l| l["path"] == url)
            .unwrap_or_else(|| panic!("{url} in {lines:?}"))
    };
    let weights = by("hf://acme/tiny-ft/weights/model.safetensors");
    assert_eq!(weights["cached"], true, "{weights}");
    assert_eq!(weights["verdict"], "clean");
    let evil = by("hf://acme/evil@main/pytorch_model.bin");
    assert_eq!(evil["cached"], false);
    assert_eq!(evil["verdict"], "malicious");
    assert!(evil["rules"].to_string().contains("PKL001"), "{evil}");
    let s3 = by("s3://bucket/model.bin");
    assert_eq!(s3["status"], "error", "{s3}");
    assert_eq!(
        stub.control.hits_under("/cdn/"),
        cdn_before + 1,
        "only the pickle was downloaded"
    );
}
