//! Security keys (WebAuthn) over HTTP: register, list, rename, remove, and the challenges a key
//! answers to sign in or to confirm a sensitive change.
//!
//! Every ceremony has two halves: the server answers the options for
//! `navigator.credentials.create/get` with a `ceremony_id`, and the frontend sends the browser's
//! answer back with that id. A ceremony is for one account and one purpose, works once, and
//! expires after five minutes.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use gatehouse_domain::{AccountCommand, AccountFact};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use webauthn_rs::prelude::{RegisterPublicKeyCredential, SecurityKeyRegistration};

use super::mfa::{
    account_label, conflict, data_key, invalid_challenge, mfa_error, relying_party, ProofRequest,
};
use super::{metadata, store_error, ApiJson};
use crate::error::ApiError;
use crate::factors;
use crate::proof::ProofInput;
use crate::request::{Authenticated, Caller};
use crate::state::AppState;
use crate::throttle::Route;
use crate::webauthn::{self, Purpose};

/// A registered security key.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityKeyView {
    /// Credential id (base64url).
    pub key_id: String,
    /// The owner's name for it.
    pub name: String,
    /// When it was registered.
    pub registered_at: DateTime<Utc>,
    /// When it last signed in or confirmed a change.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The account's security keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityKeyList {
    /// Oldest first.
    pub keys: Vec<SecurityKeyView>,
}

/// Options for `navigator.credentials.create`, and the ceremony to answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationChallenge {
    /// Send it back with the key's answer.
    pub ceremony_id: String,
    /// `CreationChallengeResponse`: pass `public_key` to `navigator.credentials.create`.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

/// Options for `navigator.credentials.get`, and the ceremony to answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssertionChallenge {
    /// Send it back with the key's answer.
    pub ceremony_id: String,
    /// `RequestChallengeResponse`: pass `public_key` to `navigator.credentials.get`.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

/// Finishes registering a key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterKeyRequest {
    /// From `POST /v1/me/security-keys/registration`.
    pub ceremony_id: String,
    /// A name for the key (1 to 64 characters).
    pub name: String,
    /// The password and, when a factor is already enrolled, a current one (another key's
    /// assertion, TOTP or a backup code): a session alone cannot add a factor.
    pub proof: Option<ProofInput>,
    /// Deprecated: use `proof.password`.
    #[schema(deprecated)]
    pub password: Option<String>,
    /// The `RegisterPublicKeyCredential` from `navigator.credentials.create`.
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// A key registered; the backup codes come with the account's first second factor.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredKey {
    /// Credential id (base64url).
    pub key_id: String,
    /// Its name.
    pub name: String,
    /// Ten single-use codes, shown this once, when this is the first second factor.
    pub backup_codes: Option<Vec<String>>,
}

/// Renames a key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameKeyRequest {
    /// The new name (1 to 64 characters).
    pub name: String,
}

/// Starts the security-key answer to a sign-in challenge.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginKeyRequest {
    /// From the `POST /v1/login` answer.
    pub challenge_id: String,
}

fn no_security_key() -> ApiError {
    conflict("no_security_key", "no security key is registered")
}

/// Maps the security-key refusals; the rest like the other factors.
fn key_error(
    e: gatehouse_projections::store::ExecuteError<gatehouse_domain::AccountError>,
) -> ApiError {
    use gatehouse_domain::AccountError as E;
    use gatehouse_projections::store::ExecuteError::Refused;
    match e {
        Refused(E::SecurityKeyUnknown) => ApiError::not_found("no such security key"),
        Refused(E::TooManySecurityKeys) => conflict(
            "too_many_security_keys",
            "the account has as many security keys as allowed; remove one first",
        ),
        other => mfa_error(other),
    }
}

/// Lists the account's security keys.
#[utoipa::path(get, path = "/v1/me/security-keys", tag = "second factors", security(("bearer" = [])),
    responses((status = 200, body = SecurityKeyList), (status = 401, body = crate::error::ErrorBody)))]
