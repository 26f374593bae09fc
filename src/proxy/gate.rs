//! Gated downloads: `.../resolve/{rev}/{file}`. The file is spooled to
//! disk, its bytes checked against the Hub's sha256, scanned, decided by
//! `[proxy]`, and only then streamed to the client, from the spool (Range
//! requests too). A HEAD answers the Hub's metadata without a redirect, so
//! the client downloads through the gate and never from the CDN.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::Semaphore;

use super::http::{copy_headers, upstream_failure};
use super::{Proxy, client_auth, refuse, refuse_json};
use crate::cache::Scanned;
use crate::hub::{FileRef, HubError, RepoKind, lfs_sha256};
use crate::policy::Action;
use crate::scan::FileReport;

/// The file a client asked for.
#[derive(Debug)]
pub(super) struct Wanted {
    pub kind: RepoKind,
    pub repo: String,
    pub rev: String,
    pub path: String,
}

impl Wanted {
    fn file_ref(&self) -> FileRef<'_> {
        FileRef {
            kind: self.kind,
            repo: &self.repo,
            rev: &self.rev,
            path: &self.path,
        }
    }
}

/// What the Hub says about a file before its bytes are fetched.
#[derive(Debug, Clone)]
struct Meta {
    /// The LFS sha256 (`X-Linked-Etag`); small files have none.
    sha256: Option<String>,
    size: Option<u64>,
    hub_headers: HeaderMap,
}

impl Meta {
    fn from(hub_headers: &HeaderMap, final_headers: &HeaderMap) -> Meta {
        let num = |h: &HeaderMap, n: &str| {
            h.get(n)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let size =
            num(hub_headers, "x-linked-size").or_else(|| num(final_headers, "content-length"));
        Meta {
            sha256: lfs_sha256(hub_headers),
            size,
            hub_headers: hub_headers.clone(),
        }
    }

    /// The Hub headers huggingface_hub reads, for the client.
    fn client_headers(&self, size: Option<u64>) -> HeaderMap {
        let mut h = HeaderMap::new();
        copy_headers(&self.hub_headers, &mut h);
        h.remove(header::CONTENT_TYPE);
        if let Some(sha) = &self.sha256
            && let Ok(v) = HeaderValue::from_str(&format!("\"{sha}\""))
        {
            h.insert(header::ETAG, v.clone());
            h.insert("x-linked-etag", v);
        }
        if let Some(s) = size.or(self.size) {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(s));
            if self.sha256.is_some() {
                h.insert("x-linked-size", HeaderValue::from(s));
            }
        }
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        h
    }
}

/// Bytes of the shared spool budget held by one download, given back when
/// it is dropped (after the last byte was served).
struct Reservation {
    pool: Arc<AtomicU64>,
    budget: u64,
    held: u64,
}

impl Reservation {
    fn new(pool: Arc<AtomicU64>, budget: u64) -> Reservation {
        Reservation {
            pool,
            budget,
            held: 0,
        }
    }

    /// Holds `total` bytes in all, if the budget allows.
    fn hold(&mut self, total: u64) -> bool {
        if total <= self.held {
            return true;
        }
        let more = total - self.held;
        let mut cur = self.pool.load(Ordering::Relaxed);
        loop {
            let Some(next) = cur.checked_add(more).filter(|&n| n <= self.budget) else {
                return false;
            };
            match self
                .pool
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.held = total;
                    return true;
                }
                Err(c) => cur = c,
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.pool.fetch_sub(self.held, Ordering::AcqRel);
    }
}

fn too_large(proxy: &Proxy, w: &Wanted, size: u64) -> Response {
    refuse(
        StatusCode::INSUFFICIENT_STORAGE,
        &format!(
            "modelgate proxy: {}/{} is {size} bytes, over the gate's per-file spool limit of {} bytes (--max-file-size)",
            w.repo, w.path, proxy.config.max_file_size
        ),
    )
}

fn budget_full(proxy: &Proxy) -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!(
            "modelgate proxy: the spool budget of {} bytes is in use by other downloads (--spool-budget); retry later",
            proxy.config.spool_budget
        ),
    )
}

