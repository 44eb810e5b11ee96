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
    /// With `GATEHOUSE_READ_DATABASE_URL` (on `/readyz` only): `ok` when the read replica
    /// answered within the same bound, `unavailable` when not. The process stays ready either
    /// way: sign-ins and every write go to the primary; only the read routes answer `503
    /// unavailable` while the replica is away.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_replica: Option<&'static str>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        store: None,
        read_replica: None,
    })
}

/// How long `/readyz` waits for the store to answer: a load balancer's probe gives up after a
/// second or two, so the answer comes well within one second, whatever the pool's own bound.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_millis(800);

/// The process can serve: the store (the primary) answers within 0.8 s. The read replica, when
/// configured, is asked at the same time and reported, but does not decide readiness.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health, description = "Ready; `read_replica` says whether the read replica answered"),
              (status = 503, body = crate::error::ErrorBody, description = "`unavailable` with `Retry-After`: the store did not answer within 0.8 s")))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let store = state.store();
    let (primary, replica) = tokio::join!(
        tokio::time::timeout(READY_WITHIN, store.ping()),
        tokio::time::timeout(READY_WITHIN, store.ping_reads())
    );
    primary.map_err(|_| {
        tracing::warn!("readiness: the store did not answer in time");
        ApiError::unavailable()
    })??;
    let read_replica = store.has_read_replica().then(|| match replica {
        Ok(Ok(())) => "ok",
        _ => {
            tracing::warn!("readiness: the read replica did not answer in time");
            "unavailable"
        }
    });
    Ok(Json(Health {
        status: "ok",
        store: Some(store.kind()),
        read_replica,
    }))
}

/// Prometheus text metrics: how far each read model lags the event stream, events applied, and
/// alerts by rule. Nothing personal, but which alert rules are firing is no one else's business:
/// on the public address they are served only to `Authorization: Bearer <GATEHOUSE_METRICS_TOKEN>`
/// (compared in constant time); without it, or without a token configured, the answer is the
/// `404 not_found` of an unknown path, so the endpoint does not reveal itself. A separate address
/// (`GATEHOUSE_METRICS_LISTEN`) serves them without a token.
#[utoipa::path(get, path = "/metrics", tag = "health", security(("bearer" = [])),
    responses((status = 200, content_type = "text/plain", description = "Prometheus text format"),
              (status = 404, body = crate::error::ErrorBody, description = "`not_found`, exactly as for an unknown path: no metrics token configured, or none or a wrong one given"),
              (status = 405, body = crate::error::ErrorBody, description = "`method_not_allowed` (with the right token)"),
              (status = 503, body = crate::error::ErrorBody)))]
pub async fn metrics(
    State(state): State<AppState>,
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    if !metrics_token_matches(&state, &headers) {
        return Err(crate::error::no_such_endpoint());
    }
    if method != axum::http::Method::GET && method != axum::http::Method::HEAD {
        return Err(crate::error::method_not_allowed_error());
    }
    render_metrics(&state).await
}

/// `/metrics` on the separate metrics address: no token (the address is the protection).
pub async fn metrics_open(
    State(state): State<AppState>,
) -> Result<axum::response::Response, ApiError> {
    render_metrics(&state).await
}

/// Whether the request carries the configured metrics token. Both sides are hashed first, so
/// the constant-time comparison does not reveal the token's length either.
fn metrics_token_matches(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    use secrecy::ExposeSecret as _;
    use sha2::{Digest as _, Sha256};
    use subtle::ConstantTimeEq as _;
    let Some(expected) = &state.access().metrics_token else {
        return false;
    };
    let Some(presented) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
    else {
        return false;
    };
    let a = Sha256::digest(presented.trim().as_bytes());
    let b = Sha256::digest(expected.expose_secret().as_bytes());
    a.as_slice().ct_eq(b.as_slice()).into()
}

async fn render_metrics(state: &AppState) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    use std::fmt::Write as _;
    let lags = state.runner().lag().await?;
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
    let alerts = gatehouse_projections::alerts::query::alert_counts(state.store().any()).await?;
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
    text.push_str(
        "# HELP gatehouse_breach_checks_skipped_total Breached-password checks skipped because the corpus could not be consulted.\n\
         # TYPE gatehouse_breach_checks_skipped_total counter\n",
    );
    let _ = writeln!(
        text,
        "gatehouse_breach_checks_skipped_total {}",
        state.breaches().skipped()
    );
    state.throttle().render_metrics(&mut text);
    if let Some(nats) = state.nats() {
        nats.render_metrics(state.store(), &mut text).await?;
    }
    state
        .webhooks()
        .render_metrics(state.store(), &mut text)
        .await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response())
}

/// This module's routes, each with its OpenAPI operation. `/metrics` takes every method (the
/// handler answers each like an unknown path without the token), so its route is `any`: the
/// GET-only route `routes!` builds would add an `Allow` header that an unknown path lacks.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(healthz))
        .routes(utoipa_axum::routes!(readyz))
        .routes(utoipa_axum::router::UtoipaMethodRouterExt::map(
            utoipa_axum::routes!(metrics),
            |_| axum::routing::any(metrics),
        ))
}
