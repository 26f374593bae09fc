//! The quarantine store: takes a file out of reach, leaves a tombstone in
//! its place, and can put it back byte for byte.
//!
//! Why a tombstone and not a plain move: huggingface_hub treats a missing
//! blob (a dangling snapshot link) as "not cached" and silently downloads the
//! same bytes again. A small file at the blob path makes `os.path.exists`
//! true, so nothing is fetched, and its content makes every loader fail
//! loudly: it starts with a NUL byte (pickle: "invalid load key '\x00'";
//! safetensors: a header length of ~6e18; not a zip, not GGUF) followed by
//! plain text naming modelgate and the quarantine id for the human who runs
//! `head` on it. `chmod 000` is not used: root and CAP_DAC_OVERRIDE
//! processes (containers) read through it.
//!
//! Crash safety. A `kill -9` (or a power cut) at any instant leaves either
//! the original file in place or a complete quarantine record with the
//! bytes, never neither. The protocol, all under the store lock:
//!
//! 1. write the full JSON record (state `pending`) beside where the payload
//!    will go, fsync; insert the same record into the database and put the
//!    hash on the deny-list (one transaction);
//! 2. hard-link the file into the store (same filesystem; the original name
//!    still works) and check the link is the inode that was scanned or,
//!    across filesystems, record `copied` first, then copy from the scanned
//!    file descriptor + fsync + rename; fsync;
//! 3. atomically rename a tombstone over the original path; fsync its dir;
//! 4. mark the record `quarantined` (file and database, with the audit
//!    entry, one transaction).
//!
//! The original path therefore always names either the original bytes or
//! the tombstone, and the tombstone only appears once the payload is
//! durable. [`Store::open`] finishes or rolls back any `pending` record it
//! finds, so a restart converges.
//!
//! Restore verifies the payload's SHA-256, refuses to overwrite anything but
//! a modelgate tombstone (never "restore" over a file that is now something
//! else), renames (or copies) the bytes back, recreates any link the record
//! lists that has gone missing, and only then puts the hash on the
//! allow-list, in the same transaction as the final record: a restore that
//! fails allows nothing. The daemon cannot take the bytes again in between:
//! its quarantine waits for the store lock and then re-reads the lists.
//!
//! Every path acted on (the original, the tombstone, a restore target, a
//! link) is reached from `/` without following a symlink
//! ([`fsio::AtPath`]): a folder swapped for a symlink makes the operation
//! fail instead of acting outside the cache.
//!
//! Resilience: each interrupted record is recovered on its own (one that
//! cannot be finished is logged and retried at the next start), and a
//! database SQLite reports as corrupt is set aside and rebuilt from the
//! `record.json` files, which carry everything including the allow-list
//! flag.
//!
//! Known limit: a process that opened the file before the swap keeps its
//! file descriptor; huggingface_hub's "already cached" fast path takes no
//! lock, so a loader racing the daemon by milliseconds can still read the
//! bytes. Only fanotify permission events (root) close that window.

pub mod db;
pub mod fsio;
pub mod pathser;

use db::{AuditEntry, Db, ListKind};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The first bytes of every tombstone. Starts with NUL so that no loader
/// mistakes it for a model (see the module documentation).
pub use crate::scan::TOMBSTONE_MAGIC;

/// The tool version recorded with every quarantine.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Slows each quarantine step down by this many milliseconds so that tests
/// can kill the daemon between steps. Undocumented on purpose.
const STEP_DELAY_ENV: &str = "MODELGATE_TEST_QUARANTINE_STEP_MS";

/// Where a quarantine record is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Started and not finished: [`Store::open`] completes or undoes it.
    Pending,
    /// Bytes in the store, tombstone at the original path.
    Quarantined,
    /// Bytes put back; the record stays for history.
    Restored,
    /// Bytes destroyed; the hash stays on the deny-list.
    Deleted,
    /// The process died before the bytes were copied; the original never
    /// left its place.
    Aborted,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Quarantined => "quarantined",
            State::Restored => "restored",
            State::Deleted => "deleted",
            State::Aborted => "aborted",
        }
    }
}

/// A symlink that pointed at the quarantined file, with its exact target
/// text so that restore can recreate it as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    #[serde(with = "pathser")]
    pub path: PathBuf,
    #[serde(with = "pathser")]
    pub target: PathBuf,
}

