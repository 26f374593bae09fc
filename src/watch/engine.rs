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
//! content hash, file name and verdict-cache key (version, detection-core
//! digest, the policy's scan settings): the same checkpoint in two repos, a
//! restart, or a file `modelgate scan --cache` already judged is not
//! rescanned. The policy's decision is taken again on every look (it is
//! cheap), so editing an action in `[daemon]` applies without a rescan. A
//! blob's links (to name it after its snapshot entry, and to record them)
//! come from a per-repo link index built by one walk, so a repo of n files
//! costs O(n), not O(n²).
//!
//! The verdict cache ([`crate::cache`]) fails closed: an entry that does
//! not read back as a typed, checksummed record for this exact key is a
//! miss and the file is rescanned.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, RwLock};

use super::{Action, daemon_action, to_daemon_action};
use crate::cache::CachedScanner;
use crate::hfcache::{self, Root};
use crate::policy::Policy;
use crate::quarantine::db::ListKind;
use crate::quarantine::fsio::AtPath;
use crate::quarantine::{self, Link, Request, Store, stat_key};
use crate::scan::{FileReport, Kind, Verdict};

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

/// The tracing target of the one event each processed path ends with.
pub const PROCESSED_TARGET: &str = "modelgate::processed";

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

impl Outcome {
    /// The outcome's name in the `processed` event.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ignored => "ignored",
            Outcome::Refused => "refused",
            Outcome::Tombstone => "tombstone",
            Outcome::Allowed => "allowed",
            Outcome::Warned => "warned",
            Outcome::Quarantined(_) => "quarantined",
            Outcome::SignatureLanded(_) => "signature-landed",
            Outcome::Released(_) => "released",
            Outcome::Failed => "failed",
        }
    }
}

/// A stage either hands its result to the next one or ends processing
/// with an outcome.
type Stage<T> = Result<ControlFlow<Outcome, T>, quarantine::Error>;

/// Continues with a stage's result, or returns the outcome it ended with.
macro_rules! proceed {
    ($stage:expr) => {
        match $stage? {
            ControlFlow::Continue(v) => v,
            ControlFlow::Break(outcome) => return Ok(outcome),
        }
    };
}

/// A path that leads to content inside its root.
struct Found {
    /// As the event or the sweep named it.
    path: PathBuf,
    /// Whether the path names the file itself (a snapshot entry, a
    /// local-dir file) rather than a blob known by its hash.
    named: bool,
    is_link: bool,
    real: PathBuf,
}

/// The one open handle everything after is about.
struct Opened {
    file: File,
    len: u64,
    /// The file's identity on disk: see [`stat_key`].
    key: String,
}

struct Hashed {
    /// The hash the state database had for this identity on disk.
    known: Option<String>,
    sha256: String,
    /// The bytes that were hashed, when they were.
    bytes: Option<Bytes>,
}

/// The name the content is judged and reported under.
struct Named {
    shown: PathBuf,
    display: String,
    /// The blob's links, when finding the name needed them.
    links: Option<Vec<Link>>,
}

/// What the content alone leads to.
struct Judged {
    /// `None` only for deny-listed content whose report is not cached.
    report: Option<FileReport>,
    action: Action,
    /// Why, for the quarantine record: `scan` or `deny-list`.
    reason: &'static str,
    sha256: String,
    /// Scanned just now (rather than known from the cache or a list).
    fresh: bool,
}

struct Decided {
    judged: Judged,
    signature: Option<crate::policy::Decision>,
    signature_action: Action,
    action: Action,
    /// A signature file seen for the first time: its snapshot directory.
    landed: Option<PathBuf>,
}

/// The distinct rule ids of a report's findings, sorted.
fn rule_ids(report: &FileReport) -> Vec<String> {
    let mut rules: Vec<String> = report
        .findings
        .iter()
        .map(|f| f.rule.id.to_string())
        .collect();
    rules.sort_unstable();
    rules.dedup();
    rules
}

