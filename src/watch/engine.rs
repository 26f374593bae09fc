//! What happens to one path the watcher noticed: resolve it to the real
//! file, recognise our own tombstones, find the content hash (cheaply when
//! the file is unchanged since last time), decide, and act.
//!
//! Everything here is synchronous and runs on the blocking pool; the
//! async loop in [`super::daemon`] only schedules.
//!
//! Cost model: a file whose (device, inode, size, mtime, ctime) is already
//! in the database costs one `lstat` and two indexed lookups, however large
//! it is. A new file is hashed once (sequential read) and scanned once per
//! content hash, engine version and file name: the same checkpoint in two
//! repos, or a restart, does not rescan.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use super::hf_cache::{self, Place, Root};
use super::{Action, daemon_action, to_daemon_action};
use crate::policy::Policy;
use crate::quarantine::db::{CachedScan, ListKind};
use crate::quarantine::{self, Link, Request, Store, stat_key};
use crate::scan::{FileReport, Scanner};

/// The engine version that keys the scan cache: a new release rescans.
pub const ENGINE: &str = concat!("modelgate-", env!("CARGO_PKG_VERSION"));

/// Counters for the sweep summary and `--once` exit code.
#[derive(Debug, Default)]
pub struct Counters {
    pub files: AtomicU64,
    pub scanned: AtomicU64,
    pub cached: AtomicU64,
    pub warned: AtomicU64,
    pub quarantined: AtomicU64,
    pub errors: AtomicU64,
}

impl Counters {
    fn bump(c: &AtomicU64) {
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
}

pub struct Engine {
    pub roots: Vec<Root>,
    pub store: Store,
    pub counters: Counters,
    scanner: Scanner,
    policy: Policy,
    /// Scan-cache key: engine version and policy content.
    cache_key: String,
    /// Real paths being processed: a blob and its snapshot link resolve to
    /// the same file and must not be scanned or quarantined twice at once.
    busy: Mutex<HashSet<PathBuf>>,
    idle: Condvar,
    /// Signature files (path, content hash) already announced.
    signatures_seen: Mutex<HashSet<(PathBuf, String)>>,
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

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Allow => "allow",
        Action::Warn => "warn",
        Action::Quarantine => "quarantine",
    }
}

fn parse_action(s: &str) -> Action {
    match s {
        "quarantine" => Action::Quarantine,
        "warn" => Action::Warn,
        _ => Action::Allow,
    }
}