pub(super) async fn resolve(
    proxy: &Proxy,
    w: &Wanted,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    // Every refusal is made on GET, none on HEAD: huggingface_hub turns a
    // failed HEAD into "cannot find the requested files in the local
    // cache, check your connection", and modelgate's message would only be
    // in the chained cause; a failed GET raises an HfHubHTTPError that
    // says it. HEAD is metadata only and never serves a byte.
    let get = *method == Method::GET;
    if get && let Some(why) = proxy.policy.proxy().repo_refusal(&w.repo) {
        return blocked(proxy, w, None, &why);
    }
    let url = match proxy.hub.resolve_url(&w.file_ref()) {
        Ok(u) => u,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &format!("modelgate proxy: {e}")),
    };
    let auth = client_auth(headers);
    // Metadata first, from the Hub's own answer (the LFS redirect is not
    // followed for it), so a file already judged or stored costs no
    // download.
    let head = match proxy.hub.head_file(url.clone(), auth.as_ref()).await {
        Ok(f) => f,
        Err(e) => return upstream_failure(proxy, &e),
    };
    let status = head.response.status();
    let lfs_redirect = status.is_redirection() && head.hub_headers.contains_key("x-linked-size");
    if !status.is_success() && !lfs_redirect {
        return pass_error(status, &head.hub_headers, head.response.headers());
    }
    let meta = Meta::from(&head.hub_headers, head.response.headers());
    drop(head);
    if !get {
        let mut r = Response::new(Body::empty());
        *r.headers_mut() = meta.client_headers(None);
        return r;
    }
    if meta.size.is_some_and(|s| s > proxy.config.max_file_size) {
        return too_large(proxy, w, meta.size.unwrap_or(0));
    }
    if let Some(sha) = &meta.sha256 {
        if let Some(r) = quarantine_refusal(proxy, w, sha).await {
            return r;
        }
        if let Some(r) = from_cache(proxy, w, &meta, sha, headers).await {
            return r;
        }
    }
    // With a store, one download per content at a time: a cluster pulling
    // the same model at once costs the upstream one transfer, and the
    // other requests are served from the store when it is done.
    let mut waits = 0;
    let _flight = loop {
        let Some(sha) = meta.sha256.as_ref().filter(|_| proxy.blobs.is_some()) else {
            break None;
        };
        match proxy.flights.join(sha) {
            Flight::Leader(guard) => {
                // A flight that ended between the cache check above and
                // this join has stored the content: serve that.
                if let Some(r) = from_cache(proxy, w, &meta, sha, headers).await {
                    return r;
                }
                break Some(guard);
            }
            Flight::Follower(done) => {
                // Closed when the leader is done, whatever its outcome.
                let _ = done.acquire().await;
                if let Some(r) = from_cache(proxy, w, &meta, sha, headers).await {
                    return r;
                }
                waits += 1;
                if waits == 3 {
                    break None;
                }
            }
        }
    };
    download(proxy, w, &meta, auth.as_ref(), url, headers).await
}

/// The answer for content `sha` from the verdict cache and the store: a
/// block, or the stored file. `None` when it must be downloaded.
async fn from_cache(
    proxy: &Proxy,
    w: &Wanted,
    meta: &Meta,
    sha: &str,
    headers: &HeaderMap,
) -> Option<Response> {
    let report = cached_report(proxy, sha, &w.path).await?;
    proxy.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
    let d = proxy.policy.proxy().decide(&report);
    if d.action == Action::Block {
        return Some(decided(proxy, w, &report, sha, true, d.action, &d.reason));
    }
    let file = stored_blob(proxy, sha).await?;
    if let Some(r) = signature_refusal(proxy, w, meta, sha, headers).await {
        return Some(r);
    }
    proxy.metrics.store_hits.fetch_add(1, Ordering::Relaxed);
    let logged = decided(proxy, w, &report, sha, true, d.action, &d.reason);
    let size = report.size;
    let h = meta.client_headers(Some(size));
    Some(serve(proxy, file, size, headers, h, logged, None).await)
}

/// Downloads in flight, by content sha256.
#[derive(Debug, Default)]
pub(super) struct Flights {
    map: Mutex<HashMap<String, Arc<Semaphore>>>,
}

pub(super) enum Flight<'a> {
    /// This request downloads; the guard ends the flight when dropped.
    Leader(FlightGuard<'a>),
    /// Another request downloads; its semaphore is closed when it is done.
    Follower(Arc<Semaphore>),
}

