//! Alerts: list, detail, acknowledge, resolve and the live feed.
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use chrono::{DateTime, Utc};
use gatehouse_domain::staff::{AlertStatus, StaffCommand};
use gatehouse_projections::alerts::query::{self, AlertFilter, AlertRow, EvidenceRow};
use gatehouse_projections::alerts::Rule;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{bad_query, limit_of, time};
use crate::error::ApiError;
use crate::metadata::metadata;
use crate::routes::ApiJson;
use crate::staff::{ManageAlerts, Staff};
use crate::state::AppState;

/// Evidence events listed with each alert in a page.
const PAGE_EVIDENCE: i64 = 100;
/// Evidence events listed by the alert detail.
const DETAIL_EVIDENCE: i64 = 10_000;

/// One event given as evidence.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvidenceView {
    /// Aggregate id (an account, or the `unknown-<lookup>` stand-in of an unknown identifier).
    pub aggregate_id: String,
    /// Sequence of the event in that aggregate.
    pub sequence: i64,
    /// Event time.
    pub at: DateTime<Utc>,
}

impl From<EvidenceRow> for EvidenceView {
    fn from(r: EvidenceRow) -> Self {
        Self {
            aggregate_id: r.aggregate_id,
            sequence: r.sequence,
            at: time(r.at_ms),
        }
    }
}

/// An alert.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertView {
    /// Alert id.
    pub id: String,
    /// Rule that raised it.
    pub rule: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// `account:<id>`, `identifier:<lookup hash>`, `ip:<address>`, `net:<cidr>` or `global`.
    pub subject: String,
    /// Time of the earliest evidence.
    pub first_seen: DateTime<Utc>,
    /// Time of the latest evidence.
    pub last_seen: DateTime<Utc>,
    /// Number of evidence events.
    pub count: i64,
    /// `open`, `acknowledged` or `resolved`.
    pub status: String,
    /// Note of the last status change.
    pub status_note: Option<String>,
    /// Staff id that made the last status change.
    pub status_by: Option<String>,
    /// Version of the thresholds that produced it.
    pub policy_version: String,
    /// Evidence events, oldest first (at most 100 in a list; see the detail for all).
    pub evidence: Vec<EvidenceView>,
}

fn view(row: AlertRow, evidence: Vec<EvidenceRow>) -> AlertView {
    AlertView {
        id: row.id,
        rule: row.rule,
        severity: row.severity,
        subject: row.subject,
        first_seen: time(row.first_seen_ms),
        last_seen: time(row.last_seen_ms),
        count: row.count,
        status: row.status,
        status_note: row.status_note,
        status_by: row.status_by,
        policy_version: row.policy_version,
        evidence: evidence.into_iter().map(EvidenceView::from).collect(),
    }
}

/// Filters and paging of the alert list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// Rule name (`brute_force`, `credential_stuffing`, `password_spraying`,
    /// `new_device_sign_in`, `new_ip_sign_in`, `sign_in_after_recovery`, `code_guessing`,
    /// `recovery_burst`, `lockout_storm`, `webauthn_counter_regression`).
    pub rule: Option<String>,
    /// `low`, `medium`, `high`, `critical`.
    pub severity: Option<String>,
    /// `open`, `acknowledged`, `resolved`.
    pub status: Option<String>,
    /// Exact subject, e.g. `ip:203.0.113.7`.
    pub subject: Option<String>,
    /// Alerts with evidence at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Alerts with evidence at or before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Alerts per page, 1 to 100 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of alerts, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    /// Alerts.
    pub alerts: Vec<AlertView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Lists alerts (analyst, admin).
