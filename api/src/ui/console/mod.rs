//! The staff console at `/console` (issue #21 item 2), on the same layout, cookies
//! ([`super::cookies::CookieKind::Console`], `SameSite=Strict`), CSRF forms and in-process API
//! client as the self-service pages.
//!
//! The console decides nothing: every page calls the staff API (`/v1/admin/*`) with the staff
//! token held in the sealed console cookie, so each role sees exactly what its API role allows
//! (a `403` from the API is shown as a page saying so). The token is checked on every request
//! (`GET /v1/admin/me`): a revoked or expired token ends the console session at once, and so
//! does `GATEHOUSE_CONSOLE_IDLE_SECONDS` without a request.
//!
//! One module per area: [`session`] (sign-in, sign-out), [`alerts`] (list, live feed, detail
//! with evidence, acknowledge and resolve), [`recovery`] (the lost-2FA queue) and [`accounts`]
//! (search by email or phone, the account page), [`actions`] (staff actions on an account),
//! [`logins`] (cross-account login history) and [`staff`] (staff management for admins).
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use serde::Deserialize;

use super::call::{ApiAnswer, ApiFailure, Browser};
use super::cookies::{self, CookieKind};
use super::csrf::CsrfToken;
use super::render;
use super::UiState;

pub mod accounts;
pub mod actions;
pub mod alerts;
pub mod logins;
pub mod recovery;
pub mod session;
pub mod staff;
pub mod timeline;

/// The console's routes, each path under `/console`.
pub fn router() -> Router<UiState> {
    Router::new()
        .merge(session::router())
        .merge(alerts::router())
        .merge(recovery::router())
        .merge(accounts::router())
        .merge(actions::router())
        .merge(logins::router())
        .merge(staff::router())
}

/// Seconds since the epoch.
fn now_secs() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default()
}

/// The console cookie's content: when it was last used, and the staff token.
fn cookie_value(token: &str) -> Vec<u8> {
    format!("{}.{token}", now_secs()).into_bytes()
}

/// The console cookie set for `token`, its idle clock restarted.
pub fn session_cookie(ui: &UiState, token: &str) -> Option<axum::http::HeaderValue> {
    cookies::set(
        CookieKind::Console,
        &cookie_value(token),
        None,
        ui.settings(),
        ui.app.keys(),
    )
}

/// The `?done=` notice a page shows after a form's redirect (each page says which values it
/// knows).
#[derive(Debug, Deserialize)]
pub struct Done {
    /// What was done.
    pub done: Option<String>,
}

/// Why a console request has no session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// No (readable) console cookie.
    Absent,
    /// Idle for longer than `GATEHOUSE_CONSOLE_IDLE_SECONDS`.
    Idle,
    /// The staff token no longer works (revoked, expired).
    TokenGone,
}

/// Back to the console's sign-in page, saying why, with the cookie removed.
fn sign_in_again(ui: &UiState, why: Ended) -> Response {
    let to = match why {
        Ended::Absent => "/console/sign-in",
        Ended::Idle => "/console/sign-in?notice=idle",
        Ended::TokenGone => "/console/sign-in?notice=expired",
    };
    let mut response = render::see_other(to);
    if why != Ended::Absent {
        response.headers_mut().append(
            header::SET_COOKIE,
            cookies::clear(CookieKind::Console, ui.settings()),
        );
    }
    response
}

/// The staff token in the console cookie, if the session is not idle.
fn token_of(parts: &Parts, ui: &UiState) -> Result<String, Ended> {
    let text = cookies::read_text(
        &parts.headers,
        CookieKind::Console,
        ui.settings(),
        ui.app.keys(),
    )
    .ok_or(Ended::Absent)?;
    let (seen, token) = text.split_once('.').ok_or(Ended::Absent)?;
    let seen: u64 = seen.parse().map_err(|_| Ended::Absent)?;
    if now_secs().saturating_sub(seen) > ui.settings().console_idle_seconds {
        return Err(Ended::Idle);
    }
    Ok(token.to_string())
}

/// Who the staff token belongs to (`GET /v1/admin/me`).
#[derive(Debug, Clone, Deserialize)]
pub struct Member {
    /// Display name.
    pub name: String,
    /// Roles.
    pub roles: Vec<String>,
}

/// A console request by a signed-in staff member: the token (checked with the API on this very
/// request), who it belongs to, the CSRF token of the page's forms and the caller for the API.
pub struct Staff {
    token: String,
    /// The member.
    pub member: Member,
    /// The CSRF token of this page's forms.
    pub csrf: String,
    browser: Browser,
}