pub(super) struct FlightGuard<'a> {
    flights: &'a Flights,
    key: String,
    done: Arc<Semaphore>,
}

impl Flights {
    pub(super) fn join(&self, sha: &str) -> Flight<'_> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(done) = map.get(sha) {
            return Flight::Follower(done.clone());
        }
        let done = Arc::new(Semaphore::new(0));
        map.insert(sha.to_string(), done.clone());
        Flight::Leader(FlightGuard {
            flights: self,
            key: sha.to_string(),
            done,
        })
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.flights.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&self.key);
        self.done.close();
    }
}

/// Passes an upstream refusal (404 with `X-Error-Code`, 401, gated repos)
/// on with the headers huggingface_hub reads, and no body but the message.
fn pass_error(status: StatusCode, hub_headers: &HeaderMap, final_headers: &HeaderMap) -> Response {
    let mut h = HeaderMap::new();
    copy_headers(final_headers, &mut h);
    if h.is_empty() {
        copy_headers(hub_headers, &mut h);
    }
    let msg = h
        .get("x-error-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("upstream refused the request")
        .to_string();
    h.remove(header::CONTENT_LENGTH);
    let mut r = Response::new(Body::from(serde_json::json!({ "error": msg }).to_string()));
    *r.status_mut() = status;
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    *r.headers_mut() = h;
    r
}

async fn cached_report(proxy: &Proxy, sha: &str, name: &str) -> Option<FileReport> {
    let scanner = proxy.scanner.clone();
    let (sha, name) = (sha.to_string(), name.to_string());
    tokio::task::spawn_blocking(move || scanner.lookup(&sha, &name))
        .await
        .ok()
        .flatten()
}

/// The gate's stored copy of content `sha`, opened. Its modification time
/// becomes now: eviction goes by least recent use.
async fn stored_blob(proxy: &Proxy, sha: &str) -> Option<tokio::fs::File> {
    let path = proxy.blobs.as_ref()?.join(sha);
    let file = tokio::fs::File::open(&path).await.ok()?.into_std().await;
    let _ = file.set_modified(std::time::SystemTime::now());
    Some(tokio::fs::File::from_std(file))
}

/// Is `name` a store entry (64 lowercase hex digits)?
fn is_blob_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Bytes held by the store's entries, read once at start-up.
pub(super) fn store_size(blobs: &std::path::Path) -> u64 {
    std::fs::read_dir(blobs)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| is_blob_name(&e.file_name().to_string_lossy()))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Counts a new entry of `size` bytes and, past `--store-max-size`, removes
/// the least recently served entries (never `keep`, the one just stored)
/// until the store is back under 90 % of it. A file being served from an
/// entry removed meanwhile is unaffected: its handle stays valid.
async fn keep_store_under_cap(proxy: &Proxy, blobs: &std::path::Path, keep: &str, size: u64) {
    let max = proxy.config.store_max_bytes;
    if proxy.store_used.fetch_add(size, Ordering::Relaxed) + size <= max {
        return;
    }
    let (dir, keep) = (blobs.to_path_buf(), keep.to_string());
    let target = max / 10 * 9;
    let removed = tokio::task::spawn_blocking(move || {
        let mut entries: Vec<(std::time::SystemTime, u64, std::path::PathBuf)> =
            std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    is_blob_name(&name) && name != keep
                })
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    Some((m.modified().ok()?, m.len(), e.path()))
                })
                .collect();
        entries.sort();
        let total: u64 = entries.iter().map(|e| e.1).sum::<u64>() + size;
        let mut freed = 0u64;
        for (_, len, path) in entries {
            if total - freed <= target {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                freed += len;
            }
        }
        (total, freed)
    })
    .await;
    if let Ok((total, freed)) = removed {
        // The directory is the truth: re-base the counter on what it held.
        proxy.store_used.store(total - freed, Ordering::Relaxed);
        if freed > 0 {
            tracing::info!(target: "modelgate::proxy", freed, held = total - freed, "store over --store-max-size: least recently served files removed");
        }
    }
}

