//! Hashes a model on disk the way model-signing's serializers do, so that
//! the result can be compared name by name with a signed resource list.
//!
//! Names are POSIX paths relative to the model root (`.` when the model is a
//! single file). Files mode gives one SHA-256 per file; shards mode one per
//! `[k·s, min((k+1)·s, size))` slice, named `path:start:end`, with no entry
//! for an empty file. Lists are ordered component-wise like Python's
//! `PurePosixPath` (`a/b` before `a-b`), then by shard offsets.
//!
//! Symlinks: the reference tool refuses them unless `--allow_symlinks`, but
//! a Hugging Face snapshot is nothing but symlinks into `blobs/`, so they are
//! followed here, under a containment rule instead: a link inside the model
//! must resolve to a path inside the model root or, for a cache snapshot,
//! inside that repo's `blobs/` or the cache's shared blob store. Anything
//! else (a link to `/etc/passwd`, to another repo, a dangling link, a loop)
//! is an error, not a skipped file. Directory links are followed with a
//! visited set so a loop ends. FIFOs, sockets and devices are refused
//! without being opened (opening a FIFO would block).
//!
//! Everything is bounded: entries, depth, and the resources accepted from a
//! signature. Files are streamed in 1 MiB reads, in parallel across files.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::SignError;
use super::keys::hex;
use crate::hfcache;

/// Most files (or shards) in one model; HF repos have hundreds at most.
pub const MAX_ENTRIES: usize = 1_000_000;
/// Deepest directory nesting walked.
pub const MAX_DEPTH: usize = 64;
const READ_CHUNK: usize = 1 << 20;

/// The ignore paths model-signing always applies (`ignore_git_paths`).
pub const DEFAULT_IGNORES: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

/// How a model is cut into hashed resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Files,
    Shards(u64),
}

impl Method {
    /// The `algorithm` string model-signing records per resource.
    pub fn algorithm(self) -> String {
        match self {
            Method::Files => "sha256".into(),
            Method::Shards(size) => format!("sha256-sharded-{size}"),
        }
    }
}

/// Relative paths whose files (and, for directories, everything below)
/// are left out, matched component-wise like `Path.is_relative_to`.
#[derive(Debug, Clone, Default)]
pub struct IgnoreSet {
    patterns: Vec<Vec<String>>,
}

impl IgnoreSet {
    /// Adds a relative path. Absolute paths and `..` are refused: an ignore
    /// rule must not reach outside the model.
    pub fn add(&mut self, path: &str) -> Result<(), String> {
        let mut comps = Vec::new();
        for c in path.split('/') {
            match c {
                "" | "." => {}
                ".." => return Err(format!("ignore path {path:?} leaves the model")),
                c => comps.push(c.to_string()),
            }
        }
        if path.starts_with('/') {
            return Err(format!("ignore path {path:?} is absolute"));
        }
        if comps.is_empty() {
            return Err(format!("ignore path {path:?} would ignore the whole model"));
        }
        if !self.patterns.contains(&comps) {
            self.patterns.push(comps);
        }
        Ok(())
    }

    pub fn matches(&self, name: &[&str]) -> bool {
        self.patterns
            .iter()
            .any(|p| p.len() <= name.len() && p.iter().zip(name).all(|(a, b)| a == b))
    }

    /// The patterns as recorded in a signature.
    pub fn to_strings(&self) -> Vec<String> {
        self.patterns.iter().map(|p| p.join("/")).collect()
    }
}

/// A regular file of the model.
#[derive(Debug, Clone)]
pub struct Entry {
    /// POSIX path relative to the model root; `.` for a single-file model.
    pub name: String,
    /// Where to read it (symlinks resolved).
    pub path: PathBuf,
    pub size: u64,
}

/// The files of a model after ignore rules.
#[derive(Debug, Default)]
pub struct Tree {
    pub entries: Vec<Entry>,
    /// Files left out by an ignore rule (names), so callers can still scan
    /// them: an ignore rule says "not signed", not "safe".
    pub ignored: Vec<String>,
}