/// Everything known about one quarantined file. Stored as `record.json`
/// beside the payload and in the database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub state: State,
    pub sha256: String,
    pub size: u64,
    /// The real file that was replaced by the tombstone (a repo blob, a
    /// shared-store file, or a plain file in a local dir).
    #[serde(with = "pathser")]
    pub path: PathBuf,
    /// Every symlink found pointing at `path` (snapshot entries, per-repo
    /// blob links into the shared store).
    pub links: Vec<Link>,
    /// The name the file was scanned under (a snapshot path when known).
    pub display: String,
    /// `scan` or `deny-list` (content quarantined before).
    pub reason: String,
    pub verdict: String,
    pub format: String,
    pub rules: Vec<String>,
    pub findings: serde_json::Value,
    /// Whether the content itself is the reason, so its hash is denied
    /// wherever it lands again; false when only the place was (a file no
    /// trusted signature covers, in a repo that requires one).
    #[serde(default = "content_denied_by_default")]
    pub content_denied: bool,
    /// Permission bits of the original file, restored with it.
    pub mode: u32,
    /// True when the payload is a copy (different filesystem), false when
    /// it is the original inode. Written to the record before the copy
    /// starts, so that a crash mid-copy is recovered as a copy.
    pub copied: bool,
    /// Whether a person restored this content and so allowed it
    /// everywhere: kept in the record (not only in the database) so that a
    /// rebuilt database keeps the allow-list.
    #[serde(default)]
    pub allowed: bool,
    pub quarantined_at: String,
    pub updated_at: String,
    pub tool_version: String,
}

/// Records written before `content_denied` existed were all about content.
fn content_denied_by_default() -> bool {
    true
}

/// A quarantine row whose record cannot be read: its id and why.
pub type Unreadable = (String, Error);

/// What the caller knows about the file it wants quarantined.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: PathBuf,
    /// [`stat_key`] of the file that was hashed and scanned; the
    /// quarantine is refused if the path now names another file or the file
    /// changed.
    pub stat_key: String,
    pub sha256: String,
    pub links: Vec<Link>,
    pub display: String,
    pub reason: String,
    pub verdict: String,
    pub format: String,
    pub rules: Vec<String>,
    pub findings: serde_json::Value,
    /// See [`Record::content_denied`].
    pub deny_content: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("state database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("record: {0}")]
    Json(#[from] serde_json::Error),
    #[error("no quarantine record with id `{0}`")]
    NotFound(String),
    /// The file changed between scan and quarantine, or a restore target is
    /// not a tombstone: nothing was done.
    #[error("{0}")]
    Conflict(String),
}

trait IoContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, Error>;
}

impl Error {
    fn from_io(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
        move |source| Error::Io {
            context: format!("cannot read {}", path.display()),
            source,
        }
    }
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Io {
            context: what(),
            source,
        })
    }
}

/// The quarantine store: a directory of `<id>/{payload,record.json}`, the
/// state database and the JSON-lines audit log.
pub struct Store {
    state_dir: PathBuf,
    qdir: PathBuf,
    db: Mutex<Db>,
    step_delay: Option<Duration>,
}

/// Resolves the state directory: `MODELGATE_STATE_DIR`, else the platform's
/// state directory (`$XDG_STATE_HOME/modelgate` on Linux, Application
/// Support on macOS).
pub fn default_state_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MODELGATE_STATE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let dirs = directories::ProjectDirs::from("dev", "modelgate", "modelgate")?;
    Some(
        dirs.state_dir()
            .unwrap_or_else(|| dirs.data_local_dir())
            .to_path_buf(),
    )
}

