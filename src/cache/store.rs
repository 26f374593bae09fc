//! Where cached verdicts live. Two backends behind one type:
//!
//! - **SQLite** (the default): one database file in WAL mode with a busy
//!   timeout, so several scanner processes on one host (shards, the daemon,
//!   the proxy) read and write it at once.
//! - **Shared directory**: one file per entry at a content-addressed path,
//!   written to a temporary file in the same directory and renamed into
//!   place, so that readers on a network filesystem see a whole entry or
//!   none. SQLite's locking is not safe on NFS; plain files are.
//!
//! The store only moves opaque entry bytes: whether they are trusted is
//! decided by [`super::Entry::decode`], never here.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use super::CacheError;

/// File name of the SQLite backend inside the cache directory.
pub const SQLITE_FILE: &str = "verdicts.sqlite3";
/// Folder of the shared-directory backend inside the cache directory.
pub const OBJECTS_DIR: &str = "objects";

/// Which backend a cache directory uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Sqlite,
    Dir,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Dir => "dir",
        }
    }

    /// The backend a directory already holds, if any.
    pub fn detect(dir: &Path) -> Option<BackendKind> {
        if dir.join(SQLITE_FILE).is_file() {
            Some(BackendKind::Sqlite)
        } else if dir.join(OBJECTS_DIR).is_dir() {
            Some(BackendKind::Dir)
        } else {
            None
        }
    }
}

/// One stored entry as the store sees it, for `stats` and `prune`.
pub struct RawEntry {
    pub id: String,
    pub written: SystemTime,
    pub bytes: Vec<u8>,
}

pub(super) enum Store {
    Sqlite(Mutex<Connection>),
    Dir(PathBuf),
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> CacheError + '_ {
    move |source| CacheError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Entry ids are lower-case hex digests; anything else never reaches a path.
fn valid_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Store {
    pub(super) fn open(dir: &Path, kind: BackendKind) -> Result<Store, CacheError> {
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        match kind {
            BackendKind::Sqlite => {
                let path = dir.join(SQLITE_FILE);
                let conn = Connection::open(&path).map_err(sql(&path))?;
                // Shards start together: wait for a writer rather than fail.
                conn.busy_timeout(Duration::from_secs(30))
                    .map_err(sql(&path))?;
                conn.pragma_update(None, "journal_mode", "WAL")
                    .map_err(sql(&path))?;
                conn.pragma_update(None, "synchronous", "NORMAL")
                    .map_err(sql(&path))?;
                conn.execute_batch(
                    "CREATE TABLE IF NOT EXISTS verdicts (
                         id TEXT PRIMARY KEY,
                         written INTEGER NOT NULL,
                         entry BLOB NOT NULL
                     ) WITHOUT ROWID;",
                )
                .map_err(sql(&path))?;
                Ok(Store::Sqlite(Mutex::new(conn)))
            }
            BackendKind::Dir => {
                let objects = dir.join(OBJECTS_DIR);
                std::fs::create_dir_all(&objects).map_err(io_at(&objects))?;
                Ok(Store::Dir(objects))
            }
        }
    }

    fn object_path(objects: &Path, id: &str) -> PathBuf {
        objects.join(&id[..2]).join(id)
    }

