//! Login history across accounts and raw account timelines.
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use gatehouse_projections::alerts::query::{self, LoginFilter, LoginRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::{bad_query, limit_of, time};
use crate::error::ApiError;
use crate::staff::{ReadEvents, ReadLoginHistory, Staff};
use crate::state::AppState;

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
    let rows = query::search_logins(state.store().reads(), &filter, limit + 1).await?;
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
            door: crate::routes::me::door_name(r.trusted_device_id.as_deref()).into(),
            trusted_device_id: r.trusted_device_id,
        })
        .collect();
    Ok(Json(AdminLoginPage {
        entries,
        next_cursor,
    }))
}

/// Paging of an account's timeline: the sequences between `after` and `before`, oldest first
/// (the default) or newest first.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Events after this sequence (default 0: from the first).
    pub after: Option<i64>,
    /// Events before this sequence, at least 1 (default: up to the latest). With `order=desc`,
    /// the previous page's `next_before`.
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// `asc` (default): oldest first, paged by `next_after`; `desc`: newest first (the latest
    /// events), paged by `next_before`. Any other value is refused (400).
    #[param(value_type = Option<TimelineOrder>, inline)]
    pub order: Option<String>,
    /// Events per page, 1 to 500 (default 100).
    pub limit: Option<i64>,
}

/// The order of an account's timeline page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum TimelineOrder {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

impl TimelineOrder {
    fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("asc") => Ok(Self::Asc),
            Some("desc") => Ok(Self::Desc),
            Some(_) => Err(ApiError::bad_request("order must be asc or desc").with_field("order")),
        }
    }
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
    /// When the event store recorded it (RFC 3339, UTC).
    pub recorded_at: DateTime<Utc>,
    /// Payload (decoded at the current version), with the fields its event type marks secret
    /// (hashes, verifiers, sealed data) replaced by `"[redacted]"`.
    #[schema(value_type = Object)]
    pub payload: Value,
}

/// A page of an account's events.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelinePage {
    /// The account.
    pub account_id: String,
    /// Events in the requested order.
    pub events: Vec<TimelineEvent>,
    /// Oldest first: pass as `after` for the next page; absent on the last page and when newest
    /// first.
    pub next_after: Option<i64>,
    /// Newest first: pass as `before` (with `order=desc`) for the next, older page; absent on
    /// the last page and when oldest first.
    pub next_before: Option<i64>,
}

/// A stored account event as staff see it: decoded (and upcast), then redacted by its type
/// ([`AccountEvent::redacted`](gatehouse_domain::AccountEvent::redacted) says which fields are
/// secret). A payload that does not decode is hidden whole.
pub fn redact(event_type: &str, event_version: &str, payload: &Value) -> Value {
    match gatehouse_domain::upcast::decode_account_event_ref(event_type, event_version, payload) {
        Ok(event) => event.redacted(),
        Err(_) => Value::String(gatehouse_domain::account::REDACTED.into()),
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
    let order = TimelineOrder::parse(q.order.as_deref())?;
    if q.before.is_some_and(|b| b < 1) {
        return Err(ApiError::bad_request("before must be at least 1").with_field("before"));
    }
    if id.len() > 200 {
        return Err(ApiError::bad_request("account id is too long"));
    }
    staff.record(&state, "account.events", id.clone()).await?;
    let range = query::EventRange {
        after: q.after.unwrap_or(0).max(0),
        before: q.before,
        newest_first: order == TimelineOrder::Desc,
        limit: limit + 1,
    };
    let rows = query::aggregate_events(state.store(), "Account", &id, range).await?;
    let more = rows.len() as i64 > limit;
    let events: Vec<TimelineEvent> = rows
        .into_iter()
        .take(limit as usize)
        .map(|r| TimelineEvent {
            payload: redact(&r.event_type, &r.event_version, &r.payload),
            sequence: r.sequence,
            event_type: r.event_type,
            event_version: r.event_version,
            recorded_at: r.recorded_at,
        })
        .collect();
    let next = if more {
        events.last().map(|e| e.sequence)
    } else {
        None
    };
    let (next_after, next_before) = match order {
        TimelineOrder::Asc => (next, None),
        TimelineOrder::Desc => (None, next),
    };
    Ok(Json(TimelinePage {
        account_id: id,
        events,
        next_after,
        next_before,
    }))
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(login_history))
        .routes(utoipa_axum::routes!(account_events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_redact_decodes_then_hides_by_type_and_hides_undecodable_payloads() {
        let stored = serde_json::json!({"at": "2026-01-05T09:00:00Z", "prev": "00",
            "fact": {"PasswordRehashed": {"password_hash": "$argon2id$v=19$secret"}}});
        let shown = redact("PasswordRehashed", "1.0", &stored).to_string();
        assert!(
            !shown.contains("argon2") && shown.contains("[redacted]"),
            "{shown}"
        );
        let unknown = serde_json::json!({"fact": {"Novel": {"anything": "$argon2id$"}}});
        assert_eq!(
            redact("Novel", "1.0", &unknown),
            Value::String("[redacted]".into())
        );
        assert_eq!(
            redact("PasswordRehashed", "9.9", &stored),
            Value::String("[redacted]".into())
        );
    }
}