fn private_dir(dir: &Path) -> Result<(), Error> {
    fs::create_dir_all(dir).ctx(|| format!("cannot create {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .ctx(|| format!("cannot chmod {}", dir.display()))
}

/// A file's identity and version on disk: device, inode, size, mtime and
/// ctime (nanoseconds). ctime cannot be set from user space, so content
/// written in place, or a new file that reuses the inode number, never keeps
/// the key.
pub fn stat_key(m: &fs::Metadata) -> String {
    format!(
        "{}:{}:{}:{}.{}:{}.{}",
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    )
}

/// Opens the state database; a database SQLite reports as corrupt (or not
/// a database at all) is renamed aside and replaced by an empty one, which
/// the caller refills from the records (`true`).
fn open_or_set_aside(state_dir: &Path) -> Result<(Db, bool), Error> {
    let path = state_dir.join("state.db");
    match Db::open(&path) {
        Ok(db) => return Ok((db, false)),
        Err(e) if db::is_corruption(&e) => {
            let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
            let aside = state_dir.join(format!("state.db.corrupt-{stamp}"));
            tracing::error!(db = %path.display(), moved_to = %aside.display(), error = %e, "state database is corrupt; rebuilding it from the quarantine records");
            fs::rename(&path, &aside).ctx(|| format!("cannot move {} aside", path.display()))?;
            for ext in ["-wal", "-shm"] {
                let side = state_dir.join(format!("state.db{ext}"));
                let _ = fs::rename(
                    &side,
                    state_dir.join(format!("state.db.corrupt-{stamp}{ext}")),
                );
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok((Db::open(&path)?, true))
}

/// The bytes of the tombstone for one quarantine.
pub fn tombstone_bytes(id: &str, sha256: &str) -> Vec<u8> {
    let mut v = TOMBSTONE_MAGIC.to_vec();
    v.extend_from_slice(
        format!(
            "This file was quarantined by modelgate {TOOL_VERSION}: it would run code when loaded.\n\
             quarantine id: {id}\nsha256: {sha256}\n\
             Details: modelgate quarantine show {id}\n\
             Undo (only if you trust it): modelgate quarantine restore {id}\n"
        )
        .as_bytes(),
    );
    v
}

/// The quarantine id a tombstone's first bytes name, if they are one.
pub fn parse_tombstone(head: &[u8]) -> Option<String> {
    let rest = head.strip_prefix(TOMBSTONE_MAGIC)?;
    let text = String::from_utf8_lossy(rest);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("quarantine id: "))?;
    Some(line.trim().to_string())
}

impl Store {
    /// Opens (creating if needed) the store under `state_dir`, then
    /// completes or undoes any operation a previous process left half-done.
    pub fn open(state_dir: &Path) -> Result<Store, Error> {
        private_dir(state_dir)?;
        let qdir = state_dir.join("quarantine");
        private_dir(&qdir)?;
        let (db, rebuilt) = open_or_set_aside(state_dir)?;
        let step_delay = std::env::var(STEP_DELAY_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis);
        let store = Store {
            state_dir: state_dir.to_path_buf(),
            qdir,
            db: Mutex::new(db),
            step_delay,
        };
        if rebuilt {
            store.rebuild_from_records()?;
        }
        store.recover()?;
        Ok(store)
    }

    /// Refills a fresh database from the per-record JSON files, which
    /// survive a corrupted database: every record with its state, and the
    /// deny- and allow-list entries the records imply (latest change last).
    fn rebuild_from_records(&self) -> Result<(), Error> {
        let entries =
            fs::read_dir(&self.qdir).ctx(|| format!("cannot list {}", self.qdir.display()))?;
        let mut recs: Vec<Record> = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path().join("record.json");
            if !entry.path().is_dir() {
                continue;
            }
            match fs::read_to_string(&path)
                .map_err(Error::from_io(&path))
                .and_then(|t| Ok(serde_json::from_str::<Record>(&t)?))
            {
                Ok(r) => recs.push(r),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "unreadable record left out of the rebuilt database")
                }
            }
        }
        recs.sort_by(|a, b| a.updated_at.cmp(&b.updated_at).then(a.id.cmp(&b.id)));
        let n = recs.len();
        for rec in recs {
            let json = serde_json::to_string_pretty(&rec)?;
            let list = if rec.allowed {
                Some(ListKind::Allow)
            } else if rec.content_denied
                && matches!(
                    rec.state,
                    State::Pending | State::Quarantined | State::Deleted
                )
            {
                Some(ListKind::Deny)
            } else {
                None
            };
            self.db().import(
                &rec.id,
                rec.state.as_str(),
                &rec.sha256,
                rec.size,
                &rec.path.to_string_lossy(),
                &json,
                &rec.quarantined_at,
                list,
            )?;
        }
        tracing::warn!(
            records = n,
            "state database rebuilt from the quarantine records"
        );
        Ok(())
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The directory holding `<id>/payload` and `<id>/record.json`.
    pub fn quarantine_dir(&self) -> &Path {
        &self.qdir
    }

    /// The database, for the watcher's scan cache.
    pub fn db(&self) -> MutexGuard<'_, Db> {
        // A panic while holding the lock cannot leave the connection in a
        // torn state (SQLite transactions roll back), so poisoning is moot.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serialises quarantine, restore, delete and recovery across threads
    /// and processes (daemon and CLI).
    fn lock(&self) -> Result<File, Error> {
        let path = self.qdir.join(".lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .ctx(|| format!("cannot open {}", path.display()))?;
        f.lock().ctx(|| format!("cannot lock {}", path.display()))?;
        Ok(f)
    }

    fn step(&self) {
        if let Some(d) = self.step_delay {
            std::thread::sleep(d);
        }
    }

    fn new_id(&self, sha256: &str) -> Result<(String, PathBuf), Error> {
        let stamp = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        let short = sha256.get(..12).unwrap_or(sha256);
        for n in 0u32..1000 {
            let id = if n == 0 {
                format!("{stamp}-{short}")
            } else {
                format!("{stamp}-{short}-{n}")
            };
            let dir = self.qdir.join(&id);
            match fs::create_dir(&dir) {
                Ok(()) => {
                    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                        .ctx(|| format!("cannot chmod {}", dir.display()))?;
                    return Ok((id, dir));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).ctx(|| format!("cannot create {}", dir.display())),
            }
        }
        Err(Error::Conflict("could not allocate a quarantine id".into()))
    }

    fn write_record(&self, rec: &Record) -> Result<String, Error> {
        let json = serde_json::to_string_pretty(rec)?;
        let path = self.qdir.join(&rec.id).join("record.json");
        fsio::write_atomic(&path, format!("{json}\n").as_bytes(), 0o600)
            .ctx(|| format!("cannot write {}", path.display()))?;
        Ok(json)
    }

    fn append_audit_log(&self, action: &str, rec: &Record, detail: &str) {
        let line = serde_json::json!({
            "at": db::now(),
            "action": action,
            "id": rec.id,
            "sha256": rec.sha256,
            "path": pathser::to_value(&rec.path),
            "detail": detail,
            "tool_version": TOOL_VERSION,
        });
        let path = self.state_dir.join("audit.jsonl");
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(format!("{line}\n").as_bytes())?;
                f.sync_data()
            });
        if let Err(e) = written {
            tracing::error!(path = %path.display(), error = %e, "cannot append to the audit log");
        }
    }

    fn finish(
        &self,
        rec: &mut Record,
        state: State,
        list: Option<ListKind>,
        action: &str,
        detail: &str,
    ) -> Result<(), Error> {
        rec.state = state;
        rec.updated_at = db::now();
        let json = self.write_record(rec)?;
        let path = rec.path.to_string_lossy();
        let entry = AuditEntry {
            action,
            quarantine_id: Some(&rec.id),
            sha256: Some(&rec.sha256),
            path: Some(&path),
            detail,
        };
        let list = list.map(|k| (rec.sha256.as_str(), k, action));
        self.db()
            .update(&rec.id, state.as_str(), &json, list, &[entry])?;
        self.append_audit_log(action, rec, detail);
        Ok(())
    }

    /// Moves the file at `req.path` into the store and leaves a tombstone.
    /// The path is opened without following any symlink (see
    /// [`fsio::AtPath`]), and the file found there must be the very file that
    /// was scanned (same device, inode, size and times), or nothing is done.
    pub fn quarantine(&self, req: Request) -> Result<Record, Error> {
        let _lock = self.lock()?;
        // A restore may have allowed this content while the caller decided.
        if req.deny_content && self.db().list_of(&req.sha256)? == Some(ListKind::Allow) {
            return Err(Error::Conflict(format!(
                "the content of {} was allowed by a restore",
                req.path.display()
            )));
        }
        let at = fsio::AtPath::open(&req.path, false).ctx(|| {
            format!(
                "refusing {}: cannot reach it without following a symlink",
                req.path.display()
            )
        })?;
        let mut file = match at.open_read() {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::Conflict(format!("{} is gone", req.path.display())));
            }
            Err(e) => {
                return Err(e).ctx(|| {
                    format!(
                        "refusing {}: cannot open it without following a symlink",
                        req.path.display()
                    )
                });
            }
        };
        let meta = file
            .metadata()
            .ctx(|| format!("cannot stat {}", req.path.display()))?;
        if !meta.file_type().is_file() || stat_key(&meta) != req.stat_key {
            return Err(Error::Conflict(format!(
                "{} changed since it was scanned",
                req.path.display()
            )));
        }
        let (id, dir) = self.new_id(&req.sha256)?;
        let now = db::now();
        let mut rec = Record {
            id: id.clone(),
            state: State::Pending,
            sha256: req.sha256,
            size: meta.len(),
            path: req.path,
            links: req.links,
            display: req.display,
            reason: req.reason,
            verdict: req.verdict,
            format: req.format,
            rules: req.rules,
            findings: req.findings,
            content_denied: req.deny_content,
            mode: meta.mode() & 0o7777,
            copied: false,
            allowed: false,
            quarantined_at: now.clone(),
            updated_at: now,
            tool_version: TOOL_VERSION.to_string(),
        };
        // Step 1: the complete record exists before any byte moves.
        let json = self.write_record(&rec)?;
        fsio::fsync_dir(&self.qdir).ctx(|| format!("cannot sync {}", self.qdir.display()))?;
        self.db().begin_quarantine(
            &id,
            &rec.sha256,
            rec.size,
            &rec.path.to_string_lossy(),
            &json,
            rec.content_denied,
        )?;
        self.step();

        match self.move_out(&mut rec, &at, &mut file, &meta, &dir) {
            Ok(()) => {}
            Err(e @ Error::Conflict(_)) => return Err(e),
            Err(e) => {
                // A failure before the tombstone is in place (an unwritable
                // folder, a full disk) leaves the original where it was:
                // undo the record so that a retry starts clean. After it,
                // the record stays pending and the next start finishes it.
                if !matches!(current_content(&at), Current::Tombstone) {
                    let _ = fs::remove_file(dir.join("payload"));
                    let detail = format!("failed: {e}");
                    let _ = self.finish(
                        &mut rec,
                        State::Aborted,
                        None,
                        "quarantine-aborted",
                        &detail,
                    );
                }
                return Err(e);
            }
        }

        // Step 4.
        let rules = rec.rules.join(",");
        let deny = rec.content_denied.then_some(ListKind::Deny);
        self.finish(&mut rec, State::Quarantined, deny, "quarantine", &rules)?;
        Ok(rec)
    }

    /// Steps 2 and 3 of [`Store::quarantine`]: payload into the store,
    /// tombstone over the original.
    fn move_out(
        &self,
        rec: &mut Record,
        at: &fsio::AtPath,
        file: &mut File,
        meta: &fs::Metadata,
        dir: &Path,
    ) -> Result<(), Error> {
        // Step 2: the payload becomes durable in the store.
        let payload = dir.join("payload");
        let same_inode = |m: &fs::Metadata| (m.dev(), m.ino()) == (meta.dev(), meta.ino());
        match at.link_to(&payload) {
            Ok(()) => {
                // The name may have been renamed over between the open and
                // the link: the payload must be the file that was scanned.
                if !fs::symlink_metadata(&payload).is_ok_and(|m| same_inode(&m)) {
                    let _ = fs::remove_file(&payload);
                    return Err(self.abort(rec, "file replaced while being quarantined"));
                }
                fsio::fsync_dir(dir).ctx(|| format!("cannot sync {}", dir.display()))?;
            }
            Err(_) => {
                // Another filesystem (EXDEV) or a protected_hardlinks refusal:
                // copy from the file that was scanned, and check that the copy
                // is what was scanned. Recorded first: a crash mid-copy must
                // recover this record as a copy.
                rec.copied = true;
                self.save(rec)?;
                let got = fsio::copy_file_durable(file, &payload, 0o400)
                    .ctx(|| format!("cannot copy {} into the store", rec.path.display()))?;
                if got != rec.sha256 {
                    let _ = fs::remove_file(&payload);
                    return Err(self.abort(rec, "content changed while copying"));
                }
            }
        }
        self.step();

        // Step 3: the tombstone replaces the original name atomically.
        let still_same = at
            .lstat()
            .ok()
            .flatten()
            .is_some_and(|st| fsio::identity(&st) == (meta.dev(), meta.ino()));
        if still_same {
            at.write_atomic(&tombstone_bytes(&rec.id, &rec.sha256), 0o444)
                .ctx(|| format!("cannot write the tombstone at {}", rec.path.display()))?;
        } else {
            tracing::warn!(path = %rec.path.display(), id = rec.id, "file replaced during quarantine; the new file will be scanned on its own");
        }
        if !rec.copied {
            let _ = fs::set_permissions(&payload, fs::Permissions::from_mode(0o400));
        }
        self.step();
        Ok(())
    }

    /// Marks a started quarantine as aborted (nothing moved) and returns
    /// the conflict to report.
    fn abort(&self, rec: &mut Record, why: &str) -> Error {
        if let Err(e) = self.finish(rec, State::Aborted, None, "quarantine-aborted", why) {
            return e;
        }
        Error::Conflict(format!("{}: {why}", rec.path.display()))
    }

    /// Writes a record's current content (same state) to its file and row.
    fn save(&self, rec: &Record) -> Result<(), Error> {
        let json = self.write_record(rec)?;
        self.db()
            .update(&rec.id, rec.state.as_str(), &json, None, &[])?;
        Ok(())
    }

    /// Completes or undoes operations interrupted by a crash. Safe to call
    /// at any time: it takes the store lock. A record that cannot be
    /// finished now (disk full, a folder gone) is logged and left for the
    /// next start; it never keeps the others from being finished.
    pub fn recover(&self) -> Result<Vec<String>, Error> {
        let _lock = self.lock()?;
        self.import_orphans()?;
        let mut done = Vec::new();
        let rows = self.db().rows(&["pending", "quarantined"])?;
        for row in rows {
            match self.recover_one(&row) {
                Ok(true) => done.push(row.id),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(id = row.id, error = %e, "cannot finish an interrupted operation; will retry at the next start");
                }
            }
        }
        Ok(done)
    }

    fn recover_one(&self, row: &db::Row) -> Result<bool, Error> {
        let mut rec: Record = serde_json::from_str(&row.record)?;
        let dir = self.qdir.join(&rec.id);
        let payload = dir.join("payload");
        let have_payload = fs::symlink_metadata(&payload)
            .map(|m| m.is_file())
            .unwrap_or(false);
        match (row.state.as_str(), have_payload) {
            ("pending", false) => {
                // Died before the payload was durable: the original never
                // moved. Temp copies are garbage.
                remove_temps(&dir);
                self.finish(
                    &mut rec,
                    State::Aborted,
                    None,
                    "quarantine-aborted",
                    "interrupted before the payload was stored; original left in place",
                )?;
                Ok(true)
            }
            ("pending", true) => {
                let got = fsio::sha256_file(&payload)
                    .ctx(|| format!("cannot read {}", payload.display()))?;
                if got != rec.sha256 {
                    tracing::error!(
                        id = rec.id,
                        "interrupted quarantine has a damaged payload; left for inspection"
                    );
                    return Ok(false);
                }
                // A payload on another filesystem than the original is a
                // copy whatever the record says (older versions recorded
                // `copied` only at the end).
                let at = fsio::AtPath::open(&rec.path, false).ctx(|| {
                    format!(
                        "refusing {}: cannot reach it without following a symlink",
                        rec.path.display()
                    )
                })?;
                if let (Ok(p), Some(Ok(d))) =
                    (fs::metadata(&payload), rec.path.parent().map(fs::metadata))
                    && p.dev() != d.dev()
                {
                    rec.copied = true;
                }
                let replace = match current_content(&at) {
                    Current::Tombstone => false,
                    Current::Missing => true,
                    Current::File(sha) if sha == rec.sha256 => true,
                    Current::File(_) | Current::Other => {
                        tracing::warn!(path = %rec.path.display(), id = rec.id, "path holds other content now; not replacing it");
                        false
                    }
                };
                if replace {
                    at.write_atomic(&tombstone_bytes(&rec.id, &rec.sha256), 0o444)
                        .ctx(|| format!("cannot write the tombstone at {}", rec.path.display()))?;
                }
                if !rec.copied {
                    let _ = fs::set_permissions(&payload, fs::Permissions::from_mode(0o400));
                }
                let deny = rec.content_denied.then_some(ListKind::Deny);
                self.finish(
                    &mut rec,
                    State::Quarantined,
                    deny,
                    "quarantine",
                    "completed after an interruption",
                )?;
                Ok(true)
            }
            ("quarantined", false) => {
                // Died in the middle of a restore, after the rename back.
                let back = fsio::AtPath::open(&rec.path, false).is_ok_and(
                    |at| matches!(current_content(&at), Current::File(s) if s == rec.sha256),
                );
                if back {
                    rec.allowed = true;
                    self.finish(
                        &mut rec,
                        State::Restored,
                        Some(ListKind::Allow),
                        "restore",
                        "completed after an interruption",
                    )?;
                    Ok(true)
                } else {
                    tracing::error!(id = rec.id, "quarantine payload is missing");
                    Ok(false)
                }
            }
            _ => Ok(false),
        }
    }

    /// Record directories that never reached the database (the process died
    /// between writing record.json and the insert) had no payload yet:
    /// remove them. A payload without a row cannot happen by construction,
    /// but is imported rather than deleted if it ever does.
    fn import_orphans(&self) -> Result<(), Error> {
        let entries =
            fs::read_dir(&self.qdir).ctx(|| format!("cannot list {}", self.qdir.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.path().is_dir() || self.db().row(&name)?.is_some() {
                continue;
            }
            let dir = entry.path();
            let record = fs::read_to_string(dir.join("record.json")).ok();
            let parsed = record
                .as_deref()
                .and_then(|r| serde_json::from_str::<Record>(r).ok());
            match parsed {
                Some(rec) if dir.join("payload").is_file() => {
                    let json = serde_json::to_string_pretty(&rec)?;
                    self.db().begin_quarantine(
                        &rec.id,
                        &rec.sha256,
                        rec.size,
                        &rec.path.to_string_lossy(),
                        &json,
                        rec.content_denied,
                    )?;
                }
                // Bytes without a readable record: never destroyed, left
                // for a person to look at.
                _ if dir.join("payload").exists() => {
                    tracing::error!(dir = %dir.display(), "quarantined bytes without a readable record; left in place");
                }
                _ => {
                    let _ = fs::remove_dir_all(&dir);
                }
            }
        }
        Ok(())
    }

    /// Every readable record, oldest first; only live quarantines unless
    /// `all`. Unreadable rows are logged and left out.
    pub fn list(&self, all: bool) -> Result<Vec<Record>, Error> {
        let (recs, broken) = self.list_checked(all)?;
        for (id, e) in broken {
            tracing::error!(id, error = %e, "unreadable quarantine record");
        }
        Ok(recs)
    }

    /// Like [`Store::list`], with the ids of unreadable rows and why: one
    /// damaged record must not hide the others.
    pub fn list_checked(&self, all: bool) -> Result<(Vec<Record>, Vec<Unreadable>), Error> {
        let states: &[&str] = if all {
            &[]
        } else {
            &["quarantined", "pending"]
        };
        let rows = self.db().rows(states)?;
        let mut recs = Vec::new();
        let mut broken = Vec::new();
        for r in rows {
            match serde_json::from_str(&r.record) {
                Ok(rec) => recs.push(rec),
                Err(e) => broken.push((r.id, Error::Json(e))),
            }
        }
        Ok((recs, broken))
    }

    pub fn get(&self, id: &str) -> Result<Record, Error> {
        let row = self
            .db()
            .row(id)?
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        Ok(serde_json::from_str(&row.record)?)
    }

    /// Adds a link discovered after the quarantine (the snapshot symlink
    /// huggingface_hub creates just after the blob rename).
    pub fn add_link(&self, id: &str, link: Link) -> Result<(), Error> {
        let _lock = self.lock()?;
        let mut rec = self.get(id)?;
        if rec.state != State::Quarantined || rec.links.iter().any(|l| l.path == link.path) {
            return Ok(());
        }
        // The snapshot link usually appears just after the blob was taken:
        // its name is the one people recognise.
        if !rec.display.contains("/snapshots/")
            && link.path.to_string_lossy().contains("/snapshots/")
        {
            rec.display = link.path.to_string_lossy().into_owned();
        }
        rec.links.push(link);
        rec.updated_at = db::now();
        let json = self.write_record(&rec)?;
        self.db()
            .update(&rec.id, rec.state.as_str(), &json, None, &[])?;
        Ok(())
    }

    /// The record of `id` and where its bytes are, if it is still in
    /// quarantine (restore and delete only act on those).
    fn quarantined(&self, id: &str) -> Result<(Record, PathBuf), Error> {
        let rec = self.get(id)?;
        if rec.state != State::Quarantined {
            return Err(Error::Conflict(format!(
                "`{id}` is {}, not quarantined",
                rec.state.as_str()
            )));
        }
        let payload = self.qdir.join(&rec.id).join("payload");
        Ok((rec, payload))
    }

    /// Puts the exact bytes back where they were and remembers the content
    /// as allowed.
    pub fn restore(&self, id: &str) -> Result<Record, Error> {
        self.put_back(id, true, "restore", "restored by user; content allowed")
    }

    /// Puts the exact bytes back because the reason for the quarantine no
    /// longer holds (`why`: a trusted signature arrived), without allowing
    /// the content anywhere else.
    pub fn release(&self, id: &str, why: &str) -> Result<Record, Error> {
        self.put_back(id, false, "release", why)
    }

    /// Every path is reached without following a symlink (a `blobs/` folder
    /// swapped for a link must not lead the bytes outside the cache). The
    /// allow-list entry is written with the final record, only once the
    /// bytes are back: a daemon that sees them reappear first waits for the
    /// store lock and then finds them allowed (see [`Store::quarantine`]).
    fn put_back(&self, id: &str, allow: bool, action: &str, detail: &str) -> Result<Record, Error> {
        let _lock = self.lock()?;
        let (mut rec, payload) = self.quarantined(id)?;
        let got =
            fsio::sha256_file(&payload).ctx(|| format!("cannot read {}", payload.display()))?;
        if got != rec.sha256 {
            return Err(Error::Conflict(format!(
                "payload of `{id}` does not match its recorded sha256 ({got} != {}); refusing to restore",
                rec.sha256
            )));
        }
        let at = fsio::AtPath::open(&rec.path, true).ctx(|| {
            format!(
                "refusing to restore to {}: a folder on the way is missing or a symlink",
                rec.path.display()
            )
        })?;
        match current_content(&at) {
            Current::Tombstone | Current::Missing => {}
            _ => {
                return Err(Error::Conflict(format!(
                    "{} is no longer a modelgate tombstone; refusing to overwrite it",
                    rec.path.display()
                )));
            }
        }
        let mode = fs::Permissions::from_mode(rec.mode);
        let moved = if rec.copied {
            false
        } else {
            fs::set_permissions(&payload, mode)
                .ctx(|| format!("cannot chmod {}", payload.display()))?;
            match at.rename_from(&payload) {
                Ok(()) => true,
                // The record says "same filesystem" but it is not (a record
                // written before `copied` was saved early): copy instead.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => false,
                Err(e) => {
                    return Err(e).ctx(|| format!("cannot move back to {}", rec.path.display()));
                }
            }
        };
        if !moved {
            let mut src =
                File::open(&payload).ctx(|| format!("cannot open {}", payload.display()))?;
            at.copy_from(&mut src, rec.mode, &rec.sha256)
                .ctx(|| format!("cannot copy back to {}", rec.path.display()))?;
            let _ = fs::remove_file(&payload);
        }
        at.fsync_dir()
            .ctx(|| format!("cannot sync the folder of {}", rec.path.display()))?;
        for link in &rec.links {
            let made = fsio::AtPath::open(&link.path, true).and_then(|l| match l.lstat()? {
                Some(_) => Ok(()),
                None => l.symlink(&link.target),
            });
            if let Err(e) = made {
                tracing::warn!(link = %link.path.display(), error = %e, "cannot recreate link");
            }
        }
        rec.allowed = allow;
        self.finish(
            &mut rec,
            State::Restored,
            allow.then_some(ListKind::Allow),
            action,
            detail,
        )?;
        Ok(rec)
    }

    /// Destroys the payload. The tombstone stays (so nothing re-downloads
    /// the file) and the hash stays on the deny-list.
    pub fn delete(&self, id: &str) -> Result<Record, Error> {
        let _lock = self.lock()?;
        let (mut rec, payload) = self.quarantined(id)?;
        match fs::remove_file(&payload) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx(|| format!("cannot remove {}", payload.display())),
        }
        let deny = rec.content_denied.then_some(ListKind::Deny);
        self.finish(
            &mut rec,
            State::Deleted,
            deny,
            "delete",
            "payload destroyed by user",
        )?;
        Ok(rec)
    }
}

