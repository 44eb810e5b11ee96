//! `GET /v1/me/devices`, `PATCH /v1/me/devices/{device_id}` and `DELETE /v1/me/devices/{device_id}`:
//! the devices the account remembers (each sign-in trusts the device it came from, OWASP's
//! "device cookies"), each with its own lockout door; naming one, and forgetting one.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use gatehouse_domain::{AccountCommand, Door, SensitiveAction};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::metadata::metadata;
use crate::request::{Authenticated, Caller};
use crate::routes::ApiJson;
use crate::state::AppState;

/// A device the account remembers, without its token.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    /// Device id (the `trusted_device_id` of login history entries through its door).
    pub device_id: Uuid,
    /// The owner's name for it (`PATCH /v1/me/devices/{device_id}`); absent until named.
    #[schema(min_length = 1, max_length = 64)]
    pub name: Option<String>,
    /// Whether the session making the request signed in through it.
    pub current: bool,
    /// Whether its device token still works (trusted until `expires_at`); `false` once the
    /// trust expired (it still may be forgotten).
    pub has_device_token: bool,
    /// Its first sign-in (absent for devices first trusted before this was recorded).
    pub first_seen: Option<DateTime<Utc>>,
    /// Its last sign-in (the same instant as `trusted_at`).
    pub last_seen: DateTime<Utc>,
    /// When it was last trusted (its last sign-in).
    pub trusted_at: DateTime<Utc>,
    /// When the trust ends unless it signs in again.
    pub expires_at: DateTime<Utc>,
    /// IP of its last sign-in.
    pub ip: Option<String>,
    /// User agent of its last sign-in.
    pub user_agent: Option<String>,
    /// Failures through its own door since its last success or lock.
    pub consecutive_failures: u32,
    /// End of its door's lock, while locked.
    pub locked_until: Option<DateTime<Utc>>,
}

/// The account's devices.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceList {
    /// Most recently trusted first.
    pub devices: Vec<DeviceView>,
}

/// Lists the devices the account remembers (trusted, or whose trust expired), each with its
/// name, first and last sign-in, last IP and user agent, whether its token still works, and the
/// state of its own lockout door. Read from the account itself, so always current.
#[utoipa::path(get, path = "/v1/me/devices", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, body = DeviceList), (status = 401, body = crate::error::ErrorBody)))]
pub async fn list_devices(auth: Authenticated) -> Json<DeviceList> {
    let current = auth.account.session_door(Some(auth.session_id()), auth.now);
    let mut devices: Vec<DeviceView> = auth
        .account
        .known_devices()
        .into_iter()
        .map(|(device_id, d)| DeviceView {
            device_id,
            name: d.name.clone(),
            current: current == Door::Device(device_id),
            has_device_token: auth.now < d.expires_at,
            first_seen: d.first_trusted_at,
            last_seen: d.trusted_at,
            trusted_at: d.trusted_at,
            expires_at: d.expires_at,
            ip: d.context.ip.clone(),
            user_agent: d.context.user_agent.clone(),
            consecutive_failures: d.failures,
            locked_until: auth
                .account
                .door_lock_at(Door::Device(device_id), auth.now)
                .map(|l| l.until),
        })
        .collect();
    devices.sort_by(|a, b| {
        b.trusted_at
            .cmp(&a.trusted_at)
            .then(a.device_id.cmp(&b.device_id))
    });
    Json(DeviceList { devices })
}

/// A device's new name.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RenameDeviceRequest {
    /// 1 to 64 characters (after trimming), no control characters.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
}

/// Names a device the account remembers (recorded as `DeviceRenamed`; shown in this list and the
/// security activity). A session suffices: a name changes no access.
#[utoipa::path(patch, path = "/v1/me/devices/{device_id}", tag = "sessions", security(("bearer" = [])),
    params(("device_id" = Uuid, Path, description = "Device to name")),
    request_body = RenameDeviceRequest,
    responses(
        (status = 204, description = "Renamed"),
        (status = 400, body = crate::error::ErrorBody, description = "`invalid_request` (`field: \"name\"`): empty, longer than 64 characters or holding control characters"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody, description = "`not_found`: no such device"),
    ))]
pub async fn rename_device(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    Path(device_id): Path<Uuid>,
    ApiJson(req): ApiJson<RenameDeviceRequest>,
) -> Result<StatusCode, ApiError> {
    let name = super::object_name(&req.name)?;
    let context = caller.context(None);
    state
        .accounts()
        .execute(
            &auth.account_id(),
            || AccountCommand::RenameDevice {
                device_id,
                name: name.clone(),
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Forgets a device (trusted or expired): its token is refused from now on (its requests go
/// through the untrusted door) and the sessions it opened end. Needs a stepped-up session (proof policy row
/// `manage_devices`), so a stolen session cannot take the owner's door away.
#[utoipa::path(delete, path = "/v1/me/devices/{device_id}", tag = "sessions", security(("bearer" = [])),
    params(("device_id" = Uuid, Path, description = "Device to revoke")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`step_up_required`"),
        (status = 404, body = crate::error::ErrorBody, description = "`not_found`: no such device"),
    ))]
pub async fn revoke_device(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    Path(device_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    super::controls::require_session_proof(&state, &auth, SensitiveAction::ManageDevices)?;
    let context = caller.context(None);
    state
        .accounts()
        .execute(
            &auth.account_id(),
            || AccountCommand::RevokeDevice {
                device_id,
                session_id: auth.session_id(),
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(list_devices))
        .routes(utoipa_axum::routes!(revoke_device, rename_device))
}
