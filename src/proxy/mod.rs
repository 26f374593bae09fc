//! The registry gate (`modelgate proxy`): a Hugging Face pull-through proxy
//! that clients reach through `HF_ENDPOINT`. Metadata (`/api/...`) is
//! forwarded; every file download (`.../resolve/...`) is spooled to disk,
//! scanned and decided by the `[proxy]` policy table before one byte of it
//! reaches the client. No other path exists, so nothing unscanned can be
//! fetched through the gate.
//!
//! Xet storage is hidden: `X-Xet-*` headers and `xet-*` links would send
//! clients straight to the Xet CAS and around the gate, so they are
//! stripped and clients fall back to plain HTTP downloads through it.

mod gate;
mod http;
mod metrics;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;

use crate::cache::{Cache, CachedScanner};
use crate::hub::{HubClient, HubLimits, RepoKind};
use crate::policy::Policy;
use crate::scan::Scanner;

pub use metrics::Metrics;

/// How the gate runs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The upstream Hub (`https://huggingface.co`).
    pub upstream: String,
    /// Verdict cache and store of clean files, kept across runs; without
    /// it, spools go to a temporary directory and nothing is kept.
    pub cache_dir: Option<PathBuf>,
    /// Largest single file the gate spools (507 above it).
    pub max_file_size: u64,
    /// Bytes all spools in flight may hold together (503 when full).
    pub spool_budget: u64,
    /// Upstream downloads running at once; more requests wait.
    pub max_fetches: usize,
    /// How long a request waits for a download slot before a 503.
    pub queue_timeout: Duration,
    /// Requests that may wait for a download slot; more get a 503 at once
    /// (a client asking for 10,000 files at a time).
    pub max_waiting: usize,
    /// Longest silence of the upstream inside one response.
    pub upstream_timeout: Duration,
    /// The daemon's state directory, whose deny-list and quarantine the
    /// gate honours (read-only).
    pub quarantine_dir: Option<PathBuf>,
    /// Most bytes the store of clean files may hold; the least recently
    /// served files go first when a new one passes it.
    pub store_max_bytes: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            upstream: "https://huggingface.co".into(),
            cache_dir: None,
            max_file_size: 200 << 30,
            spool_budget: 400 << 30,
            max_fetches: 8,
            queue_timeout: Duration::from_secs(300),
            max_waiting: 1024,
            upstream_timeout: Duration::from_secs(60),
            quarantine_dir: None,
            store_max_bytes: 500 << 30,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Hub(#[from] crate::hub::HubError),
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    #[error("cannot prepare {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The running gate's shared state.
pub struct Proxy {
    hub: HubClient,
    policy: Arc<Policy>,
    scanner: Arc<CachedScanner>,
    /// Content-addressed files that passed the gate (`{sha256}`).
    blobs: Option<PathBuf>,
    spool_dir: PathBuf,
    /// Removes a temporary spool directory when the gate stops.
    _spool_tmp: tempfile::TempDir,
    spool_used: Arc<AtomicU64>,
    /// Bytes the store of clean files holds.
    store_used: AtomicU64,
    fetches: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
    flights: gate::Flights,
    quarantine_db: Option<PathBuf>,
    config: ProxyConfig,
    pub metrics: Metrics,
}

impl Proxy {
    pub fn new(config: ProxyConfig, policy: Policy) -> Result<Proxy, ProxyError> {
        let limits = HubLimits {
            idle_timeout: config.upstream_timeout,
            ..HubLimits::default()
        };
        let hub = HubClient::new(&config.upstream, limits)?;
        let mkdir = |path: &Path| {
            std::fs::create_dir_all(path).map_err(|source| ProxyError::Dir {
                path: path.to_path_buf(),
                source,
            })
        };
        let (cache, blobs, spool_parent) = match &config.cache_dir {
            Some(dir) => {
                let blobs = dir.join("blobs");
                let spools = dir.join("spool");
                mkdir(&blobs)?;
                mkdir(&spools)?;
                remove_stale_spools(&spools);
                let cache = Cache::open(&dir.join("verdicts"), None)?;
                (Some(cache), Some(blobs), spools)
            }
            None => (None, None, std::env::temp_dir()),
        };
        // One spool directory per run, so that gates sharing a cache
        // directory never touch each other's spools; removed on exit.
        let spool_tmp = tempfile::Builder::new()
            .prefix("modelgate-proxy-")
            .tempdir_in(&spool_parent)
            .map_err(|source| ProxyError::Dir {
                path: spool_parent.clone(),
                source,
            })?;
        let spool_dir = spool_tmp.path().to_path_buf();
        let scanner = CachedScanner::new(
            Scanner::new(policy.scan_config()),
            cache,
            policy.scan_settings_digest(),
        );
        let quarantine_db = config
            .quarantine_dir
            .as_ref()
            .map(|d| d.join("state.db"))
            .filter(|p| p.exists());
        let store_used = blobs.as_deref().map_or(0, gate::store_size);
        Ok(Proxy {
            hub,
            policy: Arc::new(policy),
            scanner: Arc::new(scanner),
            blobs,
            spool_dir,
            _spool_tmp: spool_tmp,
            spool_used: Arc::new(AtomicU64::new(0)),
            store_used: AtomicU64::new(store_used),
            fetches: tokio::sync::Semaphore::new(config.max_fetches.max(1)),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            flights: gate::Flights::default(),
            quarantine_db,
            config,
            metrics: Metrics::default(),
        })
    }

    /// Serves until `shutdown` resolves, then finishes the requests in
    /// flight.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        use axum::serve::ListenerExt;
        let app = axum::Router::new().fallback(handle).with_state(self);
        // Headers and body go out in separate writes: without NODELAY,
        // Nagle and delayed ACKs add 40 ms to every small file.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// Spool directories of runs that ended without cleaning up (a crash, a
/// kill) and are a day old: never served, only taking space.
fn remove_stale_spools(spools: &Path) {
    let Ok(rd) = std::fs::read_dir(spools) else {
        return;
    };
    for e in rd.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(24 * 3600));
        if old
            && e.file_name()
                .to_string_lossy()
                .starts_with("modelgate-proxy-")
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A response carrying modelgate's message the way the Hub carries its
/// own: JSON `{"error": ...}` and `X-Error-Message`, which huggingface_hub
/// puts into the exception it raises.
pub(crate) fn refuse(status: StatusCode, message: &str) -> Response {
    refuse_json(status, message, serde_json::json!({ "error": message }))
}

pub(crate) fn refuse_json(status: StatusCode, message: &str, body: serde_json::Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert("x-error-message", header_text(message));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    }
    r
}

/// `s` as a header value: visible ASCII only, bounded.
fn header_text(s: &str) -> HeaderValue {
    let clean: String = s
        .chars()
        .take(1000)
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    HeaderValue::from_str(&clean).unwrap_or_else(|_| HeaderValue::from_static("refused"))
}

/// What a request path names, after decoding and checks.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Health,
    Metrics,
    Api,
    Resolve {
        kind: RepoKind,
        repo: String,
        rev: String,
        path: String,
    },
    NotFound,
}

