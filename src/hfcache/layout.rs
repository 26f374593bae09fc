//! Which paths of a hub cache (or a `--local-dir` download folder) hold
//! content, and how a cache's symlinks tie blobs to repos.
//!
//! Layout (see integration.md §1.2):
//!
//! ```text
//! <cache>/blobs/<xx>/<xet_hash>             ≥1.32 shared store (regular files)
//! <cache>/blobs/<xx>/<xet_hash>.{refs,lock} store bookkeeping
//! <cache>/.locks/<repo>/<etag>.lock         download locks
//! <cache>/<type>s--<org>--<name>/blobs/<etag>     content, or a symlink into the store
//! <cache>/<type>s--<org>--<name>/snapshots/<commit>/<path>  relative symlink to ../../blobs/<etag>
//!                                                           (a plain file without symlink support)
//! ```
//!
//! Only finished content matters: `*.incomplete` files are being written
//! (by two handles, out of order, with Xet) and are never scanned; the
//! signal that a download is complete is the rename into `blobs/`.
//!
//! A `--local-dir` root is a folder people download into directly
//! (`hf_hub_download(local_dir=...)`): every file is content except the
//! `.cache/huggingface/` bookkeeping.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// What kind of directory a watched root is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    /// A huggingface_hub cache (`HF_HUB_CACHE` or a `cache_dir=`).
    HubCache,
    /// A `local_dir=` download target.
    LocalDir,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The resolved path (no symlinks): what is watched and what every
    /// path acted on must stay inside.
    pub path: PathBuf,
    pub kind: RootKind,
    /// The path as given, which may be a symlink re-pointed later or a
    /// folder deleted and created again.
    pub configured: PathBuf,
}

impl Root {
    /// A root whose configured and resolved paths are the same.
    pub fn new(path: PathBuf, kind: RootKind) -> Root {
        Root {
            configured: path.clone(),
            path,
            kind,
        }
    }
}

fn name_bytes(c: Component<'_>) -> &[u8] {
    match c {
        Component::Normal(s) => s.as_bytes(),
        _ => b"",
    }
}

/// Names huggingface_hub gives bookkeeping and in-flight temporaries in a
/// hub cache's `blobs/` folders. Only there: snapshot entries and files in
/// a `--local-dir` root are named by the repo author and always scanned.
fn is_temporary_name(name: &[u8]) -> bool {
    name.is_empty()
        || name.ends_with(b".incomplete")
        || name.ends_with(b".lock")
        || name.ends_with(b".tmp")
        || name.starts_with(b"tmp_")
        // hidden: `.<etag>.<8hex>.shared` relinks, our own temporaries,
        // `.huggingface-shared-blobs`; `.gitattributes` is content but is
        // never a model.
        || name.starts_with(b".")
}

/// Where a path sits in a root, as far as the watcher cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Nothing to scan here (bookkeeping, temporaries, locks).
    Ignore,
    /// A directory that may contain content (rescan it when it appears).
    Container,
    /// A per-repo blob (`<repo>/blobs/<etag>`).
    RepoBlob,
    /// A shared-store file (`blobs/<xx>/<hash>`).
    StoreBlob,
    /// A snapshot entry (`<repo>/snapshots/<commit>/<path>`): a symlink, or
    /// the content itself without symlink support.
    Snapshot,
    /// A file in a local-dir root.
    LocalFile,
}

impl Place {
    /// Whether the path's own name is the name a loader will see.
    pub fn is_named(self) -> bool {
        matches!(self, Place::Snapshot | Place::LocalFile)
    }

    /// Whether a file here is content the daemon scans and may act on.
    pub fn is_content(self) -> bool {
        !matches!(self, Place::Ignore | Place::Container)
    }
}

