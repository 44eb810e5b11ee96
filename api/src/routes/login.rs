//! `POST /v1/login` and `POST /v1/logout`.
//!
//! An identifier that matches no account is sent to a stand-in aggregate named after its keyed
//! hash: it runs the same decision (a dummy password verification, the same failure count and
//! lock), so the answers and their timing cannot tell the two cases apart, and the attempts are
//! recorded.
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use gatehouse_domain::password::normalize;
use gatehouse_domain::{AccountCommand, AccountError, AccountFact, AttemptLogin};
use gatehouse_store::ExecuteError;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ApiJson;
use crate::error::{seconds_until, ApiError};
use crate::metadata::metadata;
use crate::request::{Authenticated, Caller};
use crate::state::AppState;
use crate::throttle::Route;
use crate::tokens;

/// Sign-in request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email or phone (`+` and digits); at most 320 characters (`400` beyond).
    #[schema(max_length = 320)]
    pub identifier: String,
    /// Password.
    pub password: String,
    /// Device id chosen by the frontend, recorded in the login history.
    pub device_id: Option<String>,
    /// The `device_token` of an earlier sign-in on this device: the attempt then goes through
    /// the device's own lockout door (a stranger's failures cannot lock it). An invalid, revoked,
    /// expired or other account's token counts as none.
    pub device_token: Option<String>,
}

/// Sign-in answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Bearer token for `Authorization: Bearer …`. Shown once; only its hash is stored.
    pub session_token: String,
    /// The session's id (as listed by `GET /v1/me/sessions`).
    pub session_id: Uuid,
    /// The account signed in to.
    pub account_id: Uuid,
    /// Absolute expiry; the session also ends after a period without use.
    pub expires_at: DateTime<Utc>,
    /// Keep it on this device and send it back as `device_token` with later sign-ins and
    /// self-service requests (forgot password, unlock, lost second factor). Shown once; only
    /// its hash is stored. A sign-in that presented a valid one renews it (same device, new
    /// token, trust extended by `GATEHOUSE_DEVICE_TOKEN_DAYS`); the old token then stops working.
    pub device_token: String,
}

/// The password was right and the account has a second factor: answer the challenge with
/// `POST /v1/login/mfa` within 5 minutes.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaRequired {
    /// Always `true`.
    pub mfa_required: bool,
    /// The challenge (opaque).
    pub challenge_id: String,
    /// Methods that can answer: `totp`, `backup_code`.
    pub methods: Vec<String>,
    /// When the challenge expires.
    pub expires_at: DateTime<Utc>,
}

/// Sign-in answer: a session, or a second-factor challenge.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginAnswer {
    /// Signed in.
    Session(LoginResponse),
    /// A second factor is needed.
    SecondFactorRequired(MfaRequired),
}