/// A 403 when the daemon's store deny-lists or holds `sha`; a 503 when its
/// database cannot be read (never an allow).
async fn quarantine_refusal(proxy: &Proxy, w: &Wanted, sha: &str) -> Option<Response> {
    let db = proxy.quarantine_db.clone()?;
    let s = sha.to_string();
    let res = tokio::task::spawn_blocking(move || {
        crate::quarantine::db::refuses_content(&db, &s).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match res {
        Ok(false) => None,
        Ok(true) => Some(blocked(
            proxy,
            w,
            Some(sha),
            &format!("content {sha} is quarantined or deny-listed by modelgate"),
        )),
        Err(e) => Some(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("modelgate proxy: cannot read the quarantine database: {e}"),
        )),
    }
}

/// `[proxy] require-signature`: the snapshot's `model.sig` (at the commit
/// the Hub named, so signature and file are of one revision) must list the
/// file with this content, signed by a trusted key.
async fn signature_refusal(
    proxy: &Proxy,
    w: &Wanted,
    meta: &Meta,
    sha: &str,
    client: &HeaderMap,
) -> Option<Response> {
    let req = proxy.policy.proxy().require_signature.as_ref()?;
    if !req.applies_to(&w.repo) || w.path == crate::sign::SIGNATURE_FILE {
        return None;
    }
    let commit = meta
        .hub_headers
        .get("x-repo-commit")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(&w.rev)
        .to_string();
    let sig_ref = FileRef {
        kind: w.kind,
        repo: &w.repo,
        rev: &commit,
        path: crate::sign::SIGNATURE_FILE,
    };
    let spool = match tempfile::NamedTempFile::new_in(&proxy.spool_dir) {
        Ok(s) => s,
        Err(e) => {
            return Some(refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("modelgate proxy: cannot create a spool file: {e}"),
            ));
        }
    };
    let why = match proxy
        .hub
        .download(
            &sig_ref,
            client_auth(client).as_ref(),
            spool.path(),
            16 << 20,
        )
        .await
    {
        Err(HubError::Status { status, .. }) if status == StatusCode::NOT_FOUND => {
            format!(
                "{} requires a signature ([proxy] require-signature) and the snapshot has no {}",
                w.repo,
                crate::sign::SIGNATURE_FILE
            )
        }
        Err(e) => return Some(upstream_failure(proxy, &e)),
        Ok(_) => {
            let (keys, sig) = (proxy.policy.clone(), spool.path().to_path_buf());
            let opened = tokio::task::spawn_blocking(move || {
                let req = keys.proxy().require_signature.as_ref().ok_or_else(|| {
                    "the signature requirement is gone from the policy".to_string()
                })?;
                crate::sign::open_signature(&sig, &req.keys).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            // The file's content is known (`sha`, hashed while spooled):
            // compare it with the signed digest instead of hashing again.
            match opened {
                Err(e) => format!("{}: {}: {e}", w.repo, crate::sign::SIGNATURE_FILE),
                Ok(m) if m.method != crate::sign::Method::Files => format!(
                    "{}: {} is not a files-mode signature, which per-file checks need",
                    w.repo,
                    crate::sign::SIGNATURE_FILE
                ),
                Ok(m) => match m.digest_of(&w.path) {
                    Some(d) if d.eq_ignore_ascii_case(sha) => return None,
                    None if m.leaves_out(&w.path) => return None,
                    Some(d) => format!(
                        "{} signed {} with sha256 {d}, but the Hub serves {sha}",
                        crate::sign::SIGNATURE_FILE,
                        w.path
                    ),
                    None => format!(
                        "{} does not list {} (a file added after signing)",
                        crate::sign::SIGNATURE_FILE,
                        w.path
                    ),
                },
            }
        }
    };
    Some(blocked(proxy, w, Some(sha), &why))
}

/// Fetches, checks, scans and decides a file, then serves it.
async fn download(
    proxy: &Proxy,
    w: &Wanted,
    meta: &Meta,
    auth: Option<&HeaderValue>,
    url: reqwest::Url,
    client_headers: &HeaderMap,
) -> Response {
    let permit = match proxy.fetches.try_acquire() {
        Ok(p) => p,
        Err(_) => {
            // Wait for a slot, unless too many requests already do.
            let waiting = proxy.waiting.fetch_add(1, Ordering::AcqRel);
            let slot = if waiting >= proxy.config.max_waiting {
                None
            } else {
                tokio::time::timeout(proxy.config.queue_timeout, proxy.fetches.acquire())
                    .await
                    .ok()
                    .and_then(Result::ok)
            };
            proxy.waiting.fetch_sub(1, Ordering::AcqRel);
            match slot {
                Some(p) => p,
                None => {
                    return refuse(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!(
                            "modelgate proxy: {} downloads in flight and {} waiting (--max-fetches, --max-waiting); retry later",
                            proxy.config.max_fetches, proxy.config.max_waiting
                        ),
                    );
                }
            }
        }
    };
    let mut reservation = Reservation::new(proxy.spool_used.clone(), proxy.config.spool_budget);
    if !reservation.hold(meta.size.unwrap_or(0)) {
        return budget_full(proxy);
    }
    let got = match proxy
        .hub
        .send(Method::GET, url, auth, &HeaderMap::new(), None)
        .await
    {
        Ok(f) => f,
        Err(e) => return upstream_failure(proxy, &e),
    };
    let status = got.response.status();
    if !status.is_success() {
        return pass_error(status, &got.hub_headers, got.response.headers());
    }
    // The bytes scanned must be the bytes served: no encoding is undone
    // here, so an encoded body would be neither.
    if let Some(enc) = got.response.headers().get(header::CONTENT_ENCODING)
        && enc.as_bytes() != b"identity"
    {
        proxy
            .metrics
            .upstream_errors
            .fetch_add(1, Ordering::Relaxed);
        return refuse(
            StatusCode::BAD_GATEWAY,
            &format!(
                "modelgate proxy: upstream sent {}/{} with Content-Encoding {}; the gate only accepts identity",
                w.repo,
                w.path,
                String::from_utf8_lossy(enc.as_bytes())
            ),
        );
    }
    let get_meta = Meta::from(&got.hub_headers, got.response.headers());
    let spool = match tempfile::NamedTempFile::new_in(&proxy.spool_dir) {
        Ok(s) => s,
        Err(e) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("modelgate proxy: cannot create a spool file: {e}"),
            );
        }
    };
    let mut out = match spool.reopen() {
        Ok(f) => tokio::fs::File::from_std(f),
        Err(e) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("modelgate proxy: cannot open the spool file: {e}"),
            );
        }
    };
    let mut written = 0u64;
    let mut over_budget = false;
    let spooled = proxy
        .hub
        .spool(got.response, &mut out, proxy.config.max_file_size, |n| {
            written += n;
            proxy.metrics.upstream_bytes.fetch_add(n, Ordering::Relaxed);
            if reservation.hold(written) {
                Ok(())
            } else {
                over_budget = true;
                Err(HubError::Refused("spool budget".into()))
            }
        })
        .await;
    drop(out);
    let spooled = match spooled {
        Ok(s) => s,
        Err(_) if over_budget => return budget_full(proxy),
        Err(HubError::TooLarge { .. }) => return too_large(proxy, w, written),
        Err(e) => return upstream_failure(proxy, &e),
    };
    for (what, expected) in [
        ("X-Linked-Etag of the metadata", &meta.sha256),
        ("X-Linked-Etag of the download", &get_meta.sha256),
    ] {
        if let Some(e) = expected
            && *e != spooled.sha256
        {
            return upstream_failure(
                proxy,
                &HubError::Refused(format!(
                    "upstream sent {}/{} with sha256 {}, but its {what} says {e}",
                    w.repo, w.path, spooled.sha256
                )),
            );
        }
    }
    if let Some(s) = meta.size.filter(|&s| s != spooled.size) {
        return upstream_failure(
            proxy,
            &HubError::Refused(format!(
                "upstream sent {} bytes of {}/{}, but announced {s}",
                spooled.size, w.repo, w.path
            )),
        );
    }
    let sha = spooled.sha256.clone();
    if meta.sha256.is_none()
        && let Some(r) = quarantine_refusal(proxy, w, &sha).await
    {
        return r;
    }
    // Scan the spool; the verdict cache may answer for this content. The
    // sha256 is the one computed while the bytes were written to this
    // private spool: hashing the file again through a map would pull all
    // of it into memory for nothing (peak RSS would follow file size).
    let scanner = proxy.scanner.clone();
    let (path, name, key) = (spool.path().to_path_buf(), w.path.clone(), sha.clone());
    let scanned =
        tokio::task::spawn_blocking(move || scanner.scan_hashed_file(&path, &name, &key)).await;
    let scanned: Scanned = match scanned {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let e: crate::scan::ScanError = e;
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("modelgate proxy: cannot scan the spool: {e}"),
            );
        }
        Err(e) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("modelgate proxy: the scan failed: {e}"),
            );
        }
    };
    drop(permit);
    if scanned.cached {
        proxy.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
    } else {
        proxy.metrics.scans.fetch_add(1, Ordering::Relaxed);
    }
    let d = proxy.policy.proxy().decide(&scanned.report);
    if d.action == Action::Block {
        return decided(
            proxy,
            w,
            &scanned.report,
            &sha,
            scanned.cached,
            d.action,
            &d.reason,
        );
    }
    if let Some(r) = signature_refusal(proxy, w, meta, &sha, client_headers).await {
        return r;
    }
    let logged = decided(
        proxy,
        w,
        &scanned.report,
        &sha,
        scanned.cached,
        d.action,
        &d.reason,
    );
    let size = spooled.size;
    // Keep a clean file for the next client; otherwise serve from the
    // open spool, which is unlinked once opened.
    let file = match &proxy.blobs {
        Some(blobs) => {
            let dest = blobs.join(&sha);
            // A store entry is served later on its name alone: it must be
            // whole on disk before it gets that name.
            let kept = match spool.as_file().sync_data() {
                Ok(()) => spool.persist(&dest),
                Err(error) => Err(tempfile::PersistError { error, file: spool }),
            };
            match kept {
                Ok(f) => {
                    drop(reservation);
                    keep_store_under_cap(proxy, blobs, &sha, size).await;
                    return serve(
                        proxy,
                        tokio::fs::File::from_std(f),
                        size,
                        client_headers,
                        get_meta.client_headers(Some(size)),
                        logged,
                        None,
                    )
                    .await;
                }
                Err(e) => {
                    tracing::warn!(target: "modelgate::proxy", error = %e.error, "cannot keep a clean file in the store");
                    e.file.reopen()
                }
            }
        }
        None => spool.reopen(),
    };
    match file {
        Ok(f) => {
            serve(
                proxy,
                tokio::fs::File::from_std(f),
                size,
                client_headers,
                get_meta.client_headers(Some(size)),
                logged,
                Some(reservation),
            )
            .await
        }
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("modelgate proxy: cannot reopen the spool: {e}"),
        ),
    }
}

