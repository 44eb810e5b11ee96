//! Passkeys over HTTP: register, list and remove them (signed in, under the proof policy), and
//! sign in with one, no identifier typed and no password.
//!
//! A passkey is a discoverable WebAuthn credential that verifies its user (PIN, biometrics): it
//! stands for the password and the second factor together. Every ceremony has two halves, like
//! a security key's: options with a `ceremony_id`, then the authenticator's answer with that id.
//! A ceremony is for one purpose, works once and expires after five minutes.
//!
//! The sign-in options name no account (`allowCredentials` is empty) and are the same for every
//! caller, so they tell nothing; every refused sign-in answers the same `401 invalid_passkey`.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use gatehouse_domain::account::AccountStatus;
use gatehouse_domain::{AccountCommand, RegisterPasskey, SignInWithPasskey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential,
};

use super::login::{signed_in, LoginResponse};
use super::mfa::{account_label, conflict};
use super::ApiJson;
use crate::error::ApiError;
use crate::metadata::metadata;
use crate::proof::{ceremony_unknown, data_key, relying_party, ProofInput};
use crate::request::{Authenticated, Caller};
use crate::state::AppState;
use crate::throttle::Route;
use crate::tokens;
use crate::webauthn::{self, Purpose, NO_ACCOUNT};

/// A registered passkey.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyView {
    /// Credential id (base64url).
    pub key_id: String,
    /// The owner's name for it.
    pub name: String,
    /// When it was registered.
    pub registered_at: DateTime<Utc>,
    /// When it last signed in.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The account's passkeys.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyList {
    /// Oldest first.
    pub passkeys: Vec<PasskeyView>,
}

/// Options for `navigator.credentials.create` or `.get`, and the ceremony to answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyCeremony {
    /// Send it back with the authenticator's answer (single use, 5 minutes).
    pub ceremony_id: String,
    /// `CreationChallengeResponse` (registration: a resident key and user verification
    /// required) or `RequestChallengeResponse` (sign-in: empty `allowCredentials`, user
    /// verification required): pass `public_key` to the browser.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

/// Finishes registering a passkey.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterPasskeyRequest {
    /// From `POST /v1/me/passkeys/registration`.
    #[schema(max_length = 64)]
    pub ceremony_id: String,
    /// A name for the passkey (1 to 64 characters, no control characters).
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// The password and, when a second factor is enrolled, a current one: a session alone
    /// cannot add a way in.
    pub proof: Option<ProofInput>,
    /// The `RegisterPublicKeyCredential` from `navigator.credentials.create`.
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// A passkey registered.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredPasskey {
    /// Credential id (base64url).
    pub key_id: String,
    /// Its name.
    pub name: String,
}

/// Removes a passkey.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemovePasskeyRequest {
    /// The password and, when a second factor is enrolled, a current one.
    pub proof: Option<ProofInput>,
}

/// Signs in with a passkey.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeySignInRequest {
    /// From `POST /v1/login/passkey/options`.
    #[schema(max_length = 64)]
    pub ceremony_id: String,
    /// The `PublicKeyCredential` from `navigator.credentials.get` (with its `userHandle`).
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
    /// Device id chosen by the frontend, recorded in the login history.
    #[schema(max_length = 128)]
    pub device_id: Option<String>,
    /// The `device_token` of an earlier sign-in on this device (renewed by this one).
    #[schema(max_length = 512)]
    pub device_token: Option<String>,
}

fn invalid_passkey() -> ApiError {
    ApiError::other(
        StatusCode::UNAUTHORIZED,
        "invalid_passkey",
        "the passkey sign-in did not succeed; ask for new options and try again",
    )
}

fn ceremony_id_ok(raw: &str) -> Result<(), ApiError> {
    if raw.len() > 64 {
        return Err(ApiError::bad_request("ceremony_id is too long").with_field("ceremony_id"));
    }
    Ok(())
}

/// Lists the account's passkeys.
#[utoipa::path(get, path = "/v1/me/passkeys", tag = "passkeys", security(("bearer" = [])),
    responses((status = 200, body = PasskeyList), (status = 401, body = crate::error::ErrorBody)))]
pub async fn list(auth: Authenticated) -> Json<PasskeyList> {
    let mut passkeys: Vec<PasskeyView> = auth
        .account
        .passkeys()
        .iter()
        .map(|(id, k)| PasskeyView {
            key_id: id.clone(),
            name: k.name.clone(),
            registered_at: k.registered_at,
            last_used_at: k.last_used_at,
        })
        .collect();
    passkeys.sort_by(|a, b| (a.registered_at, &a.key_id).cmp(&(b.registered_at, &b.key_id)));
    Json(PasskeyList { passkeys })
}

