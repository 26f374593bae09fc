//! Expands the paths given to `scan` into scan targets: files, and
//! directory-shaped models (TensorFlow SavedModels) that are scanned as one.
//!
//! Hidden files are included (a `.pt` is dangerous whatever its name),
//! `.git` directories are skipped (their objects are scanned by the hooks),
//! and symlinks are followed with a visited set of directory identities so
//! that link loops end.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One thing to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    File { path: PathBuf },
    ModelDir { path: PathBuf },
}

impl Target {
    pub fn path(&self) -> &Path {
        match self {
            Target::File { path } | Target::ModelDir { path } => path,
        }
    }
}

/// A path that could not be read while walking.
#[derive(Debug)]
pub struct WalkError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

/// Walks `roots` and returns the targets (in a stable order) and the errors.
pub fn collect(roots: &[PathBuf]) -> (Vec<Target>, Vec<WalkError>) {
    let mut w = Walk {
        targets: Vec::new(),
        errors: Vec::new(),
        visited: HashSet::new(),
    };
    for root in roots {
        match std::fs::metadata(root) {
            Ok(meta) if meta.is_dir() => w.dir(root, &meta),
            Ok(_) => w.targets.push(Target::File { path: root.clone() }),
            Err(error) => w.errors.push(WalkError {
                path: root.clone(),
                error,
            }),
        }
    }
    (w.targets, w.errors)
}

/// Whether a directory is a SavedModel (scanned as one model).
pub fn is_saved_model_dir(dir: &Path) -> bool {
    dir.join("saved_model.pb").is_file()
}

struct Walk {
    targets: Vec<Target>,
    errors: Vec<WalkError>,
    visited: HashSet<(u64, u64)>,
}

impl Walk {
    fn dir(&mut self, dir: &Path, meta: &std::fs::Metadata) {
        if !self.visited.insert((meta.dev(), meta.ino())) {
            return; // a symlink loop, or a directory reached twice
        }
        if is_saved_model_dir(dir) {
            self.targets.push(Target::ModelDir {
                path: dir.to_path_buf(),
            });
            return;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) => {
                self.errors.push(WalkError {
                    path: dir.to_path_buf(),
                    error,
                });
                return;
            }
        };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for child in children {
            if child.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            // metadata() follows symlinks; a dangling link is an error worth
            // reporting (it may be a quarantined or half-downloaded model).
            match std::fs::metadata(&child) {
                Ok(meta) if meta.is_dir() => self.dir(&child, &meta),
                Ok(meta) if meta.is_file() => self.targets.push(Target::File { path: child }),
                Ok(_) => {} // sockets, fifos, devices: not model files
                Err(error) => self.errors.push(WalkError { path: child, error }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_loops_end() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("m.pkl"), b"N.").unwrap();
        std::os::unix::fs::symlink(&a, a.join("loop")).unwrap();
        let (targets, errors) = collect(&[tmp.path().to_path_buf()]);
        assert!(errors.is_empty());
        assert_eq!(targets.len(), 1);
    }

    #[test]
    fn hidden_files_included_git_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(".hidden.pt"), b"N.").unwrap();
        std::fs::create_dir(tmp.path().join(".git")).unwrap();
        std::fs::write(tmp.path().join(".git/obj"), b"N.").unwrap();
        let (targets, _) = collect(&[tmp.path().to_path_buf()]);
        assert_eq!(
            targets,
            vec![Target::File {
                path: tmp.path().join(".hidden.pt")
            }]
        );
    }
}
