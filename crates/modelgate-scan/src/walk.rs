//! Expands the paths given to `scan` into scan targets: files, and
//! directory-shaped models (TensorFlow SavedModels) that are scanned as one.
//!
//! Hidden files are included (a `.pt` is dangerous whatever its name),
//! `.git` directories are skipped (their objects are scanned by the hooks),
//! and symlinks are followed; link loops end. Inside a git work tree what
//! git ignores is left out unless asked for (a 5 GB `target/` is no model),
//! and so is what `--exclude` names; a path named as a root is always
//! scanned.

use std::path::{Path, PathBuf};

use ignore::WalkBuilder;
use ignore::overrides::OverrideBuilder;

/// One thing to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A file, scanned on its own.
    File {
        /// Where it is.
        path: PathBuf,
    },
    /// A directory that is one model (a TensorFlow SavedModel), scanned as
    /// a whole rather than file by file.
    ModelDir {
        /// Where it is.
        path: PathBuf,
    },
}

impl Target {
    /// The file or directory to scan.
    pub fn path(&self) -> &Path {
        match self {
            Target::File { path } | Target::ModelDir { path } => path,
        }
    }
}

/// A path that could not be read while walking.
#[derive(Debug)]
pub struct WalkError {
    /// The path that could not be read.
    pub path: PathBuf,
    /// Why.
    pub error: std::io::Error,
}

/// What to leave out of a walk.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// Patterns (gitignore syntax, relative to each root) of paths not to
    /// scan.
    pub excludes: Vec<String>,
    /// Also scan what `.gitignore`, `.git/info/exclude` and `.ignore` files
    /// leave out.
    pub no_ignore: bool,
}

/// An `--exclude` pattern that is not a valid glob.
#[derive(Debug, thiserror::Error)]
#[error("invalid --exclude pattern `{pattern}`: {reason}")]
pub struct ExcludeError {
    /// The pattern as given.
    pub pattern: String,
    /// The glob compiler's complaint.
    pub reason: String,
}

/// Walks `roots` with nothing excluded but ignored files, and returns the
/// targets (in a stable order) and the errors.
pub fn collect(roots: &[PathBuf]) -> (Vec<Target>, Vec<WalkError>) {
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    for root in roots {
        // No excludes: building the walk cannot fail.
        if let Ok((t, e)) = collect_root(root, &WalkOptions::default()) {
            targets.extend(t);
            errors.extend(e);
        }
    }
    (targets, errors)
}

/// As [`collect`], leaving out what `options` excludes.
pub fn collect_with(
    roots: &[PathBuf],
    options: &WalkOptions,
) -> Result<(Vec<Target>, Vec<WalkError>), ExcludeError> {
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    for root in roots {
        let (t, e) = collect_root(root, options)?;
        targets.extend(t);
        errors.extend(e);
    }
    Ok((targets, errors))
}

/// Whether a directory is a SavedModel (scanned as one model).
pub fn is_saved_model_dir(dir: &Path) -> bool {
    dir.join("saved_model.pb").is_file()
}

type Found = (Vec<Target>, Vec<WalkError>);

fn collect_root(root: &Path, options: &WalkOptions) -> Result<Found, ExcludeError> {
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            targets.push(Target::File {
                path: root.to_path_buf(),
            });
            return Ok((targets, errors));
        }
        Err(error) => {
            errors.push(WalkError {
                path: root.to_path_buf(),
                error,
            });
            return Ok((targets, errors));
        }
    }
    let mut overrides = OverrideBuilder::new(root);
    for pattern in &options.excludes {
        // An override glob selects; a `!` one excludes.
        overrides
            .add(&format!("!{pattern}"))
            .map_err(|e| ExcludeError {
                pattern: pattern.clone(),
                reason: e.to_string(),
            })?;
    }
    let overrides = overrides.build().map_err(|e| ExcludeError {
        pattern: options.excludes.join(" "),
        reason: e.to_string(),
    })?;
    let respect = !options.no_ignore;
    let walk = WalkBuilder::new(root)
        .hidden(false)
        .parents(respect)
        .ignore(respect)
        .git_ignore(respect)
        .git_exclude(respect)
        .git_global(false)
        .follow_links(true)
        .overrides(overrides)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    let mut model_dirs: Vec<PathBuf> = Vec::new();
    for entry in walk {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                if let Some(error) = walk_error(err) {
                    errors.push(error);
                }
                continue;
            }
        };
        let path = entry.path();
        if model_dirs.iter().any(|d| path.starts_with(d)) {
            continue; // inside a SavedModel, which is scanned as one
        }
        // The walker follows links, so the type is the target's; a dangling
        // link has none and is worth reporting (it may be a quarantined or
        // half-downloaded model).
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                if is_saved_model_dir(path) {
                    model_dirs.push(path.to_path_buf());
                    targets.push(Target::ModelDir {
                        path: path.to_path_buf(),
                    });
                }
            }
            Ok(meta) if meta.is_file() => targets.push(Target::File {
                path: path.to_path_buf(),
            }),
            Ok(_) => {} // sockets, fifos, devices: not model files
            Err(error) => errors.push(WalkError {
                path: path.to_path_buf(),
                error,
            }),
        }
    }
    Ok((targets, errors))
}

/// A walk error worth reporting: link loops simply end the descent.
fn walk_error(err: ignore::Error) -> Option<WalkError> {
    match err {
        ignore::Error::WithPath { path, err } => walk_error(*err).map(|mut e| {
            e.path = path;
            e
        }),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            walk_error(*err)
        }
        ignore::Error::Loop { .. } => None,
        ignore::Error::Io(error) => Some(WalkError {
            path: PathBuf::new(),
            error,
        }),
        other => Some(WalkError {
            path: PathBuf::new(),
            error: std::io::Error::other(other.to_string()),
        }),
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
    fn gitignored_and_excluded_paths_skipped_unless_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path();
        std::fs::create_dir(repo.join(".git")).unwrap();
        std::fs::write(repo.join(".gitignore"), "target/\n").unwrap();
        std::fs::create_dir_all(repo.join("target/debug")).unwrap();
        std::fs::write(repo.join("target/debug/x.pkl"), b"N.").unwrap();
        std::fs::create_dir(repo.join("cache")).unwrap();
        std::fs::write(repo.join("cache/y.pkl"), b"N.").unwrap();
        std::fs::write(repo.join("m.pkl"), b"N.").unwrap();
        let names = |opts: &WalkOptions| -> Vec<PathBuf> {
            let (targets, errors) = collect_with(&[repo.to_path_buf()], opts).unwrap();
            assert!(errors.is_empty(), "{errors:?}");
            targets
                .iter()
                .map(|t| t.path().strip_prefix(repo).unwrap().to_path_buf())
                .filter(|p| p.extension().is_some_and(|e| e == "pkl"))
                .collect()
        };
        let excluded = WalkOptions {
            excludes: vec!["cache/".into()],
            no_ignore: false,
        };
        assert_eq!(names(&excluded), vec![PathBuf::from("m.pkl")]);
        let everything = WalkOptions {
            excludes: vec![],
            no_ignore: true,
        };
        assert_eq!(names(&everything).len(), 3);
        // A root named explicitly is scanned even though git ignores it.
        let (targets, _) = collect(&[repo.join("target/debug/x.pkl")]);
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
