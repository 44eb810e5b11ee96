//! Second factors: TOTP enrolment and removal, backup codes, and the second step of sign-in.
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use gatehouse_domain::contact::ContactKind;
use gatehouse_domain::{AccountCommand, AccountFact, CompleteMfa};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::login::LoginResponse;
use super::ApiJson;
use crate::error::invalid_challenge;
use crate::error::{seconds_until, ApiError};
use crate::factors;
use crate::keys::DataKey;
use crate::metadata::metadata;
pub use crate::proof::Method;
use crate::proof::{
    data_key, factor_proof, invalid_second_factor, unix_seconds, FactorAnswer, ProofInput,
};
use crate::request::{Authenticated, Caller};
use crate::state::AppState;
use crate::throttle::Route;
use crate::tokens;

/// TOTP enrolment: show the secret or the QR code to the person, then confirm a first code.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// The secret in base32, for typing into an app.
    pub secret: String,
    /// `otpauth://totp/…` URI (SHA1, 6 digits, 30 s).
    pub otpauth_uri: String,
    /// The URI as a QR code (SVG document).
    pub qr_svg: String,
}

/// A code from the authenticator app, with the proof that adding a factor needs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    /// Six digits from the app being enrolled.
    pub code: String,
    /// The password and, when a factor is already enrolled, a current one (not the app being
    /// enrolled): a stolen session alone cannot add a factor.
    pub proof: Option<ProofInput>,
}

/// Backup codes, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupCodes {
    /// Ten single-use codes; only their keyed hashes are kept. Empty when TOTP joins a factor
    /// that already came with codes: those are kept (`POST /v1/me/backup-codes` replaces them).
    pub backup_codes: Vec<String>,
}

/// How many backup codes are left.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupCodesLeft {
    /// Unused codes.
    pub remaining: usize,
    /// Whether TOTP is enrolled.
    pub totp_enrolled: bool,
}

/// Second step of a sign-in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaRequest {
    /// From the `POST /v1/login` answer.
    pub challenge_id: String,
    /// `totp`, `backup_code` or `security_key`.
    pub method: Method,
    /// The code (`totp`, `backup_code`).
    pub code: Option<String>,
    /// From `POST /v1/login/mfa/security-key` (`security_key`).
    pub ceremony_id: Option<String>,
    /// The key's `PublicKeyCredential`, as `navigator.credentials.get` gave it (`security_key`).
    /// Read as any JSON value: only a `security_key` proof looks at it, and refuses anything
    /// but the credential object.
    #[schema(value_type = Option<Value>)]
    pub assertion: Option<serde_json::Value>,
    /// Device id, recorded in the login history.
    pub device_id: Option<String>,
}

impl MfaRequest {
    fn answer(&self) -> FactorAnswer<'_> {
        FactorAnswer {
            method: &self.method,
            code: self.code.as_deref(),
            ceremony_id: self.ceremony_id.as_deref(),
            assertion: self.assertion.as_ref(),
        }
    }
}

/// A proof, in the `proof` object or (deprecated) as flat fields of the same names.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProofRequest {
    /// The password and a current second factor.
    pub proof: Option<ProofInput>,
    /// Deprecated: use `proof.password`.
    #[schema(deprecated)]
    pub password: Option<String>,
    /// Deprecated: use `proof.method`.
    #[schema(deprecated)]
    pub method: Option<Method>,
    /// Deprecated: use `proof.code`.
    #[schema(deprecated)]
    pub code: Option<String>,
    /// Deprecated: use `proof.ceremony_id`.
    #[schema(deprecated)]
    pub ceremony_id: Option<String>,
    /// Deprecated: use `proof.assertion`.
    /// Read as any JSON value: only a `security_key` proof looks at it, and refuses anything
    /// but the credential object.
    #[schema(deprecated, value_type = Option<Value>)]
    pub assertion: Option<serde_json::Value>,
}

impl ProofRequest {
    /// The proof presented, from either form.
    pub fn input(self) -> ProofInput {
        ProofInput::or_flat(
            self.proof,
            ProofInput {
                password: self.password,
                method: self.method,
                code: self.code,
                ceremony_id: self.ceremony_id,
                assertion: self.assertion,
            },
        )
    }
}

/// How an app or a key shows the account, so the person recognises it: its email, else its
/// phone, else its id.
pub(crate) fn account_label(
    key: &DataKey,
    id: &str,
    account: &gatehouse_domain::Account,
) -> String {
    match (account.email(), account.phone()) {
        (Some(e), _) => key.open(id, ContactKind::Email, &e.sealed).ok(),
        (None, Some(p)) => key.open(id, ContactKind::Phone, &p.sealed).ok(),
        _ => None,
    }
    .unwrap_or_else(|| id.to_string())
}

