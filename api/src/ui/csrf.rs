//! CSRF protection of every state-changing form: one way, never per route.
//!
//! Each browser gets a random secret in its sealed CSRF cookie ([`ensure_secret`], a middleware
//! on every page). Each form carries a hidden `csrf` field, the HMAC of that secret under a
//! server key ([`CsrfToken`]). [`CsrfForm`] is the only way a page handler reads a posted form:
//! it refuses (403, with a page saying so) a request a browser marked as cross-site
//! (`Sec-Fetch-Site: cross-site` or `same-site`), one whose `Origin` names an origin that is
//! neither the configured public origin nor the origin the request was sent to (`Origin: null`,
//! which browsers send with the pages' own posts under `Referrer-Policy: no-referrer`, names
//! none), and one whose `csrf`
//! field does not match the cookie's secret (compared in constant time). Only then does the
//! handler see the form, and only then may it read the session cookie.
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::cookies::{self, CookieKind};
use super::render;
use super::UiState;

/// Largest form body a page accepts.
const FORM_LIMIT: usize = 16 * 1024;

/// How long the CSRF cookie lasts (it is renewed whenever it is missing).
const CSRF_COOKIE_SECONDS: u64 = 60 * 60 * 24 * 30;

/// This browser's CSRF secret, from its cookie or fresh (request extension set by
/// [`ensure_secret`]).
#[derive(Clone)]
struct CsrfSecret(Vec<u8>);

/// Middleware of every page: reads the browser's CSRF secret from its cookie, or makes one and
/// sets the cookie on the answer.
pub async fn ensure_secret(
    State(ui): State<UiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let settings = ui.settings();
    let keys = ui.app.keys();
    let existing = cookies::read(request.headers(), CookieKind::Csrf, settings, keys)
        .filter(|s| s.len() == 32);
    let (secret, fresh) = match existing {
        Some(secret) => (secret, false),
        None => match crate::keys::random_bytes::<32>() {
            Ok(bytes) => (bytes.to_vec(), true),
            Err(_) => return render::internal_error(),
        },
    };
    request.extensions_mut().insert(CsrfSecret(secret.clone()));
    let mut response = next.run(request).await;
    if fresh {
        if let Some(cookie) = cookies::set(
            CookieKind::Csrf,
            &secret,
            Some(CSRF_COOKIE_SECONDS),
            settings,
            keys,
        ) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    response
}

/// The CSRF token a page puts in the hidden `csrf` field of each of its forms.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

impl FromRequestParts<UiState> for CsrfToken {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ui: &UiState) -> Result<Self, Self::Rejection> {
        let secret = parts
            .extensions
            .get::<CsrfSecret>()
            .ok_or_else(render::internal_error)?;
        Ok(Self(ui.app.keys().csrf_token(&secret.0)))
    }
}

#[derive(Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

/// A posted form whose CSRF checks passed (see the module docs). `T` is the form's fields
/// (the `csrf` field itself is ignored by it).
pub struct CsrfForm<T>(pub T);

/// Whether the browser's own marks say the request came from another site.
fn cross_site(headers: &HeaderMap, ui: &UiState) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if fetch_site.eq_ignore_ascii_case("cross-site") || fetch_site.eq_ignore_ascii_case("same-site")
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let Ok(origin) = origin.to_str() else {
        return true;
    };
    // The pages' `Referrer-Policy: no-referrer` makes browsers send `Origin: null` with their
    // own form posts: it names no origin, so `Sec-Fetch-Site` and the token decide.
    if origin == "null" {
        return false;
    }
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    if origin == ui.settings().public_origin {
        return false;
    }
    // The origin the request was sent to: the browser sets `Host`, a page on another origin
    // cannot, so an `Origin` naming this same authority is this server's own page.
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    let authority = origin.split_once("://").map(|(_, a)| a.to_string());
    !(host.is_some() && authority.is_some() && host == authority)
}

impl<T: DeserializeOwned> FromRequest<UiState> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, ui: &UiState) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        if cross_site(&parts.headers, ui) {
            return Err(refused());
        }
        let Some(secret) = parts.extensions.get::<CsrfSecret>().cloned() else {
            return Err(refused());
        };
        let bytes = axum::body::to_bytes(body, FORM_LIMIT)
            .await
            .map_err(|_| render::bad_form())?;
        let field: CsrfField = serde_urlencoded::from_bytes(&bytes).map_err(|_| refused())?;
        let expected = ui.app.keys().csrf_token(&secret.0);
        let presented = field.csrf.unwrap_or_default();
        if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(refused());
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|_| render::bad_form())?;
        Ok(Self(form))
    }
}

/// The answer to a refused form: 403, with a page saying so.
pub fn refused() -> Response {
    let mut response = render::message(
        StatusCode::FORBIDDEN,
        "Form refused",
        "This form was refused: it was not sent from this site's own page, or the page was too old. Go back, reload the page and try again.",
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response.into_response()
}
