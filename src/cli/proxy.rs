//! `modelgate proxy`: the registry gate, a Hugging Face pull-through proxy
//! that scans every file before a client gets it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use modelgate::proxy::{Proxy, ProxyConfig};

use super::watch::{LogFormat, init_logging};

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address to listen on (port 0 picks a free one; the address bound is
    /// printed on stdout as `listening on http://ADDR`).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: String,
    /// The Hub to pull from.
    #[arg(long, default_value = "https://huggingface.co", value_name = "URL")]
    upstream: String,
    /// Policy file (default: policy.toml / .modelgate.toml found from the
    /// working directory, else the built-in defaults). Its `[proxy]` table
    /// decides what is served.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Keep verdicts and clean files here, so a file already judged is not
    /// scanned or downloaded again (default: nothing is kept).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// The watch daemon's state directory: content it quarantined or
    /// deny-listed is refused here too (default: MODELGATE_STATE_DIR or
    /// the daemon's, when it exists).
    #[arg(long, value_name = "DIR")]
    quarantine_dir: Option<PathBuf>,
    /// Largest file the gate downloads, in bytes (K, M, G, T suffixes).
    #[arg(long, default_value = "200G", value_parser = parse_size, value_name = "SIZE")]
    max_file_size: u64,
    /// Disk all downloads in flight may hold together (K, M, G, T suffixes);
    /// beyond it requests get 503 until space is free.
    #[arg(long, default_value = "400G", value_parser = parse_size, value_name = "SIZE")]
    spool_budget: u64,
    /// Most disk the store of clean files under --cache-dir may use (K, M,
    /// G, T suffixes); past it the least recently served files are removed.
    #[arg(long, default_value = "500G", value_parser = parse_size, value_name = "SIZE")]
    store_max_size: u64,
    /// Upstream downloads running at once; further requests wait.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    max_fetches: u16,
    /// Requests that may wait for a download slot; more are answered 503 at
    /// once.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    max_waiting: u32,
    /// Seconds the upstream may stay silent inside a response.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    upstream_timeout: f64,
    /// Log format on stderr: human-readable lines, or one JSON object per
    /// line (one per decision).
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

/// `10G`, `512M`, `4096`: bytes with an optional binary suffix.
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, shift) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown size suffix `{c}` (use K, M, G or T)")),
            };
            (&s[..i], shift)
        }
        _ => (s, 0),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 4096, 512M, 10G)"))?;
    n.checked_mul(1u64 << shift)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("`{s}` is zero or too large"))
}

pub fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    let policy = match super::load_policy(args.policy.as_deref())? {
        Ok(policy) => policy,
        Err(code) => return Ok(code),
    };
    if !(args.upstream_timeout.is_finite() && args.upstream_timeout > 0.0) {
        anyhow::bail!("--upstream-timeout must be a positive number of seconds");
    }
    let quarantine_dir = args
        .quarantine_dir
        .or_else(modelgate::quarantine::default_state_dir);
    let config = ProxyConfig {
        upstream: args.upstream,
        cache_dir: args.cache_dir,
        max_file_size: args.max_file_size,
        spool_budget: args.spool_budget,
        max_fetches: usize::from(args.max_fetches),
        max_waiting: args.max_waiting as usize,
        upstream_timeout: Duration::from_secs_f64(args.upstream_timeout),
        quarantine_dir,
        store_max_bytes: args.store_max_size,
        ..ProxyConfig::default()
    };
    let proxy = Arc::new(Proxy::new(config, policy)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let shutdown = shutdown_signal()?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on http://{addr}")?;
            out.flush()?;
        }
        tracing::info!(target: "modelgate::proxy", %addr, "registry gate listening");
        proxy.serve(listener, shutdown).await?;
        tracing::info!(target: "modelgate::proxy", "registry gate stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on ctrl-c or SIGTERM (systemd, docker stop). The handlers are
/// installed now, before the address is printed: a signal sent as soon as
/// the gate says it listens must not find the default action (death).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("2K"), Ok(2048));
        assert_eq!(parse_size("10g"), Ok(10 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
