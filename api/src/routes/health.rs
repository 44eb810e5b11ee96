//! Liveness and readiness.
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

/// Health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
    /// `postgres` or `embedded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<&'static str>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        store: None,
    })
}

/// The process can serve: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = crate::error::ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state
        .store()
        .ping()
        .await
        .map_err(crate::routes::store_error)?;
    Ok(Json(Health {
        status: "ok",
        store: Some(state.store().kind()),
    }))
}

/// Prometheus text metrics: how far each read model lags the event stream, events applied, and
/// alerts by rule. Nothing personal.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, content_type = "text/plain", description = "Prometheus text format"),
              (status = 503, body = crate::error::ErrorBody)))]
pub async fn metrics(
    State(state): State<AppState>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    use std::fmt::Write as _;
    let lags = state
        .runner()
        .lag()
        .await
        .map_err(crate::routes::store_error)?;
    let mut text = String::from(
        "# HELP gatehouse_projection_lag_events Events in the stream a read model has not applied yet.\n\
         # TYPE gatehouse_projection_lag_events gauge\n",
    );
    for (name, lag) in lags {
        let _ = writeln!(
            text,
            "gatehouse_projection_lag_events{{projection=\"{name}\"}} {lag}"
        );
    }
    text.push_str(
        "# HELP gatehouse_projection_events_applied_total Events this process has applied to a read model since it started.\n\
         # TYPE gatehouse_projection_events_applied_total counter\n",
    );
    for (name, n) in state.runner().events_applied() {
        let _ = writeln!(
            text,
            "gatehouse_projection_events_applied_total{{projection=\"{name}\"}} {n}"
        );
    }
    let alerts = gatehouse_projections::alerts::query::alert_counts(state.store())
        .await
        .map_err(crate::routes::store_error)?;
    text.push_str(
        "# HELP gatehouse_alerts_raised_total Alerts raised (in the alerts read model), by rule.\n\
         # TYPE gatehouse_alerts_raised_total counter\n",
    );
    let mut by_rule: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for (rule, _, _, n) in &alerts {
        *by_rule.entry(rule.as_str()).or_default() += n;
    }
    for (rule, n) in by_rule {
        let _ = writeln!(text, "gatehouse_alerts_raised_total{{rule=\"{rule}\"}} {n}");
    }
    text.push_str(
        "# HELP gatehouse_alerts Alerts by rule, severity and status.\n\
         # TYPE gatehouse_alerts gauge\n",
    );
    for (rule, severity, status, n) in &alerts {
        let _ = writeln!(
            text,
            "gatehouse_alerts{{rule=\"{rule}\",severity=\"{severity}\",status=\"{status}\"}} {n}"
        );
    }
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    ))
}
