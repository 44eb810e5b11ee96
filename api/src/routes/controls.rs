//! Step-up: a session proves a second factor again before high-risk routes (withdraw-scoped API
//! keys, whitelist changes, turning whitelist-only withdrawals off), and the checks those routes
//! share.
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use gatehouse_domain::{AccountCommand, SensitiveAction};
use gatehouse_projections::store::ExecuteError;
use serde::Serialize;
use utoipa::ToSchema;

use super::mfa::{mfa_error, ProofRequest};
use super::{metadata, ApiJson};
use crate::error::ApiError;
use crate::request::{Authenticated, Caller};
use crate::state::AppState;
use crate::throttle::Route;

/// Until when the session counts as stepped up.
#[derive(Debug, Serialize, ToSchema)]
pub struct SteppedUp {
    /// High-risk routes accept this session until then.
    pub stepped_up_until: DateTime<Utc>,
}

/// Refuses unless the proof policy's row for `action` holds for this session (a stepped-up
/// session, an enrolled factor): for routes whose change is not an account command.
pub(crate) fn require_session_proof(
    state: &AppState,
    auth: &Authenticated,
    action: SensitiveAction,
) -> Result<(), ApiError> {
    auth.account
        .check_session_proof(
            action,
            Some(auth.session_id()),
            auth.now,
            &state.accounts().services().sessions,
        )
        .map_err(|e| super::execute_error(ExecuteError::Refused(e)))
}

/// Refuses while a high-risk cooldown runs.
pub(crate) fn require_no_cooldown(auth: &Authenticated) -> Result<(), ApiError> {
    match auth.account.high_risk_until(auth.now) {
        Some(until) => Err(super::high_risk_cooldown(until)),
        None => Ok(()),
    }
}

/// Proves the account again within this session (a current second factor; the password when
/// none is enrolled): the routes that need a stepped-up session accept it for
/// `GATEHOUSE_STEP_UP_SECONDS` (15 minutes by default). Signing in never steps a session up.
/// A wrong proof counts toward the lockout.
#[utoipa::path(post, path = "/v1/me/step-up", tag = "second factors", security(("bearer" = [])),
    request_body = ProofRequest,
    responses(
        (status = 200, body = SteppedUp),
        (status = 400, body = crate::error::ErrorBody, description = "`invalid_request` (a malformed proof)"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`invalid_password`, `invalid_second_factor` (both count toward the lockout), `second_factor_required`"),
        (status = 409, body = crate::error::ErrorBody, description = "`ceremony_unknown`"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked`, `rate_limited`"),
    ))]
pub async fn step_up(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    ApiJson(req): ApiJson<ProofRequest>,
) -> Result<Json<SteppedUp>, ApiError> {
    let id = auth.account_id();
    state
        .throttle()
        .admit(Route::SignedIn, caller.ip, Some(&format!("step-up:{id}")))
        .await?;
    let session_id = auth.session_id();
    let proof = crate::proof::resolve(
        &state,
        &id,
        &auth.account,
        &req.input(),
        Some(session_id),
        auth.now,
    )
    .await?;
    let context = caller.context(None);
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
    crate::proof::refusal(&executed.events, auth.now)?;
    Ok(Json(SteppedUp {
        stepped_up_until: auth.now + state.accounts().services().sessions.step_up,
    }))
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(step_up))
}