fn summarize(report: &FileReport, action: Action) -> CachedScan {
    let mut rules: Vec<&str> = report.findings.iter().map(|f| f.rule.id).collect();
    rules.sort_unstable();
    rules.dedup();
    CachedScan {
        verdict: report.verdict.as_str().to_string(),
        action: action_name(action).to_string(),
        format: report.format.clone(),
        rules: rules.join(","),
        findings: serde_json::to_string(&report.findings).unwrap_or_else(|_| "[]".into()),
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
            roots,
            store,
            counters: Counters::default(),
            scanner,
            policy,
            cache_key: format!("{ENGINE}+policy:{policy_key}"),
            busy: Mutex::new(HashSet::new()),
            idle: Condvar::new(),
            signatures_seen: Mutex::new(HashSet::new()),
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
                Outcome::Ignored
            }
        }
    }

    fn try_process(&self, root_idx: usize, path: &Path) -> Result<Outcome, quarantine::Error> {
        let Some(root) = self.roots.get(root_idx) else {
            return Ok(Outcome::Ignored);
        };
        let place = hf_cache::classify(root, path);
        if matches!(place, Place::Ignore | Place::Container) {
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
        let real = if lmeta.file_type().is_symlink() {
            match fs::canonicalize(path) {
                Ok(r) => r,
                Err(_) => return Ok(Outcome::Ignored),
            }
        } else if lmeta.is_file() {
            path.to_path_buf()
        } else {
            return Ok(Outcome::Ignored);
        };
        let _guard = self.claim(&real);
        let meta = match fs::metadata(&real) {
            Ok(m) if m.is_file() => m,
            _ => return Ok(Outcome::Ignored),
        };
        if let Some(id) = quarantine::tombstone_id(&real) {
            if lmeta.file_type().is_symlink()
                && let Ok(target) = fs::read_link(path)
            {
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
        let io_err = |e: io::Error| quarantine::Error::Io {
            context: format!("cannot read {}", real.display()),
            source: e,
        };

        let key = stat_key(&meta);
        let known = self.store.db().seen(&key)?;
        let sha = match known {
            Some(s) => s,
            None => {
                let s = quarantine::fsio::sha256_file(&real).map_err(io_err)?;
                // The hash is only valid if the file did not change while it
                // was read; if it did, a later event brings it back.
                let after = fs::metadata(&real).map_err(io_err)?;
                if stat_key(&after) != key {
                    return Ok(Outcome::Ignored);
                }
                self.store.db().remember_seen(&key, &s)?;
                s
            }
        };

        // Name the scan after the snapshot entry when we can.
        let mut links: Option<Vec<Link>> = None;
        let shown: PathBuf = if place.is_named() {
            path.to_path_buf()
        } else {
            let l = hf_cache::links_to(root, &real);
            let name = hf_cache::snapshot_name(&l)
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
        // Bound first: a guard in a `match` scrutinee would live through the
        // arms, which lock the database again.
        let cached = self
            .store
            .db()
            .cached_scan(&sha, &self.cache_key, &name_key)?;
        let (action, summary, reason) = match listed {
            Some(ListKind::Allow) => {
                tracing::debug!(path = %shown.display(), sha256 = sha, "content allowed by an earlier restore");
                return Ok(Outcome::Allowed);
            }
            Some(ListKind::Deny) => {
                let summary = cached.unwrap_or_else(|| CachedScan {
                    verdict: "malicious".into(),
                    action: "quarantine".into(),
                    format: "unknown".into(),
                    rules: String::new(),
                    findings: "[]".into(),
                });
                (Action::Quarantine, summary, "deny-list")
            }
            None => match cached {
                Some(c) => {
                    Counters::bump(&self.counters.cached);
                    tracing::debug!(path = %shown.display(), sha256 = sha, verdict = c.verdict, "unchanged content; cached verdict");
                    (parse_action(&c.action), c, "scan")
                }
                None => {
                    let report = match self.scanner.scan_file(&real, &display_str) {
                        Ok(r) => r,
                        Err(e) => {
                            return Err(quarantine::Error::Io {
                                context: format!("cannot scan {}", real.display()),
                                source: io::Error::other(e.to_string()),
                            });
                        }
                    };
                    Counters::bump(&self.counters.scanned);
                    let action = daemon_action(&self.policy, &report, &sha);
                    let summary = summarize(&report, action);
                    self.store
                        .db()
                        .remember_scan(&sha, &self.cache_key, &name_key, &summary)?;
                    tracing::debug!(path = %shown.display(), sha256 = sha, verdict = summary.verdict, format = summary.format, "scanned");
                    if action == Action::Warn {
                        Counters::bump(&self.counters.warned);
                        tracing::warn!(
                            path = %shown.display(),
                            sha256 = sha,
                            verdict = summary.verdict,
                            rules = summary.rules,
                            "suspicious download left in place"
                        );
                    }
                    (action, summary, "scan")
                }
            },
        };
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
                let mut links = links.unwrap_or_else(|| hf_cache::links_to(root, &real));
                if lmeta.file_type().is_symlink()
                    && !links.iter().any(|l| l.path == path)
                    && let Ok(target) = fs::read_link(path)
                {
                    links.push(Link {
                        path: path.to_path_buf(),
                        target,
                    });
                }
                let mut rules: Vec<String> = summary
                    .rules
                    .split(',')
                    .filter(|r| !r.is_empty())
                    .map(str::to_string)
                    .collect();
                let mut findings: Vec<serde_json::Value> =
                    serde_json::from_str(&summary.findings).unwrap_or_default();
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
                    verdict: summary.verdict.clone(),
                    format: summary.format.clone(),
                    rules,
                    findings: serde_json::Value::Array(findings),
                    deny_content: content_is_why,
                };
                match self.store.quarantine(req) {
                    Ok(rec) => {
                        Counters::bump(&self.counters.quarantined);
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

    /// The snapshot directory `shown` belongs to when `shown` is a
    /// signature file the `[daemon] require-signature` could rely on, seen
    /// with this content for the first time (so that looking at the
    /// snapshot again does not announce it again).
    fn signature_landed(&self, shown: &Path, sha256: &str) -> Option<PathBuf> {
        self.policy.download_signature()?;
        if !shown.to_string_lossy().ends_with(".sig") {
            return None;
        }
        let loc = crate::bom::hfcache::locate(shown)?;
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
            || crate::bom::hfcache::locate(shown).is_none()
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
