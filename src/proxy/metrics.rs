//! Prometheus text-format counters of the gate.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;

use super::Proxy;

#[derive(Debug, Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    /// Bytes received from the upstream into spools.
    pub upstream_bytes: AtomicU64,
    /// Bytes of files served to clients (what was sent, ranges counted
    /// by their length).
    pub served_bytes: AtomicU64,
    pub scans: AtomicU64,
    pub cache_hits: AtomicU64,
    /// Files served from the gate's own store without an upstream download.
    pub store_hits: AtomicU64,
    pub blocks: AtomicU64,
    pub warnings: AtomicU64,
    pub upstream_errors: AtomicU64,
}

impl Metrics {
    pub fn render(&self, proxy: &Proxy) -> Response {
        let rows: [(&str, &str, &AtomicU64); 9] = [
            ("requests_total", "HTTP requests received", &self.requests),
            (
                "upstream_bytes_total",
                "bytes downloaded from the upstream",
                &self.upstream_bytes,
            ),
            (
                "served_bytes_total",
                "bytes of files served to clients",
                &self.served_bytes,
            ),
            ("scans_total", "files scanned", &self.scans),
            (
                "cache_hits_total",
                "verdicts answered from the verdict cache",
                &self.cache_hits,
            ),
            (
                "store_hits_total",
                "files served from the gate's store without downloading",
                &self.store_hits,
            ),
            ("blocks_total", "files refused", &self.blocks),
            (
                "warnings_total",
                "files served with a warning",
                &self.warnings,
            ),
            (
                "upstream_errors_total",
                "upstream failures (status, timeout, length, hash)",
                &self.upstream_errors,
            ),
        ];
        let mut out = String::new();
        for (name, help, v) in rows {
            let _ = writeln!(out, "# HELP modelgate_proxy_{name} {help}");
            let _ = writeln!(out, "# TYPE modelgate_proxy_{name} counter");
            let _ = writeln!(out, "modelgate_proxy_{name} {}", v.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP modelgate_proxy_spool_bytes bytes held by spools in flight"
        );
        let _ = writeln!(out, "# TYPE modelgate_proxy_spool_bytes gauge");
        let _ = writeln!(
            out,
            "modelgate_proxy_spool_bytes {}",
            proxy.spool_used.load(Ordering::Relaxed)
        );
        let mut r = Response::new(Body::from(out));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        r
    }
}