/// Classifies `path` (inside `root`) by its position alone; the caller
/// still decides by `lstat` whether it is a file, a link or a directory.
/// Names are compared as bytes: a name that is not UTF-8 is classified like
/// any other.
pub fn classify(root: &Root, path: &Path) -> Place {
    let Ok(rel) = path.strip_prefix(&root.path) else {
        return Place::Ignore;
    };
    let parts: Vec<&[u8]> = rel.components().map(name_bytes).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Place::Ignore;
    }
    let Some(last) = parts.last().copied() else {
        return Place::Container;
    };
    let first = parts.first().copied().unwrap_or_default();
    match root.kind {
        RootKind::LocalDir => {
            // huggingface_hub's own bookkeeping (`.cache/huggingface/`) and
            // a git checkout's object store; everything else is content,
            // whatever its name.
            let bookkeeping = (first == b".cache"
                && parts.get(1).is_some_and(|p| *p == b"huggingface"))
                || first == b".git";
            if bookkeeping {
                Place::Ignore
            } else {
                Place::LocalFile
            }
        }
        RootKind::HubCache => {
            if first == b"blobs" {
                return match parts.len() {
                    1 | 2 => Place::Container,
                    3 if !is_temporary_name(last) && !last.ends_with(b".refs") => Place::StoreBlob,
                    _ => Place::Ignore,
                };
            }
            if !first.windows(2).any(|w| w == b"--") || first.starts_with(b".") {
                return Place::Ignore;
            }
            match parts.get(1).copied() {
                None => Place::Container,
                Some(b"blobs") => match parts.len() {
                    2 => Place::Container,
                    3 if !is_temporary_name(last) => Place::RepoBlob,
                    _ => Place::Ignore,
                },
                // Snapshot entry names are the repo author's (huggingface_hub
                // keeps its temporaries in `blobs/`): no name is skipped.
                Some(b"snapshots") => {
                    if parts.len() <= 3 {
                        Place::Container
                    } else {
                        Place::Snapshot
                    }
                }
                _ => Place::Ignore,
            }
        }
    }
}

/// Whether `real` (a resolved path, no symlinks left) is content inside
/// `root`: where a symlink may lead the daemon. A link to a file outside
/// the root, or to the root's bookkeeping, is not followed.
pub fn is_content_inside(root: &Root, real: &Path) -> bool {
    real.starts_with(&root.path) && classify(root, real).is_content()
}

/// The repo folder (`<root>/<repo>`) a hub-cache path belongs to.
pub fn repo_of(root: &Root, path: &Path) -> Option<PathBuf> {
    if root.kind != RootKind::HubCache {
        return None;
    }
    let first = path.strip_prefix(&root.path).ok()?.components().next()?;
    let first = name_bytes(first);
    (first.windows(2).any(|w| w == b"--") && !first.starts_with(b"."))
        .then(|| root.path.join(OsStr::from_bytes(first)))
}

/// Which root a path belongs to (the deepest one, if roots nest).
pub fn root_of<'r>(roots: &'r [Root], path: &Path) -> Option<(usize, &'r Root)> {
    roots
        .iter()
        .enumerate()
        .filter(|(_, r)| path.starts_with(&r.path))
        .max_by_key(|(_, r)| r.path.components().count())
}

/// Longest walk into a root; deeper trees are not huggingface_hub's.
const MAX_DEPTH: usize = 32;
/// Most entries one walk returns; protects memory against a hostile tree.
const MAX_ENTRIES: usize = 1_000_000;