/// Signs in with a password.
#[utoipa::path(post, path = "/v1/login", tag = "sessions", request_body = LoginRequest,
    responses(
        (status = 200, body = LoginAnswer, description = "A session with its `device_token`, or `{mfa_required: true, challenge_id, methods, expires_at}` when a second factor is enrolled"),
        (status = 400, body = crate::error::ErrorBody, description = "Malformed request"),
        (status = 401, body = crate::error::ErrorBody, description = "`invalid_credentials`, the same for an unknown identifier, a wrong password and (with GATEHOUSE_REQUIRE_VERIFIED_CONTACT, the default) an account without a verified contact"),
        (status = 403, body = crate::error::ErrorBody, description = "`account_frozen` with `next_action: \"unfreeze\"`: the password was right but the account is frozen (a wrong password on a frozen account still answers `401 invalid_credentials`)"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked` with `retry_after` seconds (and a `Retry-After` header): the door the attempt came through is locked (the device's own door for a valid `device_token`, else the untrusted door); the same for unknown identifiers. `rate_limited` when the client's IP or network is flagged by a credential-stuffing alert and over its stricter limit. `rate_limited` (with `retry_after` and `Retry-After`): over the route's per-IP, per-network or per-identifier limit (LOGIN; a valid `device_token` for the account skips the per-identifier key)"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginAnswer>, ApiError> {
    let max_password = state.password_policy().max_bytes();
    if req.password.len() > max_password {
        // No account can have such a password: refuse before spending a hash on it.
        return Err(ApiError::bad_request("password is too long").with_field("password"));
    }
    let subject =
        super::limit_subject(&state, &req.identifier, req.device_token.as_deref()).await?;
    state
        .throttle()
        .admit(Route::Login, caller.ip, subject.as_deref())
        .await?;
    // Networks flagged by a credential-stuffing alert get a stricter limit.
    state
        .protection()
        .admit_login(state.store(), caller.ip)
        .await?;
    let password = normalize(&req.password);
    let now = Utc::now();
    let context = caller.context(req.device_id);
    // The edge caches where an identifier leads; if the account let go of it since (a contact
    // change), the account refuses and the directory is asked afresh.
    let mut fresh = false;
    let (aggregate_id, lookup, account_uuid, issued, executed) = loop {
        let resolved = super::resolve_identifier_with(&state, &req.identifier, !fresh).await?;
        let account_uuid = resolved.account_id.unwrap_or_else(Uuid::nil);
        let issued = tokens::issue(account_uuid)?;
        let device =
            super::device_claim(&state, req.device_token.as_deref(), &resolved.aggregate_id);
        let lookup = resolved.lookup;
        let result = state
            .accounts()
            .execute(
                &resolved.aggregate_id,
                || {
                    AccountCommand::AttemptLogin(AttemptLogin {
                        lookup: Some(lookup.clone()),
                        password: password.clone(),
                        grant: issued.grant.clone(),
                        device: device.clone(),
                        at: now,
                        context: context.clone(),
                    })
                },
                metadata(),
            )
            .await;
        match result {
            Err(ExecuteError::Refused(AccountError::IdentifierMoved)) if !fresh => {
                state.forget_account(&lookup);
                fresh = true;
            }
            Err(ExecuteError::Refused(AccountError::IdentifierMoved)) => {
                return Err(ApiError::invalid_credentials())
            }
            other => {
                let executed = other?;
                break (
                    resolved.aggregate_id,
                    lookup,
                    account_uuid,
                    issued,
                    executed,
                );
            }
        }
    };

    if let Some(session) = signed_in(
        &state,
        &aggregate_id,
        account_uuid,
        &issued,
        &executed.events,
    )? {
        state.remember_account(&lookup, &aggregate_id);
        return Ok(Json(LoginAnswer::Session(session)));
    }
    let mut locked_until = None;
    for envelope in &executed.events {
        match &envelope.payload.fact {
            AccountFact::MfaChallengeIssued {
                challenge_id,
                methods,
                expires_at,
                ..
            } => {
                state.remember_account(&lookup, &aggregate_id);
                let token = state.keys().challenge_token(&aggregate_id, *challenge_id)?;
                return Ok(Json(LoginAnswer::SecondFactorRequired(MfaRequired {
                    mfa_required: true,
                    challenge_id: token,
                    methods: methods.clone(),
                    expires_at: *expires_at,
                })));
            }
            AccountFact::AccountLocked { until, .. } => locked_until = Some(*until),
            AccountFact::LoginRejectedWhileLocked {
                locked_until: until,
                ..
            } => locked_until = Some(*until),
            // Only after the right password: a wrong one answered `invalid_credentials`.
            AccountFact::LoginRefusedWhileFrozen { .. } => {
                return Err(crate::error::account_frozen())
            }
            _ => {}
        }
    }
    match locked_until {
        Some(until) => Err(ApiError::locked(seconds_until(until, now))),
        None => Err(ApiError::invalid_credentials()),
    }
}

/// The answer of a completed sign-in: the session, and the device token of the device the
/// aggregate trusted (sealed now that its id is known). `None` when no session started.
pub(super) fn signed_in(
    state: &AppState,
    aggregate_id: &str,
    account_id: Uuid,
    issued: &tokens::IssuedToken,
    events: &[cqrs_es::EventEnvelope<gatehouse_domain::Account>],
) -> Result<Option<LoginResponse>, ApiError> {
    let mut device = None;
    for envelope in events {
        match &envelope.payload.fact {
            AccountFact::DeviceTrusted { device_id, .. } => device = Some(*device_id),
            AccountFact::SessionStarted {
                session_id,
                expires_at,
                ..
            } => {
                let device_id = device.ok_or_else(|| {
                    ApiError::internal("a session started without a trusted device")
                })?;
                let device_token = state.keys().device_token(
                    aggregate_id,
                    device_id,
                    issued.device_secret.expose_secret(),
                )?;
                return Ok(Some(LoginResponse {
                    session_token: issued.token.expose_secret().to_string(),
                    session_id: *session_id,
                    account_id,
                    expires_at: *expires_at,
                    device_token,
                }));
            }
            _ => {}
        }
    }
    Ok(None)
}

/// Ends the caller's session.
#[utoipa::path(post, path = "/v1/logout", tag = "sessions", security(("bearer" = [])),
    responses((status = 204, description = "Signed out"), (status = 401, body = crate::error::ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
) -> Result<StatusCode, ApiError> {
    super::me::end_session(&state, &caller, &auth, auth.session_id()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(login))
        .routes(utoipa_axum::routes!(logout))
}
