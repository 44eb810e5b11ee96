//! `/v1/recovery/lost-2fa`: recovering an account whose second factor is lost, without a backup
//! code. Step 1: a code to the verified email; step 2: a code to the verified phone (when there is
//! one); step 3: identity evidence; step 4: a reviewer's decision (`/v1/admin/recovery-cases`),
//! then a hold announced on every channel that the owner can cancel from any session
//! (`DELETE /v1/me/recovery`); after it, `POST /v1/recovery/lost-2fa/complete` removes the
//! factors. The same answers for identifiers without an account: 4 steps until the email code is
//! accepted (only then does the count say whether a phone step follows).
//!
//! The email step accepts only a code sent by email, the phone step only one sent by SMS (a
//! resend on the other channel is refused). Flows at the code steps run side by side; a new
//! request never closes another. While a case is under review or approved, a new request gets
//! the same answer as ever, but its code goes nowhere and the case is left as it is; the owner is
//! told, at most once a day. Only the owner (`DELETE /v1/me/recovery`) or a reviewer ends a case.
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use gatehouse_domain::policy::FlowKind;
use gatehouse_domain::{AccountCommand, CodeAction};
use serde::Deserialize;
use utoipa::ToSchema;

use super::recovery::{
    current_view, open_token, redeem, start_recovery, ChannelParam, FlowView, RecoveryRequest,
};
use super::{execute_error, metadata, store_error, ApiJson};
use crate::directory;
use crate::error::ApiError;
use crate::request::{Authenticated, Caller};
use crate::state::AppState;
use crate::throttle::Route;

/// Label the evidence is sealed under.
pub const EVIDENCE_LABEL: &str = "recovery-evidence";

/// Starts a recovery.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LostFactorRequest {
    /// Email or phone of the account; at most 320 characters (`400` beyond).
    #[schema(max_length = 320)]
    pub identifier: String,
    /// The `device_token` of an earlier sign-in on this device (its own code budget; see
    /// `POST /v1/password/forgot`).
    pub device_token: Option<String>,
}

/// A code for the current step.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepCode {
    /// The flow.
    pub flow_id: String,
    /// The code received.
    pub code: String,
}

/// Identity evidence for the reviewer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// The flow.
    pub flow_id: String,
    /// Reference of an identity check at the platform's KYC provider: at most 200 characters,
    /// not blank (`400` otherwise).
    #[schema(min_length = 1, max_length = 200)]
    pub kyc_reference: String,
    /// Free text for the reviewer (at most 2000 characters; `400` beyond).
    #[schema(max_length = 2000)]
    pub statement: String,
}

/// A flow id.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowRef {
    /// The flow.
    pub flow_id: String,
}

/// Step 1: a code to the verified email.
#[utoipa::path(post, path = "/v1/recovery/lost-2fa", tag = "recovery", request_body = LostFactorRequest,
    responses(
        (status = 202, body = FlowView, description = "Always the same answer, whatever the identifier: step 1 of 4, channel `email`. A case under review or approved is left untouched (the new flow's code goes nowhere; the owner is told at most once a day)"),
        (status = 400, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody, description = "`code_rate_limited` with `retry_after`, or `rate_limited` (with `retry_after` and `Retry-After`): over the route's per-IP, per-network or per-identifier limit (LOST_2FA)"),
    ))]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<LostFactorRequest>,
) -> Result<(StatusCode, Json<FlowView>), ApiError> {
    let request = RecoveryRequest {
        identifier: req.identifier,
        channel: Some(ChannelParam::Email),
        device_token: req.device_token,
    };
    start_recovery(&state, &caller, request, FlowKind::LostSecondFactor).await
}

/// Steps 1 and 2: the email code, then the phone code.
#[utoipa::path(post, path = "/v1/recovery/lost-2fa/code", tag = "recovery", request_body = StepCode,
    responses(
        (status = 200, body = FlowView, description = "The step passed; the view shows the next"),
        (status = 404, body = crate::error::ErrorBody),
        (status = 400, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "`wrong_step` (also: another case is under review or approved)"),
        (status = 410, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody, description = "`invalid_code` (a code that came by another channel than the step's is wrong)"),
        (status = 429, body = crate::error::ErrorBody, description = "`code_rate_limited`, or `rate_limited` (with `retry_after` and `Retry-After`): over the route's per-IP, per-network or per-identifier limit (LOST_2FA)"),
    ))]
pub async fn code_step(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<StepCode>,
) -> Result<Json<FlowView>, ApiError> {
    redeem(
        &state,
        &caller,
        &req.flow_id,
        &req.code,
        CodeAction::RecoveryStep,
    )
    .await?;
    let (aggregate_id, flow_id) = open_token(&state, &req.flow_id)?;
    Ok(Json(
        current_view(&state, &aggregate_id, flow_id, req.flow_id).await?,
    ))
}

/// Step 3: identity evidence (sealed at rest), then the case waits for a reviewer.
#[utoipa::path(post, path = "/v1/recovery/lost-2fa/evidence", tag = "recovery", request_body = Evidence,
    responses(
        (status = 202, body = FlowView, description = "In review"),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "`wrong_step`"),
        (status = 422, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody, description = "`rate_limited` (with `retry_after` and `Retry-After`): over the route's per-IP, per-network or per-identifier limit (LOST_2FA)"),
    ))]
