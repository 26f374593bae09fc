//! pre-commit: the blobs a commit would record.
//!
//! The repository is opened from the environment so that `GIT_DIR` and
//! above all `GIT_INDEX_FILE` are honoured: `git commit -a` runs the hook
//! against `.git/index.lock`, `git commit PATH` against a
//! `next-index-<pid>.lock`, and only that index says what will be committed.
//! HEAD's tree (none before the first commit) is diffed against that index
//! without rename detection; added, copied, modified and type-changed
//! entries are judged by their **index** blob. Gitlinks (submodules) are
//! someone else's repository and are skipped.

use git2::{DiffOptions, ErrorCode, Repository};

use super::{Checker, GitError, Outcome};
use crate::cache::Cache;
use crate::policy::Policy;

/// Judges every staged blob of `repo`'s index against `policy`, through
/// the verdict cache when one is given.
pub fn check_index(
    repo: &Repository,
    policy: &Policy,
    cache: Option<Cache>,
) -> Result<Outcome, GitError> {
    let index = repo.index()?;
    let head = match repo.head() {
        Ok(h) => Some(h.peel_to_tree()?),
        Err(e) if matches!(e.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let mut opts = DiffOptions::new();
    opts.include_typechange(true).ignore_submodules(true);
    let diff = repo.diff_tree_to_index(head.as_ref(), Some(&index), Some(&mut opts))?;
    let mut checker = Checker::new(repo, policy, cache).with_index(index);
    checker.check_diff(&diff, None);
    Ok(checker.finish())
}
