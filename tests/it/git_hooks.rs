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

    // The hook prints each finding in the layout `modelgate scan` uses.
    let scan = r.modelgate(&["scan", "--color", "never", "models/evil.pkl"]);
    let scanned = String::from_utf8_lossy(&scan.stdout);
    let block: Vec<&str> = scanned.lines().take(3).collect();
    assert!(block[0].starts_with("malicious[PKL001]: "), "{scanned}");
    for line in block {
        assert!(msg.contains(line), "hook output lacks `{line}`:\n{msg}");
    }
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
    assert_eq!(v["schema_version"], 1);
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
    assert!(msg.contains("`git push --no-verify`"), "{msg}");
    assert!(
        msg.contains("still in the history") && msg.contains("git rebase -i"),
        "{msg}"
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

fn have(tool: &str, test: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("SKIPPED: {test}: `{tool}` is not installed (.ci/deps.sh installs it)");
    }
    ok
}

/// Pointer spellings that git-lfs (its `DecodeFrom`) turns into the object
/// on checkout, as the real `git lfs smudge` confirms for each.
fn lfs_pointer_variants(oid: &str, size: usize) -> Vec<(&'static str, Vec<u8>)> {
    let v1 = "version https://git-lfs.github.com/spec/v1";
    let body = format!("oid sha256:{oid}\nsize {size}");
    vec![
        ("canonical", format!("{v1}\n{body}\n")),
        (
            "crlf",
            format!("{v1}\r\n{body}\r\n")
                .replace("\n", "\r\n")
                .replace("\r\r", "\r"),
        ),
        ("leading-newline", format!("\n\n{v1}\n{body}\n")),
        (
            "blank-lines",
            format!("{v1}\n\n\r\n{}\n\n", body.replace('\n', "\n\n")),
        ),
        ("trailing-whitespace", format!("{v1}\n{body}   \t\n\n  ")),
        (
            "git-media",
            format!("version http://git-media.io/v/2\n{body}\n"),
        ),
        (
            "extension-first",
            format!("ext-0-x sha256:{oid}\n{v1}\n{body}\n"),
        ),
        (
            "signed-size",
            format!("{v1}\noid sha256:{oid}\nsize +{size}\n"),
        ),
        (
            "padded-past-1024",
            format!(
                "{v1}\n{body}\n{}\nnot part of the pointer",
                " ".repeat(1100)
            ),
        ),
    ]
    .into_iter()
    .map(|(n, s)| (n, s.into_bytes()))
    .collect()
}

