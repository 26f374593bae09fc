//! Durable file-system primitives for the quarantine store.
//!
//! Every write that matters goes through the same three steps: write a
//! hidden temporary file in the destination directory, `fsync` it, `rename`
//! it over the destination, then `fsync` the directory so that the rename
//! itself survives a power cut. A reader (or a process killed half-way) sees
//! either the old file or the new one, never a torn one.
//!
//! Temporary names start with `.modelgate-` so that the watcher ignores its
//! own intermediate files, and they are created with `O_EXCL` so that two
//! writers never share one.

use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of every temporary file modelgate creates next to a real one.
pub const TEMP_PREFIX: &str = ".modelgate-";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Flushes a directory's entries (new names, renames) to stable storage.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent_of(path: &Path) -> io::Result<&Path> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => Ok(p),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no parent directory", path.display()),
        )),
    }
}

/// A fresh temporary path next to `dest`, unique within this process and
/// across processes (the pid is part of the name).
pub fn temp_path_for(dest: &Path, purpose: &str) -> io::Result<PathBuf> {
    let dir = parent_of(dest)?;
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(dir.join(format!(
        "{TEMP_PREFIX}{purpose}.{}.{n}.tmp",
        std::process::id()
    )))
}

fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// Atomically replaces (or creates) `dest` with `data`: temp file, fsync,
/// rename, fsync of the directory. `mode` is applied to the new file.
pub fn write_atomic(dest: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let tmp = temp_path_for(dest, "write")?;
    let result = (|| {
        let mut f = create_new(&tmp, mode)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, dest)?;
        fsync_dir(parent_of(dest)?)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Copies `src` into a new temporary file next to `dest`, fsyncs it and
/// renames it to `dest`. Returns the SHA-256 of the bytes copied, so that the
/// caller can check it copied what it meant to (the source may change).
pub fn copy_durable(src: &Path, dest: &Path, mode: u32) -> io::Result<String> {
    let tmp = temp_path_for(dest, "copy")?;
    let result = (|| {
        let mut input = File::open(src)?;
        let mut out = create_new(&tmp, mode)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            let chunk = buf.get(..n).unwrap_or_default();
            hasher.update(chunk);
            out.write_all(chunk)?;
        }
        out.sync_all()?;
        drop(out);
        fs::rename(&tmp, dest)?;
        fsync_dir(parent_of(dest)?)?;
        Ok(hex(&hasher.finalize()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub use crate::digest::{hex, sha256_file};

/// Reads at most `max` bytes from the start of a file.
pub fn read_prefix(path: &Path, max: usize) -> io::Result<Vec<u8>> {
    let f = File::open(path)?;
    let mut buf = Vec::with_capacity(max.min(64 * 1024));
    f.take(max as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"old").unwrap();
        write_atomic(&p, b"new", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn copy_reports_hash_of_copied_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::write(&a, b"abc").unwrap();
        let h = copy_durable(&a, &b, 0o600).unwrap();
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256_file(&b).unwrap(), h);
    }
}
