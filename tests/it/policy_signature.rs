//! `require-signature` end to end through `modelgate scan` (and the cache
//! daemon): the reference-signed fixture model passes with the right key;
//! a changed file, a missing signature and a foreign key are each rule
//! POL003 naming the file; a bad key path is a positioned config error.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

use crate::common;
use common::{copy_dir, sign_fixtures};

/// A repository with the fixture model signed by the P-256 key as
/// `model/model.sig`, both public keys under `keys/`, and a policy
/// requiring `key` on `model/**`.
fn repo(key: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&sign_fixtures().join("model"), &dir.path().join("model"));
    std::fs::copy(
        sign_fixtures().join("model.p256.sig"),
        dir.path().join("model/model.sig"),
    )
    .unwrap();
    copy_dir(&sign_fixtures().join("keys"), &dir.path().join("keys"));
    std::fs::write(
        dir.path().join("policy.toml"),
        format!(
            "[[paths]]\nname = \"signed-models\"\nglobs = [\"model/**\"]\n\
             require-signature = {{ keys = [\"keys/{key}\"] }}\n"
        ),
    )
    .unwrap();
    dir
}

fn scan(dir: &Path) -> Output {
    Command::cargo_bin("modelgate")
        .unwrap()
        .current_dir(dir)
        .args(["scan", "--policy", "policy.toml", "model"])
        .output()
        .unwrap()
}

/// Flips the last tensor byte: the header stays valid, only the content
/// moves.
fn tamper(weights: &Path) {
    let mut bytes = std::fs::read(weights).unwrap();
    *bytes.last_mut().unwrap() ^= 0x01;
    std::fs::write(weights, bytes).unwrap();
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn signed_model_passes_with_the_right_key() {
    let dir = repo("p256.pub");
    let out = scan(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(!stdout(&out).contains("POL003"), "{}", stdout(&out));
}

#[test]
fn policy_check_shows_the_requirement() {
    let dir = repo("p256.pub");
    let out = Command::cargo_bin("modelgate")
        .unwrap()
        .current_dir(dir.path())
        .args(["policy", "check", "policy.toml"])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("path rule signed-models [model/**] under .: signed by ")
            && text.contains("keys/p256.pub"),
        "{text}"
    );
}

#[test]
fn changed_file_is_pol003_naming_it() {
    let dir = repo("p256.pub");
    tamper(&dir.path().join("model/model.safetensors"));
    let out = scan(dir.path());
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("POL003")
            && text.contains("model/model.safetensors changed since it was signed (signed sha256"),
        "{text}"
    );
}

#[test]
fn missing_signature_is_pol003() {
    let dir = repo("p256.pub");
    std::fs::remove_file(dir.path().join("model/model.sig")).unwrap();
    let out = scan(dir.path());
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("POL003")
            && text
                .contains("no model.sig or model.safetensors.sig covers model/model.safetensors"),
        "{text}"
    );
}

#[test]
fn foreign_key_is_pol003() {
    let dir = repo("other.pub");
    let out = scan(dir.path());
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("POL003") && text.contains("is not signed by a trusted key"),
        "{text}"
    );
}

#[test]
fn unusable_key_path_is_a_positioned_config_error() {
    let dir = repo("nope.pub");
    let out = scan(dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("trusted key `keys/nope.pub` cannot be used")
            && err.contains("policy.toml:4:"),
        "{err}"
    );
}

/// The git hooks enforce `require-signature` on what is staged or pushed:
/// the signature must be in the same index or commit as the file.
mod hooks {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> Output {
        std::process::Command::new("git")
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir)
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .env_remove("GIT_DIR")
            .env_remove("GIT_INDEX_FILE")
            .env_remove("GIT_WORK_TREE")
            .args(args)
            .output()
            .unwrap()
    }

    fn all(out: &Output) -> String {
        format!("{}{}", stdout(out), String::from_utf8_lossy(&out.stderr))
    }

    fn ok(out: Output) -> Output {
        assert!(out.status.success(), "{}", all(&out));
        out
    }

    /// [`repo`] as a git repository with the hooks installed and the
    /// keys and policy committed; the model is left unstaged.
    fn git_repo(key: &str) -> tempfile::TempDir {
        let dir = repo(key);
        let d = dir.path();
        ok(git(d, &["init", "-q", "-b", "main"]));
        ok(git(d, &["add", "keys", "policy.toml"]));
        ok(git(d, &["commit", "-q", "-m", "policy"]));
        let install = Command::cargo_bin("modelgate")
            .unwrap()
            .current_dir(d)
            .env("HOME", d)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .arg("install")
            .output()
            .unwrap();
        ok(install);
        dir
    }

    #[test]
    fn signed_model_commits() {
        let dir = git_repo("p256.pub");
        ok(git(dir.path(), &["add", "model"]));
        ok(git(dir.path(), &["commit", "-q", "-m", "signed model"]));
    }

    #[test]
    fn staged_change_to_signed_weights_is_blocked() {
        let dir = git_repo("p256.pub");
        tamper(&dir.path().join("model/model.safetensors"));
        ok(git(dir.path(), &["add", "model"]));
        let out = git(dir.path(), &["commit", "-q", "-m", "tampered"]);
        let text = all(&out);
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains("POL003")
                && text.contains("model/model.safetensors changed since it was signed"),
            "{text}"
        );
    }

    #[test]
    fn a_signature_that_is_not_staged_does_not_count() {
        let dir = git_repo("p256.pub");
        ok(git(dir.path(), &["add", "model"]));
        ok(git(
            dir.path(),
            &["rm", "-q", "--cached", "model/model.sig"],
        ));
        let out = git(dir.path(), &["commit", "-q", "-m", "unsigned"]);
        let text = all(&out);
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains("POL003")
                && text.contains(
                    "no model.sig or model.safetensors.sig covers model/model.safetensors"
                ),
            "{text}"
        );
    }

    #[test]
    fn re_signing_with_an_untrusted_key_is_blocked() {
        let dir = git_repo("p256.pub");
        ok(git(dir.path(), &["add", "model"]));
        ok(git(dir.path(), &["commit", "-q", "-m", "signed model"]));
        let resign = Command::cargo_bin("modelgate")
            .unwrap()
            .current_dir(dir.path())
            .args([
                "sign",
                "model",
                "--key",
                "keys/other.pem",
                "--output",
                "model/model.sig",
            ])
            .output()
            .unwrap();
        ok(resign);
        ok(git(dir.path(), &["add", "model/model.sig"]));
        let out = git(dir.path(), &["commit", "-q", "-m", "re-signed"]);
        let text = all(&out);
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains("POL003")
                && text.contains("model/model.sig")
                && text.contains("is not signed by a trusted key"),
            "{text}"
        );
    }

    #[test]
    fn pre_push_checks_each_commit_against_its_own_tree() {
        let dir = git_repo("p256.pub");
        let d = dir.path();
        ok(git(d, &["init", "-q", "--bare", "origin.git"]));
        ok(git(d, &["remote", "add", "origin", "origin.git"]));
        ok(git(d, &["push", "-q", "origin", "main"]));
        ok(git(d, &["add", "model"]));
        ok(git(d, &["commit", "-q", "-m", "signed model"]));
        tamper(&d.join("model/model.safetensors"));
        ok(git(d, &["add", "model"]));
        ok(git(d, &["commit", "-q", "--no-verify", "-m", "tampered"]));
        let out = git(d, &["push", "origin", "main"]);
        let text = all(&out);
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains("POL003") && text.contains("changed since it was signed"),
            "{text}"
        );
    }
}
