//! The state database: one SQLite file (WAL mode) holding the quarantine
//! index, the content deny/allow lists, the audit trail and the file
//! identities already hashed.
//!
//! Why SQLite: the daemon and the `modelgate quarantine` CLI read and write
//! the same records concurrently, and every record change must be atomic.
//! WAL lets readers run while the daemon writes; `busy_timeout` makes a
//! short write from the CLI wait instead of failing. Every multi-row change
//! is one transaction.
//!
//! The audit table is append-only: triggers reject UPDATE and DELETE, so a
//! bug (or a confused user with the sqlite3 shell) cannot rewrite history
//! without dropping the triggers first.
//!
//! `file_seen` maps a file's identity on disk (device, inode, size, mtime
//! and ctime in nanoseconds; ctime cannot be set from user space, so an
//! edited file never keeps its key) to its SHA-256, which lets a restarted
//! daemon skip hashing gigabytes it has already seen. The reports
//! themselves live in the shared verdict cache (the `cache` module); the
//! `scan_result` table older versions kept here is dropped on open
//! (schema 2), its rows being keyed less strictly than the cache's.

use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::time::Duration;

const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS quarantine (
    id          TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    path        TEXT NOT NULL,
    record      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS quarantine_sha ON quarantine(sha256);
CREATE TABLE IF NOT EXISTS content_list (
    sha256        TEXT PRIMARY KEY,
    list          TEXT NOT NULL CHECK (list IN ('deny', 'allow')),
    reason        TEXT NOT NULL,
    quarantine_id TEXT,
    at            TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    at            TEXT NOT NULL,
    action        TEXT NOT NULL,
    quarantine_id TEXT,
    sha256        TEXT,
    path          TEXT,
    detail        TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TABLE IF NOT EXISTS file_seen (
    stat_key TEXT PRIMARY KEY,
    sha256   TEXT NOT NULL,
    at       TEXT NOT NULL
);
DROP TABLE IF EXISTS scan_result;
";

/// Which content list a hash is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// Quarantined before: quarantine again on sight, without scanning.
    Deny,
    /// Restored by a person: never quarantine again.
    Allow,
}

impl ListKind {
    fn as_str(self) -> &'static str {
        match self {
            ListKind::Deny => "deny",
            ListKind::Allow => "allow",
        }
    }
}

/// One audit entry.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub action: &'a str,
    pub quarantine_id: Option<&'a str>,
    pub sha256: Option<&'a str>,
    pub path: Option<&'a str>,
    pub detail: &'a str,
}

/// A quarantine row: its state and the JSON record.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub state: String,
    pub record: String,
}

pub struct Db {
    conn: Connection,
}