/// Starts registering a passkey: options for `navigator.credentials.create` that ask for a
/// discoverable credential with user verification.
#[utoipa::path(post, path = "/v1/me/passkeys/registration", tag = "passkeys", security(("bearer" = [])),
    responses(
        (status = 200, body = PasskeyCeremony),
        (status = 401, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "`too_many_passkeys` (10 at most)"),
        (status = 503, body = crate::error::ErrorBody, description = "`security_keys_unavailable`: WebAuthn is not configured on this server"),
    ))]
pub async fn start_registration(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<PasskeyCeremony>, ApiError> {
    let id = auth.account_id();
    let relying_party = relying_party(&state)?;
    if auth.account.passkeys().len() >= gatehouse_domain::MAX_PASSKEYS {
        return Err(gatehouse_domain::AccountError::TooManyPasskeys.into());
    }
    let key = data_key(&state, &id).await?;
    let label = account_label(&key, &id, &auth.account);
    // Every credential the account holds already, in either role, is excluded.
    let exclude = webauthn::account_keys(&auth.account)
        .iter()
        .map(|k| k.cred_id().clone())
        .chain(
            webauthn::account_passkeys(&auth.account)
                .iter()
                .map(|(_, k)| k.cred_id().clone()),
        )
        .collect();
    let (options, ceremony) = relying_party
        .start_passkey_registration(auth.token.account_id, &label, exclude)
        .map_err(ApiError::internal)?;
    let ceremony_id = webauthn::keep_ceremony(
        state.store(),
        &id,
        Purpose::PasskeyRegistration,
        &ceremony,
        auth.now,
    )
    .await?;
    Ok(Json(PasskeyCeremony {
        ceremony_id: ceremony_id.to_string(),
        options: serde_json::to_value(options).map_err(ApiError::internal)?,
    }))
}

/// Finishes registering a passkey with the authenticator's answer and the proof (the password
/// and, when a second factor is enrolled, a current one). Starts the factor-added cooldown;
/// every verified channel is told.
#[utoipa::path(post, path = "/v1/me/passkeys", tag = "passkeys", security(("bearer" = [])),
    request_body = RegisterPasskeyRequest,
    responses(
        (status = 201, body = RegisteredPasskey),
        (status = 400, body = crate::error::ErrorBody, description = "malformed `credential`, `name` or `proof`"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`invalid_password`, `invalid_second_factor` (both count toward the lockout), `second_factor_required`"),
        (status = 404, body = crate::error::ErrorBody, description = "the credential is already one of this account's keys"),
        (status = 409, body = crate::error::ErrorBody, description = "`ceremony_unknown` (spent, expired, another account's or another purpose's), `passkey_taken` (registered to another account), `too_many_passkeys`"),
        (status = 422, body = crate::error::ErrorBody, description = "`invalid_passkey`: the answer does not check out (origin, challenge, signature, no user verification)"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked`, `rate_limited`"),
        (status = 503, body = crate::error::ErrorBody, description = "`security_keys_unavailable`"),
    ))]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    ApiJson(req): ApiJson<RegisterPasskeyRequest>,
) -> Result<(StatusCode, Json<RegisteredPasskey>), ApiError> {
    let id = auth.account_id();
    state
        .throttle()
        .admit(
            Route::SignedIn,
            caller.ip,
            Some(&format!("passkey-register:{id}")),
        )
        .await?;
    ceremony_id_ok(&req.ceremony_id)?;
    let name = super::object_name(&req.name)?;
    let input = req.proof.clone().unwrap_or_default();
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
    let ceremony = webauthn::take_ceremony::<PasskeyRegistration>(
        state.store(),
        &req.ceremony_id,
        &id,
        Purpose::PasskeyRegistration,
        auth.now,
    )
    .await?
    .ok_or_else(ceremony_unknown)?;
    let passkey = relying_party
        .finish_passkey_registration(&answer, &ceremony)
        .map_err(|e| {
            tracing::info!(error = %e, "passkey registration refused");
            ApiError::validation(
                "invalid_passkey",
                "the authenticator's answer does not check out (a passkey must verify its user); start again",
            )
            .with_field("credential")
        })?;
    let key_id = webauthn::key_id(passkey.cred_id());
    let credential = serde_json::to_value(&passkey).map_err(ApiError::internal)?;
    // One credential, one account: passkeys and security keys share the claims.
    if !webauthn::claim_key(state.store(), &key_id, &id, auth.now).await? {
        return Err(conflict(
            "passkey_taken",
            "this passkey is already registered",
        ));
    }
    let context = caller.context(None);
    let executed = state
        .accounts()
        .execute(
            &id,
            || {
                AccountCommand::RegisterPasskey(RegisterPasskey {
                    key_id: key_id.clone(),
                    name: name.clone(),
                    credential: credential.clone(),
                    proof: proof.clone(),
                    at: auth.now,
                    context: context.clone(),
                })
            },
            metadata(),
        )
        .await;
    let refused = match executed {
        Ok(executed) => crate::proof::refusal(&executed.events, auth.now),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = refused {
        // Refused (wrong password, already this account's key…): the claim goes, unless the
        // credential is one of this account's keys already (its claim stays with it).
        let held = auth.account.security_keys().contains_key(&key_id)
            || auth.account.passkeys().contains_key(&key_id);
        if !held {
            if let Err(release) = webauthn::release_key(state.store(), &key_id, &id).await {
                tracing::error!(error = %release, "could not release a passkey claim");
            }
        }
        return Err(e);
    }
    Ok((
        StatusCode::CREATED,
        Json(RegisteredPasskey { key_id, name }),
    ))
}

/// Removes a passkey: the password and, when a second factor is enrolled, a current one; every
/// verified channel is told.
#[utoipa::path(delete, path = "/v1/me/passkeys/{key_id}", tag = "passkeys", security(("bearer" = [])),
    params(("key_id" = String, Path, description = "Credential id")),
    request_body = RemovePasskeyRequest,
    responses(
        (status = 204),
        (status = 400, body = crate::error::ErrorBody, description = "`invalid_request` (a malformed proof)"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`invalid_password`, `invalid_second_factor` (both count toward the lockout), `second_factor_required`"),
        (status = 404, body = crate::error::ErrorBody, description = "no such passkey on this account"),
        (status = 409, body = crate::error::ErrorBody, description = "`ceremony_unknown` (a security-key proof's ceremony)"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked`, `rate_limited`"),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    Path(key_id): Path<String>,
    ApiJson(req): ApiJson<RemovePasskeyRequest>,
) -> Result<StatusCode, ApiError> {
    let id = auth.account_id();
    state
        .throttle()
        .admit(
            Route::SignedIn,
            caller.ip,
            Some(&format!("passkey-removal:{id}")),
        )
        .await?;
    if !auth.account.passkeys().contains_key(&key_id) {
        return Err(ApiError::not_found("no such passkey"));
    }
    let proof = crate::proof::resolve(
        &state,
        &id,
        &auth.account,
        &req.proof.unwrap_or_default(),
        Some(auth.session_id()),
        auth.now,
    )
    .await?;
    let context = caller.context(None);
    let executed = state
        .accounts()
        .execute(
            &id,
            || AccountCommand::RemovePasskey {
                key_id: key_id.clone(),
                proof: proof.clone(),
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await?;
    crate::proof::refusal(&executed.events, auth.now)?;
    webauthn::release_key(state.store(), &key_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Options for a passkey sign-in (`navigator.credentials.get`): no identifier is asked and the
/// options name no account (`allowCredentials` is empty, the same answer for every caller);
/// user verification required.
#[utoipa::path(post, path = "/v1/login/passkey/options", tag = "sessions",
    responses(
        (status = 200, body = PasskeyCeremony),
        (status = 429, body = crate::error::ErrorBody, description = "`rate_limited` (with `retry_after` and `Retry-After`): over the sign-in route's per-IP or per-network limit (LOGIN)"),
        (status = 503, body = crate::error::ErrorBody, description = "`security_keys_unavailable`: WebAuthn is not configured on this server"),
    ))]
pub async fn sign_in_options(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<PasskeyCeremony>, ApiError> {
    state
        .throttle()
        .admit(Route::Login, caller.ip, None)
        .await?;
    let relying_party = relying_party(&state)?;
    let (options, ceremony) = relying_party
        .start_passkey_sign_in()
        .map_err(ApiError::internal)?;
    let ceremony_id = webauthn::keep_ceremony(
        state.store(),
        NO_ACCOUNT,
        Purpose::PasskeySignIn,
        &ceremony,
        Utc::now(),
    )
    .await?;
    Ok(Json(PasskeyCeremony {
        ceremony_id: ceremony_id.to_string(),
        options: serde_json::to_value(options).map_err(ApiError::internal)?,
    }))
}

/// Signs in with a passkey: the authenticator's answer to the options of
/// `POST /v1/login/passkey/options`. The passkey stands for the password and the second factor
/// (it must verify its user). The answer is the one of `POST /v1/login` (a session and a device
/// token), with the same login history, new-sign-in notice and alerts. A lock caused by wrong
/// passwords does not refuse it, nor does it lift the lock.
#[utoipa::path(post, path = "/v1/login/passkey", tag = "sessions", request_body = PasskeySignInRequest,
    responses(
        (status = 200, body = LoginResponse, description = "A session with its `device_token`"),
        (status = 400, body = crate::error::ErrorBody, description = "Malformed request (`credential` not a `PublicKeyCredential`, an over-long field)"),
        (status = 401, body = crate::error::ErrorBody, description = "`invalid_passkey`, one answer for every refusal: an unknown, spent or expired ceremony, an answer naming no account or an unknown one, a passkey the account does not hold, another origin, a bad signature, no user verification, a signature counter that did not move forward (recorded as a possible clone), an account without a verified contact"),
        (status = 403, body = crate::error::ErrorBody, description = "`account_frozen` with `next_action: \"unfreeze\"`: the passkey proved itself but the account is frozen"),
        (status = 429, body = crate::error::ErrorBody, description = "`rate_limited` (with `retry_after` and `Retry-After`): over the sign-in route's per-IP or per-network limit (LOGIN; no per-account key: the answer's user handle is the caller's to write), or the client's network is flagged by a credential-stuffing alert"),
        (status = 503, body = crate::error::ErrorBody, description = "`security_keys_unavailable`"),
    ))]
pub async fn sign_in(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<PasskeySignInRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    ceremony_id_ok(&req.ceremony_id)?;
    if req
        .device_id
        .as_ref()
        .is_some_and(|d| d.chars().count() > 128)
    {
        return Err(ApiError::bad_request("device_id is too long").with_field("device_id"));
    }
    if req
        .device_token
        .as_ref()
        .is_some_and(|t| t.chars().count() > 512)
    {
        return Err(ApiError::bad_request("device_token is too long").with_field("device_token"));
    }
    let answer: PublicKeyCredential =
        serde_json::from_value(req.credential.clone()).map_err(|_| {
            ApiError::bad_request("credential is not a WebAuthn PublicKeyCredential")
                .with_field("credential")
        })?;
    let relying_party = relying_party(&state)?;
    // Per IP and network only: a per-account key would be named by the answer's user handle,
    // which anyone may write, so strangers could spend the owner's budget (issue #18).
    state
        .throttle()
        .admit(Route::Login, caller.ip, None)
        .await?;
    state
        .protection()
        .admit_login(state.store(), caller.ip)
        .await?;
    let now = Utc::now();
    // The ceremony goes first, whatever follows: an answer is judged once.
    let ceremony = webauthn::take_ceremony::<DiscoverableAuthentication>(
        state.store(),
        &req.ceremony_id,
        NO_ACCOUNT,
        Purpose::PasskeySignIn,
        now,
    )
    .await?
    .ok_or_else(invalid_passkey)?;
    let (account_uuid, key_id) =
        webauthn::passkey_holder(relying_party, &answer).ok_or_else(invalid_passkey)?;
    let aggregate_id = account_uuid.to_string();
    let account = state.accounts().load(&aggregate_id).await?;
    if account.status() != AccountStatus::Active {
        return Err(invalid_passkey());
    }
    let (check, user_verified) =
        webauthn::check_passkey(relying_party, &account, &key_id, &answer, ceremony);
    let issued = tokens::issue(account_uuid)?;
    let device = super::device_claim(&state, req.device_token.as_deref(), &aggregate_id);
    let context = caller.context(req.device_id);
    let executed = state
        .accounts()
        .execute(
            &aggregate_id,
            || {
                AccountCommand::SignInWithPasskey(SignInWithPasskey {
                    key_id: key_id.clone(),
                    check: check.clone(),
                    user_verified,
                    grant: issued.grant.clone(),
                    device: device.clone(),
                    at: now,
                    context: context.clone(),
                })
            },
            metadata(),
        )
        .await?;
    if let Some(session) = signed_in(
        &state,
        &aggregate_id,
        account_uuid,
        &issued,
        &executed.events,
    )? {
        return Ok(Json(session));
    }
    // The passkey proved itself but the account is frozen: said, with what to do (as a right
    // password learns it).
    if executed.events.iter().any(|e| {
        matches!(
            e.payload.fact,
            gatehouse_domain::AccountFact::LoginRefusedWhileFrozen { .. }
        )
    }) {
        return Err(crate::error::account_frozen());
    }
    Err(invalid_passkey())
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(list, register))
        .routes(utoipa_axum::routes!(start_registration))
        .routes(utoipa_axum::routes!(remove))
        .routes(utoipa_axum::routes!(sign_in_options))
        .routes(utoipa_axum::routes!(sign_in))
}