/// Logs a decision (one line each) and answers a block; for allow and warn
/// it returns the warning header to add, as a response to fill in.
fn decided(
    proxy: &Proxy,
    w: &Wanted,
    report: &FileReport,
    sha: &str,
    cached: bool,
    action: Action,
    reason: &str,
) -> Response {
    let rules: Vec<&str> = report.findings.iter().map(|f| f.rule.id).collect();
    tracing::info!(
        target: "modelgate::proxy",
        event = "decision",
        repo = %w.repo,
        kind = w.kind.api(),
        revision = %w.rev,
        file = %w.path,
        sha256 = sha,
        format = %report.format,
        verdict = %report.verdict,
        action = action.as_str(),
        rules = ?rules,
        cached,
        reason,
    );
    let mut r = Response::new(Body::empty());
    match action {
        Action::Block | Action::Quarantine => {
            proxy.metrics.blocks.fetch_add(1, Ordering::Relaxed);
            let detail: Vec<String> = report
                .findings
                .iter()
                .take(5)
                .map(|f| format!("{}: {}", f.rule.id, f.message))
                .collect();
            // "malicious", or "malicious (the scan was inconclusive)".
            let why = if reason == format!("verdict {}", report.verdict) {
                report.verdict.to_string()
            } else {
                format!("{} ({reason})", report.verdict)
            };
            let msg = format!(
                "modelgate blocked {}/{}: {why}{}",
                w.repo,
                w.path,
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", detail.join("; "))
                }
            );
            return refuse_json(
                StatusCode::FORBIDDEN,
                &msg,
                serde_json::json!({
                    "error": msg,
                    "verdict": report.verdict,
                    "rules": rules,
                    "file": w.path,
                    "repo": w.repo,
                    "revision": w.rev,
                    "sha256": sha,
                }),
            );
        }
        Action::Warn => {
            proxy.metrics.warnings.fetch_add(1, Ordering::Relaxed);
            let msg = format!("{} ({}): {reason}", report.verdict, rules.join(","));
            r.headers_mut()
                .insert("x-modelgate-warning", super::header_text(&msg));
        }
        Action::Allow => {}
    }
    r
}

