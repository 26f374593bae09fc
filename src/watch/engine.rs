//! What happens to one path the watcher noticed: resolve it to the real
//! file, recognise our own tombstones, find the content hash (cheaply when
//! the file is unchanged since last time), decide, and act.
//!
//! Everything here is synchronous and runs on the blocking pool; the
//! async loop in [`super::daemon`] only schedules.
//!
//! Containment: the path must resolve to content inside its root (a
//! snapshot link to `~/.bashrc`, or a path through a symlinked folder, is
//! refused and logged), and the file is then opened from `/` without
//! following any symlink. That one open file is what is hashed, scanned and
//! quarantined: the bytes are mapped once, the hash is taken of the mapped
//! bytes and the scanner reads the same mapping, so a verdict is stored
//! under the hash of exactly what was scanned; the store then acts only on
//! the inode that was scanned.
//!
//! Cost model: a file whose (device, inode, size, mtime, ctime) is already
//! in the database costs one `open`, one `fstat` and a few indexed lookups,
//! however large it is. A new file is hashed once and scanned once per
//! content hash, engine digest, policy and file name: the same checkpoint
//! in two repos, or a restart, does not rescan. A blob's links (to name it
//! after its snapshot entry, and to record them) come from a per-repo link
//! index built by one walk, so a repo of n files costs O(n), not O(n²).
//!
//! The scan cache fails closed: a row that does not read back as a typed
//! record (unknown action or verdict) is a miss and the file is rescanned.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, RwLock};

use super::{Action, daemon_action, to_daemon_action};
use crate::hfcache::{self, Root};
use crate::policy::Policy;
use crate::quarantine::db::{CachedScan, ListKind};
use crate::quarantine::fsio::AtPath;
use crate::quarantine::{self, Link, Request, Store, stat_key};
use crate::scan::{ENGINE_DIGEST, FileReport, Kind, Scanner, Verdict};

/// The code around the detection core that turns a report into an action.
pub const ENGINE: &str = concat!("modelgate-", env!("CARGO_PKG_VERSION"));

/// The scan-cache key of this build: the daemon's version and the digest of
/// the detection core's rules, parsers and data tables
/// ([`ENGINE_DIGEST`]), so that any change to them rescans.
pub fn engine_key() -> String {
    format!("{ENGINE}+scan:{ENGINE_DIGEST}")
}

/// Counters for the sweep summary and `--once` exit code.
#[derive(Debug, Default)]
pub struct Counters {
    pub files: AtomicU64,
    pub scanned: AtomicU64,
    pub cached: AtomicU64,
    pub warned: AtomicU64,
    pub quarantined: AtomicU64,
    /// Paths refused because they lead outside their root.
    pub refused: AtomicU64,
    /// Attempts that failed (each retry counts).
    pub errors: AtomicU64,
}

/// What one watched root held, for the `--once` report.
#[derive(Debug, Default)]
pub struct RootCounters {
    pub files: AtomicU64,
    pub warned: AtomicU64,
    pub quarantined: AtomicU64,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// What processing a path led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not content (gone, a dangling link, a directory, bookkeeping).
    Ignored,
    /// A path that leads outside its root (a symlink, a symlinked folder):
    /// refused and logged, never acted on.
    Refused,
    /// One of our tombstones.
    Tombstone,
    Allowed,
    Warned,
    Quarantined(String),
    /// A signature file landed in this snapshot directory under
    /// `[daemon] require-signature`: its other files deserve another look.
    SignatureLanded(PathBuf),
    /// A file quarantined only because no trusted signature covered it was
    /// put back: the signature that covers it has arrived.
    Released(String),
    /// Something failed (logged and counted); worth another try.
    Failed,
}

/// A cached verdict, typed: a row that does not read back as one (an
/// unknown action, verdict or format, findings that are not a JSON array)
/// is a cache miss, so the file is scanned again; it is never read as "allow".
#[derive(Debug, Clone, PartialEq)]
struct Summary {
    verdict: Verdict,
    action: Action,
    format: Kind,
    rules: Vec<String>,
    findings: serde_json::Value,
}

const VERDICTS: [Verdict; 4] = [
    Verdict::Clean,
    Verdict::Info,
    Verdict::Suspicious,
    Verdict::Malicious,
];

