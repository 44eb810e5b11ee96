//! The analysts' and admins' API under `/v1/admin`: alerts (list, detail, acknowledge, resolve,
//! live feed), login history across accounts, raw account timelines, and staff creation.
//!
//! Every handler takes a `Staff<P>` extractor (401 without a staff token, 403 without a role
//! holding `P`) and records what the member looked at or changed as an event on their `Staff`
//! aggregate.
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use chrono::{DateTime, Utc};
use gatehouse_domain::staff::{AlertStatus, StaffCommand, StaffRole};
use gatehouse_projections::alerts::query::{
    self, AlertFilter, AlertRow, EvidenceRow, LoginFilter, LoginRow,
};
use gatehouse_projections::alerts::Rule;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::{metadata, store_error, ApiJson};
use crate::error::ApiError;
use crate::staff::{
    staff_execute_error, ManageAlerts, ManageStaff, ReadEvents, ReadLoginHistory, Staff,
};
use crate::state::AppState;

/// Evidence events listed with each alert in a page.
const PAGE_EVIDENCE: i64 = 100;
/// Evidence events listed by the alert detail.
const DETAIL_EVIDENCE: i64 = 10_000;

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn limit_of(limit: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(
            ApiError::bad_request(format!("limit must be between 1 and {max}")).with_field("limit"),
        );
    }
    Ok(limit)
}

fn bad_query(_: QueryRejection) -> ApiError {
    ApiError::bad_request("invalid query parameters")
}

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
    let rows = query::list_alerts(state.store(), &filter, limit + 1)
        .await
        .map_err(store_error)?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<AlertRow> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = if more {
        rows.last().map(|r| format!("{}.{}", r.first_seen_ms, r.id))
    } else {
        None
    };
    let mut alerts = Vec::with_capacity(rows.len());
    for row in rows {
        let evidence = query::evidence(state.store(), &row.id, PAGE_EVIDENCE)
            .await
            .map_err(store_error)?;
        alerts.push(view(row, evidence));
    }
    Ok(Json(AlertPage {
        alerts,
        next_cursor,
    }))
}

async fn find_alert(state: &AppState, id: &str) -> Result<AlertRow, ApiError> {
    query::get_alert(state.store(), id)
        .await
        .map_err(store_error)?
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
    let row = find_alert(&state, &id).await?;
    let evidence = query::evidence(state.store(), &id, DETAIL_EVIDENCE)
        .await
        .map_err(store_error)?;
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
    let alert = find_alert(state, &id).await?;
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
        .await
        .map_err(staff_execute_error)?;
    state.runner().nudge();
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
    let start = query::alerts_head(state.store())
        .await
        .map_err(store_error)?;
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
                match query::alerts_changed_after(state.store(), cursor, 100).await {
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

/// Filters and paging of the cross-account login history.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginHistoryQuery {
    /// One account id (or `unknown-<lookup>` stand-in).
    pub account: Option<String>,
    /// One client IP.
    pub ip: Option<String>,
    /// At or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// At or before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Entries per page, 1 to 500 (default 100).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One sign-in attempt of any account.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminLoginEntry {
    /// Account (or `unknown-<lookup>` stand-in).
    pub account_id: String,
    /// Event sequence in that aggregate.
    pub sequence: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// `succeeded`, `failed` or `locked`.
    pub outcome: String,
    /// Failure reason.
    pub reason: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// Device id.
    pub device_id: Option<String>,
    /// The lockout door the attempt went through: `untrusted` (no valid device token) or
    /// `device` (the trusted device `trusted_device_id`).
    pub door: String,
    /// The trusted device, for attempts through its door.
    pub trusted_device_id: Option<String>,
}

/// A page of login history, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminLoginPage {
    /// Entries.
    pub entries: Vec<AdminLoginEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Login history across accounts, by account, IP and time (analyst, auditor, admin).
#[utoipa::path(get, path = "/v1/admin/login-history", tag = "admin", security(("bearer" = [])), params(LoginHistoryQuery),
    responses((status = 200, body = AdminLoginPage), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn login_history(
    State(state): State<AppState>,
    staff: Staff<ReadLoginHistory>,
    query: Result<Query<LoginHistoryQuery>, QueryRejection>,
) -> Result<Json<AdminLoginPage>, ApiError> {
    let Query(q) = query.map_err(bad_query)?;
    let limit = limit_of(q.limit, 100, 500)?;
    let before = match &q.cursor {
        Some(c) => {
            let mut parts = c.splitn(3, '.');
            let parsed = (|| {
                let ms = parts.next()?.parse::<i64>().ok()?;
                let seq = parts.next()?.parse::<i64>().ok()?;
                Some((ms, parts.next()?.to_string(), seq))
            })();
            Some(
                parsed
                    .ok_or_else(|| ApiError::bad_request("invalid cursor").with_field("cursor"))?,
            )
        }
        None => None,
    };
    staff
        .record(
            &state,
            "login_history.search",
            format!(
                "account={} ip={}",
                q.account.as_deref().unwrap_or("*"),
                q.ip.as_deref().unwrap_or("*")
            ),
        )
        .await?;
    let filter = LoginFilter {
        account: q.account,
        ip: q.ip,
        from_ms: q.from.map(|t| t.timestamp_millis()),
        to_ms: q.to.map(|t| t.timestamp_millis()),
        before,
    };
    let rows = query::search_logins(state.store(), &filter, limit + 1)
        .await
        .map_err(store_error)?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<LoginRow> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = if more {
        rows.last()
            .map(|r| format!("{}.{}.{}", r.at_ms, r.sequence, r.account_id))
    } else {
        None
    };
    let entries = rows
        .into_iter()
        .map(|r| AdminLoginEntry {
            account_id: r.account_id,
            sequence: r.sequence,
            at: time(r.at_ms),
            outcome: r.outcome,
            reason: r.reason,
            ip: r.ip,
            user_agent: r.user_agent,
            device_id: r.device_id,
            door: super::me::door_name(r.trusted_device_id.as_deref()).into(),
            trusted_device_id: r.trusted_device_id,
        })
        .collect();
    Ok(Json(AdminLoginPage {
        entries,
        next_cursor,
    }))
}

/// Paging of an account's timeline.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Events after this sequence (default 0: from the first).
    pub after: Option<i64>,
    /// Events per page, 1 to 500 (default 100).
    pub limit: Option<i64>,
}

/// One stored event, with secrets and sealed personal data redacted.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEvent {
    /// Sequence in the aggregate.
    pub sequence: i64,
    /// Event type.
    pub event_type: String,
    /// Payload version.
    pub event_version: String,
    /// Payload as stored, with hashes, verifiers and sealed fields replaced by `"[redacted]"`.
    #[schema(value_type = Object)]
    pub payload: Value,
}