/// A 403 for a file refused before any scan (repo lists, quarantine,
/// signature), logged like every decision.
fn blocked(proxy: &Proxy, w: &Wanted, sha: Option<&str>, why: &str) -> Response {
    proxy.metrics.blocks.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        target: "modelgate::proxy",
        event = "decision",
        repo = %w.repo,
        kind = w.kind.api(),
        revision = %w.rev,
        file = %w.path,
        sha256 = sha.unwrap_or(""),
        action = "block",
        reason = why,
    );
    let msg = format!("modelgate blocked {}/{}: {why}", w.repo, w.path);
    refuse_json(
        StatusCode::FORBIDDEN,
        &msg,
        serde_json::json!({
            "error": msg,
            // Refused before any scan: no verdict, no rule.
            "verdict": null,
            "rules": [],
            "file": w.path,
            "repo": w.repo,
            "revision": w.rev,
            "sha256": sha,
        }),
    )
}

/// Parses one `bytes=` range against `size`: `None` serves the whole file
/// (no range, or several, which a server may answer whole), `Some(Err)` is
/// unsatisfiable.
fn parse_range(headers: &HeaderMap, size: u64) -> Option<Result<(u64, u64), ()>> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    Some(if a.is_empty() {
        match b.parse::<u64>() {
            Ok(n) if n > 0 && size > 0 => Ok((size.saturating_sub(n), size - 1)),
            _ => Err(()),
        }
    } else {
        let Ok(start) = a.parse::<u64>() else {
            return None;
        };
        let end = if b.is_empty() {
            Ok(size.saturating_sub(1))
        } else {
            b.parse::<u64>().map(|e| e.min(size.saturating_sub(1)))
        };
        match end {
            Ok(end) if start < size && start <= end => Ok((start, end)),
            Ok(_) => Err(()),
            Err(_) => return None,
        }
    })
}