pub fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl Db {
    pub fn open(path: &Path) -> rusqlite::Result<Db> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a committed quarantine record must survive a power cut, the
        // same guarantee the payload and the tombstone get from fsync.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        // A damaged page can open fine and fail later; check now, while the
        // records can still rebuild it.
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(check),
            ));
        }
        Ok(Db { conn })
    }

    /// Inserts a row as read back from its record file (database rebuild),
    /// with the content-list entry it implies.
    #[allow(clippy::too_many_arguments)]
    pub fn import(
        &mut self,
        id: &str,
        state: &str,
        sha256: &str,
        size: u64,
        path: &str,
        record: &str,
        created_at: &str,
        list: Option<ListKind>,
    ) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO quarantine (id, state, sha256, size, path, record, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![id, state, sha256, size as i64, path, record, created_at, now()],
        )?;
        if let Some(kind) = list {
            upsert_list(&tx, sha256, kind, "rebuilt from the record", Some(id))?;
        }
        tx.commit()
    }

    /// Inserts a new quarantine row in state `pending` and puts its content
    /// on the deny-list, in one transaction.
    pub fn begin_quarantine(
        &mut self,
        id: &str,
        sha256: &str,
        size: u64,
        path: &str,
        record: &str,
        deny_content: bool,
    ) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        let at = now();
        tx.execute(
            "INSERT INTO quarantine (id, state, sha256, size, path, record, created_at, updated_at)
             VALUES (?1, 'pending', ?2, ?3, ?4, ?5, ?6, ?6)",
            params![id, sha256, size as i64, path, record, at],
        )?;
        if deny_content {
            upsert_list(&tx, sha256, ListKind::Deny, "quarantined", Some(id))?;
        }
        tx.commit()
    }

    /// Changes a row's state and record, optionally changing the content
    /// lists and appending audit entries, all in one transaction.
    pub fn update(
        &mut self,
        id: &str,
        state: &str,
        record: &str,
        list: Option<(&str, ListKind, &str)>,
        audit: &[AuditEntry<'_>],
    ) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE quarantine SET state = ?2, record = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, state, record, now()],
        )?;
        if let Some((sha, kind, reason)) = list {
            upsert_list(&tx, sha, kind, reason, Some(id))?;
        }
        for a in audit {
            insert_audit(&tx, a)?;
        }
        tx.commit()
    }

    /// Puts a hash on a list outside of any quarantine operation.
    pub fn set_list(
        &mut self,
        sha256: &str,
        kind: ListKind,
        reason: &str,
        id: Option<&str>,
    ) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        upsert_list(&tx, sha256, kind, reason, id)?;
        tx.commit()
    }

    pub fn list_of(&self, sha256: &str) -> rusqlite::Result<Option<ListKind>> {
        let v: Option<String> = self
            .conn
            .query_row(
                "SELECT list FROM content_list WHERE sha256 = ?1",
                params![sha256],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match v.as_deref() {
            Some("deny") => Some(ListKind::Deny),
            Some("allow") => Some(ListKind::Allow),
            _ => None,
        })
    }

    pub fn audit(&mut self, entry: &AuditEntry<'_>) -> rusqlite::Result<()> {
        insert_audit(&self.conn, entry)
    }

    pub fn rows(&self, states: &[&str]) -> rusqlite::Result<Vec<Row>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, state, record FROM quarantine ORDER BY created_at, id")?;
        let rows = stmt.query_map([], |r| {
            Ok(Row {
                id: r.get(0)?,
                state: r.get(1)?,
                record: r.get(2)?,
            })
        })?;
        let mut out = Vec::new();
        for row in rows {
            let row = row?;
            if states.is_empty() || states.contains(&row.state.as_str()) {
                out.push(row);
            }
        }
        Ok(out)
    }

    pub fn row(&self, id: &str) -> rusqlite::Result<Option<Row>> {
        self.conn
            .query_row(
                "SELECT id, state, record FROM quarantine WHERE id = ?1",
                params![id],
                |r| {
                    Ok(Row {
                        id: r.get(0)?,
                        state: r.get(1)?,
                        record: r.get(2)?,
                    })
                },
            )
            .optional()
    }

    pub fn seen(&self, stat_key: &str) -> rusqlite::Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT sha256 FROM file_seen WHERE stat_key = ?1",
                params![stat_key],
                |r| r.get(0),
            )
            .optional()
    }

    pub fn remember_seen(&self, stat_key: &str, sha256: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO file_seen (stat_key, sha256, at) VALUES (?1, ?2, ?3)
             ON CONFLICT(stat_key) DO UPDATE SET sha256 = excluded.sha256, at = excluded.at",
            params![stat_key, sha256, now()],
        )?;
        Ok(())
    }
}

/// Whether SQLite says the file is damaged or not a database: the cases a
/// rebuild from the records can fix (as opposed to a busy or unwritable
/// database, which it cannot).
pub fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

