//! Staff actions on an account: freeze, unfreeze, sign every session out, unlock, each with a
//! reason. Each is an event on the account (`StaffActionTaken`, then its effects) and on the
//! member's `Staff` record, and each is announced on the account's verified channels. Roles:
//! `admin` for all; `reviewer` also for freeze and unfreeze. A staff unfreeze takes effect only
//! after the recovery hold (`GATEHOUSE_RECOVERY_HOLD_SECONDS`, as after a lost-2FA approval),
//! during which the owner, told with a freeze link, can freeze again.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use gatehouse_domain::account::AccountStatus;
use gatehouse_domain::{AccountCommand, FreezeRequest, StaffAccountAction};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::metadata::metadata;
use crate::routes::ApiJson;
use crate::staff::{FreezeAccounts, ManageAccounts, Staff};
use crate::state::AppState;

/// Why a staff member acts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffReason {
    /// Why (kept in the account's history): 1 to 1000 characters once trimmed (`422
    /// invalid_reason` otherwise).
    #[schema(min_length = 1, max_length = 1000)]
    pub reason: String,
}

async fn act<P>(
    state: &AppState,
    staff: &Staff<P>,
    account_id: uuid::Uuid,
    action: StaffAccountAction,
    reason: String,
) -> Result<StatusCode, ApiError> {
    let reason = reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(ApiError::validation(
            "invalid_reason",
            "give a reason of 1 to 1000 characters",
        )
        .with_field("reason"));
    }
    let account_id = account_id.to_string();
    if state.accounts().load(&account_id).await?.status() != AccountStatus::Active {
        return Err(ApiError::not_found("no such account"));
    }
    let context = staff.caller.context(None);
    let at = Utc::now();
    state
        .accounts()
        .execute(
            &account_id,
            || match action {
                StaffAccountAction::Freeze => AccountCommand::Freeze {
                    by: FreezeRequest::Staff {
                        staff_id: staff.id.clone(),
                    },
                    reason: Some(reason.clone()),
                    at,
                    context: context.clone(),
                },
                other => AccountCommand::StaffAction {
                    staff_id: staff.id.clone(),
                    action: other,
                    reason: reason.clone(),
                    at,
                    context: context.clone(),
                },
            },
            metadata(),
        )
        .await?;
    staff
        .record(state, &format!("account.{}", action.as_str()), account_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Freezes an account (reviewer, admin): every session ends, every API key and trusted device
/// is revoked, every verified channel is told.
#[utoipa::path(post, path = "/v1/admin/accounts/{id}/freeze", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Account id")), request_body = StaffReason,
    responses((status = 204), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody, description = "`forbidden`: not a reviewer or admin"),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody, description = "`already_frozen`"),
              (status = 422, body = crate::error::ErrorBody, description = "`invalid_reason`")))]
pub async fn staff_freeze(
    State(state): State<AppState>,
    staff: Staff<FreezeAccounts>,
    Path(id): Path<uuid::Uuid>,
    ApiJson(body): ApiJson<StaffReason>,
) -> Result<StatusCode, ApiError> {
    act(&state, &staff, id, StaffAccountAction::Freeze, body.reason).await
}

/// Unfreezes an account (reviewer, admin) after the recovery hold: it stays frozen until then,
/// and the owner, told on every channel with a freeze link, can freeze it again.
#[utoipa::path(post, path = "/v1/admin/accounts/{id}/unfreeze", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Account id")), request_body = StaffReason,
    responses((status = 204), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody, description = "`forbidden`: not a reviewer or admin"),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody, description = "`not_frozen` (or an unfreeze already pending)"),
              (status = 422, body = crate::error::ErrorBody, description = "`invalid_reason`")))]
pub async fn staff_unfreeze(
    State(state): State<AppState>,
    staff: Staff<FreezeAccounts>,
    Path(id): Path<uuid::Uuid>,
    ApiJson(body): ApiJson<StaffReason>,
) -> Result<StatusCode, ApiError> {
    act(
        &state,
        &staff,
        id,
        StaffAccountAction::Unfreeze,
        body.reason,
    )
    .await
}

/// Ends every session of an account (admin).
#[utoipa::path(post, path = "/v1/admin/accounts/{id}/sign-out", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Account id")), request_body = StaffReason,
    responses((status = 204), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody, description = "`forbidden`: not an admin"),
              (status = 404, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody, description = "`invalid_reason`")))]
pub async fn staff_sign_out(
    State(state): State<AppState>,
    staff: Staff<ManageAccounts>,
    Path(id): Path<uuid::Uuid>,
    ApiJson(body): ApiJson<StaffReason>,
) -> Result<StatusCode, ApiError> {
    act(&state, &staff, id, StaffAccountAction::SignOut, body.reason).await
}

/// Lifts every lock of an account (admin).
#[utoipa::path(post, path = "/v1/admin/accounts/{id}/unlock", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Account id")), request_body = StaffReason,
    responses((status = 204), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody, description = "`forbidden`: not an admin"),
              (status = 404, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody, description = "`invalid_reason`")))]
pub async fn staff_unlock(
    State(state): State<AppState>,
    staff: Staff<ManageAccounts>,
    Path(id): Path<uuid::Uuid>,
    ApiJson(body): ApiJson<StaffReason>,
) -> Result<StatusCode, ApiError> {
    act(&state, &staff, id, StaffAccountAction::Unlock, body.reason).await
}

/// This module's routes, each with its OpenAPI operation.
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(staff_freeze))
        .routes(utoipa_axum::routes!(staff_unfreeze))
        .routes(utoipa_axum::routes!(staff_sign_out))
        .routes(utoipa_axum::routes!(staff_unlock))
}
