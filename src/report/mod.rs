//! Renders scan results for people (`human`) and machines (`json`, `sarif`). The
//! detection core produces [`FileReport`]s; these functions only format them.

pub mod human;
pub mod json;
pub mod sarif;

use crate::scan::{FileReport, ScanStatus, Verdict};

/// Counts over a set of reports, for summaries.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Summary {
    pub files: usize,
    pub malicious: usize,
    pub suspicious: usize,
    pub info: usize,
    pub clean: usize,
    pub skipped: usize,
    pub inconclusive: usize,
    pub errors: usize,
}

impl Summary {
    pub fn of(reports: &[FileReport], errors: usize) -> Self {
        let mut s = Summary {
            files: reports.len(),
            errors,
            ..Summary::default()
        };
        for r in reports {
            match r.verdict {
                Verdict::Malicious => s.malicious += 1,
                Verdict::Suspicious => s.suspicious += 1,
                Verdict::Info => s.info += 1,
                Verdict::Clean => s.clean += 1,
            }
            match r.status {
                ScanStatus::Skipped { .. } => s.skipped += 1,
                ScanStatus::Inconclusive { .. } => s.inconclusive += 1,
                ScanStatus::Complete => {}
            }
        }
        s
    }
}

/// Percent-encodes `s` for a URI (SARIF locations, package URLs), keeping
/// the RFC 3986 unreserved characters and those in `also_keep`.
pub fn percent_encode(s: &str, also_keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || also_keep.contains(&b)
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
