//! pre-push and pre-receive: every blob that every new commit introduces.
//!
//! Scanning only the tip tree would miss a model that one commit adds and a
//! later one deletes: the blob is still pushed and still in history. So each
//! commit in the pushed range is diffed against its first parent (or the
//! empty tree for a root commit) and every added, copied, modified or
//! type-changed blob is judged. First-parent diffs also catch "evil merges":
//! a blob a merge introduces that neither parent has differs from the first
//! parent. Blobs reachable from both sides are judged once.
//!
//! The range: for pre-push, `<local> --not <remote-oid>` when the remote's
//! old tip is known locally, otherwise `<local> --not --remotes=<remote>`
//! (new branches, or a remote that moved since the last fetch). For
//! pre-receive, `<new> --not --all`: the server's refs are not updated until
//! the hook succeeds, so "all refs" is exactly what the server already has.
//! Deletions push nothing and are allowed. Both hash formats work: the
//! all-zero id of either length means "no object".

use std::io::BufRead;

use git2::{Delta, DiffOptions, FileMode, Oid, Repository, Sort};

use super::{Checker, GitError, Outcome, parse_oid};
use crate::policy::Policy;

/// One `<local-ref> <local-oid> <remote-ref> <remote-oid>` line (pre-push)
/// or `<old> <new> <ref>` line (pre-receive), normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub refname: String,
    /// `None` for a deletion.
    pub new: Option<Oid>,
    /// The receiving side's current tip, `None` for a new ref.
    pub old: Option<Oid>,
}

/// Parses pre-push stdin.
pub fn parse_pre_push(repo: &Repository, input: impl BufRead) -> Result<Vec<Update>, GitError> {
    parse_lines(input, |f| {
        let [_local_ref, local, remote_ref, remote] = f else {
            return Err(GitError::Input(format!(
                "malformed pre-push line: {}",
                f.join(" ")
            )));
        };
        Ok(Update {
            refname: remote_ref.to_string(),
            new: parse_oid(repo, local)?,
            old: parse_oid(repo, remote)?,
        })
    })
}

/// Parses pre-receive stdin.
pub fn parse_pre_receive(repo: &Repository, input: impl BufRead) -> Result<Vec<Update>, GitError> {
    parse_lines(input, |f| {
        let [old, new, refname] = f else {
            return Err(GitError::Input(format!(
                "malformed pre-receive line: {}",
                f.join(" ")
            )));
        };
        Ok(Update {
            refname: refname.to_string(),
            new: parse_oid(repo, new)?,
            old: parse_oid(repo, old)?,
        })
    })
}

fn parse_lines(
    input: impl BufRead,
    mut parse: impl FnMut(&[&str]) -> Result<Update, GitError>,
) -> Result<Vec<Update>, GitError> {
    let mut out = Vec::new();
    for line in input.lines() {
        let line = line.map_err(|source| GitError::Io {
            what: "cannot read the hook's input".into(),
            source,
        })?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        out.push(parse(&fields)?);
    }
    Ok(out)
}

/// Which commits are already on the other side.
pub enum Known<'a> {
    /// Pre-push: the remote-tracking refs of this remote.
    Remote(&'a str),
    /// Pre-receive: every ref of the (server) repository.
    AllRefs,
}

/// Judges every blob introduced by the commits `updates` would add.
pub fn check_updates(
    repo: &Repository,
    policy: &Policy,
    updates: &[Update],
    known: Known,
) -> Result<Outcome, GitError> {
    let mut checker = Checker::new(repo, policy);
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
    let mut any = false;
    for u in updates {
        let Some(new) = u.new else { continue };
        walk.push(new)?;
        any = true;
        if let Some(old) = u.old
            && repo.find_commit(old).is_ok()
        {
            walk.hide(old)?;
        }
    }
    if !any {
        return Ok(checker.finish());
    }
    let prefix = match known {
        Known::Remote(name) => format!("refs/remotes/{name}/"),
        Known::AllRefs => "refs/".to_string(),
    };
    for r in repo.references()?.flatten() {
        if r.name().ok().is_some_and(|n| n.starts_with(&prefix))
            && let Ok(c) = r.peel_to_commit()
        {
            walk.hide(c.id())?;
        }
    }
    let mut opts = DiffOptions::new();
    opts.include_typechange(true).ignore_submodules(true);
    for id in walk {
        let commit = repo.find_commit(id?)?;
        let tree = commit.tree()?;
        let parent = match commit.parents().next() {
            Some(p) => Some(p.tree()?),
            None => None,
        };
        let diff = repo.diff_tree_to_tree(parent.as_ref(), Some(&tree), Some(&mut opts))?;
        for delta in diff.deltas() {
            if !matches!(
                delta.status(),
                Delta::Added | Delta::Copied | Delta::Modified | Delta::Typechange | Delta::Renamed
            ) {
                continue;
            }
            let file = delta.new_file();
            if file.mode() == FileMode::Commit {
                continue;
            }
            let path = file
                .path()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            checker.check(Some(commit.id()), &path, file.id())?;
        }
    }
    Ok(checker.finish())
}

/// Opens the server repository so that objects still in the push
/// quarantine are visible: from the environment (which honours
/// `GIT_OBJECT_DIRECTORY` and `GIT_ALTERNATE_OBJECT_DIRECTORIES`), and with
/// `GIT_QUARANTINE_PATH` added as an alternate explicitly, because the
/// alternates variable is split on `:` without git's unquoting.
pub fn open_receiving() -> Result<Repository, GitError> {
    let repo = Repository::open_from_env()?;
    if let Some(q) = std::env::var_os("GIT_QUARANTINE_PATH")
        && let Some(q) = q.to_str()
    {
        repo.odb()?.add_disk_alternate(q)?;
    }
    Ok(repo)
}
