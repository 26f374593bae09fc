//! Human-readable output, shaped like a compiler's diagnostics: one block per
//! finding with the rule, what the payload does, where it is, the evidence
//! and the way out.

use std::io::{self, Write};

use super::Summary;
use crate::policy::{Action, Decision, REASON_PLACEHOLDER};
use crate::scan::rules::Rule;
use crate::scan::{FileReport, ScanStatus, Verdict};

/// How much to show of each file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Also name files that came out clean or were skipped.
    pub verbose: bool,
    pub color: bool,
    /// Only what the policy acts on (warn, block), each with why the rule
    /// matters and the action, and for a blocked file a ready-to-paste
    /// exemption: what a hook prints, where the reader has one commit to
    /// fix rather than a tree to survey.
    pub actionable: bool,
}

/// One file as the policy judged it.
pub struct Judged<'a> {
    /// As the user knows it: relative to the working directory, or the
    /// path in the repository.
    pub path: &'a str,
    /// The commit that brings the file, for push hooks.
    pub commit: Option<&'a str>,
    /// Whether the content came through a Git LFS pointer.
    pub via_lfs: bool,
    /// The scan, when the content was there to scan.
    pub report: Option<&'a FileReport>,
    pub decision: &'a Decision,
}

/// Writes one judged file, one compiler-style block per finding and per
/// policy rule: `scan` and every hook print the same layout. Findings an
/// exemption removed from the decision show as exempted, not as the
/// verdict that no longer counts.
pub fn write_judged(out: &mut dyn Write, j: &Judged, opts: Options) -> io::Result<()> {
    let d = j.decision;
    let shown =
        |action: Option<Action>| !opts.actionable || action.is_some_and(|a| a > Action::Allow);
    let mut wrote = false;
    if let Some(report) = j.report {
        for (i, f) in report.findings.iter().enumerate() {
            let action = d
                .basis
                .iter()
                .find(|b| b.finding == Some(i))
                .map(|b| b.action);
            let exempted = action.is_none() && d.exempted.iter().any(|e| e.rule == f.rule.id);
            if !(shown(action) || exempted && !opts.actionable) {
                continue;
            }
            let block = Block {
                label: if exempted {
                    Label::Exempted
                } else {
                    Label::Verdict(f.verdict)
                },
                rule: f.rule,
                message: &f.message,
                members: &f.location.members,
                offset: f.location.offset,
                evidence: f.evidence.as_deref(),
                action,
            };
            write_block(out, j, &block, opts)?;
            wrote = true;
        }
    }
    for b in d
        .basis
        .iter()
        .filter(|b| b.finding.is_none() && shown(Some(b.action)))
    {
        let block = Block {
            label: Label::Verdict(b.verdict),
            rule: b.rule,
            message: &b.message,
            members: &[],
            offset: None,
            evidence: None,
            action: Some(b.action),
        };
        write_block(out, j, &block, opts)?;
        wrote = true;
    }
    for e in &d.exempted {
        writeln!(
            out,
            "note: {} in {} is exempted by {}: {}",
            e.rule, j.path, e.origin, e.reason
        )?;
    }
    for e in &d.expired {
        writeln!(
            out,
            "warning: the exemption for {} in {} ({}) has expired: {}",
            e.rule, j.path, e.origin, e.reason
        )?;
    }
    if opts.actionable && d.action.stops() {
        write_exemption_hint(out, j)?;
    }
    if !wrote && opts.verbose && !opts.actionable {
        let state = match j.report.map(|r| &r.status) {
            Some(ScanStatus::Skipped { reason }) => format!("skipped: {reason}"),
            _ => "clean".to_string(),
        };
        let format = j.report.map_or("", |r| r.format.name());
        writeln!(out, "{}: {state} ({format})", j.path)?;
    }
    Ok(())
}

enum Label {
    Verdict(Verdict),
    Exempted,
}