/// Splits and decodes a raw path. A segment that decodes to `.` or `..`,
/// holds a backslash or NUL, or is empty, refuses the whole path: the gate
/// never guesses which file a client meant.
fn segments(raw: &str) -> Result<Vec<String>, String> {
    let raw = raw.strip_prefix('/').unwrap_or(raw);
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    raw.split('/')
        .map(|s| {
            let d = percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map_err(|_| "the path is not UTF-8".to_string())?;
            if d.is_empty() || d == "." || d == ".." || d.contains(['\\', '\0']) {
                return Err(format!("path segment `{s}` is not allowed"));
            }
            Ok(d.into_owned())
        })
        .collect()
}

fn route(raw_path: &str) -> Result<Route, String> {
    let segs = segments(raw_path)?;
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    Ok(match s.as_slice() {
        ["healthz"] => Route::Health,
        ["metrics"] => Route::Metrics,
        ["api", ..] => Route::Api,
        _ => {
            let (kind, rest) = match s.first() {
                Some(&"datasets") => (RepoKind::Dataset, &s[1..]),
                Some(&"spaces") => (RepoKind::Space, &s[1..]),
                _ => (RepoKind::Model, &s[..]),
            };
            // `org/name/resolve/...`, or a legacy `name/resolve/...`.
            let at = match rest {
                [_, _, "resolve", ..] => 2,
                [_, "resolve", ..] => 1,
                _ => return Ok(Route::NotFound),
            };
            let repo = rest[..at].join("/");
            let Some(rev) = rest.get(at + 1) else {
                return Ok(Route::NotFound);
            };
            let file = &rest[at + 2..];
            if file.is_empty() {
                return Ok(Route::NotFound);
            }
            // The revision may be `refs/pr/1` (encoded); a name, an org or
            // a file segment may not hide a separator.
            if rest[..at].iter().chain(file).any(|p| p.contains('/')) {
                return Err("an encoded slash is only allowed in the revision".into());
            }
            Route::Resolve {
                kind,
                repo,
                rev: rev.to_string(),
                path: file.join("/"),
            }
        }
    })
}

