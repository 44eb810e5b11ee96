//! HTTP handlers, one module per area.
pub mod accounts;
pub mod admin;
pub mod api_keys;
pub mod contacts;
pub mod controls;
pub mod devices;
pub mod health;
pub mod login;
pub mod lost_factor;
pub mod me;
pub mod mfa;
pub mod password;
pub mod recovery;
pub mod review;
pub mod security_keys;
pub mod teams;
pub mod whitelist;

use axum::extract::{FromRequest, Request};
use gatehouse_domain::AccountError;
use gatehouse_store::ExecuteError;
use gatehouse_store::StoreError;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `Json<T>` whose rejections use the documented error shape.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// The device claim of a `device_token` sent with a request for `aggregate_id`. A token this
/// server did not seal as a device token, or one naming another account, is the same as none
/// (no error, no other answer); whether the device is still trusted is the aggregate's call.
pub fn device_claim(
    state: &crate::state::AppState,
    token: Option<&str>,
    aggregate_id: &str,
) -> Option<gatehouse_domain::DeviceClaim> {
    let token = token.filter(|t| t.len() <= 512)?;
    let (aggregate, device_id, token_hash) = state.keys().open_device_token(token)?;
    (aggregate == aggregate_id).then_some(gatehouse_domain::DeviceClaim {
        device_id,
        token_hash,
    })
}

/// The per-identifier key the rate limits count a request by: `None` when the request carries a
/// device token this server sealed for the very account the identifier leads to (the owner's
/// known device is exempt from the per-identifier limits, so a stranger who keeps an
/// identifier's budget spent cannot keep its owner out, issue #18), else the identifier's lookup
/// hash. Only a request that presents a well-sealed device token is resolved before it is
/// admitted: a token of another account (an attacker's own) keeps the per-identifier key.
/// Whether the device is still trusted (not revoked or expired) is the aggregate's call, for the
/// doors; for the limit, holding a token sealed for the account is enough.
pub async fn limit_subject(
    state: &crate::state::AppState,
    raw_identifier: &str,
    device_token: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let lookup = lookup_of(state, raw_identifier)?;
    let Some((aggregate, _, _)) = device_token
        .filter(|t| t.len() <= 512)
        .and_then(|t| state.keys().open_device_token(t))
    else {
        return Ok(Some(lookup));
    };
    // Past the cache of signed-in identifiers, as the self-service starts resolve: a cache hit
    // answers faster, and anyone can present a token of their own account.
    let resolved = resolve_identifier_with(state, raw_identifier, false).await?;
    Ok((resolved.aggregate_id != aggregate).then_some(lookup))
}

/// Longest identifier accepted (an email is at most 254 characters).
pub const MAX_IDENTIFIER_LEN: usize = 320;

/// Where a typed identifier leads.
pub struct Resolved {
    /// The holder's aggregate id, or the stand-in aggregate of an unknown identifier.
    pub aggregate_id: String,
    /// The account's id; `None` for an unknown identifier.
    pub account_id: Option<uuid::Uuid>,
    /// Keyed lookup hash of the identifier.
    pub lookup: String,
    /// The kind of identifier typed; `None` when it parses as neither.
    pub kind: Option<gatehouse_domain::contact::ContactKind>,
}

/// The keyed lookup hash of a typed identifier (of its normalized form when it parses as an
/// email or phone), without asking the store: what the per-identifier rate limits count by.
pub fn lookup_of(state: &crate::state::AppState, raw: &str) -> Result<String, ApiError> {
    if raw.chars().count() > MAX_IDENTIFIER_LEN {
        return Err(ApiError::bad_request("identifier is too long").with_field("identifier"));
    }
    Ok(match gatehouse_domain::contact::Contact::identifier(raw) {
        Ok(contact) => state.keys().lookup(contact.as_str()),
        Err(_) => state.keys().lookup(&format!("unparsed:{}", raw.trim())),
    })
}

/// Finds the account an identifier belongs to. Identifiers that match no account (or do not
/// even parse) lead to a stand-in aggregate named after their keyed hash, which runs the same
/// decisions, so the caller cannot tell the difference. `use_cache` lets sign-in skip the
/// directory for identifiers signed in lately; routes whose timing must not tell known from
/// unknown identifiers pass `false`.
pub async fn resolve_identifier_with(
    state: &crate::state::AppState,
    raw: &str,
    use_cache: bool,
) -> Result<Resolved, ApiError> {
    let lookup = lookup_of(state, raw)?;
    let parsed = gatehouse_domain::contact::Contact::identifier(raw).ok();
    let cached = if use_cache {
        state.known_account(&lookup)
    } else {
        None
    };
    let holder = match cached {
        Some(id) => Some(id),
        None => crate::directory::find_account(state.store(), &lookup)
            .await
            .map_err(store_error)?,
    };
    let (aggregate_id, account_id) = match holder {
        Some(id) => {
            let uuid = uuid::Uuid::parse_str(&id).map_err(ApiError::internal)?;
            (id, Some(uuid))
        }
        None => (format!("unknown-{lookup}"), None),
    };
    Ok(Resolved {
        aggregate_id,
        account_id,
        lookup,
        kind: parsed.map(|c| c.kind()),
    })
}

