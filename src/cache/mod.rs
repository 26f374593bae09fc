//! The content-addressed verdict cache, shared by `scan`, manifest shards,
//! the daemon and the proxy.
//!
//! A verdict is a pure function of four things, and the key is exactly
//! those four (plus the file's base name, which format sniffing reads):
//! the content's sha256, the modelgate version, [`ENGINE_DIGEST`] (rules,
//! parsers and data tables, hashed by `build.rs`), and the digest of the
//! policy settings that change findings
//! (`Policy::scan_settings_digest`). Change any of them and
//! every old entry is a miss; `modelgate cache prune` removes those.
//!
//! What the policy then *does* with a report (exemptions, path rules,
//! signatures) is decided on every look and never cached.
//!
//! Reads fail closed: an entry that is unreadable, truncated, fails its
//! checksum, names another key, or holds a value this build does not know
//! (a verdict, a status, a rule id) is a miss, and the scan that follows
//! overwrites it. It is never read as "clean".

pub mod manifest;
mod scanner;
mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

pub use scanner::{CacheCounters, CachedScanner, Scanned};
use store::Store;
pub use store::{BackendKind, OBJECTS_DIR, SQLITE_FILE};

use crate::scan::rules::{self, Rule};
use crate::scan::{ENGINE_DIGEST, FileReport, Finding, Kind, Location, ScanStatus, Verdict};

/// The modelgate version baked into every key.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Version of the entry layout; entries of any other are misses.
const ENTRY_VERSION: u32 = 1;
/// First word of every entry.
const ENTRY_MAGIC: &str = "modelgate-verdict";

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("verdict cache {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("verdict cache database {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "verdict cache {} is a {found} cache, not {wanted}: use `--cache-backend {found}` or another directory",
        dir.display(), found = found.as_str(), wanted = wanted.as_str()
    )]
    BackendMismatch {
        dir: PathBuf,
        found: BackendKind,
        wanted: BackendKind,
    },
}

/// Everything a cached report depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheKey {
    /// sha256 of the file's bytes, lower-case hex.
    pub sha256: String,
    /// The file's base name: sniffing reads the extension, and a `.json`
    /// holding a pickle is a disguise where a `.pkl` is not.
    pub name: String,
    pub version: String,
    /// [`ENGINE_DIGEST`] of the build that wrote the entry.
    pub rules_digest: String,
    /// `Policy::scan_settings_digest` (the policy module) of the scan.
    pub settings_digest: String,
}

impl CacheKey {
    /// The key of `sha256` under this build and `settings_digest`.
    pub fn new(sha256: &str, name: &str, settings_digest: &str) -> CacheKey {
        CacheKey {
            sha256: sha256.to_ascii_lowercase(),
            name: crate::scan::base_name(name).to_string(),
            version: VERSION.to_string(),
            rules_digest: ENGINE_DIGEST.to_string(),
            settings_digest: settings_digest.to_string(),
        }
    }

    /// The entry id: a digest of every field, so that entries of other
    /// versions, rules or settings never share an address.
    pub fn id(&self) -> String {
        let mut all = Vec::new();
        for part in [
            ENTRY_MAGIC,
            &self.sha256,
            &self.name,
            &self.version,
            &self.rules_digest,
            &self.settings_digest,
        ] {
            all.extend_from_slice(part.as_bytes());
            all.push(0);
        }
        crate::digest::sha256_bytes(&all)
    }

    /// The engine part of the key: entries of another one can never hit.
    fn engine(&self) -> String {
        format!("{}+{}", self.version, self.rules_digest)
    }
}

/// The digest of the scanner settings that change findings: limits and the
/// pickle allow/deny additions. The policy calls this; tests call it with
/// their own settings.
pub fn settings_digest(
    limits: &crate::scan::Limits,
    allow: &[(String, String)],
    deny: &[(String, String)],
) -> String {
    let mut allow = allow.to_vec();
    allow.sort();
    allow.dedup();
    // Deny order does not change findings either: a global is denied or not.
    let mut deny = deny.to_vec();
    deny.sort();
    deny.dedup();
    let doc = serde_json::json!({ "limits": limits, "allow": allow, "deny": deny });
    crate::digest::sha256_bytes(doc.to_string().as_bytes())
}

// ---- the stored record: typed on the way back -------------------------------

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictRec {
    Clean,
    Info,
    Suspicious,
    Malicious,
}

impl From<Verdict> for VerdictRec {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Clean => VerdictRec::Clean,
            Verdict::Info => VerdictRec::Info,
            Verdict::Suspicious => VerdictRec::Suspicious,
            Verdict::Malicious => VerdictRec::Malicious,
        }
    }
}

impl From<VerdictRec> for Verdict {
    fn from(v: VerdictRec) -> Self {
        match v {
            VerdictRec::Clean => Verdict::Clean,
            VerdictRec::Info => Verdict::Info,
            VerdictRec::Suspicious => Verdict::Suspicious,
            VerdictRec::Malicious => Verdict::Malicious,
        }
    }
}

