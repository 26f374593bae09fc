//! `scan hf://…`: the CLI side of [`modelgate::remote`].

use std::sync::Arc;

use anyhow::Context as _;
use reqwest::header::HeaderValue;

use futures_util::StreamExt as _;

use modelgate::cache::manifest::{ManifestEntry, ResultLine};
use modelgate::cache::{Cache, CachedScanner};
use modelgate::hub::{HubClient, HubLimits};
use modelgate::policy::Policy;
use modelgate::remote::{HfFileUrl, HfSource, Remote, RemoteOptions};
use modelgate::scan::{FileReport, Scanner};

/// Where `hf://` sources are read from, as huggingface_hub reads it.
const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// A single download larger than this is refused: an upstream that streams
/// without end must not fill the disk.
const MAX_FILE_BYTES: u64 = 256 << 30;

/// Manifest URLs fetched at once.
const PARALLEL_URLS: usize = 4;

/// Is this command-line path an `hf://` source?
pub fn is_remote(arg: &std::path::Path) -> bool {
    arg.to_str().is_some_and(|s| s.starts_with("hf://"))
}

/// The upstream (`HF_ENDPOINT`, else huggingface.co) and how to reach it
/// (`HF_TOKEN`), as huggingface_hub reads them.
fn upstream() -> anyhow::Result<(HubClient, RemoteOptions, String)> {
    let endpoint = std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
    let client = HubClient::new(&endpoint, HubLimits::default())
        .with_context(|| "HF_ENDPOINT is not a usable upstream".to_string())?;
    let auth = ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|t| !t.trim().is_empty()))
        .map(|t| {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", t.trim()))
                .context("HF_TOKEN holds characters a header cannot carry")?;
            v.set_sensitive(true);
            anyhow::Ok(v)
        })
        .transpose()?;
    let opts = RemoteOptions {
        auth,
        max_file_bytes: MAX_FILE_BYTES,
    };
    Ok((client, opts, endpoint))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the download runtime")
}

/// Manifest entries that name a file by URL: each is looked up in the
/// cache by its `sha256` first and downloaded only on a miss.
pub fn scan_manifest_urls(
    scanner: &Arc<CachedScanner>,
    entries: &[&ManifestEntry],
) -> anyhow::Result<Vec<ResultLine>> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let (client, opts, _) = upstream()?;
    let runtime = runtime()?;
    let remote = &Remote {
        client: &client,
        scanner,
        opts: &opts,
    };
    let lines = runtime.block_on(
        futures_util::stream::iter(entries)
            .map(|e| async move {
                let url = e.url.as_deref().unwrap_or_default();
                let parsed: HfFileUrl = match url.parse() {
                    Ok(u) => u,
                    Err(err) => return ResultLine::error(url, e.digest(), err.to_string()),
                };
                let f = remote
                    .scan_file_url(&parsed, url.to_string(), e.digest())
                    .await;
                match f.outcome {
                    Ok(s) => ResultLine::scanned(&s),
                    Err(err) => ResultLine::error(url, e.digest(), err),
                }
            })
            .buffer_unordered(PARALLEL_URLS)
            .collect::<Vec<_>>(),
    );
    Ok(lines)
}

/// A scanned remote file: its report and the sha256 of its content.
pub type RemoteScanned = (FileReport, String);
/// A remote file that could not be read or scanned: its name and why.
pub type RemoteError = (String, String);

/// Scans every `hf://` source, returning reports and per-file errors.
pub fn scan(
    policy: &Policy,
    cache: Option<Cache>,
    sources: &[String],
    quiet: bool,
) -> anyhow::Result<(Vec<RemoteScanned>, Vec<RemoteError>)> {
    let parsed: Vec<HfSource> = sources
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let (client, opts, endpoint) = upstream()?;
    let scanner = Arc::new(CachedScanner::new(
        Scanner::new(policy.scan_config()),
        cache,
        policy.scan_settings_digest(),
    ));
    let runtime = runtime()?;
    let remote = Remote {
        client: &client,
        scanner: &scanner,
        opts: &opts,
    };
    let mut scanned = Vec::new();
    let mut errors = Vec::new();
    let mut downloads = 0usize;
    for (text, source) in sources.iter().zip(&parsed) {
        let files = runtime
            .block_on(remote.scan_source(source))
            .with_context(|| format!("cannot read {text} from {endpoint}"))?;
        for f in files {
            downloads += usize::from(f.downloaded);
            match f.outcome {
                Ok(s) => scanned.push((s.report, s.sha256)),
                Err(e) => errors.push((f.display, e)),
            }
        }
    }
    if !quiet {
        let c = &scanner.counters;
        eprintln!(
            "modelgate: {} remote file(s): {downloads} downloaded, {} scanned, {} from the cache",
            scanned.len() + errors.len(),
            c.scanned.load(std::sync::atomic::Ordering::Relaxed),
            c.cached.load(std::sync::atomic::Ordering::Relaxed),
        );
    }
    Ok((scanned, errors))
}
