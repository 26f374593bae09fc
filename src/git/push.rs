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
//! The range: for pre-push, `<local> --not <remote-oid>...`, hiding every
//! remote tip git passed on stdin that is known locally, and nothing else:
//! git does not tell the hook the remote's other refs, and local
//! remote-tracking refs can be forged, so a new branch is checked down to
//! its root (each blob once; text costs a sniff). For
//! pre-receive, `<new> --not --all`: the server's refs are not updated until
//! the hook succeeds, so "all refs" is exactly what the server already has.
//! Deletions push nothing and are allowed. Both hash formats work: the
//! all-zero id of either length means "no object".

use std::io::BufRead;

use git2::{DiffOptions, Oid, Repository, Sort};

use super::{Checker, GitError, Outcome, parse_oid};
use crate::cache::Cache;
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
pub enum Known {
    /// Pre-push: only the remote tips git passed on stdin. Local
    /// remote-tracking refs are not evidence: anyone who can write to
    /// `.git` (or a `fetch` from a forged remote) can point
    /// `refs/remotes/origin/*` at a commit the real remote never had.
    Advertised,
    /// Pre-receive: every ref of the (server) repository, which the server
    /// itself maintains.
    AllRefs,
}

/// Judges every blob introduced by the commits `updates` would add, and
/// every blob or tree a pushed ref names directly (a tag may point at a
/// blob or a tree, not only a commit). A commit walk or object that fails
/// is recorded as an error outcome, never allowed.
pub fn check_updates(
    repo: &Repository,
    policy: &Policy,
    updates: &[Update],
    known: Known,
    cache: Option<Cache>,
) -> Result<Outcome, GitError> {
    let mut checker = Checker::new(repo, policy, cache);
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
    let mut any = false;
    let mut tips = Vec::new();
    for u in updates {
        if let Some(old) = u.old
            && let Ok(c) = repo.find_object(old, None).and_then(|o| o.peel_to_commit())
        {
            walk.hide(c.id())?;
        }
        let Some(new) = u.new else { continue };
        let mut target = repo.find_object(new, None)?;
        if target.kind() == Some(git2::ObjectType::Tag) {
            // Peeling to "any" stops at the first object that is not a tag.
            target = target.peel(git2::ObjectType::Any)?;
        }
        match target.kind() {
            Some(git2::ObjectType::Commit) => {
                walk.push(target.id())?;
                tips.push(target.id());
                any = true;
            }
            Some(git2::ObjectType::Tree) => {
                if let Some(tree) = target.as_tree() {
                    checker.check_tree(tree);
                }
            }
            Some(git2::ObjectType::Blob) => checker.check(None, &u.refname, target.id()),
            _ => {
                return Err(GitError::Input(format!(
                    "{} points at {new}, which is neither a commit, a tree nor a blob",
                    u.refname
                )));
            }
        }
    }
    if !any {
        return Ok(checker.finish());
    }
    if let Known::AllRefs = known {
        for r in repo.references()?.flatten() {
            if let Ok(c) = r.peel_to_commit() {
                walk.hide(c.id())?;
            }
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
        checker.check_diff(&diff, Some(commit.id()));
    }
    let mut outcome = checker.finish();
    mark_history_only(repo, &tips, &mut outcome);
    Ok(outcome)
}

/// Flags blocked files whose content is at no pushed tip: a later commit
/// deleted or replaced it, but the push still carries it in history.
fn mark_history_only(repo: &Repository, tips: &[Oid], outcome: &mut Outcome) {
    let trees: Vec<git2::Tree<'_>> = tips
        .iter()
        .filter_map(|t| repo.find_commit(*t).ok()?.tree().ok())
        .collect();
    for f in &mut outcome.files {
        if f.commit.is_none() || !f.decision.action.stops() || f.error.is_some() {
            continue;
        }
        let at_tip = trees.iter().any(|t| {
            t.get_path(std::path::Path::new(&f.path))
                .is_ok_and(|e| e.id().to_string() == f.blob)
        });
        f.history_only = !at_tip;
    }
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
