//! The git hooks end to end: real `git` in temporary repositories, running
//! the hooks that `modelgate install` writes, calling the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_modelgate");

/// A protocol-0 pickle that calls `os.system("echo pwned")` when loaded.
const EVIL: &[u8] = b"cos\nsystem\n(S'echo pwned'\ntR.";

fn safetensors() -> Vec<u8> {
    let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header);
    v.extend_from_slice(&[0; 8]);
    v
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs `program` isolated from the user's and system's git configuration.
fn isolated(program: &str, home: &Path) -> Command {
    let mut c = Command::new(program);
    c.env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", home)
        .env("GIT_AUTHOR_DATE", "2025-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2025-01-01T00:00:00Z")
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_WORK_TREE")
        .env_remove("MODELGATE")
        .env_remove("MODELGATE_POLICY")
        .env_remove("XDG_CONFIG_HOME");
    c
}

struct Repo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    dir: PathBuf,
}

impl Repo {
    fn new(args: &[&str]) -> Repo {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        let dir = root.join("work");
        let r = Repo {
            _tmp: tmp,
            root,
            dir,
        };
        let mut init = vec!["init", "-q", "-b", "main"];
        init.extend_from_slice(args);
        init.push("work");
        r.git_in(&r.root, &init).ok();
        r.git(&["config", "user.name", "Test"]).ok();
        r.git(&["config", "user.email", "test@example.com"]).ok();
        r
    }

    fn git_in(&self, cwd: &Path, args: &[&str]) -> Output {
        isolated("git", &self.root)
            .current_dir(cwd)
            .args(args)
            .output()
            .expect("git runs")
    }

    fn git(&self, args: &[&str]) -> Output {
        self.git_in(&self.dir, args)
    }

    fn modelgate(&self, args: &[&str]) -> Output {
        isolated(BIN, &self.root)
            .current_dir(&self.dir)
            .args(args)
            .output()
            .expect("modelgate runs")
    }

