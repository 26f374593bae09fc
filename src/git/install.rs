//! `modelgate install` / `uninstall`: put the hooks into a repository
//! without clobbering anything.
//!
//! The hooks directory is the one git will run: `core.hooksPath` when set
//! (relative paths are relative to the work tree, or to the git directory
//! of a bare repository), otherwise `hooks/` in the common git directory
//! (shared by all worktrees).
//!
//! An existing hook that is not ours is renamed to `<hook>.modelgate-chained`
//! and called by our script after our check passes, with the same arguments
//! and the same stdin (push hooks read their ref list from stdin, so it is
//! buffered and replayed). Running ours first matters for pre-push: Git
//! LFS's own pre-push uploads the LFS objects, so a blocked push must stop
//! before it runs. Our script carries a marker line, so a second install is
//! a no-op and `uninstall` only ever removes what it wrote and puts the
//! chained hook back.
//!
//! The script fails closed: if the modelgate binary cannot be found, or
//! dies (a signal, an exit status modelgate never uses), the commit or push
//! is refused with a message saying what failed and how to bypass it.

use std::path::{Path, PathBuf};

use git2::Repository;

use super::GitError;

/// Identifies scripts written by this installer.
pub const MARKER: &str = "# modelgate-hook: installed by `modelgate install`";

/// Suffix of a pre-existing hook kept and chained.
pub const CHAINED_SUFFIX: &str = ".modelgate-chained";

/// Hooks installed by default into a working repository. `pre-merge-commit`
/// checks what a merge brings in before git records it. Content can still
/// arrive without any of these running (`cherry-pick`, `am`, `rebase`, a
/// conflicted merge committed later, submodules, `--no-verify`): pre-push,
/// and on the server pre-receive, check every commit that leaves or enters
/// a repository and are the catch-all.
pub const CLIENT_HOOKS: &[&str] = &["pre-commit", "pre-merge-commit", "pre-push"];

/// Hooks this tool can act as.
pub const KNOWN_HOOKS: &[&str] = &["pre-commit", "pre-merge-commit", "pre-push", "pre-receive"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// Our script was written; nothing was there before.
    Fresh(PathBuf),
    /// Our script was written and the existing hook kept at this path.
    Chained(PathBuf, PathBuf),
    /// Our script was already there.
    AlreadyInstalled(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uninstalled {
    /// Our script was removed.
    Removed(PathBuf),
    /// Our script was removed and the chained hook put back.
    Restored(PathBuf),
    /// No hook of ours was there.
    NotInstalled(PathBuf),
}

/// The directory git runs hooks from.
pub fn hooks_dir(repo: &Repository) -> Result<PathBuf, GitError> {
    let config = repo.config()?;
    match config.get_path("core.hooksPath") {
        Ok(p) if p.is_absolute() => Ok(p),
        Ok(p) => Ok(repo.workdir().unwrap_or_else(|| repo.path()).join(p)),
        Err(_) => Ok(repo.commondir().join("hooks")),
    }
}

/// Installs `hooks` into `dir`, calling the binary at `exe`.
pub fn install(dir: &Path, hooks: &[&str], exe: &Path) -> Result<Vec<Installed>, GitError> {
    let io = |what: String| move |source| GitError::Io { what, source };
    std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
    let mut done = Vec::new();
    for hook in hooks {
        let target = dir.join(hook);
        let chained = dir.join(format!("{hook}{CHAINED_SUFFIX}"));
        if is_ours(&target) {
            done.push(Installed::AlreadyInstalled(target));
            continue;
        }
        let existing = std::fs::symlink_metadata(&target).is_ok();
        if existing {
            if std::fs::symlink_metadata(&chained).is_ok() {
                return Err(GitError::Input(format!(
                    "{} exists and so does {}; refusing to overwrite either (move one away)",
                    target.display(),
                    chained.display()
                )));
            }
            std::fs::rename(&target, &chained)
                .map_err(io(format!("cannot move {} aside", target.display())))?;
        }
        write_script(&target, &script(hook, exe))?;
        done.push(if existing {
            Installed::Chained(target, chained)
        } else {
            Installed::Fresh(target)
        });
    }
    Ok(done)
}

/// Removes our scripts from `dir` and restores chained hooks.
pub fn uninstall(dir: &Path, hooks: &[&str]) -> Result<Vec<Uninstalled>, GitError> {
    let io = |what: String| move |source| GitError::Io { what, source };
    let mut done = Vec::new();
    for hook in hooks {
        let target = dir.join(hook);
        if !is_ours(&target) {
            done.push(Uninstalled::NotInstalled(target));
            continue;
        }
        std::fs::remove_file(&target).map_err(io(format!("cannot remove {}", target.display())))?;
        let chained = dir.join(format!("{hook}{CHAINED_SUFFIX}"));
        if std::fs::symlink_metadata(&chained).is_ok() {
            std::fs::rename(&chained, &target)
                .map_err(io(format!("cannot restore {}", chained.display())))?;
            done.push(Uninstalled::Restored(target));
        } else {
            done.push(Uninstalled::Removed(target));
        }
    }
    Ok(done)
}

fn is_ours(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()))
}

