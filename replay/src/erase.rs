//! `erase --account ID`: the right to be forgotten without touching the immutable events.
//!
//! The account's personal data (email, phone) exists only as ciphertext in its events, sealed
//! under its data key; the key exists only wrapped in `account_keys`. Erasure overwrites that
//! wrapped key with nothing and stamps `destroyed_ms` (the row stays as the record that, and when,
//! the account was erased), in the same transaction that removes the account's rows from
//! `identifier_claims`. The claims hold no personal data in clear (a keyed hash), but they would
//! let whoever holds the master key confirm a guessed identifier, and they keep the identifier
//! from being registered again; both end with erasure. The keyed lookup hash inside the
//! `AccountRegistered` event stays (events are never rewritten): it is pseudonymous and, with the
//! claim gone, points nowhere.
//!
//! The side tables keyed by account (last API-key use with its client address, WebAuthn
//! ceremonies and credential claims) lose the account's rows in the same transaction.
//!
//! After erasure the events still verify (their stored form is unchanged), every read model
//! rebuilds identically, and `state`/`export` show the sealed fields as `erased`.
use chrono::Utc;
use gatehouse_replay::report::EraseReport;
use gatehouse_store::Store;

use crate::source::{Error, Result};

/// Destroys the account's data key and its identifier claims.
pub async fn erase(store: &Store, account: &str) -> Result<EraseReport> {
    let mut tx = store.any().begin().await?;
    let keys: i64 = sqlx::query_scalar("select count(*) from account_keys where account_id = $1")
        .bind(account)
        .fetch_one(&mut *tx)
        .await?;
    if keys == 0 {
        return Err(Error::Usage(format!(
            "account {account} has no data key (unknown, or a stand-in for an unknown identifier)"
        )));
    }
    let now = Utc::now().timestamp_millis();
    sqlx::query(
        "update account_keys set wrapped_key = $2, destroyed_ms = coalesce(destroyed_ms, $3)
          where account_id = $1",
    )
    .bind(account)
    .bind(Vec::<u8>::new())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let claims = sqlx::query("delete from identifier_claims where account_id = $1")
        .bind(account)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    // Side tables that hold what the account did, outside the events: the last client address
    // of each API key (personal data), open WebAuthn ceremonies, and security-key claims.
    let mut side_rows = 0;
    for table in [
        "api_key_usage",
        "webauthn_ceremonies",
        "security_key_claims",
    ] {
        side_rows += sqlx::query(&format!("delete from {table} where account_id = $1"))
            .bind(account)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    let destroyed_ms: i64 =
        sqlx::query_scalar("select destroyed_ms from account_keys where account_id = $1")
            .bind(account)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(EraseReport {
        account: account.to_string(),
        identifier_claims_removed: claims,
        key_destroyed_ms: destroyed_ms,
        side_rows_removed: side_rows,
    })
}
