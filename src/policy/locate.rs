//! Which policy file applies, and why.
//!
//! In order: `--policy FILE`; the `MODELGATE_POLICY` environment variable;
//! the nearest `.modelgate.toml` or `policy.toml` walking up from the
//! working directory, stopping at the repository root (the folder holding
//! `.git`, or a bare repository's git directory) or, outside a repository,
//! at the filesystem boundary; the user's default
//! `$XDG_CONFIG_HOME/modelgate/policy.toml` (`~/.config/...` when the
//! variable is unset); else the built-in defaults.
//!
//! The walk stops at the repository because a parent folder is someone
//! else's: a permissive `policy.toml` in a shared parent (a home folder, a
//! server's folder of hosted repositories) must not decide for the
//! repository beneath it. A candidate that exists but cannot be used (a
//! folder, a dangling symlink, a fifo) is an error rather than skipped: a
//! policy that silently stops applying is a policy that fails open.

use std::fmt;
use std::path::{Path, PathBuf};

use super::diag::{Diagnostic, Severity};
use super::{FILE_NAMES, PolicyError};

/// The environment variable naming the policy file.
pub const ENV_VAR: &str = "MODELGATE_POLICY";

/// Where the policy in use came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--policy FILE`.
    Flag(PathBuf),
    /// `MODELGATE_POLICY`.
    Env(PathBuf),
    /// Found walking up from the working directory; `root` is where the
    /// walk would have stopped (the repository root, or the last folder on
    /// the same filesystem).
    Discovered {
        path: PathBuf,
        root: PathBuf,
        in_repository: bool,
    },
    /// The user-level default.
    User(PathBuf),
    /// No file: the built-in defaults. `stopped_at` is where the walk
    /// ended.
    Builtin { stopped_at: PathBuf },
}

impl Source {
    /// The policy file, `None` for the built-in defaults.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Source::Flag(p) | Source::Env(p) | Source::User(p) => Some(p),
            Source::Discovered { path, .. } => Some(path),
            Source::Builtin { .. } => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(p) => write!(f, "{} (given with --policy)", p.display()),
            Source::Env(p) => write!(f, "{} (from {ENV_VAR})", p.display()),
            Source::Discovered {
                path,
                root,
                in_repository,
            } => {
                let limit = if *in_repository {
                    "the repository root"
                } else {
                    "the filesystem boundary"
                };
                write!(
                    f,
                    "{} (nearest policy file above the working directory; the search stops at {limit}, {})",
                    path.display(),
                    root.display()
                )
            }
            Source::User(p) => write!(
                f,
                "{} (user default: no policy file between the working directory and the repository root or filesystem boundary)",
                p.display()
            ),
            Source::Builtin { stopped_at } => write!(
                f,
                "built-in defaults (no --policy, no {ENV_VAR}, no policy file up to {}, no user default)",
                stopped_at.display()
            ),
        }
    }
}

/// Finds the policy for a run started in `cwd`, with `explicit` from
/// `--policy`. Reads the environment (`MODELGATE_POLICY`,
/// `XDG_CONFIG_HOME`, `HOME`).
pub fn locate(explicit: Option<&Path>, cwd: &Path) -> Result<Source, PolicyError> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    locate_with(explicit, cwd, &env)
}

/// [`locate`] with the environment passed in.
pub fn locate_with(
    explicit: Option<&Path>,
    cwd: &Path,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<Source, PolicyError> {
    if let Some(p) = explicit {
        usable(p, "--policy")?;
        return Ok(Source::Flag(p.to_path_buf()));
    }
    if let Some(p) = env(ENV_VAR) {
        let p = cwd.join(p);
        usable(&p, ENV_VAR)?;
        return Ok(Source::Env(p));
    }
    let (found, root, in_repository) = walk(cwd)?;
    if let Some(path) = found {
        return Ok(Source::Discovered {
            path,
            root,
            in_repository,
        });
    }
    user_or_builtin(root, env)
}

/// What applies when the repository has no policy file of its own (or the
/// one it has does not count, such as an untracked file in a git hook):
/// the user default, else the built-in defaults.
pub fn fallback(stopped_at: PathBuf) -> Result<Source, PolicyError> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    user_or_builtin(stopped_at, &env)
}