/// Lists the content paths under `dir` (inside `root`): snapshot entries
/// first, so that files are first seen under the name a loader uses, then
/// per-repo blobs and shared-store files. Symlinked per-repo blobs are left
/// out: their target is listed on its own. A symlinked folder is never
/// entered (the live watch does not follow one either): what it leads to is
/// outside the root. Every other file in a `blobs/` folder (temporaries,
/// locks, leftovers) is handed to `leftover`, which may clean it up: what is
/// ours to remove is the caller's knowledge, not the cache's.
pub fn enumerate(root: &Root, dir: &Path, leftover: &mut dyn FnMut(&Path)) -> Vec<PathBuf> {
    let mut named = Vec::new();
    let mut unnamed = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        let in_blobs = root.kind == RootKind::HubCache
            && d.strip_prefix(&root.path).is_ok_and(|rel| {
                rel.components()
                    .any(|c| c.as_os_str() == OsStr::new("blobs"))
            });
        for entry in entries.flatten() {
            if named.len() + unnamed.len() >= MAX_ENTRIES {
                tracing::warn!(dir = %dir.display(), "more than {MAX_ENTRIES} entries; the rest is not swept");
                return named.into_iter().chain(unnamed).collect();
            }
            let path = entry.path();
            let place = classify(root, &path);
            let Ok(ft) = entry.file_type() else { continue };
            match place {
                Place::Ignore => {
                    if in_blobs && ft.is_file() {
                        leftover(&path);
                    }
                }
                _ if ft.is_dir() => {
                    if depth < MAX_DEPTH {
                        stack.push((path, depth + 1));
                    }
                }
                Place::Container => {
                    if ft.is_symlink() && fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                        tracing::warn!(path = %path.display(), "symlinked folder in the watched root is not followed");
                    }
                }
                Place::Snapshot | Place::LocalFile => {
                    if ft.is_symlink() && fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                        tracing::warn!(path = %path.display(), "symlinked folder in the watched root is not followed");
                    } else {
                        named.push(path)
                    }
                }
                Place::RepoBlob if ft.is_symlink() => {}
                Place::RepoBlob | Place::StoreBlob => {
                    if ft.is_file() {
                        unnamed.push(path)
                    }
                }
            }
        }
    }
    named.into_iter().chain(unnamed).collect()
}

/// The repo folders whose links may lead to `real`: its own repo for a
/// per-repo blob; for a shared-store file, the repos its `<hash>.refs`
/// manifest names.
pub fn repos_for(root: &Root, real: &Path) -> Vec<PathBuf> {
    if root.kind != RootKind::HubCache {
        return Vec::new();
    }
    let Ok(rel) = real.strip_prefix(&root.path) else {
        return Vec::new();
    };
    let parts: Vec<&[u8]> = rel.components().map(name_bytes).collect();
    let mut repos: Vec<PathBuf> = Vec::new();
    match parts.as_slice() {
        [_, b"blobs", _] => repos.extend(repo_of(root, real)),
        [b"blobs", _, hash] => {
            let mut refs_name = hash.to_vec();
            refs_name.extend_from_slice(b".refs");
            let refs = real.with_file_name(OsStr::from_bytes(&refs_name));
            if let Ok(text) = fs::read(&refs) {
                for line in text.split(|b| *b == b'\n').take(10_000) {
                    let line = line.trim_ascii();
                    if let Some(repo) = Path::new(OsStr::from_bytes(line)).components().next()
                        && let Some(repo) = repo_of(root, &root.path.join(repo))
                        && !repos.contains(&repo)
                    {
                        repos.push(repo);
                    }
                }
            }
        }
        // A snapshot entry that is the content itself (no symlinks).
        _ => {}
    }
    repos
}

/// A symlink in a repo folder and the content it resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheLink {
    /// The file the link resolves to (no symlinks left), inside the root.
    pub real: PathBuf,
    /// The link itself.
    pub path: PathBuf,
    /// The link's target as written (usually relative).
    pub target: PathBuf,
}

/// Every symlink under one repo's `blobs/` and `snapshots/`, with the file
/// it resolves to (only links that resolve inside the root). One walk per
/// repo: the daemon keeps the result as its link index and updates it from
/// events, instead of walking the repo again for every blob.
pub fn repo_links(root: &Root, repo: &Path) -> Vec<CacheLink> {
    let mut links = Vec::new();
    let mut stack = vec![
        (repo.join("blobs"), 0usize),
        (repo.join("snapshots"), 0usize),
    ];
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten().take(MAX_ENTRIES) {
            let Ok(ft) = entry.file_type() else { continue };
            let path = entry.path();
            if ft.is_dir() && depth < MAX_DEPTH {
                stack.push((path, depth + 1));
            } else if ft.is_symlink()
                && let Ok(real) = fs::canonicalize(&path)
                && is_content_inside(root, &real)
                && let Ok(target) = fs::read_link(&path)
            {
                links.push(CacheLink { real, path, target });
            }
        }
    }
    links
}

