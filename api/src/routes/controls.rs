//! Step-up: a session proves a second factor again before high-risk routes (withdraw-scoped API
//! keys, whitelist changes, turning whitelist-only withdrawals off), and the checks those routes
//! share.
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use gatehouse_domain::{AccountCommand, AccountFact};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::login::seconds_until;
use super::mfa::{mfa_error, proof, refuse_failed_factor, FactorAnswer, Method};
use super::{metadata, ApiJson};
use crate::error::ApiError;
use crate::request::{Authenticated, Caller};
use crate::state::AppState;

/// A second factor, proved again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepUpRequest {
    /// `totp`, `backup_code` or `security_key`.
    pub method: Method,
    /// The code (`totp`, `backup_code`).
    pub code: Option<String>,
    /// From `POST /v1/me/security-keys/challenge` (`security_key`).
    pub ceremony_id: Option<String>,
    /// The key's `PublicKeyCredential` (`security_key`).
    #[schema(value_type = Option<Object>)]
    pub assertion: Option<serde_json::Value>,
}

/// Until when the session counts as stepped up.
#[derive(Debug, Serialize, ToSchema)]
pub struct SteppedUp {
    /// High-risk routes accept this session until then.
    pub stepped_up_until: DateTime<Utc>,
}

/// Refuses unless the session proved a second factor within the step-up window.
pub(crate) fn require_step_up(state: &AppState, auth: &Authenticated) -> Result<(), ApiError> {
    if !auth.account.has_second_factor() {
        return Err(ApiError::other(
            StatusCode::FORBIDDEN,
            "second_factor_required",
            "this change needs a second factor: enrol an authenticator app or a security key first",
        ));
    }
    match auth
        .account
        .stepped_up_until(auth.session_id(), state.controls().step_up)
    {
        Some(until) if auth.now < until => Ok(()),
        _ => Err(ApiError::other(
            StatusCode::FORBIDDEN,
            "step_up_required",
            "prove a second factor again first (POST /v1/me/step-up)",
        )),
    }
}

/// Refuses while a high-risk cooldown runs.
pub(crate) fn require_no_cooldown(auth: &Authenticated) -> Result<(), ApiError> {
    match auth.account.high_risk_until(auth.now) {
        Some(until) => Err(super::high_risk_cooldown(until)),
        None => Ok(()),
    }
}

/// Proves a second factor again within this session: high-risk routes accept the session for
/// `GATEHOUSE_STEP_UP_SECONDS` (15 minutes by default). A wrong factor counts toward the lockout.
#[utoipa::path(post, path = "/v1/me/step-up", tag = "second factors", security(("bearer" = [])),
    request_body = StepUpRequest,
    responses(
        (status = 200, body = SteppedUp),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`invalid_second_factor`"),
        (status = 409, body = crate::error::ErrorBody, description = "`no_second_factor`, `ceremony_unknown`"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked`"),
    ))]
pub async fn step_up(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    ApiJson(req): ApiJson<StepUpRequest>,
) -> Result<Json<SteppedUp>, ApiError> {
    let id = auth.account_id();
    if let Some(ip) = caller.ip {
        state.throttle().admit(ip, &format!("step-up:{id}"))?;
    }
    let answer = FactorAnswer {
        method: &req.method,
        code: req.code.as_deref(),
        ceremony_id: req.ceremony_id.as_deref(),
        assertion: req.assertion.as_ref(),
    };
    let proof = proof(&state, &id, &auth.account, &answer, auth.now).await?;
    let context = caller.context(None);
    let session_id = auth.session_id();
    let executed = state
        .accounts()
        .execute(
            &id,
            || AccountCommand::StepUp {
                session_id,
                proof: proof.clone(),
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await
        .map_err(mfa_error)?;
    state.runner().nudge();
    for envelope in &executed.events {
        if let AccountFact::LoginRejectedWhileLocked { locked_until, .. } = &envelope.payload.fact {
            return Err(ApiError::locked(seconds_until(*locked_until, auth.now)));
        }
    }
    refuse_failed_factor(&executed.events, auth.now)?;
    Ok(Json(SteppedUp {
        stepped_up_until: auth.now + state.controls().step_up,
    }))
}