impl Summary {
    fn of(report: &FileReport, action: Action) -> Summary {
        let mut rules: Vec<String> = report
            .findings
            .iter()
            .map(|f| f.rule.id.to_string())
            .collect();
        rules.sort_unstable();
        rules.dedup();
        Summary {
            verdict: report.verdict,
            action,
            format: report.format,
            rules,
            findings: serde_json::to_value(&report.findings)
                .unwrap_or_else(|_| serde_json::Value::Array(Vec::new())),
        }
    }

    fn from_row(row: CachedScan) -> Option<Summary> {
        let verdict = VERDICTS.into_iter().find(|v| v.as_str() == row.verdict)?;
        let action = serde_json::from_value(serde_json::Value::String(row.action)).ok()?;
        let format = Kind::from_name(&row.format)?;
        let findings: serde_json::Value = serde_json::from_str(&row.findings).ok()?;
        if !findings.is_array() {
            return None;
        }
        Some(Summary {
            verdict,
            action,
            format,
            rules: row
                .rules
                .split(',')
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect(),
            findings,
        })
    }

    fn to_row(&self) -> CachedScan {
        CachedScan {
            verdict: self.verdict.as_str().to_string(),
            action: self.action.as_str().to_string(),
            format: self.format.name().to_string(),
            rules: self.rules.join(","),
            findings: self.findings.to_string(),
        }
    }
}

/// Symlinks of one repo by the file they resolve to.
type LinkIndex = HashMap<PathBuf, Vec<Link>>;

pub struct Engine {
    roots: RwLock<Vec<Root>>,
    pub store: Store,
    pub counters: Counters,
    /// Per root, by index in `roots`.
    pub per_root: Vec<RootCounters>,
    scanner: Scanner,
    policy: Policy,
    /// Scan-cache key: engine version, detection-core digest and policy
    /// content.
    cache_key: String,
    /// Real paths being processed: a blob and its snapshot link resolve to
    /// the same file and must not be scanned or quarantined twice at once.
    busy: Mutex<HashSet<PathBuf>>,
    idle: Condvar,
    /// Signature files (path, content hash) already announced.
    signatures_seen: Mutex<HashSet<(PathBuf, String)>>,
    /// Per repo folder, its symlinks by target: built by one walk the first
    /// time a blob of the repo needs its links, then kept current from the
    /// links the daemon processes (walking the repo for every blob made the
    /// cost grow with the square of the repo's size).
    links: Mutex<HashMap<PathBuf, LinkIndex>>,
}

struct BusyGuard<'e> {
    engine: &'e Engine,
    path: PathBuf,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        let mut busy = self.engine.busy.lock().unwrap_or_else(|p| p.into_inner());
        busy.remove(&self.path);
        self.engine.idle.notify_all();
    }
}

/// A read-only view of an open file: the bytes that are hashed are the
/// bytes that are scanned.
enum Bytes {
    Empty,
    Mapped(memmap2::Mmap),
}

impl Bytes {
    fn map(file: &File, len: u64) -> io::Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::Empty);
        }
        // SAFETY: a read-only private map of a file the daemon only reads
        // after its final rename; a writer changing it in place changes its
        // ctime, which is checked before the verdict is stored (and a
        // concurrent truncation could fault, as in `Scanner::scan_file`).
        Ok(Bytes::Mapped(unsafe { memmap2::Mmap::map(file) }?))
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Empty => &[],
            Bytes::Mapped(m) => m,
        }
    }
}

impl Engine {
    pub fn new(
        roots: Vec<Root>,
        store: Store,
        scanner: Scanner,
        policy: Policy,
        policy_key: String,
    ) -> Engine {
        Engine {
            per_root: roots.iter().map(|_| RootCounters::default()).collect(),
            roots: RwLock::new(roots),
            store,
            counters: Counters::default(),
            scanner,
            policy,
            cache_key: format!("{}+policy:{policy_key}", engine_key()),
            busy: Mutex::new(HashSet::new()),
            idle: Condvar::new(),
            signatures_seen: Mutex::new(HashSet::new()),
            links: Mutex::new(HashMap::new()),
        }
    }

    /// A snapshot of the roots (their resolved paths change when a root is
    /// re-created or re-pointed).
    pub fn roots(&self) -> Vec<Root> {
        self.roots.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn root(&self, idx: usize) -> Option<Root> {
        self.roots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(idx)
            .cloned()
    }

    /// Points root `idx` at a new resolved path, and forgets what the link
    /// index knew under the old one.
    pub fn set_root_path(&self, idx: usize, path: PathBuf) {
        let mut roots = self.roots.write().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = roots.get_mut(idx) {
            let old = std::mem::replace(&mut r.path, path);
            self.links
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|repo, _| !repo.starts_with(&old));
        }
    }

