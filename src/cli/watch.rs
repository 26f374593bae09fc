//! `modelgate watch`: run the Hugging Face cache daemon (or one sweep with
//! `--once`). Logs go to stderr through `tracing`; `MODELGATE_LOG` takes an
//! env-filter directive (default `info`).

use anyhow::Context;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

use modelgate::watch::{self, WatchConfig, hf_cache};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Another hub cache to watch (a `cache_dir=`), besides the one
    /// huggingface_hub resolves from HF_HUB_CACHE / HF_HOME. Repeatable.
    #[arg(long = "cache", value_name = "DIR")]
    caches: Vec<PathBuf>,
    /// A folder models are downloaded into directly (`local_dir=`).
    /// Repeatable.
    #[arg(long = "local-dir", value_name = "DIR")]
    local_dirs: Vec<PathBuf>,
    /// Do not watch the default hub cache, only the --cache/--local-dir
    /// roots given.
    #[arg(long)]
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
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
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
    let mut caches = Vec::new();
    if !args.no_default_cache {
        caches.push(
            hf_cache::default_hub_cache()
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
        policy_key: policy.fingerprint(),
    };
    let summary = watch::run(cfg, policy)?;
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
