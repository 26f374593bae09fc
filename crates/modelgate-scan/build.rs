//! Computes `ENGINE_DIGEST`: a digest of every file under `src` (the
//! rule registry, the parsers and the data tables), so that caches of
//! verdicts are keyed by the exact detection logic that produced them.
//! FNV-1a (128 bit) is enough: the input is our own source, not hostile, and
//! the build needs no dependency.

use std::fs;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=src");
    let mut all = Vec::new();
    files(Path::new("src"), &mut all);
    all.sort();
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    let prime: u128 = 0x0000000001000000000000000000013B;
    for p in &all {
        let name = p.to_string_lossy().replace('\\', "/");
        let body = fs::read(p).unwrap_or_default();
        for b in name
            .as_bytes()
            .iter()
            .chain(&[0u8])
            .chain(&(body.len() as u64).to_le_bytes())
            .chain(&body)
        {
            h ^= u128::from(*b);
            h = h.wrapping_mul(prime);
        }
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let code = format!(
        "/// Digest of the core's sources, rules and data tables at build time: a\n\
         /// cached verdict is valid only under the digest it was made with.\n\
         pub const ENGINE_DIGEST: &str = \"{h:032x}\";\n"
    );
    if let Err(e) = fs::write(out.join("engine_digest.rs"), code) {
        panic!("cannot write engine_digest.rs: {e}");
    }
}
