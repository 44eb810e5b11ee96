//! `PUT /v1/me/password`: a signed-in person sets a new password. The proof policy's
//! `change_password` row decides what proves it (the current password and, when enrolled, a
//! current second factor); every other session ends, high-risk actions pause, and the owner is
//! told on every verified channel.
use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_domain::{AccountCommand, ChangePassword};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{execute_error, metadata, ApiJson};
use crate::error::ApiError;
use crate::proof::ProofInput;
use crate::request::{Authenticated, Caller};
use crate::state::AppState;
use crate::throttle::Route;

/// A new password, with the proof.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The current password and, when a second factor is enrolled, a current one.
    pub proof: ProofInput,
    /// The new password: the password policy applies, and it must differ from the last 5.
    pub new_password: String,
}

/// Sets a new password while signed in. This session stays open; every other one ends.
#[utoipa::path(put, path = "/v1/me/password", tag = "accounts", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed; every other session ended; high-risk actions paused; the owner told"),
        (status = 400, body = crate::error::ErrorBody, description = "`invalid_request` (a malformed body or proof)"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`invalid_password`, `invalid_second_factor` (both count toward the lockout), `second_factor_required`"),
        (status = 409, body = crate::error::ErrorBody, description = "`ceremony_unknown`"),
        (status = 422, body = crate::error::ErrorBody, description = "`weak_password`, `breached_password`, `password_reused`"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked`, `rate_limited`"),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let id = auth.account_id();
    // Each try checks the password: throttled like the other self-service requests.
    state
        .throttle()
        .admit(
            Route::SignedIn,
            caller.ip,
            Some(&format!("password-change:{id}")),
        )
        .await?;
    let new_password = state
        .vet_new_password(&req.new_password, &[], "new_password")
        .await?;
    let proof = crate::proof::resolve(
        &state,
        &id,
        &auth.account,
        &req.proof,
        Some(auth.session_id()),
        auth.now,
    )
    .await?;
    let command = ChangePassword {
        session_id: auth.session_id(),
        proof,
        new_password,
        at: auth.now,
        context: caller.context(None),
    };
    let executed = state
        .accounts()
        .execute(
            &id,
            || AccountCommand::ChangePassword(command.clone()),
            metadata(),
        )
        .await
        .map_err(execute_error)?;
    state.runner().nudge();
    crate::proof::refusal(&executed.events, auth.now)?;
    Ok(StatusCode::NO_CONTENT)
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(change_password))
}
