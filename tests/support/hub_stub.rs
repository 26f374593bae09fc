//! A stand-in for the public Hugging Face Hub, which tests cannot reach: it
//! serves a folder `ROOT/{models,datasets,spaces}/{org}/{name}/<files>` as
//! the Hub's documented HTTP endpoints (repo and revision info, paginated
//! tree listings, `paths-info`, model listings, and `resolve` with the LFS
//! redirect to a CDN), so that `HubClient`, `modelgate proxy` and the real
//! `huggingface_hub` client can be tested against it.
//!
//! Included with `#[path]` by the integration-test binary and by
//! `examples/hub_stub.rs` (the benchmark's upstream), so nothing test-only
//! lives in `src/`. A shared [`StubControl`] counts requests per path and
//! turns a file hostile (lying length, hang, gzip bomb, wrong bytes).

// Each includer uses a different part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Files above this size are LFS files (as are all files that are not text).
pub const LFS_THRESHOLD: u64 = 1024;

/// What the stub does wrong when serving one file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// `Content-Length` announces more bytes than are sent.
    LyingLength,
    /// Sends this many bytes, then nothing, never closing.
    HangAfter(u64),
    /// Sends a highly compressed gzip stream with `Content-Encoding: gzip`.
    GzipBomb,
    /// Sends bytes whose sha256 is not the advertised one.
    WrongSha,
}

/// Shared between a test and its running stub.
#[derive(Debug)]
pub struct StubControl {
    hits: Mutex<HashMap<String, u64>>,
    modes: Mutex<HashMap<String, Mode>>,
    /// Entries per page of tree and model listings.
    pub page_size: AtomicUsize,
    /// The host name LFS redirects name (`localhost` makes the CDN another
    /// origin than `127.0.0.1`, as a real CDN is); default: the request's.
    pub cdn_host: Mutex<Option<String>>,
    /// Requests per path that carried an `Authorization` header.
    authorized: Mutex<HashMap<String, u64>>,
}

impl Default for StubControl {
    fn default() -> Self {
        StubControl {
            hits: Mutex::default(),
            modes: Mutex::default(),
            page_size: AtomicUsize::new(50),
            cdn_host: Mutex::default(),
            authorized: Mutex::default(),
        }
    }
}

impl StubControl {
    /// Requests seen for exactly this path (without query).
    pub fn hits(&self, path: &str) -> u64 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Requests seen for paths starting with `prefix` (`/cdn/` counts
    /// content downloads).
    pub fn hits_under(&self, prefix: &str) -> u64 {
        let h = self.hits.lock().unwrap();
        h.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }

    /// Makes the content of `repo`'s `path` hostile (`repo` is `org/name`).
    pub fn set_mode(&self, repo: &str, path: &str, mode: Mode) {
        if mode == Mode::GzipBomb {
            // Built here, not while a client waits on the first byte.
            gzip_bomb();
        }
        self.modes
            .lock()
            .unwrap()
            .insert(format!("{repo}/{path}"), mode);
    }

    fn mode(&self, repo: &str, path: &str) -> Mode {
        self.modes
            .lock()
            .unwrap()
            .get(&format!("{repo}/{path}"))
            .copied()
            .unwrap_or(Mode::Normal)
    }

    /// Requests under `prefix` that carried an `Authorization` header.
    pub fn authorized_under(&self, prefix: &str) -> u64 {
        let h = self.authorized.lock().unwrap();
        h.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }

    fn hit(&self, path: &str, authorized: bool) {
        let count = |m: &Mutex<HashMap<String, u64>>| {
            *m.lock().unwrap().entry(path.to_string()).or_default() += 1;
        };
        count(&self.hits);
        if authorized {
            count(&self.authorized);
        }
    }
}

#[derive(Debug, Clone)]
struct StubFile {
    disk: PathBuf,
    size: u64,
    sha256: String,
    /// A 40-hex git-style object id (not git's real sha1: nothing checks it).
    oid: String,
    lfs: bool,
}

#[derive(Debug)]
struct StubRepo {
    kind: &'static str,
    id: String,
    sha: String,
    files: BTreeMap<String, StubFile>,
}

#[derive(Debug, Default)]
struct Index {
    /// Keyed by `{kind}/{org}/{name}`, kind being `models`, `datasets`, `spaces`.
    repos: BTreeMap<String, StubRepo>,
    by_sha: HashMap<String, (String, String)>,
}

fn sha256_file(p: &Path) -> std::io::Result<(String, u64, bool)> {
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    let mut text = true;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if size < 8192 && (buf[..n].contains(&0) || std::str::from_utf8(&buf[..n]).is_err()) {
            text = false;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex(&h.finalize()), size, text))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let r = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if e.file_type()?.is_dir() {
            walk(&e.path(), &r, out)?;
        } else {
            out.push((r, e.path()));
        }
    }
    Ok(())
}