impl Tree {
    pub fn total_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// Walks `root` (a directory or one file).
pub fn collect(root: &Path, ignore: &IgnoreSet) -> Result<Tree, SignError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SignError::Io { path, source }
    };
    let meta = std::fs::metadata(root).map_err(io(root))?;
    let mut tree = Tree::default();
    if meta.is_file() {
        tree.entries.push(Entry {
            name: ".".into(),
            path: std::fs::canonicalize(root).map_err(io(root))?,
            size: meta.len(),
        });
        return Ok(tree);
    }
    if !meta.is_dir() {
        return Err(SignError::Tree(format!(
            "{} is neither a file nor a directory",
            root.display()
        )));
    }
    let canon_root = std::fs::canonicalize(root).map_err(io(root))?;
    let mut allowed = vec![canon_root.clone()];
    // The lexical path tells whether this is a cache snapshot; the canonical
    // one too when the user passed a link to it.
    for p in [root, canon_root.as_path()] {
        if let Some(loc) = hfcache::locate(p) {
            for d in loc.blob_dirs() {
                if let Ok(c) = std::fs::canonicalize(&d) {
                    allowed.push(c);
                }
            }
        }
    }
    let mut w = Walker {
        ignore,
        allowed,
        visited: HashSet::new(),
        tree,
    };
    w.visited.insert((meta.dev(), meta.ino()));
    w.dir(&canon_root, &mut Vec::new())?;
    w.tree.entries.sort_by(|a, b| cmp_names(&a.name, &b.name));
    w.tree.ignored.sort_by(|a, b| cmp_names(a, b));
    Ok(w.tree)
}

struct Walker<'a> {
    ignore: &'a IgnoreSet,
    allowed: Vec<PathBuf>,
    visited: HashSet<(u64, u64)>,
    tree: Tree,
}

impl Walker<'_> {
    fn dir(&mut self, dir: &Path, prefix: &mut Vec<String>) -> Result<(), SignError> {
        if prefix.len() >= MAX_DEPTH {
            return Err(SignError::Tree(format!(
                "{} nests deeper than {MAX_DEPTH} directories",
                dir.display()
            )));
        }
        let io = |source| SignError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .collect::<Result<_, _>>()
            .map_err(io)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let os_name = entry.file_name();
            let Some(name) = os_name.to_str() else {
                return Err(SignError::Tree(format!(
                    "{}: file name is not UTF-8 and cannot be named in a signature",
                    entry.path().display()
                )));
            };
            prefix.push(name.to_string());
            let result = self.entry(&entry.path(), prefix);
            prefix.pop();
            result?;
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, name: &mut Vec<String>) -> Result<(), SignError> {
        let joined = name.join("/");
        let refs: Vec<&str> = name.iter().map(String::as_str).collect();
        let io = |source| SignError::Io {
            path: path.to_path_buf(),
            source,
        };
        let lmeta = std::fs::symlink_metadata(path).map_err(io)?;
        let (target, meta) = if lmeta.file_type().is_symlink() {
            let target = std::fs::canonicalize(path).map_err(|e| {
                SignError::Tree(format!("{joined}: symlink cannot be resolved ({e})"))
            })?;
            if !self.allowed.iter().any(|a| target.starts_with(a)) {
                return Err(SignError::Tree(format!(
                    "{joined}: symlink points outside the model ({})",
                    target.display()
                )));
            }
            let meta = std::fs::metadata(&target).map_err(io)?;
            (target, meta)
        } else {
            (path.to_path_buf(), lmeta)
        };
        if meta.is_dir() {
            if self.ignore.matches(&refs) {
                return Ok(());
            }
            if !self.visited.insert((meta.dev(), meta.ino())) {
                return Err(SignError::Tree(format!(
                    "{joined}: directory reached twice (symlink loop)"
                )));
            }
            return self.dir(&target, name);
        }
        if !meta.is_file() {
            return Err(SignError::Tree(format!(
                "{joined}: not a regular file (FIFO, socket or device)"
            )));
        }
        if self.ignore.matches(&refs) {
            self.tree.ignored.push(joined);
            return Ok(());
        }
        if self.tree.entries.len() >= MAX_ENTRIES {
            return Err(SignError::Tree(format!(
                "more than {MAX_ENTRIES} files in the model"
            )));
        }
        self.tree.entries.push(Entry {
            name: joined,
            path: target,
            size: meta.len(),
        });
        Ok(())
    }
}

/// Component-wise order, as Python sorts `PurePosixPath`s.
pub fn cmp_names(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

/// One hashed resource: name and lowercase hex SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    pub name: String,
    pub digest: String,
}

/// Hashes the tree by `method`, in manifest order.
pub fn hash(tree: &Tree, method: Method) -> Result<Vec<Hashed>, SignError> {
    let jobs: Vec<(String, &Path, u64, u64, bool)> = match method {
        Method::Files => tree
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.path.as_path(), 0, e.size, true))
            .collect(),
        Method::Shards(size) => {
            let mut jobs = Vec::new();
            for e in &tree.entries {
                let mut start = 0u64;
                while start < e.size {
                    let end = start.saturating_add(size).min(e.size);
                    if jobs.len() >= MAX_ENTRIES {
                        return Err(SignError::Tree(format!(
                            "more than {MAX_ENTRIES} shards in the model"
                        )));
                    }
                    jobs.push((
                        format!("{}:{start}:{end}", e.name),
                        e.path.as_path(),
                        start,
                        end,
                        end == e.size,
                    ));
                    start = end;
                }
            }
            jobs
        }
    };
    jobs.par_iter()
        .map(|(name, path, start, end, last)| {
            Ok(Hashed {
                name: name.clone(),
                digest: hash_range(path, *start, *end, *last)?,
            })
        })
        .collect()
}

