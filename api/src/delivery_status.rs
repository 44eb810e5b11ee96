//! Delivery status of a flow's code (`GET /v1/flows/{id}`'s `delivery`): a person whose email
//! "never arrived" sees that it was sent, where and when, and can switch channel.
//!
//! The real status (queued, sent, failed, from the notification outbox) and the real destination
//! (the account's contact, masked) go only to the account's owner: a request carrying a device
//! token the account trusts (`X-Device-Token`), or a live session of the account (`Authorization:
//! Bearer`). Every other caller, for accounts and unknown identifiers alike, sees the channel as
//! answered, the destination masked as typed, and `sent`: polling a flow reveals nothing.
use axum::http::{header, HeaderMap};
use chrono::{DateTime, Utc};
use gatehouse_domain::account::IssuedCode;
use gatehouse_domain::contact::{Contact, ContactKind};
use gatehouse_domain::policy::Channel;
use gatehouse_domain::{Account, Door};
use secrecy::SecretString;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

/// The header a frontend sends a device token in on a `GET` (it has no body).
pub const DEVICE_TOKEN_HEADER: &str = "x-device-token";

/// What the destination shows when it cannot be shown as typed (the code goes to a channel other
/// than the identifier typed, or nothing was recorded).
const HIDDEN: &str = "***";

/// How far a code's message got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting to be sent (or to be tried again).
    Queued,
    /// The provider accepted it (SMTP server, SMS gateway).
    Sent,
    /// It could not be sent, for good: try the other channel.
    Failed,
}

/// Where and how a flow's current code was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeliveryView {
    /// `email` or `sms`.
    pub channel: &'static str,
    /// Masked (`a*****e@example.com`, `+44*******958`); `***` when it cannot be shown.
    pub destination: String,
    /// The real status for the account's owner; `sent` for every other caller.
    pub status: DeliveryStatus,
    /// When it reached that status (for others: when the code was issued).
    pub at: DateTime<Utc>,
}

/// The masked form of what was typed, when it parses as an email or phone.
pub fn masked_typed(raw: &str) -> Option<(Channel, String)> {
    let contact = Contact::identifier(raw).ok()?;
    Some(match contact.kind() {
        ContactKind::Email => (Channel::Email, crate::mask::email(contact.as_str())),
        ContactKind::Phone => (Channel::Sms, crate::mask::phone(contact.as_str())),
    })
}

/// Keeps what was typed to start `flow_id`, masked, until `expires_at` (for every flow, accounts
/// and unknown identifiers alike); drops rows past their expiry.
pub async fn remember_typed(
    state: &AppState,
    flow_id: uuid::Uuid,
    raw: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), ApiError> {
    let (channel, destination) = masked_typed(raw).unwrap_or((Channel::Email, HIDDEN.to_string()));
    let now = Utc::now().timestamp_millis();
    sqlx::query("delete from flow_destinations where expires_ms < $1")
        .bind(now)
        .execute(state.store().any())
        .await?;
    sqlx::query(
        "insert into flow_destinations (flow_id, channel, destination, expires_ms)
         values ($1, $2, $3, $4) on conflict (flow_id) do nothing",
    )
    .bind(flow_id.to_string())
    .bind(channel.as_str())
    .bind(destination)
    .bind(expires_at.timestamp_millis())
    .execute(state.store().any())
    .await?;
    Ok(())
}

/// Whether the request comes from the owner of the account `aggregate_id`: a device token it
/// trusts, or one of its live sessions. Anything else (no token, another account's, a revoked
/// or expired one, a stand-in aggregate) is a stranger.
pub fn is_owner(
    state: &AppState,
    headers: &HeaderMap,
    aggregate_id: &str,
    account: &Account,
    now: DateTime<Utc>,
) -> bool {
    let device = headers
        .get(DEVICE_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| crate::routes::device_claim(state, Some(t.trim()), aggregate_id));
    if device.is_some() && account.door_for(device.as_ref(), now) != Door::Untrusted {
        return true;
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .and_then(|raw| crate::tokens::parse(&SecretString::from(raw.trim())))
        .is_some_and(|token| {
            token.account_id.to_string() == aggregate_id
                && account
                    .authenticate(token.session_id, &token.token_hash, now)
                    .is_ok()
        })
}

/// What every caller but the owner sees: the channel as answered, the destination masked as
/// typed (when the code goes to the kind of contact typed), `sent`, at the code's issue.
pub async fn public_view(
    state: &AppState,
    flow_id: uuid::Uuid,
    code: &IssuedCode,
) -> Result<DeliveryView, ApiError> {
    let typed: Option<(String, String)> =
        sqlx::query_as("select channel, destination from flow_destinations where flow_id = $1")
            .bind(flow_id.to_string())
            .fetch_optional(state.store().any())
            .await?;
    let destination = typed
        .filter(|(channel, _)| channel == code.channel.as_str())
        .map_or_else(|| HIDDEN.to_string(), |(_, d)| d);
    Ok(DeliveryView {
        channel: code.channel.as_str(),
        destination,
        status: DeliveryStatus::Sent,
        at: code.issued_at,
    })
}

/// What the owner sees: the outbox's status of the code's message and the account's contact on
/// that channel, masked.
pub async fn owner_view(
    state: &AppState,
    aggregate_id: &str,
    account: &Account,
    code: &IssuedCode,
) -> Result<DeliveryView, ApiError> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "select status, updated_ms from notification_outbox_v1 where code_id = $1 limit 1",
    )
    .bind(code.code_id.to_string())
    .fetch_optional(state.store().any())
    .await?;
    let (status, at) = match (&row, code.undeliverable) {
        (_, true) => (DeliveryStatus::Failed, code.issued_at),
        (None, false) => (DeliveryStatus::Queued, code.issued_at),
        (Some((status, at_ms)), false) => (
            match status.as_str() {
                "delivered" => DeliveryStatus::Sent,
                "failed" => DeliveryStatus::Failed,
                _ => DeliveryStatus::Queued,
            },
            DateTime::from_timestamp_millis(*at_ms).unwrap_or(code.issued_at),
        ),
    };
    Ok(DeliveryView {
        channel: code.channel.as_str(),
        destination: owner_destination(state, aggregate_id, account, code.channel)
            .await?
            .unwrap_or_else(|| HIDDEN.to_string()),
        status,
        at,
    })
}

async fn owner_destination(
    state: &AppState,
    aggregate_id: &str,
    account: &Account,
    channel: Channel,
) -> Result<Option<String>, ApiError> {
    let (sealed, kind) = match channel {
        Channel::Email => (account.email(), ContactKind::Email),
        Channel::Sms => (account.phone(), ContactKind::Phone),
    };
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    let Some(wrapped) = crate::directory::wrapped_key(state.store(), aggregate_id).await? else {
        return Ok(None);
    };
    let key = state.keys().unwrap_data_key(aggregate_id, &wrapped)?;
    let contact = key.open(aggregate_id, kind, &sealed.sealed)?;
    Ok(Some(match kind {
        ContactKind::Email => crate::mask::email(&contact),
        ContactKind::Phone => crate::mask::phone(&contact),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_typed_identifiers_are_masked_by_kind() {
        assert_eq!(
            masked_typed("Ann.Lee@Example.com").map(|(c, d)| (c.as_str(), d)),
            Some(("email", "a*****e@example.com".to_string()))
        );
        assert_eq!(
            masked_typed("+442079460958").map(|(c, d)| (c.as_str(), d)),
            Some(("sms", "+44*******958".to_string()))
        );
        assert_eq!(masked_typed("not an identifier"), None);
    }
}
