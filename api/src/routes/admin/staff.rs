//! Staff members: creation, token reissue and revocation.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use gatehouse_domain::staff::StaffRole;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::routes::ApiJson;
use crate::staff::{AnyStaff, ManageStaff, Staff};
use crate::state::AppState;

/// A staff member to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStaffRequest {
    /// Display name.
    pub name: String,
    /// Roles: `analyst`, `auditor`, `reviewer`, `admin`.
    pub roles: Vec<String>,
}

/// A created staff member and their token (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedStaff {
    /// Staff id.
    pub staff_id: String,
    /// Bearer token for `/v1/admin/*`. Shown once; only its hash is stored.
    pub token: String,
    /// Roles granted.
    pub roles: Vec<String>,
}

/// Creates a staff member (admin).
#[utoipa::path(post, path = "/v1/admin/staff", tag = "admin", security(("bearer" = [])), request_body = CreateStaffRequest,
    responses((status = 201, body = CreatedStaff), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_staff(
    State(state): State<AppState>,
    staff: Staff<ManageStaff>,
    ApiJson(req): ApiJson<CreateStaffRequest>,
) -> Result<(StatusCode, Json<CreatedStaff>), ApiError> {
    let roles = req
        .roles
        .iter()
        .map(|r| StaffRole::parse(r))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ApiError::bad_request("unknown role").with_field("roles"))?;
    let (staff_id, token) = crate::staff::create(
        state.staff(),
        &req.name,
        roles.clone(),
        Some(staff.id.clone()),
        state.access().staff_token_lifetime,
    )
    .await?;
    staff
        .record(&state, "staff.create", staff_id.to_string())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedStaff {
            staff_id: staff_id.to_string(),
            token: crate::staff::reveal(&token).to_string(),
            roles: roles.iter().map(|r| r.as_str().to_string()).collect(),
        }),
    ))
}

/// The staff member a token belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffSelf {
    /// Staff id.
    pub staff_id: String,
    /// Display name.
    pub name: String,
    /// Roles.
    pub roles: Vec<String>,
}

/// The caller's own staff record (any role): whether a staff token works, and whose it is.
/// Nothing is recorded (the console asks on every request).
#[utoipa::path(get, path = "/v1/admin/me", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = StaffSelf),
              (status = 401, body = crate::error::ErrorBody, description = "`unauthenticated`: no staff token, or one that is unknown, revoked or expired")))]
pub async fn staff_self(staff: Staff<AnyStaff>) -> Json<StaffSelf> {
    Json(StaffSelf {
        staff_id: staff.id.clone(),
        name: staff.member.name.clone(),
        roles: staff
            .member
            .roles
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
    })
}

/// A staff token issued by an admin (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedStaffToken {
    /// Staff id.
    pub staff_id: String,
    /// The token's id (listed by `gatehouse staff list`; not secret).
    pub token_id: String,
    /// Bearer token for `/v1/admin/*`. Shown once; only its hash is stored.
    pub token: String,
    /// When it stops working (`GATEHOUSE_STAFF_TOKEN_SECONDS` after issue).
    pub expires_at: DateTime<Utc>,
}

fn staff_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::not_found("no such staff member"))
}

/// Issues a staff member a new token (admin): a `StaffTokenIssued` event on the member; their
/// earlier token stops working at once.
#[utoipa::path(post, path = "/v1/admin/staff/{id}/tokens", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Staff id")),
    responses((status = 201, body = IssuedStaffToken, description = "The new token, shown once"),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody, description = "No such staff member")))]
pub async fn reissue_staff_token(
    State(state): State<AppState>,
    staff: Staff<ManageStaff>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<IssuedStaffToken>), ApiError> {
    let member = staff_id(&id)?;
    let issued = crate::staff::reissue(
        state.staff(),
        member,
        Some(staff.id.clone()),
        state.access().staff_token_lifetime,
    )
    .await?;
    staff
        .record(&state, "staff.token.issue", member.to_string())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedStaffToken {
            staff_id: member.to_string(),
            token_id: issued.token_id.to_string(),
            token: crate::staff::reveal(&issued.token).to_string(),
            expires_at: issued.expires_at,
        }),
    ))
}

/// Revokes every token of a staff member (admin): a `StaffTokensRevoked` event on the member;
/// none of their tokens works until a new one is issued.
#[utoipa::path(delete, path = "/v1/admin/staff/{id}/tokens", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Staff id")),
    responses((status = 204, description = "Revoked"),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody, description = "No such staff member")))]
pub async fn revoke_staff_tokens(
    State(state): State<AppState>,
    staff: Staff<ManageStaff>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let member = staff_id(&id)?;
    crate::staff::revoke(state.staff(), member, Some(staff.id.clone())).await?;
    // Recorded after the revocation, so an admin revoking their own tokens leaves the record
    // too (the command runs on the admin's aggregate, not through the token).
    staff
        .record(&state, "staff.token.revoke", member.to_string())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One staff member and the state of their current token.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffListEntry {
    /// Staff id.
    pub staff_id: String,
    /// Display name.
    pub name: String,
    /// Roles.
    pub roles: Vec<String>,
    /// The current token's id (not secret); absent when revoked or issued before tokens had ids.
    pub token_id: Option<String>,
    /// `live`, `expired` or `revoked`.
    pub token_status: String,
    /// When the token stops (`live`) or stopped (`expired`) working.
    pub token_until: Option<DateTime<Utc>>,
}

/// Every staff member.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffList {
    /// Members, by id.
    pub staff: Vec<StaffListEntry>,
}

/// Lists the staff members and the state of their tokens (admin). Token secrets are never
/// listed: only their hashes are stored.
#[utoipa::path(get, path = "/v1/admin/staff", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = StaffList),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_staff(
    State(state): State<AppState>,
    staff: Staff<ManageStaff>,
) -> Result<Json<StaffList>, ApiError> {
    use gatehouse_domain::staff::TokenStatus;
    let members = crate::staff::list(state.store(), state.staff())
        .await
        .map_err(ApiError::internal)?;
    staff.record(&state, "staff.list", "*".to_string()).await?;
    let now = Utc::now();
    let lifetime = state.access().staff_token_lifetime;
    let staff = members
        .into_iter()
        .map(|(id, m)| {
            let (token_status, token_until) = match m.token_status(now, lifetime) {
                TokenStatus::Live(until) => ("live", Some(until)),
                TokenStatus::Expired(at) => ("expired", Some(at)),
                TokenStatus::Revoked => ("revoked", None),
            };
            StaffListEntry {
                staff_id: id,
                name: m.name.clone(),
                roles: m.roles.iter().map(|r| r.as_str().to_string()).collect(),
                token_id: (token_status != "revoked")
                    .then(|| m.token.id.map(|t| t.to_string()))
                    .flatten(),
                token_status: token_status.to_string(),
                token_until,
            }
        })
        .collect();
    Ok(Json(StaffList { staff }))
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(create_staff, list_staff))
        .routes(utoipa_axum::routes!(staff_self))
        .routes(utoipa_axum::routes!(
            reissue_staff_token,
            revoke_staff_tokens
        ))
}