/// Maps a command failure to the API's answer; store detail goes to the log only.
pub fn execute_error(e: ExecuteError<AccountError>) -> ApiError {
    match e {
        ExecuteError::Refused(AccountError::SessionNotFound) => {
            ApiError::not_found("no such open session")
        }
        ExecuteError::Refused(AccountError::NotRegistered) => ApiError::unauthenticated(),
        ExecuteError::Refused(AccountError::DeviceNotFound) => {
            ApiError::not_found("no such trusted device")
        }
        ExecuteError::Refused(AccountError::FlowNotFound) => flow_not_found(),
        ExecuteError::Refused(AccountError::CodeUnusable(why)) => code_unusable(why),
        ExecuteError::Refused(AccountError::CodeRateLimited { retry_at }) => {
            let seconds = (retry_at - chrono::Utc::now()).num_seconds() + 1;
            ApiError::rate_limited(
                "code_rate_limited",
                "a code was sent recently or too many were sent in the past hour; wait before asking again",
                seconds,
            )
        }
        ExecuteError::Refused(AccountError::PasswordReused) => ApiError::validation(
            "password_reused",
            "choose a password you have not used recently",
        )
        .with_field("new_password"),
        ExecuteError::Refused(AccountError::ChannelNotAllowed) => ApiError::validation(
            "channel_not_allowed",
            "this flow cannot switch to that channel",
        )
        .with_field("channel"),
        ExecuteError::Refused(AccountError::WrongPassword) => crate::proof::invalid_password(),
        ExecuteError::Refused(AccountError::SecondFactorRequired) => second_factor_required(),
        ExecuteError::Refused(AccountError::StepUpRequired) => ApiError::other(
            axum::http::StatusCode::FORBIDDEN,
            "step_up_required",
            "prove a second factor again first (POST /v1/me/step-up; the password when no factor is enrolled)",
        ),
        ExecuteError::Refused(AccountError::ContactUnchanged) => {
            ApiError::validation("contact_unchanged", "that is already the account's contact")
        }
        ExecuteError::Refused(AccountError::RecoveryStage) => ApiError::other(
            axum::http::StatusCode::CONFLICT,
            "wrong_step",
            "the recovery is not at this step; see GET /v1/flows/{flow_id}",
        ),
        ExecuteError::Refused(AccountError::HighRiskCooldown { until }) => {
            high_risk_cooldown(until)
        }
        ExecuteError::Refused(AccountError::NoSecondFactor) => ApiError::other(
            axum::http::StatusCode::CONFLICT,
            "no_second_factor",
            "no second factor is enrolled",
        ),
        ExecuteError::Refused(AccountError::EmailNotVerified) => ApiError::other(
            axum::http::StatusCode::CONFLICT,
            "email_not_verified",
            "verify the account's email address first: the confirmation code goes there",
        ),
        ExecuteError::Refused(AccountError::AddressAlreadyListed) => ApiError::other(
            axum::http::StatusCode::CONFLICT,
            "address_already_listed",
            "that address is already on the whitelist",
        ),
        ExecuteError::Refused(AccountError::TooManyAddresses) => ApiError::other(
            axum::http::StatusCode::CONFLICT,
            "too_many_addresses",
            "the whitelist is full; remove an address first",
        ),
        ExecuteError::Refused(AccountError::AddressUnknown) => {
            ApiError::not_found("no such withdrawal address")
        }
        ExecuteError::Refused(AccountError::ApiKeyUnknown) => {
            ApiError::not_found("no such API key (or revoked, or expired)")
        }
        ExecuteError::Refused(AccountError::TooManyApiKeys) => ApiError::other(
            axum::http::StatusCode::CONFLICT,
            "too_many_api_keys",
            "the account has as many API keys as allowed; revoke one first",
        ),
        ExecuteError::Refused(other) => ApiError::internal(other),
        ExecuteError::Contention => ApiError::unavailable(),
        ExecuteError::Store(detail) => {
            tracing::error!(error = %detail, "store failure");
            ApiError::unavailable()
        }
    }
}

/// A name the owner gives something (a security key, an API key): trimmed, 1 to 64 characters,
/// no control characters.
pub fn object_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "name must be 1 to 64 characters, without control characters",
        )
        .with_field("name"));
    }
    Ok(name.to_string())
}

/// 403 while a high-risk cooldown runs, with `retry_after`.
pub fn high_risk_cooldown(until: chrono::DateTime<chrono::Utc>) -> ApiError {
    ApiError::rate_limited(
        "high_risk_cooldown",
        "high-risk changes are paused after a recent security change; see GET /v1/me/restrictions",
        (until - chrono::Utc::now()).num_seconds() + 1,
    )
    .with_status(axum::http::StatusCode::FORBIDDEN)
}

/// 403: the action needs a current second factor (in `proof`), or an enrolled one.
pub fn second_factor_required() -> ApiError {
    ApiError::other(
        axum::http::StatusCode::FORBIDDEN,
        "second_factor_required",
        "this change needs a current second factor in `proof` (or, where none is enrolled, an enrolled one first)",
    )
    .with_field("proof")
}

/// 404 for a flow id that is unknown, forged or of another kind.
pub fn flow_not_found() -> ApiError {
    ApiError::other(
        axum::http::StatusCode::NOT_FOUND,
        "flow_not_found",
        "no such flow; start again",
    )
}

/// 410 for a code that can no longer be used.
pub fn code_unusable(why: &'static str) -> ApiError {
    let (code, message) = match why {
        "used" => ("code_used", "this code was already used"),
        "exhausted" => ("code_exhausted", "too many wrong codes; ask for a new code"),
        "expired" => ("code_expired", "the code expired; ask for a new code"),
        _ => (
            "code_superseded",
            "a newer code was sent; use the latest one",
        ),
    };
    ApiError::other(axum::http::StatusCode::GONE, code, message)
}

/// Maps a store failure (side tables, read models): logged, then 503.
pub fn store_error(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "store failure");
    ApiError::unavailable()
}

/// Metadata stored beside every event: which software wrote it, so an auditor replaying the
/// stream knows which rules were in force. Never secrets.
pub fn metadata() -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([(
        "recorded_by".to_string(),
        concat!("gatehouse/", env!("CARGO_PKG_VERSION")).to_string(),
    )])
}