impl FromRequestParts<UiState> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ui: &UiState) -> Result<Self, Self::Rejection> {
        let token = token_of(parts, ui).map_err(|why| sign_in_again(ui, why))?;
        let CsrfToken(csrf) = CsrfToken::from_request_parts(parts, ui).await?;
        let browser = match Browser::from_request_parts(parts, ui).await {
            Ok(browser) => browser,
            Err(never) => match never {},
        };
        let answer = ui.api.get(&browser, "/v1/admin/me", Some(&token)).await;
        let member = match answer.into_result() {
            Ok(answer) => answer.json::<Member>().ok_or_else(render::internal_error)?,
            Err(f) if f.status == StatusCode::UNAUTHORIZED => {
                return Err(sign_in_again(ui, Ended::TokenGone))
            }
            Err(f) => return Err(failure_page(&f)),
        };
        Ok(Self {
            token,
            member,
            csrf,
            browser,
        })
    }
}

impl Staff {
    /// Calls the staff API as this member: the answer, or the page to show instead (sign in
    /// again when the token stopped working, the refusal page on a `403`).
    pub async fn call(
        &self,
        ui: &UiState,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Result<ApiAnswer, ApiFailure>, Response> {
        let answer = ui
            .api
            .call(&self.browser, method, path, Some(&self.token), body)
            .await;
        match answer.into_result() {
            Err(f) if f.status == StatusCode::UNAUTHORIZED => {
                Err(sign_in_again(ui, Ended::TokenGone))
            }
            Err(f) if f.status == StatusCode::FORBIDDEN => Err(refused(self)),
            other => Ok(other),
        }
    }

    /// `POST path` with a JSON body: as [`Self::call`].
    pub async fn post(
        &self,
        ui: &UiState,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Result<ApiAnswer, ApiFailure>, Response> {
        self.call(ui, Method::POST, path, Some(body)).await
    }

    /// `GET path`: the answer, or the page to show instead.
    pub async fn read(&self, ui: &UiState, path: &str) -> Result<ApiAnswer, Response> {
        match self.call(ui, Method::GET, path, None).await? {
            Ok(answer) => Ok(answer),
            Err(f) => Err(failure_page(&f)),
        }
    }

    /// The raw answer of `GET path` (the live feed, streamed through).
    pub async fn stream(&self, ui: &UiState, path: &str) -> Response {
        ui.api
            .raw(&self.browser, Method::GET, path, Some(&self.token), None)
            .await
    }

    /// The console layout for section `current`.
    pub fn nav(&self, current: &'static str) -> ConsoleNav {
        ConsoleNav {
            name: self.member.name.clone(),
            roles: self.member.roles.join(", "),
            csrf: self.csrf.clone(),
            current,
        }
    }

    /// `response` with the console cookie re-set: the idle clock restarts on every request.
    pub fn touch(&self, ui: &UiState, mut response: Response) -> Response {
        if let Some(cookie) = session_cookie(ui, &self.token) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
    }
}

/// What the console's layout shows in its top bar.
#[derive(Debug, Clone, Default)]
pub struct ConsoleNav {
    /// The member's name.
    pub name: String,
    /// Their roles, comma-separated.
    pub roles: String,
    /// The CSRF token of the sign-out form (and the page's forms).
    pub csrf: String,
    /// The section shown.
    pub current: &'static str,
}

/// The page of an action or view the member's role does not allow (the API said `403`).
#[derive(askama::Template)]
#[template(path = "console/refused.html")]
struct RefusedPage {
    console: ConsoleNav,
}

fn refused(staff: &Staff) -> Response {
    render::html(
        StatusCode::FORBIDDEN,
        &RefusedPage {
            console: staff.nav(""),
        },
    )
}

/// An API error the console does not expect: the message page with its status.
fn failure_page(failure: &ApiFailure) -> Response {
    super::pages::failure_page(failure)
}

/// A path segment taken from the console's URL and put into an API path: ids only (letters,
/// digits, `-`, `_`), so a crafted id cannot reach another API route.
pub fn safe_id(raw: &str) -> Option<&str> {
    (!raw.is_empty()
        && raw.len() <= 200
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then_some(raw)
}

/// The page for a malformed or unknown id in a console URL.
pub fn no_such(what: &str) -> Response {
    render::message(
        StatusCode::NOT_FOUND,
        "Not found",
        &format!("There is no such {what}."),
    )
}

/// When, as the console shows it.
pub fn when(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_only_plain_ids_reach_an_api_path() {
        for ok in [
            "0b0c2f7e-1c1d-4e8f-9a8b-2f9c0e1d2a3b",
            "unknown-ab12",
            "a_b",
        ] {
            assert_eq!(safe_id(ok), Some(ok));
        }
        for bad in ["", "..", "a/b", "a?b=c", "a%2Fb", "a b", &"x".repeat(201)] {
            assert_eq!(safe_id(bad), None, "{bad}");
        }
    }
}