fn upsert_list(
    conn: &Connection,
    sha256: &str,
    kind: ListKind,
    reason: &str,
    id: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO content_list (sha256, list, reason, quarantine_id, at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(sha256) DO UPDATE SET list = excluded.list, reason = excluded.reason,
             quarantine_id = excluded.quarantine_id, at = excluded.at",
        params![sha256, kind.as_str(), reason, id, now()],
    )?;
    Ok(())
}

fn insert_audit(conn: &Connection, a: &AuditEntry<'_>) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO audit (at, action, quarantine_id, sha256, path, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![now(), a.action, a.quarantine_id, a.sha256, a.path, a.detail],
    )?;
    Ok(())
}

/// Whether content `sha256` must be refused by another process than the
/// daemon that owns `db_path` (the registry gate): deny-listed, or held in
/// quarantine (a `pending` one too, failing closed). The database is opened
/// read-only and nothing is recovered or written: that is the owner's job.
pub fn refuses_content(db_path: &Path, sha256: &str) -> rusqlite::Result<bool> {
    let conn = Connection::open_with_flags(
        db_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let listed: Option<String> = conn
        .query_row(
            "SELECT list FROM content_list WHERE sha256 = ?1",
            params![sha256],
            |r| r.get(0),
        )
        .optional()?;
    match listed.as_deref() {
        Some("deny") => return Ok(true),
        Some("allow") => return Ok(false),
        // An unknown list name is not an allow.
        Some(_) => return Ok(true),
        None => {}
    }
    let held: i64 = conn.query_row(
        "SELECT COUNT(*) FROM quarantine WHERE sha256 = ?1 AND state IN ('pending', 'quarantined')",
        params![sha256],
        |r| r.get(0),
    )?;
    Ok(held > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_is_append_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("s.db")).unwrap();
        db.audit(&AuditEntry {
            action: "x",
            quarantine_id: None,
            sha256: None,
            path: None,
            detail: "d",
        })
        .unwrap();
        assert!(
            db.conn
                .execute("UPDATE audit SET action = 'y'", [])
                .is_err()
        );
        assert!(db.conn.execute("DELETE FROM audit", []).is_err());
    }

    #[test]
    fn lists_and_cache_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("s.db")).unwrap();
        assert_eq!(db.list_of("aa").unwrap(), None);
        db.set_list("aa", ListKind::Deny, "t", None).unwrap();
        assert_eq!(db.list_of("aa").unwrap(), Some(ListKind::Deny));
        db.set_list("aa", ListKind::Allow, "t", None).unwrap();
        assert_eq!(db.list_of("aa").unwrap(), Some(ListKind::Allow));
    }

    /// A state database written before the verdict cache moved out still
    /// opens, keeps its records and lists, and loses only `scan_result`.
    #[test]
    fn schema_1_database_opens_and_drops_its_scan_results() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE content_list (sha256 TEXT PRIMARY KEY, list TEXT NOT NULL
                 CHECK (list IN ('deny', 'allow')), reason TEXT NOT NULL, quarantine_id TEXT,
                 at TEXT NOT NULL);
             INSERT INTO content_list VALUES ('aa', 'deny', 'quarantined', NULL, 'then');
             CREATE TABLE scan_result (sha256 TEXT NOT NULL, engine TEXT NOT NULL,
                 name TEXT NOT NULL, verdict TEXT NOT NULL, action TEXT NOT NULL,
                 format TEXT NOT NULL, rules TEXT NOT NULL, findings TEXT NOT NULL,
                 at TEXT NOT NULL, PRIMARY KEY (sha256, engine, name));
             INSERT INTO scan_result VALUES ('bb', 'e', 'n', 'clean', 'allow', 'pickle', '', '[]', 'then');
             PRAGMA user_version = 1;",
        )
        .unwrap();
        drop(old);
        let db = Db::open(&path).unwrap();
        assert_eq!(db.list_of("aa").unwrap(), Some(ListKind::Deny));
        let left: i64 = db
            .conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'scan_result'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
        let version: i64 = db
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }
}
