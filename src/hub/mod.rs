//! Client for the upstream Hugging Face Hub (or any server speaking its
//! HTTP API): metadata calls with bounded bodies, paginated listings, and
//! file downloads streamed to a spool file.
//!
//! Redirects are followed here, not by reqwest, so that the `Authorization`
//! header goes to the upstream host only and never to a CDN or a third host
//! named in a `Location` or `Link` header.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Limits and timeouts of the upstream client.
#[derive(Debug, Clone)]
pub struct HubLimits {
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response (a hanging upstream).
    pub idle_timeout: Duration,
    pub max_redirects: usize,
    /// Largest metadata (JSON) body read into memory.
    pub max_metadata_bytes: u64,
    /// Most pages followed in one listing.
    pub max_pages: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_redirects: 5,
            max_metadata_bytes: 64 << 20,
            max_pages: 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    // reqwest's own message would name the URL again: it is built
    // `without_url`, and the URL shown is the redacted one.
    #[error("upstream request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("upstream {url} sent no data for {secs} s")]
    Timeout { url: String, secs: f64 },
    #[error("upstream {url} redirected more than {max} times")]
    TooManyRedirects { url: String, max: usize },
    #[error("upstream {url} sent a redirect without a usable Location")]
    BadRedirect { url: String },
    #[error("upstream {url} sent more than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("upstream {url} announced {announced} bytes but sent {received}")]
    LengthMismatch {
        url: String,
        announced: u64,
        received: u64,
    },
    #[error("upstream {url} answered {status}")]
    Status { url: String, status: StatusCode },
    #[error("upstream {url} sent invalid JSON: {source}")]
    Json {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write the spool file: {0}")]
    Spool(#[source] std::io::Error),
    #[error("{0}")]
    Refused(String),
}

/// A response whose body has not been read yet, with the headers of the
/// Hub's answer kept apart from those of the final (CDN) one: the Hub's `X-Repo-Commit`, `X-Linked-Etag` and
/// `X-Linked-Size` are on the redirect, not on the CDN's answer.
pub struct Fetched {
    pub hub_status: StatusCode,
    pub hub_headers: HeaderMap,
    pub response: reqwest::Response,
}

/// A file spooled to disk.
#[derive(Debug, Clone)]
pub struct Spooled {
    pub size: u64,
    /// Lowercase hex SHA-256 of the bytes written.
    pub sha256: String,
}

/// The upstream Hub.
#[derive(Debug, Clone)]
pub struct HubClient {
    http: reqwest::Client,
    base: Url,
    limits: HubLimits,
}

impl HubClient {
    pub fn new(base: &str, limits: HubLimits) -> Result<HubClient, HubError> {
        let mut base = Url::parse(base)
            .map_err(|e| HubError::Refused(format!("invalid upstream URL {base}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(HubError::Refused(format!(
                "upstream {base} is not an http(s) URL"
            )));
        }
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(limits.connect_timeout)
            .user_agent(concat!("modelgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| HubError::Http {
                url: base.to_string(),
                source: source.without_url(),
            })?;
        Ok(HubClient { http, base, limits })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    pub fn limits(&self) -> &HubLimits {
        &self.limits
    }

    /// The URL of `path_and_query` (which starts with `/`) on the upstream.
    pub fn url(&self, path_and_query: &str) -> Result<Url, HubError> {
        self.base
            .join(path_and_query.trim_start_matches('/'))
            .map_err(|e| HubError::Refused(format!("invalid upstream path {path_and_query}: {e}")))
    }

    fn same_origin(&self, url: &Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }

    /// Sends a request, following redirects itself. `auth` goes to the
    /// upstream's own origin only.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        auth: Option<&HeaderValue>,
        extra: &HeaderMap,
        body: Option<Bytes>,
    ) -> Result<Fetched, HubError> {
        self.send_until(method, url, auth, extra, body, |_| false)
            .await
    }

    /// A file's metadata as huggingface_hub reads it: a HEAD that follows
    /// the Hub's own redirects (a renamed repository) but stops at the LFS
    /// redirect to the CDN, whose headers (`X-Linked-Etag`,
    /// `X-Linked-Size`, `X-Repo-Commit`) say everything. A CDN's signed URL
    /// may be valid for GET only, and the metadata costs it no request.
    pub async fn head_file(
        &self,
        url: Url,
        auth: Option<&HeaderValue>,
    ) -> Result<Fetched, HubError> {
        self.send_until(Method::HEAD, url, auth, &HeaderMap::new(), None, |r| {
            r.headers().contains_key("x-linked-size")
        })
        .await
    }

    async fn send_until(
        &self,
        method: Method,
        url: Url,
        auth: Option<&HeaderValue>,
        extra: &HeaderMap,
        body: Option<Bytes>,
        stop: impl Fn(&reqwest::Response) -> bool,
    ) -> Result<Fetched, HubError> {
        let mut url = url;
        // The Hub's answer: the first one that carries X-Repo-Commit (and
        // X-Linked-*), even after a redirect of the Hub's own (a renamed
        // repository); a CDN's answers never replace it.
        let mut hub: Option<(StatusCode, HeaderMap)> = None;
        for _ in 0..=self.limits.max_redirects {
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .headers(extra.clone())
                // Never let an upstream choose a compressed encoding: the
                // bytes scanned must be the bytes the client gets.
                .header(header::ACCEPT_ENCODING, "identity");
            if let (Some(a), true) = (auth, self.same_origin(&url)) {
                req = req.header(header::AUTHORIZATION, a.clone());
            }
            if let Some(b) = &body {
                req = req.body(b.clone());
            }
            let send = req.send();
            let resp = match tokio::time::timeout(self.limits.idle_timeout, send).await {
                Ok(r) => r.map_err(|source| HubError::Http {
                    url: redact(&url),
                    source: source.without_url(),
                })?,
                Err(_) => return Err(self.timeout(&url)),
            };
            let status = resp.status();
            let names_commit = |h: &HeaderMap| h.contains_key("x-repo-commit");
            if hub.is_none()
                || (names_commit(resp.headers())
                    && !hub.as_ref().is_some_and(|(_, h)| names_commit(h)))
            {
                hub = Some((status, resp.headers().clone()));
            }
            if !status.is_redirection() || status == StatusCode::NOT_MODIFIED || stop(&resp) {
                let (hub_status, hub_headers) = hub.unwrap_or((status, HeaderMap::new()));
                return Ok(Fetched {
                    hub_status,
                    hub_headers,
                    response: resp,
                });
            }
            let next = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok())
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| HubError::BadRedirect { url: redact(&url) })?;
            url = next;
        }
        Err(HubError::TooManyRedirects {
            url: redact(&url),
            max: self.limits.max_redirects,
        })
    }

    fn timeout(&self, url: &Url) -> HubError {
        HubError::Timeout {
            url: redact(url),
            secs: self.limits.idle_timeout.as_secs_f64(),
        }
    }

    /// Reads the body of `resp` into memory, at most `limit` bytes.
    pub async fn read_bounded(
        &self,
        mut resp: reqwest::Response,
        limit: u64,
    ) -> Result<Bytes, HubError> {
        let url = redact(resp.url());
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(HubError::TooLarge { url, limit });
        }
        let mut out = Vec::new();
        loop {
            let chunk = match tokio::time::timeout(self.limits.idle_timeout, resp.chunk()).await {
                Ok(c) => c.map_err(|source| HubError::Http {
                    url: url.clone(),
                    source: source.without_url(),
                })?,
                Err(_) => {
                    return Err(HubError::Timeout {
                        url,
                        secs: self.limits.idle_timeout.as_secs_f64(),
                    });
                }
            };
            let Some(chunk) = chunk else { break };
            if out.len() as u64 + chunk.len() as u64 > limit {
                return Err(HubError::TooLarge { url, limit });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(out))
    }

    /// GETs a JSON document from the upstream.
    pub async fn get_json(
        &self,
        path: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<(serde_json::Value, HeaderMap), HubError> {
        let url = self.url(path)?;
        self.get_json_url(url, auth).await
    }

    async fn get_json_url(
        &self,
        url: Url,
        auth: Option<&HeaderValue>,
    ) -> Result<(serde_json::Value, HeaderMap), HubError> {
        let shown = redact(&url);
        let f = self
            .send(Method::GET, url, auth, &HeaderMap::new(), None)
            .await?;
        let status = f.response.status();
        let headers = f.response.headers().clone();
        if !status.is_success() {
            return Err(HubError::Status { url: shown, status });
        }
        let body = self
            .read_bounded(f.response, self.limits.max_metadata_bytes)
            .await?;
        let v = serde_json::from_slice(&body)
            .map_err(|source| HubError::Json { url: shown, source })?;
        Ok((v, headers))
    }

    /// GETs every page of a JSON-array listing, following `Link: <…>;
    /// rel="next"` on the upstream's own origin.
    pub async fn get_paginated(
        &self,
        path: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<Vec<serde_json::Value>, HubError> {
        let mut url = self.url(path)?;
        let mut items = Vec::new();
        for _ in 0..self.limits.max_pages {
            let (v, headers) = self.get_json_url(url.clone(), auth).await?;
            match v {
                serde_json::Value::Array(a) => items.extend(a),
                _ => {
                    return Err(HubError::Refused(format!(
                        "upstream {} sent a listing that is not a JSON array",
                        redact(&url)
                    )));
                }
            }
            match next_link(&headers).and_then(|l| url.join(&l).ok()) {
                Some(next) if self.same_origin(&next) => url = next,
                Some(next) => {
                    return Err(HubError::Refused(format!(
                        "upstream pagination points to another host: {}",
                        redact(&next)
                    )));
                }
                None => return Ok(items),
            }
        }
        Err(HubError::Refused(format!(
            "upstream listing {path} has more than {} pages",
            self.limits.max_pages
        )))
    }

    /// `GET /api/{kind}s/{repo}`: model (dataset, space) info.
    pub async fn repo_info(
        &self,
        kind: RepoKind,
        repo: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<serde_json::Value, HubError> {
        Ok(self
            .get_json(&format!("/api/{}/{repo}", kind.api()), auth)
            .await?
            .0)
    }

    /// `GET /api/{kind}s/{repo}/revision/{rev}`.
    pub async fn revision_info(
        &self,
        kind: RepoKind,
        repo: &str,
        rev: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<serde_json::Value, HubError> {
        let rev = enc(rev);
        Ok(self
            .get_json(&format!("/api/{}/{repo}/revision/{rev}", kind.api()), auth)
            .await?
            .0)
    }

    /// `GET /api/{kind}s/{repo}/tree/{rev}?recursive=true`, all pages.
    pub async fn tree(
        &self,
        kind: RepoKind,
        repo: &str,
        rev: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<Vec<serde_json::Value>, HubError> {
        let rev = enc(rev);
        self.get_paginated(
            &format!("/api/{}/{repo}/tree/{rev}?recursive=true", kind.api()),
            auth,
        )
        .await
    }

    /// `POST /api/{kind}s/{repo}/paths-info/{rev}` for `paths`.
    pub async fn paths_info(
        &self,
        kind: RepoKind,
        repo: &str,
        rev: &str,
        paths: &[&str],
        auth: Option<&HeaderValue>,
    ) -> Result<serde_json::Value, HubError> {
        let url = self.url(&format!(
            "/api/{}/{repo}/paths-info/{}",
            kind.api(),
            enc(rev)
        ))?;
        let shown = redact(&url);
        let body: String = paths
            .iter()
            .map(|p| {
                format!(
                    "paths={}",
                    percent_encoding::utf8_percent_encode(p, percent_encoding::NON_ALPHANUMERIC)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let f = self
            .send(Method::POST, url, auth, &h, Some(Bytes::from(body)))
            .await?;
        if !f.response.status().is_success() {
            return Err(HubError::Status {
                url: shown,
                status: f.response.status(),
            });
        }
        let b = self
            .read_bounded(f.response, self.limits.max_metadata_bytes)
            .await?;
        serde_json::from_slice(&b).map_err(|source| HubError::Json { url: shown, source })
    }

    /// `GET /api/models?author={org}`, all pages.
    pub async fn list_models(
        &self,
        org: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<Vec<serde_json::Value>, HubError> {
        self.get_paginated(&format!("/api/models?author={}", enc(org)), auth)
            .await
    }

    /// Streams the body of a successful response to `dest`, at most `limit`
    /// bytes, checking the announced length. Not synced: a caller that
    /// keeps the file syncs it. `on_chunk` may refuse more
    /// bytes (a spool budget) by returning an error.
    pub async fn spool(
        &self,
        mut resp: reqwest::Response,
        dest: &mut tokio::fs::File,
        limit: u64,
        mut on_chunk: impl FnMut(u64) -> Result<(), HubError>,
    ) -> Result<Spooled, HubError> {
        let url = redact(resp.url());
        let announced = resp.content_length();
        if announced.is_some_and(|n| n > limit) {
            return Err(HubError::TooLarge { url, limit });
        }
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            let chunk = match tokio::time::timeout(self.limits.idle_timeout, resp.chunk()).await {
                Ok(Ok(c)) => c,
                // hyper reports a body shorter than its Content-Length as an
                // error: say what happened rather than "connection closed".
                Ok(Err(source)) => {
                    if let Some(a) = announced.filter(|&a| a != size) {
                        return Err(HubError::LengthMismatch {
                            url,
                            announced: a,
                            received: size,
                        });
                    }
                    return Err(HubError::Http {
                        url,
                        source: source.without_url(),
                    });
                }
                Err(_) => {
                    return Err(HubError::Timeout {
                        url,
                        secs: self.limits.idle_timeout.as_secs_f64(),
                    });
                }
            };
            let Some(chunk) = chunk else { break };
            size += chunk.len() as u64;
            if size > limit {
                return Err(HubError::TooLarge { url, limit });
            }
            on_chunk(chunk.len() as u64)?;
            hasher.update(&chunk);
            dest.write_all(&chunk).await.map_err(HubError::Spool)?;
        }
        if let Some(a) = announced.filter(|&a| a != size) {
            return Err(HubError::LengthMismatch {
                url,
                announced: a,
                received: size,
            });
        }
        dest.flush().await.map_err(HubError::Spool)?;
        Ok(Spooled {
            size,
            sha256: hex(&hasher.finalize()),
        })
    }

    /// The upstream URL of `/{repo}/resolve/{rev}/{file}`, every part
    /// percent-encoded again (a file name cannot add path segments).
    pub fn resolve_url(&self, file: &FileRef<'_>) -> Result<Url, HubError> {
        self.url(&format!(
            "/{}{}/resolve/{}/{}",
            file.kind.url_prefix(),
            file.repo,
            enc(file.rev),
            enc_path(file.path)
        ))
    }

    /// Downloads `/{repo}/resolve/{rev}/{file}` to `dest`.
    pub async fn download(
        &self,
        file: &FileRef<'_>,
        auth: Option<&HeaderValue>,
        dest: &Path,
        limit: u64,
    ) -> Result<(Spooled, HeaderMap), HubError> {
        let url = self.resolve_url(file)?;
        let shown = redact(&url);
        let f = self
            .send(Method::GET, url, auth, &HeaderMap::new(), None)
            .await?;
        if !f.response.status().is_success() {
            return Err(HubError::Status {
                url: shown,
                status: f.response.status(),
            });
        }
        let mut out = tokio::fs::File::create(dest)
            .await
            .map_err(HubError::Spool)?;
        let s = self.spool(f.response, &mut out, limit, |_| Ok(())).await?;
        out.sync_data().await.map_err(HubError::Spool)?;
        Ok((s, f.hub_headers))
    }
}

/// One file of one revision of a Hub repository.
#[derive(Debug, Clone, Copy)]
pub struct FileRef<'a> {
    pub kind: RepoKind,
    pub repo: &'a str,
    pub rev: &'a str,
    pub path: &'a str,
}

/// The three kinds of Hub repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoKind {
    Model,
    Dataset,
    Space,
}

impl RepoKind {
    pub fn api(self) -> &'static str {
        match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
            RepoKind::Space => "spaces",
        }
    }

    /// The prefix of file URLs (`/datasets/…`); models have none.
    pub fn url_prefix(self) -> &'static str {
        match self {
            RepoKind::Model => "",
            RepoKind::Dataset => "datasets/",
            RepoKind::Space => "spaces/",
        }
    }
}

/// The LFS sha256 of a file from the Hub's headers: `X-Linked-Etag`, else
/// an `ETag` that is 64 hex digits (small files carry a git sha1 instead).
pub fn lfs_sha256(headers: &HeaderMap) -> Option<String> {
    ["x-linked-etag", "etag"].iter().find_map(|h| {
        let v = headers.get(*h)?.to_str().ok()?;
        let v = v.trim().trim_start_matches("W/").trim_matches('"');
        (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then(|| v.to_ascii_lowercase())
    })
}

fn next_link(headers: &HeaderMap) -> Option<String> {
    for v in headers.get_all(header::LINK) {
        for part in v.to_str().ok()?.split(',') {
            let mut it = part.split(';');
            let target = it.next()?.trim();
            if it.any(|p| p.trim().replace(' ', "") == "rel=\"next\"") {
                return Some(
                    target
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string(),
                );
            }
        }
    }
    None
}

/// A URL fit for a log or an error: no user info, no query (signed CDN URLs
/// carry credentials in it).
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn enc_path(s: &str) -> String {
    s.split('/').map(enc).collect::<Vec<_>>().join("/")
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lfs_sha_from_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "etag",
            HeaderValue::from_static("\"0123456789abcdef0123456789abcdef01234567\""),
        );
        assert_eq!(lfs_sha256(&h), None);
        let sha = "a".repeat(64);
        h.insert(
            "x-linked-etag",
            HeaderValue::from_str(&format!("\"{sha}\"")).unwrap(),
        );
        assert_eq!(lfs_sha256(&h), Some(sha));
    }

    #[test]
    fn link_next() {
        let mut h = HeaderMap::new();
        h.insert(
            header::LINK,
            HeaderValue::from_static("<https://hub/api/x?cursor=2>; rel=\"next\""),
        );
        assert_eq!(next_link(&h).as_deref(), Some("https://hub/api/x?cursor=2"));
    }

    #[test]
    fn redacts_query_and_userinfo() {
        let u = Url::parse("https://u:p@cdn.example/x?X-Amz-Signature=s").unwrap();
        assert_eq!(redact(&u), "https://cdn.example/x");
    }
}
