//! The proof a sensitive request presents, at the edge: one request shape (the `proof` object),
//! one way to turn it into the domain's [`Proof`], one mapping of the refusals. Whether a proof
//! is enough is never decided here: the aggregate reads its row of
//! [`gatehouse_domain::PROOF_POLICY`].
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use gatehouse_domain::password::normalize;
use gatehouse_domain::{Account, AccountFact, MfaProof, Proof};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{invalid_password, seconds_until, ApiError};
use crate::keys::DataKey;
use crate::state::AppState;
use crate::{directory, factors, webauthn};

/// Proof for a sensitive change: the password and/or a current second factor, as the action's
/// row of the proof policy asks (see the README's proof table). Send only what is asked; a
/// stepped-up session (`POST /v1/me/step-up`) counts by itself where the row allows it.
#[derive(Debug, Default, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProofInput {
    /// The account's password.
    pub password: Option<String>,
    /// The second factor used: `totp`, `backup_code` or `security_key`.
    pub method: Option<Method>,
    /// The code (`totp`, `backup_code`).
    pub code: Option<String>,
    /// From a security-key challenge (`security_key`).
    pub ceremony_id: Option<String>,
    /// The key's `PublicKeyCredential`, as `navigator.credentials.get` gave it (`security_key`).
    /// Read as any JSON value: only a `security_key` proof looks at it, and refuses anything
    /// but the credential object.
    #[schema(value_type = Option<Value>)]
    pub assertion: Option<serde_json::Value>,
}

impl ProofInput {
    /// The `proof` object when given, else the deprecated flat fields of the same names (kept
    /// for this release).
    pub fn or_flat(proof: Option<ProofInput>, flat: ProofInput) -> ProofInput {
        proof.unwrap_or(flat)
    }
}

/// Turns what the request presents into the domain's [`Proof`]: the password normalised (and
/// refused when longer than any password can be, before any hashing), the factor checked with
/// the keys only the edge holds (TOTP secret, backup-code key, WebAuthn ceremony).
pub async fn resolve(
    state: &AppState,
    account_id: &str,
    account: &Account,
    input: &ProofInput,
    session_id: Option<Uuid>,
    at: DateTime<Utc>,
) -> Result<Proof, ApiError> {
    let password = match &input.password {
        Some(p) if p.len() > state.password_policy().max_bytes() => {
            return Err(ApiError::bad_request("password is too long").with_field("password"))
        }
        Some(p) => Some(normalize(p)),
        None => None,
    };
    let factor = match &input.method {
        Some(method) => {
            let answer = FactorAnswer {
                method,
                code: input.code.as_deref(),
                ceremony_id: input.ceremony_id.as_deref(),
                assertion: input.assertion.as_ref(),
            };
            Some(factor_proof(state, account_id, account, &answer, at).await?)
        }
        None => None,
    };
    Ok(Proof {
        session_id,
        password,
        factor,
    })
}

/// The answer to a proof the aggregate refused and recorded: a lock (429), a wrong password
/// (403 `invalid_password`) or a wrong factor (403 `invalid_second_factor`). `Ok` when the
/// events record no such refusal.
pub fn refusal(
    events: &[cqrs_es::EventEnvelope<Account>],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let mut refused = None;
    for envelope in events {
        match &envelope.payload.fact {
            AccountFact::AccountLocked { until, .. }
            | AccountFact::LoginRejectedWhileLocked {
                locked_until: until,
                ..
            } => return Err(ApiError::locked(seconds_until(*until, now))),
            AccountFact::PasswordConfirmationFailed { .. } => refused = Some(invalid_password()),
            AccountFact::SecondFactorFailed { .. } => {
                refused = Some(invalid_second_factor(axum::http::StatusCode::FORBIDDEN))
            }
            _ => {}
        }
    }
    refused.map_or(Ok(()), Err)
}

/// A JSON body that may be absent (a `DELETE` whose proof is the stepped-up session): empty
/// means the default. A body of white space is not JSON and is refused like any other.
pub fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

/// A second factor, for sign-in or to confirm a sensitive change.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A code from the authenticator app.
    Totp,
    /// A backup code.
    BackupCode,
    /// A security key's assertion (`ceremony_id` and `assertion`).
    SecurityKey,
}