enum Current {
    Missing,
    Tombstone,
    File(String),
    Other,
}

fn current_content(at: &fsio::AtPath) -> Current {
    match at.lstat() {
        Ok(None) => Current::Missing,
        Ok(Some(st))
            if rustix::fs::FileType::from_raw_mode(st.st_mode)
                == rustix::fs::FileType::RegularFile =>
        {
            let Ok(mut f) = at.open_read() else {
                return Current::Other;
            };
            let mut head = Vec::new();
            if (&mut f).take(1024).read_to_end(&mut head).is_err() {
                return Current::Other;
            }
            if parse_tombstone(&head).is_some() {
                return Current::Tombstone;
            }
            match f
                .rewind()
                .and_then(|()| crate::digest::sha256_reader(&mut f))
            {
                Ok(sha) => Current::File(sha),
                Err(_) => Current::Other,
            }
        }
        _ => Current::Other,
    }
}

fn remove_temps(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(fsio::TEMP_PREFIX)
            {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &Path) -> Request {
        let m = fs::metadata(path).unwrap();
        Request {
            path: path.to_path_buf(),
            stat_key: stat_key(&m),
            sha256: fsio::sha256_file(path).unwrap(),
            links: vec![],
            display: "x".into(),
            reason: "scan".into(),
            verdict: "malicious".into(),
            format: "pickle".into(),
            rules: vec!["PKL001".into()],
            findings: serde_json::json!([]),
            deny_content: true,
        }
    }

    #[test]
    fn tombstone_round_trip() {
        let t = tombstone_bytes("abc-1", "ff");
        assert_eq!(parse_tombstone(&t).as_deref(), Some("abc-1"));
        assert_eq!(parse_tombstone(b"\0other"), None);
        // A safetensors loader reads the first 8 bytes as the header length.
        let len = u64::from_le_bytes(t.get(..8).unwrap().try_into().unwrap());
        assert!(len > 1 << 40);
    }

    #[test]
    fn quarantine_restore_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        let f = dir.path().join("blob");
        fs::write(&f, b"payload bytes").unwrap();
        let rec = store.quarantine(request(&f)).unwrap();
        assert_eq!(
            parse_tombstone(&fs::read(&f).unwrap()).as_deref(),
            Some(rec.id.as_str())
        );
        assert_eq!(
            store.db().list_of(&rec.sha256).unwrap(),
            Some(ListKind::Deny)
        );
        assert_eq!(store.list(false).unwrap().len(), 1);
        store.restore(&rec.id).unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"payload bytes");
        assert_eq!(
            store.db().list_of(&rec.sha256).unwrap(),
            Some(ListKind::Allow)
        );
        assert!(store.restore(&rec.id).is_err());

        fs::write(dir.path().join("b2"), b"other").unwrap();
        let rec2 = store.quarantine(request(&dir.path().join("b2"))).unwrap();
        store.delete(&rec2.id).unwrap();
        assert!(parse_tombstone(&fs::read(dir.path().join("b2")).unwrap()).is_some());
        assert_eq!(store.list(false).unwrap().len(), 0);
        assert_eq!(store.list(true).unwrap().len(), 2);
    }

    #[test]
    fn restore_refuses_to_overwrite_other_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        let f = dir.path().join("blob");
        fs::write(&f, b"bad").unwrap();
        let rec = store.quarantine(request(&f)).unwrap();
        fs::remove_file(&f).unwrap();
        fs::write(&f, b"something new").unwrap();
        assert!(matches!(store.restore(&rec.id), Err(Error::Conflict(_))));
    }

    #[test]
    fn changed_file_is_not_quarantined() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        let f = dir.path().join("blob");
        fs::write(&f, b"bad").unwrap();
        let req = request(&f);
        std::thread::sleep(Duration::from_millis(5));
        fs::remove_file(&f).unwrap();
        fs::write(&f, b"new").unwrap();
        assert!(matches!(store.quarantine(req), Err(Error::Conflict(_))));
        assert_eq!(fs::read(&f).unwrap(), b"new");
    }
}
