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

pub fn write_report(out: &mut dyn Write, report: &FileReport, opts: Options) -> io::Result<()> {
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
        write_finding(out, report, finding, opts)?;
    }
    Ok(())
}

fn write_finding(
    out: &mut dyn Write,
    report: &FileReport,
    f: &Finding,
    opts: Options,
) -> io::Result<()> {
    let (label, color) = match f.verdict {
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

pub fn write_summary(out: &mut dyn Write, s: &Summary, seconds: f64) -> io::Result<()> {
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
        "scanned {} file{} in {seconds:.2}s: {}{extra}",
        s.files,
        if s.files == 1 { "" } else { "s" },
        parts.join(", ")
    )
}
