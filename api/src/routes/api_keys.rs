//! API keys over HTTP: the owner creates, lists, rotates and revokes them; the platform's backend
//! verifies a presented key.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use gatehouse_domain::{AccountCommand, ApiScope, NewApiKey};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{execute_error, metadata, store_error, ApiJson};
use crate::api_keys;
use crate::error::ApiError;
use crate::keys::random_bytes;
use crate::request::session_proof;
use crate::request::{Authenticated, Caller};
use crate::staff::{PlatformChecks, Staff};
use crate::state::AppState;

/// Most allowlist entries per key.
const MAX_ALLOWED_IPS: usize = 32;

/// Creates an API key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// A name (1 to 64 characters).
    pub name: String,
    /// `read`, `trade`, `withdraw` (at least one). `withdraw` needs a stepped-up session, is
    /// refused during a high-risk cooldown and starts one.
    #[schema(value_type = Vec<String>)]
    pub scopes: Vec<ApiScope>,
    /// Client addresses or CIDR networks it may be used from (at most 32); none: anywhere.
    #[serde(default)]
    pub allowed_ips: Vec<String>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key's secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedKey {
    /// Key id.
    pub key_id: Uuid,
    /// The key (`ghk1.…`): give it to the bot; it is not shown again.
    pub key: String,
    /// After a rotation: until when the previous secret still works.
    pub previous_valid_until: Option<DateTime<Utc>>,
}

/// An API key as its owner sees it (never the secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// Key id.
    pub key_id: Uuid,
    /// Name.
    pub name: String,
    /// Scopes.
    #[schema(value_type = Vec<String>)]
    pub scopes: Vec<ApiScope>,
    /// Allowlist.
    pub allowed_ips: Vec<String>,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last rotation.
    pub rotated_at: Option<DateTime<Utc>>,
    /// End of the previous secret's grace period, if it still runs.
    pub previous_valid_until: Option<DateTime<Utc>>,
    /// Revocation.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last successful verification.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Client address of the last successful verification.
    pub last_used_ip: Option<String>,
}

/// The account's API keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// Oldest first.
    pub keys: Vec<KeyView>,
}

/// How many keys a revoke-all ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    /// Keys revoked.
    pub revoked: usize,
}

/// A key the platform was presented with.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The key as presented.
    pub key: String,
    /// The client address it was presented from.
    pub ip: Option<String>,
}

/// The verdict on a key.
#[derive(Debug, Serialize, ToSchema)]
pub struct Verdict {
    /// Whether the key is good.
    pub valid: bool,
    /// When refused: `invalid_key`, `revoked`, `expired`, `rotated`, `ip_not_allowed`.
    pub reason: Option<&'static str>,
    /// The account it acts for (when valid).
    pub account_id: Option<Uuid>,
    /// The key (when valid).
    pub key_id: Option<Uuid>,
    /// What it may do (when valid).
    #[schema(value_type = Option<Vec<String>>)]
    pub scopes: Option<Vec<ApiScope>>,
    /// While set, the account's withdrawals are refused (see `POST /v1/withdrawals/check`).
    pub high_risk_blocked_until: Option<DateTime<Utc>>,
}

fn checked_networks(raw: &[String]) -> Result<Vec<String>, ApiError> {
    if raw.len() > MAX_ALLOWED_IPS {
        return Err(ApiError::bad_request("at most 32 allowed addresses").with_field("allowed_ips"));
    }
    raw.iter()
        .map(|n| {
            gatehouse_domain::parse_network(n)
                .map(|(addr, prefix)| format!("{addr}/{prefix}"))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`{}` is not an IP address or CIDR network",
                        n.chars().take(64).collect::<String>()
                    ))
                    .with_field("allowed_ips")
                })
        })
        .collect()
}

fn new_key_id() -> Result<Uuid, ApiError> {
    Ok(
        uuid::Builder::from_random_bytes(random_bytes::<16>().map_err(ApiError::internal)?)
            .into_uuid(),
    )
}

