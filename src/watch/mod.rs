//! `modelgate watch`: a daemon that scans every file huggingface_hub
//! finishes downloading and quarantines the ones that would run code.
//!
//! What it watches: the hub cache huggingface_hub itself would use (same
//! environment variables, same order: see [`crate::hfcache`]), any extra
//! `--cache` roots, and `--local-dir` folders people download into
//! directly. On start it sweeps what is already there (cheaply: content
//! hashes are remembered by file identity in the state database, reports
//! by content hash in the verdict cache `modelgate scan` shares), then
//! reacts to the two signals that mean "content is final": the rename of a
//! finished download into `blobs/` (including the ≥1.32 shared store,
//! `<cache>/blobs/<xx>/<hash>`, reached through two levels of symlinks) and
//! new entries in `snapshots/`. It never reads a `*.incomplete` file.
//!
//! What it refuses to do: load, import or execute anything (the scanner is
//! static); delete anything (a quarantine is a move plus a tombstone, see
//! [`crate::quarantine`]); trust a file name (content decides the format;
//! the snapshot name is passed along only for the rules that compare name
//! and content).
//!
//! Why a tombstone and a deny-list rather than a one-shot move: a dangling
//! snapshot link makes huggingface_hub download the same bytes again, and
//! `force_download=True` (or the shared store republishing a hash another
//! repo needs) renames fresh bytes over the tombstone. Every hash ever
//! quarantined is denied on sight; every hash a person restored is allowed.
//!
//! The decision from a scan report to an action lives in the policy
//! ([`daemon_action`] only maps it); a file quarantined only for a missing
//! signature is released when the signature arrives, and its content is
//! not deny-listed (it is not the content that is wrong).

pub mod daemon;
pub mod engine;

use std::path::PathBuf;
use std::sync::Arc;

use crate::cache::{BackendKind, Cache, CachedScanner};
use crate::hfcache::{Root, RootKind};
use crate::policy::{self, Policy};
use crate::quarantine::Store;
use crate::scan::{FileReport, Scanner};

/// What the daemon does with a finished download, mildest first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Leave it alone.
    Allow,
    /// Leave it in place and log a warning.
    Warn,
    /// Move it to the quarantine store and leave a tombstone.
    Quarantine,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Warn => "warn",
            Action::Quarantine => "quarantine",
        }
    }
}

/// What the daemon does with a scanned file's content: the policy decides
/// in the daemon context (`[daemon]` actions, exemptions by hash). The
/// signature requirement is decided apart, since it depends on the place
/// (see [`Policy::decide_download_signature`]).
pub fn daemon_action(policy: &Policy, report: &FileReport, sha256: &str) -> Action {
    to_daemon_action(policy.decide_download(report, sha256).action)
}

/// A daemon cannot block a download that already happened, so `block`
/// means quarantine.
pub fn to_daemon_action(action: policy::Action) -> Action {
    match action {
        policy::Action::Allow => Action::Allow,
        policy::Action::Warn => Action::Warn,
        policy::Action::Block | policy::Action::Quarantine => Action::Quarantine,
    }
}

/// How the daemon was asked to run.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Hub cache roots (the resolved default plus `--cache`).
    pub caches: Vec<PathBuf>,
    /// `--local-dir` roots.
    pub local_dirs: Vec<PathBuf>,
    /// Sweep and exit.
    pub once: bool,
    /// Scans running at the same time.
    pub jobs: usize,
    pub state_dir: PathBuf,
    /// The verdict cache shared with `modelgate scan --cache` (default:
    /// `verdicts/` under `state_dir`).
    pub verdict_cache: Option<PathBuf>,
    /// Backend of a new verdict-cache directory.
    pub cache_backend: Option<BackendKind>,
}

/// What a run did, for the `--once` report and exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// Each root watched, as configured, with what it held.
    pub roots: Vec<RootSummary>,
    pub files: u64,
    pub scanned: u64,
    pub quarantined: u64,
    pub warned: u64,
    /// Paths refused because they lead outside their root.
    pub refused: u64,
    /// Actions that still failed after every retry: `--once` exits
    /// non-zero.
    pub failed: u64,
}

/// One watched root's share of a [`RunSummary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootSummary {
    pub path: PathBuf,
    pub kind: RootKind,
    /// Content files looked at (tombstones and bookkeeping excluded).
    pub files: u64,
    pub warned: u64,
    pub quarantined: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Store(#[from] crate::quarantine::Error),
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    #[error("cannot watch: {0}")]
    Notify(#[from] notify::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn prepare_roots(cfg: &WatchConfig) -> Result<Vec<Root>, WatchError> {
    let mut roots: Vec<Root> = Vec::new();
    let all = cfg
        .caches
        .iter()
        .map(|p| (p, RootKind::HubCache))
        .chain(cfg.local_dirs.iter().map(|p| (p, RootKind::LocalDir)));
    for (path, kind) in all {
        // huggingface_hub creates the cache on first download; creating it
        // now lets the watch exist before that download.
        std::fs::create_dir_all(path).map_err(|source| WatchError::Io {
            context: format!("cannot create {}", path.display()),
            source,
        })?;
        let configured = std::path::absolute(path).map_err(|source| WatchError::Io {
            context: format!("cannot resolve {}", path.display()),
            source,
        })?;
        let path = std::fs::canonicalize(path).map_err(|source| WatchError::Io {
            context: format!("cannot resolve {}", path.display()),
            source,
        })?;
        if !roots.iter().any(|r| r.path == path) {
            roots.push(Root {
                path,
                kind,
                configured,
            });
        }
    }
    Ok(roots)
}

/// Runs the daemon (or one sweep) to completion on a small runtime: one
/// thread for the loop, `jobs` blocking threads for hashing and scanning.
pub fn run(cfg: WatchConfig, policy: Policy) -> Result<RunSummary, WatchError> {
    let roots = prepare_roots(&cfg)?;
    let store = Store::open(&cfg.state_dir)?;
    let cache_dir = cfg
        .verdict_cache
        .clone()
        .unwrap_or_else(|| cfg.state_dir.join("verdicts"));
    let scanner = CachedScanner::new(
        Scanner::new(policy.scan_config()),
        Some(Cache::open(&cache_dir, cfg.cache_backend)?),
        policy.scan_settings_digest(),
    );
    let engine = Arc::new(engine::Engine::new(roots, store, scanner, policy));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(cfg.jobs.max(1))
        .build()
        .map_err(|source| WatchError::Io {
            context: "cannot start the runtime".into(),
            source,
        })?;
    let stats = rt.block_on(daemon::run(engine.clone(), cfg.once, cfg.jobs))?;
    let c = &engine.counters;
    let roots = engine
        .roots()
        .into_iter()
        .zip(&engine.per_root)
        .map(|(root, n)| RootSummary {
            path: root.configured,
            kind: root.kind,
            files: engine::Counters::get(&n.files),
            warned: engine::Counters::get(&n.warned),
            quarantined: engine::Counters::get(&n.quarantined),
        })
        .collect();
    Ok(RunSummary {
        roots,
        files: engine::Counters::get(&c.files),
        scanned: engine::Counters::get(&c.scanned),
        quarantined: engine::Counters::get(&c.quarantined),
        warned: engine::Counters::get(&c.warned),
        refused: engine::Counters::get(&c.refused),
        failed: stats.gave_up,
    })
}
