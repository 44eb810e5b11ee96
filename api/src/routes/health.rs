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

/// Prometheus text metrics: how far each read model lags the event stream. Nothing personal.
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
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    ))
}
