//! `require-signature` end to end through `modelgate scan` (and the cache
//! daemon): the reference-signed fixture model passes with the right key;
//! a changed file, a missing signature and a foreign key are each rule
//! POL003 naming the file; a bad key path is a positioned config error.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sign")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A repository with the fixture model signed by the P-256 key as
/// `model/model.sig`, both public keys under `keys/`, and a policy
/// requiring `key` on `model/**`.
fn repo(key: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("model"), &dir.path().join("model"));
    std::fs::copy(
        fixtures().join("model.p256.sig"),
        dir.path().join("model/model.sig"),
    )
    .unwrap();
    copy_dir(&fixtures().join("keys"), &dir.path().join("keys"));
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
fn changed_file_is_pol003_naming_it() {
    let dir = repo("p256.pub");
    let weights = dir.path().join("model/model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    // The last tensor byte: the header stays valid, only the content moves.
    *bytes.last_mut().unwrap() ^= 0x01;
    std::fs::write(&weights, bytes).unwrap();
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