fn user_or_builtin(
    stopped_at: PathBuf,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<Source, PolicyError> {
    let config = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(config) = config {
        let p = config.join("modelgate").join("policy.toml");
        if std::fs::symlink_metadata(&p).is_ok() {
            usable(&p, "the user default")?;
            return Ok(Source::User(p));
        }
    }
    Ok(Source::Builtin { stopped_at })
}

/// Walks up from `start`: the first policy file, the folder the walk
/// stopped at, and whether that is a repository root.
fn walk(start: &Path) -> Result<(Option<PathBuf>, PathBuf, bool), PolicyError> {
    use std::os::unix::fs::MetadataExt;
    let device = std::fs::metadata(start).map(|m| m.dev()).ok();
    let mut last = start.to_path_buf();
    for dir in start.ancestors() {
        let meta = std::fs::metadata(dir).ok();
        if device.is_some() && meta.as_ref().map(MetadataExt::dev) != device {
            return Ok((None, last, false));
        }
        for name in FILE_NAMES {
            let p = dir.join(name);
            if std::fs::symlink_metadata(&p).is_ok() {
                usable(&p, "the policy search")?;
                let root = repository_root(dir);
                let in_repository = root.is_some();
                let root = root.unwrap_or_else(|| dir.to_path_buf());
                return Ok((Some(p), root, in_repository));
            }
        }
        if is_repository(dir) {
            return Ok((None, dir.to_path_buf(), true));
        }
        last = dir.to_path_buf();
    }
    Ok((None, last, false))
}

/// Whether `dir` is a work tree root (`.git` inside it) or a bare
/// repository / git directory (`HEAD`, `objects/`, `refs/`).
fn is_repository(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir.join(".git")).is_ok()
        || (dir.join("HEAD").is_file() && dir.join("objects").is_dir() && dir.join("refs").is_dir())
}

/// The repository root at or above `dir`, on the way the walk would go.
fn repository_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| is_repository(d))
        .map(Path::to_path_buf)
}

/// A policy path must be a readable regular file (symlinks to one are
/// fine); anything else is refused with the reason.
fn usable(path: &Path, origin: &str) -> Result<(), PolicyError> {
    let problem = match std::fs::symlink_metadata(path) {
        Err(e) => Some(format!("cannot use the policy file ({origin}): {e}")),
        Ok(link) => match std::fs::metadata(path) {
            Err(e) if link.file_type().is_symlink() => Some(format!(
                "the policy file ({origin}) is a symlink whose target cannot be reached: {e}"
            )),
            Err(e) => Some(format!("cannot use the policy file ({origin}): {e}")),
            Ok(m) if m.is_dir() => Some(format!(
                "the policy path ({origin}) is a folder, not a file"
            )),
            Ok(m) if !m.is_file() => {
                Some(format!("the policy path ({origin}) is not a regular file"))
            }
            Ok(_) => std::fs::File::open(path)
                .err()
                .map(|e| format!("cannot read the policy file ({origin}): {e}")),
        },
    };
    match problem {
        None => Ok(()),
        Some(msg) => Err(PolicyError(vec![Diagnostic::whole_file(
            Severity::Error,
            path,
            msg,
            Some(
                "remove or fix it, or name the policy to use with --policy or MODELGATE_POLICY"
                    .to_string(),
            ),
        )])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<std::ffi::OsString> {
        None
    }

    #[test]
    fn stops_at_the_repository_and_refuses_unusable_paths() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let top = tmp.path();
        std::fs::write(top.join("policy.toml"), "").unwrap_or_else(|e| panic!("{e}"));
        let repo = top.join("repo");
        let sub = repo.join("models");
        std::fs::create_dir_all(repo.join(".git")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(&sub).unwrap_or_else(|e| panic!("{e}"));
        let found = locate_with(None, &sub, &no_env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            found,
            Source::Builtin {
                stopped_at: repo.clone()
            }
        );

        std::fs::create_dir(sub.join("policy.toml")).unwrap_or_else(|e| panic!("{e}"));
        let err = locate_with(None, &sub, &no_env).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("is a folder"), "{err}");
        std::fs::remove_dir(sub.join("policy.toml")).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(top.join("gone"), repo.join(".modelgate.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let err = locate_with(None, &sub, &no_env).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
    }
}