/// A page of an account's events.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelinePage {
    /// The account.
    pub account_id: String,
    /// Events in order.
    pub events: Vec<TimelineEvent>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// Keys whose values are never shown, even to staff: hashes, verifiers, sealed data.
fn redacted_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["hash", "verifier", "sealed", "secret", "token"]
        .iter()
        .any(|w| k.contains(w))
        || k == "email"
        || k == "phone"
}

/// Replaces secret-bearing values in a payload.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if redacted_key(key) && !v.is_null() {
                    *v = Value::String("[redacted]".into());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// An account's raw event timeline (auditor, analyst, admin).
#[utoipa::path(get, path = "/v1/admin/accounts/{id}/events", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Account id (or `unknown-<lookup>`)"), EventsQuery),
    responses((status = 200, body = TimelinePage), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn account_events(
    State(state): State<AppState>,
    staff: Staff<ReadEvents>,
    Path(id): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<TimelinePage>, ApiError> {
    let Query(q) = query.map_err(bad_query)?;
    let limit = limit_of(q.limit, 100, 500)?;
    if id.len() > 200 {
        return Err(ApiError::bad_request("account id is too long"));
    }
    staff.record(&state, "account.events", id.clone()).await?;
    let rows = query::aggregate_events(
        state.store(),
        "Account",
        &id,
        q.after.unwrap_or(0).max(0),
        limit + 1,
    )
    .await
    .map_err(store_error)?;
    let more = rows.len() as i64 > limit;
    let events: Vec<TimelineEvent> = rows
        .into_iter()
        .take(limit as usize)
        .map(|mut r| {
            redact(&mut r.payload);
            TimelineEvent {
                sequence: r.sequence,
                event_type: r.event_type,
                event_version: r.event_version,
                payload: r.payload,
            }
        })
        .collect();
    let next_after = if more {
        events.last().map(|e| e.sequence)
    } else {
        None
    };
    Ok(Json(TimelinePage {
        account_id: id,
        events,
        next_after,
    }))
}

/// A staff member to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStaffRequest {
    /// Display name.
    pub name: String,
    /// Roles: `analyst`, `auditor`, `reviewer`, `admin`.
    pub roles: Vec<String>,
}

/// A created staff member and their token (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedStaff {
    /// Staff id.
    pub staff_id: String,
    /// Bearer token for `/v1/admin/*`. Shown once; only its hash is stored.
    pub token: String,
    /// Roles granted.
    pub roles: Vec<String>,
}