/// Starts TOTP enrolment: a new secret, its URI and QR code. Confirm with a first code.
#[utoipa::path(post, path = "/v1/me/totp", tag = "second factors", security(("bearer" = [])),
    responses(
        (status = 201, body = TotpEnrolment),
        (status = 401, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "`already_enrolled`"),
    ))]
pub async fn start_totp(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
) -> Result<(StatusCode, Json<TotpEnrolment>), ApiError> {
    let id = auth.account_id();
    if auth.account.has_totp() {
        return Err(gatehouse_domain::AccountError::AlreadyEnrolled.into());
    }
    let key = data_key(&state, &id).await?;
    let secret = factors::new_secret()?;
    let label = account_label(&key, &id, &auth.account);
    let totp = factors::totp(&secret, &label).map_err(ApiError::internal)?;
    let otpauth_uri = totp
        .to_url()
        .map_err(|e| ApiError::internal(format!("{e:?}")))?;
    let qr_svg = factors::qr_svg(&otpauth_uri).map_err(ApiError::internal)?;
    let sealed_secret = factors::seal_secret(&key, &id, &secret)?;
    let context = caller.context(None);
    state
        .accounts()
        .execute(
            &id,
            || AccountCommand::StartTotpEnrolment {
                sealed_secret: sealed_secret.clone(),
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrolment {
            secret: totp_rs::Secret::from(secret.to_vec()).to_base32(),
            otpauth_uri,
            qr_svg,
        }),
    ))
}

/// Confirms TOTP enrolment with a first code; answers the backup codes, shown this once.
#[utoipa::path(post, path = "/v1/me/totp/confirm", tag = "second factors", security(("bearer" = [])),
    request_body = TotpCode,
    responses(
        (status = 200, body = BackupCodes, description = "Enrolled; a factor-added cooldown starts and every verified channel is told"),
        (status = 400, body = crate::error::ErrorBody, description = "`invalid_request` (a malformed proof)"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`invalid_password`, `invalid_second_factor` (both count toward the lockout), `second_factor_required`"),
        (status = 409, body = crate::error::ErrorBody, description = "`already_enrolled`, `no_pending_enrolment`, `ceremony_unknown`"),
        (status = 422, body = crate::error::ErrorBody, description = "`invalid_second_factor` (the code of the app being enrolled)"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked`, `rate_limited`"),
    ))]
pub async fn confirm_totp(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    ApiJson(req): ApiJson<TotpCode>,
) -> Result<Json<BackupCodes>, ApiError> {
    let id = auth.account_id();
    state
        .throttle()
        .admit(
            Route::SignedIn,
            caller.ip,
            Some(&format!("totp-confirm:{id}")),
        )
        .await?;
    let pending = auth
        .account
        .totp()
        .ok_or_else(|| conflict("no_pending_enrolment", "start the enrolment first"))?;
    let key = data_key(&state, &id).await?;
    let secret = factors::open_secret(&key, &id, &pending.sealed_secret)?;
    let matched_step = factors::matched_step(&secret, &req.code, unix_seconds(auth.now));
    let proof = crate::proof::resolve(
        &state,
        &id,
        &auth.account,
        &req.proof.unwrap_or_default(),
        Some(auth.session_id()),
        auth.now,
    )
    .await?;
    let (codes, verifiers) = factors::backup_codes(state.keys(), &id)?;
    let context = caller.context(None);
    let executed = state
        .accounts()
        .execute(
            &id,
            || AccountCommand::ConfirmTotpEnrolment {
                matched_step,
                backup_verifiers: verifiers.clone(),
                proof: proof.clone(),
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await?;
    crate::proof::refusal(&executed.events, auth.now)?;
    // Codes are shown only when the aggregate made them (the first factor); otherwise the
    // owner's existing set stands.
    let made = executed
        .events
        .iter()
        .any(|e| matches!(e.payload.fact, AccountFact::BackupCodesGenerated { .. }));
    Ok(Json(BackupCodes {
        backup_codes: if made { codes } else { Vec::new() },
    }))
}

/// How many backup codes are left (never the codes).
#[utoipa::path(get, path = "/v1/me/backup-codes", tag = "second factors", security(("bearer" = [])),
    responses((status = 200, body = BackupCodesLeft), (status = 401, body = crate::error::ErrorBody)))]
pub async fn backup_codes_left(auth: Authenticated) -> Json<BackupCodesLeft> {
    Json(BackupCodesLeft {
        remaining: auth.account.backup_codes_left(),
        totp_enrolled: auth.account.has_totp(),
    })
}

/// Replaces the backup codes (the password and a current factor required); the old set stops
/// working.
#[utoipa::path(post, path = "/v1/me/backup-codes", tag = "second factors", security(("bearer" = [])),
    request_body = ProofRequest,
    responses(
        (status = 200, body = BackupCodes),
        (status = 400, body = crate::error::ErrorBody, description = "`invalid_request` (a malformed proof)"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`invalid_password`, `invalid_second_factor` (both count toward the lockout), `second_factor_required`"),
        (status = 409, body = crate::error::ErrorBody, description = "`no_second_factor`, `ceremony_unknown`"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked`"),
    ))]
