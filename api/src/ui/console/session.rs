//! Console sign-in with a staff token (checked by the staff API, `GET /v1/admin/me`), and
//! sign-out. The token then lives only in the sealed `SameSite=Strict` console cookie.
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::{session_cookie, ConsoleNav};
use crate::ui::call::Browser;
use crate::ui::cookies::{self, CookieKind};
use crate::ui::csrf::{CsrfForm, CsrfToken};
use crate::ui::pages::{Empty, Problem};
use crate::ui::render::{self, Nav};
use crate::ui::UiState;

/// The console's sign-in and sign-out routes, and `/console` itself.
pub fn router() -> Router<UiState> {
    Router::new()
        .route("/console", get(home))
        .route("/console/sign-in", get(form).post(sign_in))
        .route("/console/sign-out", post(sign_out))
}

/// `/console`: the alerts when a console cookie is present (checked there), else sign-in.
async fn home(State(ui): State<UiState>, headers: HeaderMap) -> Response {
    let present =
        cookies::read(&headers, CookieKind::Console, ui.settings(), ui.app.keys()).is_some();
    render::see_other(if present {
        "/console/alerts"
    } else {
        "/console/sign-in"
    })
}

/// The sign-in page.
#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    nav: Nav,
    console: ConsoleNav,
    notice: Option<&'static str>,
    problem: Option<Problem>,
}

/// Why the sign-in page is shown.
#[derive(Debug, Deserialize)]
struct Notice {
    notice: Option<String>,
}

fn page(csrf: &str, notice: Option<&'static str>, problem: Option<Problem>) -> SignInPage {
    SignInPage {
        nav: Nav::guest(csrf),
        console: ConsoleNav::default(),
        notice,
        problem,
    }
}

async fn form(CsrfToken(csrf): CsrfToken, Query(q): Query<Notice>) -> Response {
    let notice = match q.notice.as_deref() {
        Some("idle") => {
            Some("Your console session ended after a while without use. Sign in again.")
        }
        Some("expired") => Some(
            "Your staff token no longer works (revoked or expired). Sign in with a current one.",
        ),
        Some("signed-out") => Some("You are signed out of the console."),
        _ => None,
    };
    render::html(StatusCode::OK, &page(&csrf, notice, None))
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
struct SignInForm {
    token: String,
}

async fn sign_in(
    State(ui): State<UiState>,
    CsrfToken(csrf): CsrfToken,
    browser: Browser,
    CsrfForm(form): CsrfForm<SignInForm>,
) -> Response {
    let token = form.token.trim();
    let answer = ui.api.get(&browser, "/v1/admin/me", Some(token)).await;
    if let Err(failure) = answer.into_result() {
        let problem = Problem {
            message: "That staff token does not work: check it, or ask an admin for a new one."
                .into(),
            code: failure.code.clone(),
        };
        let status = if failure.status.is_client_error() {
            failure.status
        } else {
            StatusCode::BAD_GATEWAY
        };
        return render::html(status, &page(&csrf, None, Some(problem)));
    }
    let Some(cookie) = session_cookie(&ui, token) else {
        return render::internal_error();
    };
    let mut response = render::see_other("/console/alerts");
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

async fn sign_out(State(ui): State<UiState>, CsrfForm(_): CsrfForm<Empty>) -> Response {
    let mut response = render::see_other("/console/sign-in?notice=signed-out");
    response.headers_mut().append(
        header::SET_COOKIE,
        cookies::clear(CookieKind::Console, ui.settings()),
    );
    response
}
