//! Forwarding of the Hub's metadata API (`/api/...`): bounded bodies both
//! ways, an allow-list of headers, Xet hints stripped and pagination links
//! pointed back at the gate.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;

use super::{Proxy, client_auth, refuse};
use crate::hub::HubError;

/// Largest request body forwarded (`paths-info` forms, listings).
const MAX_REQUEST_BODY: usize = 1 << 20;

/// Client headers the upstream may see (`Authorization` is handled apart).
const REQUEST_HEADERS: &[HeaderName] = &[header::CONTENT_TYPE, header::ACCEPT];

/// Upstream headers a client may see.
const RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "etag",
    "x-repo-commit",
    "x-linked-etag",
    "x-linked-size",
    "x-error-code",
    "x-error-message",
    "x-request-id",
    "last-modified",
];

pub(super) async fn forward_api(proxy: &Proxy, req: Request) -> Response {
    let method = req.method().clone();
    if !matches!(method, Method::GET | Method::HEAD | Method::POST) {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "modelgate proxy: only GET, HEAD and POST reach the Hub API through the gate",
        );
    }
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let auth = client_auth(req.headers());
    let mut extra = HeaderMap::new();
    for h in REQUEST_HEADERS {
        if let Some(v) = req.headers().get(h) {
            extra.insert(h.clone(), v.clone());
        }
    }
    let body = match axum::body::to_bytes(req.into_body(), MAX_REQUEST_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "modelgate proxy: request body over 1 MiB",
            );
        }
    };
    let url = match proxy.hub.url(&path_and_query) {
        Ok(u) => u,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &format!("modelgate proxy: {e}")),
    };
    let body = (method == Method::POST).then_some(body);
    let fetched = match proxy
        .hub
        .send(method.clone(), url, auth.as_ref(), &extra, body)
        .await
    {
        Ok(f) => f,
        Err(e) => return upstream_failure(proxy, &e),
    };
    let status = fetched.response.status();
    let mut out_headers = HeaderMap::new();
    copy_headers(fetched.response.headers(), &mut out_headers);
    rewrite_links(
        fetched.response.headers(),
        &mut out_headers,
        proxy.hub.base(),
        &host,
    );
    let bytes = if method == Method::HEAD {
        Default::default()
    } else {
        match proxy
            .hub
            .read_bounded(fetched.response, proxy.hub.limits().max_metadata_bytes)
            .await
        {
            Ok(b) => b,
            Err(e) => return upstream_failure(proxy, &e),
        }
    };
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    *r.headers_mut() = out_headers;
    r
}

pub(super) fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for name in RESPONSE_HEADERS {
        for v in from.get_all(*name) {
            to.append(HeaderName::from_static(name), v.clone());
        }
    }
}

/// Keeps the upstream's `Link` entries that are not Xet hints, with the
/// upstream's URL replaced by the gate's, so pagination stays behind the
/// gate. A link to any other host is dropped.
fn rewrite_links(from: &HeaderMap, to: &mut HeaderMap, base: &reqwest::Url, host: &str) {
    // The upstream with its path: a mirror at `https://host/hf/` links to
    // `https://host/hf/api/...`, which is `/api/...` at the gate.
    let upstream = base.as_str().trim_end_matches('/');
    let mut kept = Vec::new();
    for v in from.get_all(header::LINK) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let part = part.trim();
            let Some((target, params)) = part.split_once(';') else {
                continue;
            };
            if params.to_ascii_lowercase().contains("xet") {
                continue;
            }
            let target = target.trim().trim_start_matches('<').trim_end_matches('>');
            let rest = match target.strip_prefix(upstream) {
                Some(rest) if rest.starts_with('/') => rest,
                // Already relative to the gate's root.
                _ if target.starts_with('/') && !target.starts_with("//") => target,
                _ => continue,
            };
            kept.push(format!("<http://{host}{rest}>;{params}"));
        }
    }
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join(", "))
    {
        to.insert(header::LINK, v);
    }
}

/// The gate's answer to an upstream that failed: 504 for silence, 502 for
/// the rest, never the partial bytes.
pub(super) fn upstream_failure(proxy: &Proxy, e: &HubError) -> Response {
    proxy
        .metrics
        .upstream_errors
        .fetch_add(1, Ordering::Relaxed);
    tracing::warn!(target: "modelgate::proxy", error = %e, "upstream failure");
    let status = match e {
        HubError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    };
    refuse(status, &format!("modelgate proxy: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_point_back_at_the_gate_and_xet_goes() {
        let mut from = HeaderMap::new();
        from.insert(
            header::LINK,
            HeaderValue::from_static(
                "<https://hub.example/api/models?cursor=2>; rel=\"next\", <https://hub.example/api/x/xet-read-token/1>; rel=\"xet-auth\", <https://evil.example/a>; rel=\"alternate\"",
            ),
        );
        let mut to = HeaderMap::new();
        let base = reqwest::Url::parse("https://hub.example/").unwrap();
        rewrite_links(&from, &mut to, &base, "127.0.0.1:9");
        assert_eq!(
            to.get(header::LINK).unwrap(),
            "<http://127.0.0.1:9/api/models?cursor=2>; rel=\"next\""
        );
        let mut from = HeaderMap::new();
        from.insert(
            header::LINK,
            HeaderValue::from_static(
                "<https://hub.example/hf/api/models?cursor=3>; rel=\"next\", <https://hub.example/other/x>; rel=\"x\"",
            ),
        );
        let mut to = HeaderMap::new();
        let base = reqwest::Url::parse("https://hub.example/hf/").unwrap();
        rewrite_links(&from, &mut to, &base, "gate:1");
        assert_eq!(
            to.get(header::LINK).unwrap(),
            "<http://gate:1/api/models?cursor=3>; rel=\"next\""
        );
    }
}