/// Lists the account's API keys with their last use.
#[utoipa::path(get, path = "/v1/me/api-keys", tag = "api keys", security(("bearer" = [])),
    responses((status = 200, body = KeyList), (status = 401, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<KeyList>, ApiError> {
    let id = auth.account_id();
    let uses = api_keys::last_uses(state.store(), &id)
        .await
        .map_err(store_error)?;
    let mut keys: Vec<KeyView> = auth
        .account
        .api_keys()
        .iter()
        .map(|(key_id, k)| {
            let used = uses.get(key_id);
            KeyView {
                key_id: *key_id,
                name: k.name.clone(),
                scopes: k.scopes.clone(),
                allowed_ips: k.allowed_ips.clone(),
                status: if k.revoked_at.is_some() {
                    "revoked"
                } else if k.expires_at.is_some_and(|e| auth.now >= e) {
                    "expired"
                } else {
                    "active"
                },
                created_at: k.created_at,
                expires_at: k.expires_at,
                rotated_at: k.rotated_at,
                previous_valid_until: k
                    .previous
                    .as_ref()
                    .map(|(_, until)| *until)
                    .filter(|until| auth.now < *until),
                revoked_at: k.revoked_at,
                last_used_at: used.map(|u| u.at),
                last_used_ip: used.and_then(|u| u.ip.clone()),
            }
        })
        .collect();
    keys.sort_by_key(|k| (k.created_at, k.key_id));
    Ok(Json(KeyList { keys }))
}

/// Creates an API key; its secret is in the answer, this once.
#[utoipa::path(post, path = "/v1/me/api-keys", tag = "api keys", security(("bearer" = [])),
    request_body = CreateKeyRequest,
    responses(
        (status = 201, body = IssuedKey),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`step_up_required` (every scope: `POST /v1/me/step-up` first); `withdraw` scope also: `second_factor_required`, `high_risk_cooldown`"),
        (status = 409, body = crate::error::ErrorBody, description = "`too_many_api_keys`"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    let name = super::object_name(&req.name)?;
    let allowed_ips = checked_networks(&req.allowed_ips)?;
    let mut scopes = req.scopes.clone();
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(ApiError::bad_request("give at least one scope").with_field("scopes"));
    }
    if req.expires_at.is_some_and(|e| e <= auth.now) {
        return Err(ApiError::bad_request("expires_at is in the past").with_field("expires_at"));
    }
    let id = auth.account_id();
    let key_id = new_key_id()?;
    let issued =
        api_keys::issue(state.keys(), auth.token.account_id, key_id).map_err(ApiError::internal)?;
    let context = caller.context(None);
    state
        .accounts()
        .execute(
            &id,
            || AccountCommand::CreateApiKey {
                key: NewApiKey {
                    key_id,
                    name: name.clone(),
                    scopes: scopes.clone(),
                    allowed_ips: allowed_ips.clone(),
                    expires_at: req.expires_at,
                    verifier: issued.verifier.clone(),
                },
                proof: session_proof(&auth),
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await
        .map_err(execute_error)?;
    state.runner().nudge();
    Ok((
        StatusCode::CREATED,
        Json(IssuedKey {
            key_id,
            key: issued.key.expose_secret().to_string(),
            previous_valid_until: None,
        }),
    ))
}

/// Gives a key a new secret; the previous one keeps working for the grace period
/// (`GATEHOUSE_API_KEY_ROTATION_GRACE_SECONDS`), then is refused as `rotated`.
#[utoipa::path(post, path = "/v1/me/api-keys/{key_id}/rotate", tag = "api keys", security(("bearer" = [])),
    params(("key_id" = Uuid, Path, description = "Key id")),
    responses(
        (status = 200, body = IssuedKey),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`step_up_required` (every scope); `withdraw` scope also: `second_factor_required`, `high_risk_cooldown`"),
        (status = 404, body = crate::error::ErrorBody),
    ))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    Path(key_id): Path<Uuid>,
) -> Result<Json<IssuedKey>, ApiError> {
    if !auth.account.api_keys().contains_key(&key_id) {
        return Err(ApiError::not_found(
            "no such API key (or revoked, or expired)",
        ));
    }
    let id = auth.account_id();
    let issued =
        api_keys::issue(state.keys(), auth.token.account_id, key_id).map_err(ApiError::internal)?;
    let grace = state.controls().rotation_grace;
    let context = caller.context(None);
    state
        .accounts()
        .execute(
            &id,
            || AccountCommand::RotateApiKey {
                key_id,
                verifier: issued.verifier.clone(),
                grace,
                proof: session_proof(&auth),
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await
        .map_err(execute_error)?;
    state.runner().nudge();
    Ok(Json(IssuedKey {
        key_id,
        key: issued.key.expose_secret().to_string(),
        previous_valid_until: Some(auth.now + grace),
    }))
}

/// Revokes a key at once (its previous secret too).
#[utoipa::path(delete, path = "/v1/me/api-keys/{key_id}", tag = "api keys", security(("bearer" = [])),
    params(("key_id" = Uuid, Path, description = "Key id")),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    Path(key_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    revoke_keys(&state, &caller, &auth, Some(key_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes every key of the account.
#[utoipa::path(delete, path = "/v1/me/api-keys", tag = "api keys", security(("bearer" = [])),
    responses((status = 200, body = Revoked), (status = 401, body = crate::error::ErrorBody)))]
pub async fn revoke_all(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
) -> Result<Json<Revoked>, ApiError> {
    let revoked = revoke_keys(&state, &caller, &auth, None).await?;
    Ok(Json(Revoked { revoked }))
}

async fn revoke_keys(
    state: &AppState,
    caller: &Caller,
    auth: &Authenticated,
    key_id: Option<Uuid>,
) -> Result<usize, ApiError> {
    let context = caller.context(None);
    let executed = state
        .accounts()
        .execute(
            &auth.account_id(),
            || AccountCommand::RevokeApiKeys {
                key_id,
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await
        .map_err(execute_error)?;
    state.runner().nudge();
    Ok(executed.events.len())
}

/// For the platform's backend (staff token with the `platform` role): is this key good, for
/// which account and scopes? Refusals come with their reason; a good key's use is recorded.
#[utoipa::path(post, path = "/v1/api-keys/verify", tag = "platform", security(("bearer" = [])),
    request_body = VerifyRequest,
    responses(
        (status = 200, body = Verdict),
        (status = 400, body = crate::error::ErrorBody, description = "`ip` is not an address"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    _platform: Staff<PlatformChecks>,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> Result<Json<Verdict>, ApiError> {
    let ip = match &req.ip {
        Some(text) => Some(
            text.trim()
                .parse::<std::net::IpAddr>()
                .map_err(|_| ApiError::bad_request("ip is not an IP address").with_field("ip"))?,
        ),
        None => None,
    };
    let refused = |reason: &'static str| Verdict {
        valid: false,
        reason: Some(reason),
        account_id: None,
        key_id: None,
        scopes: None,
        high_risk_blocked_until: None,
    };
    let Some(presented) = api_keys::parse(state.keys(), &req.key) else {
        return Ok(Json(refused("invalid_key")));
    };
    let account_id = presented.account_id.to_string();
    let account = state
        .accounts()
        .load(&account_id)
        .await
        .map_err(execute_error)?;
    let now = Utc::now();
    match account.check_api_key(presented.key_id, &presented.verifier, ip, now) {
        Err(refusal) => Ok(Json(refused(refusal.as_str()))),
        Ok(key) => {
            let ip_text = ip.map(|i| i.to_string());
            api_keys::record_use(
                state.store(),
                &account_id,
                presented.key_id,
                ip_text.as_deref(),
                now,
            )
            .await
            .map_err(store_error)?;
            Ok(Json(Verdict {
                valid: true,
                reason: None,
                account_id: Some(presented.account_id),
                key_id: Some(presented.key_id),
                scopes: Some(key.scopes.clone()),
                high_risk_blocked_until: account.high_risk_until(now),
            }))
        }
    }
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(list, create, revoke_all))
        .routes(utoipa_axum::routes!(rotate))
        .routes(utoipa_axum::routes!(revoke))
        .routes(utoipa_axum::routes!(verify))
}
