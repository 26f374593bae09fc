//! What a hook prints. Each flagged file gets: the action and the path (and
//! the commit, for push hooks), each rule that drove the decision with what
//! the file would do, why that is dangerous and the way out, and for a
//! blocked file a ready-to-paste `[[exemptions]]` entry pinned to its
//! sha256, for the case where the team decides to accept it.
//!
//! Messages go to stderr (git relays a server hook's stderr to the pushing
//! client); `--format json` writes one JSON document to stdout instead.

use std::io::{self, Write};

use serde::Serialize;

use super::{FileOutcome, Outcome};
use crate::policy::Action;
use crate::report::human;

/// Human-readable report of a hook run.
pub fn human(out: &mut dyn Write, hook: &str, outcome: &Outcome) -> io::Result<()> {
    for f in &outcome.files {
        file(out, f)?;
    }
    lfs_unchecked(out, hook, outcome)?;
    let count = |pred: &dyn Fn(&FileOutcome) -> bool| {
        outcome
            .files
            .iter()
            .filter(|f| f.decision.action.stops() && pred(f))
            .count()
    };
    let failed = count(&|f| f.error.is_none());
    let unreadable = count(&|f| f.error.is_some());
    if failed + unreadable == 0 {
        return Ok(());
    }
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let mut what = Vec::new();
    if failed > 0 {
        what.push(format!(
            "{failed} file{} failed the model policy",
            plural(failed)
        ));
    }
    if unreadable > 0 {
        what.push(format!(
            "{unreadable} file{} could not be checked",
            plural(unreadable)
        ));
    }
    let history = outcome.files.iter().any(|f| f.history_only);
    writeln!(
        out,
        "modelgate {hook}: blocked: {} ({} checked). {}",
        what.join(", "),
        outcome.checked,
        bypass(hook)
    )?;
    if history {
        writeln!(
            out,
            "modelgate {hook}: a later commit removed or changed some of these files, but the \
             blocked content is still in the history being pushed: deleting the file again does \
             not help. Rewrite the commits that added it (`git rebase -i <commit>^`, or \
             `git filter-repo --invert-paths --path <file>` for a whole history) and push again."
        )?;
    }
    Ok(())
}

/// The way out, which depends on the hook.
fn bypass(hook: &str) -> &'static str {
    match hook {
        "pre-commit" => "Fix them or add an exemption; `git commit --no-verify` skips this check.",
        "pre-merge-commit" => {
            "Fix them or add an exemption; `git merge --no-verify` skips this check."
        }
        "pre-push" => "Fix them or add an exemption; `git push --no-verify` skips this check.",
        _ => "Fix them or add an exemption to the server's policy; the push was refused.",
    }
}

/// Git LFS files whose objects were not here to scan: named one by one,
/// since on a server that is every LFS file of the push.
fn lfs_unchecked(out: &mut dyn Write, hook: &str, outcome: &Outcome) -> io::Result<()> {
    let unchecked: Vec<&FileOutcome> = outcome
        .files
        .iter()
        .filter(|f| f.lfs_oid.is_some() && f.report.is_none() && f.error.is_none())
        .collect();
    if unchecked.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "modelgate {hook}: {} Git LFS object{} could not be checked (the object is not in this \
         repository's LFS store):",
        unchecked.len(),
        if unchecked.len() == 1 { "" } else { "s" }
    )?;
    for f in &unchecked {
        let commit = f
            .commit
            .as_deref()
            .map(|c| format!(", commit {}", c.get(..12).unwrap_or(c)))
            .unwrap_or_default();
        writeln!(
            out,
            "  {} (LFS sha256:{}{commit}): {}",
            f.path,
            f.lfs_oid.as_deref().unwrap_or_default(),
            f.decision.action
        )?;
    }
    if hook == "pre-receive" {
        writeln!(
            out,
            "  On a server, LFS objects go to the LFS store and never reach this hook: set \
             `unverifiable = \"block\"` in the server's policy (or on model paths), or scan the \
             LFS store itself."
        )?;
    }
    Ok(())
}

fn file(out: &mut dyn Write, f: &FileOutcome) -> io::Result<()> {
    if let Some(error) = &f.error {
        let commit = f
            .commit
            .as_deref()
            .map(|c| format!(" (commit {})", c.get(..12).unwrap_or(c)))
            .unwrap_or_default();
        let (label, then) = if f.decision.action.stops() {
            ("error", "refused (fail closed; [hook] on-error)")
        } else {
            ("warning", "let through ([hook] on-error)")
        };
        return writeln!(
            out,
            "{label}: {}{commit} could not be checked: {error}; {then}\n",
            f.path
        );
    }
    let judged = human::Judged {
        path: &f.path,
        commit: f.commit.as_deref(),
        via_lfs: f.lfs_oid.is_some(),
        report: f.report.as_ref(),
        decision: &f.decision,
    };
    let opts = human::Options {
        verbose: false,
        color: false,
        actionable: true,
    };
    human::write_judged(out, &judged, opts)
}

/// The version of the hooks' JSON document: bumped on any change that
/// could break a consumer.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Document<'a> {
    schema_version: u32,
    hook: &'a str,
    action: Action,
    /// Which policy decided, and why that one.
    policy: &'a str,
    #[serde(flatten)]
    outcome: &'a Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// The JSON document of a hook run.
pub fn json(
    out: &mut dyn Write,
    hook: &str,
    action: Action,
    policy: &str,
    outcome: &Outcome,
    error: Option<&str>,
) -> io::Result<()> {
    let doc = Document {
        schema_version: SCHEMA_VERSION,
        hook,
        action,
        policy,
        outcome,
        error,
    };
    serde_json::to_writer_pretty(&mut *out, &doc).map_err(io::Error::other)?;
    writeln!(out)
}
