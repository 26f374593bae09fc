//! `modelgate cache stats|prune`: look after the verdict cache.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};

use modelgate::cache::{self, BackendKind, Cache};

/// Backend of a new cache directory (an existing one keeps its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// One SQLite database (WAL): safe for several processes on one host.
    Sqlite,
    /// One file per entry, written then renamed: for a shared network filesystem.
    Dir,
}

impl From<Backend> for BackendKind {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Sqlite => BackendKind::Sqlite,
            Backend::Dir => BackendKind::Dir,
        }
    }
}

/// Where the cache is, shared by every command that uses one.
#[derive(Debug, Args, Clone)]
pub struct CacheLocation {
    /// Verdict cache directory (default: `verdicts/` under the state
    /// directory, `MODELGATE_STATE_DIR` or the platform's). `watch` names
    /// the same directory --verdict-cache.
    #[arg(long, visible_alias = "verdict-cache", value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Backend for a new cache directory.
    #[arg(long, value_enum, value_name = "KIND")]
    pub cache_backend: Option<Backend>,
}

impl CacheLocation {
    pub fn dir(&self) -> anyhow::Result<PathBuf> {
        match &self.cache {
            Some(d) => Ok(d.clone()),
            None => cache::default_dir()
                .context("cannot find a state directory for the verdict cache; set MODELGATE_STATE_DIR or pass --cache DIR"),
        }
    }

    pub fn open(&self) -> anyhow::Result<Cache> {
        let dir = self.dir()?;
        Ok(Cache::open(&dir, self.cache_backend.map(Into::into))?)
    }
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// Count the entries: usable by this build, stale, unreadable.
    Stats {
        #[command(flatten)]
        location: CacheLocation,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove entries that can never be used again (other version or rules, unreadable).
    Prune {
        #[command(flatten)]
        location: CacheLocation,
        /// Also remove entries written more than DAYS days ago.
        #[arg(long, value_name = "DAYS")]
        older_than: Option<u64>,
        /// Remove every entry.
        #[arg(long)]
        all: bool,
    },
}

pub fn run(args: CacheArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        CacheCommand::Stats { location, json } => {
            let stats = location.open()?.stats()?;
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &stats)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "cache:      {} ({})",
                    stats.dir.display(),
                    stats.backend.as_str()
                )?;
                writeln!(out, "entries:    {} ({} bytes)", stats.entries, stats.bytes)?;
                writeln!(
                    out,
                    "usable:     {} (this version and rules)",
                    stats.current
                )?;
                writeln!(
                    out,
                    "stale:      {} (other version or rules; `modelgate cache prune` removes them)",
                    stats.stale
                )?;
                writeln!(out, "unreadable: {}", stats.unreadable)?;
            }
        }
        CacheCommand::Prune {
            location,
            older_than,
            all,
        } => {
            let removed = location
                .open()?
                .prune(older_than.map(|d| Duration::from_secs(d * 86_400)), all)?;
            eprintln!(
                "modelgate: {removed} cache entr{} removed",
                if removed == 1 { "y" } else { "ies" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