/// Creates a staff member (admin).
#[utoipa::path(post, path = "/v1/admin/staff", tag = "admin", security(("bearer" = [])), request_body = CreateStaffRequest,
    responses((status = 201, body = CreatedStaff), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_staff(
    State(state): State<AppState>,
    staff: Staff<ManageStaff>,
    ApiJson(req): ApiJson<CreateStaffRequest>,
) -> Result<(StatusCode, Json<CreatedStaff>), ApiError> {
    let roles = req
        .roles
        .iter()
        .map(|r| StaffRole::parse(r))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ApiError::bad_request("unknown role").with_field("roles"))?;
    let (staff_id, token) = crate::staff::create(
        state.staff(),
        &req.name,
        roles.clone(),
        Some(staff.id.clone()),
        state.access().staff_token_lifetime,
    )
    .await?;
    staff
        .record(&state, "staff.create", staff_id.to_string())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedStaff {
            staff_id: staff_id.to_string(),
            token: crate::staff::reveal(&token).to_string(),
            roles: roles.iter().map(|r| r.as_str().to_string()).collect(),
        }),
    ))
}

/// A staff token issued by an admin (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedStaffToken {
    /// Staff id.
    pub staff_id: String,
    /// The token's id (listed by `gatehouse staff list`; not secret).
    pub token_id: String,
    /// Bearer token for `/v1/admin/*`. Shown once; only its hash is stored.
    pub token: String,
    /// When it stops working (`GATEHOUSE_STAFF_TOKEN_SECONDS` after issue).
    pub expires_at: DateTime<Utc>,
}

fn staff_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::not_found("no such staff member"))
}

/// Issues a staff member a new token (admin): a `StaffTokenIssued` event on the member; their
/// earlier token stops working at once.
#[utoipa::path(post, path = "/v1/admin/staff/{id}/tokens", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Staff id")),
    responses((status = 201, body = IssuedStaffToken, description = "The new token, shown once"),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody, description = "No such staff member")))]
pub async fn reissue_staff_token(
    State(state): State<AppState>,
    staff: Staff<ManageStaff>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<IssuedStaffToken>), ApiError> {
    let member = staff_id(&id)?;
    let issued = crate::staff::reissue(
        state.staff(),
        member,
        Some(staff.id.clone()),
        state.access().staff_token_lifetime,
    )
    .await?;
    staff
        .record(&state, "staff.token.issue", member.to_string())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedStaffToken {
            staff_id: member.to_string(),
            token_id: issued.token_id.to_string(),
            token: crate::staff::reveal(&issued.token).to_string(),
            expires_at: issued.expires_at,
        }),
    ))
}

/// Revokes every token of a staff member (admin): a `StaffTokensRevoked` event on the member;
/// none of their tokens works until a new one is issued.
#[utoipa::path(delete, path = "/v1/admin/staff/{id}/tokens", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Staff id")),
    responses((status = 204, description = "Revoked"),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody, description = "No such staff member")))]
pub async fn revoke_staff_tokens(
    State(state): State<AppState>,
    staff: Staff<ManageStaff>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let member = staff_id(&id)?;
    crate::staff::revoke(state.staff(), member, Some(staff.id.clone())).await?;
    // Recorded after the revocation, so an admin revoking their own tokens leaves the record
    // too (the command runs on the admin's aggregate, not through the token).
    staff
        .record(&state, "staff.token.revoke", member.to_string())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_redact_hides_hashes_verifiers_and_sealed_contacts() {
        let mut v = serde_json::json!({"fact": {"LoginFailed": {"context": {"ip": "1.2.3.4"}}},
            "x": {"password_hash": "$argon2id$", "verifier": "ab", "email": {"sealed": "zz"},
                  "sealed_phrase": "q", "token_hash": "t", "phone": null}});
        redact(&mut v);
        let s = v.to_string();
        assert!(!s.contains("argon2") && !s.contains("\"ab\"") && !s.contains("zz"));
        assert!(s.contains("1.2.3.4"));
        assert_eq!(v["x"]["phone"], Value::Null);
    }
}
