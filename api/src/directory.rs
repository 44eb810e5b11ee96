//! Side tables next to the event store: who holds which identifier (by keyed hash) and each
//! account's wrapped data key. Neither holds personal data in clear.
use gatehouse_store::{Store, StoreError};
use sqlx::Row;

/// Whether claiming identifiers for a new account succeeded.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// All identifiers are now the new account's.
    Claimed,
    /// One is already held, by this account.
    Taken {
        /// The holder.
        holder: String,
        /// When it was claimed (epoch ms).
        claimed_ms: i64,
        /// The lookup hash found taken.
        lookup: String,
    },
}

/// Claims every `(lookup, kind)` for `account_id` and stores its wrapped data key, in one
/// transaction: either the account owns all its identifiers and has a key, or nothing changed.
pub async fn claim_identifiers(
    store: &Store,
    account_id: &str,
    lookups: &[(String, &'static str)],
    wrapped_key: &[u8],
    now_ms: i64,
) -> Result<Claim, StoreError> {
    let mut tx = store.any().begin().await?;
    for (lookup, kind) in lookups {
        let inserted = sqlx::query(
            "insert into identifier_claims (lookup, account_id, kind, claimed_ms) values ($1, $2, $3, $4)
             on conflict (lookup) do nothing",
        )
        .bind(lookup)
        .bind(account_id)
        .bind(*kind)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            let row = sqlx::query(
                "select account_id, claimed_ms from identifier_claims where lookup = $1",
            )
            .bind(lookup)
            .fetch_optional(store.any())
            .await?;
            let (holder, claimed_ms) = match row {
                Some(r) => (r.try_get("account_id")?, r.try_get("claimed_ms")?),
                // Released in the meantime: report it taken by nobody; the caller's answer is
                // the same either way.
                None => (String::new(), now_ms),
            };
            return Ok(Claim::Taken {
                holder,
                claimed_ms,
                lookup: lookup.clone(),
            });
        }
    }
    sqlx::query(
        "insert into account_keys (account_id, wrapped_key, created_ms) values ($1, $2, $3)",
    )
    .bind(account_id)
    .bind(wrapped_key.to_vec())
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Claim::Claimed)
}

/// Undoes a claim whose account could not be created, so the identifiers are free again.
pub async fn release_claims(store: &Store, account_id: &str) -> Result<(), StoreError> {
    let mut tx = store.any().begin().await?;
    sqlx::query("delete from identifier_claims where account_id = $1")
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("delete from account_keys where account_id = $1")
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The account holding an identifier's lookup hash, if any.
pub async fn find_account(store: &Store, lookup: &str) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("select account_id from identifier_claims where lookup = $1")
        .bind(lookup)
        .fetch_optional(store.any())
        .await?;
    row.map(|r| r.try_get::<String, _>("account_id"))
        .transpose()
        .map_err(StoreError::from)
}

/// An account's wrapped data key (`None` once destroyed or never created).
pub async fn wrapped_key(store: &Store, account_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let row = sqlx::query(
        "select wrapped_key from account_keys where account_id = $1 and destroyed_ms is null",
    )
    .bind(account_id)
    .fetch_optional(store.any())
    .await?;
    row.map(|r| r.try_get::<Vec<u8>, _>("wrapped_key"))
        .transpose()
        .map_err(StoreError::from)
}

/// Whether the store was set up under the same master key.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyCheck {
    /// First start: the fingerprint was recorded.
    Recorded,
    /// The fingerprint matches.
    Matches,
    /// The store was set up under another master key.
    Mismatch,
}

/// Records the master key's fingerprint on first start, or compares it with the recorded one.
pub async fn check_master_key(
    store: &Store,
    fingerprint: &str,
    now_ms: i64,
) -> Result<KeyCheck, StoreError> {
    let inserted = sqlx::query(
        "insert into key_check (id, fingerprint, created_ms) values (1, $1, $2) on conflict (id) do nothing",
    )
    .bind(fingerprint)
    .bind(now_ms)
    .execute(store.any())
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(KeyCheck::Recorded);
    }
    let recorded: String = sqlx::query_scalar("select fingerprint from key_check where id = 1")
        .fetch_one(store.any())
        .await?;
    Ok(if recorded == fingerprint {
        KeyCheck::Matches
    } else {
        KeyCheck::Mismatch
    })
}

/// Claims one more identifier for an existing account (a contact change).
pub async fn claim_identifier(
    store: &Store,
    account_id: &str,
    lookup: &str,
    kind: &'static str,
    now_ms: i64,
) -> Result<Claim, StoreError> {
    let inserted = sqlx::query(
        "insert into identifier_claims (lookup, account_id, kind, claimed_ms) values ($1, $2, $3, $4)
         on conflict (lookup) do nothing",
    )
    .bind(lookup)
    .bind(account_id)
    .bind(kind)
    .bind(now_ms)
    .execute(store.any())
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::Claimed);
    }
    let holder = find_account(store, lookup).await?.unwrap_or_default();
    Ok(Claim::Taken {
        holder,
        claimed_ms: now_ms,
        lookup: lookup.to_string(),
    })
}

/// Releases one identifier of an account (the contact it named was replaced).
pub async fn release_identifier(
    store: &Store,
    account_id: &str,
    lookup: &str,
) -> Result<(), StoreError> {
    sqlx::query("delete from identifier_claims where lookup = $1 and account_id = $2")
        .bind(lookup)
        .bind(account_id)
        .execute(store.any())
        .await?;
    Ok(())
}