    fn write(&self, path: &str, data: &[u8]) {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, data).expect("write");
    }

    fn install(&self) {
        let out = self.modelgate(&["install"]);
        assert!(out.status.success(), "install failed: {}", text(&out));
    }

    fn commit(&self, msg: &str) -> Output {
        self.git(&["commit", "-q", "-m", msg])
    }

    fn head(&self) -> String {
        String::from_utf8_lossy(&self.git(&["rev-parse", "HEAD"]).stdout)
            .trim()
            .to_string()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

trait MustSucceed {
    fn ok(self) -> Output;
}

impl MustSucceed for Output {
    fn ok(self) -> Output {
        assert!(self.status.success(), "command failed: {}", text(&self));
        self
    }
}

#[test]
fn malicious_pickle_blocks_the_commit() {
    let r = Repo::new(&[]);
    r.install();
    r.write("models/evil.pkl", EVIL);
    r.write("README.md", b"# notes\n");
    r.git(&["add", "."]).ok();
    let out = r.commit("add model");
    assert!(!out.status.success(), "commit should fail: {}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("PKL001"), "{msg}");
    assert!(msg.contains("models/evil.pkl"), "{msg}");
    assert!(
        msg.contains(&format!("sha256 = \"{}\"", sha256(EVIL))),
        "{msg}"
    );
    assert!(msg.contains("safetensors"), "{msg}");
    assert!(
        r.git(&["rev-parse", "-q", "--verify", "HEAD"])
            .stdout
            .is_empty()
    );
}

/// Text is skipped cheaply, except the configs runtimes take chat templates
/// from.
#[test]
fn chat_template_in_a_staged_tokenizer_config_blocks_the_commit() {
    let r = Repo::new(&[]);
    r.install();
    r.write(
        "tokenizer_config.json",
        br#"{"chat_template": "{{ cycler.__init__.__globals__.os.popen('id').read() }}"}"#,
    );
    r.write("notes.json", br#"{"template": "{{ x.__class__ }}"}"#);
    r.git(&["add", "."]).ok();
    let out = r.commit("tokenizer");
    let msg = text(&out);
    assert!(!out.status.success(), "commit should fail: {msg}");
    assert!(
        msg.contains("GGUF010") && msg.contains("tokenizer_config.json"),
        "{msg}"
    );
    assert!(!msg.contains("notes.json"), "{msg}");
}

#[test]
fn benign_safetensors_commits() {
    let r = Repo::new(&[]);
    r.install();
    r.write("model.safetensors", &safetensors());
    r.git(&["add", "."]).ok();
    r.commit("weights").ok();
}

#[test]
fn json_output_for_hooks() {
    let r = Repo::new(&[]);
    r.write("evil.pkl", EVIL);
    r.git(&["add", "."]).ok();
    let out = r.modelgate(&["hook", "pre-commit", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["action"], "block");
    assert_eq!(v["files"][0]["path"], "evil.pkl");
    assert_eq!(v["files"][0]["decision"]["basis"][0]["rule"], "PKL001");
}

#[test]
fn the_index_decides_not_the_working_tree() {
    let r = Repo::new(&[]);
    r.install();
    // Staged malicious, working tree cleaned afterwards: still blocked.
    r.write("a.pkl", EVIL);
    r.git(&["add", "a.pkl"]).ok();
    r.write("a.pkl", b"harmless text now\n");
    assert!(!r.commit("x").status.success());
    // Staged benign, working tree malicious: the commit records the benign blob.
    r.git(&["add", "a.pkl"]).ok();
    r.write("a.pkl", EVIL);
    r.commit("y").ok();
}

#[test]
fn commit_all_and_commit_paths_use_their_own_index() {
    let r = Repo::new(&[]);
    r.install();
    r.write("m.pkl", b"placeholder\n");
    r.write("notes.txt", b"v1\n");
    r.git(&["add", "."]).ok();
    r.commit("base").ok();

    // `commit -a` picks up the unstaged malicious modification.
    r.write("m.pkl", EVIL);
    let out = r.git(&["commit", "-q", "-a", "-m", "all"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("PKL001"));

    // `commit PATH` with the malicious file named: blocked.
    let out = r.git(&["commit", "-q", "-m", "only", "m.pkl"]);
    assert!(!out.status.success(), "{}", text(&out));

    // Malicious content staged in the real index, but `commit notes.txt`
    // commits only notes.txt: allowed, and the staged blob stays uncommitted.
    r.git(&["add", "m.pkl"]).ok();
    r.write("notes.txt", b"v2\n");
    r.git(&["commit", "-q", "-m", "notes", "notes.txt"]).ok();
    let shown = r.git(&["show", "--name-only", "--format=", "HEAD"]).stdout;
    assert_eq!(String::from_utf8_lossy(&shown).trim(), "notes.txt");
}

#[test]
fn lfs_pointer_is_resolved_to_the_local_object() {
    let r = Repo::new(&[]);
    r.install();
    let oid = sha256(EVIL);
    let obj = r
        .dir
        .join(".git/lfs/objects")
        .join(&oid[0..2])
        .join(&oid[2..4])
        .join(&oid);
    std::fs::create_dir_all(obj.parent().expect("parent")).expect("mkdir");
    std::fs::write(&obj, EVIL).expect("write");
    let pointer = format!(
        "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {}\n",
        EVIL.len()
    );
    r.write("big/model.pt", pointer.as_bytes());
    r.git(&["add", "."]).ok();
    let out = r.commit("lfs");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("PKL001") && text(&out).contains("via Git LFS"),
        "{}",
        text(&out)
    );

    // Object absent: the default policy warns and lets it through.
    std::fs::remove_file(&obj).expect("rm");
    let out = r.commit("lfs");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("POL002"), "{}", text(&out));
}

#[test]
fn exemptions_by_hash_and_expired_ones() {
    let r = Repo::new(&[]);
    r.install();
    r.write("evil.pkl", EVIL);
    r.git(&["add", "evil.pkl"]).ok();
    let policy = |expires: &str| {
        format!(
            "[[exemptions]]\nsha256 = \"{}\"\nrule = \"PKL001\"\nreason = \"demo payload for the security training\"\nexpires = {expires}\n",
            sha256(EVIL)
        )
    };
    r.write(".modelgate.toml", policy("2020-01-01").as_bytes());
    r.git(&["add", ".modelgate.toml"]).ok();
    let out = r.commit("expired");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("expired"), "{}", text(&out));
    // An unstaged edit is not what the commit carries: it does not apply.
    r.write(".modelgate.toml", policy("2999-12-31").as_bytes());
    let out = r.commit("exempted");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(".modelgate.toml differs from the version staged")
            && text(&out).contains("policy: ")
            && text(&out).contains(".modelgate.toml as staged"),
        "{}",
        text(&out)
    );
    r.git(&["add", ".modelgate.toml"]).ok();
    let out = r.commit("exempted");
    assert!(out.status.success(), "{}", text(&out));
}

/// An exemption that exists only in an untracked policy file does not let
/// a commit through, and the hook says why; naming the file explicitly
/// (MODELGATE_POLICY) is honoured and reported.
#[test]
fn untracked_policy_does_not_decide_the_commit() {
    let r = Repo::new(&[]);
    r.install();
    r.write("evil.pkl", EVIL);
    r.git(&["add", "evil.pkl"]).ok();
    let exemption = format!(
        "[[exemptions]]\nsha256 = \"{}\"\nrule = \"PKL001\"\nreason = \"demo payload for the security training\"\n",
        sha256(EVIL)
    );
    r.write("policy.toml", exemption.as_bytes());
    let out = r.commit("sneak");
    assert!(!out.status.success(), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("policy.toml is not staged") && msg.contains("PKL001"),
        "{msg}"
    );
    assert!(msg.contains("policy: built-in defaults"), "{msg}");

    let explicit = r.dir.join("policy.toml");
    let out = isolated("git", &r.root)
        .current_dir(&r.dir)
        .env("MODELGATE_POLICY", &explicit)
        .args(["commit", "-q", "-m", "explicit"])
        .output()
        .expect("git runs");
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn invalid_policy_fails_closed() {
    let r = Repo::new(&[]);
    r.install();
    r.write(".modelgate.toml", b"[actions]\nmalicious = \"allow-ish\"\n");
    r.write("a.txt", b"x\n");
    r.git(&["add", "a.txt", ".modelgate.toml"]).ok();
    let out = r.commit("x");
    assert!(!out.status.success());
    assert!(
        text(&out).contains(".modelgate.toml:2:13"),
        "{}",
        text(&out)
    );
}

#[test]
fn chained_hooks_still_run_and_uninstall_restores() {
    let r = Repo::new(&[]);
    let hooks = r.dir.join(".git/hooks");
    std::fs::create_dir_all(&hooks).expect("mkdir");
    let marker = r.root.join("chained-ran");
    let script = format!("#!/bin/sh\necho pre-commit >> '{}'\n", marker.display());
    std::fs::write(hooks.join("pre-commit"), &script).expect("write");
    make_executable(&hooks.join("pre-commit"));
    r.install();
    let again = r.modelgate(&["install"]).ok();
    assert!(
        text(&again).contains("already installed"),
        "{}",
        text(&again)
    );

    r.write("a.txt", b"x\n");
    r.git(&["add", "."]).ok();
    r.commit("one").ok();
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap_or_default(),
        "pre-commit\n"
    );

    // Blocked by modelgate: the chained hook does not run.
    r.write("evil.pkl", EVIL);
    r.git(&["add", "."]).ok();
    assert!(!r.commit("two").status.success());
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap_or_default(),
        "pre-commit\n"
    );

    r.modelgate(&["uninstall"]).ok();
    assert_eq!(
        std::fs::read_to_string(hooks.join("pre-commit")).unwrap_or_default(),
        script
    );
    assert!(!hooks.join("pre-push").exists());
}