/// Every pointer variant git-lfs smudges is resolved to its object and
/// blocked in pre-commit; with the object absent it is unverifiable and
/// `unverifiable = "block"` blocks it.
#[test]
fn lfs_pointer_variants_that_git_lfs_accepts_are_checked() {
    if !have(
        "git-lfs",
        "lfs_pointer_variants_that_git_lfs_accepts_are_checked",
    ) {
        return;
    }
    let oid = sha256(EVIL);
    for (name, pointer) in lfs_pointer_variants(&oid, EVIL.len()) {
        let r = Repo::new(&[]);
        r.install();
        let obj = r
            .dir
            .join(".git/lfs/objects")
            .join(&oid[0..2])
            .join(&oid[2..4])
            .join(&oid);
        std::fs::create_dir_all(obj.parent().expect("parent")).expect("mkdir");
        std::fs::write(&obj, EVIL).expect("write");
        // The real git-lfs turns this blob into the payload on checkout.
        let mut smudge = isolated("git", &r.root)
            .current_dir(&r.dir)
            .args(["lfs", "smudge", "model.pt"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("git lfs smudge");
        {
            use std::io::Write;
            let mut stdin = smudge.stdin.take().expect("stdin");
            stdin.write_all(&pointer).expect("write");
        }
        let out = smudge.wait_with_output().expect("wait");
        let extension = name == "extension-first";
        if extension {
            // Decoded as a pointer; smudging needs the extension's program.
            assert!(
                text(&out).contains("extension 'x' is not configured"),
                "{name}: {}",
                text(&out)
            );
        } else {
            assert_eq!(
                out.stdout,
                EVIL,
                "{name}: git-lfs does not smudge it: {}",
                text(&out)
            );
        }

        r.write("model.pt", &pointer);
        r.git(&["add", "model.pt"]).ok();
        let out = r.commit("lfs");
        if extension {
            // What lands in the work tree is the extension's output:
            // unverifiable (warn by default).
            assert!(text(&out).contains("POL002"), "{name}: {}", text(&out));
            r.git(&["update-ref", "-d", "refs/heads/main"]).ok();
        } else {
            assert!(!out.status.success(), "{name}: {}", text(&out));
            assert!(
                text(&out).contains("PKL001") && text(&out).contains("via Git LFS"),
                "{name}: {}",
                text(&out)
            );
        }

        std::fs::remove_file(&obj).expect("rm");
        r.write(".modelgate.toml", b"[actions]\nunverifiable = \"block\"\n");
        r.git(&["add", ".modelgate.toml"]).ok();
        let out = r.commit("lfs");
        assert!(!out.status.success(), "{name}: {}", text(&out));
        assert!(
            text(&out).contains("POL002") && text(&out).contains(&oid),
            "{name}: {}",
            text(&out)
        );
    }
}

/// On a server LFS objects are never present: pre-receive names each LFS
/// object it could not check, and a server policy with
/// `unverifiable = "block"` refuses them, whatever the pointer's spelling.
#[test]
fn pre_receive_names_unchecked_lfs_objects() {
    let r = with_remote(&[]);
    let origin = r.root.join("origin.git");
    let out = isolated(BIN, &r.root)
        .current_dir(&origin)
        .args(["install", "--hook", "pre-receive"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", text(&out));
    let oid = sha256(EVIL);
    for (name, pointer) in lfs_pointer_variants(&oid, EVIL.len()) {
        r.write(&format!("models/{name}.bin"), &pointer);
    }
    r.git(&["add", "."]).ok();
    r.git(&["commit", "-q", "--no-verify", "-m", "lfs"]).ok();
    // Default policy: warned, named, let through.
    let out = r.git(&["push", "origin", "main:refs/heads/warned"]);
    assert!(out.status.success(), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("Git LFS object") && msg.contains("could not be checked"),
        "{msg}"
    );
    for (name, _) in lfs_pointer_variants(&oid, EVIL.len()) {
        assert!(msg.contains(&format!("models/{name}.bin")), "{name}: {msg}");
    }
    assert!(msg.contains("unverifiable = \"block\""), "{msg}");
    // The documented server setting refuses them.
    std::fs::write(
        origin.join("policy.toml"),
        "[actions]\nunverifiable = \"block\"\n",
    )
    .expect("write");
    r.write(
        "models/new.bin",
        format!(
            "version https://git-lfs.github.com/spec/v1\r\noid sha256:{}\r\nsize 3\r\n",
            sha256(b"new")
        )
        .as_bytes(),
    );
    r.git(&["add", "."]).ok();
    r.git(&["commit", "-q", "--no-verify", "-m", "more lfs"])
        .ok();
    let out = r.git(&["push", "origin", "main"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("POL002"), "{}", text(&out));
}

/// A blob that cannot be read after one that blocks: the block stands,
/// even with `on-error = "warn"`, and the unreadable blob is named.
#[test]
fn a_later_unreadable_blob_does_not_drop_an_earlier_block() {
    let r = Repo::new(&[]);
    r.write(".modelgate.toml", b"[hook]\non-error = \"warn\"\n");
    r.write("a.pkl", EVIL);
    let mut other = safetensors();
    other.extend_from_slice(b"unique");
    r.write("b.safetensors", &other);
    r.git(&["add", "."]).ok();
    let blob = String::from_utf8_lossy(&r.git(&["rev-parse", ":b.safetensors"]).stdout)
        .trim()
        .to_string();
    std::fs::remove_file(r.dir.join(".git/objects").join(&blob[..2]).join(&blob[2..]))
        .expect("rm object");
    let out = r.modelgate(&["hook", "pre-commit"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("PKL001") && msg.contains("a.pkl"), "{msg}");
    assert!(
        msg.contains("b.safetensors could not be checked") && msg.contains("let through"),
        "{msg}"
    );
    // Alone, the unreadable blob follows on-error: warn lets it through,
    // block (the default) refuses with exit 2.
    r.git(&["rm", "-q", "--cached", "a.pkl"]).ok();
    let out = r.modelgate(&["hook", "pre-commit"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    r.write(".modelgate.toml", b"");
    r.git(&["add", ".modelgate.toml"]).ok();
    let out = r.modelgate(&["hook", "pre-commit"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("refused"), "{}", text(&out));
}

/// Tags may name a blob or a tree directly; both are scanned, in pre-push
/// and in pre-receive.
#[test]
fn tags_pointing_at_blobs_and_trees_are_scanned() {
    let r = with_remote(&[]);
    r.write("README.md", b"hello\n");
    r.git(&["add", "."]).ok();
    r.commit("base").ok();
    r.git(&["push", "-q", "origin", "main"]).ok();
    r.install();
    r.write("evil.pkl", EVIL);
    let blob = String::from_utf8_lossy(&r.git(&["hash-object", "-w", "evil.pkl"]).stdout)
        .trim()
        .to_string();
    std::fs::remove_file(r.dir.join("evil.pkl")).expect("rm");
    r.git(&["tag", "-a", "-m", "payload", "blobtag", &blob])
        .ok();
    let out = r.git(&["push", "origin", "blobtag"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("PKL001") && !text(&out).contains("committish"),
        "{}",
        text(&out)
    );

    let tree_in = r.root.join("tree-src");
    std::fs::create_dir_all(&tree_in).expect("mkdir");
    let index = r.root.join("tree-index");
    let tree = {
        let g = |args: &[&str]| {
            isolated("git", &r.root)
                .current_dir(&r.dir)
                .env("GIT_INDEX_FILE", &index)
                .args(args)
                .output()
                .expect("git")
        };
        g(&[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("100644,{blob},sub/w.pkl"),
        ])
        .ok();
        String::from_utf8_lossy(&g(&["write-tree"]).ok().stdout)
            .trim()
            .to_string()
    };
    r.git(&["tag", "treetag", &tree]).ok();
    let out = r.git(&["push", "origin", "treetag"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("sub/w.pkl"), "{}", text(&out));

    // The server refuses the same when the client skips its hook.
    let origin = r.root.join("origin.git");
    isolated(BIN, &r.root)
        .current_dir(&origin)
        .args(["install", "--hook", "pre-receive"])
        .output()
        .expect("runs")
        .ok();
    let out = r.git(&["push", "--no-verify", "origin", "blobtag", "treetag"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("remote: ") && text(&out).contains("PKL001"),
        "{}",
        text(&out)
    );
}

/// pre-push does not trust local remote-tracking refs: a forged
/// `refs/remotes/origin/main` pointing at the payload commit hides nothing.
#[test]
fn pre_push_ignores_forged_remote_tracking_refs() {
    let r = with_remote(&[]);
    r.write("README.md", b"hello\n");
    r.git(&["add", "."]).ok();
    r.commit("base").ok();
    r.git(&["push", "-q", "origin", "main"]).ok();
    r.install();
    r.write("evil.pkl", EVIL);
    r.git(&["add", "."]).ok();
    r.git(&["commit", "-q", "--no-verify", "-m", "bad"]).ok();
    r.git(&["update-ref", "refs/remotes/origin/main", "HEAD"])
        .ok();
    r.git(&["update-ref", "refs/remotes/origin/feature", "HEAD"])
        .ok();
    let out = r.git(&["push", "origin", "main:refs/heads/feature"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("PKL001"), "{}", text(&out));
    let out = r.git(&["push", "origin", "main"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("git push --no-verify"),
        "{}",
        text(&out)
    );
}

/// `modelgate install` also guards merges (pre-merge-commit).
#[test]
fn pre_merge_commit_blocks_a_merge_that_brings_a_payload() {
    let r = Repo::new(&[]);
    r.write("README.md", b"hello\n");
    r.git(&["add", "."]).ok();
    r.commit("base").ok();
    r.install();
    assert!(r.dir.join(".git/hooks/pre-merge-commit").exists());
    r.git(&["checkout", "-q", "-b", "feature"]).ok();
    r.write("evil.pkl", EVIL);
    r.git(&["add", "."]).ok();
    r.git(&["commit", "-q", "--no-verify", "-m", "bad"]).ok();
    r.git(&["checkout", "-q", "main"]).ok();
    r.write("other.txt", b"x\n");
    r.git(&["add", "."]).ok();
    r.commit("main moves").ok();
    let out = r.git(&["merge", "--no-ff", "-m", "merge", "feature"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("PKL001") && text(&out).contains("git merge --no-verify"),
        "{}",
        text(&out)
    );
}

/// A modelgate binary that crashes: the hook says what failed and that it
/// refused, for the installed hook and for the shims in hooks/.
#[test]
fn a_crashing_binary_is_reported_and_refused() {
    let r = Repo::new(&[]);
    r.install();
    let crash = r.root.join("crashing-modelgate");
    std::fs::write(&crash, "#!/bin/sh\nkill -SEGV $$\n").expect("write");
    make_executable(&crash);
    r.write("a.txt", b"x\n");
    r.git(&["add", "."]).ok();
    for hooks_path in [
        None,
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks")),
    ] {
        if let Some(p) = &hooks_path {
            r.git(&["config", "core.hooksPath", p.to_str().expect("utf-8")])
                .ok();
        }
        let out = isolated("git", &r.root)
            .current_dir(&r.dir)
            .env("MODELGATE", &crash)
            .args(["commit", "-q", "-m", "x"])
            .output()
            .expect("git runs");
        assert!(!out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains("was killed by signal 11")
                && text(&out).contains("refusing the pre-commit"),
            "{hooks_path:?}: {}",
            text(&out)
        );
    }
}

/// Policy discovery stops at the repository root, refuses unusable policy
/// paths, and honours MODELGATE_POLICY and the user default; `policy check`
/// says which file it used and why.
#[test]
fn policy_discovery_stays_in_the_repository() {
    let r = Repo::new(&[]);
    r.install();
    // A permissive policy above the repository must not apply.
    let exempt = format!(
        "[[exemptions]]\nsha256 = \"{}\"\nrule = \"PKL001\"\nreason = \"demo payload for the security training\"\n",
        sha256(EVIL)
    );
    std::fs::write(r.root.join("policy.toml"), &exempt).expect("write");
    r.write("evil.pkl", EVIL);
    r.git(&["add", "evil.pkl"]).ok();
    let out = r.commit("parent policy");
    assert!(!out.status.success(), "{}", text(&out));
    let sub = r.dir.join("models");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let check = |cwd: &Path, env: &[(&str, &Path)]| {
        let mut c = isolated(BIN, &r.root);
        c.current_dir(cwd).args(["policy", "check"]);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("runs")
    };
    let out = check(&sub, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("using: built-in defaults")
            && text(&out).contains(&r.dir.display().to_string()),
        "{}",
        text(&out)
    );
    // The user default applies when the repository has none.
    let xdg = r.root.join("xdg");
    std::fs::create_dir_all(xdg.join("modelgate")).expect("mkdir");
    std::fs::write(
        xdg.join("modelgate/policy.toml"),
        "[actions]\ninfo = \"warn\"\n",
    )
    .expect("write");
    let out = check(&sub, &[("XDG_CONFIG_HOME", &xdg)]);
    assert!(text(&out).contains("(user default"), "{}", text(&out));
    // MODELGATE_POLICY names one explicitly.
    let named = r.root.join("policy.toml");
    let out = check(&sub, &[("MODELGATE_POLICY", &named)]);
    assert!(
        text(&out).contains("(from MODELGATE_POLICY)"),
        "{}",
        text(&out)
    );
    // The repository's own file, and why it was chosen.
    r.write("policy.toml", b"");
    let out = check(&sub, &[]);
    assert!(
        text(&out).contains("nearest policy file") && text(&out).contains("repository root"),
        "{}",
        text(&out)
    );
    // A folder or a dangling symlink named like a policy is refused.
    std::fs::remove_file(r.dir.join("policy.toml")).expect("rm");
    std::fs::create_dir(sub.join("policy.toml")).expect("mkdir");
    let out = check(&sub, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("is a folder"), "{}", text(&out));
    let out = r.commit("folder");
    assert!(!out.status.success(), "{}", text(&out));
    std::fs::remove_dir(sub.join("policy.toml")).expect("rmdir");
    std::os::unix::fs::symlink(r.root.join("nowhere.toml"), r.dir.join(".modelgate.toml"))
        .expect("symlink");
    let out = check(&sub, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("symlink"), "{}", text(&out));
    let out = r.git(&["commit", "-q", "-m", "dangling"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("refusing"), "{}", text(&out));
}

/// The pre-commit framework: the `modelgate-files` hook of
/// .pre-commit-hooks.yaml fails `pre-commit run --all-files` on a payload
/// committed with --no-verify; the index hook cannot see it. The hooks are
/// taken from the real .pre-commit-hooks.yaml and run as `language: system`
/// with the built binary (the framework would otherwise build the crate).
#[test]
fn pre_commit_framework_files_hook_checks_committed_files() {
    let Some(pre_commit) = pre_commit_framework() else {
        println!(
            "SKIPPED: pre_commit_framework_files_hook_checks_committed_files: no pre-commit \
             (set MODELGATE_PRE_COMMIT, or run tests/fixtures/precommit-venv.sh target/precommit-venv)"
        );
        return;
    };
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".pre-commit-hooks.yaml"),
    )
    .expect("manifest");
    let hook = |id: &str| -> String {
        let start = manifest
            .find(&format!("- id: {id}\n"))
            .unwrap_or_else(|| panic!("no hook {id}"));
        let rest = &manifest[start..];
        let end = rest[2..].find("\n- id:").map_or(rest.len(), |e| e + 3);
        let def = &rest[..end];
        let entry = def
            .lines()
            .find_map(|l| l.trim().strip_prefix("entry: modelgate "))
            .expect("entry");
        let kept: Vec<String> = def
            .lines()
            .filter(|l| {
                let t = l.trim_start_matches(['-', ' ']);
                !t.starts_with("entry:") && !t.starts_with("language:")
            })
            .map(|l| format!("      {}", l.trim_start_matches(['-', ' '])))
            .collect();
        format!(
            "    - entry: {BIN} {entry}\n      language: system\n{}\n",
            kept.join("\n")
        )
    };
    let r = Repo::new(&[]);
    r.write(
        ".pre-commit-config.yaml",
        format!(
            "repos:\n  - repo: local\n    hooks:\n{}{}",
            hook("modelgate"),
            hook("modelgate-files")
        )
        .as_bytes(),
    );
    r.write("evil.pkl", EVIL);
    r.write("README.md", b"hello\n");
    r.git(&["add", "."]).ok();
    r.git(&["commit", "-q", "--no-verify", "-m", "sneak"]).ok();
    let run = |args: &[&str]| {
        isolated(pre_commit.to_str().expect("utf-8"), &r.root)
            .current_dir(&r.dir)
            .env("PRE_COMMIT_HOME", r.root.join("pre-commit-cache"))
            .args(args)
            .output()
            .expect("pre-commit runs")
    };
    let out = run(&["run", "--all-files", "modelgate-files"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("PKL001") && text(&out).contains("evil.pkl"),
        "{}",
        text(&out)
    );
    let out = run(&["run", "--files", "README.md", "--", "modelgate-files"]);
    assert!(out.status.success(), "{}", text(&out));
    // The index hook has nothing staged to check.
    let out = run(&["run", "--all-files", "modelgate"]);
    assert!(out.status.success(), "{}", text(&out));
}

fn pre_commit_framework() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MODELGATE_PRE_COMMIT") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/precommit-venv/bin/pre-commit");
    if venv.is_file() {
        return Some(venv);
    }
    Command::new("pre-commit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        .then(|| PathBuf::from("pre-commit"))
}

/// Path rules in hooks (#13 item 1): the globs of a policy in the work tree
/// are relative to its folder, so a policy at the root matches repository
/// paths and one in `pr/` matches below `pr/` only; a policy named
/// explicitly from outside the work tree matches repository paths.
#[test]
fn hook_path_rules_are_relative_to_the_policy_file() {
    let r = Repo::new(&[]);
    r.install();
    let rule = b"[[paths]]\nname = \"models\"\nglobs = [\"models/**\"]\nrequire-format = [\"safetensors\"]\n";
    // A harmless pickle: only the path rule can block it.
    let pickle: &[u8] = b"\x80\x02}q\x00.";
    r.write("policy.toml", rule);
    r.write("models/m.pkl", pickle);
    r.git(&["add", "policy.toml", "models/m.pkl"]).ok();
    let out = r.commit("root policy");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("POL001"), "{}", text(&out));

    // The policy in pr/: models/m.pkl at the root is outside its folder,
    // pr/models/m.pkl is inside.
    r.git(&["rm", "-q", "--cached", "policy.toml"]).ok();
    std::fs::remove_file(r.dir.join("policy.toml")).expect("rm");
    r.write("pr/policy.toml", rule);
    let explicit = |policy: &Path| {
        isolated(BIN, &r.root)
            .current_dir(&r.dir)
            .args(["hook", "pre-commit", "--policy"])
            .arg(policy)
            .output()
            .expect("runs")
    };
    let out = explicit(Path::new("pr/policy.toml"));
    assert!(out.status.success(), "{}", text(&out));
    r.write("pr/models/m.pkl", pickle);
    r.git(&["add", "pr/models/m.pkl"]).ok();
    let out = explicit(Path::new("pr/policy.toml"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("pr/models/m.pkl"), "{}", text(&out));

    // A policy outside the repository applies its globs to repository paths.
    let outside = r.root.join("org-policy.toml");
    std::fs::write(&outside, rule).expect("write");
    let out = explicit(&outside);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("POL001"), "{}", text(&out));
}

/// `--cache DIR`: a hook shares the verdict cache. A second run judges the
/// same staged content from the cache (an LFS object by its pointer's
/// sha256, without reading it) and still blocks.
#[test]
fn hooks_share_the_verdict_cache() {
    let r = Repo::new(&[]);
    let cache = r.dir.join(".git/modelgate-verdicts");
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
    r.write("a.pkl", EVIL);
    r.git(&["add", "."]).ok();
    let cache_arg = cache.to_str().expect("utf-8");
    let run = || {
        let out = r.modelgate(&[
            "hook",
            "pre-commit",
            "--format",
            "json",
            "--cache",
            cache_arg,
        ]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let rules: Vec<String> = v["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| format!("{} {}", f["path"], f["decision"]["basis"][0]["rule"]))
            .collect();
        assert_eq!(
            rules,
            ["\"a.pkl\" \"PKL001\"", "\"big/model.pt\" \"PKL001\""],
            "{v}"
        );
        (v["scanned"].as_u64(), v["cached"].as_u64())
    };
    assert_eq!(run(), (Some(2), Some(0)));
    assert_eq!(
        run(),
        (Some(2), Some(2)),
        "the second run is served by the cache"
    );

    // A cache that cannot be opened is a failure to check, not a pass.
    std::fs::write(r.dir.join("not-a-dir"), b"x").expect("write");
    let out = r.modelgate(&["hook", "pre-commit", "--cache", "not-a-dir"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("verdict cache"), "{}", text(&out));
}
