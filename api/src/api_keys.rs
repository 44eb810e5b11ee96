//! API keys at the edge: the key's text, and where their last use is kept.
//!
//! A key is `ghk1.<account id>.<key id>.<secret>`, the secret 256 random bits in base64url,
//! shown once; the account aggregate keeps only a keyed verifier of the secret. The ids route a
//! check to the aggregate, so a key works from the moment its creation commits.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use gatehouse_store::{Store, StoreError};
use secrecy::SecretString;
use sqlx::Row;
use uuid::Uuid;

use crate::keys::{random_bytes, KeyError, Keys};

const PREFIX: &str = "ghk1";

/// A freshly drawn key.
pub struct IssuedApiKey {
    /// The key's text (shown once).
    pub key: SecretString,
    /// Keyed verifier of its secret.
    pub verifier: String,
}

/// Draws a new secret for a key.
pub fn issue(keys: &Keys, account_id: Uuid, key_id: Uuid) -> Result<IssuedApiKey, KeyError> {
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    Ok(IssuedApiKey {
        verifier: keys.api_key_verifier(key_id, &secret),
        key: SecretString::from(format!("{PREFIX}.{account_id}.{key_id}.{secret}")),
    })
}

/// A presented key: the account, the key and the verifier of the secret presented.
#[derive(Debug, PartialEq, Eq)]
pub struct PresentedApiKey {
    /// The account.
    pub account_id: Uuid,
    /// The key.
    pub key_id: Uuid,
    /// Keyed verifier of the secret presented.
    pub verifier: String,
}

/// Splits a presented key; `None` when it is not shaped like one.
pub fn parse(keys: &Keys, text: &str) -> Option<PresentedApiKey> {
    let mut parts = text.trim().split('.');
    let (prefix, account, key, secret) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if prefix != PREFIX || parts.next().is_some() || secret.len() != 43 {
        return None;
    }
    URL_SAFE_NO_PAD.decode(secret).ok()?;
    let key_id = Uuid::parse_str(key).ok()?;
    Some(PresentedApiKey {
        account_id: Uuid::parse_str(account).ok()?,
        key_id,
        verifier: keys.api_key_verifier(key_id, secret),
    })
}

/// When and from where a key was last used (kept beside the events: a use is not a change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastUse {
    /// When.
    pub at: DateTime<Utc>,
    /// From which client address, as the platform reported it.
    pub ip: Option<String>,
}

/// Records a successful use. The row changes only when a minute has passed since the recorded
/// use or the client address differs: a key verified on every request of a busy bot must not
/// cost a row version each time.
pub async fn record_use(
    store: &Store,
    account_id: &str,
    key_id: Uuid,
    ip: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into api_key_usage (key_id, account_id, last_used_ms, last_ip) values ($1, $2, $3, $4)
         on conflict (key_id) do update set last_used_ms = excluded.last_used_ms, last_ip = excluded.last_ip
          where api_key_usage.last_used_ms < excluded.last_used_ms - 60000
             or coalesce(api_key_usage.last_ip, '') <> coalesce(excluded.last_ip, '')",
    )
    .bind(key_id.to_string())
    .bind(account_id)
    .bind(at.timestamp_millis())
    .bind(ip)
    .execute(store.any())
    .await?;
    Ok(())
}

/// Last uses of an account's keys.
pub async fn last_uses(
    store: &Store,
    account_id: &str,
) -> Result<std::collections::HashMap<Uuid, LastUse>, StoreError> {
    let rows = sqlx::query(
        "select key_id, last_used_ms, last_ip from api_key_usage where account_id = $1",
    )
    .bind(account_id)
    .fetch_all(store.any())
    .await?;
    let mut uses = std::collections::HashMap::new();
    for row in rows {
        let key_id: String = row.try_get("key_id")?;
        let ms: i64 = row.try_get("last_used_ms")?;
        let ip: Option<String> = row.try_get("last_ip")?;
        if let (Ok(key_id), Some(at)) = (
            Uuid::parse_str(&key_id),
            Utc.timestamp_millis_opt(ms).single(),
        ) {
            uses.insert(key_id, LastUse { at, ip });
        }
    }
    Ok(uses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_an_issued_key_parses_back_to_its_ids_and_verifier() {
        let keys = Keys::from_master_hex(&"11".repeat(32)).unwrap();
        let (account, key_id) = (Uuid::new_v4(), Uuid::new_v4());
        let issued = issue(&keys, account, key_id).unwrap();
        use secrecy::ExposeSecret;
        let parsed = parse(&keys, issued.key.expose_secret()).unwrap();
        assert_eq!(parsed.account_id, account);
        assert_eq!(parsed.key_id, key_id);
        assert_eq!(parsed.verifier, issued.verifier);
        // Another secret, another verifier; malformed keys do not parse.
        let other = issue(&keys, account, key_id).unwrap();
        assert_ne!(other.verifier, issued.verifier);
        assert!(parse(&keys, "ghk1.x.y.z").is_none());
        assert!(parse(&keys, &format!("{}.extra", issued.key.expose_secret())).is_none());
    }
}