/// SHA-256 of a whole file of the given size.
pub fn hash_file(path: &Path, size: u64) -> Result<String, SignError> {
    hash_range(path, 0, size, true)
}

/// SHA-256 of bytes `[start, end)` of a file, streamed. Fails if the file is
/// shorter than `end`, or, with `at_eof`, longer: it changed while being
/// hashed, and a digest of some other length would describe no real file.
fn hash_range(path: &Path, start: u64, end: u64, at_eof: bool) -> Result<String, SignError> {
    let io = |source| SignError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = open_regular(path).map_err(io)?;
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut left = end.saturating_sub(start);
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(READ_CHUNK).min(READ_CHUNK);
        let Some(slot) = buf.get_mut(..want) else {
            break;
        };
        let n = file.read(slot).map_err(io)?;
        if n == 0 {
            return Err(SignError::Tree(format!(
                "{} shrank while being hashed",
                path.display()
            )));
        }
        h.update(slot.get(..n).unwrap_or_default());
        left = left.saturating_sub(n as u64);
    }
    if at_eof && file.read(&mut [0u8; 1]).map_err(io)? != 0 {
        return Err(SignError::Tree(format!(
            "{} grew while being hashed",
            path.display()
        )));
    }
    Ok(hex(&h.finalize()))
}

/// Opens without blocking on a FIFO swapped in after the walk, then checks
/// the opened object really is a regular file.
fn open_regular(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_component_wise() {
        let mut v = vec!["a-b", "a/b", "a", "b/c/d", "a/b/c"];
        v.sort_by(|a, b| cmp_names(a, b));
        assert_eq!(v, ["a", "a/b", "a/b/c", "a-b", "b/c/d"]);
    }

    #[test]
    fn ignore_rules() {
        let mut ig = IgnoreSet::default();
        ig.add(".git").unwrap();
        ig.add("docs/README.md").unwrap();
        assert!(ig.matches(&[".git"]));
        assert!(ig.matches(&[".git", "objects", "x"]));
        assert!(!ig.matches(&[".gitx"]));
        assert!(ig.matches(&["docs", "README.md"]));
        assert!(!ig.matches(&["docs"]));
        assert!(ig.add("../x").is_err());
        assert!(ig.add("/etc").is_err());
        assert!(ig.add(".").is_err());
        assert_eq!(ig.to_strings(), [".git", "docs/README.md"]);
    }

    #[test]
    fn shards_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("m");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.bin"), vec![7u8; 10_000]).unwrap();
        std::fs::write(root.join("empty"), b"").unwrap();
        std::os::unix::fs::symlink("sub/a.bin", root.join("link")).unwrap();
        let tree = collect(&root, &IgnoreSet::default()).unwrap();
        let names: Vec<_> = tree.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["empty", "link", "sub/a.bin"]);
        let shards = hash(&tree, Method::Shards(4096)).unwrap();
        let names: Vec<_> = shards.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "link:0:4096",
                "link:4096:8192",
                "link:8192:10000",
                "sub/a.bin:0:4096",
                "sub/a.bin:4096:8192",
                "sub/a.bin:8192:10000"
            ]
        );
        let files = hash(&tree, Method::Files).unwrap();
        assert_eq!(files[0].digest, hex(&Sha256::digest(b"")));

        std::os::unix::fs::symlink("/etc/hostname", root.join("escape")).unwrap();
        let err = collect(&root, &IgnoreSet::default()).unwrap_err();
        assert!(err.to_string().contains("outside the model"), "{err}");
        std::fs::remove_file(root.join("escape")).unwrap();
        std::os::unix::fs::symlink("..", root.join("sub/up")).unwrap();
        let err = collect(&root, &IgnoreSet::default()).unwrap_err();
        assert!(err.to_string().contains("loop"), "{err}");
    }

    #[test]
    fn refuses_fifos() {
        let dir = tempfile::tempdir().unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(dir.path().join("fifo"))
            .status()
            .unwrap();
        assert!(made.success());
        let err = collect(dir.path(), &IgnoreSet::default()).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
    }
}
