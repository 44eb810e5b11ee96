//! Alerts: the list filtered by rule, severity and status (updated live by `console.js` from
//! the alerts feed, and by reloading without JavaScript), the detail with its evidence events
//! (redacted as the admin events view redacts them), acknowledge and resolve.
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{no_such, safe_id, when, ConsoleNav, Staff};
use crate::ui::csrf::CsrfForm;
use crate::ui::pages::Problem;
use crate::ui::render;
use crate::ui::UiState;

/// Evidence events shown with their payload on the detail page (the rest are listed by id).
const EVIDENCE_SHOWN: usize = 20;

/// The alert routes.
pub fn router() -> Router<UiState> {
    Router::new()
        .route("/console/alerts", get(list))
        .route("/console/alerts/stream", get(stream))
        .route("/console/alerts/{id}", get(detail))
        .route("/console/alerts/{id}/acknowledge", post(acknowledge))
        .route("/console/alerts/{id}/resolve", post(resolve))
}

/// The list's filters, as the page's query and as the API's.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Filters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<String>,
}

impl Filters {
    /// Empty fields (the form's "any") dropped.
    fn cleaned(self) -> Self {
        let keep = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        Self {
            rule: keep(self.rule),
            severity: keep(self.severity),
            status: keep(self.status),
        }
    }

    fn is(&self, field: &str, value: &str) -> bool {
        let v = match field {
            "rule" => &self.rule,
            "severity" => &self.severity,
            _ => &self.status,
        };
        v.as_deref() == Some(value)
    }
}

/// Rules, severities and statuses the filters offer (the API's own lists).
const RULES: [&str; 10] = [
    "brute_force",
    "credential_stuffing",
    "password_spraying",
    "new_device_sign_in",
    "new_ip_sign_in",
    "sign_in_after_recovery",
    "code_guessing",
    "recovery_burst",
    "lockout_storm",
    "webauthn_counter_regression",
];
const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];
const STATUSES: [&str; 3] = ["open", "acknowledged", "resolved"];

/// One evidence event, as the API lists it.
#[derive(Debug, Deserialize)]
pub struct Evidence {
    aggregate_id: String,
    sequence: i64,
    at: chrono::DateTime<chrono::Utc>,
}

/// An alert, as the API lists it.
#[derive(Debug, Deserialize)]
pub struct Alert {
    id: String,
    rule: String,
    severity: String,
    subject: String,
    first_seen: chrono::DateTime<chrono::Utc>,
    last_seen: chrono::DateTime<chrono::Utc>,
    count: i64,
    status: String,
    status_note: Option<String>,
    status_by: Option<String>,
    #[serde(default)]
    evidence: Vec<Evidence>,
}

impl Alert {
    fn first(&self) -> String {
        when(&self.first_seen)
    }

    fn last(&self) -> String {
        when(&self.last_seen)
    }

    fn severity_badge(&self) -> &'static str {
        match self.severity.as_str() {
            "critical" | "high" => "danger",
            "medium" => "warn",
            _ => "info",
        }
    }

    fn status_badge(&self) -> &'static str {
        match self.status.as_str() {
            "open" => "warn",
            "resolved" => "ok",
            _ => "info",
        }
    }
}

#[derive(Debug, Deserialize)]
struct AlertPage {
    alerts: Vec<Alert>,
}

/// The alert list.
#[derive(Template)]
#[template(path = "console/alerts.html")]
struct ListPage {
    console: ConsoleNav,
    alerts: Vec<Alert>,
    filters: Filters,
    rules: &'static [&'static str],
    severities: &'static [&'static str],
    statuses: &'static [&'static str],
    problem: Option<Problem>,
}

async fn list(State(ui): State<UiState>, staff: Staff, Query(filters): Query<Filters>) -> Response {
    let filters = filters.cleaned();
    let query = serde_urlencoded::to_string(&filters).unwrap_or_default();
    let path = format!("/v1/admin/alerts?limit=100&{query}");
    let (alerts, problem) = match staff.call(&ui, Method::GET, &path, None).await {
        Err(page) => return page,
        Ok(Ok(answer)) => match answer.json::<AlertPage>() {
            Some(page) => (page.alerts, None),
            None => return render::internal_error(),
        },
        // A filter the API refused (400): the page with its message, and no alerts.
        Ok(Err(failure)) => (Vec::new(), Some(Problem::from(&failure))),
    };
    let page = ListPage {
        console: staff.nav("alerts"),
        alerts,
        filters,
        rules: &RULES,
        severities: &SEVERITIES,
        statuses: &STATUSES,
        problem,
    };
    staff.touch(&ui, render::html(StatusCode::OK, &page))
}

