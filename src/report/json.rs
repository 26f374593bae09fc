//! The JSON report. Its shape is a stable interface (documented in the
//! README and pinned by a snapshot test): bump `SCHEMA_VERSION` on any
//! incompatible change.

use serde::Serialize;

use super::Summary;
use crate::scan::{FileReport, Finding, Kind, Location, ScanStatus, Verdict};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
pub struct Document<'a> {
    pub schema_version: u32,
    pub tool: Tool,
    pub files: Vec<JsonFile<'a>>,
    pub errors: Vec<JsonError>,
    pub summary: Summary,
}

#[derive(Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

impl Default for Tool {
    fn default() -> Self {
        Tool {
            name: "modelgate",
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

#[derive(Serialize)]
pub struct JsonFile<'a> {
    pub path: &'a str,
    pub format: Kind,
    pub size: u64,
    pub verdict: Verdict,
    pub status: &'a ScanStatus,
    /// What the policy decided (`allow`, `warn`, `block`), when one was applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    /// Rule ids whose findings a policy exemption removed from the decision.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exempted: Vec<&'static str>,
    /// The content's sha256, for files with findings or a policy decision
    /// against them: what an exemption pins. Left out for clean files, so
    /// that a scan never reads tensor bytes it does not need.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub findings: Vec<JsonFinding<'a>>,
    /// What the policy itself held against the file (POL rules: a format
    /// not allowed at its path, content not present to scan, a missing
    /// signature), beside the findings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy: Vec<PolicyFinding>,
}

#[derive(Serialize)]
pub struct PolicyFinding {
    pub rule: &'static str,
    pub name: &'static str,
    pub action: &'static str,
    pub message: String,
    pub remediation: &'static str,
}

#[derive(Serialize)]
pub struct JsonFinding<'a> {
    pub rule: &'static str,
    pub name: &'static str,
    pub verdict: Verdict,
    pub message: &'a str,
    pub location: &'a Location,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<&'a str>,
    pub remediation: &'static str,
}

#[derive(Serialize)]
pub struct JsonError {
    pub path: String,
    pub error: String,
}

impl<'a> JsonFile<'a> {
    pub fn new(r: &'a FileReport) -> Self {
        JsonFile {
            path: &r.path,
            format: r.format,
            size: r.size,
            verdict: r.verdict,
            status: &r.status,
            action: None,
            exempted: Vec::new(),
            sha256: None,
            findings: r.findings.iter().map(JsonFinding::new).collect(),
            policy: Vec::new(),
        }
    }
}

impl<'a> JsonFinding<'a> {
    pub fn new(f: &'a Finding) -> Self {
        JsonFinding {
            rule: f.rule.id,
            name: f.rule.name,
            verdict: f.verdict,
            message: &f.message,
            location: &f.location,
            evidence: f.evidence.as_deref(),
            remediation: f.rule.remediation,
        }
    }
}

impl JsonFile<'_> {
    /// Adds the policy's decision: the action, the exemptions that applied
    /// and the policy rules (POL…) that are not findings of the scan.
    pub fn decided(&mut self, d: &crate::policy::Decision) {
        self.action = Some(d.action.as_str());
        self.exempted = d.exempted.iter().map(|e| e.rule).collect();
        self.policy = d
            .basis
            .iter()
            .filter(|b| b.finding.is_none())
            .map(|b| PolicyFinding {
                rule: b.rule.id,
                name: b.rule.name,
                action: b.action.as_str(),
                message: b.message.clone(),
                remediation: b.rule.remediation,
            })
            .collect();
    }
}

pub fn document<'a>(reports: &'a [FileReport], errors: Vec<JsonError>) -> Document<'a> {
    Document {
        schema_version: SCHEMA_VERSION,
        tool: Tool::default(),
        summary: Summary::of(reports, errors.len()),
        files: reports.iter().map(JsonFile::new).collect(),
        errors,
    }
}
