//! Account search by email or phone (`POST /v1/admin/accounts/lookup`: the keyed lookup of the
//! identifier directory, never a scan) and the account page: its sign-in history, a chart of its
//! events per day ([`super::timeline`]) and its latest events (newest first, paged back with
//! `?before=`), redacted by the API as the admin events view is.
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::timeline::{self, Chart, Kind};
use super::{no_such, safe_id, when, ConsoleNav, Staff};
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
    recorded_at: DateTime<Utc>,
    payload: Value,
}

impl Event {
    fn payload_text(&self) -> String {
        serde_json::to_string_pretty(&self.payload).unwrap_or_default()
    }

    fn at(&self) -> String {
        when(&self.recorded_at)
    }

    /// The chart's class of the event, so the list marks it as the chart does.
    fn kind(&self) -> &'static str {
        Kind::of(&self.event_type).class()
    }
}

/// A page of the timeline, newest first (`order=desc`).
#[derive(Debug, Deserialize)]
struct Timeline {
    events: Vec<Event>,
    next_before: Option<i64>,
}

/// Events listed on the account page, newest first.
const EVENTS_SHOWN: usize = 200;
/// Events per API read (the API's largest page).
const READ_PAGE: usize = 500;
/// At most this many reads for the chart: a busier account's chart says it is partial.
const CHART_READS: usize = 4;

/// The account page.
#[derive(Template)]
#[template(path = "console/account.html")]
struct AccountPage {
    console: ConsoleNav,
    account_id: String,
    attempts: Vec<Attempt>,
    events: Vec<Event>,
    /// `before` of the next, older page of the list.
    older: Option<i64>,
    /// Whether the list starts below the latest event.
    paged: bool,
    chart: Chart,
    chart_width: u32,
    chart_height: u32,
    actions: &'static [&'static str],
    done: Option<String>,
}

/// The account page's query: the notice of a staff action, and the list's page.
#[derive(Debug, Deserialize)]
struct AccountQuery {
    done: Option<String>,
    before: Option<String>,
}

/// The page `before` of the timeline, newest first (the latest events without `before`).
async fn timeline(
    ui: &UiState,
    staff: &Staff,
    id: &str,
    before: Option<i64>,
    limit: usize,
) -> Result<Timeline, Response> {
    let before = before.map(|b| format!("&before={b}")).unwrap_or_default();
    let path = format!("/v1/admin/accounts/{id}/events?order=desc&limit={limit}{before}");
    match staff.read(ui, &path).await?.json::<Timeline>() {
        Some(t) => Ok(t),
        None => Err(render::internal_error()),
    }
}

/// The chart of the last [`timeline::DAYS`] days and the latest page of events: read newest
/// first until the period is covered (or [`CHART_READS`] reads). The list is the first
/// [`EVENTS_SHOWN`] of them.
async fn latest(ui: &UiState, staff: &Staff, id: &str) -> Result<(Chart, Timeline), Response> {
    let now = Utc::now();
    let since = now - chrono::Duration::days(timeline::DAYS as i64);
    let mut first = timeline(ui, staff, id, None, READ_PAGE).await?;
    let mut older = Vec::new();
    let mut next = first.next_before;
    let mut reads = 1;
    let covered = |events: &[Event], first: &[Event]| {
        events
            .last()
            .or(first.last())
            .is_none_or(|e| e.recorded_at < since)
    };
    while let Some(before) = next {
        if covered(&older, &first.events) || reads == CHART_READS {
            break;
        }
        let page = timeline(ui, staff, id, Some(before), READ_PAGE).await?;
        reads += 1;
        next = page.next_before;
        older.extend(page.events);
    }
    let partial = next.is_some() && !covered(&older, &first.events);
    let chart = Chart::new(
        first
            .events
            .iter()
            .chain(&older)
            .map(|e| (e.recorded_at, e.event_type.as_str())),
        now,
        partial,
    );
    if first.events.len() > EVENTS_SHOWN {
        first.next_before = first.events.get(EVENTS_SHOWN - 1).map(|e| e.sequence);
        first.events.truncate(EVENTS_SHOWN);
    }
    Ok((chart, first))
}

async fn account(
    State(ui): State<UiState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<AccountQuery>,
) -> Response {
    let Some(id) = safe_id(&id) else {
        return no_such("account");
    };
    let before = q
        .before
        .and_then(|b| b.parse::<i64>().ok())
        .filter(|b| *b >= 1);
    let (chart, list) = match latest(&ui, &staff, id).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    // An older page of the list: the chart stays the latest days'.
    let list = match before {
        Some(b) => match timeline(&ui, &staff, id, Some(b), EVENTS_SHOWN).await {
            Ok(t) => t,
            Err(page) => return page,
        },
        None => list,
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
        events: list.events,
        older: list.next_before,
        paged: before.is_some(),
        chart,
        chart_width: timeline::WIDTH,
        chart_height: timeline::HEIGHT,
        actions: &super::actions::ACTIONS,
        done: q
            .done
            .filter(|d| super::actions::ACTIONS.contains(&d.as_str())),
    };
    staff.touch(&ui, render::html(StatusCode::OK, &page))
}