/// The live feed: the API's alert stream, passed through for `console.js` (an `EventSource`
/// cannot send the bearer token; the console cookie stands for it, on this origin only).
async fn stream(State(ui): State<UiState>, staff: Staff) -> Response {
    staff.stream(&ui, "/v1/admin/alerts/stream").await
}

/// One evidence event with its (redacted) payload.
pub struct EvidenceEvent {
    evidence: Evidence,
    event_type: String,
    payload: String,
}

impl EvidenceEvent {
    fn at(&self) -> String {
        when(&self.evidence.at)
    }
}

#[derive(Debug, Deserialize)]
struct TimelineEvent {
    sequence: i64,
    event_type: String,
    payload: Value,
}

#[derive(Debug, Deserialize)]
struct Timeline {
    events: Vec<TimelineEvent>,
}

/// The alert detail.
#[derive(Template)]
#[template(path = "console/alert.html")]
struct DetailPage {
    console: ConsoleNav,
    alert: Alert,
    events: Vec<EvidenceEvent>,
    more: usize,
}

/// The evidence event `e` with its payload as the admin events view shows it (redacted by the
/// API), or its id alone when the member may not read events.
async fn evidence_event(ui: &UiState, staff: &Staff, e: Evidence) -> EvidenceEvent {
    let found = match safe_id(&e.aggregate_id) {
        Some(id) => {
            let path = format!(
                "/v1/admin/accounts/{id}/events?after={}&limit=1",
                (e.sequence - 1).max(0)
            );
            match staff.call(ui, Method::GET, &path, None).await {
                Ok(Ok(answer)) => answer
                    .json::<Timeline>()
                    .and_then(|t| t.events.into_iter().find(|ev| ev.sequence == e.sequence)),
                _ => None,
            }
        }
        None => None,
    };
    match found {
        Some(event) => EvidenceEvent {
            evidence: e,
            event_type: event.event_type,
            payload: serde_json::to_string_pretty(&event.payload).unwrap_or_default(),
        },
        None => EvidenceEvent {
            evidence: e,
            event_type: "(not shown)".into(),
            payload: String::new(),
        },
    }
}

async fn detail(State(ui): State<UiState>, staff: Staff, Path(id): Path<String>) -> Response {
    let Some(id) = safe_id(&id) else {
        return no_such("alert");
    };
    let answer = match staff.read(&ui, &format!("/v1/admin/alerts/{id}")).await {
        Ok(answer) => answer,
        Err(page) => return page,
    };
    let Some(mut alert) = answer.json::<Alert>() else {
        return render::internal_error();
    };
    let evidence = std::mem::take(&mut alert.evidence);
    let more = evidence.len().saturating_sub(EVIDENCE_SHOWN);
    let mut events = Vec::new();
    for e in evidence.into_iter().take(EVIDENCE_SHOWN) {
        events.push(evidence_event(&ui, &staff, e).await);
    }
    let page = DetailPage {
        console: staff.nav("alerts"),
        alert,
        events,
        more,
    };
    staff.touch(&ui, render::html(StatusCode::OK, &page))
}

/// The note of a status change.
#[derive(Debug, Deserialize)]
struct NoteForm {
    note: Option<String>,
}

async fn change(
    ui: UiState,
    staff: Staff,
    id: String,
    action: &str,
    note: Option<String>,
) -> Response {
    let Some(id) = safe_id(&id) else {
        return no_such("alert");
    };
    let note = note
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{action} in the console"));
    let path = format!("/v1/admin/alerts/{id}/{action}");
    match staff.post(&ui, &path, &json!({ "note": note })).await {
        Err(page) => page,
        Ok(Err(failure)) => super::failure_page(&failure),
        Ok(Ok(_)) => staff.touch(&ui, render::see_other(&format!("/console/alerts/{id}"))),
    }
}

async fn acknowledge(
    State(ui): State<UiState>,
    Path(id): Path<String>,
    staff: Staff,
    CsrfForm(form): CsrfForm<NoteForm>,
) -> Response {
    change(ui, staff, id, "acknowledge", form.note).await
}

async fn resolve(
    State(ui): State<UiState>,
    Path(id): Path<String>,
    staff: Staff,
    CsrfForm(form): CsrfForm<NoteForm>,
) -> Response {
    change(ui, staff, id, "resolve", form.note).await
}