/// Parses a verdict name; an unknown one is `None`, never a pass.
pub fn parse_verdict(s: &str) -> Option<Verdict> {
    serde_json::from_value::<VerdictRec>(serde_json::Value::String(s.to_string()))
        .ok()
        .map(Verdict::from)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase", deny_unknown_fields)]
pub enum StatusRec {
    Complete,
    Inconclusive { reasons: Vec<String> },
    Skipped { reason: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingRec {
    rule: String,
    verdict: VerdictRec,
    message: String,
    members: Vec<String>,
    offset: Option<u64>,
    evidence: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRec {
    format: Kind,
    size: u64,
    verdict: VerdictRec,
    status: StatusRec,
    findings: Vec<FindingRec>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    key: CacheKey,
    report: ReportRec,
}

/// The rule with this id in this build, if any.
pub fn rule_by_id(id: &str) -> Option<&'static Rule> {
    static BY_ID: OnceLock<HashMap<&'static str, &'static Rule>> = OnceLock::new();
    BY_ID
        .get_or_init(|| rules::all().into_iter().map(|r| (r.id, r)).collect())
        .get(id)
        .copied()
}

impl ReportRec {
    fn of(r: &FileReport) -> ReportRec {
        ReportRec {
            format: r.format,
            size: r.size,
            verdict: r.verdict.into(),
            status: match &r.status {
                ScanStatus::Complete => StatusRec::Complete,
                ScanStatus::Inconclusive { reasons } => StatusRec::Inconclusive {
                    reasons: reasons.clone(),
                },
                ScanStatus::Skipped { reason } => StatusRec::Skipped {
                    reason: reason.clone(),
                },
            },
            findings: r
                .findings
                .iter()
                .map(|f| FindingRec {
                    rule: f.rule.id.to_string(),
                    verdict: f.verdict.into(),
                    message: f.message.clone(),
                    members: f.location.members.clone(),
                    offset: f.location.offset,
                    evidence: f.evidence.clone(),
                })
                .collect(),
        }
    }

    /// The report, or `None` when a rule id is unknown to this build or the
    /// verdict is not the worst finding's (a hand-edited entry).
    fn into_report(self, path: &str) -> Option<FileReport> {
        let findings = self
            .findings
            .into_iter()
            .map(|f| {
                Some(Finding {
                    rule: rule_by_id(&f.rule)?,
                    verdict: f.verdict.into(),
                    message: f.message,
                    location: Location {
                        members: f.members,
                        offset: f.offset,
                    },
                    evidence: f.evidence,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let verdict: Verdict = self.verdict.into();
        if verdict != FileReport::compute_verdict(&findings) {
            return None;
        }
        Some(FileReport {
            path: path.to_string(),
            format: self.format,
            size: self.size,
            verdict,
            status: match self.status {
                StatusRec::Complete => ScanStatus::Complete,
                StatusRec::Inconclusive { reasons } => ScanStatus::Inconclusive { reasons },
                StatusRec::Skipped { reason } => ScanStatus::Skipped { reason },
            },
            findings,
        })
    }
}

/// Why a stored entry was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// Not `modelgate-verdict 1 …` on its first line.
    Header,
    /// The body does not hash to the checksum in the header (truncated,
    /// corrupted, or edited).
    Checksum,
    /// Not a record this build reads (unknown field, verdict, status).
    Body(String),
    /// A whole record, but for another key.
    OtherKey,
    /// A rule id this build does not have, or an inconsistent verdict.
    Content,
}

/// Entry layout: `modelgate-verdict <layout> <engine> <sha256 of body>\n<body JSON>`.
fn encode(key: &CacheKey, report: &FileReport) -> Vec<u8> {
    let body = serde_json::to_vec(&Body {
        key: key.clone(),
        report: ReportRec::of(report),
    })
    .unwrap_or_default();
    let mut out = format!(
        "{ENTRY_MAGIC} {ENTRY_VERSION} {} {}\n",
        key.engine(),
        crate::digest::sha256_bytes(&body)
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The header's engine field and the verified body, or why not.
fn split_entry(bytes: &[u8]) -> Result<(&str, &[u8]), Rejected> {
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(Rejected::Header)?;
    let header = std::str::from_utf8(&bytes[..nl]).map_err(|_| Rejected::Header)?;
    let body = &bytes[nl + 1..];
    let mut words = header.split(' ');
    let (Some(ENTRY_MAGIC), Some(layout), Some(engine), Some(sum), None) = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) else {
        return Err(Rejected::Header);
    };
    if layout != ENTRY_VERSION.to_string() {
        return Err(Rejected::Header);
    }
    if crate::digest::sha256_bytes(body) != sum {
        return Err(Rejected::Checksum);
    }
    Ok((engine, body))
}

fn decode(bytes: &[u8], key: &CacheKey, path: &str) -> Result<FileReport, Rejected> {
    let (engine, body) = split_entry(bytes)?;
    if engine != key.engine() {
        return Err(Rejected::OtherKey);
    }
    let body: Body = serde_json::from_slice(body).map_err(|e| Rejected::Body(e.to_string()))?;
    if &body.key != key {
        return Err(Rejected::OtherKey);
    }
    body.report.into_report(path).ok_or(Rejected::Content)
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    Hit(FileReport),
    Miss,
    /// An entry was there but not trusted: treated as a miss, and the
    /// caller's scan overwrites it.
    Rejected(Rejected),
}

/// An open verdict cache.
pub struct Cache {
    dir: PathBuf,
    kind: BackendKind,
    store: Store,
}

/// The default cache directory: `verdicts/` under the state directory the
/// daemon uses (`MODELGATE_STATE_DIR`, else the platform's).
pub fn default_dir() -> Option<PathBuf> {
    crate::quarantine::default_state_dir().map(|d| d.join("verdicts"))
}

impl Cache {
    /// Opens (creating) the cache in `dir`. A directory that already holds
    /// one backend is opened as that one; asking for the other is an error,
    /// not a second, empty cache beside the first.
    pub fn open(dir: &Path, wanted: Option<BackendKind>) -> Result<Cache, CacheError> {
        let kind = match (BackendKind::detect(dir), wanted) {
            (Some(found), Some(wanted)) if found != wanted => {
                return Err(CacheError::BackendMismatch {
                    dir: dir.to_path_buf(),
                    found,
                    wanted,
                });
            }
            (Some(found), _) => found,
            (None, wanted) => wanted.unwrap_or(BackendKind::Sqlite),
        };
        Ok(Cache {
            dir: dir.to_path_buf(),
            kind,
            store: Store::open(dir, kind)?,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// The cached report for `key`, named `path`.
    pub fn get(&self, key: &CacheKey, path: &str) -> Result<Lookup, CacheError> {
        Ok(match self.store.get(&key.id())? {
            None => Lookup::Miss,
            Some(bytes) => match decode(&bytes, key, path) {
                Ok(r) => Lookup::Hit(r),
                Err(why) => Lookup::Rejected(why),
            },
        })
    }

    pub fn put(&self, key: &CacheKey, report: &FileReport) -> Result<(), CacheError> {
        self.store.put(&key.id(), &encode(key, report))
    }

    /// Counts entries: usable by this build, stale (another version or
    /// rules), unreadable.
    pub fn stats(&self) -> Result<Stats, CacheError> {
        let current = CacheKey::new("", "", "").engine();
        let mut s = Stats {
            dir: self.dir.clone(),
            backend: self.kind,
            entries: 0,
            bytes: 0,
            current: 0,
            stale: 0,
            unreadable: 0,
            oldest: None,
            newest: None,
        };
        self.store.for_each(|e| {
            s.entries += 1;
            s.bytes += e.bytes.len() as u64;
            match split_entry(&e.bytes) {
                Ok((engine, _)) if engine == current => s.current += 1,
                Ok(_) => s.stale += 1,
                Err(_) => s.unreadable += 1,
            }
            s.oldest = Some(s.oldest.map_or(e.written, |o: SystemTime| o.min(e.written)));
            s.newest = Some(s.newest.map_or(e.written, |o: SystemTime| o.max(e.written)));
            Ok(())
        })?;
        Ok(s)
    }

    /// Removes entries that can never hit again (other versions or rules,
    /// unreadable ones), and with `older_than` also those written before
    /// that age; `all` empties the cache. Returns how many were removed.
    pub fn prune(&self, older_than: Option<Duration>, all: bool) -> Result<u64, CacheError> {
        let current = CacheKey::new("", "", "").engine();
        let cutoff = older_than.and_then(|d| SystemTime::now().checked_sub(d));
        let mut doomed = Vec::new();
        self.store.for_each(|e| {
            let stale = !matches!(split_entry(&e.bytes), Ok((engine, _)) if engine == current);
            let old = cutoff.is_some_and(|c| e.written < c);
            if all || stale || old {
                doomed.push(e.id);
            }
            Ok(())
        })?;
        self.store.remove(&doomed)?;
        Ok(doomed.len() as u64)
    }
}

/// What `modelgate cache stats` prints.
#[derive(Debug, Serialize)]
pub struct Stats {
    pub dir: PathBuf,
    pub backend: BackendKind,
    pub entries: u64,
    pub bytes: u64,
    /// Written by this version with these rules: can hit.
    pub current: u64,
    /// Written by another version or rules: can never hit; `prune` removes.
    pub stale: u64,
    pub unreadable: u64,
    #[serde(skip)]
    pub oldest: Option<SystemTime>,
    #[serde(skip)]
    pub newest: Option<SystemTime>,
}

#[cfg(test)]
mod tests;
