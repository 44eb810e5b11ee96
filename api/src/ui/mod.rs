//! The pages the binary serves (issue #21): the self-service pages at `/` and the staff console
//! at `/console`, with their assets compiled in.
//!
//! One rule set: a page never decides anything itself. Its form handler turns the form into
//! the JSON body of the matching API route and calls the API router in-process
//! ([`call::ApiClient`]) with the session token from the page's sealed cookie, the caller's
//! address and headers, so the same rate limits, doors and proof policy apply; the API's
//! answer (or its error, escaped by the template) is what the page shows.
//!
//! - [`security`]: the headers of every page (strict CSP without inline scripts or styles,
//!   `frame-ancestors 'none'`, `X-Frame-Options: DENY`, no referrer, no caching);
//! - [`cookies`]: sealed cookies, `__Host-` and `Secure` when `GATEHOUSE_PUBLIC_URL` is https;
//! - [`csrf`]: the CSRF token of every form and the [`csrf::CsrfForm`] extractor every
//!   state-changing route uses;
//! - [`assets`]: the CSS and the few scripts, served from the binary;
//! - [`render`]: askama templates (`api/templates/`) into answers;
//! - [`pages`]: the self-service pages, one module per flow; [`console`]: the staff console.
use axum::Router;

use crate::state::AppState;

pub mod assets;
pub mod call;
pub mod console;
pub mod cookies;
pub mod csrf;
pub mod pages;
pub mod render;
pub mod security;

pub use crate::ui_settings::UiSettings;

/// What every page handler shares: the application state and the in-process API client.
#[derive(Clone)]
pub struct UiState {
    /// The application state (keys, settings).
    pub app: AppState,
    /// The JSON API, called in-process.
    pub api: call::ApiClient,
}

impl UiState {
    /// Page settings.
    pub fn settings(&self) -> &UiSettings {
        self.app.ui()
    }
}

/// The pages: the self-service pages at `/`, the console at `/console`, both behind the page
/// security headers. `api` is the JSON API's router (with its middleware), which the pages call
/// in-process. Mounted by [`crate::app::router`] unless `GATEHOUSE_UI=off`.
pub fn router(state: AppState, api: Router) -> Router {
    let ui = UiState {
        app: state,
        api: call::ApiClient::new(api),
    };
    Router::new()
        .merge(pages::router())
        .merge(console::router())
        .layer(axum::middleware::from_fn_with_state(
            ui.clone(),
            csrf::ensure_secret,
        ))
        .with_state(ui)
        .layer(axum::middleware::map_response(security::page_headers))
}
