//! `modelgate watch`: run the Hugging Face cache daemon (or one sweep with
//! `--once`). Logs go to stderr through `tracing`; `MODELGATE_LOG` takes an
//! env-filter directive (default `info`). Each file the daemon judges ends
//! with one `processed` event (target `modelgate::processed`: the path and
//! its outcome, `allowed`, `warned`, `quarantined` with the id, `refused`,
//! …): with `--log-format json` a supervisor can follow the daemon's work
//! line by line; `MODELGATE_LOG=info,modelgate::processed=off` silences it.

use anyhow::Context;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use modelgate::hfcache;
use modelgate::watch::{self, RunSummary, WatchConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("roots").args(["caches", "local_dirs"]).multiple(true))]
pub struct WatchArgs {
    /// Another hub cache to watch (a `cache_dir=`), besides the one
    /// huggingface_hub resolves from HF_HUB_CACHE / HF_HOME; it must
    /// exist. Repeatable.
    #[arg(long = "cache", value_name = "DIR")]
    caches: Vec<PathBuf>,
    /// A folder models are downloaded into directly (`local_dir=`); it
    /// must exist. Repeatable.
    #[arg(long = "local-dir", value_name = "DIR")]
    local_dirs: Vec<PathBuf>,
    /// Do not watch the default hub cache, only the --cache/--local-dir
    /// roots given (at least one).
    #[arg(long, requires = "roots")]
    no_default_cache: bool,
    /// Policy file (default: policy.toml / .modelgate.toml found from the
    /// working directory, else the built-in defaults). Its `[daemon]` table
    /// decides what is quarantined.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Sweep what is already there, then exit (for cron and CI). Exit code
    /// 1 if anything was quarantined, 2 if a file could not be handled
    /// (after retries).
    #[arg(long)]
    once: bool,
    /// Files hashed and scanned at the same time.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Verdict cache directory, shared with `modelgate scan --cache DIR`:
    /// a file either command judged is not scanned again by the other
    /// (default: `verdicts/` under the state directory). Named apart from
    /// --cache, which adds a hub cache to watch.
    #[arg(long, value_name = "DIR")]
    verdict_cache: Option<PathBuf>,
    /// Backend for a new verdict-cache directory.
    #[arg(long, value_enum, value_name = "KIND")]
    cache_backend: Option<super::cache::Backend>,
    /// Log format on stderr: human-readable lines, or one JSON object per
    /// line (for journald or a log collector).
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

/// An explicitly named root must be an existing folder: a mistyped path
/// silently created and watched would watch nothing while looking fine.
pub fn must_exist(flag: &str, dir: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => anyhow::bail!("{flag} {}: not a folder", dir.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let hint = match (flag, hfcache::default_hub_cache()) {
                ("--cache", Some(default)) => format!(
                    "the default hub cache ({}) is watched without --cache; \
                     to watch another one, create it first (mkdir -p {})",
                    default.display(),
                    dir.display()
                ),
                _ => format!("create it first (mkdir -p {})", dir.display()),
            };
            anyhow::bail!("{flag} {}: no such folder; {hint}", dir.display())
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("{flag} {}", dir.display()))),
    }
}

/// Installs the tracing subscriber (stderr, human or JSON lines).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MODELGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = super::color_enabled(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

pub fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    let policy = match super::load_policy(args.policy.as_deref())? {
        Ok(policy) => policy,
        Err(code) => return Ok(code),
    };
    for (flag, dirs) in [("--cache", &args.caches), ("--local-dir", &args.local_dirs)] {
        for d in dirs {
            must_exist(flag, d)?;
        }
    }
    let mut caches = Vec::new();
    if !args.no_default_cache {
        caches.push(
            hfcache::default_hub_cache()
                .context("cannot find the home directory to locate the Hugging Face cache")?,
        );
    }
    caches.extend(args.caches);
    let state_dir = modelgate::quarantine::default_state_dir()
        .context("cannot find a state directory; set MODELGATE_STATE_DIR")?;
    let cfg = WatchConfig {
        caches,
        local_dirs: args.local_dirs,
        once: args.once,
        jobs: usize::from(args.jobs),
        state_dir,
        verdict_cache: args.verdict_cache,
        cache_backend: args.cache_backend.map(Into::into),
    };
    let summary = watch::run(cfg, policy)?;
    if args.once {
        print_sweep(&summary)?;
    }
    if args.once && summary.failed > 0 {
        tracing::error!(
            failed = summary.failed,
            "some files could not be handled (see the errors above)"
        );
        return Ok(ExitCode::from(super::EXIT_ERROR));
    }
    if args.once && summary.quarantined > 0 {
        return Ok(ExitCode::from(super::EXIT_FINDINGS));
    }
    Ok(ExitCode::SUCCESS)
}

/// `--once`: what was swept, per folder, on stdout (the log is on stderr).
fn print_sweep(s: &RunSummary) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let known = s.files.saturating_sub(s.scanned);
    let detail = if known == 0 {
        String::new()
    } else {
        format!(
            " ({} scanned, {known} known from an earlier scan)",
            s.scanned
        )
    };
    writeln!(
        out,
        "swept {}: {} checked{detail}, {} quarantined, {} warned, {} refused, {} failed",
        plural(s.roots.len() as u64, "folder", "folders"),
        plural(s.files, "file", "files"),
        s.quarantined,
        s.warned,
        s.refused,
        s.failed
    )?;
    for r in &s.roots {
        let kind = match r.kind {
            hfcache::RootKind::HubCache => "hub cache",
            hfcache::RootKind::LocalDir => "local dir",
        };
        writeln!(
            out,
            "  {} ({kind}): {}, {} quarantined, {} warned",
            r.path.display(),
            plural(r.files, "file", "files"),
            r.quarantined,
            r.warned
        )?;
    }
    out.flush()
}
