//! The delivery worker's reads and writes of the outbox: the messages due, and each message's
//! lease and tries in `notification_attempts` (a side table beside `notification_outbox_v1` that
//! only the worker writes; a rebuild leaves it alone). A message is leased before it is sent, so
//! several server processes can drain one database without sending a message twice at once.
use gatehouse_domain::policy::Channel;
use gatehouse_store::{Store, StoreError};
use uuid::Uuid;

/// A message owed and due: pending in the outbox, neither leased nor waiting for a retry.
#[derive(Debug, Clone, PartialEq)]
pub struct DueMessage {
    /// Notification id (`notification_id`).
    pub id: String,
    /// The account it is about.
    pub account_id: String,
    /// What it says.
    pub topic: String,
    /// Where it goes.
    pub channel: Channel,
    /// The code it carries, for code messages.
    pub code_id: Option<Uuid>,
    /// What the topic's text needs (see [`super::NotificationChange`]).
    pub details: serde_json::Value,
    /// When a code message stops being worth sending (ms).
    pub expires_ms: Option<i64>,
    /// Tries so far.
    pub attempts: u32,
    /// When it was owed (the time of its event, ms).
    pub created_ms: i64,
}

/// A row of [`DUE`], as stored.
#[derive(sqlx::FromRow)]
struct DueRow {
    id: String,
    account_id: String,
    topic: String,
    channel: String,
    code_id: Option<String>,
    details: String,
    expires_ms: Option<i64>,
    attempts: i64,
    created_ms: i64,
}

impl From<DueRow> for DueMessage {
    fn from(row: DueRow) -> Self {
        Self {
            id: row.id,
            account_id: row.account_id,
            topic: row.topic,
            channel: if row.channel == "sms" {
                Channel::Sms
            } else {
                Channel::Email
            },
            code_id: row.code_id.and_then(|c| Uuid::parse_str(&c).ok()),
            details: serde_json::from_str(&row.details).unwrap_or_default(),
            expires_ms: row.expires_ms,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            created_ms: row.created_ms,
        }
    }
}

const DUE: &str = "
select o.id, o.account_id, o.topic, o.channel, o.code_id, o.details, o.expires_ms,
       coalesce(a.attempts, 0) as attempts, o.created_ms
  from notification_outbox_v1 o
  left join notification_attempts a on a.id = o.id
 where o.status = 'pending'
   and (a.id is null or (a.next_attempt_ms <= $1 and a.leased_until_ms <= $1))
 order by o.created_ms
 limit $2";

/// Up to `limit` messages due at `now_ms`, oldest first.
pub async fn due(store: &Store, now_ms: i64, limit: i64) -> Result<Vec<DueMessage>, StoreError> {
    let rows: Vec<DueRow> = sqlx::query_as(DUE)
        .bind(now_ms)
        .bind(limit)
        .fetch_all(store.any())
        .await?;
    Ok(rows.into_iter().map(DueMessage::from).collect())
}

/// Leases message `id` until `until_ms`; `false` when another worker holds it or it is waiting
/// for a retry.
pub async fn lease(
    store: &Store,
    id: &str,
    now_ms: i64,
    until_ms: i64,
) -> Result<bool, StoreError> {
    let leased = sqlx::query(
        "insert into notification_attempts (id, attempts, next_attempt_ms, leased_until_ms)
         values ($1, 0, $2, $3)
         on conflict (id) do update set leased_until_ms = $3
           where notification_attempts.leased_until_ms <= $2
             and notification_attempts.next_attempt_ms <= $2",
    )
    .bind(id)
    .bind(now_ms)
    .bind(until_ms)
    .execute(store.any())
    .await?
    .rows_affected();
    Ok(leased == 1)
}

/// Records a try of message `id` (its `attempts` so far) and releases its lease; it is due again
/// at `next_attempt_ms` unless its outcome took it out of `pending` meanwhile.
pub async fn record_try(
    store: &Store,
    id: &str,
    attempts: u32,
    next_attempt_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "update notification_attempts set attempts = $2, next_attempt_ms = $3, leased_until_ms = 0
         where id = $1",
    )
    .bind(id)
    .bind(i64::from(attempts))
    .bind(next_attempt_ms)
    .execute(store.any())
    .await?;
    Ok(())
}
