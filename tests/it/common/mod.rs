//! Helpers shared by the signature tests (`sign.rs`, `policy_signature.rs`).

use std::path::{Path, PathBuf};

/// `tests/fixtures/sign`: the reference-signed model, its signatures and
/// the test keys.
pub fn sign_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sign")
}

/// Copies a directory tree (the fixture model into a writable place).
pub fn copy_dir(from: &Path, to: &Path) {
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