fn build_index(root: &Path) -> std::io::Result<Index> {
    let mut idx = Index::default();
    for kind in ["models", "datasets", "spaces"] {
        let kd = root.join(kind);
        if !kd.is_dir() {
            continue;
        }
        let mut orgs: Vec<_> = std::fs::read_dir(&kd)?.collect::<Result<_, _>>()?;
        orgs.sort_by_key(|e| e.file_name());
        for org in orgs.iter().filter(|e| e.path().is_dir()) {
            let mut names: Vec<_> = std::fs::read_dir(org.path())?.collect::<Result<_, _>>()?;
            names.sort_by_key(|e| e.file_name());
            for name in names.iter().filter(|e| e.path().is_dir()) {
                let id = format!(
                    "{}/{}",
                    org.file_name().to_string_lossy(),
                    name.file_name().to_string_lossy()
                );
                let mut list = Vec::new();
                walk(&name.path(), "", &mut list)?;
                let mut files = BTreeMap::new();
                let mut commit = Sha256::new();
                commit.update(id.as_bytes());
                for (rel, disk) in list {
                    let (sha256, size, text) = sha256_file(&disk)?;
                    commit.update(rel.as_bytes());
                    commit.update(sha256.as_bytes());
                    let oid =
                        hex(&Sha256::digest(format!("blob {rel} {sha256}")))[..40].to_string();
                    let lfs = size > LFS_THRESHOLD || !text;
                    idx.by_sha
                        .insert(sha256.clone(), (format!("{kind}/{id}"), rel.clone()));
                    files.insert(
                        rel,
                        StubFile {
                            disk,
                            size,
                            sha256,
                            oid,
                            lfs,
                        },
                    );
                }
                let sha = hex(&commit.finalize())[..40].to_string();
                idx.repos.insert(
                    format!("{kind}/{id}"),
                    StubRepo {
                        kind,
                        id,
                        sha,
                        files,
                    },
                );
            }
        }
    }
    Ok(idx)
}

struct State {
    index: Index,
    control: Arc<StubControl>,
    port: u16,
}

