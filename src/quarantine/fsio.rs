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

use rustix::fs::{
    AtFlags, CWD, Mode, OFlags, linkat, openat, renameat, statat, symlinkat, unlinkat,
};
use sha2::{Digest, Sha256};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
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

/// A directory reached from `/` without following any symlink, and one
/// name in it: every operation on a path the daemon acts on (a blob to
/// quarantine, a tombstone, a restore target) goes through this, so that a
/// symlinked folder swapped in anywhere along the path makes the operation
/// fail instead of acting on a file outside the watched root.
pub struct AtPath {
    dir: OwnedFd,
    name: OsString,
    path: PathBuf,
}

fn nofollow_dir(dir: impl AsFd, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(openat(
        dir,
        name,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

impl AtPath {
    /// Opens the parent of the absolute `path` component by component with
    /// `O_NOFOLLOW`. Fails (ELOOP / ENOTDIR) if any folder on the way is a
    /// symlink; with `create`, missing folders are created (never through a
    /// symlink either).
    pub fn open(path: &Path, create: bool) -> io::Result<AtPath> {
        let invalid = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not an absolute path to a file", path.display()),
            )
        };
        if !path.is_absolute() {
            return Err(invalid());
        }
        let name = path.file_name().ok_or_else(invalid)?.to_os_string();
        let parent = parent_of(path)?;
        let mut dir = nofollow_dir(CWD, OsStr::new("/"))?;
        for c in parent.components() {
            match c {
                Component::RootDir => {}
                Component::Normal(n) => {
                    dir = match nofollow_dir(&dir, n) {
                        Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                            match rustix::fs::mkdirat(&dir, n, Mode::from_raw_mode(0o755)) {
                                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                                Err(e) => return Err(e.into()),
                            }
                            nofollow_dir(&dir, n)?
                        }
                        other => other?,
                    };
                }
                _ => return Err(invalid()),
            }
        }
        Ok(AtPath {
            dir,
            name,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `lstat` of the name: `None` when nothing is there.
    pub fn lstat(&self) -> io::Result<Option<rustix::fs::Stat>> {
        match statat(&self.dir, &self.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(s) => Ok(Some(s)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the name for reading, never through a symlink and never
    /// blocking on a FIFO.
    pub fn open_read(&self) -> io::Result<File> {
        let fd = openat(
            &self.dir,
            &self.name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(File::from(fd))
    }

    /// Hard-links the name to `dest` (not following a symlink at the name).
    pub fn link_to(&self, dest: &Path) -> io::Result<()> {
        Ok(linkat(&self.dir, &self.name, CWD, dest, AtFlags::empty())?)
    }

    /// Renames `src` onto the name.
    pub fn rename_from(&self, src: &Path) -> io::Result<()> {
        Ok(renameat(CWD, src, &self.dir, &self.name)?)
    }

    pub fn symlink(&self, target: &Path) -> io::Result<()> {
        Ok(symlinkat(target, &self.dir, &self.name)?)
    }

    pub fn fsync_dir(&self) -> io::Result<()> {
        Ok(rustix::fs::fsync(&self.dir)?)
    }

    fn temp(&self, purpose: &str, mode: u32) -> io::Result<(OsString, File)> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = OsString::from(format!(
            "{TEMP_PREFIX}{purpose}.{}.{n}.tmp",
            std::process::id()
        ));
        let fd = openat(
            &self.dir,
            &name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        Ok((name, File::from(fd)))
    }

    /// Writes a temporary file beside the name with `fill`, fsyncs it and
    /// renames it over the name, then fsyncs the folder.
    fn replace_with<T>(
        &self,
        purpose: &str,
        mode: u32,
        fill: impl FnOnce(&mut File) -> io::Result<T>,
        check: impl FnOnce(&T) -> io::Result<()>,
    ) -> io::Result<T> {
        let (tmp, mut f) = self.temp(purpose, mode)?;
        let result = (|| {
            let v = fill(&mut f)?;
            f.sync_all()?;
            check(&v)?;
            // The mode given to open is masked by the umask.
            rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))?;
            renameat(&self.dir, &tmp, &self.dir, &self.name)?;
            self.fsync_dir()?;
            Ok(v)
        })();
        if result.is_err() {
            let _ = unlinkat(&self.dir, &tmp, AtFlags::empty());
        }
        result
    }

    /// [`write_atomic`] at this name.
    pub fn write_atomic(&self, data: &[u8], mode: u32) -> io::Result<()> {
        self.replace_with("write", mode, |f| f.write_all(data), |_| Ok(()))
    }

    /// Copies `src` to this name through a temporary file; the rename only
    /// happens if the copied bytes hash to `expect`.
    pub fn copy_from(&self, src: &mut File, mode: u32, expect: &str) -> io::Result<()> {
        self.replace_with(
            "restore",
            mode,
            |out| copy_hashing(src, out),
            |got| {
                if got == expect {
                    Ok(())
                } else {
                    Err(io::Error::other(format!(
                        "copied bytes hash to {got}, expected {expect}"
                    )))
                }
            },
        )
        .map(|_| ())
    }
}

/// Device and inode of a `stat` result, as `std`'s metadata gives them.
// The field types differ between platforms (dev_t is i32 on macOS).
#[allow(clippy::unnecessary_cast)]
pub fn identity(st: &rustix::fs::Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

/// Copies `input` to `out` and returns the SHA-256 of what was copied.
pub fn copy_hashing(input: &mut File, out: &mut File) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        out.write_all(chunk)?;
    }
    Ok(hex(&hasher.finalize()))
}

/// Copies the open file `input` into a new file at `dest` (in the store),
/// durably. Returns the SHA-256 of the bytes copied.
pub fn copy_file_durable(input: &mut File, dest: &Path, mode: u32) -> io::Result<String> {
    let tmp = temp_path_for(dest, "copy")?;
    let result = (|| {
        let mut out = create_new(&tmp, mode)?;
        let sha = copy_hashing(input, &mut out)?;
        out.sync_all()?;
        drop(out);
        fs::rename(&tmp, dest)?;
        fsync_dir(parent_of(dest)?)?;
        Ok(sha)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Whether `name` is one of our temporaries (`.modelgate-<purpose>.<pid>.<n>.tmp`)
/// left by a process that is no longer running: a kill between creating and
/// renaming it leaves it behind.
pub fn is_stale_temp(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    let Some(rest) = name
        .strip_prefix(TEMP_PREFIX)
        .and_then(|r| r.strip_suffix(".tmp"))
    else {
        return false;
    };
    let mut parts = rest.split('.');
    let (Some(purpose), Some(pid), Some(n), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(pid) = pid.parse::<i32>() else {
        return false;
    };
    if purpose.is_empty()
        || !purpose.bytes().all(|b| b.is_ascii_lowercase())
        || n.parse::<u64>().is_err()
    {
        return false;
    }
    // Linux only: without /proc the owner cannot be checked, and a temporary
    // that may still be written is never removed.
    let proc = Path::new("/proc");
    pid > 0 && proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

pub use crate::digest::{hex, sha256_file};

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
        let h = copy_file_durable(&mut File::open(&a).unwrap(), &b, 0o600).unwrap();
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256_file(&b).unwrap(), h);
    }
}
