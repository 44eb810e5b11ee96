//! The webhooks' side tables: the subscriptions as their aggregate last stood, the sealed
//! secrets, and the outbox rows. Same SQL on PostgreSQL and SQLite.
use gatehouse_domain::webhook::Webhook;
use gatehouse_store::{Store, StoreError};

/// A subscription as listed and as the feed matches it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Subscription {
    /// Id.
    pub id: String,
    /// Endpoint.
    pub url: String,
    /// JSON array of patterns.
    pub kinds: String,
    /// 1 when deliveries are on.
    pub enabled: i64,
    /// When it was subscribed (ms).
    pub created_ms: i64,
    /// Consecutive failed attempts.
    pub consecutive_failures: i64,
}

impl Subscription {
    /// Its patterns.
    pub fn patterns(&self) -> Vec<String> {
        serde_json::from_str(&self.kinds).unwrap_or_default()
    }
}

/// Writes the row of `id` from its aggregate at `version`, unless a newer one is there.
pub async fn save(store: &Store, id: &str, w: &Webhook, version: i64) -> Result<(), StoreError> {
    let kinds = serde_json::to_string(&w.kinds).unwrap_or_else(|_| "[]".into());
    let created_ms = w.created_at.map_or(0, |t| t.timestamp_millis());
    sqlx::query(
        "insert into webhooks (id, url, kinds, enabled, deleted, created_ms, version,
                               consecutive_failures)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (id) do update set url = excluded.url, kinds = excluded.kinds,
             enabled = excluded.enabled, deleted = excluded.deleted,
             version = excluded.version, consecutive_failures = excluded.consecutive_failures
         where webhooks.version < excluded.version",
    )
    .bind(id)
    .bind(&w.url)
    .bind(kinds)
    .bind(i64::from(w.enabled))
    .bind(i64::from(w.deleted))
    .bind(created_ms)
    .bind(version)
    .bind(i64::from(w.consecutive_failures))
    .execute(store.any())
    .await?;
    Ok(())
}

/// Every subscription not deleted, oldest first (`enabled_only`: only those delivering).
pub async fn list(store: &Store, enabled_only: bool) -> Result<Vec<Subscription>, StoreError> {
    let rows = sqlx::query_as(
        "select id, url, kinds, enabled, created_ms, consecutive_failures from webhooks
          where deleted = 0 and (enabled = 1 or $1 = 0) order by created_ms, id",
    )
    .bind(i64::from(enabled_only))
    .fetch_all(store.any())
    .await?;
    Ok(rows)
}

/// Subscriptions disabled (not deleted).
pub async fn count_disabled(store: &Store) -> Result<i64, StoreError> {
    let n: i64 =
        sqlx::query_scalar("select count(*) from webhooks where deleted = 0 and enabled = 0")
            .fetch_one(store.any())
            .await?;
    Ok(n)
}

/// Keeps a sealed secret.
pub async fn save_secret(
    store: &Store,
    webhook_id: &str,
    secret_id: uuid::Uuid,
    sealed: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into webhook_secrets (webhook_id, secret_id, sealed, created_ms)
         values ($1, $2, $3, $4)",
    )
    .bind(webhook_id)
    .bind(secret_id.to_string())
    .bind(sealed)
    .bind(now_ms)
    .execute(store.any())
    .await?;
    Ok(())
}

/// A sealed secret.
pub async fn secret(
    store: &Store,
    webhook_id: &str,
    secret_id: uuid::Uuid,
) -> Result<Option<String>, StoreError> {
    let sealed: Option<String> = sqlx::query_scalar(
        "select sealed from webhook_secrets where webhook_id = $1 and secret_id = $2",
    )
    .bind(webhook_id)
    .bind(secret_id.to_string())
    .fetch_optional(store.any())
    .await?;
    Ok(sealed)
}

/// A message to send.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Message {
    /// `webhook-id`.
    pub message_id: String,
    /// Subscription.
    pub webhook_id: String,
    /// Kind.
    pub kind: String,
    /// JSON body.
    pub body: String,
    /// Attempts made.
    pub attempts: i64,
}

/// Writes an outbox row once (a row already there is left as it is).
pub async fn enqueue(
    store: &Store,
    message_id: &str,
    webhook_id: &str,
    kind: &str,
    body: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into webhook_outbox (message_id, webhook_id, kind, body, created_ms, status,
                                     attempts, next_attempt_ms, leased_until_ms, updated_ms)
         values ($1, $2, $3, $4, $5, 'pending', 0, $5, 0, $5)
         on conflict (message_id) do nothing",
    )
    .bind(message_id)
    .bind(webhook_id)
    .bind(kind)
    .bind(body)
    .bind(now_ms)
    .execute(store.any())
    .await?;
    Ok(())
}

/// Messages due at `now_ms` and not leased, oldest first.
pub async fn due(store: &Store, now_ms: i64, limit: i64) -> Result<Vec<Message>, StoreError> {
    let rows = sqlx::query_as(
        "select message_id, webhook_id, kind, body, attempts from webhook_outbox
          where status = 'pending' and next_attempt_ms <= $1 and leased_until_ms <= $1
          order by next_attempt_ms, created_ms limit $2",
    )
    .bind(now_ms)
    .bind(limit)
    .fetch_all(store.any())
    .await?;
    Ok(rows)
}

/// Leases a due message until `until_ms`; answers whether this process got it (another may
/// have taken it since it was read).
pub async fn lease(
    store: &Store,
    message_id: &str,
    attempts: i64,
    now_ms: i64,
    until_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "update webhook_outbox set leased_until_ms = $4
          where message_id = $1 and status = 'pending' and attempts = $2
            and leased_until_ms <= $3",
    )
    .bind(message_id)
    .bind(attempts)
    .bind(now_ms)
    .bind(until_ms)
    .execute(store.any())
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// Records where a leased message stands after an attempt (or without one: `dropped`), and
/// releases the lease.
pub async fn settle(
    store: &Store,
    message_id: &str,
    status: &str,
    attempts: i64,
    next_attempt_ms: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "update webhook_outbox set status = $2, attempts = $3, next_attempt_ms = $4,
                leased_until_ms = 0, updated_ms = $5
          where message_id = $1",
    )
    .bind(message_id)
    .bind(status)
    .bind(attempts)
    .bind(next_attempt_ms)
    .bind(now_ms)
    .execute(store.any())
    .await?;
    Ok(())
}

/// Pending messages and the creation time of the oldest (ms), for the lag metrics.
pub async fn pending(store: &Store) -> Result<(i64, Option<i64>), StoreError> {
    let row: (i64, Option<i64>) = sqlx::query_as(
        "select count(*), min(created_ms) from webhook_outbox where status = 'pending'",
    )
    .fetch_one(store.any())
    .await?;
    Ok(row)
}

/// Outbox rows of one subscription by status.
pub async fn counts(store: &Store, webhook_id: &str) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = sqlx::query_as(
        "select status, count(*) from webhook_outbox where webhook_id = $1 group by status
          order by status",
    )
    .bind(webhook_id)
    .fetch_all(store.any())
    .await?;
    Ok(rows)
}
