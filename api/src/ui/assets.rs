//! The pages' assets, compiled into the binary (no CDN, no Node.js at run time): one style
//! sheet and small scripts for what the platform needs JavaScript for (WebAuthn, the live
//! feed, the resend countdown, the freeze link's button). Served with their content type,
//! `Cache-Control: no-cache` and an `ETag` (a `304` when it matches).
use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::Digest;

/// Name, content type and bytes of every asset.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "gatehouse.css",
        "text/css; charset=utf-8",
        include_bytes!("../../ui/assets/gatehouse.css"),
    ),
    (
        "freeze.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/assets/freeze.js"),
    ),
    (
        "webauthn.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/assets/webauthn.js"),
    ),
    (
        "countdown.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/assets/countdown.js"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/assets/console.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../ui/assets/favicon.svg"),
    ),
];

struct Asset {
    content_type: &'static str,
    bytes: &'static [u8],
    etag: String,
}

fn assets() -> &'static HashMap<&'static str, Asset> {
    static ASSETS: OnceLock<HashMap<&'static str, Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        FILES
            .iter()
            .map(|(name, content_type, bytes)| {
                let digest = sha2::Sha256::digest(bytes);
                let etag = format!("\"{}\"", hex::encode(&digest[..12]));
                (
                    *name,
                    Asset {
                        content_type,
                        bytes,
                        etag,
                    },
                )
            })
            .collect()
    })
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = assets().get(name.as_str()) else {
        return crate::error::no_such_endpoint().into_response();
    };
    let etag = HeaderValue::from_str(&asset.etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, asset.bytes).into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::ETAG, etag);
    super::security::apply(h);
    response
}

/// `GET /assets/{name}`: served whether or not the pages are (the freeze link's page uses them).
pub fn router() -> Router {
    Router::new().route("/assets/{name}", get(asset))
}
