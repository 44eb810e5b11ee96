//! HTTP handlers, one module per area.
pub mod accounts;
pub mod activity;
pub mod admin;
pub mod api_keys;
pub mod contacts;
pub mod controls;
pub mod devices;
pub mod freeze;
pub mod health;
pub mod login;
pub mod lost_factor;
pub mod me;
pub mod mfa;
pub mod passkeys;
pub mod password;
pub mod recovery;
pub mod review;
pub mod security_keys;
pub mod teams;
pub mod whitelist;

use axum::extract::{FromRequest, Request};
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
        None => crate::directory::find_account(state.store(), &lookup).await?,
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