pub async fn regenerate_backup_codes(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    ApiJson(req): ApiJson<ProofRequest>,
) -> Result<Json<BackupCodes>, ApiError> {
    let id = auth.account_id();
    let proof = crate::proof::resolve(
        &state,
        &id,
        &auth.account,
        &req.input(),
        Some(auth.session_id()),
        auth.now,
    )
    .await?;
    let (codes, verifiers) = factors::backup_codes(state.keys(), &id)?;
    let context = caller.context(None);
    let executed = state
        .accounts()
        .execute(
            &id,
            || AccountCommand::RegenerateBackupCodes {
                proof: proof.clone(),
                verifiers: verifiers.clone(),
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await?;
    crate::proof::refusal(&executed.events, auth.now)?;
    Ok(Json(BackupCodes {
        backup_codes: codes,
    }))
}

/// Removes TOTP and the backup codes: password and a current factor required; refused during a
/// high-risk cooldown; starts one; the owner is told on every verified channel.
#[utoipa::path(delete, path = "/v1/me/totp", tag = "second factors", security(("bearer" = [])),
    request_body = ProofRequest,
    responses(
        (status = 204),
        (status = 400, body = crate::error::ErrorBody, description = "`invalid_request` (a malformed proof)"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`invalid_password`, `invalid_second_factor` (both count toward the lockout), `second_factor_required`, `high_risk_cooldown` (with `retry_after`)"),
        (status = 409, body = crate::error::ErrorBody, description = "`no_second_factor`, `ceremony_unknown`"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked`, `rate_limited`"),
    ))]
pub async fn remove_totp(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
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
            || AccountCommand::RemoveSecondFactor {
                proof: proof.clone(),
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await?;
    crate::proof::refusal(&executed.events, auth.now)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Second step of a sign-in: answers the challenge with a TOTP or backup code.
#[utoipa::path(post, path = "/v1/login/mfa", tag = "sessions", request_body = MfaRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 401, body = crate::error::ErrorBody, description = "`invalid_second_factor` (counts toward the lockout), `invalid_challenge` (unknown, used or expired)"),
        (status = 403, body = crate::error::ErrorBody, description = "`account_frozen` with `next_action: \"unfreeze\"`: the account was frozen after the password step"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked`, or `rate_limited` (with `retry_after` and `Retry-After`): over the route's per-IP, per-network or per-identifier limit (LOGIN_MFA; the identifier is the challenge)"),
    ))]
pub async fn complete_mfa(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<MfaRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let (aggregate_id, challenge_id) = state
        .keys()
        .open_challenge_token(&req.challenge_id)
        .ok_or_else(invalid_challenge)?;
    state
        .throttle()
        .admit(Route::LoginMfa, caller.ip, Some(&challenge_id.to_string()))
        .await?;
    let account_uuid = uuid::Uuid::parse_str(&aggregate_id).map_err(|_| invalid_challenge())?;
    let now = Utc::now();
    let account = state.accounts().load(&aggregate_id).await?;
    let proof = factor_proof(&state, &aggregate_id, &account, &req.answer(), now).await?;
    let issued = tokens::issue(account_uuid)?;
    let context = caller.context(req.device_id);
    let command = CompleteMfa {
        challenge_id,
        proof,
        grant: issued.grant.clone(),
        at: now,
        context,
    };
    let executed = state
        .accounts()
        .execute(
            &aggregate_id,
            || AccountCommand::CompleteMfa(command.clone()),
            metadata(),
        )
        .await?;
    let mut locked_until = None;
    if let Some(session) = super::login::signed_in(
        &state,
        &aggregate_id,
        account_uuid,
        &issued,
        &executed.events,
    )? {
        return Ok(Json(session));
    }
    for envelope in &executed.events {
        match &envelope.payload.fact {
            AccountFact::AccountLocked { until, .. }
            | AccountFact::LoginRejectedWhileLocked {
                locked_until: until,
                ..
            } => locked_until = Some(*until),
            AccountFact::LoginRefusedWhileFrozen { .. } => {
                return Err(crate::error::account_frozen())
            }
            _ => {}
        }
    }
    match locked_until {
        Some(until) => Err(ApiError::locked(seconds_until(until, now))),
        None => Err(invalid_second_factor(StatusCode::UNAUTHORIZED)),
    }
}

pub(crate) fn conflict(code: &'static str, message: &'static str) -> ApiError {
    ApiError::other(StatusCode::CONFLICT, code, message)
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(start_totp, remove_totp))
        .routes(utoipa_axum::routes!(confirm_totp))
        .routes(utoipa_axum::routes!(
            backup_codes_left,
            regenerate_backup_codes
        ))
        .routes(utoipa_axum::routes!(complete_mfa))
}