#[test]
fn install_respects_core_hooks_path() {
    let r = Repo::new(&[]);
    r.git(&["config", "core.hooksPath", "githooks"]).ok();
    r.install();
    assert!(r.dir.join("githooks/pre-commit").exists());
    r.write("evil.pkl", EVIL);
    r.git(&["add", "."]).ok();
    assert!(!r.commit("x").status.success());
}

fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A repository with a bare `origin` next to it.
fn with_remote(init: &[&str]) -> Repo {
    let r = Repo::new(init);
    let mut args = vec!["init", "-q", "--bare"];
    args.extend_from_slice(init);
    args.push("origin.git");
    r.git_in(&r.root, &args).ok();
    let origin = r.root.join("origin.git");
    r.git(&[
        "remote",
        "add",
        "origin",
        origin.to_str().expect("utf-8 path"),
    ])
    .ok();
    r
}

fn pre_push_blocks_deleted_middle_commit(init: &[&str]) {
    let r = with_remote(init);
    r.write("README.md", b"hello\n");
    r.git(&["add", "."]).ok();
    r.commit("base").ok();
    r.install();
    r.git(&["push", "-q", "origin", "main"]).ok();

    r.write("evil.pkl", EVIL);
    r.git(&["add", "."]).ok();
    r.git(&["commit", "-q", "--no-verify", "-m", "sneak"]).ok();
    let middle = r.head();
    r.git(&["rm", "-q", "evil.pkl"]).ok();
    r.commit("remove it again").ok();

    let out = r.git(&["push", "origin", "main"]);
    assert!(
        !out.status.success(),
        "push should be blocked: {}",
        text(&out)
    );
    let msg = text(&out);
    assert!(msg.contains("PKL001") && msg.contains("evil.pkl"), "{msg}");
    assert!(
        msg.contains(&middle[..12]),
        "names the commit {middle}: {msg}"
    );

    // A new branch carrying the same history is blocked too.
    let out = r.git(&["push", "origin", "main:refs/heads/feature"]);
    assert!(!out.status.success(), "{}", text(&out));
    // Deleting a branch pushes nothing.
    r.git(&["push", "-q", "--no-verify", "origin", "main:refs/heads/tmp"])
        .ok();
    r.git(&["push", "-q", "origin", ":refs/heads/tmp"]).ok();
}

#[test]
fn pre_push_scans_every_new_commit_sha1() {
    pre_push_blocks_deleted_middle_commit(&[]);
}

