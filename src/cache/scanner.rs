//! [`CachedScanner`]: the core scanner behind the verdict cache.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Cache, CacheKey, Lookup};
use crate::scan::{FileReport, Kind, ScanError, Scanner};

/// Formats whose report depends on more than the file's bytes: an ONNX
/// graph's external data is read from files beside it. Never cached.
const UNCACHEABLE_FORMATS: &[Kind] = &[Kind::Onnx];

/// One scanned (or cache-served) file.
#[derive(Debug)]
pub struct Scanned {
    pub report: FileReport,
    /// sha256 of the content the report is about.
    pub sha256: String,
    /// True when the report came from the cache and nothing was scanned.
    pub cached: bool,
    /// The sha256 a manifest claimed when it was not the content's: the
    /// file was scanned, the claim not trusted.
    pub claimed_sha256: Option<String>,
}

/// How many files were scanned, served from the cache, or had an entry
/// that was not trusted.
#[derive(Debug, Default)]
pub struct CacheCounters {
    pub scanned: AtomicU64,
    pub cached: AtomicU64,
    pub rejected: AtomicU64,
}

pub struct CachedScanner {
    scanner: Scanner,
    cache: Option<Cache>,
    settings: String,
    pub counters: CacheCounters,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl CachedScanner {
    /// `settings_digest` is the policy's
    /// `Policy::scan_settings_digest` (the policy module)
    /// for the configuration `scanner` was built with.
    pub fn new(scanner: Scanner, cache: Option<Cache>, settings_digest: String) -> CachedScanner {
        CachedScanner {
            scanner,
            cache,
            settings: settings_digest,
            counters: CacheCounters::default(),
        }
    }

    pub fn scanner(&self) -> &Scanner {
        &self.scanner
    }

    pub fn cache(&self) -> Option<&Cache> {
        self.cache.as_ref()
    }

    pub fn key(&self, sha256: &str, display: &str) -> CacheKey {
        CacheKey::new(sha256, display, &self.settings)
    }

    /// The cached report for content `sha256` named `display`, if one is
    /// trusted. A read error or an untrusted entry is a miss.
    pub fn lookup(&self, sha256: &str, display: &str) -> Option<FileReport> {
        let cache = self.cache.as_ref()?;
        let shown = display;
        match cache.get(&self.key(sha256, display), display) {
            Ok(Lookup::Hit(r)) => Some(r),
            Ok(Lookup::Miss) => None,
            Ok(Lookup::Rejected(why)) => {
                bump(&self.counters.rejected);
                tracing::warn!(sha256, path = shown, reason = ?why, "untrusted verdict-cache entry; scanning again");
                None
            }
            Err(e) => {
                tracing::warn!(sha256, path = shown, error = %e, "verdict cache unreadable; scanning");
                None
            }
        }
    }

    /// The trusted cached verdict for content `sha256` named `display`,
    /// counted as served from the cache; `None` on a miss.
    pub fn from_cache(&self, sha256: &str, display: &str) -> Option<Scanned> {
        let report = self.lookup(sha256, display)?;
        bump(&self.counters.cached);
        Some(Scanned {
            report,
            sha256: sha256.to_ascii_lowercase(),
            cached: true,
            claimed_sha256: None,
        })
    }

    /// Stores a report the caller produced for content `sha256`.
    pub fn remember(&self, sha256: &str, report: &FileReport) {
        let Some(cache) = &self.cache else { return };
        if UNCACHEABLE_FORMATS.contains(&report.format) {
            return;
        }
        // A cache that cannot be written costs time, not safety.
        if let Err(e) = cache.put(&self.key(sha256, &report.path), report) {
            tracing::warn!(sha256, error = %e, "cannot write the verdict cache");
        }
    }

    /// Scans `path`. With `claimed` (a manifest's sha256) that the cache
    /// knows, the file is not opened at all; otherwise it is mapped once,
    /// and the bytes that are hashed are the bytes that are scanned.
    pub fn scan_file(
        &self,
        path: &Path,
        display: &str,
        claimed: Option<&str>,
    ) -> Result<Scanned, ScanError> {
        if let Some(hit) = claimed.and_then(|sha| self.from_cache(sha, display)) {
            return Ok(hit);
        }
        let io = |source| ScanError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let map;
        let data: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: a read-only private map, as in `Scanner::scan_file`
            // (the same truncation caveat applies).
            map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
            &map
        };
        let sha256 = crate::digest::sha256_bytes(data);
        let mismatch = claimed.filter(|c| !c.eq_ignore_ascii_case(&sha256));
        if claimed.is_none()
            && let Some(hit) = self.from_cache(&sha256, display)
        {
            return Ok(hit);
        }
        let report = self.scanner.scan_mapped(display, data, path);
        bump(&self.counters.scanned);
        self.remember(&sha256, &report);
        Ok(Scanned {
            report,
            sha256,
            cached: false,
            claimed_sha256: mismatch.map(str::to_string),
        })
    }

    /// Scans `path`, whose sha256 the caller computed from exactly these
    /// bytes while writing them (a private download spool): the file is not
    /// hashed again, which would read all of it for nothing.
    pub fn scan_hashed_file(
        &self,
        path: &Path,
        display: &str,
        sha256: &str,
    ) -> Result<Scanned, ScanError> {
        if let Some(hit) = self.from_cache(sha256, display) {
            return Ok(hit);
        }
        let report = self.scanner.scan_file(path, display)?;
        bump(&self.counters.scanned);
        self.remember(sha256, &report);
        Ok(Scanned {
            report,
            sha256: sha256.to_ascii_lowercase(),
            cached: false,
            claimed_sha256: None,
        })
    }

    /// Scans bytes that are not a file on disk (a download in memory).
    pub fn scan_bytes(&self, display: &str, data: &[u8]) -> Scanned {
        let sha256 = crate::digest::sha256_bytes(data);
        if let Some(hit) = self.from_cache(&sha256, display) {
            return hit;
        }
        let report = self.scanner.scan_bytes(display, data);
        bump(&self.counters.scanned);
        self.remember(&sha256, &report);
        Scanned {
            report,
            sha256,
            cached: false,
            claimed_sha256: None,
        }
    }
}
