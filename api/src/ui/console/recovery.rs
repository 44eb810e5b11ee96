//! The reviewers' queue of lost-2FA recovery cases, with their evidence, and approve or deny
//! with a reason (`/v1/admin/recovery-cases`).
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{no_such, safe_id, when, ConsoleNav, Done, Staff};
use crate::ui::csrf::CsrfForm;
use crate::ui::pages::Problem;
use crate::ui::render;
use crate::ui::UiState;

/// The recovery-case routes.
pub fn router() -> Router<UiState> {
    Router::new()
        .route("/console/recovery-cases", get(list))
        .route("/console/recovery-cases/{id}/{decision}", post(decide))
}

/// A pending case, as the API lists it.
#[derive(Debug, Deserialize)]
pub struct Case {
    case_id: String,
    account_id: String,
    submitted_at: chrono::DateTime<chrono::Utc>,
    evidence: Option<Value>,
}

impl Case {
    fn submitted(&self) -> String {
        when(&self.submitted_at)
    }

    /// The evidence's fields as text (escaped by the template), in the API's order.
    fn evidence_fields(&self) -> Vec<(String, String)> {
        match &self.evidence {
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct CaseList {
    cases: Vec<Case>,
}

/// The queue.
#[derive(Template)]
#[template(path = "console/recovery.html")]
struct QueuePage {
    console: ConsoleNav,
    cases: Vec<Case>,
    notice: Option<&'static str>,
    problem: Option<Problem>,
}

async fn show(
    ui: &UiState,
    staff: &Staff,
    notice: Option<&'static str>,
    problem: Option<Problem>,
) -> Response {
    let answer = match staff.read(ui, "/v1/admin/recovery-cases").await {
        Ok(answer) => answer,
        Err(page) => return page,
    };
    let Some(list) = answer.json::<CaseList>() else {
        return render::internal_error();
    };
    let status = problem
        .as_ref()
        .map_or(StatusCode::OK, |_| StatusCode::UNPROCESSABLE_ENTITY);
    let page = QueuePage {
        console: staff.nav("recovery"),
        cases: list.cases,
        notice,
        problem,
    };
    staff.touch(ui, render::html(status, &page))
}

async fn list(State(ui): State<UiState>, staff: Staff, Query(q): Query<Done>) -> Response {
    let notice = match q.done.as_deref() {
        Some("approve") => Some(
            "Case approved: the hold has started and the account holder is told on every channel.",
        ),
        Some("deny") => Some("Case denied."),
        _ => None,
    };
    show(&ui, &staff, notice, None).await
}

/// The decision form.
#[derive(Debug, Deserialize)]
struct DecisionForm {
    reason: String,
}

async fn decide(
    State(ui): State<UiState>,
    Path((id, decision)): Path<(String, String)>,
    staff: Staff,
    CsrfForm(form): CsrfForm<DecisionForm>,
) -> Response {
    let (Some(id), Some(decision)) = (
        safe_id(&id),
        ["approve", "deny"].into_iter().find(|d| *d == decision),
    ) else {
        return no_such("recovery case");
    };
    let path = format!("/v1/admin/recovery-cases/{id}/{decision}");
    match staff
        .post(&ui, &path, &json!({ "reason": form.reason }))
        .await
    {
        Err(page) => page,
        // A blank reason, a case already decided: the queue with the API's message.
        Ok(Err(failure)) if failure.status.is_client_error() => {
            show(&ui, &staff, None, Some(Problem::from(&failure))).await
        }
        Ok(Err(failure)) => super::failure_page(&failure),
        Ok(Ok(_)) => staff.touch(
            &ui,
            render::see_other(&format!("/console/recovery-cases?done={decision}")),
        ),
    }
}