fn write_script(path: &Path, text: &str) -> Result<(), GitError> {
    let io = |source| GitError::Io {
        what: format!("cannot write {}", path.display()),
        source,
    };
    std::fs::write(path, text).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    }
    Ok(())
}

/// Single-quotes `s` for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The hook script: buffer stdin, run modelgate, then the chained hook.
fn script(hook: &str, exe: &Path) -> String {
    let exe = sh_quote(&exe.to_string_lossy());
    format!(
        r#"#!/bin/sh
{MARKER}
# `modelgate uninstall` removes this script and restores any hook it chained.
# modelgate checks first; then the hook that was here before, if any, runs
# with the same arguments and input ({hook}{CHAINED_SUFFIX}).
hook={hook}
here=$(dirname "$0")
mg=${{MODELGATE:-{exe}}}
if [ ! -x "$mg" ]; then
    mg=$(command -v modelgate 2>/dev/null) || mg=
fi
if [ -z "$mg" ]; then
    echo "modelgate: the modelgate binary was not found; refusing the $hook (fail closed)." >&2
    echo "modelgate: install it (install.sh), set MODELGATE=/path/to/modelgate, or bypass once with --no-verify." >&2
    exit 1
fi
input=$(mktemp "${{TMPDIR:-/tmp}}/modelgate-hook.XXXXXX") || exit 1
trap 'rm -f "$input"' EXIT
case $hook in
    pre-push | pre-receive) cat > "$input" ;;
esac
status=0
"$mg" hook "$hook" "$@" < "$input" || status=$?
case $status in
    0) ;;
    1 | 2 | 3) exit $status ;;
    *)
        if [ "$status" -gt 128 ]; then
            why="was killed by signal $((status - 128))"
        else
            why="failed with exit status $status"
        fi
        echo "modelgate: '$mg hook $hook' $why; refusing the $hook (fail closed)." >&2
        echo "modelgate: reinstall modelgate or report the crash; bypass once with --no-verify." >&2
        exit 1
        ;;
esac
if [ -x "$here/$hook{CHAINED_SUFFIX}" ]; then
    "$here/$hook{CHAINED_SUFFIX}" "$@" < "$input" || exit $?
fi
exit 0
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_chains_and_uninstall_restores() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let d = dir.path();
        std::fs::write(d.join("pre-push"), "#!/bin/sh\ngit lfs pre-push \"$@\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let exe = Path::new("/opt/it's/modelgate");
        let first = install(d, CLIENT_HOOKS, exe).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(first[0], Installed::Fresh(_)));
        assert!(matches!(first[2], Installed::Chained(_, _)));
        let script = std::fs::read_to_string(d.join("pre-push")).unwrap_or_default();
        assert!(script.contains("'/opt/it'\\''s/modelgate'"), "{script}");
        let second = install(d, CLIENT_HOOKS, exe).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            second
                .iter()
                .all(|i| matches!(i, Installed::AlreadyInstalled(_)))
        );
        let un = uninstall(d, CLIENT_HOOKS).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(un[0], Uninstalled::Removed(_)));
        assert!(matches!(un[2], Uninstalled::Restored(_)));
        assert!(!d.join("pre-commit").exists());
        let restored = std::fs::read_to_string(d.join("pre-push")).unwrap_or_default();
        assert!(restored.contains("git lfs pre-push"));
    }
}