#[test]
fn pre_push_scans_every_new_commit_sha256() {
    pre_push_blocks_deleted_middle_commit(&["--object-format=sha256"]);
}

#[test]
fn pre_push_replays_stdin_to_chained_lfs_hook_after_ours() {
    let r = with_remote(&[]);
    let hooks = r.dir.join(".git/hooks");
    std::fs::create_dir_all(&hooks).expect("mkdir");
    let log = r.root.join("lfs-saw");
    let fake_lfs = format!(
        "#!/bin/sh\necho \"args: $*\" > '{0}'\ncat >> '{0}'\n",
        log.display()
    );
    std::fs::write(hooks.join("pre-push"), fake_lfs).expect("write");
    make_executable(&hooks.join("pre-push"));
    r.install();
    r.write("m.safetensors", &safetensors());
    r.git(&["add", "."]).ok();
    r.commit("ok").ok();
    r.git(&["push", "-q", "origin", "main"]).ok();
    let saw = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(saw.starts_with("args: origin "), "{saw}");
    assert!(saw.contains("refs/heads/main"), "{saw}");

    // Blocked by us: the chained (LFS) hook must not run and upload.
    std::fs::remove_file(&log).expect("rm");
    r.write("evil.pkl", EVIL);
    r.git(&["add", "."]).ok();
    r.git(&["commit", "-q", "--no-verify", "-m", "bad"]).ok();
    assert!(!r.git(&["push", "-q", "origin", "main"]).status.success());
    assert!(!log.exists());
}

#[test]
fn pre_receive_rejects_the_push_from_quarantine() {
    let r = with_remote(&[]);
    let origin = r.root.join("origin.git");
    let out = isolated(BIN, &r.root)
        .current_dir(&origin)
        .args(["install", "--hook", "pre-receive"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", text(&out));
    r.write("README.md", b"hello\n");
    r.git(&["add", "."]).ok();
    r.commit("base").ok();
    r.git(&["push", "-q", "origin", "main"]).ok();
    let accepted = r.head();

    r.write("models/evil.pkl", EVIL);
    r.git(&["add", "."]).ok();
    r.commit("bad").ok();
    let bad = r.head();
    let out = r.git(&["push", "origin", "main"]);
    assert!(!out.status.success(), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("remote: ") && msg.contains("PKL001") && msg.contains("models/evil.pkl"),
        "{msg}"
    );
    assert!(msg.contains(&bad[..12]), "{msg}");
    let server = r.git_in(&origin, &["rev-parse", "main"]);
    assert_eq!(String::from_utf8_lossy(&server.stdout).trim(), accepted);
    // The rejected objects did not reach the server's object store.
    let gone = r.git_in(&origin, &["cat-file", "-e", &bad]);
    assert!(!gone.status.success());
}

#[test]
fn pre_push_reads_refs_from_stdin_directly() {
    let r = with_remote(&[]);
    r.write("README.md", b"hello\n");
    r.git(&["add", "."]).ok();
    r.commit("base").ok();
    let base = r.head();
    r.write("evil.pkl", EVIL);
    r.git(&["add", "."]).ok();
    r.git(&["commit", "-q", "--no-verify", "-m", "bad"]).ok();
    let head = r.head();
    let zero = "0".repeat(head.len());
    let mut child = isolated(BIN, &r.root)
        .current_dir(&r.dir)
        .args(["hook", "pre-push", "origin", "unused-url"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "refs/heads/main {head} refs/heads/main {zero}").expect("write");
        // The remote has `old` at `base`: only what `head` adds is new.
        writeln!(stdin, "(delete) {zero} refs/heads/old {base}").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

/// A large model (over the working-tree shortcut's threshold) is scanned
/// from the identical working-tree file, and from the staged blob when the
/// working tree has changed since `git add`: either way the payload blocks.
#[test]
fn large_staged_model_blocks_whether_or_not_the_working_tree_matches() {
    // EVIL followed by 70 MiB of padding after its STOP: still a pickle.
    let mut big = EVIL.to_vec();
    big.resize(70 << 20, 0);
    // The same size as the staged blob: only the stat data and git's
    // racy-timestamp rule tell the edit apart without rehashing.
    let same_size_benign = vec![0u8; big.len()];
    for edit_after_add in [None, Some(safetensors()), Some(same_size_benign)] {
        let r = Repo::new(&[]);
        r.install();
        r.write("weights.pkl", &big);
        r.git(&["add", "."]).ok();
        let edited = edit_after_add.is_some();
        if let Some(bytes) = edit_after_add {
            r.write("weights.pkl", &bytes);
        }
        let out = r.commit("big model");
        assert!(
            !out.status.success(),
            "commit should fail (edited={edited}): {}",
            text(&out)
        );
        assert!(text(&out).contains("PKL001"), "{}", text(&out));
    }
}