/// A stub Hub running on its own thread; dropping it stops it.
pub struct HubStub {
    pub addr: SocketAddr,
    pub control: Arc<StubControl>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HubStub {
    /// Serves `root` on an ephemeral port of 127.0.0.1.
    pub fn start(root: &Path) -> HubStub {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        HubStub::start_on(root, listener).unwrap()
    }

    pub fn start_on(root: &Path, listener: std::net::TcpListener) -> std::io::Result<HubStub> {
        let index = build_index(root)?;
        let control = Arc::new(StubControl::default());
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let state = Arc::new(State {
            index,
            control: control.clone(),
            port: addr.port(),
        });
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use axum::serve::ListenerExt;
                let listener = tokio::net::TcpListener::from_std(listener)
                    .unwrap()
                    .tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                let app = axum::Router::new().fallback(move |m, u, h, b| {
                    let state = state.clone();
                    async move { handle(state, m, u, h, b).await }
                });
                tokio::select! {
                    r = axum::serve(listener, app) => r.unwrap(),
                    _ = rx => {}
                }
            });
            // Dropping the runtime cancels connections still open (a hang).
            rt.shutdown_background();
        });
        Ok(HubStub {
            addr,
            control,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for HubStub {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

fn query_params(uri: &Uri) -> Vec<(String, String)> {
    form_params(uri.query().unwrap_or(""))
}

fn form_params(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((decode(&k.replace('+', " "))?, decode(&v.replace('+', " "))?))
        })
        .collect()
}

fn status(code: StatusCode, msg: &str) -> Response {
    let mut r = Response::new(Body::from(format!("{{\"error\":\"{msg}\"}}")));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(msg) {
        r.headers_mut().insert("x-error-message", v);
    }
    r
}

fn json(v: serde_json::Value) -> Response {
    let mut r = Response::new(Body::from(v.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn host(h: &HeaderMap) -> String {
    h.get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string()
}

async fn handle(
    state: Arc<State>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state
        .control
        .hit(uri.path(), headers.contains_key(header::AUTHORIZATION));
    let raw: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let Some(segs) = raw.iter().map(|s| decode(s)).collect::<Option<Vec<_>>>() else {
        return status(StatusCode::BAD_REQUEST, "bad path encoding");
    };
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["cdn", sha] => cdn(&state, &method, &headers, sha).await,
        ["api", kind @ ("models" | "datasets" | "spaces")] if method == Method::GET => {
            list(&state, kind, &uri, &headers)
        }
        [
            "api",
            kind @ ("models" | "datasets" | "spaces"),
            org,
            name,
            rest @ ..,
        ] => {
            let key = format!("{kind}/{org}/{name}");
            let Some(repo) = state.index.repos.get(&key) else {
                return status(StatusCode::NOT_FOUND, "Repository not found");
            };
            api(&state, repo, &method, &uri, &headers, rest, &body)
        }
        [
            kind @ ("datasets" | "spaces"),
            org,
            name,
            "resolve",
            rev,
            path @ ..,
        ] => resolve(&state, kind, org, name, rev, path, &method, &headers).await,
        [org, name, "resolve", rev, path @ ..] => {
            resolve(&state, "models", org, name, rev, path, &method, &headers).await
        }
        _ => status(StatusCode::NOT_FOUND, "not found"),
    }
}

fn rev_ok(repo: &StubRepo, rev: &str) -> bool {
    rev == "main" || rev == repo.sha
}

fn repo_json(repo: &StubRepo) -> serde_json::Value {
    let siblings: Vec<_> = repo
        .files
        .iter()
        .map(|(p, f)| {
            let mut s = serde_json::json!({"rfilename": p, "size": f.size});
            if f.lfs {
                s["lfs"] =
                    serde_json::json!({"sha256": f.sha256, "size": f.size, "pointerSize": 134});
            }
            s
        })
        .collect();
    serde_json::json!({
        "_id": repo.sha[..24],
        "id": repo.id,
        "modelId": repo.id,
        "author": repo.id.split('/').next(),
        "sha": repo.sha,
        "private": false,
        "gated": false,
        "disabled": false,
        "lastModified": "2026-01-01T00:00:00.000Z",
        "tags": [],
        "siblings": siblings,
    })
}

fn entry_json(path: &str, f: Option<&StubFile>) -> serde_json::Value {
    match f {
        Some(f) => {
            let mut e =
                serde_json::json!({"type": "file", "oid": f.oid, "size": f.size, "path": path});
            if f.lfs {
                e["lfs"] = serde_json::json!({"oid": f.sha256, "size": f.size, "pointerSize": 134});
            }
            e
        }
        None => {
            let oid = hex(&Sha256::digest(format!("tree {path}")))[..40].to_string();
            serde_json::json!({"type": "directory", "oid": oid, "size": 0, "path": path})
        }
    }
}

/// Paginates `items` by `cursor` (an offset), adding a `Link: rel="next"`.
fn paginate(
    state: &State,
    uri: &Uri,
    headers: &HeaderMap,
    items: Vec<serde_json::Value>,
) -> Response {
    let params = query_params(uri);
    let page = state.control.page_size.load(Ordering::Relaxed).max(1);
    let limit = params
        .iter()
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .map_or(page, |l| l.min(page).max(1));
    let start = params
        .iter()
        .find(|(k, _)| k == "cursor")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(items.len());
    let end = (start + limit).min(items.len());
    let mut r = json(serde_json::Value::Array(items[start..end].to_vec()));
    if end < items.len() {
        let mut q: Vec<String> = params
            .iter()
            .filter(|(k, _)| k != "cursor")
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        q.push(format!("cursor={end}"));
        let link = format!(
            "<http://{}{}?{}>; rel=\"next\"",
            host(headers),
            uri.path(),
            q.join("&")
        );
        r.headers_mut()
            .insert(header::LINK, HeaderValue::from_str(&link).unwrap());
    }
    r
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn list(state: &State, kind: &str, uri: &Uri, headers: &HeaderMap) -> Response {
    let params = query_params(uri);
    let author = params.iter().find(|(k, _)| k == "author").map(|(_, v)| v);
    let items: Vec<_> = state
        .index
        .repos
        .values()
        .filter(|r| r.kind == kind)
        .filter(|r| author.is_none_or(|a| r.id.split('/').next() == Some(a.as_str())))
        .map(|r| {
            serde_json::json!({"_id": r.sha[..24], "id": r.id, "modelId": r.id, "sha": r.sha,
                "private": false, "tags": [], "lastModified": "2026-01-01T00:00:00.000Z"})
        })
        .collect();
    paginate(state, uri, headers, items)
}

fn api(
    state: &State,
    repo: &StubRepo,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    rest: &[&str],
    body: &Bytes,
) -> Response {
    match (method.clone(), rest) {
        (Method::GET, []) => json(repo_json(repo)),
        (Method::GET, ["revision", rev]) if rev_ok(repo, rev) => json(repo_json(repo)),
        (Method::GET, ["tree", rev, dir @ ..]) if rev_ok(repo, rev) => {
            let dir = dir.join("/");
            let recursive = query_params(uri)
                .iter()
                .any(|(k, v)| k == "recursive" && (v == "true" || v == "True" || v == "1"));
            let prefix = if dir.is_empty() {
                String::new()
            } else {
                format!("{dir}/")
            };
            let mut dirs = std::collections::BTreeSet::new();
            let mut items = Vec::new();
            for (p, f) in &repo.files {
                let Some(rel) = p.strip_prefix(&prefix) else {
                    continue;
                };
                let parts: Vec<&str> = rel.split('/').collect();
                // Directories between `dir` and the file, as listings show them.
                let depth = if recursive { parts.len() - 1 } else { 1 };
                for i in 1..=depth.min(parts.len() - 1) {
                    let d = format!("{prefix}{}", parts[..i].join("/"));
                    if dirs.insert(d.clone()) {
                        items.push(entry_json(&d, None));
                    }
                }
                if recursive || parts.len() == 1 {
                    items.push(entry_json(p, Some(f)));
                }
            }
            if items.is_empty() && !dir.is_empty() {
                return status(StatusCode::NOT_FOUND, "Entry not found");
            }
            paginate(state, uri, headers, items)
        }
        (Method::POST, ["paths-info", rev]) if rev_ok(repo, rev) => {
            let form = form_params(&String::from_utf8_lossy(body));
            let out: Vec<_> = form
                .iter()
                .filter(|(k, _)| k == "paths")
                .filter_map(|(_, p)| {
                    let p = p.trim_matches('/');
                    if let Some(f) = repo.files.get(p) {
                        Some(entry_json(p, Some(f)))
                    } else {
                        let pre = format!("{p}/");
                        repo.files
                            .keys()
                            .any(|k| k.starts_with(&pre))
                            .then(|| entry_json(p, None))
                    }
                })
                .collect();
            json(serde_json::Value::Array(out))
        }
        _ => status(StatusCode::NOT_FOUND, "Revision not found"),
    }
}

#[allow(clippy::too_many_arguments)]
async fn resolve(
    state: &State,
    kind: &str,
    org: &str,
    name: &str,
    rev: &str,
    path: &[&str],
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let key = format!("{kind}/{org}/{name}");
    let Some(repo) = state.index.repos.get(&key) else {
        return status(StatusCode::NOT_FOUND, "Repository not found");
    };
    if !rev_ok(repo, rev) {
        return status(StatusCode::NOT_FOUND, "Revision not found");
    }
    let path = path.join("/");
    let Some(f) = repo.files.get(&path) else {
        let mut r = status(StatusCode::NOT_FOUND, "Entry not found");
        r.headers_mut()
            .insert("x-error-code", HeaderValue::from_static("EntryNotFound"));
        r.headers_mut()
            .insert("x-repo-commit", HeaderValue::from_str(&repo.sha).unwrap());
        return r;
    };
    if f.lfs {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::FOUND;
        let h = r.headers_mut();
        let cdn = match state.control.cdn_host.lock().unwrap().as_ref() {
            Some(name) => format!("{name}:{}", state.port),
            None => host(headers),
        };
        let loc = format!("http://{cdn}/cdn/{}", f.sha256);
        h.insert(header::LOCATION, HeaderValue::from_str(&loc).unwrap());
        h.insert(
            header::ETAG,
            HeaderValue::from_str(&format!("\"{}\"", f.oid)).unwrap(),
        );
        h.insert(
            "x-linked-etag",
            HeaderValue::from_str(&format!("\"{}\"", f.sha256)).unwrap(),
        );
        h.insert("x-linked-size", HeaderValue::from(f.size));
        h.insert("x-repo-commit", HeaderValue::from_str(&repo.sha).unwrap());
        // The Xet transfer path a gate must hide from its clients.
        h.insert("x-xet-hash", HeaderValue::from_str(&f.sha256).unwrap());
        h.insert(
            "x-xet-refresh-route",
            HeaderValue::from_str(&format!(
                "/api/{kind}/{}/xet-read-token/{}",
                repo.id, repo.sha
            ))
            .unwrap(),
        );
        h.insert(
            header::LINK,
            HeaderValue::from_str(&format!(
                "<http://{}/api/{kind}/{}/xet-read-token/{}>; rel=\"xet-auth\"",
                host(headers),
                repo.id,
                repo.sha
            ))
            .unwrap(),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        return r;
    }
    let mut r = content(state, &repo.id, &path, f, method, headers).await;
    let h = r.headers_mut();
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&format!("\"{}\"", f.oid)).unwrap(),
    );
    h.insert("x-repo-commit", HeaderValue::from_str(&repo.sha).unwrap());
    r
}

async fn cdn(state: &State, method: &Method, headers: &HeaderMap, sha: &str) -> Response {
    let Some((key, path)) = state.index.by_sha.get(sha) else {
        return status(StatusCode::NOT_FOUND, "no such object");
    };
    let repo = &state.index.repos[key];
    let f = &repo.files[path];
    let mut r = content(state, &repo.id, path, f, method, headers).await;
    r.headers_mut().insert(
        header::ETAG,
        HeaderValue::from_str(&format!("\"{}\"", f.sha256)).unwrap(),
    );
    r
}

/// Parses a single `bytes=` range against `size`: `None` for a whole-file
/// answer, `Err` for an unsatisfiable one.
fn range(headers: &HeaderMap, size: u64) -> Option<Result<(u64, u64), ()>> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    let spec = v.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let r = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return Some(Err(()));
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let a: u64 = a.parse().ok()?;
        let b: u64 = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>().ok()?.min(size.saturating_sub(1))
        };
        if a >= size || b < a {
            return Some(Err(()));
        }
        (a, b)
    };
    Some(Ok(r))
}