    fn claim(&self, real: &Path) -> BusyGuard<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while busy.contains(real) {
            busy = self.idle.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        busy.insert(real.to_path_buf());
        BusyGuard {
            engine: self,
            path: real.to_path_buf(),
        }
    }

    /// Processes one path; errors are logged and counted, never fatal.
    pub fn process(&self, root_idx: usize, path: &Path) -> Outcome {
        match self.try_process(root_idx, path) {
            Ok(o) => o,
            Err(e) => {
                Counters::bump(&self.counters.errors);
                tracing::error!(path = %path.display(), error = %e, "cannot process");
                Outcome::Failed
            }
        }
    }

    fn tally(&self, root_idx: usize, counter: impl Fn(&RootCounters) -> &AtomicU64) {
        if let Some(r) = self.per_root.get(root_idx) {
            Counters::bump(counter(r));
        }
    }

    fn refuse(&self, path: &Path, why: &str) -> Outcome {
        Counters::bump(&self.counters.refused);
        tracing::warn!(path = %path.display(), "refused: {why}; nothing outside the watched root is touched");
        Outcome::Refused
    }

    /// Every symlink in the cache that resolves to `real`, from the link
    /// index (built on first use per repo). Index entries can be stale (a
    /// link removed or re-pointed since), so each is checked again: a few
    /// `canonicalize` calls per blob, not a walk of the repo.
    fn links_to(&self, root: &Root, real: &Path) -> Vec<Link> {
        let mut out: Vec<Link> = Vec::new();
        for repo in hfcache::repos_for(root, real) {
            let mut index = self.links.lock().unwrap_or_else(|p| p.into_inner());
            let links = index.entry(repo.clone()).or_insert_with(|| {
                let mut map: LinkIndex = HashMap::new();
                for l in hfcache::repo_links(root, &repo) {
                    map.entry(l.real).or_default().push(Link {
                        path: l.path,
                        target: l.target,
                    });
                }
                map
            });
            if let Some(ls) = links.get(real) {
                out.extend(ls.iter().cloned());
            }
        }
        out.retain(|l| fs::canonicalize(&l.path).is_ok_and(|t| t == real));
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out.dedup_by(|a, b| a.path == b.path);
        out
    }

    /// Keeps the link index of the link's repo current (if it was built).
    fn note_link(&self, root: &Root, link: &Path, real: &Path) {
        let Some(repo) = hfcache::repo_of(root, link) else {
            return;
        };
        let mut index = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let Some(map) = index.get_mut(&repo) else {
            return;
        };
        let Ok(target) = fs::read_link(link) else {
            return;
        };
        let entry = map.entry(real.to_path_buf()).or_default();
        if !entry.iter().any(|l| l.path == link) {
            entry.push(Link {
                path: link.to_path_buf(),
                target,
            });
        }
    }

