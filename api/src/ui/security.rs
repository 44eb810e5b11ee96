//! The headers of every page: a strict Content-Security-Policy (no inline scripts or styles, so
//! templates hold no `<script>` blocks and no `style=""` attributes), no framing, no referrer,
//! no caching of pages (assets set their own caching).
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Response;

/// The Content-Security-Policy of every page: scripts, styles and connections from this origin
/// only, images also as `data:` (the TOTP QR code), forms posting only here, never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Sets the page security headers on an answer (pages, assets, the pages' error answers).
/// `Cache-Control` is left as set when the handler set it (assets).
pub fn apply(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// [`apply`] as a response middleware (`axum::middleware::map_response`).
pub async fn page_headers(mut response: Response) -> Response {
    apply(response.headers_mut());
    response
}
