//! The security center (`/account`): the signed-in account at a glance, and the way to each of
//! its sections.
use askama::Template;
use axum::extract::State;
use axum::http::Method;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::{failure_page, session_token, sign_in_again, with_cookies, Empty, SignedIn};
use crate::ui::call::Browser;
use crate::ui::cookies::{self, CookieKind};
use crate::ui::csrf::CsrfForm;
use crate::ui::csrf::CsrfToken;
use crate::ui::render::{self, Nav};
use crate::ui::UiState;

/// What `GET /v1/me` answers that the page shows.
#[derive(Debug, Deserialize)]
pub struct Me {
    pub(super) email: Option<String>,
    pub(super) phone: Option<String>,
    pub(super) email_verified: bool,
    pub(super) phone_verified: bool,
    pub(super) anti_phishing_phrase_set: bool,
}

/// The security center's overview.
#[derive(Template)]
#[template(path = "self/account.html")]
pub struct AccountPage {
    nav: Nav,
    me: Me,
}

async fn overview(
    State(ui): State<UiState>,
    CsrfToken(csrf): CsrfToken,
    browser: Browser,
    headers: HeaderMap,
) -> Response {
    let Some(token) = session_token(&headers, &ui) else {
        return sign_in_again(&ui);
    };
    let answer = ui.api.get(&browser, "/v1/me", Some(&token)).await;
    let answer = match answer.into_result() {
        Ok(answer) => answer,
        Err(f) if f.is_unauthenticated() => return sign_in_again(&ui),
        Err(f) => return failure_page(&f),
    };
    let Some(me) = answer.json::<Me>() else {
        return render::internal_error();
    };
    render::html(
        StatusCode::OK,
        &AccountPage {
            nav: Nav::signed_in(&csrf, "overview"),
            me,
        },
    )
}

/// Freezes the account (`POST /v1/me/freeze`: a session alone may freeze). The session ends
/// with it, so the cookie goes too.
async fn freeze(State(ui): State<UiState>, me: SignedIn, CsrfForm(_): CsrfForm<Empty>) -> Response {
    match me.call(&ui, Method::POST, "/v1/me/freeze", None).await {
        Err(page) => page,
        Ok(Err(failure)) => failure_page(&failure),
        Ok(Ok(_)) => with_cookies(
            render::message(
                StatusCode::OK,
                "Your account is frozen",
                "Every session was signed out and every API key and trusted device revoked. Sign-in and withdrawals are refused until you unfreeze the account with a code sent to each of your verified contacts and your second factor.",
            ),
            [cookies::clear(CookieKind::Session, ui.settings())],
        ),
    }
}

/// The routes of the security center.
pub fn router() -> Router<UiState> {
    Router::new()
        .route("/account", get(overview))
        .route("/account/freeze", post(freeze))
}