fn read_error(real: &Path, source: io::Error) -> quarantine::Error {
    quarantine::Error::Io {
        context: format!("cannot read {}", real.display()),
        source,
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
    /// The scanner behind the shared verdict cache, built with the
    /// policy's scan settings.
    scanner: CachedScanner,
    policy: Policy,
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
    pub fn new(roots: Vec<Root>, store: Store, scanner: CachedScanner, policy: Policy) -> Engine {
        Engine {
            per_root: roots.iter().map(|_| RootCounters::default()).collect(),
            roots: RwLock::new(roots),
            store,
            counters: Counters::default(),
            scanner,
            policy,
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
    ///
    /// Every path ends with one `processed` event (target
    /// [`PROCESSED_TARGET`]) naming the path and its outcome: the daemon's
    /// audit trail, and what a supervisor or a test waits for instead of
    /// guessing how long the daemon needs. Paths that are not content
    /// (bookkeeping, folders, a file already gone) log it at debug level.
    pub fn process(&self, root_idx: usize, path: &Path) -> Outcome {
        let outcome = match self.try_process(root_idx, path) {
            Ok(o) => o,
            Err(e) => {
                Counters::bump(&self.counters.errors);
                tracing::error!(path = %path.display(), error = %e, "cannot process");
                Outcome::Failed
            }
        };
        let id = match &outcome {
            Outcome::Quarantined(id) | Outcome::Released(id) => Some(id.as_str()),
            _ => None,
        };
        if outcome == Outcome::Ignored {
            tracing::debug!(target: PROCESSED_TARGET, path = %path.display(), outcome = outcome.as_str(), "processed");
        } else {
            tracing::info!(target: PROCESSED_TARGET, path = %path.display(), outcome = outcome.as_str(), id, "processed");
        }
        outcome
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

    /// The stages, each its own function: resolve the path → claim the
    /// real file → open it (or recognise a tombstone) → hash → name →
    /// cached decision, else scan → decide → act.
    fn try_process(&self, root_idx: usize, path: &Path) -> Result<Outcome, quarantine::Error> {
        let Some(root) = self.root(root_idx) else {
            return Ok(Outcome::Ignored);
        };
        let root = &root;
        let found = proceed!(self.resolve(root, path));
        let _guard = self.claim(&found.real);
        let file = proceed!(self.open(&found));
        Counters::bump(&self.counters.files);
        self.tally(root_idx, |r| &r.files);
        let mut hashed = self.hash(&found, &file)?;
        let named = self.name(root, &found);
        let judged = match proceed!(self.cached_decision(&file, &hashed, &named)) {
            Some(judged) => judged,
            None => proceed!(self.scan(&found, &file, &mut hashed, &named)),
        };
        if hashed.known.as_deref() != Some(judged.sha256.as_str()) {
            self.store.db().remember_seen(&file.key, &judged.sha256)?;
        }
        let decided = self.decide(root_idx, &named, judged);
        self.act(root_idx, root, &found, &file, named, decided)
    }

    /// Where `path` really leads, if it is content inside `root`: a
    /// symlink to `~/.bashrc`, or a path through a symlinked folder, is
    /// refused rather than scanned, tombstoned or moved.
    fn resolve(&self, root: &Root, path: &Path) -> Stage<Found> {
        let place = hfcache::classify(root, path);
        if !place.is_content() {
            return Ok(ControlFlow::Break(Outcome::Ignored));
        }
        let lmeta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(ControlFlow::Break(Outcome::Ignored));
            }
            Err(e) => {
                return Err(quarantine::Error::Io {
                    context: format!("cannot stat {}", path.display()),
                    source: e,
                });
            }
        };
        let is_link = lmeta.file_type().is_symlink();
        if !is_link && !lmeta.is_file() {
            return Ok(ControlFlow::Break(Outcome::Ignored));
        }
        let Ok(real) = fs::canonicalize(path) else {
            return Ok(ControlFlow::Break(Outcome::Ignored));
        };
        if !is_link && real != path {
            return Ok(ControlFlow::Break(
                self.refuse(path, "reached through a symlinked folder"),
            ));
        }
        if !hfcache::is_content_inside(root, &real) {
            if fs::metadata(&real).is_ok_and(|m| m.is_dir()) {
                return Ok(ControlFlow::Break(
                    self.refuse(path, "symlinked folder is not followed"),
                ));
            }
            return Ok(ControlFlow::Break(self.refuse(
                path,
                &format!(
                    "symlink leads outside the watched root, to {}",
                    real.display()
                ),
            )));
        }
        if is_link {
            self.note_link(root, path, &real);
        }
        Ok(ControlFlow::Continue(Found {
            path: path.to_path_buf(),
            named: place.is_named(),
            is_link,
            real,
        }))
    }

    /// Opens the real file once, never through a symlink: the file hashed,
    /// scanned and (if it comes to that) quarantined is this one. One of
    /// our tombstones ends here.
    fn open(&self, found: &Found) -> Stage<Opened> {
        let (path, real) = (found.path.as_path(), &found.real);
        let at = match AtPath::open(real, false) {
            Ok(at) => at,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(ControlFlow::Break(Outcome::Ignored));
            }
            Err(_) => {
                return Ok(ControlFlow::Break(
                    self.refuse(path, "a folder on the way is a symlink"),
                ));
            }
        };
        let file = match at.open_read() {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(ControlFlow::Break(Outcome::Ignored));
            }
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Ok(ControlFlow::Break(
                    self.refuse(path, "the file was replaced by a symlink"),
                ));
            }
            Err(e) => {
                return Err(quarantine::Error::Io {
                    context: format!("cannot open {}", real.display()),
                    source: e,
                });
            }
        };
        let meta = file.metadata().map_err(|e| read_error(real, e))?;
        if !meta.is_file() {
            return Ok(ControlFlow::Break(Outcome::Ignored));
        }
        let mut head = [0u8; 1024];
        let n = read_head(&file, &mut head).map_err(|e| read_error(real, e))?;
        if let Some(id) = quarantine::parse_tombstone(head.get(..n).unwrap_or_default()) {
            if found.is_link
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
            return self.release_if_signed(&id).map(ControlFlow::Break);
        }
        Ok(ControlFlow::Continue(Opened {
            key: stat_key(&meta),
            len: meta.len(),
            file,
        }))
    }

    /// The content hash: from the state database when the file's identity
    /// on disk is unchanged since it was last hashed, else of the mapped
    /// bytes (kept for the scan, so that both read the same mapping).
    fn hash(&self, found: &Found, file: &Opened) -> Result<Hashed, quarantine::Error> {
        let known = self.store.db().seen(&file.key)?;
        Ok(match known {
            Some(sha256) => Hashed {
                known: Some(sha256.clone()),
                sha256,
                bytes: None,
            },
            None => {
                let bytes =
                    Bytes::map(&file.file, file.len).map_err(|e| read_error(&found.real, e))?;
                Hashed {
                    known: None,
                    sha256: crate::digest::sha256_bytes(bytes.as_slice()),
                    bytes: Some(bytes),
                }
            }
        })
    }

    /// The name a blob is judged and reported under: its snapshot entry
    /// when one links to it (a few rules compare name and content).
    fn name(&self, root: &Root, found: &Found) -> Named {
        let (shown, links) = if found.named {
            (found.path.clone(), None)
        } else {
            let links = self.links_to(root, &found.real);
            let shown = links
                .iter()
                .map(|l| l.path.as_path())
                .find(|p| hfcache::is_snapshot_entry(p))
                .map_or_else(|| found.real.clone(), Path::to_path_buf);
            (shown, Some(links))
        };
        Named {
            display: shown.to_string_lossy().into_owned(),
            shown,
            links,
        }
    }

    /// What is already known about this content: a person's restore (allow
    /// it, done), an earlier quarantine (quarantine again, without a scan),
    /// or a report in the verdict cache (the policy decides it again, so a
    /// policy change applies without a rescan). `None`: scan it.
    fn cached_decision(
        &self,
        file: &Opened,
        hashed: &Hashed,
        named: &Named,
    ) -> Stage<Option<Judged>> {
        let sha256 = &hashed.sha256;
        // Bound first: the database guard must not live through the match,
        // whose arms take it again.
        let listed = self.store.db().list_of(sha256)?;
        match listed {
            Some(ListKind::Allow) => {
                tracing::debug!(path = %named.shown.display(), sha256, "content allowed by an earlier restore");
                if hashed.known.is_none() {
                    self.store.db().remember_seen(&file.key, sha256)?;
                }
                Ok(ControlFlow::Break(Outcome::Allowed))
            }
            Some(ListKind::Deny) => Ok(ControlFlow::Continue(Some(Judged {
                report: self.scanner.lookup(sha256, &named.display),
                action: Action::Quarantine,
                reason: "deny-list",
                sha256: sha256.clone(),
                fresh: false,
            }))),
            None => Ok(ControlFlow::Continue(
                self.scanner.lookup(sha256, &named.display).map(|report| {
                    Counters::bump(&self.counters.cached);
                    tracing::debug!(path = %named.shown.display(), sha256, verdict = report.verdict.as_str(), "unchanged content; cached verdict");
                    Judged {
                        action: daemon_action(&self.policy, &report, sha256),
                        report: Some(report),
                        reason: "scan",
                        sha256: sha256.clone(),
                        fresh: false,
                    }
                }),
            )),
        }
    }

    /// Scans the mapped bytes and stores the report in the verdict cache
    /// under the hash of exactly those bytes. A file written in place while
    /// it was read is dropped: neither hash nor verdict can be trusted, and
    /// the write brings another event.
    fn scan(
        &self,
        found: &Found,
        file: &Opened,
        hashed: &mut Hashed,
        named: &Named,
    ) -> Stage<Judged> {
        let read_err = |e| read_error(&found.real, e);
        let bytes = match hashed.bytes.take() {
            Some(b) => b,
            None => Bytes::map(&file.file, file.len).map_err(read_err)?,
        };
        let sha256 = crate::digest::sha256_bytes(bytes.as_slice());
        let report =
            self.scanner
                .scanner()
                .scan_mapped(&named.display, bytes.as_slice(), &found.real);
        drop(bytes);
        let after = file.file.metadata().map_err(read_err)?;
        if stat_key(&after) != file.key {
            return Ok(ControlFlow::Break(Outcome::Ignored));
        }
        Counters::bump(&self.counters.scanned);
        self.scanner.remember(&sha256, &report);
        tracing::debug!(path = %named.shown.display(), sha256, verdict = report.verdict.as_str(), format = report.format.name(), "scanned");
        Ok(ControlFlow::Continue(Judged {
            action: daemon_action(&self.policy, &report, &sha256),
            report: Some(report),
            reason: "scan",
            sha256,
            fresh: true,
        }))
    }

    /// The content's action joined with the signature requirement. Where
    /// the file is and which signature sits beside it are not part of the
    /// content, and the signature can land after the file: judged on every
    /// look, never cached.
    fn decide(&self, root_idx: usize, named: &Named, judged: Judged) -> Decided {
        let sha256 = &judged.sha256;
        if judged.fresh && judged.action == Action::Warn {
            Counters::bump(&self.counters.warned);
            self.tally(root_idx, |r| &r.warned);
            let (verdict, rules) = judged
                .report
                .as_ref()
                .map(|r| (r.verdict, rule_ids(r).join(",")))
                .unwrap_or((Verdict::Suspicious, String::new()));
            tracing::warn!(
                path = %named.shown.display(),
                sha256,
                verdict = verdict.as_str(),
                rules,
                "suspicious download left in place"
            );
        }
        let signature = self.policy.decide_download_signature(&named.shown, sha256);
        let signature_action = signature
            .as_ref()
            .map_or(Action::Allow, |d| to_daemon_action(d.action));
        if let Some(d) = &signature
            && signature_action == Action::Warn
        {
            Counters::bump(&self.counters.warned);
            self.tally(root_idx, |r| &r.warned);
            for b in &d.basis {
                tracing::warn!(path = %named.shown.display(), sha256, rule = b.rule.id, "{}", b.message);
            }
        }
        Decided {
            action: judged.action.max(signature_action),
            landed: self.signature_landed(&named.shown, sha256),
            signature,
            signature_action,
            judged,
        }
    }

    /// Leaves the file, or quarantines it; a signature file that landed
    /// sends its snapshot for another look.
    fn act(
        &self,
        root_idx: usize,
        root: &Root,
        found: &Found,
        file: &Opened,
        named: Named,
        decided: Decided,
    ) -> Result<Outcome, quarantine::Error> {
        let outcome = match decided.action {
            Action::Allow => Outcome::Allowed,
            Action::Warn => Outcome::Warned,
            Action::Quarantine => {
                match self
                    .store
                    .quarantine(self.request(root, found, file, named, &decided))
                {
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
                        tracing::info!(path = %found.real.display(), "{msg}; will act on the new file when it is reported");
                        Outcome::Ignored
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        Ok(match decided.landed {
            Some(snapshot) if matches!(outcome, Outcome::Allowed | Outcome::Warned) => {
                Outcome::SignatureLanded(snapshot)
            }
            _ => outcome,
        })
    }

    /// The quarantine request: every link to the file, and the rules and
    /// findings behind the decision (the content's, and the signature's
    /// when that is what decided).
    fn request(
        &self,
        root: &Root,
        found: &Found,
        file: &Opened,
        named: Named,
        decided: &Decided,
    ) -> Request {
        let judged = &decided.judged;
        let mut links = named
            .links
            .unwrap_or_else(|| self.links_to(root, &found.real));
        if found.is_link
            && !links.iter().any(|l| l.path == found.path)
            && let Ok(target) = fs::read_link(&found.path)
        {
            links.push(Link {
                path: found.path.clone(),
                target,
            });
        }
        // Deny-listed content whose report is no longer cached: the list
        // entry itself says it was judged malicious.
        let (verdict, format, mut rules, mut findings) = match &judged.report {
            Some(r) => (
                r.verdict,
                r.format.name().to_string(),
                rule_ids(r),
                r.findings
                    .iter()
                    .map(|f| serde_json::to_value(f).unwrap_or_default())
                    .collect(),
            ),
            None => (
                Verdict::Malicious,
                Kind::Unknown.name().to_string(),
                Vec::new(),
                Vec::new(),
            ),
        };
        if let Some(d) = decided
            .signature
            .as_ref()
            .filter(|_| decided.signature_action == decided.action)
        {
            for b in &d.basis {
                rules.push(b.rule.id.to_string());
                findings.push(serde_json::to_value(b).unwrap_or_default());
            }
        }
        let content_is_why = judged.action == Action::Quarantine;
        Request {
            path: found.real.clone(),
            stat_key: file.key.clone(),
            sha256: judged.sha256.clone(),
            links,
            display: named.display,
            reason: if content_is_why {
                judged.reason
            } else {
                "signature"
            }
            .to_string(),
            verdict: verdict.as_str().to_string(),
            format,
            rules,
            findings: serde_json::Value::Array(findings),
            deny_content: content_is_why,
        }
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