struct Block<'a> {
    label: Label,
    rule: &'static Rule,
    message: &'a str,
    members: &'a [String],
    offset: Option<u64>,
    evidence: Option<&'a str>,
    /// What the policy does about it; `None` when an exemption removed it.
    action: Option<Action>,
}

fn write_block(out: &mut dyn Write, j: &Judged, b: &Block, opts: Options) -> io::Result<()> {
    let (label, color) = match b.label {
        Label::Exempted => ("exempted", "\x1b[1;32m"),
        Label::Verdict(Verdict::Malicious) => ("malicious", "\x1b[1;31m"),
        Label::Verdict(Verdict::Suspicious) => ("suspicious", "\x1b[1;33m"),
        Label::Verdict(_) => ("info", "\x1b[1;36m"),
    };
    let (c, bold, reset) = if opts.color {
        (color, "\x1b[1m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    writeln!(
        out,
        "{c}{label}[{}]{reset}{bold}: {}{reset}",
        b.rule.id, b.message
    )?;
    let mut place = j.path.to_string();
    for m in b.members {
        place.push_str(" → ");
        place.push_str(m);
    }
    if let Some(off) = b.offset {
        place.push_str(&format!(" @ byte {off}"));
    }
    if let Some(commit) = j.commit {
        place.push_str(&format!(" (commit {})", commit.get(..12).unwrap_or(commit)));
    }
    if j.via_lfs {
        place.push_str(" (via Git LFS)");
    }
    writeln!(out, "  --> {place}")?;
    if let Some(e) = b.evidence {
        writeln!(out, "   = evidence: {e}")?;
    }
    if opts.actionable {
        writeln!(out, "   = why: {}", squash(b.rule.summary))?;
        if let Some(action) = b.action {
            writeln!(out, "   = policy: {action}")?;
        }
    }
    writeln!(out, "   = help: {}", squash(b.rule.remediation))?;
    writeln!(out)
}

/// A ready-to-paste exemption pinned to the blocked content, for when the
/// team decides to accept it; its reason is the placeholder that `policy
/// check` refuses until someone writes why.
fn write_exemption_hint(out: &mut dyn Write, j: &Judged) -> io::Result<()> {
    let Some(sha) = &j.decision.sha256 else {
        return Ok(());
    };
    let mut ids: Vec<&str> = j
        .decision
        .basis
        .iter()
        .filter(|b| b.action.stops())
        .map(|b| b.rule.id)
        .collect();
    ids.dedup();
    writeln!(
        out,
        "To accept this exact file, add to policy.toml (and say why):"
    )?;
    for id in ids {
        writeln!(out, "    [[exemptions]]")?;
        writeln!(out, "    sha256 = \"{sha}\"")?;
        writeln!(out, "    rule = \"{id}\"")?;
        writeln!(out, "    reason = \"{REASON_PLACEHOLDER}\"")?;
        writeln!(
            out,
            "    note = \"{}\"",
            j.path.replace('\\', "\\\\").replace('"', "\\\"")
        )?;
    }
    writeln!(out)
}

/// Rule texts are wrapped in the source; print them on one line.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The closing count. `failed` is how many files failed the policy (the
/// exit code's reason), counted apart from verdicts: a clean pickle where
/// the policy forbids pickles fails, an exempted payload does not.
pub fn write_summary(
    out: &mut dyn Write,
    s: &Summary,
    failed: usize,
    seconds: f64,
) -> io::Result<()> {
    let mut parts = vec![
        format!("{} malicious", s.malicious),
        format!("{} suspicious", s.suspicious),
    ];
    parts.push(format!("{} clean", s.clean + s.info));
    let mut extra = Vec::new();
    if s.skipped > 0 {
        extra.push(format!("{} not model files", s.skipped));
    }
    if s.inconclusive > 0 {
        extra.push(format!("{} inconclusive", s.inconclusive));
    }
    if s.errors > 0 {
        extra.push(format!("{} unreadable", s.errors));
    }
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(" ({})", extra.join(", "))
    };
    writeln!(
        out,
        "scanned {} file{} in {seconds:.2}s: {}{extra}; {failed} failed the policy",
        s.files,
        if s.files == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// One file's policy outcome, for the closing list.
pub struct Outcome<'a> {
    pub path: &'a str,
    /// `block`, `warn`, `quarantine`, `allow`.
    pub action: &'a str,
    pub stops: bool,
    /// Rule ids behind the action (`PKL001`, `POL001`, …).
    pub rules: Vec<&'static str>,
    /// Why the file was not fully read, if it was not.
    pub inconclusive: Option<&'a [String]>,
    /// Rule ids an exemption accepted.
    pub exempted: Vec<&'a str>,
}

impl<'a> Outcome<'a> {
    /// The outcome of a scanned file the policy decided: the rules behind
    /// its action (not those of milder findings) and its exemptions.
    pub fn of(report: &'a FileReport, d: &'a Decision) -> Outcome<'a> {
        let mut rules: Vec<&'static str> = d
            .basis
            .iter()
            .filter(|b| b.action == d.action)
            .map(|b| b.rule.id)
            .collect();
        rules.dedup();
        Outcome {
            path: &report.path,
            action: d.action.as_str(),
            stops: d.action.stops(),
            rules,
            inconclusive: match &report.status {
                ScanStatus::Inconclusive { reasons } => Some(reasons.as_slice()),
                _ => None,
            },
            exempted: d.exempted.iter().map(|e| e.rule).collect(),
        }
    }
}

