//! Cross-account login history (`GET /v1/admin/login-history`: analyst, auditor, admin): the
//! latest sign-in attempts of every account, filtered by account and IP as the API allows,
//! newest first, a page at a time.
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::{when, ConsoleNav, Staff};
use crate::ui::pages::Problem;
use crate::ui::render;
use crate::ui::UiState;

/// Attempts per page.
const PAGE: &str = "50";

/// The login-history route.
pub fn router() -> Router<UiState> {
    Router::new().route("/console/login-history", get(history))
}

/// One attempt, as the API lists it.
#[derive(Debug, Deserialize)]
pub struct Entry {
    account_id: String,
    at: chrono::DateTime<chrono::Utc>,
    outcome: String,
    reason: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    door: String,
}

impl Entry {
    fn at(&self) -> String {
        when(&self.at)
    }

    fn badge(&self) -> &'static str {
        match self.outcome.as_str() {
            "succeeded" => "ok",
            "locked" => "danger",
            _ => "warn",
        }
    }

    /// Whether the account column links to an account page (stand-ins for unknown
    /// identifiers have none).
    fn known(&self) -> bool {
        !self.account_id.starts_with("unknown-")
    }
}

#[derive(Debug, Deserialize)]
struct EntryPage {
    entries: Vec<Entry>,
    next_cursor: Option<String>,
}

/// The filters (a `GET` form, so a filtered view can be linked) and the page's cursor.
#[derive(Debug, Deserialize)]
struct Filter {
    account: Option<String>,
    ip: Option<String>,
    cursor: Option<String>,
}

/// A filter's value: trimmed, `None` when blank.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl Filter {
    /// The API's query for this filter (every value URL-encoded).
    fn api_query(&self) -> String {
        let mut pairs = vec![("limit", PAGE)];
        for (key, value) in [
            ("account", &self.account),
            ("ip", &self.ip),
            ("cursor", &self.cursor),
        ] {
            if let Some(v) = given(value) {
                pairs.push((key, v));
            }
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    /// The console's query for the next page.
    fn next_query(&self, cursor: &str) -> String {
        let mut pairs = Vec::new();
        for (key, value) in [("account", &self.account), ("ip", &self.ip)] {
            if let Some(v) = given(value) {
                pairs.push((key, v));
            }
        }
        pairs.push(("cursor", cursor));
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// The page.
#[derive(Template)]
#[template(path = "console/logins.html")]
struct HistoryPage {
    console: ConsoleNav,
    account: String,
    ip: String,
    entries: Vec<Entry>,
    next: Option<String>,
    problem: Option<Problem>,
}

async fn history(
    State(ui): State<UiState>,
    staff: Staff,
    Query(filter): Query<Filter>,
) -> Response {
    let path = format!("/v1/admin/login-history?{}", filter.api_query());
    let (status, entries, next, problem) =
        match staff.call(&ui, axum::http::Method::GET, &path, None).await {
            Err(page) => return page,
            // A bad cursor or filter: the form again with the API's message.
            Ok(Err(failure)) if failure.status.is_client_error() => (
                failure.status,
                Vec::new(),
                None,
                Some(Problem::from(&failure)),
            ),
            Ok(Err(failure)) => return super::failure_page(&failure),
            Ok(Ok(answer)) => match answer.json::<EntryPage>() {
                Some(page) => (
                    StatusCode::OK,
                    page.entries,
                    page.next_cursor.map(|c| filter.next_query(&c)),
                    None,
                ),
                None => return render::internal_error(),
            },
        };
    let page = HistoryPage {
        console: staff.nav("logins"),
        account: given(&filter.account).unwrap_or_default().to_string(),
        ip: given(&filter.ip).unwrap_or_default().to_string(),
        entries,
        next,
        problem,
    };
    staff.touch(&ui, render::html(status, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_filter_values_are_encoded_into_the_api_query() {
        let filter = Filter {
            account: Some(" a&b=c ".into()),
            ip: Some(String::new()),
            cursor: None,
        };
        assert_eq!(filter.api_query(), "limit=50&account=a%26b%3Dc");
        assert_eq!(filter.next_query("1.2.x"), "account=a%26b%3Dc&cursor=1.2.x");
    }
}
