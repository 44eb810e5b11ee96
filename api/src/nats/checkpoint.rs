//! The publisher's checkpoint and lease: one `stream_publishers` row per stream name.
//!
//! The row says how far the stream has been published (a position in the global stream, and a
//! cursor over the alerts read model's changes) and which server process publishes: the holder
//! of an unexpired lease. A process takes the lease when it is free or expired, renews it with
//! every checkpoint it writes, and writes a checkpoint only while it still holds the lease (the
//! update names it), so two processes never move one checkpoint, and a process that lost its
//! lease stops at its next write. Same SQL on PostgreSQL and SQLite.
//!
//! The webhooks' feed keeps its checkpoint the same way in a table of its own
//! ([`WEBHOOK_FEED`]): every function names the table.
use gatehouse_store::{Store, StoreError, StreamPosition};

/// The NATS publishers' table.
pub const PUBLISHERS: &str = "stream_publishers";

/// The webhook feed's table.
pub const WEBHOOK_FEED: &str = "webhook_feed";

/// Where the publisher stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every event at or before this position is published.
    pub events: StreamPosition,
    /// Every alert change at or before this `(position, alert id)` is published.
    pub alerts: (StreamPosition, String),
    /// Whether a checkpoint was ever saved in this row. A fresh row and a row saved at the start
    /// of an empty stream hold the same positions; only this tells a first run from a consumer
    /// that started when the stream was empty.
    pub saved: bool,
}

/// A row as selected.
#[derive(sqlx::FromRow)]
struct Row {
    tx_id: i64,
    position: i64,
    alerts_tx: i64,
    alerts_pos: i64,
    alerts_id: String,
    updated_ms: i64,
}

impl From<Row> for Checkpoint {
    fn from(r: Row) -> Self {
        Self {
            events: StreamPosition {
                tx: r.tx_id,
                pos: r.position,
            },
            alerts: (
                StreamPosition {
                    tx: r.alerts_tx,
                    pos: r.alerts_pos,
                },
                r.alerts_id,
            ),
            // `save` stamps `updated_ms`; a row only ever inserted keeps its default 0.
            saved: r.updated_ms > 0,
        }
    }
}

/// Takes or renews the lease of `name` for `holder` until `until_ms`, if it is free, expired or
/// already `holder`'s; answers the checkpoint when it did, `None` when another process holds it.
pub async fn acquire(
    store: &Store,
    table: &str,
    name: &str,
    holder: &str,
    now_ms: i64,
    until_ms: i64,
) -> Result<Option<Checkpoint>, StoreError> {
    // One statement per round (it was an insert-if-missing, then the update): the row is
    // created with the lease on the first start, else taken under the same condition as before.
    let row: Option<Row> = sqlx::query_as(&format!(
        "insert into {table} (name, holder, leased_until_ms) values ($1, $2, $3)
         on conflict (name) do update set holder = excluded.holder, leased_until_ms = excluded.leased_until_ms
          where {table}.holder = $2 or {table}.holder is null or {table}.leased_until_ms <= $4
         returning tx_id, position, alerts_tx, alerts_pos, alerts_id, updated_ms"
    ))
    .bind(name)
    .bind(holder)
    .bind(until_ms)
    .bind(now_ms)
    .fetch_optional(store.any())
    .await?;
    Ok(row.map(Checkpoint::from))
}

/// Moves the checkpoint and renews the lease, if `holder` still holds it; answers whether it did.
pub async fn save(
    store: &Store,
    table: &str,
    name: &str,
    holder: &str,
    at: &Checkpoint,
    now_ms: i64,
    until_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(&format!(
        "update {table}
            set tx_id = $3, position = $4, alerts_tx = $5, alerts_pos = $6, alerts_id = $7,
                leased_until_ms = $8, updated_ms = $9
          where name = $1 and holder = $2"
    ))
    .bind(name)
    .bind(holder)
    .bind(at.events.tx)
    .bind(at.events.pos)
    .bind(at.alerts.0.tx)
    .bind(at.alerts.0.pos)
    .bind(at.alerts.1.as_str())
    .bind(until_ms)
    .bind(now_ms)
    .execute(store.any())
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// Gives the lease up (on shutdown), so that another process takes over at once.
pub async fn release(
    store: &Store,
    table: &str,
    name: &str,
    holder: &str,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "update {table} set holder = null, leased_until_ms = 0
          where name = $1 and holder = $2"
    ))
    .bind(name)
    .bind(holder)
    .execute(store.any())
    .await?;
    Ok(())
}

/// The checkpoint of `name`, whoever holds it (for the lag metrics); `None` before the first
/// publisher started.
pub async fn read(
    store: &Store,
    table: &str,
    name: &str,
) -> Result<Option<Checkpoint>, StoreError> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "select tx_id, position, alerts_tx, alerts_pos, alerts_id, updated_ms from {table}
          where name = $1"
    ))
    .bind(name)
    .fetch_optional(store.any())
    .await?;
    Ok(row.map(Checkpoint::from))
}

/// Alert changes after `after` in the order they were made (the alerts read model's change
/// positions, then ids), at most `limit`.
pub async fn alert_changes_after(
    store: &Store,
    after: &(StreamPosition, String),
    limit: i64,
) -> Result<Vec<gatehouse_projections::alerts::query::AlertRow>, StoreError> {
    let (at, id) = after;
    gatehouse_projections::alerts::query::alerts_changed_after_id(store.any(), *at, id, limit).await
}