/// Writes scanned files with their decisions (`scan`, `merge`): each
/// file's blocks, then, with `outcomes`, the closing list.
pub fn write_decided(
    out: &mut dyn Write,
    reports: &[FileReport],
    decisions: &[Decision],
    opts: Options,
    outcomes: bool,
) -> io::Result<()> {
    for (r, d) in reports.iter().zip(decisions) {
        let judged = Judged {
            path: &r.path,
            commit: None,
            via_lfs: false,
            report: Some(r),
            decision: d,
        };
        write_judged(out, &judged, opts)?;
    }
    if outcomes {
        let all: Vec<Outcome> = reports
            .iter()
            .zip(decisions)
            .map(|(r, d)| Outcome::of(r, d))
            .collect();
        write_outcomes(out, &all)?;
    }
    Ok(())
}

/// Ends a report with what decides the exit code: the files that failed
/// the policy and why, the warnings, what could not be fully read and what
/// an exemption let through.
pub fn write_outcomes(out: &mut dyn Write, outcomes: &[Outcome<'_>]) -> io::Result<()> {
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.stops).collect();
    let warned: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| !o.stops && o.action == "warn")
        .collect();
    if !failed.is_empty() {
        writeln!(out, "failed the policy:")?;
        for o in &failed {
            writeln!(out, "  {} ({}: {})", o.path, o.action, o.rules.join(", "))?;
        }
    }
    if !warned.is_empty() {
        writeln!(out, "warnings:")?;
        for o in &warned {
            writeln!(out, "  {} ({})", o.path, o.rules.join(", "))?;
        }
    }
    let partial: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.inconclusive.is_some())
        .collect();
    if !partial.is_empty() {
        writeln!(out, "not fully read (inconclusive):")?;
        for o in &partial {
            let why = o.inconclusive.map(|r| r.join("; ")).unwrap_or_default();
            writeln!(out, "  {}: {why}", o.path)?;
        }
    }
    let exempted: Vec<&Outcome> = outcomes.iter().filter(|o| !o.exempted.is_empty()).collect();
    if !exempted.is_empty() {
        writeln!(out, "exempted by the policy:")?;
        for o in &exempted {
            writeln!(out, "  {} ({})", o.path, o.exempted.join(", "))?;
        }
    }
    Ok(())
}
