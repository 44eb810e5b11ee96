//! The staff console at `/console` (issue #21 item 2): mounted here, built on the same layout,
//! cookies ([`super::cookies::CookieKind::Console`]), CSRF forms and in-process API client as
//! the self-service pages.
use axum::Router;

use super::UiState;

/// The console's routes, each path under `/console`.
pub fn router() -> Router<UiState> {
    Router::new()
}
