//! Login history and security activity (`/account/history`), with the activity export (CSV or
//! JSON, streamed through from `GET /v1/me/activity/export`). Every value (user agents, device
//! ids: written by whoever signed in) is escaped by the template: text, never markup.
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::{failure_page, sign_in_again, SignedIn};
use crate::ui::render::{self, Nav};
use crate::ui::UiState;

fn when(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// One sign-in attempt (as `/v1/me/login-history` and the staff login history list it; the
/// console's account page shows them too).
#[derive(Debug, Deserialize)]
pub struct Attempt {
    pub(crate) at: chrono::DateTime<chrono::Utc>,
    pub(crate) outcome: String,
    pub(crate) reason: Option<String>,
    pub(crate) ip: Option<String>,
    pub(crate) user_agent: Option<String>,
}

impl Attempt {
    pub(crate) fn at(&self) -> String {
        when(&self.at)
    }

    pub(crate) fn badge(&self) -> &'static str {
        match self.outcome.as_str() {
            "succeeded" => "ok",
            "locked" => "danger",
            _ => "warn",
        }
    }
}

#[derive(Debug, Deserialize)]
struct AttemptPage {
    entries: Vec<Attempt>,
}

/// One security event.
#[derive(Debug, Deserialize)]
pub struct Activity {
    at: chrono::DateTime<chrono::Utc>,
    kind: String,
    outcome: String,
    ip: Option<String>,
    user_agent: Option<String>,
    detail: String,
}

impl Activity {
    fn at(&self) -> String {
        when(&self.at)
    }
}

#[derive(Debug, Deserialize)]
struct ActivityPage {
    entries: Vec<Activity>,
}

/// The history page.
#[derive(Template)]
#[template(path = "self/history.html")]
pub struct HistoryPage {
    nav: Nav,
    attempts: Vec<Attempt>,
    activity: Vec<Activity>,
}

async fn page(State(ui): State<UiState>, me: SignedIn) -> Response {
    let attempts = match me.read(&ui, "/v1/me/login-history?limit=50").await {
        Ok(a) => a.json::<AttemptPage>(),
        Err(page) => return page,
    };
    let activity = match me.read(&ui, "/v1/me/activity?limit=50").await {
        Ok(a) => a.json::<ActivityPage>(),
        Err(page) => return page,
    };
    let (Some(attempts), Some(activity)) = (attempts, activity) else {
        return render::internal_error();
    };
    render::html(
        StatusCode::OK,
        &HistoryPage {
            nav: me.nav("history"),
            attempts: attempts.entries,
            activity: activity.entries,
        },
    )
}

/// The export's format.
#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
}

/// The activity export, streamed through with the API's content type and file name.
async fn export(State(ui): State<UiState>, me: SignedIn, Query(q): Query<ExportQuery>) -> Response {
    let format = match q.format.as_deref() {
        Some("json") => "json",
        _ => "csv",
    };
    let path = format!("/v1/me/activity/export?format={format}");
    let answer = ui
        .api
        .raw(&me.browser, Method::GET, &path, Some(&me.token), None)
        .await;
    if answer.status() == StatusCode::UNAUTHORIZED {
        return sign_in_again(&ui);
    }
    if !answer.status().is_success() {
        let failure = crate::ui::call::ApiAnswer {
            status: answer.status(),
            retry_after: answer.headers().get(header::RETRY_AFTER).cloned(),
            body: serde_json::Value::Null,
        }
        .failure();
        return match failure {
            Some(f) => failure_page(&f),
            None => render::internal_error(),
        };
    }
    let mut response = StatusCode::OK.into_response();
    for name in [header::CONTENT_TYPE, header::CONTENT_DISPOSITION] {
        if let Some(value) = answer.headers().get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    *response.body_mut() = answer.into_body();
    response
}

/// The routes of the history page.
pub fn router() -> Router<UiState> {
    Router::new()
        .route("/account/history", get(page))
        .route("/account/history/export", get(export))
}
