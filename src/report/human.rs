//! Human-readable output, shaped like a compiler's diagnostics: one block per
//! finding with the rule, what the payload does, where it is, the evidence
//! and the way out.

use std::io::{self, Write};

use super::Summary;
use crate::scan::{FileReport, Finding, ScanStatus, Verdict};

/// Whether to print files that came out clean.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub verbose: bool,
    pub color: bool,
}

/// Writes one file's findings; findings of a rule in `exempted` (which a
/// policy exemption removed from the decision) are shown as exempted, not
/// as the verdict that no longer counts.
pub fn write_report(
    out: &mut dyn Write,
    report: &FileReport,
    exempted: &[&str],
    opts: Options,
) -> io::Result<()> {
    if report.findings.is_empty() {
        if opts.verbose {
            let state = match &report.status {
                ScanStatus::Skipped { reason } => format!("skipped: {reason}"),
                _ => "clean".to_string(),
            };
            writeln!(out, "{}: {} ({})", report.path, state, report.format)?;
        }
        return Ok(());
    }
    for finding in &report.findings {
        let is_exempted = exempted.contains(&finding.rule.id);
        write_finding(out, report, finding, is_exempted, opts)?;
    }
    Ok(())
}

fn write_finding(
    out: &mut dyn Write,
    report: &FileReport,
    f: &Finding,
    exempted: bool,
    opts: Options,
) -> io::Result<()> {
    let (label, color) = match f.verdict {
        _ if exempted => ("exempted", "\x1b[1;32m"),
        Verdict::Malicious => ("malicious", "\x1b[1;31m"),
        Verdict::Suspicious => ("suspicious", "\x1b[1;33m"),
        _ => ("info", "\x1b[1;36m"),
    };
    let (c, bold, reset) = if opts.color {
        (color, "\x1b[1m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    writeln!(
        out,
        "{c}{label}[{}]{reset}{bold}: {}{reset}",
        f.rule.id, f.message
    )?;
    let mut place = report.path.clone();
    for m in &f.location.members {
        place.push_str(" → ");
        place.push_str(m);
    }
    match f.location.offset {
        Some(off) => writeln!(out, "  --> {place} @ byte {off}")?,
        None => writeln!(out, "  --> {place}")?,
    }
    if let Some(e) = &f.evidence {
        writeln!(out, "   = evidence: {e}")?;
    }
    writeln!(out, "   = help: {}", f.rule.remediation)?;
    writeln!(out)
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
