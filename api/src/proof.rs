//! The proof a sensitive request presents, at the edge: one request shape (the `proof` object),
//! one way to turn it into the domain's [`Proof`], one mapping of the refusals. Whether a proof
//! is enough is never decided here: the aggregate reads its row of
//! [`gatehouse_domain::PROOF_POLICY`].
use chrono::{DateTime, Utc};
use gatehouse_domain::password::normalize;
use gatehouse_domain::{Account, AccountFact, Proof};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::routes::login::seconds_until;
use crate::routes::mfa::{self, FactorAnswer, Method};
use crate::state::AppState;

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
            Some(mfa::proof(state, account_id, account, &answer, at).await?)
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
                refused = Some(mfa::invalid_second_factor(
                    axum::http::StatusCode::FORBIDDEN,
                ))
            }
            _ => {}
        }
    }
    refused.map_or(Ok(()), Err)
}

/// A JSON body that may be absent (a `DELETE` whose proof is the stepped-up session): empty
/// means the default.
pub fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

/// 403 for a wrong or missing password in a proof.
pub fn invalid_password() -> ApiError {
    ApiError::other(
        axum::http::StatusCode::FORBIDDEN,
        "invalid_password",
        "the password is incorrect",
    )
    .with_field("password")
}