fn gzip_bomb() -> &'static Bytes {
    static BOMB: OnceLock<Bytes> = OnceLock::new();
    BOMB.get_or_init(|| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        // 128 MiB of zeros in a few hundred KiB.
        for _ in 0..128 {
            e.write_all(&zeros).unwrap();
        }
        Bytes::from(e.finish().unwrap())
    })
}

async fn content(
    state: &State,
    repo: &str,
    path: &str,
    f: &StubFile,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let mode = state.control.mode(repo, path);
    let mut r = Response::new(Body::empty());
    r.headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if mode == Mode::GzipBomb {
        let bomb = gzip_bomb().clone();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(bomb.len()));
        if method != Method::HEAD {
            *r.body_mut() = Body::from(bomb);
        }
        return r;
    }
    let (start, end) = match range(headers, f.size) {
        None => (0, f.size),
        Some(Ok((a, b))) => {
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {a}-{b}/{}", f.size)).unwrap(),
            );
            (a, b + 1)
        }
        Some(Err(())) => {
            *r.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{}", f.size)).unwrap(),
            );
            return r;
        }
    };
    let len = end - start;
    let announced = if mode == Mode::LyingLength {
        len + 4096
    } else {
        len
    };
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(announced));
    if method == Method::HEAD {
        return r;
    }
    let Ok(mut file) = tokio::fs::File::open(&f.disk).await else {
        return status(StatusCode::INTERNAL_SERVER_ERROR, "stub cannot read file");
    };
    if file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return status(StatusCode::INTERNAL_SERVER_ERROR, "stub cannot seek");
    }
    let send = match mode {
        Mode::HangAfter(n) => n.min(len),
        _ => len,
    };
    let reader = file.take(send);
    let flip_at = (mode == Mode::WrongSha && len > 0).then_some(len - 1);
    let mut offset = 0u64;
    let stream = futures_util::StreamExt::map(
        tokio_util::io::ReaderStream::with_capacity(reader, 256 << 10),
        move |chunk| {
            chunk.map(|c| {
                let from = offset;
                offset += c.len() as u64;
                match flip_at {
                    Some(at) if at >= from && at < offset => {
                        let mut v = c.to_vec();
                        v[(at - from) as usize] ^= 0xff;
                        Bytes::from(v)
                    }
                    _ => c,
                }
            })
        },
    );
    *r.body_mut() = if let Mode::HangAfter(_) = mode {
        Body::from_stream(futures_util::StreamExt::chain(
            stream,
            futures_util::stream::pending(),
        ))
    } else if mode == Mode::LyingLength {
        // A pause before the short end, so that hyper flushes the head and
        // the bytes before it gives up on the connection.
        let pause = futures_util::StreamExt::filter_map(
            futures_util::stream::once(tokio::time::sleep(std::time::Duration::from_millis(100))),
            |()| async { None::<std::io::Result<Bytes>> },
        );
        Body::from_stream(futures_util::StreamExt::chain(stream, pause))
    } else {
        Body::from_stream(stream)
    };
    r
}
