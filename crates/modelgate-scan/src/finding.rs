//! What the detection core reports: findings, their location, and the
//! per-file verdict and scan status.
//!
//! The model is shaped so that it maps one-to-one onto SARIF: a finding is a
//! `result` (rule id, level, message), its [`Location`] is a logical location
//! (the chain of archive members) plus a byte offset, and the file report is
//! the artifact. The core never decides what to *do* about a finding: that is
//! the policy's job.

use serde::Serialize;
use std::fmt;

use super::kind::Kind;
use super::rules::Rule;

/// How bad a finding is, and (as the maximum over its findings) how bad a
/// file is. Ordered: `Clean < Info < Suspicious < Malicious`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Nothing worth reporting. Only ever a file verdict, never a finding's.
    Clean,
    /// Worth knowing, never blocks by default (e.g. a file that is not a model).
    Info,
    /// Cannot be shown safe: unknown imports, unparseable input, tripped limits.
    Suspicious,
    /// Would run code, touch files or the network, or attack the loader.
    Malicious,
}

impl Verdict {
    /// The lowercase name reports, caches and policies use.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Info => "info",
            Verdict::Suspicious => "suspicious",
            Verdict::Malicious => "malicious",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where inside a file a finding sits: the chain of archive members from the
/// outermost container inwards (empty for a finding in the file itself), and
/// the byte offset inside the innermost stream (e.g. of a pickle opcode).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Location {
    /// Member names, outermost first.
    pub members: Vec<String>,
    /// Byte offset in the innermost stream, when the parser knows one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                f.write_str(" → ")?;
            }
            f.write_str(m)?;
        }
        if let Some(off) = self.offset {
            if !self.members.is_empty() {
                f.write_str(" ")?;
            }
            write!(f, "@ byte {off}")?;
        }
        Ok(())
    }
}

/// One thing the scanner found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The rule that fired; gives the stable id, explanation and remediation.
    #[serde(serialize_with = "serialize_rule_id", rename = "rule")]
    pub rule: &'static Rule,
    /// Usually the rule's default verdict; some rules grade by evidence.
    pub verdict: Verdict,
    /// One line: what the payload would do when the file is loaded.
    pub message: String,
    /// Where in the file the finding sits.
    pub location: Location,
    /// The exact thing seen (a global name, a template snippet, an op name),
    /// already truncated to a readable length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

fn serialize_rule_id<S: serde::Serializer>(rule: &&'static Rule, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(rule.id)
}

/// Longest evidence string kept; payloads can be megabytes of shell script.
pub const MAX_EVIDENCE_CHARS: usize = 200;

/// Truncates `s` to [`MAX_EVIDENCE_CHARS`] characters, marking the cut, and
/// escapes control characters so that evidence cannot forge terminal output.
pub fn evidence(s: &str) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == MAX_EVIDENCE_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether the scan could look at everything it needed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum ScanStatus {
    /// Every part of the file that a loader would execute was read.
    Complete,
    /// Some part could not be read or parsed, or a limit was hit. Never a
    /// pass: each reason is also a finding.
    Inconclusive {
        /// What could not be read, one line each, in the order met.
        reasons: Vec<String>,
    },
    /// Not a model format (text, image, source code): nothing a model loader
    /// would deserialize.
    Skipped {
        /// What the file was taken for instead.
        reason: String,
    },
}

/// The result of scanning one file (or one directory-shaped model).
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The path as the caller named it (a display name for stdin or a blob).
    pub path: String,
    /// The outermost format, decided by content (refined by its parser:
    /// a zip that is a PyTorch checkpoint is `pytorch-zip`).
    pub format: Kind,
    /// Bytes the report covers (for a SavedModel directory, its files).
    pub size: u64,
    /// The worst finding's verdict, `Clean` without findings (see
    /// [`FileReport::compute_verdict`]).
    pub verdict: Verdict,
    /// Whether the scan saw everything; an inconclusive scan is never a pass.
    pub status: ScanStatus,
    /// Every finding, duplicates (same rule, place and message) removed.
    pub findings: Vec<Finding>,
}

impl FileReport {
    /// The file verdict is the worst finding's, with `Clean` when none.
    pub fn compute_verdict(findings: &[Finding]) -> Verdict {
        findings
            .iter()
            .map(|f| f.verdict)
            .max()
            .unwrap_or(Verdict::Clean)
    }
}
