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

    /// The outcomes of every `processed` event for `path` so far (the
    /// daemon logs JSON lines: see [`Env::spawn`]).
    fn outcomes(&self, path: &Path) -> Vec<String> {
        let path = path.to_str().unwrap();
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["target"] == "modelgate::processed" && e["fields"]["path"] == path)
            .map(|e| {
                e["fields"]["outcome"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    /// Waits until the daemon has processed `path`, and returns the
    /// outcome: what a test asserts "nothing happened" against, instead
    /// of sleeping.
    fn processed(&self, path: &Path) -> String {
        let mut last = None;
        wait_for(
            &format!("the processed event of {}", path.display()),
            || {
                last = self.outcomes(path).pop();
                last.is_some()
            },
        );
        last.unwrap_or_default()
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
        c.args(["watch", "--log-format", "json"])
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
            &["list", "--format", "json", "--all"]
        } else {
            &["list", "--format", "json"]
        };
        let doc: serde_json::Value = serde_json::from_str(&self.quarantine(args)).unwrap();
        assert_eq!(doc["schema_version"], 1);
        serde_json::from_value(doc["records"].clone()).unwrap()
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
    wait_for("the quarantined event", || {
        d.outcomes(&dest)
            .first()
            .is_some_and(|o| o == "quarantined")
    });
    assert!(is_tombstone(&dest));
    // The event names the quarantine: a supervisor can follow up on it.
    let id = id_of(&env.records(false)[0]);
    assert!(
        d.log()
            .lines()
            .any(|l| l.contains("modelgate::processed") && l.contains(&id)),
        "{}",
        d.log()
    );
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
        let blob = fs::canonicalize(&weights).unwrap();
        assert_eq!(d.processed(&weights), "allowed");
        assert_eq!(d.processed(&blob), "allowed");
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
        let entry = free
            .join("snapshots")
            .join(COMMIT)
            .join("model.safetensors");
        assert_eq!(d.processed(&elsewhere), "allowed");
        assert_eq!(d.processed(&entry), "allowed");
        assert!(!is_tombstone(&elsewhere));
        assert!(is_tombstone(&weights));
        drop(d);
    }
}

// ---------------------------------------------------------------------
// Hardening (issue 17) and the fail-closed scan cache (issue 12).
// ---------------------------------------------------------------------

/// A second malicious pickle (different bytes, different hash).
const EVIL2: &[u8] = b"cos\nsystem\n(S'echo second'\ntR.";

impl Env {
    fn once_args(&self, args: &[&str]) -> (i32, String) {
        let out = self
            .cmd()
            .args(["watch", "--once"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn quarantine_raw(&self, args: &[&str]) -> std::process::Output {
        self.cmd().arg("quarantine").args(args).output().unwrap()
    }

    fn outside(&self) -> PathBuf {
        let d = self.dir.path().join("outside");
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.state().join("state.db")).unwrap()
    }

    /// A download that lands and is then followed by a malicious sentinel
    /// in another repo: once the sentinel is tombstoned, the daemon has
    /// handled the events before it (they are processed in order).
    fn sentinel(&self, d: &Daemon) {
        let repo = self.repo(&format!("sentinel{:x}", rand_u64() % 0xffff));
        let bad = self.download(&repo, "sentinel.bin", EVIL2);
        wait_for("the sentinel tombstone", || is_tombstone(&bad));
        let _ = d;
    }
}

fn id_of(rec: &serde_json::Value) -> String {
    rec["id"].as_str().unwrap().to_string()
}

/// Item 1: a snapshot entry or blob that links outside the root is refused;
/// the outside file is never tombstoned or moved, by the sweep or the watch.
#[test]
fn symlinks_outside_the_root_are_refused() {
    let env = Env::new();
    let outside = env.outside();
    let victim = outside.join("bashrc");
    fs::write(&victim, EVIL).unwrap();
    let repo = env.repo("links");
    let snap = repo.join("snapshots").join(COMMIT);
    symlink(&victim, snap.join("config.json")).unwrap();
    symlink(&victim, repo.join("blobs").join(sha256(b"x"))).unwrap();
    let (code, log) = env.once();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("outside the watched root"), "{log}");
    assert_eq!(fs::read(&victim).unwrap(), EVIL, "outside file touched");
    assert!(env.records(true).is_empty());

    let d = env.spawn(&[], &[]);
    let victim2 = outside.join("other");
    fs::write(&victim2, EVIL).unwrap();
    symlink(&victim2, snap.join("model.bin")).unwrap();
    assert_eq!(d.processed(&snap.join("model.bin")), "refused");
    assert!(d.log().contains("outside the watched root"));
    assert_eq!(fs::read(&victim2).unwrap(), EVIL);
    assert!(env.records(true).is_empty());
}

/// Item 1: a repo folder that is a symlink is followed neither by the
/// sweep nor by the watch.
#[test]
fn symlinked_repo_folder_is_not_followed() {
    let env = Env::new();
    let outside = env.outside();
    let real_repo = outside.join("models--test--elsewhere");
    fs::create_dir_all(real_repo.join("blobs")).unwrap();
    fs::create_dir_all(real_repo.join("snapshots").join(COMMIT)).unwrap();
    let blob = real_repo.join("blobs").join(sha256(EVIL));
    fs::write(&blob, EVIL).unwrap();
    symlink(&real_repo, env.hub().join("models--test--elsewhere")).unwrap();
    let (code, log) = env.once();
    assert_eq!(code, 0, "{log}");
    assert_eq!(fs::read(&blob).unwrap(), EVIL);
    let d = env.spawn(&[], &[]);
    let later = real_repo.join("blobs").join("later");
    let tmp = real_repo.join("blobs").join("later.incomplete");
    fs::write(&tmp, EVIL).unwrap();
    // Renamed through the symlinked folder, as a download would be.
    fs::rename(
        env.hub()
            .join("models--test--elsewhere/blobs/later.incomplete"),
        env.hub().join("models--test--elsewhere/blobs/later"),
    )
    .unwrap();
    env.sentinel(&d);
    assert_eq!(fs::read(&later).unwrap(), EVIL);
    assert_eq!(fs::read(&blob).unwrap(), EVIL);
    assert_eq!(env.records(true).len(), 1, "only the sentinel");
}

/// Item 1: restore never follows a `blobs/` folder swapped for a symlink.
#[test]
fn restore_does_not_follow_a_symlinked_blobs_folder() {
    let env = Env::new();
    let repo = env.repo("swap");
    let bad = env.download(&repo, "pytorch_model.bin", EVIL);
    let (code, log) = env.once();
    assert_eq!(code, 1, "{log}");
    assert!(is_tombstone(&bad));
    let id = id_of(&env.records(false)[0]);
    let outside = env.outside();
    fs::rename(repo.join("blobs"), env.dir.path().join("old-blobs")).unwrap();
    symlink(&outside, repo.join("blobs")).unwrap();
    let out = env.quarantine_raw(&["restore", &id]);
    assert!(!out.status.success(), "restore followed the symlink");
    assert!(
        fs::read_dir(&outside).unwrap().next().is_none(),
        "restore wrote outside the cache"
    );
    assert_eq!(env.records(false).len(), 1, "still quarantined");
    // Item 7: the failed restore did not allow the content.
    let other = env.repo("elsewhere");
    let copy = env.download(&other, "pytorch_model.bin", EVIL);
    let (code, log) = env.once();
    assert_eq!(code, 1, "{log}");
    assert!(is_tombstone(&copy), "content allowed by a failed restore");
}

/// Item 2: in a local dir, names the hub cache uses for temporaries and
/// names that are not UTF-8 are scanned, quarantined and restorable.
#[test]
fn local_dir_scans_every_name() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let local = env.dir.path().join("local");
    fs::create_dir_all(&local).unwrap();
    let mut names: Vec<PathBuf> = [
        "tmp_model.bin",
        ".hidden.bin",
        "model.tmp",
        "model.lock",
        "model.metadata",
    ]
    .iter()
    .map(|n| local.join(n))
    .collect();
    names.push(local.join(std::ffi::OsStr::from_bytes(b"mod\xffel.bin")));
    for n in &names {
        fs::write(n, EVIL).unwrap();
    }
    let (code, log) = env.once_args(&["--local-dir", local.to_str().unwrap()]);
    assert_eq!(code, 1, "{log}");
    for n in &names {
        assert!(is_tombstone(n), "{} not quarantined: {log}", n.display());
    }
    let recs = env.records(false);
    assert_eq!(recs.len(), names.len(), "{recs:?}");
    let odd = recs
        .iter()
        .find(|r| r["path"].get("unix_bytes_hex").is_some())
        .expect("the non-UTF-8 path is recorded losslessly");
    let shown = env.quarantine(&["show", &id_of(odd)]);
    assert!(shown.contains("mod\\xffel.bin"), "{shown}");
    env.quarantine(&["restore", &id_of(odd)]);
    assert_eq!(fs::read(names.last().unwrap()).unwrap(), EVIL);
}

/// Item 3: benign bytes renamed over a malicious blob again and again
/// while the daemon works never get the malicious hash cached as clean.
#[test]
fn verdict_cache_is_not_poisoned_by_racing_renames() {
    let env = Env::new();
    let d = env.spawn(&[], &[]);
    let repo = env.repo("race");
    let blob = repo.join("blobs").join("race");
    let tmp = repo.join("blobs").join("race.incomplete");
    let start = Instant::now();
    let mut i = 0u64;
    while start.elapsed() < Duration::from_millis(2500) {
        let data: &[u8] = if i.is_multiple_of(2) { EVIL } else { &benign() };
        fs::write(&tmp, data).unwrap();
        fs::rename(&tmp, &blob).unwrap();
        i += 1;
        std::thread::sleep(Duration::from_micros(300 + (rand_u64() % 700)));
    }
    env.sentinel(&d);
    drop(d);
    // Ask the daemon's verdict cache through `scan`, under the blob's name
    // (part of the key): each content must come back with its own verdict.
    let probe = env.dir.path().join("probe");
    fs::create_dir_all(&probe).unwrap();
    let file = probe.join("race");
    for (data, code, what) in [
        (EVIL, 1, "malicious content cached as harmless"),
        (&benign()[..], 0, "benign content cached as malicious"),
    ] {
        fs::write(&file, data).unwrap();
        let out = env
            .cmd()
            .args(["scan", "--cache"])
            .arg(env.state().join("verdicts"))
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{what}: {out:?}");
    }
}

/// Items 5: a root deleted and created again, and a root symlink pointed
/// elsewhere, are watched again.
#[test]
fn recreated_root_is_watched_again() {
    let env = Env::new();
    let d = env.spawn(&[], &[]);
    fs::remove_dir_all(env.hub()).unwrap();
    wait_for("the missing-root error", || {
        d.log().contains("removed or moved away")
    });
    fs::create_dir_all(env.hub()).unwrap();
    wait_for("the root to be re-armed", || d.log().contains("is back"));
    let repo = env.repo("after");
    let bad = env.download(&repo, "pytorch_model.bin", EVIL);
    wait_for("a tombstone in the re-created root", || is_tombstone(&bad));
}

#[test]
fn repointed_root_symlink_is_watched_again() {
    let env = Env::new();
    let a = env.dir.path().join("cache-a");
    let b = env.dir.path().join("cache-b");
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    let link = env.dir.path().join("caches/current");
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    symlink(&a, &link).unwrap();
    let d = env.spawn(
        &[],
        &["--no-default-cache", "--cache", link.to_str().unwrap()],
    );
    let tmp = env.dir.path().join("caches/.next");
    symlink(&b, &tmp).unwrap();
    fs::rename(&tmp, &link).unwrap();
    wait_for("the root to be re-armed", || d.log().contains("is back"));
    let repo = b.join("models--test--b");
    fs::create_dir_all(repo.join("blobs")).unwrap();
    let blob = repo.join("blobs").join(sha256(EVIL));
    let part = repo.join("blobs").join("x.incomplete");
    fs::write(&part, EVIL).unwrap();
    fs::rename(&part, &blob).unwrap();
    wait_for("a tombstone in the new target", || is_tombstone(&blob));
}

/// Item 7: a quarantine killed at any step with the store on another
/// filesystem is recovered as a copy, and restores.
#[test]
fn kill_during_quarantine_across_filesystems_restores() {
    let shm = Path::new("/dev/shm");
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = fs::metadata(shm) else {
        eprintln!("skipped: no /dev/shm");
        return;
    };
    for round in 0..6u64 {
        let env = Env::new();
        if fs::metadata(env.dir.path()).unwrap().dev() == m.dev() {
            eprintln!("skipped: /dev/shm is on the same filesystem");
            return;
        }
        let state = tempfile::tempdir_in(shm).unwrap();
        let st = state.path().join("state");
        let st = st.to_str().unwrap();
        let d = env.spawn(
            &[
                ("MODELGATE_TEST_QUARANTINE_STEP_MS", "40"),
                ("MODELGATE_STATE_DIR", st),
            ],
            &[],
        );
        let repo = env.repo("xdev");
        let bad = env.download(&repo, "pytorch_model.bin", EVIL);
        std::thread::sleep(Duration::from_millis(round * 25 + (rand_u64() % 15)));
        let _ = d.kill();
        let out = env
            .cmd()
            .env("MODELGATE_STATE_DIR", st)
            .args(["watch", "--once"])
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(is_tombstone(&bad), "round {round}: {log}");
        let list = env
            .cmd()
            .env("MODELGATE_STATE_DIR", st)
            .args(["quarantine", "list", "--json"])
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
        let recs: Vec<serde_json::Value> = serde_json::from_value(doc["records"].clone()).unwrap();
        assert_eq!(recs.len(), 1, "round {round}: {recs:?}");
        assert_eq!(recs[0]["copied"], true, "round {round}");
        let restore = env
            .cmd()
            .env("MODELGATE_STATE_DIR", st)
            .args(["quarantine", "restore", &id_of(&recs[0])])
            .output()
            .unwrap();
        assert!(
            restore.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&restore.stderr)
        );
        assert_eq!(fs::read(&bad).unwrap(), EVIL, "round {round}");
    }
}