/// The factor a request presents: a typed code, or a security key's answer to a ceremony.
pub struct FactorAnswer<'a> {
    /// The method.
    pub method: &'a Method,
    /// The code (`totp`, `backup_code`).
    pub code: Option<&'a str>,
    /// The security-key ceremony.
    pub ceremony_id: Option<&'a str>,
    /// The security key's assertion.
    pub assertion: Option<&'a serde_json::Value>,
}

/// The account's data key (opens its sealed secrets and contacts).
pub async fn data_key(state: &AppState, account_id: &str) -> Result<DataKey, ApiError> {
    let wrapped = directory::wrapped_key(state.store(), account_id)
        .await?
        .ok_or_else(|| ApiError::internal("account key missing"))?;
    state
        .keys()
        .unwrap_data_key(account_id, &wrapped)
        .map_err(ApiError::internal)
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix_seconds(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp()).unwrap_or(0)
}

/// What a presented factor proves, as the aggregate can judge it.
pub async fn factor_proof(
    state: &AppState,
    account_id: &str,
    account: &gatehouse_domain::Account,
    answer: &FactorAnswer<'_>,
    at: DateTime<Utc>,
) -> Result<MfaProof, ApiError> {
    let code = || {
        let code = answer
            .code
            .ok_or_else(|| ApiError::bad_request("code is required").with_field("code"))?;
        if code.len() > 64 {
            return Err(ApiError::bad_request("code is too long").with_field("code"));
        }
        Ok(code)
    };
    Ok(match answer.method {
        Method::Totp => {
            let code = code()?;
            let matched_step = match account.totp().filter(|t| t.confirmed) {
                Some(t) => {
                    let key = data_key(state, account_id).await?;
                    let secret = factors::open_secret(&key, account_id, &t.sealed_secret)?;
                    factors::matched_step(&secret, code, unix_seconds(at))
                }
                None => None,
            };
            MfaProof::Totp { matched_step }
        }
        Method::BackupCode => MfaProof::BackupCode {
            verifier: factors::typed_backup_verifier(state.keys(), account_id, code()?),
        },
        Method::SecurityKey => {
            let (Some(ceremony_id), Some(assertion)) = (answer.ceremony_id, answer.assertion)
            else {
                return Err(ApiError::bad_request(
                    "a security key answer needs `ceremony_id` and `assertion`",
                )
                .with_field("assertion"));
            };
            let assertion: webauthn_rs::prelude::PublicKeyCredential =
                serde_json::from_value(assertion.clone()).map_err(|_| {
                    ApiError::bad_request("assertion is not a WebAuthn PublicKeyCredential")
                        .with_field("assertion")
                })?;
            let relying_party = relying_party(state)?;
            let ceremony =
                webauthn::take_ceremony::<webauthn_rs::prelude::SecurityKeyAuthentication>(
                    state.store(),
                    ceremony_id,
                    account_id,
                    webauthn::Purpose::Assertion,
                    at,
                )
                .await?
                .ok_or_else(ceremony_unknown)?;
            webauthn::check_assertion(relying_party, account, &assertion, &ceremony)
        }
    })
}

/// The relying party, or 503 when security keys are not configured.
pub fn relying_party(state: &AppState) -> Result<&webauthn::RelyingParty, ApiError> {
    state.relying_party().ok_or_else(|| {
        ApiError::other(
            StatusCode::SERVICE_UNAVAILABLE,
            "security_keys_unavailable",
            "security keys are not configured on this server",
        )
    })
}

/// 409 for a security-key ceremony that is unknown, used, expired or someone else's.
pub fn ceremony_unknown() -> ApiError {
    ApiError::other(
        StatusCode::CONFLICT,
        "ceremony_unknown",
        "the security-key challenge is unknown, used or expired; ask for a new one",
    )
}

/// The answer to a wrong second factor (`status`: 401 at sign-in, 403 in a proof).
pub fn invalid_second_factor(status: StatusCode) -> ApiError {
    ApiError::other(
        status,
        "invalid_second_factor",
        "the code is not valid (a code works once; wrong codes count toward the lockout)",
    )
    .with_field("code")
}
