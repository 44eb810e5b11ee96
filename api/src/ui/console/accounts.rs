//! Account search by email or phone (`POST /v1/admin/accounts/lookup`: the keyed lookup of the
//! identifier directory, never a scan) and the account page: its sign-in history and its event
//! timeline, redacted by the API as the admin events view is.
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{no_such, safe_id, ConsoleNav, Done, Staff};
use crate::ui::csrf::CsrfForm;
use crate::ui::pages::history::Attempt;
use crate::ui::pages::Problem;
use crate::ui::render;
use crate::ui::UiState;

/// The account routes.
pub fn router() -> Router<UiState> {
    Router::new()
        .route("/console/accounts", get(search_page).post(search))
        .route("/console/accounts/{id}", get(account))
}

/// The search page.
#[derive(Template)]
#[template(path = "console/accounts.html")]
struct SearchPage {
    console: ConsoleNav,
    identifier: String,
    problem: Option<Problem>,
}

async fn search_page(State(ui): State<UiState>, staff: Staff) -> Response {
    let page = SearchPage {
        console: staff.nav("accounts"),
        identifier: String::new(),
        problem: None,
    };
    staff.touch(&ui, render::html(StatusCode::OK, &page))
}

/// The search form (posted, so the email or phone stays out of URLs and logs).
#[derive(Debug, Deserialize)]
struct SearchForm {
    identifier: String,
}

#[derive(Debug, Deserialize)]
struct Found {
    account_id: String,
}

async fn search(
    State(ui): State<UiState>,
    staff: Staff,
    CsrfForm(form): CsrfForm<SearchForm>,
) -> Response {
    let body = json!({ "identifier": form.identifier });
    match staff.post(&ui, "/v1/admin/accounts/lookup", &body).await {
        Err(page) => page,
        Ok(Ok(answer)) => match answer.json::<Found>() {
            Some(found) => staff.touch(
                &ui,
                render::see_other(&format!("/console/accounts/{}", found.account_id)),
            ),
            None => render::internal_error(),
        },
        Ok(Err(failure)) => {
            let page = SearchPage {
                console: staff.nav("accounts"),
                identifier: form.identifier,
                problem: Some(Problem::from(&failure)),
            };
            let status = if failure.status.is_client_error() {
                failure.status
            } else {
                StatusCode::BAD_GATEWAY
            };
            staff.touch(&ui, render::html(status, &page))
        }
    }
}

#[derive(Debug, Deserialize)]
struct AttemptPage {
    entries: Vec<Attempt>,
}

/// One event of the account's timeline, its payload redacted by the API.
#[derive(Debug, Deserialize)]
pub struct Event {
    sequence: i64,
    event_type: String,
    payload: Value,
}

impl Event {
    fn payload_text(&self) -> String {
        serde_json::to_string_pretty(&self.payload).unwrap_or_default()
    }
}

#[derive(Debug, Deserialize)]
struct Timeline {
    events: Vec<Event>,
}

/// The account page.
#[derive(Template)]
#[template(path = "console/account.html")]
struct AccountPage {
    console: ConsoleNav,
    account_id: String,
    attempts: Vec<Attempt>,
    events: Vec<Event>,
    actions: &'static [&'static str],
    done: Option<String>,
}

async fn account(
    State(ui): State<UiState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    let Some(id) = safe_id(&id) else {
        return no_such("account");
    };
    let events = match staff
        .read(&ui, &format!("/v1/admin/accounts/{id}/events?limit=200"))
        .await
    {
        Ok(answer) => match answer.json::<Timeline>() {
            Some(t) => t.events,
            None => return render::internal_error(),
        },
        Err(page) => return page,
    };
    let attempts = match staff
        .read(
            &ui,
            &format!("/v1/admin/login-history?account={id}&limit=50"),
        )
        .await
    {
        Ok(answer) => answer
            .json::<AttemptPage>()
            .map(|p| p.entries)
            .unwrap_or_default(),
        Err(page) => return page,
    };
    let page = AccountPage {
        console: staff.nav("accounts"),
        account_id: id.to_string(),
        attempts,
        events,
        actions: &super::actions::ACTIONS,
        done: q
            .done
            .filter(|d| super::actions::ACTIONS.contains(&d.as_str())),
    };
    staff.touch(&ui, render::html(StatusCode::OK, &page))
}