/// Streams a scanned file (or one range of it) to the client. `head` holds
/// the headers of the decision (a warning); `guard` keeps the spool budget
/// until the last byte is out.
async fn serve(
    proxy: &Proxy,
    mut file: tokio::fs::File,
    size: u64,
    request: &HeaderMap,
    mut headers: HeaderMap,
    head: Response,
    guard: Option<Reservation>,
) -> Response {
    for (k, v) in head.headers() {
        headers.insert(k.clone(), v.clone());
    }
    let mut status = StatusCode::OK;
    let (start, len) = match parse_range(request, size) {
        None => (0, size),
        Some(Ok((a, b))) => {
            status = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{size}")) {
                headers.insert(header::CONTENT_RANGE, v);
            }
            (a, b - a + 1)
        }
        Some(Err(())) => {
            let mut r = refuse(
                StatusCode::RANGE_NOT_SATISFIABLE,
                &format!("modelgate proxy: range not satisfiable for a file of {size} bytes"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    if start > 0
        && let Err(e) = file.seek(std::io::SeekFrom::Start(start)).await
    {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("modelgate proxy: cannot seek the spool: {e}"),
        );
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    proxy.metrics.served_bytes.fetch_add(len, Ordering::Relaxed);
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 << 10);
    let stream = futures_util::StreamExt::map(stream, move |chunk| {
        let _hold = &guard;
        chunk
    });
    let mut r = Response::new(Body::from_stream(stream));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        parse_range(&h, size)
    }

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(range("bytes=50-500", 100), Some(Ok((50, 99))));
        assert_eq!(range("bytes=100-", 100), Some(Err(())));
        assert_eq!(range("bytes=5-1", 100), Some(Err(())));
        assert_eq!(range("bytes=0-1,5-6", 100), None);
        assert_eq!(range("items=0-1", 100), None);
    }

    #[test]
    fn budget_is_shared_and_given_back() {
        let pool = Arc::new(AtomicU64::new(0));
        let mut a = Reservation::new(pool.clone(), 100);
        assert!(a.hold(60));
        let mut b = Reservation::new(pool.clone(), 100);
        assert!(!b.hold(50));
        assert!(b.hold(40));
        drop(a);
        assert_eq!(pool.load(Ordering::Relaxed), 40);
        assert!(b.hold(90));
        drop(b);
        assert_eq!(pool.load(Ordering::Relaxed), 0);
    }
}