/// Item 7: a restore that fails does not allow the content.
#[test]
fn failed_restore_does_not_allow_the_content() {
    let env = Env::new();
    let repo = env.repo("nope");
    let bad = env.download(&repo, "pytorch_model.bin", EVIL);
    assert_eq!(env.once().0, 1);
    let id = id_of(&env.records(false)[0]);
    // The tombstone replaced by something else: restore must refuse.
    fs::remove_file(&bad).unwrap();
    fs::write(&bad, b"other content").unwrap();
    assert!(!env.quarantine_raw(&["restore", &id]).status.success());
    let other = env.repo("again");
    let copy = env.download(&other, "pytorch_model.bin", EVIL);
    let (code, log) = env.once();
    assert_eq!(code, 1, "{log}");
    assert!(
        is_tombstone(&copy),
        "content was allowed by a failed restore"
    );
}

/// Item 8: readiness comes after the first sweep, even while downloads
/// keep arriving.
#[test]
fn ready_after_the_first_sweep_under_a_steady_stream() {
    let env = Env::new();
    let repo = env.repo("stream");
    for i in 0..200 {
        env.download(
            &repo,
            &format!("f{i}.json"),
            format!("{{\"i\":{i}}}").as_bytes(),
        );
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let blobs = repo.join("blobs");
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let data = format!("{{\"stream\":{i}}}");
                let tmp = blobs.join(format!("s{i}.incomplete"));
                fs::write(&tmp, &data).unwrap();
                fs::rename(&tmp, blobs.join(sha256(data.as_bytes()))).unwrap();
                i += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let d = env.spawn(&[], &[]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let log = d.kill();
    let swept = log.find("sweep finished").expect("sweep summary");
    let ready = log.find("watching").unwrap();
    assert!(swept < ready, "{log}");
}

/// Item 9: an action that keeps failing is retried, counted, and makes
/// `--once` exit non-zero. The daemon runs as an unprivileged user and the
/// blob's folder is read-only, so the tombstone cannot be written.
#[test]
fn failing_action_is_retried_and_once_exits_nonzero() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let repo = env.repo("ro");
    let bad = env.download(&repo, "pytorch_model.bin", EVIL);
    let root = unsafe_is_root();
    if root && !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: running as root without setpriv");
        return;
    }
    for p in [env.dir.path(), &env.dir.path().join("hf")] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o777)).unwrap();
    }
    fs::set_permissions(repo.join("blobs"), fs::Permissions::from_mode(0o555)).unwrap();
    let mut c = env.cmd();
    if root {
        let prog = c.get_program().to_owned();
        let args: Vec<_> = c.get_args().map(|a| a.to_owned()).collect();
        let mut s = Command::new("/usr/bin/setpriv");
        s.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(prog)
            .args(args);
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => s.env(k, v),
                None => s.env_remove(k),
            };
        }
        c = s;
    }
    let out = c.args(["watch", "--once"]).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("retrying"), "{log}");
    assert!(!is_tombstone(&bad));
    // The failed attempts left no half-done record behind.
    fs::set_permissions(repo.join("blobs"), fs::Permissions::from_mode(0o755)).unwrap();
    let (code, log) = env.once();
    assert_eq!(code, 1, "{log}");
    assert!(is_tombstone(&bad));
    let recs = env.records(false);
    assert_eq!(recs.len(), 1, "{recs:?}");
}

