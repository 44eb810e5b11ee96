//! CORS for the JSON API (issue #21 item 4): frontends on other origins call the API with
//! bearer tokens.
//!
//! Off unless `GATEHOUSE_CORS_ORIGINS` lists origins. Only those exact origins are allowed (no
//! wildcard, no pattern); `Access-Control-Allow-Credentials` is never sent, since the API takes
//! bearer tokens and ignores cookies; preflights are cached by the browser for
//! [`PREFLIGHT_MAX_AGE`]; `Retry-After` and `X-Request-Id` are readable by the frontend. The
//! pages (`/`, `/console`) never carry CORS headers: the layer wraps the API router only.
use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may reuse a preflight's answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The request headers a frontend may send: those the API reads.
const ALLOWED_HEADERS: [&str; 4] = [
    "authorization",
    "content-type",
    "x-request-id",
    "x-device-token",
];

/// The methods the API's routes answer.
const ALLOWED_METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// The origins allowed to call the API from a browser (`GATEHOUSE_CORS_ORIGINS`); empty: CORS
/// is off and browsers keep other origins out (their same-origin policy).
#[derive(Debug, Clone, Default)]
pub struct CorsSettings {
    origins: Vec<HeaderValue>,
}

impl CorsSettings {
    /// Settings allowing exactly `origins` (each checked by [`parse_origin`]).
    pub fn new(origins: Vec<Origin>) -> Self {
        Self {
            origins: origins.into_iter().map(|o| o.0).collect(),
        }
    }

    /// Whether any origin is allowed.
    pub fn enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    /// The layer, or `None` when CORS is off.
    pub fn layer(&self) -> Option<CorsLayer> {
        if !self.enabled() {
            return None;
        }
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(self.origins.iter().cloned()))
                .allow_methods(ALLOWED_METHODS.to_vec())
                .allow_headers(
                    ALLOWED_HEADERS
                        .iter()
                        .map(|h| HeaderName::from_static(h))
                        .collect::<Vec<_>>(),
                )
                .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-request-id")])
                .max_age(PREFLIGHT_MAX_AGE),
        )
    }
}

/// An origin as browsers send it in `Origin`: `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(HeaderValue);

/// Parses one entry of `GATEHOUSE_CORS_ORIGINS`: an `http` or `https` origin written exactly as
/// a browser sends it (lower case, no path or trailing slash, no default port), so that what the
/// operator wrote is what is compared. `*` and `null` are refused: the list is of exact origins.
pub fn parse_origin(text: &str) -> Result<Origin, String> {
    let text = text.trim();
    if text == "*" || text.eq_ignore_ascii_case("null") {
        return Err(format!(
            "{text:?} is not allowed: list exact origins such as https://app.example.com"
        ));
    }
    let url = url::Url::parse(text)
        .map_err(|e| format!("{text:?} is not an origin such as https://app.example.com ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?}: an origin is http:// or https://"));
    }
    let origin = url.origin().ascii_serialization();
    if origin != text {
        return Err(format!(
            "{text:?} is not written as a browser sends it; write {origin:?} (scheme://host[:port], lower case, no path, no trailing slash, no default port)"
        ));
    }
    HeaderValue::from_str(&origin)
        .map(Origin)
        .map_err(|_| format!("{text:?} is not a valid header value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_exact_origins_are_taken() {
        for ok in [
            "https://app.example.com",
            "http://127.0.0.1:3000",
            "http://localhost:5173",
            " https://app.example.com ",
        ] {
            assert!(parse_origin(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn test_anything_but_an_exact_origin_is_refused_with_a_reason() {
        for bad in [
            "*",
            "null",
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://App.Example.com",
            "https://app.example.com:443",
            "ftp://app.example.com",
            "https://user@app.example.com",
            "",
        ] {
            let error = parse_origin(bad).unwrap_err();
            assert!(!error.is_empty(), "{bad}");
        }
        let error = parse_origin("https://app.example.com/").unwrap_err();
        assert!(error.contains("\"https://app.example.com\""), "{error}");
    }

    #[test]
    fn test_off_without_origins() {
        assert!(CorsSettings::default().layer().is_none());
        let on = CorsSettings::new(vec![parse_origin("https://a.example").unwrap()]);
        assert!(on.enabled() && on.layer().is_some());
    }
}
