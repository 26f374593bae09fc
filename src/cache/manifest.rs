//! Manifest mode: the JSON-lines formats that shards read and write, and
//! how entries are split between shards.
//!
//! Results are read back typed: an unknown verdict, status or rule id is an
//! error, never a pass.

use serde::{Deserialize, Serialize};

use super::{ReportRec, VerdictRec};
use crate::scan::{FileReport, Kind, ScanStatus, Verdict};

/// One line of `--manifest FILE.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl ManifestEntry {
    /// What the entry names: its path, else its url.
    pub fn name(&self) -> Option<&str> {
        self.path.as_deref().or(self.url.as_deref())
    }

    /// The sha256 when it is one (64 hex digits), lower-cased.
    pub fn digest(&self) -> Option<String> {
        self.sha256
            .as_deref()
            .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase)
    }
}

/// `--shard I/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

/// Environment variables that give an array job's index, in the order read
/// by `--shard auto/N`.
pub const SHARD_INDEX_VARS: &[&str] = &["JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"];

impl Shard {
    /// Parses `I/N` or `auto/N` (the index from [`SHARD_INDEX_VARS`]).
    pub fn parse(s: &str, env: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not I/N (e.g. 0/4) or auto/N"))?;
        let count: u64 = n
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("shard count `{n}` is not a positive number"))?;
        let index: u64 = if i == "auto" {
            let (var, value) = SHARD_INDEX_VARS
                .iter()
                .find_map(|v| env(v).map(|x| (*v, x)))
                .ok_or_else(|| {
                    format!(
                        "--shard auto/{count} needs one of {} set",
                        SHARD_INDEX_VARS.join(", ")
                    )
                })?;
            value
                .trim()
                .parse()
                .map_err(|_| format!("{var}=`{value}` is not a number"))?
        } else {
            i.parse()
                .map_err(|_| format!("shard index `{i}` is not a number"))?
        };
        if index >= count {
            return Err(format!(
                "shard index {index} is not below the count {count}"
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether `entry` belongs to this shard: by content digest, so that the
    /// same blob lands in the same shard whatever its path (duplicates are
    /// scanned by one process, and reruns with another N still hit the
    /// cache), by name when there is no digest.
    pub fn takes(&self, entry: &ManifestEntry) -> bool {
        let basis = match entry.digest() {
            Some(d) => d,
            None => crate::digest::sha256_bytes(entry.name().unwrap_or_default().as_bytes()),
        };
        let prefix = u64::from_str_radix(&basis[..16], 16).unwrap_or(0);
        prefix % self.count == self.index
    }
}

/// A result line's status: the scan's, or why there is no trustworthy scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResultStatus {
    Complete,
    Inconclusive,
    Skipped,
    /// The content's sha256 is not the one the manifest gave: scanned,
    /// and held to at least `suspicious`.
    DigestMismatch,
    /// The file could not be read.
    Error,
}

/// One line of `--results OUT.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultLine {
    pub path: String,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    pub format: Option<Kind>,
    pub verdict: VerdictRec,
    pub status: ResultStatus,
    pub rules: Vec<String>,
    pub cached: bool,
    pub scanner_version: String,
    pub rules_digest: String,
    /// The manifest's sha256 when it was wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_sha256: Option<String>,
    /// Why the file could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The full scan status and findings, so that `merge` renders the same
    /// reports as `scan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ReportRec>,
}

impl ResultLine {
    pub fn scanned(s: &super::Scanned) -> ResultLine {
        let r = &s.report;
        let mut rules: Vec<String> = r.findings.iter().map(|f| f.rule.id.to_string()).collect();
        rules.sort();
        rules.dedup();
        let mismatch = s.claimed_sha256.is_some();
        let verdict = if mismatch {
            r.verdict.max(Verdict::Suspicious)
        } else {
            r.verdict
        };
        ResultLine {
            path: r.path.clone(),
            sha256: Some(s.sha256.clone()),
            size: Some(r.size),
            format: Some(r.format),
            verdict: verdict.into(),
            status: match (&r.status, mismatch) {
                (_, true) => ResultStatus::DigestMismatch,
                (ScanStatus::Complete, _) => ResultStatus::Complete,
                (ScanStatus::Inconclusive { .. }, _) => ResultStatus::Inconclusive,
                (ScanStatus::Skipped { .. }, _) => ResultStatus::Skipped,
            },
            rules,
            cached: s.cached,
            scanner_version: super::VERSION.to_string(),
            rules_digest: crate::scan::ENGINE_DIGEST.to_string(),
            manifest_sha256: s.claimed_sha256.clone(),
            error: None,
            report: Some(ReportRec::of(r)),
        }
    }

    pub fn error(path: &str, sha256: Option<String>, error: String) -> ResultLine {
        ResultLine {
            path: path.to_string(),
            sha256,
            size: None,
            format: None,
            verdict: VerdictRec::Suspicious,
            status: ResultStatus::Error,
            rules: Vec::new(),
            cached: false,
            scanner_version: super::VERSION.to_string(),
            rules_digest: crate::scan::ENGINE_DIGEST.to_string(),
            manifest_sha256: None,
            error: Some(error),
            report: None,
        }
    }

    pub fn verdict(&self) -> Verdict {
        self.verdict.into()
    }

    /// The file report this line stands for. A digest mismatch becomes an
    /// inconclusive scan (its reason says why), so that the policy blocks
    /// it like any unverifiable file. `None` for an error line; `Err` when
    /// the line is not self-consistent (unknown rule, verdict below its
    /// findings').
    pub fn to_report(&self) -> Result<Option<FileReport>, String> {
        let Some(rec) = self.report.clone() else {
            return if self.status == ResultStatus::Error {
                Ok(None)
            } else {
                Err(format!(
                    "{}: a {:?} result without its report",
                    self.path, self.status
                ))
            };
        };
        let mut report = rec.into_report(&self.path).ok_or_else(|| {
            format!(
                "{}: a rule id unknown to this build, or a verdict below its findings'",
                self.path
            )
        })?;
        let mut ids: Vec<&str> = report.findings.iter().map(|f| f.rule.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids != self.rules.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(format!(
                "{}: the line's rules are not its findings'",
                self.path
            ));
        }
        if self.verdict() < report.verdict {
            return Err(format!(
                "{}: the line's verdict is below its findings'",
                self.path
            ));
        }
        if self.status == ResultStatus::DigestMismatch {
            let reason = format!(
                "the manifest's sha256 {} is not the content's {}",
                self.manifest_sha256.as_deref().unwrap_or("?"),
                self.sha256.as_deref().unwrap_or("?")
            );
            report.status = ScanStatus::Inconclusive {
                reasons: vec![reason.clone()],
            };
            report.findings.push(crate::scan::Finding {
                rule: &crate::scan::rules::UNPARSEABLE,
                verdict: Verdict::Suspicious,
                message: reason,
                location: Default::default(),
                evidence: None,
            });
            report.verdict = FileReport::compute_verdict(&report.findings);
        }
        Ok(Some(report))
    }
}
