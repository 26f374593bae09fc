//! The watch daemon and the quarantine CLI, run as the real binary against
//! temporary caches laid out exactly like huggingface_hub's: `refs/`,
//! `blobs/<etag>.<8hex>.incomplete` renamed to `blobs/<etag>`, relative
//! snapshot symlinks, and the ≥1.32 shared store (`<cache>/blobs/<xx>/<hash>`
//! with the per-repo blob turned into a symlink to it). No network.

use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// A protocol-0 pickle that calls `os.system` when loaded.
const EVIL: &[u8] = b"cos\nsystem\n(S'echo pwned'\ntR.";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
/// Generous because a loaded 2-core CI machine can stall the daemon for
/// seconds; a passing wait returns as soon as its condition holds.
const DEADLINE: Duration = Duration::from_secs(30);

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_modelgate"))
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn benign() -> Vec<u8> {
    let header = br#"{"__metadata__":{"format":"pt"}}"#;
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header);
    v
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn is_tombstone(p: &Path) -> bool {
    fs::read(p)
        .map(|b| b.starts_with(b"\0MODELGATE-QUARANTINED\n"))
        .unwrap_or(false)
}

struct Env {
    dir: tempfile::TempDir,
}

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Env {
    fn new() -> Env {
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(env.hub()).unwrap();
        env
    }

    fn hub(&self) -> PathBuf {
        self.dir.path().join("hf/hub")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.env_remove("HF_HUB_CACHE")
            .env_remove("HUGGINGFACE_HUB_CACHE")
            .env("HF_HOME", self.dir.path().join("hf"))
            .env("MODELGATE_STATE_DIR", self.state())
            .env("MODELGATE_LOG", "info,modelgate=debug")
            .env("HOME", self.dir.path());
        c
    }

    fn spawn(&self, extra_env: &[(&str, &str)], args: &[&str]) -> Daemon {
        let log = self
            .dir
            .path()
            .join(format!("daemon-{:016x}.log", rand_u64()));
        let mut c = self.cmd();
        c.arg("watch")
            .args(args)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        for (k, v) in extra_env {
            c.env(k, v);
        }
        let d = Daemon {
            child: c.spawn().unwrap(),
            log,
        };
        wait_for("the daemon to arm its watches", || {
            d.log().contains("watching")
        });
        d
    }

    fn once(&self) -> (i32, String) {
        let out = self.cmd().args(["watch", "--once"]).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn quarantine(&self, args: &[&str]) -> String {
        let out = self.cmd().arg("quarantine").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "quarantine {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn records(&self, all: bool) -> Vec<serde_json::Value> {
        let args: &[&str] = if all {
            &["list", "--json", "--all"]
        } else {
            &["list", "--json"]
        };
        serde_json::from_str::<Vec<serde_json::Value>>(&self.quarantine(args)).unwrap()
    }

    fn repo(&self, name: &str) -> PathBuf {
        let repo = self.hub().join(format!("models--test--{name}"));
        fs::create_dir_all(repo.join("blobs")).unwrap();
        fs::create_dir_all(repo.join("snapshots").join(COMMIT)).unwrap();
        fs::create_dir_all(repo.join("refs")).unwrap();
        fs::write(repo.join("refs/main"), COMMIT).unwrap();
        repo
    }

    /// One `hf_hub_download` into a per-repo blob: write the temp file,
    /// rename it into `blobs/`, then link the snapshot entry. Returns the
    /// blob path.
    fn download(&self, repo: &Path, file: &str, data: &[u8]) -> PathBuf {
        let etag = sha256(data);
        let blob = repo.join("blobs").join(&etag);
        let tmp = repo
            .join("blobs")
            .join(format!("{etag}.1a2b3c4d.incomplete"));
        fs::write(&tmp, data).unwrap();
        fs::rename(&tmp, &blob).unwrap();
        let link = repo.join("snapshots").join(COMMIT).join(file);
        if fs::symlink_metadata(&link).is_err() {
            fs::create_dir_all(link.parent().unwrap()).unwrap();
            let up = "../".repeat(2 + file.matches('/').count());
            symlink(format!("{up}blobs/{etag}"), &link).unwrap();
        }
        blob
    }

    /// The ≥1.32 Xet path: download as above, then move the bytes into the
    /// shared store and relink the per-repo blob through a `.shared` temp
    /// symlink. Returns the store path.
    fn download_shared(&self, repo: &Path, file: &str, data: &[u8]) -> PathBuf {
        let blob = self.download(repo, file, data);
        let etag = blob.file_name().unwrap().to_string_lossy().into_owned();
        let xet = sha256(&[data, b"xet"].concat());
        let shard = self.hub().join("blobs").join(&xet[..2]);
        fs::create_dir_all(&shard).unwrap();
        fs::write(self.hub().join("blobs/.huggingface-shared-blobs"), "1\n").unwrap();
        let store = shard.join(&xet);
        fs::rename(&blob, &store).unwrap();
        let repo_name = repo.file_name().unwrap().to_string_lossy().into_owned();
        fs::write(
            shard.join(format!("{xet}.refs")),
            format!("{repo_name}/blobs/{etag}\n"),
        )
        .unwrap();
        let tmp_link = repo.join("blobs").join(format!(".{etag}.5e6f7a8b.shared"));
        symlink(format!("../../blobs/{}/{xet}", &xet[..2]), &tmp_link).unwrap();
        fs::rename(&tmp_link, &blob).unwrap();
        store
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

#[test]
fn malicious_download_is_tombstoned_benign_untouched_and_restore_is_exact() {
    let env = Env::new();
    let d = env.spawn(&[], &[]);
    let repo = env.repo("mixed");
    let good = env.download(&repo, "model.safetensors", &benign());
    let bad = env.download(&repo, "pytorch_model.bin", EVIL);
    wait_for("the tombstone", || is_tombstone(&bad));
    let tomb = fs::read_to_string(&bad)
        .unwrap_or_else(|_| String::from_utf8_lossy(&fs::read(&bad).unwrap()).into_owned());
    assert!(tomb.contains("modelgate") && tomb.contains("quarantine id: "));
    // The snapshot link still resolves (to the tombstone): no re-download.
    let link = repo
        .join("snapshots")
        .join(COMMIT)
        .join("pytorch_model.bin");
    assert!(is_tombstone(&link));
    let recs = env.records(false);
    assert_eq!(recs.len(), 1, "{recs:?}");
    let rec = &recs[0];
    assert_eq!(rec["sha256"], sha256(EVIL));
    assert_eq!(rec["rules"][0], "PKL001");
    let id = rec["id"].as_str().unwrap().to_string();
    wait_for("the snapshot link in the record", || {
        env.records(false)[0]["links"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
    });
    let shown = env.quarantine(&["show", &id]);
    assert!(
        shown.contains("pytorch_model.bin")
            && shown.contains("PKL001")
            && shown.contains("denied wherever it lands again"),
        "{shown}"
    );
    let log = d.kill();
    assert!(log.contains("QUARANTINED"), "{log}");
    assert_eq!(
        fs::read(&good).unwrap(),
        benign(),
        "benign file must be untouched"
    );

    env.quarantine(&["restore", &id]);
    assert_eq!(fs::read(&bad).unwrap(), EVIL);
    assert_eq!(fs::read(&link).unwrap(), EVIL);
    // Restored content is allowed from now on.
    let (code, log) = env.once();
    assert_eq!(code, 0, "{log}");
    assert_eq!(fs::read(&bad).unwrap(), EVIL);
    let all = env.records(true);
    assert_eq!(all[0]["state"], "restored");
}

#[test]
fn shared_store_blob_is_quarantined_through_two_links() {
    let env = Env::new();
    let d = env.spawn(&[], &[]);
    let repo = env.repo("xet");
    let store = env.download_shared(&repo, "weights.pt", EVIL);
    wait_for("the store tombstone", || is_tombstone(&store));
    let link = repo.join("snapshots").join(COMMIT).join("weights.pt");
    assert!(
        is_tombstone(&link),
        "snapshot → repo blob → store must reach the tombstone"
    );
    drop(d);
    let recs = env.records(false);
    assert_eq!(recs.len(), 1, "{recs:?}");
    let id = recs[0]["id"].as_str().unwrap().to_string();
    env.quarantine(&["restore", &id]);
    assert_eq!(fs::read(&link).unwrap(), EVIL);
    assert_eq!(fs::read(&store).unwrap(), EVIL);
}

#[test]
fn restart_does_not_rescan_unchanged_blobs() {
    let env = Env::new();
    let repo = env.repo("big");
    env.download(&repo, "a.safetensors", &benign());
    env.download(&repo, "config.json", b"{\"model_type\": \"bert\"}\n");
    let bad = env.download(&repo, "evil.bin", EVIL);
    let (code, first) = env.once();
    assert_eq!(
        code, 1,
        "--once exits 1 when it quarantined something: {first}"
    );
    assert!(first.contains("scanned=3"), "{first}");
    assert!(is_tombstone(&bad));
    let (code, second) = env.once();
    assert_eq!(code, 0, "{second}");
    assert!(second.contains("scanned=0"), "restart rescanned: {second}");
    assert!(!second.contains("QUARANTINED"), "{second}");
}

#[test]
fn redownloaded_malicious_blob_is_quarantined_again() {
    let env = Env::new();
    let d = env.spawn(&[], &[]);
    let repo = env.repo("again");
    let bad = env.download(&repo, "pytorch_model.bin", EVIL);
    wait_for("the first tombstone", || is_tombstone(&bad));
    // force_download=True: a fresh temp file renamed over the tombstone.
    env.download(&repo, "pytorch_model.bin", EVIL);
    wait_for("the second quarantine", || env.records(false).len() == 2);
    wait_for("the second tombstone", || is_tombstone(&bad));
    // The log line follows the tombstone: wait for it rather than race it.
    wait_for("the deny-list log line", || d.log().contains("deny-list"));
    drop(d);
}

#[test]
fn local_dir_downloads_are_watched() {
    let env = Env::new();
    let local = env.dir.path().join("local");
    let meta = local.join(".cache/huggingface/download");
    fs::create_dir_all(&meta).unwrap();
    let d = env.spawn(&[], &["--local-dir", local.to_str().unwrap()]);
    let tmp = meta.join("abcd1234.etag.incomplete");
    fs::write(&tmp, EVIL).unwrap();
    let dest = local.join("model.ckpt");
    fs::rename(&tmp, &dest).unwrap();
    wait_for("the local tombstone", || is_tombstone(&dest));
    drop(d);
}

/// `kill -9` at many points of a slowed-down quarantine: the bytes are
/// always either at the original path or in a complete record, and the next
/// start converges to exactly one quarantine.
#[test]
fn kill_during_quarantine_never_loses_data() {
    for round in 0..8u64 {
        let env = Env::new();
        let d = env.spawn(&[("MODELGATE_TEST_QUARANTINE_STEP_MS", "40")], &[]);
        let repo = env.repo("kill");
        let bad = env.download(&repo, "pytorch_model.bin", EVIL);
        std::thread::sleep(Duration::from_millis(round * 20 + (rand_u64() % 15)));
        let _ = d.kill();

        let original_here = fs::read(&bad).map(|b| b == EVIL).unwrap_or(false);
        let mut in_store = false;
        let qdir = env.state().join("quarantine");
        for e in fs::read_dir(&qdir).unwrap().flatten() {
            let payload = e.path().join("payload");
            if let Ok(mut f) = fs::File::open(&payload) {
                let mut buf = Vec::new();
                f.read_to_end(&mut buf).unwrap();
                let rec: serde_json::Value = serde_json::from_str(
                    &fs::read_to_string(e.path().join("record.json")).unwrap(),
                )
                .unwrap();
                if buf == EVIL
                    && rec["sha256"] == sha256(EVIL)
                    && rec["path"] == bad.to_str().unwrap()
                {
                    in_store = true;
                }
            }
        }
        assert!(original_here || in_store, "round {round}: bytes lost");
        assert!(
            original_here || is_tombstone(&bad),
            "round {round}: blob path holds neither original nor tombstone"
        );

        let (_, log) = env.once();
        assert!(is_tombstone(&bad), "round {round}: not converged: {log}");
        let recs = env.records(false);
        assert_eq!(recs.len(), 1, "round {round}: {recs:?}");
        assert_eq!(recs[0]["state"], "quarantined");
        let id = recs[0]["id"].as_str().unwrap().to_string();
        env.quarantine(&["restore", &id]);
        assert_eq!(fs::read(&bad).unwrap(), EVIL, "round {round}");
    }
}

#[test]
fn service_files_carry_the_environment() {
    let env = Env::new();
    let out = env
        .cmd()
        .env("HF_HOME", "/srv/hf")
        .args(["service", "print", "--kind", "systemd"])
        .output()
        .unwrap();
    let unit = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(unit.contains("Environment=\"HF_HOME=/srv/hf\""), "{unit}");
    assert!(
        unit.contains("Restart=on-failure") && unit.contains(" \"watch\""),
        "{unit}"
    );
    let out = env
        .cmd()
        .env("XDG_CONFIG_HOME", env.dir.path().join("config"))
        .args(["service", "install", "--kind", "systemd"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        env.dir
            .path()
            .join("config/systemd/user/modelgate-watch.service")
            .is_file()
    );
    let plist = env
        .cmd()
        .args(["service", "print", "--kind", "launchd"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&plist.stdout).contains("<key>KeepAlive</key>"));
}

/// `[daemon] require-signature`, end to end with the fixture model signed
/// by the reference tool: what a download looks like in each order.
mod signatures {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/sign")
                .join(name),
        )
        .unwrap()
    }

    /// The signed files, the signature last unless asked otherwise.
    const FILES: [&str; 4] = [
        "README.md",
        "config.json",
        "tokenizer/vocab.txt",
        "model.safetensors",
    ];

    /// Unsigned snapshot files of `test/signed*` are quarantined (POL003
    /// is suspicious; `suspicious = "quarantine"` here); other repos are
    /// left alone.
    fn spawn(env: &Env) -> Daemon {
        let policy = env.dir.path().join("policy.toml");
        fs::write(env.dir.path().join("team.pub"), fixture("keys/p256.pub")).unwrap();
        fs::write(
            &policy,
            "[daemon]\nsuspicious = \"quarantine\"\n\
             require-signature = { keys = [\"team.pub\"], repos = [\"test/signed*\"] }\n",
        )
        .unwrap();
        env.spawn(&[], &["--policy", policy.to_str().unwrap()])
    }

    fn download_model(env: &Env, repo: &Path) -> PathBuf {
        for f in FILES {
            env.download(repo, f, &fixture(&format!("model/{f}")));
        }
        repo.join("snapshots")
            .join(COMMIT)
            .join("model.safetensors")
    }

    #[test]
    fn signature_first_leaves_every_file_in_place() {
        let env = Env::new();
        let d = spawn(&env);
        let repo = env.repo("signed-a");
        env.download(&repo, "model.sig", &fixture("model.p256.sig"));
        let weights = download_model(&env, &repo);
        wait_for("the weights to be scanned", || {
            d.log().contains("model.safetensors") && d.log().contains("scanned")
        });
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            fs::read(&weights).unwrap(),
            fixture("model/model.safetensors")
        );
        let log = d.kill();
        assert!(env.records(true).is_empty(), "{log}");
        assert!(!log.contains("POL003"), "{log}");
    }

    #[test]
    fn weights_before_their_signature_are_released_when_it_lands() {
        let env = Env::new();
        let d = spawn(&env);
        let repo = env.repo("signed-b");
        let weights = download_model(&env, &repo);
        wait_for("the unsigned weights to be quarantined", || {
            is_tombstone(&weights)
        });
        let recs = env.records(false);
        let rec = recs
            .iter()
            .find(|r| {
                r["display"]
                    .as_str()
                    .unwrap()
                    .ends_with("model.safetensors")
            })
            .unwrap();
        assert_eq!(rec["rules"], serde_json::json!(["POL003"]), "{rec}");
        assert_eq!(rec["reason"], "signature");
        assert_eq!(rec["content_denied"], false);
        env.download(&repo, "model.sig", &fixture("model.p256.sig"));
        wait_for("the weights to come back", || {
            fs::read(&weights).is_ok_and(|b| b == fixture("model/model.safetensors"))
        });
        wait_for("every file released", || env.records(false).is_empty());
        assert!(d.kill().contains("RELEASED"));
    }

    #[test]
    fn changed_weights_stay_quarantined_and_only_where_a_signature_is_required() {
        let env = Env::new();
        let d = spawn(&env);
        let repo = env.repo("signed-c");
        env.download(&repo, "model.sig", &fixture("model.p256.sig"));
        let mut changed = fixture("model/model.safetensors");
        *changed.last_mut().unwrap() ^= 1;
        let weights = env.download(&repo, "model.safetensors", &changed);
        wait_for("the changed weights to be quarantined", || {
            is_tombstone(&weights)
        });
        let recs = env.records(false);
        assert_eq!(recs.len(), 1, "{recs:?}");
        let why = recs[0]["findings"].to_string();
        assert!(why.contains("changed since it was signed"), "{why}");
        // Not the content's fault: the same bytes elsewhere are fine.
        let free = env.repo("free");
        let elsewhere = env.download(&free, "model.safetensors", &changed);
        wait_for("the free repo's copy to be scanned", || {
            d.log().contains("models--test--free")
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(!is_tombstone(&elsewhere));
        assert!(is_tombstone(&weights));
        drop(d);
    }
}