    fn try_process(&self, root_idx: usize, path: &Path) -> Result<Outcome, quarantine::Error> {
        let Some(root) = self.root(root_idx) else {
            return Ok(Outcome::Ignored);
        };
        let root = &root;
        let place = hfcache::classify(root, path);
        if !place.is_content() {
            return Ok(Outcome::Ignored);
        }
        let lmeta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Outcome::Ignored),
            Err(e) => {
                return Err(quarantine::Error::Io {
                    context: format!("cannot stat {}", path.display()),
                    source: e,
                });
            }
        };
        let is_link = lmeta.file_type().is_symlink();
        if !is_link && !lmeta.is_file() {
            return Ok(Outcome::Ignored);
        }
        // Where the path really leads must be content inside this root: a
        // symlink to `~/.bashrc`, or a path through a symlinked folder, is
        // refused rather than scanned, tombstoned or moved.
        let real = match fs::canonicalize(path) {
            Ok(r) => r,
            Err(_) => return Ok(Outcome::Ignored),
        };
        if !is_link && real != path {
            return Ok(self.refuse(path, "reached through a symlinked folder"));
        }
        if !hfcache::is_content_inside(root, &real) {
            if fs::metadata(&real).is_ok_and(|m| m.is_dir()) {
                return Ok(self.refuse(path, "symlinked folder is not followed"));
            }
            return Ok(self.refuse(
                path,
                &format!(
                    "symlink leads outside the watched root, to {}",
                    real.display()
                ),
            ));
        }
        if is_link {
            self.note_link(root, path, &real);
        }
        let _guard = self.claim(&real);
        // Opened once, never through a symlink: the file hashed, scanned
        // and (if it comes to that) quarantined is this one.
        let at = match AtPath::open(&real, false) {
            Ok(at) => at,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Outcome::Ignored),
            Err(_) => return Ok(self.refuse(path, "a folder on the way is a symlink")),
        };
        let file = match at.open_read() {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Outcome::Ignored),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Ok(self.refuse(path, "the file was replaced by a symlink"));
            }
            Err(e) => {
                return Err(quarantine::Error::Io {
                    context: format!("cannot open {}", real.display()),
                    source: e,
                });
            }
        };
        let io_err = |e: io::Error| quarantine::Error::Io {
            context: format!("cannot read {}", real.display()),
            source: e,
        };
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Ok(Outcome::Ignored);
        }
        let mut head = [0u8; 1024];
        let n = read_head(&file, &mut head).map_err(io_err)?;
        if let Some(id) = quarantine::parse_tombstone(head.get(..n).unwrap_or_default()) {
            if is_link && let Ok(target) = fs::read_link(path) {
                self.store.add_link(
                    &id,
                    Link {
                        path: path.to_path_buf(),
                        target,
                    },
                )?;
            }
            return self.release_if_signed(&id);
        }
        Counters::bump(&self.counters.files);
        self.tally(root_idx, |r| &r.files);

        let key = stat_key(&meta);
        let known = self.store.db().seen(&key)?;
        let mut bytes: Option<Bytes> = None;
        let sha = match &known {
            Some(s) => s.clone(),
            None => {
                let b = Bytes::map(&file, meta.len()).map_err(io_err)?;
                let s = crate::digest::sha256_bytes(b.as_slice());
                bytes = Some(b);
                s
            }
        };

        // Name the scan after the snapshot entry when we can.
        let mut links: Option<Vec<Link>> = None;
        let shown: PathBuf = if place.is_named() {
            path.to_path_buf()
        } else {
            let l = self.links_to(root, &real);
            let name = l
                .iter()
                .map(|l| l.path.as_path())
                .find(|p| hfcache::is_snapshot_entry(p))
                .map(Path::to_path_buf)
                .unwrap_or_else(|| real.clone());
            links = Some(l);
            name
        };
        let display_str = shown.to_string_lossy().into_owned();
        let name_key = shown
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();

        let listed = self.store.db().list_of(&sha)?;
        let cached = self.cached(&sha, &name_key);
        let (action, summary, reason, sha) = match (listed, cached) {
            (Some(ListKind::Allow), _) => {
                tracing::debug!(path = %shown.display(), sha256 = sha, "content allowed by an earlier restore");
                if known.is_none() {
                    self.store.db().remember_seen(&key, &sha)?;
                }
                return Ok(Outcome::Allowed);
            }
            (Some(ListKind::Deny), cached) => {
                let summary = cached.unwrap_or_else(|| Summary {
                    verdict: Verdict::Malicious,
                    action: Action::Quarantine,
                    format: Kind::Unknown,
                    rules: Vec::new(),
                    findings: serde_json::Value::Array(Vec::new()),
                });
                (Action::Quarantine, summary, "deny-list", sha)
            }
            (None, Some(c)) => {
                Counters::bump(&self.counters.cached);
                tracing::debug!(path = %shown.display(), sha256 = sha, verdict = c.verdict.as_str(), "unchanged content; cached verdict");
                (c.action, c, "scan", sha)
            }
            (None, None) => {
                // Hash and scan the same mapped bytes: the verdict is stored
                // under the hash of exactly what was scanned.
                let b = match bytes.take() {
                    Some(b) => b,
                    None => Bytes::map(&file, meta.len()).map_err(io_err)?,
                };
                let sha = crate::digest::sha256_bytes(b.as_slice());
                let report = self.scanner.scan_mapped(&display_str, b.as_slice(), &real);
                drop(b);
                // Written in place while being read: neither hash nor verdict
                // can be trusted; the write brings another event.
                let after = file.metadata().map_err(io_err)?;
                if stat_key(&after) != key {
                    return Ok(Outcome::Ignored);
                }
                Counters::bump(&self.counters.scanned);
                let action = daemon_action(&self.policy, &report, &sha);
                let summary = Summary::of(&report, action);
                self.store.db().remember_scan(
                    &sha,
                    &self.cache_key,
                    &name_key,
                    &summary.to_row(),
                )?;
                tracing::debug!(path = %shown.display(), sha256 = sha, verdict = summary.verdict.as_str(), format = summary.format.name(), "scanned");
                if action == Action::Warn {
                    Counters::bump(&self.counters.warned);
                    self.tally(root_idx, |r| &r.warned);
                    tracing::warn!(
                        path = %shown.display(),
                        sha256 = sha,
                        verdict = summary.verdict.as_str(),
                        rules = summary.rules.join(","),
                        "suspicious download left in place"
                    );
                }
                (action, summary, "scan", sha)
            }
        };
        if known.as_deref() != Some(sha.as_str()) {
            self.store.db().remember_seen(&key, &sha)?;
        }
        // Where the file is and which signature sits beside it are not part
        // of the content, and the signature can land after the file: judged
        // on every look, never cached.
        let signature = self.policy.decide_download_signature(&shown, &sha);
        let signature_action = signature
            .as_ref()
            .map_or(Action::Allow, |d| to_daemon_action(d.action));
        if let Some(d) = &signature
            && signature_action == Action::Warn
        {
            Counters::bump(&self.counters.warned);
            self.tally(root_idx, |r| &r.warned);
            for b in &d.basis {
                tracing::warn!(path = %shown.display(), sha256 = sha, rule = b.rule.id, "{}", b.message);
            }
        }
        let content_action = action;
        let action = content_action.max(signature_action);
        let landed = self.signature_landed(&shown, &sha);
        let outcome = match action {
            Action::Allow => Outcome::Allowed,
            Action::Warn => Outcome::Warned,
            Action::Quarantine => {
                let mut links = links.unwrap_or_else(|| self.links_to(root, &real));
                if is_link
                    && !links.iter().any(|l| l.path == path)
                    && let Ok(target) = fs::read_link(path)
                {
                    links.push(Link {
                        path: path.to_path_buf(),
                        target,
                    });
                }
                let mut rules = summary.rules.clone();
                let mut findings = match summary.findings.clone() {
                    serde_json::Value::Array(a) => a,
                    _ => Vec::new(),
                };
                if let Some(d) = signature.as_ref().filter(|_| signature_action == action) {
                    for b in &d.basis {
                        rules.push(b.rule.id.to_string());
                        findings.push(serde_json::to_value(b).unwrap_or_default());
                    }
                }
                let content_is_why = content_action == Action::Quarantine;
                let req = Request {
                    path: real.clone(),
                    stat_key: key.clone(),
                    sha256: sha.clone(),
                    links,
                    display: display_str,
                    reason: if content_is_why { reason } else { "signature" }.to_string(),
                    verdict: summary.verdict.as_str().to_string(),
                    format: summary.format.name().to_string(),
                    rules,
                    findings: serde_json::Value::Array(findings),
                    deny_content: content_is_why,
                };
                match self.store.quarantine(req) {
                    Ok(rec) => {
                        Counters::bump(&self.counters.quarantined);
                        self.tally(root_idx, |r| &r.quarantined);
                        tracing::warn!(
                            id = rec.id,
                            path = %rec.path.display(),
                            name = rec.display,
                            sha256 = rec.sha256,
                            rules = rec.rules.join(","),
                            reason = rec.reason,
                            "QUARANTINED: {} ({}); restore with `modelgate quarantine restore {}`",
                            rec.display,
                            if rec.rules.is_empty() { rec.reason.clone() } else { rec.rules.join(",") },
                            rec.id
                        );
                        Outcome::Quarantined(rec.id)
                    }
                    Err(quarantine::Error::Conflict(msg)) => {
                        tracing::info!(path = %real.display(), "{msg}; will act on the new file when it is reported");
                        Outcome::Ignored
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        Ok(match landed {
            Some(snapshot) if matches!(outcome, Outcome::Allowed | Outcome::Warned) => {
                Outcome::SignatureLanded(snapshot)
            }
            _ => outcome,
        })
    }

    /// The cached verdict for this content and name, if one reads back as
    /// a typed record; anything else is a miss.
    fn cached(&self, sha: &str, name_key: &str) -> Option<Summary> {
        let row = match self.store.db().cached_scan(sha, &self.cache_key, name_key) {
            Ok(r) => r?,
            Err(e) => {
                tracing::warn!(sha256 = sha, error = %e, "unreadable scan-cache row; scanning again");
                return None;
            }
        };
        let parsed = Summary::from_row(row);
        if parsed.is_none() {
            tracing::warn!(
                sha256 = sha,
                "scan-cache row with an unknown value; scanning again"
            );
        }
        parsed
    }

    /// The snapshot directory `shown` belongs to when `shown` is a
    /// signature file the `[daemon] require-signature` could rely on, seen
    /// with this content for the first time (so that looking at the
    /// snapshot again does not announce it again).
    fn signature_landed(&self, shown: &Path, sha256: &str) -> Option<PathBuf> {
        self.policy.download_signature()?;
        if !shown.to_string_lossy().ends_with(".sig") {
            return None;
        }
        let loc = hfcache::locate(shown)?;
        let mut seen = self
            .signatures_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        seen.insert((shown.to_path_buf(), sha256.to_string()))
            .then(|| loc.snapshot_dir())
    }

    /// At one of our tombstones: a file quarantined only because no
    /// trusted signature covered it goes back once one does (the
    /// signature landed after the file). Files quarantined for their
    /// content stay where they are.
    fn release_if_signed(&self, id: &str) -> Result<Outcome, quarantine::Error> {
        if self.policy.download_signature().is_none() {
            return Ok(Outcome::Tombstone);
        }
        let rec = match self.store.get(id) {
            Ok(r) => r,
            Err(quarantine::Error::NotFound(_)) => return Ok(Outcome::Tombstone),
            Err(e) => return Err(e),
        };
        let shown = Path::new(&rec.display);
        if rec.content_denied
            || rec.state != quarantine::State::Quarantined
            || hfcache::locate(shown).is_none()
        {
            return Ok(Outcome::Tombstone);
        }
        if self
            .policy
            .decide_download_signature(shown, &rec.sha256)
            .is_some()
        {
            return Ok(Outcome::Tombstone);
        }
        match self
            .store
            .release(id, "a trusted signature now covers the file")
        {
            Ok(rec) => {
                tracing::info!(
                    id = rec.id,
                    name = rec.display,
                    sha256 = rec.sha256,
                    "RELEASED: {} is covered by a trusted signature that arrived after it",
                    rec.display
                );
                Ok(Outcome::Released(rec.id))
            }
            Err(quarantine::Error::Conflict(msg)) => {
                tracing::info!(id, "{msg}; left quarantined");
                Ok(Outcome::Tombstone)
            }
            Err(e) => Err(e),
        }
    }
}

/// Reads up to `buf.len()` bytes from the start of the file.
fn read_head(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let Some(rest) = buf.get_mut(n..) else { break };
        match file.read_at(rest, n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(action: &str, verdict: &str, findings: &str) -> CachedScan {
        CachedScan {
            verdict: verdict.into(),
            action: action.into(),
            format: "pickle".into(),
            rules: "PKL001".into(),
            findings: findings.into(),
        }
    }

    fn s_row_with_format(format: &str) -> CachedScan {
        CachedScan {
            format: format.into(),
            ..row("allow", "clean", "[]")
        }
    }

    #[test]
    fn cached_rows_read_back_typed_or_not_at_all() {
        let s = Summary::from_row(row("quarantine", "malicious", "[]")).unwrap();
        assert_eq!(s.action, Action::Quarantine);
        assert_eq!(Summary::from_row(s.to_row()), Some(s));
        // Unknown values are a miss, never an allow.
        assert_eq!(Summary::from_row(row("allow-ish", "clean", "[]")), None);
        assert_eq!(Summary::from_row(row("", "clean", "[]")), None);
        assert_eq!(Summary::from_row(row("allow", "fine", "[]")), None);
        assert_eq!(Summary::from_row(row("allow", "clean", "{}")), None);
        assert_eq!(Summary::from_row(row("allow", "clean", "[")), None);
        let mut other_format = s_row_with_format("pickel");
        assert_eq!(Summary::from_row(other_format.clone()), None);
        other_format.format = "safetensors".into();
        assert!(Summary::from_row(other_format).is_some());
    }

    #[test]
    fn cache_key_carries_the_engine_digest() {
        assert!(engine_key().contains(ENGINE_DIGEST));
    }
}