    pub(super) fn get(&self, id: &str) -> Result<Option<Vec<u8>>, CacheError> {
        if !valid_id(id) {
            return Ok(None);
        }
        match self {
            Store::Sqlite(conn) => {
                let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                let path = conn.path().map(PathBuf::from).unwrap_or_default();
                conn.query_row(
                    "SELECT entry FROM verdicts WHERE id = ?1",
                    params![id],
                    |row| row.get::<_, Vec<u8>>(0),
                )
                .optional()
                .map_err(sql(&path))
            }
            Store::Dir(objects) => {
                let path = Self::object_path(objects, id);
                match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io_at(&path)(e)),
                }
            }
        }
    }

    pub(super) fn put(&self, id: &str, bytes: &[u8]) -> Result<(), CacheError> {
        if !valid_id(id) {
            return Ok(());
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        match self {
            Store::Sqlite(conn) => {
                let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                let path = conn.path().map(PathBuf::from).unwrap_or_default();
                conn.execute(
                    "INSERT OR REPLACE INTO verdicts (id, written, entry) VALUES (?1, ?2, ?3)",
                    params![id, now, bytes],
                )
                .map_err(sql(&path))?;
                Ok(())
            }
            Store::Dir(objects) => {
                let path = Self::object_path(objects, id);
                let parent = path.parent().unwrap_or(objects);
                std::fs::create_dir_all(parent).map_err(io_at(parent))?;
                // Same directory as the target: the rename is atomic, and
                // a reader sees the old entry, the new one, or none.
                let mut tmp = tempfile::Builder::new()
                    .prefix(".tmp-")
                    .tempfile_in(parent)
                    .map_err(io_at(parent))?;
                tmp.write_all(bytes).map_err(io_at(tmp.path()))?;
                tmp.as_file().sync_data().map_err(io_at(&path))?;
                tmp.persist(&path).map_err(|e| io_at(&path)(e.error))?;
                Ok(())
            }
        }
    }

    /// Every entry, for `stats` and `prune` (which are rare and may read all).
    pub(super) fn for_each(
        &self,
        mut f: impl FnMut(RawEntry) -> Result<(), CacheError>,
    ) -> Result<(), CacheError> {
        match self {
            Store::Sqlite(conn) => {
                let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                let path = conn.path().map(PathBuf::from).unwrap_or_default();
                let mut stmt = conn
                    .prepare("SELECT id, written, entry FROM verdicts")
                    .map_err(sql(&path))?;
                let rows = stmt
                    .query_map([], |row| {
                        Ok(RawEntry {
                            id: row.get(0)?,
                            written: UNIX_EPOCH
                                + Duration::from_secs(row.get::<_, i64>(1)?.max(0) as u64),
                            bytes: row.get(2)?,
                        })
                    })
                    .map_err(sql(&path))?;
                for row in rows {
                    f(row.map_err(sql(&path))?)?;
                }
                Ok(())
            }
            Store::Dir(objects) => {
                for fan in std::fs::read_dir(objects).map_err(io_at(objects))? {
                    let fan = fan.map_err(io_at(objects))?.path();
                    if !fan.is_dir() {
                        continue;
                    }
                    for entry in std::fs::read_dir(&fan).map_err(io_at(&fan))? {
                        let path = entry.map_err(io_at(&fan))?.path();
                        let Some(id) = path.file_name().and_then(|n| n.to_str()) else {
                            continue;
                        };
                        if !valid_id(id) {
                            continue;
                        }
                        let id = id.to_string();
                        let written = std::fs::metadata(&path)
                            .and_then(|m| m.modified())
                            .unwrap_or(UNIX_EPOCH);
                        let bytes = std::fs::read(&path).unwrap_or_default();
                        f(RawEntry { id, written, bytes })?;
                    }
                }
                Ok(())
            }
        }
    }

    pub(super) fn remove(&self, ids: &[String]) -> Result<(), CacheError> {
        match self {
            Store::Sqlite(conn) => {
                let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                let path = conn.path().map(PathBuf::from).unwrap_or_default();
                let tx = conn.transaction().map_err(sql(&path))?;
                for id in ids {
                    tx.execute("DELETE FROM verdicts WHERE id = ?1", params![id])
                        .map_err(sql(&path))?;
                }
                tx.commit().map_err(sql(&path))?;
                let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
                Ok(())
            }
            Store::Dir(objects) => {
                for id in ids.iter().filter(|id| valid_id(id)) {
                    let path = Self::object_path(objects, id);
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_at(&path)(e)),
                    }
                }
                Ok(())
            }
        }
    }
}