async fn handle(State(proxy): State<Arc<Proxy>>, req: Request) -> Response {
    proxy.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let route = match route(req.uri().path()) {
        Ok(r) => r,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, &format!("modelgate: {why}")),
    };
    let method = req.method().clone();
    match route {
        Route::Health if method == Method::GET || method == Method::HEAD => {
            Response::new(Body::from("ok\n"))
        }
        Route::Metrics if method == Method::GET => proxy.metrics.render(&proxy),
        Route::Api => http::forward_api(&proxy, req).await,
        Route::Resolve {
            kind,
            repo,
            rev,
            path,
        } if method == Method::GET || method == Method::HEAD => {
            let file = gate::Wanted {
                kind,
                repo,
                rev,
                path,
            };
            gate::resolve(&proxy, &file, &method, req.headers()).await
        }
        Route::Resolve { .. } | Route::Health | Route::Metrics => refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "modelgate: method not allowed",
        ),
        Route::NotFound => refuse(
            StatusCode::NOT_FOUND,
            "modelgate proxy: not a Hub API or file path (only /api/... and .../resolve/... pass the gate)",
        ),
    }
}

/// The client's `Authorization`, handed to the upstream only.
fn client_auth(h: &HeaderMap) -> Option<HeaderValue> {
    h.get(header::AUTHORIZATION).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/healthz").unwrap(), Route::Health);
        assert_eq!(route("/api/models/a/b").unwrap(), Route::Api);
        assert_eq!(
            route("/a/b/resolve/main/sub/x.bin").unwrap(),
            Route::Resolve {
                kind: RepoKind::Model,
                repo: "a/b".into(),
                rev: "main".into(),
                path: "sub/x.bin".into()
            }
        );
        assert_eq!(
            route("/datasets/a/b/resolve/refs%2Fpr%2F1/x.bin").unwrap(),
            Route::Resolve {
                kind: RepoKind::Dataset,
                repo: "a/b".into(),
                rev: "refs/pr/1".into(),
                path: "x.bin".into()
            }
        );
        assert_eq!(
            route("/gpt2/resolve/main/config.json").unwrap(),
            Route::Resolve {
                kind: RepoKind::Model,
                repo: "gpt2".into(),
                rev: "main".into(),
                path: "config.json".into()
            }
        );
        assert_eq!(route("/cdn/abc").unwrap(), Route::NotFound);
        assert_eq!(route("/a/b/blob/main/x").unwrap(), Route::NotFound);
        assert!(route("/a/b/resolve/main/../x").is_err());
        assert!(route("/a/b/resolve/main/%2e%2e/x").is_err());
        assert!(route("/a/b/resolve/main/sub%2F..%2Fx").is_err());
        assert!(route("/a/b/resolve/main/x%5cy").is_err());
        assert!(route("/a//b/resolve/main/x").is_err());
        assert!(route("/api/models/../../etc").is_err());
    }
}
