//! The SARIF 2.1.0 report, shaped for GitHub code scanning.
//!
//! One run, one tool driver listing every rule of the core (id, name, short
//! and full description, help with the remediation, default level), one
//! result per finding. Verdicts map to SARIF levels: malicious → `error`,
//! suspicious → `warning`, info → `note`.
//!
//! Locations: model files are binary, so the byte offset is the real
//! location. A finding in the file itself carries `region.byteOffset`; a
//! finding inside an archive member names the member chain as a logical
//! location (`data.zip/archive/data.pkl`) and keeps the offset inside the
//! innermost member in the result's properties, because an offset into a
//! decompressed member is not an offset into the file on disk. Every region
//! also says `startLine: 1`: GitHub only displays results whose region has a
//! start line, and a model file has no other line to point at.
//!
//! URIs are relative so that alerts follow the repository, not the machine:
//! relative to the working directory (`%SRCROOT%`) when the file is inside
//! it, else relative to the scanned root it was found under (`ROOT0`,
//! `ROOT1`, … declared in `originalUriBaseIds`).
//!
//! `partialFingerprints` hash the rule id, the URI, the member chain and the
//! evidence (or the message when there is none), never byte offsets, which
//! shift whenever unrelated bytes of a file change. Re-scanning the same file
//! gives the same fingerprints, so GitHub keeps one alert per problem.
//!
//! Specification: <https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html>;
//! GitHub's subset: <https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning>.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::scan::rules::{self, Rule};
use crate::scan::{FileReport, Finding, Kind, Verdict};

pub const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";
pub const VERSION: &str = "2.1.0";
/// Base id for URIs relative to the working directory (GitHub's convention).
const SRCROOT: &str = "%SRCROOT%";
/// Key of the fingerprint in `partialFingerprints`; bump the suffix if the
/// hashed fields ever change.
const FINGERPRINT_KEY: &str = "modelgateFinding/v1";