pub async fn evidence(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<Evidence>,
) -> Result<(StatusCode, Json<FlowView>), ApiError> {
    let (aggregate_id, flow_id) = open_token(&state, &req.flow_id)?;
    state
        .throttle()
        .admit(Route::Lost2fa, caller.ip, Some(&flow_id.to_string()))
        .await?;
    if req.kyc_reference.trim().is_empty() || req.kyc_reference.chars().count() > 200 {
        return Err(ApiError::validation(
            "invalid_evidence",
            "kyc_reference must be 1 to 200 characters",
        )
        .with_field("kyc_reference"));
    }
    if req.statement.chars().count() > 2000 {
        return Err(ApiError::validation(
            "invalid_evidence",
            "statement must be at most 2000 characters",
        )
        .with_field("statement"));
    }
    // Unknown identifiers have no key: their evidence is refused like a wrong step, which their
    // flow (stuck at its code step) would answer anyway.
    let wrapped = directory::wrapped_key(state.store(), &aggregate_id)
        .await
        .map_err(store_error)?
        .ok_or_else(wrong_step)?;
    let evidence =
        serde_json::json!({"kyc_reference": req.kyc_reference, "statement": req.statement})
            .to_string();
    let sealed = state
        .keys()
        .unwrap_data_key(&aggregate_id, &wrapped)
        .and_then(|key| key.seal_text(&aggregate_id, EVIDENCE_LABEL, &evidence))
        .map_err(ApiError::internal)?;
    let context = caller.context(None);
    state
        .accounts()
        .execute(
            &aggregate_id,
            || AccountCommand::SubmitRecoveryEvidence {
                flow_id,
                sealed_evidence: sealed.clone(),
                at: Utc::now(),
                context: context.clone(),
            },
            metadata(),
        )
        .await
        .map_err(execute_error_or_stage)?;
    state.runner().nudge();
    Ok((
        StatusCode::ACCEPTED,
        Json(current_view(&state, &aggregate_id, flow_id, req.flow_id).await?),
    ))
}

/// After the hold: removes the second factors (every session ends; high-risk actions pause).
#[utoipa::path(post, path = "/v1/recovery/lost-2fa/complete", tag = "recovery", request_body = FlowRef,
    responses(
        (status = 204, description = "Second factors removed; sign in with the password"),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "`wrong_step`, `hold_not_over` (with `retry_after`)"),
        (status = 429, body = crate::error::ErrorBody, description = "`rate_limited` (with `retry_after` and `Retry-After`): over the route's per-IP, per-network or per-identifier limit (LOST_2FA)"),
    ))]
pub async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<FlowRef>,
) -> Result<StatusCode, ApiError> {
    let (aggregate_id, flow_id) = open_token(&state, &req.flow_id)?;
    // Per address only: the flow token is sealed and nothing is guessed here, and a client may
    // poll until the hold is over.
    state
        .throttle()
        .admit(Route::Lost2fa, caller.ip, None)
        .await?;
    let context = caller.context(None);
    state
        .accounts()
        .execute(
            &aggregate_id,
            || AccountCommand::CompleteRecovery {
                flow_id,
                at: Utc::now(),
                context: context.clone(),
            },
            metadata(),
        )
        .await
        .map_err(execute_error_or_stage)?;
    state.runner().nudge();
    Ok(StatusCode::NO_CONTENT)
}

/// Cancels a pending recovery from a signed-in session (e.g. on the "recovery approved" notice):
/// the case, whatever its stage, and every flow still at the code steps.
#[utoipa::path(delete, path = "/v1/me/recovery", tag = "recovery", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody, description = "`no_recovery`")))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
) -> Result<StatusCode, ApiError> {
    let context = caller.context(None);
    state
        .accounts()
        .execute(
            &auth.account_id(),
            || AccountCommand::CancelRecovery {
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await
        .map_err(|e| match e {
            gatehouse_projections::store::ExecuteError::Refused(
                gatehouse_domain::AccountError::RecoveryStage,
            ) => ApiError::other(
                StatusCode::CONFLICT,
                "no_recovery",
                "no recovery is pending",
            ),
            other => execute_error(other),
        })?;
    state.runner().nudge();
    Ok(StatusCode::NO_CONTENT)
}

fn wrong_step() -> ApiError {
    ApiError::other(
        StatusCode::CONFLICT,
        "wrong_step",
        "the recovery is not at this step; see GET /v1/flows/{flow_id}",
    )
}

fn execute_error_or_stage(
    e: gatehouse_projections::store::ExecuteError<gatehouse_domain::AccountError>,
) -> ApiError {
    use gatehouse_domain::AccountError as E;
    use gatehouse_projections::store::ExecuteError::Refused;
    match e {
        Refused(E::RecoveryStage) => wrong_step(),
        Refused(E::RecoveryHold { until }) => ApiError::rate_limited(
            "hold_not_over",
            "the recovery hold has not ended",
            super::login::seconds_until(until, Utc::now()),
        )
        .with_status(StatusCode::CONFLICT),
        other => execute_error(other),
    }
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(start))
        .routes(utoipa_axum::routes!(code_step))
        .routes(utoipa_axum::routes!(evidence))
        .routes(utoipa_axum::routes!(complete))
        .routes(utoipa_axum::routes!(cancel))
}