#[utoipa::path(get, path = "/v1/admin/alerts", tag = "admin", security(("bearer" = [])), params(AlertQuery),
    responses((status = 200, body = AlertPage), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_alerts(
    State(state): State<AppState>,
    staff: Staff<ManageAlerts>,
    query: Result<Query<AlertQuery>, QueryRejection>,
) -> Result<Json<AlertPage>, ApiError> {
    let Query(q) = query.map_err(bad_query)?;
    let limit = limit_of(q.limit, 50, 100)?;
    if let Some(rule) = &q.rule {
        if !Rule::ALL.iter().any(|r| r.name() == rule) {
            return Err(ApiError::bad_request("unknown rule").with_field("rule"));
        }
    }
    let before = match &q.cursor {
        Some(c) => Some(
            c.split_once('.')
                .and_then(|(ms, id)| Some((ms.parse::<i64>().ok()?, id.to_string())))
                .ok_or_else(|| ApiError::bad_request("invalid cursor").with_field("cursor"))?,
        ),
        None => None,
    };
    let filter = AlertFilter {
        rule: q.rule.clone(),
        severity: q.severity.clone(),
        status: q.status.clone(),
        subject: q.subject.clone(),
        from_ms: q.from.map(|t| t.timestamp_millis()),
        to_ms: q.to.map(|t| t.timestamp_millis()),
        before,
    };
    staff
        .record(
            &state,
            "alerts.list",
            format!(
                "rule={} severity={} status={} subject={}",
                q.rule.as_deref().unwrap_or("*"),
                q.severity.as_deref().unwrap_or("*"),
                q.status.as_deref().unwrap_or("*"),
                q.subject.as_deref().unwrap_or("*")
            ),
        )
        .await?;
    let rows = query::list_alerts(state.store().reads(), &filter, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<AlertRow> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = if more {
        rows.last().map(|r| format!("{}.{}", r.first_seen_ms, r.id))
    } else {
        None
    };
    let mut alerts = Vec::with_capacity(rows.len());
    for row in rows {
        let evidence = query::evidence(state.store().reads(), &row.id, PAGE_EVIDENCE).await?;
        alerts.push(view(row, evidence));
    }
    Ok(Json(AlertPage {
        alerts,
        next_cursor,
    }))
}

/// The alert `id` from `pool`: the read pool for a view, the primary's for a status change.
async fn find_alert(pool: &sqlx::AnyPool, id: &str) -> Result<AlertRow, ApiError> {
    query::get_alert(pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such alert"))
}

/// One alert with all its evidence (analyst, admin).
#[utoipa::path(get, path = "/v1/admin/alerts/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Alert id")),
    responses((status = 200, body = AlertView), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_alert(
    State(state): State<AppState>,
    staff: Staff<ManageAlerts>,
    Path(id): Path<String>,
) -> Result<Json<AlertView>, ApiError> {
    staff.record(&state, "alerts.get", id.clone()).await?;
    let row = find_alert(state.store().reads(), &id).await?;
    let evidence = query::evidence(state.store().reads(), &id, DETAIL_EVIDENCE).await?;
    Ok(Json(view(row, evidence)))
}

/// A status change's note.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusNote {
    /// Why (kept with the change; at most 500 characters are kept).
    pub note: String,
}

/// A status change accepted.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusChanged {
    /// The alert.
    pub alert_id: String,
    /// Its new status (the read model shows it once the event is applied).
    pub status: String,
}

async fn change_status(
    state: &AppState,
    staff: &Staff<ManageAlerts>,
    id: String,
    note: String,
    status: AlertStatus,
) -> Result<(StatusCode, Json<StatusChanged>), ApiError> {
    if note.trim().is_empty() {
        return Err(ApiError::bad_request("a note is required").with_field("note"));
    }
    let alert = find_alert(state.store().any(), &id).await?;
    if alert.status == AlertStatus::Resolved.as_str() {
        return Err(ApiError::other(
            StatusCode::CONFLICT,
            "alert_resolved",
            "the alert is already resolved",
        ));
    }
    let at = Utc::now();
    state
        .staff()
        .execute(
            &staff.id,
            || StaffCommand::ChangeAlertStatus {
                alert_id: id.clone(),
                status,
                note: note.clone(),
                at,
            },
            metadata(),
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(StatusChanged {
            alert_id: id,
            status: status.as_str().to_string(),
        }),
    ))
}

/// Acknowledges an alert (analyst, admin): an `AlertStatusChanged` event by the caller.
#[utoipa::path(post, path = "/v1/admin/alerts/{id}/acknowledge", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Alert id")), request_body = StatusNote,
    responses((status = 202, body = StatusChanged), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn acknowledge(
    State(state): State<AppState>,
    staff: Staff<ManageAlerts>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StatusNote>,
) -> Result<(StatusCode, Json<StatusChanged>), ApiError> {
    change_status(&state, &staff, id, body.note, AlertStatus::Acknowledged).await
}

/// Resolves an alert (analyst, admin): later evidence opens a new alert.
#[utoipa::path(post, path = "/v1/admin/alerts/{id}/resolve", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Alert id")), request_body = StatusNote,
    responses((status = 202, body = StatusChanged), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn resolve(
    State(state): State<AppState>,
    staff: Staff<ManageAlerts>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StatusNote>,
) -> Result<(StatusCode, Json<StatusChanged>), ApiError> {
    change_status(&state, &staff, id, body.note, AlertStatus::Resolved).await
}

/// Live feed of new and changed alerts as Server-Sent Events (analyst, admin): each `alert`
/// event carries the alert (without evidence) as JSON; a comment every 15 s keeps it open.
#[utoipa::path(get, path = "/v1/admin/alerts/stream", tag = "admin", security(("bearer" = [])),
    responses((status = 200, content_type = "text/event-stream", description = "`event: alert` with an AlertView (evidence omitted)"),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn alerts_stream(
    State(state): State<AppState>,
    staff: Staff<ManageAlerts>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    staff.record(&state, "alerts.stream", String::new()).await?;
    let start = query::alerts_head(state.store().reads()).await?;
    let progress = state.runner().progress();
    let closing = state.closing();
    let stream = futures::stream::unfold(
        (state, progress, closing, start, VecDeque::<Event>::new()),
        |(state, mut progress, mut closing, mut cursor, mut pending)| async move {
            loop {
                if *closing.borrow() {
                    return None;
                }
                if let Some(event) = pending.pop_front() {
                    return Some((Ok(event), (state, progress, closing, cursor, pending)));
                }
                // Woken by this process's runner; the poll catches other processes' changes.
                tokio::select! {
                    changed = progress.changed() => if changed.is_err() { return None; },
                    _ = closing.changed() => return None,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                match query::alerts_changed_after(state.store().reads(), cursor, 100).await {
                    Ok(rows) => {
                        for row in rows {
                            cursor = row.updated;
                            let id = row.id.clone();
                            if let Ok(event) = Event::default()
                                .event("alert")
                                .id(id)
                                .json_data(view(row, Vec::new()))
                            {
                                pending.push_back(event);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "alert feed query failed");
                        return None;
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(list_alerts))
        .routes(utoipa_axum::routes!(alerts_stream))
        .routes(utoipa_axum::routes!(get_alert))
        .routes(utoipa_axum::routes!(acknowledge))
        .routes(utoipa_axum::routes!(resolve))
}