pub async fn list(auth: Authenticated) -> Json<SecurityKeyList> {
    let mut keys: Vec<SecurityKeyView> = auth
        .account
        .security_keys()
        .iter()
        .map(|(id, k)| SecurityKeyView {
            key_id: id.clone(),
            name: k.name.clone(),
            registered_at: k.registered_at,
            last_used_at: k.last_used_at,
        })
        .collect();
    keys.sort_by(|a, b| (a.registered_at, &a.key_id).cmp(&(b.registered_at, &b.key_id)));
    Json(SecurityKeyList { keys })
}

/// Starts registering a security key: options for `navigator.credentials.create`.
#[utoipa::path(post, path = "/v1/me/security-keys/registration", tag = "second factors", security(("bearer" = [])),
    responses(
        (status = 200, body = RegistrationChallenge),
        (status = 401, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "`too_many_security_keys`"),
    ))]
pub async fn start_registration(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<RegistrationChallenge>, ApiError> {
    let id = auth.account_id();
    let relying_party = relying_party(&state)?;
    if auth.account.security_keys().len() >= gatehouse_domain::account::MAX_SECURITY_KEYS {
        return Err(key_error(
            gatehouse_projections::store::ExecuteError::Refused(
                gatehouse_domain::AccountError::TooManySecurityKeys,
            ),
        ));
    }
    let key = data_key(&state, &id).await?;
    let label = account_label(&key, &id, &auth.account);
    let existing = webauthn::account_keys(&auth.account);
    let (options, ceremony) = relying_party
        .start_registration(auth.token.account_id, &label, &existing)
        .map_err(ApiError::internal)?;
    let ceremony_id = webauthn::keep_ceremony(
        state.store(),
        &id,
        Purpose::Registration,
        &ceremony,
        auth.now,
    )
    .await
    .map_err(store_error)?;
    Ok(Json(RegistrationChallenge {
        ceremony_id: ceremony_id.to_string(),
        options: serde_json::to_value(options).map_err(ApiError::internal)?,
    }))
}

/// Finishes registering a security key with the browser's answer and the password. The first
/// second factor also brings ten backup codes, shown this once.
#[utoipa::path(post, path = "/v1/me/security-keys", tag = "second factors", security(("bearer" = [])),
    request_body = RegisterKeyRequest,
    responses(
        (status = 201, body = RegisteredKey),
        (status = 400, body = crate::error::ErrorBody, description = "malformed `credential` or `name`"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`invalid_password`, `invalid_second_factor` (both count toward the lockout), `second_factor_required`"),
        (status = 409, body = crate::error::ErrorBody, description = "`ceremony_unknown`, `security_key_taken`, `too_many_security_keys`"),
        (status = 422, body = crate::error::ErrorBody, description = "`invalid_security_key`: the answer does not check out (origin, challenge, signature)"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked`, `rate_limited`"),
    ))]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    ApiJson(req): ApiJson<RegisterKeyRequest>,
) -> Result<(StatusCode, Json<RegisteredKey>), ApiError> {
    let id = auth.account_id();
    state
        .throttle()
        .admit(
            Route::SignedIn,
            caller.ip,
            Some(&format!("key-register:{id}")),
        )
        .await?;
    let name = super::object_name(&req.name)?;
    let input = ProofInput::or_flat(
        req.proof.clone(),
        ProofInput {
            password: req.password.clone(),
            ..ProofInput::default()
        },
    );
    let proof = crate::proof::resolve(
        &state,
        &id,
        &auth.account,
        &input,
        Some(auth.session_id()),
        auth.now,
    )
    .await?;
    let answer: RegisterPublicKeyCredential = serde_json::from_value(req.credential.clone())
        .map_err(|_| {
            ApiError::bad_request("credential is not a WebAuthn RegisterPublicKeyCredential")
                .with_field("credential")
        })?;
    let relying_party = relying_party(&state)?;
    let ceremony = webauthn::take_ceremony::<SecurityKeyRegistration>(
        state.store(),
        &req.ceremony_id,
        &id,
        Purpose::Registration,
        auth.now,
    )
    .await
    .map_err(store_error)?
    .ok_or_else(super::mfa::ceremony_unknown)?;
    let key = relying_party
        .finish_registration(&answer, &ceremony)
        .map_err(|e| {
            tracing::info!(error = %e, "security key registration refused");
            ApiError::validation(
                "invalid_security_key",
                "the security key's answer does not check out; start again",
            )
            .with_field("credential")
        })?;
    let key_id = webauthn::key_id(key.cred_id());
    let credential = serde_json::to_value(&key).map_err(ApiError::internal)?;
    if auth.account.security_keys().contains_key(&key_id)
        || !webauthn::claim_key(state.store(), &key_id, &id, auth.now)
            .await
            .map_err(store_error)?
    {
        return Err(conflict(
            "security_key_taken",
            "this security key is already registered",
        ));
    }
    let (codes, verifiers) =
        factors::backup_codes(state.keys(), &id).map_err(ApiError::internal)?;
    let context = caller.context(None);
    let executed = state
        .accounts()
        .execute(
            &id,
            || AccountCommand::RegisterSecurityKey {
                key_id: key_id.clone(),
                name: name.clone(),
                credential: credential.clone(),
                proof: proof.clone(),
                backup_verifiers: verifiers.clone(),
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await;
    let refused = match executed {
        Ok(executed) => {
            state.runner().nudge();
            crate::proof::refusal(&executed.events, auth.now).map(|()| executed)
        }
        Err(e) => Err(key_error(e)),
    };
    let executed = match refused {
        Ok(executed) => executed,
        Err(e) => {
            // Refused (wrong password…): the credential id is free again.
            if let Err(release) = webauthn::release_key(state.store(), &key_id, &id).await {
                tracing::error!(error = %release, "could not release a security key claim");
            }
            return Err(e);
        }
    };
    let codes_issued = executed
        .events
        .iter()
        .any(|e| matches!(e.payload.fact, AccountFact::BackupCodesGenerated { .. }));
    Ok((
        StatusCode::CREATED,
        Json(RegisteredKey {
            key_id,
            name,
            backup_codes: codes_issued.then_some(codes),
        }),
    ))
}

/// Renames a security key.
#[utoipa::path(patch, path = "/v1/me/security-keys/{key_id}", tag = "second factors", security(("bearer" = [])),
    params(("key_id" = String, Path, description = "Credential id")),
    request_body = RenameKeyRequest,
    responses(
        (status = 204),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
    ))]
pub async fn rename(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(key_id): Path<String>,
    ApiJson(req): ApiJson<RenameKeyRequest>,
) -> Result<StatusCode, ApiError> {
    let id = auth.account_id();
    let name = super::object_name(&req.name)?;
    state
        .accounts()
        .execute(
            &id,
            || AccountCommand::RenameSecurityKey {
                key_id: key_id.clone(),
                name: name.clone(),
                at: auth.now,
            },
            metadata(),
        )
        .await
        .map_err(key_error)?;
    state.runner().nudge();
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a security key: password and a current factor required (the key itself, another
/// key, TOTP or a backup code); refused during a high-risk cooldown; starts one; the owner is
/// told on every verified channel. Removing the last factor turns two-step sign-in off.
#[utoipa::path(delete, path = "/v1/me/security-keys/{key_id}", tag = "second factors", security(("bearer" = [])),
    params(("key_id" = String, Path, description = "Credential id")),
    request_body = ProofRequest,
    responses(
        (status = 204),
        (status = 400, body = crate::error::ErrorBody, description = "`invalid_request` (a malformed proof)"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`invalid_password`, `invalid_second_factor` (both count toward the lockout), `second_factor_required`, `high_risk_cooldown` (with `retry_after`)"),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "`ceremony_unknown`"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked`, `rate_limited`"),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    Path(key_id): Path<String>,
    ApiJson(req): ApiJson<ProofRequest>,
) -> Result<StatusCode, ApiError> {
    let id = auth.account_id();
    state
        .throttle()
        .admit(
            Route::SignedIn,
            caller.ip,
            Some(&format!("factor-removal:{id}")),
        )
        .await?;
    if !auth.account.security_keys().contains_key(&key_id) {
        return Err(ApiError::not_found("no such security key"));
    }
    let proof = crate::proof::resolve(
        &state,
        &id,
        &auth.account,
        &req.input(),
        Some(auth.session_id()),
        auth.now,
    )
    .await?;
    let context = caller.context(None);
    let executed = state
        .accounts()
        .execute(
            &id,
            || AccountCommand::RemoveSecurityKey {
                key_id: key_id.clone(),
                proof: proof.clone(),
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await
        .map_err(key_error)?;
    state.runner().nudge();
    crate::proof::refusal(&executed.events, auth.now)?;
    webauthn::release_key(state.store(), &key_id, &id)
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A challenge for the account's keys, to confirm a sensitive change (removal, new backup
/// codes) with `method: security_key`.
#[utoipa::path(post, path = "/v1/me/security-keys/challenge", tag = "second factors", security(("bearer" = [])),
    responses(
        (status = 200, body = AssertionChallenge),
        (status = 401, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "`no_security_key`"),
    ))]
pub async fn start_assertion(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<AssertionChallenge>, ApiError> {
    assertion_challenge(&state, &auth.account_id(), &auth.account, auth.now)
        .await
        .map(Json)
}

/// The security-key answer to a sign-in challenge: options for `navigator.credentials.get`.
/// Finish with `POST /v1/login/mfa` `{challenge_id, method: "security_key", ceremony_id,
/// assertion}`.
#[utoipa::path(post, path = "/v1/login/mfa/security-key", tag = "sessions", request_body = LoginKeyRequest,
    responses(
        (status = 200, body = AssertionChallenge),
        (status = 401, body = crate::error::ErrorBody, description = "`invalid_challenge`: the id is not a sign-in challenge this server issued, or it was answered or expired (one answer for all, whoever the account)"),
        (status = 409, body = crate::error::ErrorBody, description = "`no_security_key`: the (valid) challenge's account has no security key"),
        (status = 429, body = crate::error::ErrorBody, description = "`rate_limited` (with `retry_after` and `Retry-After`): over the route's per-IP, per-network or per-identifier limit (LOGIN_MFA; the identifier is the challenge)"),
    ))]
pub async fn start_login_assertion(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<LoginKeyRequest>,
) -> Result<Json<AssertionChallenge>, ApiError> {
    let (aggregate_id, challenge_id) = state
        .keys()
        .open_challenge_token(&req.challenge_id)
        .ok_or_else(invalid_challenge)?;
    state
        .throttle()
        .admit(Route::LoginMfa, caller.ip, Some(&challenge_id.to_string()))
        .await?;
    let account = state
        .accounts()
        .load(&aggregate_id)
        .await
        .map_err(super::execute_error)?;
    // Only a challenge this account issued, unanswered and unexpired, gets options (and with
    // them the account's key ids); anything else answers like a forged id.
    let now = Utc::now();
    if account.open_challenge(challenge_id, now).is_none() {
        return Err(invalid_challenge());
    }
    assertion_challenge(&state, &aggregate_id, &account, now)
        .await
        .map(Json)
}

pub(crate) async fn assertion_challenge(
    state: &AppState,
    account_id: &str,
    account: &gatehouse_domain::Account,
    now: DateTime<Utc>,
) -> Result<AssertionChallenge, ApiError> {
    let relying_party = relying_party(state)?;
    let keys = webauthn::account_keys(account);
    if keys.is_empty() {
        return Err(no_security_key());
    }
    let (options, ceremony) = relying_party
        .start_authentication(&keys)
        .map_err(ApiError::internal)?;
    let ceremony_id = webauthn::keep_ceremony(
        state.store(),
        account_id,
        Purpose::Assertion,
        &ceremony,
        now,
    )
    .await
    .map_err(store_error)?;
    Ok(AssertionChallenge {
        ceremony_id: ceremony_id.to_string(),
        options: serde_json::to_value(options).map_err(ApiError::internal)?,
    })
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(list, register))
        .routes(utoipa_axum::routes!(start_registration))
        .routes(utoipa_axum::routes!(start_assertion))
        .routes(utoipa_axum::routes!(rename, remove))
        .routes(utoipa_axum::routes!(start_login_assertion))
}