/// Whether `path` lies in a `snapshots/` folder: of the links to a blob,
/// the one whose name the loader sees (so that name-dependent rules, a
/// pickle named `.safetensors`, see that name too).
pub fn is_snapshot_entry(path: &Path) -> bool {
    path.components()
        .any(|c| c.as_os_str() == OsStr::new("snapshots"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let root = Root::new(PathBuf::from("/c"), RootKind::HubCache);
        let c = |p: &str| classify(&root, Path::new(p));
        assert_eq!(c("/c/models--a--b/blobs/abc"), Place::RepoBlob);
        assert_eq!(
            c("/c/models--a--b/blobs/abc.1234abcd.incomplete"),
            Place::Ignore
        );
        assert_eq!(c("/c/models--a--b/blobs/abc.incomplete"), Place::Ignore);
        assert_eq!(
            c("/c/models--a--b/blobs/.abc.1234abcd.shared"),
            Place::Ignore
        );
        assert_eq!(c("/c/models--a--b/blobs/tmp_123"), Place::Ignore);
        assert_eq!(
            c("/c/models--a--b/snapshots/0123/sub/model.bin"),
            Place::Snapshot
        );
        assert_eq!(c("/c/models--a--b/snapshots/0123"), Place::Container);
        assert_eq!(
            c("/c/models--a--b/snapshots/0123/tmp_x.lock"),
            Place::Snapshot
        );
        assert_eq!(c("/c/models--a--b/snapshots/0123/.hidden"), Place::Snapshot);
        assert_eq!(c("/c/models--a--b/refs/main"), Place::Ignore);
        assert_eq!(c("/c/models--a--b/.no_exist/0123/x"), Place::Ignore);
        assert_eq!(c("/c/models--a--b/tmpab12/dummy_file_src"), Place::Ignore);
        assert_eq!(c("/c/.locks/models--a--b/abc.lock"), Place::Ignore);
        assert_eq!(c("/c/blobs/ab/abcdef"), Place::StoreBlob);
        assert_eq!(c("/c/blobs/ab/abcdef.refs"), Place::Ignore);
        assert_eq!(c("/c/blobs/ab/abcdef.lock"), Place::Ignore);
        assert_eq!(c("/c/blobs/ab"), Place::Container);
        assert_eq!(c("/c/blobs/.huggingface-shared-blobs"), Place::Container);
        assert_eq!(c("/c/CACHEDIR.TAG"), Place::Ignore);
        let local = Root::new(PathBuf::from("/l"), RootKind::LocalDir);
        assert_eq!(classify(&local, Path::new("/l/model.pt")), Place::LocalFile);
        // Hub temporary-name rules do not apply in a local dir.
        for name in [
            "tmp_x",
            ".hidden",
            "a.tmp",
            "a.lock",
            "a.metadata",
            ".modelgate-x",
        ] {
            assert_eq!(
                classify(&local, &Path::new("/l").join(name)),
                Place::LocalFile,
                "{name}"
            );
        }
        let odd = std::ffi::OsStr::from_bytes(b"m\xff.bin");
        assert_eq!(
            classify(&local, &Path::new("/l").join(odd)),
            Place::LocalFile
        );
        assert_eq!(
            classify(
                &root,
                &Path::new("/c/models--a--b/snapshots/0123").join(odd)
            ),
            Place::Snapshot
        );
        assert_eq!(
            classify(
                &local,
                Path::new("/l/.cache/huggingface/download/x.incomplete")
            ),
            Place::Ignore
        );
    }
}
