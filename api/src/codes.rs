//! One-time codes at the edge: drawing them, their keyed verifiers, and the sealed copy the
//! delivery worker reads (kept outside the event store, deleted once sent or expired).
use chrono::{DateTime, Utc};
use gatehouse_domain::{CodeGrant, FlowGrant};
use gatehouse_store::{Store, StoreError};
use uuid::Uuid;

use crate::keys::{random_bytes, KeyError, Keys};

/// Digits in a code.
pub const CODE_DIGITS: usize = 6;

/// A freshly drawn code: the plaintext (for delivery only) and what the aggregate may know.
pub struct DrawnCode {
    /// The digits.
    pub code: String,
    /// Id and verifier.
    pub grant: CodeGrant,
}

/// Draws a uniformly random numeric code (rejection sampling: no modulo bias).
pub fn random_code() -> Result<String, KeyError> {
    const LIMIT: u32 = u32::MAX - (u32::MAX % 10);
    let mut code = String::with_capacity(CODE_DIGITS);
    while code.len() < CODE_DIGITS {
        let n = u32::from_le_bytes(random_bytes::<4>()?);
        if n < LIMIT {
            code.push(char::from(b'0' + (n % 10) as u8));
        }
    }
    Ok(code)
}

/// A new code for `flow_id`.
pub fn draw(keys: &Keys, flow_id: Uuid) -> Result<DrawnCode, KeyError> {
    let code = random_code()?;
    let code_id = Uuid::from_bytes(random_bytes::<16>()?);
    Ok(DrawnCode {
        grant: CodeGrant {
            code_id,
            verifier: keys.code_verifier(flow_id, &code),
        },
        code,
    })
}

/// A new flow id with its first code.
pub fn draw_flow(keys: &Keys) -> Result<(FlowGrant, String), KeyError> {
    let flow_id = Uuid::from_bytes(random_bytes::<16>()?);
    let drawn = draw(keys, flow_id)?;
    Ok((
        FlowGrant {
            flow_id,
            code: drawn.grant,
        },
        drawn.code,
    ))
}

/// What a typed code is compared with: spaces and dashes people add are ignored.
pub fn typed_verifier(keys: &Keys, flow_id: Uuid, typed: &str) -> String {
    let cleaned: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .take(32)
        .collect();
    keys.code_verifier(flow_id, &cleaned)
}

/// Keeps the sealed code for the delivery worker until `expires_at`.
pub async fn keep_for_delivery(
    store: &Store,
    keys: &Keys,
    code_id: Uuid,
    code: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let sealed = keys
        .seal_code(code_id, code)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query("insert into code_secrets (code_id, sealed, expires_ms) values ($1, $2, $3)")
        .bind(code_id.to_string())
        .bind(sealed)
        .bind(expires_at.timestamp_millis())
        .execute(store.any())
        .await?;
    Ok(())
}

/// The code kept for a delivery, if still there.
pub async fn take_for_delivery(
    store: &Store,
    keys: &Keys,
    code_id: Uuid,
) -> Result<Option<String>, StoreError> {
    let sealed: Option<String> =
        sqlx::query_scalar("select sealed from code_secrets where code_id = $1")
            .bind(code_id.to_string())
            .fetch_optional(store.any())
            .await?;
    Ok(sealed.and_then(|s| keys.open_code(code_id, &s).ok()))
}

/// Forgets a delivered code.
pub async fn forget(store: &Store, code_id: Uuid) -> Result<(), StoreError> {
    sqlx::query("delete from code_secrets where code_id = $1")
        .bind(code_id.to_string())
        .execute(store.any())
        .await?;
    Ok(())
}

/// Forgets every code past its expiry (they can no longer be redeemed).
pub async fn forget_expired(store: &Store, now: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(
        sqlx::query("delete from code_secrets where expires_ms < $1")
            .bind(now.timestamp_millis())
            .execute(store.any())
            .await?
            .rows_affected(),
    )
}

/// A new code for `flow_id`, kept sealed for the delivery worker until `expires_at`.
pub async fn draw_for_delivery(
    store: &Store,
    keys: &Keys,
    flow_id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<CodeGrant, crate::error::ApiError> {
    let drawn = draw(keys, flow_id)?;
    keep_for_delivery(store, keys, drawn.grant.code_id, &drawn.code, expires_at).await?;
    Ok(drawn.grant)
}

/// A new flow with its first code, kept for the delivery worker until `expires_at`.
pub async fn draw_flow_for_delivery(
    store: &Store,
    keys: &Keys,
    expires_at: DateTime<Utc>,
) -> Result<FlowGrant, crate::error::ApiError> {
    let flow_id = Uuid::from_bytes(random_bytes::<16>()?);
    let code = draw_for_delivery(store, keys, flow_id, expires_at).await?;
    Ok(FlowGrant { flow_id, code })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_codes_are_six_digits_and_vary() {
        let codes: Vec<String> = (0..50).map(|_| random_code().unwrap()).collect();
        assert!(codes
            .iter()
            .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())));
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert!(distinct.len() > 40);
    }

    #[test]
    fn test_typed_code_ignores_spaces_and_dashes() {
        let keys = Keys::from_master_hex(&"11".repeat(32)).unwrap();
        let flow = Uuid::from_u128(3);
        assert_eq!(
            typed_verifier(&keys, flow, " 123 456 "),
            keys.code_verifier(flow, "123456")
        );
        assert_eq!(
            typed_verifier(&keys, flow, "123-456"),
            keys.code_verifier(flow, "123456")
        );
    }
}