fn unsafe_is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    let probe = tempfile::tempfile().unwrap();
    probe.metadata().unwrap().uid() == 0
}

/// Item 9: a corrupted database is rebuilt from the records, with the
/// deny- and allow-lists; an unreadable record does not hide the others.
#[test]
fn corrupt_database_is_rebuilt_from_records() {
    let env = Env::new();
    let r1 = env.repo("one");
    let r2 = env.repo("two");
    let b1 = env.download(&r1, "pytorch_model.bin", EVIL);
    let b2 = env.download(&r2, "pytorch_model.bin", EVIL2);
    assert_eq!(env.once().0, 1);
    let recs = env.records(false);
    let id1 = id_of(recs.iter().find(|r| r["sha256"] == sha256(EVIL)).unwrap());
    env.quarantine(&["restore", &id1]);
    assert_eq!(fs::read(&b1).unwrap(), EVIL);
    assert!(is_tombstone(&b2));
    for ext in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(env.state().join(format!("state.db{ext}")));
    }
    fs::write(env.state().join("state.db"), vec![0x5au8; 8192]).unwrap();
    let all = env.records(true);
    assert_eq!(all.len(), 2, "{all:?}");
    // The allow-list survived: the restored content stays; the deny-list
    // too: the other content is quarantined again on sight.
    let r3 = env.repo("three");
    let b3 = env.download(&r3, "pytorch_model.bin", EVIL2);
    let (code, log) = env.once();
    assert_eq!(code, 1, "{log}");
    assert_eq!(fs::read(&b1).unwrap(), EVIL, "{log}");
    assert!(is_tombstone(&b3));
    assert!(log.contains("deny-list"), "{log}");

    // One unreadable record: the others are still listed and restorable.
    let ids: Vec<String> = env.records(false).iter().map(id_of).collect();
    assert_eq!(ids.len(), 2);
    env.db()
        .execute(
            "UPDATE quarantine SET record = '{' WHERE id = ?1",
            [&ids[0]],
        )
        .unwrap();
    let out = env.quarantine_raw(&["list"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&ids[1]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreadable"));
    env.quarantine(&["restore", &ids[1]]);
}

/// Item 13: a newline in a name cannot forge a line of `quarantine list`,
/// and our temporaries left by a kill in a blobs folder are cleaned.
#[test]
fn names_are_escaped_and_stale_temporaries_cleaned() {
    let env = Env::new();
    let local = env.dir.path().join("local");
    fs::create_dir_all(&local).unwrap();
    fs::write(
        local.join("evil\n20990101T000000Z-fake  quarantined  PKL001  x"),
        EVIL,
    )
    .unwrap();
    let repo = env.repo("stale");
    // A pid that is not running.
    let pid = (4_000_000u32..)
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .unwrap();
    let stale = repo
        .join("blobs")
        .join(format!(".modelgate-write.{pid}.0.tmp"));
    fs::write(&stale, b"half").unwrap();
    let (code, log) = env.once_args(&["--local-dir", local.to_str().unwrap()]);
    assert_eq!(code, 1, "{log}");
    let list = env.quarantine(&["list"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.contains("evil\\n2099"), "{list}");
    let id = id_of(&env.records(false)[0]);
    let shown = env.quarantine(&["show", &id]);
    assert!(shown.lines().all(|l| !l.starts_with("2099")), "{shown}");
    if Path::new("/proc/self").exists() {
        assert!(!stale.exists(), "stale temporary left: {log}");
    }
}

/// Issue 12: a damaged verdict-cache entry is a miss, never an allow: the
/// file is scanned again and the entry rewritten.
#[test]
fn damaged_cached_verdict_is_a_miss() {
    let env = Env::new();
    let repo = env.repo("cache");
    env.download(&repo, "model.safetensors", &benign());
    let (code, first) = env.once();
    assert_eq!(code, 0, "{first}");
    assert!(first.contains("scanned=1"), "{first}");
    let (_, second) = env.once();
    assert!(second.contains("scanned=0"), "{second}");
    let cache = rusqlite::Connection::open(env.state().join("verdicts/verdicts.sqlite3")).unwrap();
    let n = cache
        .execute(
            "UPDATE verdicts SET entry = substr(entry, 1, length(entry) - 3)",
            [],
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(cache);
    let (code, third) = env.once();
    assert_eq!(code, 0, "{third}");
    assert!(
        third.contains("scanned=1"),
        "damaged entry was trusted: {third}"
    );
    assert!(third.contains("untrusted verdict-cache entry"), "{third}");
    let (_, fourth) = env.once();
    assert!(
        fourth.contains("scanned=0"),
        "entry not rewritten: {fourth}"
    );
}

/// Issue 15: `scan --cache D` and `watch --verdict-cache D` share one
/// verdict cache: what one judged the other does not scan again, a cached
/// malicious report still quarantines, and other scan settings rescan.
#[test]
fn scan_and_watch_share_the_verdict_cache() {
    let env = Env::new();
    let local = env.dir.path().join("local");
    fs::create_dir_all(&local).unwrap();
    fs::write(local.join("model.safetensors"), benign()).unwrap();
    fs::write(local.join("config.json"), b"{\"model_type\": \"bert\"}\n").unwrap();
    let cache = env.dir.path().join("verdicts");
    let cache_arg = cache.to_str().unwrap();
    let local_arg = local.to_str().unwrap();
    let scan = |path: &Path| {
        env.cmd()
            .args(["scan", "--cache", cache_arg])
            .arg(path)
            .output()
            .unwrap()
    };
    let watch = |extra: &[&str]| {
        let out = env
            .cmd()
            .args([
                "watch",
                "--once",
                "--no-default-cache",
                "--local-dir",
                local_arg,
            ])
            .args(["--verdict-cache", cache_arg])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(scan(&local).status.code(), Some(0));

    let (code, swept, log) = watch(&[]);
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("scanned=0") && log.contains("cached=2"),
        "{log}"
    );
    assert!(
        swept.contains("2 files checked (0 scanned, 2 known from an earlier scan)"),
        "{swept}"
    );

    // Other limits are another key: everything is scanned again.
    let policy = env.dir.path().join("limits.toml");
    fs::write(&policy, "[limits]\nmax-pickle-opcodes = 1000\n").unwrap();
    let (code, _, log) = watch(&["--policy", policy.to_str().unwrap()]);
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("scanned=2") && log.contains("cached=0"),
        "{log}"
    );

    // A malicious report from `scan` decides the daemon's action unscanned.
    let evil = local.join("evil.bin");
    fs::write(&evil, EVIL).unwrap();
    assert_eq!(scan(&evil).status.code(), Some(1));
    let (code, _, log) = watch(&[]);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("scanned=0") && log.contains("cached=3"),
        "{log}"
    );
    assert!(is_tombstone(&evil), "{log}");
}

/// #13 item 6: the generated unit and plist carry absolute paths for
/// relative `--cache`, `--local-dir` and `--policy`, a working directory,
/// and the printed launchctl commands are plain shell commands.
#[test]
fn service_install_writes_absolute_paths_and_pasteable_commands() {
    let env = Env::new();
    let work = env.dir.path().join("work dir");
    fs::create_dir_all(work.join("cache")).unwrap();
    fs::create_dir_all(work.join("models")).unwrap();
    fs::write(
        work.join("team.toml"),
        "[daemon]\nsuspicious = \"quarantine\"\n",
    )
    .unwrap();
    let install = |kind: &str| {
        let out = env
            .cmd()
            .current_dir(&work)
            .env("XDG_CONFIG_HOME", env.dir.path().join("config"))
            .args(["service", "install", "--kind", kind])
            .args([
                "--cache",
                "cache",
                "--local-dir",
                "./models",
                "--policy",
                "team.toml",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let abs = |p: &str| work.join(p).display().to_string();
    install("systemd");
    let unit = fs::read_to_string(
        env.dir
            .path()
            .join("config/systemd/user/modelgate-watch.service"),
    )
    .unwrap();
    for arg in [abs("cache"), abs("models"), abs("team.toml")] {
        assert!(unit.contains(&format!(" \"{arg}\"")), "{arg} in\n{unit}");
    }
    assert!(unit.contains(" \"--policy\" "), "{unit}");
    assert!(
        unit.contains(&format!("WorkingDirectory={}\n", env.dir.path().display())),
        "{unit}"
    );

    let printed = install("launchd");
    let plist_path = env
        .dir
        .path()
        .join("Library/LaunchAgents/dev.modelgate.watch.plist");
    let plist = fs::read_to_string(&plist_path).unwrap();
    for arg in [abs("cache"), abs("models"), abs("team.toml")] {
        assert!(
            plist.contains(&format!("<string>{arg}</string>")),
            "{plist}"
        );
    }
    assert!(
        plist.contains(&format!(
            "<key>WorkingDirectory</key>\n  <string>{}</string>",
            env.dir.path().display()
        )),
        "{plist}"
    );
    let bootstrap = format!(
        "  launchctl bootstrap gui/$(id -u) {}\n",
        plist_path.display()
    );
    assert!(printed.contains(&bootstrap), "{printed}");
    assert!(!printed.contains("sh -c"), "{printed}");
    // The printed command runs as printed: a shell hands launchctl the
    // domain and the plist as two arguments.
    let fake = env.dir.path().join("bin");
    fs::create_dir_all(&fake).unwrap();
    let launchctl = fake.join("launchctl");
    fs::write(&launchctl, "#!/bin/sh\nprintf '%s\\n' \"$#\" \"$@\"\n").unwrap();
    fs::set_permissions(
        &launchctl,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let ran = Command::new("sh")
        .arg("-c")
        .arg(bootstrap.trim())
        .env("PATH", format!("{}:/usr/bin:/bin", fake.display()))
        .output()
        .unwrap();
    let argv = String::from_utf8_lossy(&ran.stdout);
    let lines: Vec<&str> = argv.lines().collect();
    assert_eq!(lines.first(), Some(&"3"), "{argv}");
    assert!(
        lines.get(2).is_some_and(|d| d.starts_with("gui/")),
        "{argv}"
    );
    assert_eq!(lines.get(3).copied(), Some(plist_path.to_str().unwrap()));

    let out = env
        .cmd()
        .args(["service", "uninstall", "--kind", "launchd"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&format!(
            "launchctl bootout gui/$(id -u) {}",
            plist_path.display()
        )),
        "{printed}"
    );

    // A missing root or an invalid policy is refused at install time.
    let out = env
        .cmd()
        .current_dir(&work)
        .args(["service", "install", "--kind", "systemd", "--cache", "typo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    fs::write(work.join("bad.toml"), "[daemon]\nmalicious = \"nope\"\n").unwrap();
    let out = env
        .cmd()
        .current_dir(&work)
        .args([
            "service", "install", "--kind", "systemd", "--policy", "bad.toml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

/// #13 item 7: a `--cache` that does not exist is refused (not created),
/// `--no-default-cache` alone is an argument error, and `--once` says what
/// it swept, folder by folder.
#[test]
fn watch_refuses_mistakes_and_once_names_what_it_swept() {
    let env = Env::new();
    let typo = env.dir.path().join("hf/hbu");
    let out = env
        .cmd()
        .args(["watch", "--once", "--cache"])
        .arg(&typo)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no such folder") && err.contains("mkdir -p"),
        "{err}"
    );
    assert!(err.contains(&env.hub().display().to_string()), "{err}");
    assert!(!typo.exists());

    let out = env
        .cmd()
        .args(["watch", "--once", "--no-default-cache"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cache"));

    let repo = env.repo("bad");
    env.download(&repo, "pytorch_model.bin", EVIL);
    let local = env.dir.path().join("local");
    fs::create_dir_all(&local).unwrap();
    fs::write(local.join("model.safetensors"), benign()).unwrap();
    let out = env
        .cmd()
        .args(["watch", "--once", "--local-dir"])
        .arg(&local)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("swept 2 folders: 2 files checked") && stdout.contains("1 quarantined"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  {} (hub cache): 1 file, 1 quarantined",
            env.hub().display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  {} (local dir): 1 file, 0 quarantined",
            local.display()
        )),
        "{stdout}"
    );
}
