//! Account search for staff: an email or phone to the account holding it, through the keyed
//! lookup hash of the identifier directory (never a scan of plaintext, which is not stored).
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::routes::{resolve_identifier_with, ApiJson};
use crate::staff::{ReadEvents, Staff};
use crate::state::AppState;

/// What to look up.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountLookup {
    /// An email address or an E.164 phone number, as the account holder typed it (normalized
    /// before hashing, as at sign-in).
    pub identifier: String,
}

/// The account holding the identifier.
#[derive(Debug, Serialize, ToSchema)]
pub struct FoundAccount {
    /// The account's id (for `/v1/admin/accounts/{id}/events` and the login history).
    pub account_id: String,
    /// `email` or `phone`: what the identifier parsed as.
    pub kind: String,
}

/// Finds the account holding an email or phone (auditor, analyst, admin). The identifier is
/// hashed with the server's lookup key and looked up in the identifier directory; the staff
/// member's record names the lookup hash, never the identifier.
#[utoipa::path(post, path = "/v1/admin/accounts/lookup", tag = "admin", security(("bearer" = [])),
    request_body = AccountLookup,
    responses((status = 200, body = FoundAccount),
              (status = 400, body = crate::error::ErrorBody, description = "Malformed request, or an identifier that is too long"),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody, description = "`not_found`: no account holds it"),
              (status = 422, body = crate::error::ErrorBody, description = "`invalid_identifier`: neither an email nor an E.164 phone number")))]
pub async fn lookup_account(
    State(state): State<AppState>,
    staff: Staff<ReadEvents>,
    ApiJson(req): ApiJson<AccountLookup>,
) -> Result<Json<FoundAccount>, ApiError> {
    let resolved = resolve_identifier_with(&state, &req.identifier, false).await?;
    staff
        .record(
            &state,
            "account.lookup",
            format!("lookup:{}", resolved.lookup),
        )
        .await?;
    let Some(kind) = resolved.kind else {
        return Err(ApiError::other(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_identifier",
            "give an email address or an E.164 phone number",
        )
        .with_field("identifier"));
    };
    let Some(account_id) = resolved.account_id else {
        return Err(ApiError::not_found("no account holds this identifier"));
    };
    Ok(Json(FoundAccount {
        account_id: account_id.to_string(),
        kind: kind.as_str().to_ascii_lowercase(),
    }))
}

/// This module's routes.
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(lookup_account))
}