#[derive(Debug, Serialize)]
pub struct Log {
    #[serde(rename = "$schema")]
    pub schema: &'static str,
    pub version: &'static str,
    pub runs: Vec<Run>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub tool: Tool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub original_uri_base_ids: BTreeMap<String, ArtifactLocation>,
    pub invocations: Vec<Invocation>,
    pub results: Vec<SarifResult>,
    pub column_kind: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Tool {
    pub driver: Driver,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Driver {
    pub name: &'static str,
    pub semantic_version: &'static str,
    pub rules: Vec<ReportingDescriptor>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportingDescriptor {
    pub id: &'static str,
    pub name: &'static str,
    pub short_description: Text,
    pub full_description: Text,
    pub help: Help,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help_uri: Option<&'static str>,
    pub default_configuration: Configuration,
    pub properties: RuleProperties,
}

#[derive(Debug, Serialize)]
pub struct Text {
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct Help {
    pub text: String,
    pub markdown: String,
}

#[derive(Debug, Serialize)]
pub struct Configuration {
    pub level: &'static str,
}

#[derive(Debug, Serialize)]
pub struct RuleProperties {
    pub tags: Vec<&'static str>,
    /// GitHub shows this as the alert's severity (critical ≥ 9, high ≥ 7,
    /// medium ≥ 4, low otherwise).
    #[serde(rename = "security-severity")]
    pub security_severity: &'static str,
    pub precision: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Invocation {
    pub execution_successful: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_execution_notifications: Vec<Notification>,
}

#[derive(Debug, Serialize)]
pub struct Notification {
    pub level: &'static str,
    pub message: Text,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Location>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SarifResult {
    pub rule_id: &'static str,
    pub rule_index: usize,
    pub level: &'static str,
    pub message: Text,
    pub locations: Vec<Location>,
    pub partial_fingerprints: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suppressions: Vec<Suppression>,
    pub properties: ResultProperties,
}

/// A policy exemption that covers a result: GitHub shows it as dismissed.
#[derive(Debug, Serialize)]
pub struct Suppression {
    pub kind: &'static str,
    pub justification: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultProperties {
    pub verdict: Verdict,
    /// The outermost format of the file, decided by content.
    pub format: Kind,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub member_chain: Vec<String>,
    /// Byte offset inside the innermost member (or the file when the chain
    /// is empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byte_offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub physical_location: PhysicalLocation,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logical_locations: Vec<LogicalLocation>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhysicalLocation {
    pub artifact_location: ArtifactLocation,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactLocation {
    pub uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri_base_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Region {
    pub start_line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byte_offset: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogicalLocation {
    pub name: String,
    pub fully_qualified_name: String,
    pub kind: &'static str,
}

/// A rule exempted by the policy for one file, with the exemption's reason.
pub struct Exempted<'a> {
    pub rule: &'a str,
    pub justification: &'a str,
}

/// Each decision's exemptions, in the shape [`document`] takes.
pub fn exemptions(decisions: &[crate::policy::Decision]) -> Vec<Vec<Exempted<'_>>> {
    decisions
        .iter()
        .map(|d| {
            d.exempted
                .iter()
                .map(|e| Exempted {
                    rule: e.rule,
                    justification: &e.reason,
                })
                .collect()
        })
        .collect()
}

/// A path that could not be scanned (reported as a tool notification, not a
/// result: there is nothing about its content to say).
pub struct ScanError<'a> {
    pub path: &'a str,
    pub error: &'a str,
}

/// Builds the SARIF log for `reports`. `exempted[i]` lists the policy
/// exemptions applied to `reports[i]` (may be shorter than `reports`);
/// `roots` are the paths given to the scan and `cwd` the working directory,
/// both used to make URIs relative.
pub fn document(
    reports: &[FileReport],
    exempted: &[Vec<Exempted>],
    errors: &[ScanError],
    roots: &[PathBuf],
    cwd: &Path,
) -> Log {
    let all = rules::all();
    let index: BTreeMap<&str, usize> = all.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    let mut bases = Bases::new(roots, cwd);

    let mut results = Vec::new();
    for (i, report) in reports.iter().enumerate() {
        let artifact = bases.locate(&report.path);
        let exemptions = exempted.get(i).map(Vec::as_slice).unwrap_or_default();
        for f in &report.findings {
            let rule_index = index.get(f.rule.id).copied().unwrap_or_default();
            let mut res = result(report, f, rule_index, &artifact);
            res.suppressions = exemptions
                .iter()
                .filter(|e| e.rule == f.rule.id)
                .map(|e| Suppression {
                    kind: "external",
                    justification: e.justification.to_string(),
                })
                .collect();
            results.push(res);
        }
    }
    let notifications = errors
        .iter()
        .map(|e| Notification {
            level: "error",
            message: Text {
                text: format!("cannot scan {}: {}", e.path, e.error),
            },
            locations: vec![Location {
                physical_location: PhysicalLocation {
                    artifact_location: bases.locate(e.path),
                    region: None,
                },
                logical_locations: Vec::new(),
            }],
        })
        .collect();

    Log {
        schema: SCHEMA_URI,
        version: VERSION,
        runs: vec![Run {
            tool: Tool {
                driver: Driver {
                    name: "modelgate",
                    semantic_version: env!("CARGO_PKG_VERSION"),
                    rules: all.iter().map(|r| descriptor(r)).collect(),
                },
            },
            original_uri_base_ids: bases.declared,
            invocations: vec![Invocation {
                execution_successful: errors.is_empty(),
                tool_execution_notifications: notifications,
            }],
            results,
            column_kind: "unicodeCodePoints",
        }],
    }
}

/// The SARIF level of a verdict.
pub fn level(v: Verdict) -> &'static str {
    match v {
        Verdict::Malicious => "error",
        Verdict::Suspicious => "warning",
        Verdict::Info => "note",
        Verdict::Clean => "none",
    }
}

fn descriptor(r: &'static Rule) -> ReportingDescriptor {
    let refs: Vec<&str> = r.references.to_vec();
    let mut markdown = format!("{}\n\n**Remediation:** {}", r.explanation, r.remediation);
    if !refs.is_empty() {
        markdown.push_str("\n\n**References:**\n");
        for reference in &refs {
            markdown.push_str(&format!("\n- {reference}"));
        }
    }
    let (severity, precision) = match r.verdict {
        Verdict::Malicious => ("9.0", "high"),
        Verdict::Suspicious => ("5.0", "medium"),
        Verdict::Info | Verdict::Clean => ("1.0", "low"),
    };
    ReportingDescriptor {
        id: r.id,
        name: r.name,
        short_description: Text {
            text: r.summary.to_string(),
        },
        full_description: Text {
            text: r.explanation.to_string(),
        },
        help: Help {
            text: format!("{}\n\nRemediation: {}", r.explanation, r.remediation),
            markdown,
        },
        // References may carry a note after the address ("URL (what)").
        help_uri: refs
            .iter()
            .filter_map(|r| r.split_whitespace().next())
            .find(|u| u.starts_with("https://")),
        default_configuration: Configuration {
            level: level(r.verdict),
        },
        properties: RuleProperties {
            tags: vec!["security", "supply-chain", "ml-model"],
            security_severity: severity,
            precision,
        },
    }
}

fn result(
    report: &FileReport,
    f: &Finding,
    rule_index: usize,
    artifact: &ArtifactLocation,
) -> SarifResult {
    let members = &f.location.members;
    let mut text = f.message.clone();
    if let Some(ev) = &f.evidence {
        text.push_str(&format!(" (evidence: `{ev}`)"));
    }
    if !members.is_empty() {
        text.push_str(&format!(" [in {}]", members.join(" → ")));
    }
    let region = Region {
        start_line: 1,
        byte_offset: if members.is_empty() {
            f.location.offset
        } else {
            None
        },
    };
    let logical_locations = if members.is_empty() {
        Vec::new()
    } else {
        let mut chain = vec![report.path.as_str()];
        chain.extend(members.iter().map(String::as_str));
        vec![LogicalLocation {
            name: members.last().cloned().unwrap_or_default(),
            fully_qualified_name: chain.join("/"),
            kind: "object",
        }]
    };
    let mut fingerprints = BTreeMap::new();
    fingerprints.insert(FINGERPRINT_KEY, fingerprint(f, artifact));
    SarifResult {
        rule_id: f.rule.id,
        rule_index,
        level: level(f.verdict),
        message: Text { text },
        locations: vec![Location {
            physical_location: PhysicalLocation {
                artifact_location: artifact.clone(),
                region: Some(region),
            },
            logical_locations,
        }],
        partial_fingerprints: fingerprints,
        suppressions: Vec::new(),
        properties: ResultProperties {
            verdict: f.verdict,
            format: report.format,
            member_chain: members.clone(),
            byte_offset: f.location.offset,
            evidence: f.evidence.clone(),
        },
    }
}

/// Hash of what identifies a finding across runs: rule, file, member chain
/// and evidence. Fields are separated by NUL, which none of them contains
/// unescaped (evidence escapes control characters).
fn fingerprint(f: &Finding, artifact: &ArtifactLocation) -> String {
    let mut h = Sha256::new();
    h.update(f.rule.id.as_bytes());
    h.update([0]);
    h.update(artifact.uri_base_id.as_deref().unwrap_or("").as_bytes());
    h.update([0]);
    h.update(artifact.uri.as_bytes());
    for m in &f.location.members {
        h.update([0]);
        h.update(m.as_bytes());
    }
    h.update([0, 0]);
    h.update(f.evidence.as_deref().unwrap_or(&f.message).as_bytes());
    let digest = h.finalize();
    let mut hex = String::with_capacity(digest.len() * 2);
    for b in digest.iter() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// Turns report paths into URIs relative to the working directory or to the
/// scanned root they came from, declaring each base used.
struct Bases {
    cwd: PathBuf,
    /// Absolute, normalized roots with the directory their files are
    /// relative to (the root itself, or a file root's parent).
    roots: Vec<(PathBuf, PathBuf)>,
    declared: BTreeMap<String, ArtifactLocation>,
}

impl Bases {
    fn new(roots: &[PathBuf], cwd: &Path) -> Self {
        let cwd = normalize(cwd);
        let mut resolved: Vec<(PathBuf, PathBuf)> = roots
            .iter()
            .filter(|r| r.as_os_str() != "-")
            .map(|r| {
                let abs = normalize(&cwd.join(r));
                let base = if abs.is_file() {
                    abs.parent().map(Path::to_path_buf).unwrap_or(abs.clone())
                } else {
                    abs.clone()
                };
                (abs, base)
            })
            .collect();
        // Longest root first, so that nested roots win.
        resolved.sort_by_key(|(abs, _)| std::cmp::Reverse(abs.as_os_str().len()));
        Bases {
            cwd,
            roots: resolved,
            declared: BTreeMap::new(),
        }
    }

    fn locate(&mut self, path: &str) -> ArtifactLocation {
        if path == "-" {
            return ArtifactLocation {
                uri: "stdin".to_string(),
                uri_base_id: None,
            };
        }
        let abs = normalize(&self.cwd.join(path));
        if let Ok(rel) = abs.strip_prefix(&self.cwd) {
            self.declare(SRCROOT.to_string(), &self.cwd.clone());
            return ArtifactLocation {
                uri: encode_path(rel),
                uri_base_id: Some(SRCROOT.to_string()),
            };
        }
        let found = self
            .roots
            .iter()
            .enumerate()
            .find(|(_, (root, _))| abs.starts_with(root))
            .map(|(i, (_, base))| (i, base.clone()));
        if let Some((i, base)) = found
            && let Ok(rel) = abs.strip_prefix(&base)
        {
            let id = format!("ROOT{i}");
            self.declare(id.clone(), &base);
            return ArtifactLocation {
                uri: encode_path(rel),
                uri_base_id: Some(id),
            };
        }
        ArtifactLocation {
            uri: file_uri(&abs),
            uri_base_id: None,
        }
    }

    fn declare(&mut self, id: String, dir: &Path) {
        self.declared.entry(id).or_insert_with(|| {
            let mut uri = file_uri(dir);
            if !uri.ends_with('/') {
                uri.push('/');
            }
            ArtifactLocation {
                uri,
                uri_base_id: None,
            }
        });
    }
}

/// Removes `.` and resolves `..` lexically; symlinks are left alone so that
/// the URI is the path the user scanned.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn file_uri(abs: &Path) -> String {
    format!("file://{}", encode_path(abs))
}

/// A path for a URI: unreserved characters and `/` stay as they are.
fn encode_path(p: &Path) -> String {
    super::percent_encode(&p.to_string_lossy(), b"/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_inside_the_working_directory_are_relative_to_it() {
        let mut b = Bases::new(&[PathBuf::from("models")], Path::new("/repo"));
        let loc = b.locate("models/a b.pt");
        assert_eq!(loc.uri, "models/a%20b.pt");
        assert_eq!(loc.uri_base_id.as_deref(), Some(SRCROOT));
        let loc = b.locate("/repo/./x/../y.pkl");
        assert_eq!(loc.uri, "y.pkl");
        assert_eq!(b.declared[SRCROOT].uri, "file:///repo/");
    }

    #[test]
    fn paths_outside_are_relative_to_their_root() {
        let mut b = Bases::new(&[PathBuf::from("/data/models")], Path::new("/repo"));
        let loc = b.locate("/data/models/sub/m.pt");
        assert_eq!(loc.uri, "sub/m.pt");
        assert_eq!(loc.uri_base_id.as_deref(), Some("ROOT0"));
        assert_eq!(b.declared["ROOT0"].uri, "file:///data/models/");
        let loc = b.locate("/elsewhere/m.pt");
        assert_eq!(loc.uri, "file:///elsewhere/m.pt");
    }

    #[test]
    fn every_verdict_has_a_level() {
        assert_eq!(level(Verdict::Malicious), "error");
        assert_eq!(level(Verdict::Suspicious), "warning");
        assert_eq!(level(Verdict::Info), "note");
    }
}
