//! The global stream: every event of every aggregate, in one order that never skips a late commit.
//!
//! PostgreSQL takes a `bigserial` value before commit, so a reader that follows it alone can pass
//! over a row whose transaction commits late. Here the order is `(tx_id, global_position)` and a
//! reader only sees rows of transactions older than the oldest one still running
//! (`pg_snapshot_xmin(pg_current_snapshot())`): that set never grows below a position already
//! read. On SQLite, writers are serialised and the position is assigned inside the writing
//! transaction, so position order is commit order.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

use super::{Backend, Store, StoreError};

/// A point in the global stream: everything at or before it has been read.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct StreamPosition {
    /// Transaction id (always 0 on SQLite).
    pub tx: i64,
    /// Position within the store.
    pub pos: i64,
}

/// One stored event as read from the global stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Where it stands in the global stream.
    pub position: StreamPosition,
    /// Aggregate type, e.g. `Account`.
    pub aggregate_type: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// Sequence within the aggregate (from 1).
    pub sequence: i64,
    /// Event type string.
    pub event_type: String,
    /// Payload version.
    pub event_version: String,
    /// Payload as stored.
    pub payload: Value,
    /// Request metadata (request id, …).
    pub metadata: Value,
    /// When the row was written.
    pub recorded_at: Option<DateTime<Utc>>,
    /// The decoded `Account` payload, once a reader asked for it: every read model of a batch
    /// reads the same event, and decoding is most of what reading costs.
    pub decoded: Decoded,
}

/// A decoded payload kept beside the event (see `gatehouse_projections::account_event`). Not part
/// of the event's identity: two events are equal whether or not they were decoded.
#[derive(Debug, Clone, Default)]
pub struct Decoded(std::sync::OnceLock<gatehouse_domain::AccountEvent>);

impl Decoded {
    /// The payload, if decoded already.
    pub fn get(&self) -> Option<&gatehouse_domain::AccountEvent> {
        self.0.get()
    }

    /// Keeps the decoded payload (the first one kept stays).
    pub fn keep(&self, event: gatehouse_domain::AccountEvent) {
        let _ = self.0.set(event);
    }
}

impl PartialEq for Decoded {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

const PG_READ: &str = "
select aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata,
       global_position, tx_id::text::bigint as tx, recorded_at
  from events
 where (tx_id, global_position) > ($1::text::xid8, $2)
   and tx_id < pg_snapshot_xmin(pg_current_snapshot())
 order by tx_id, global_position
 limit $3";

const SQLITE_READ: &str = "
select aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata,
       position, recorded_at
  from events
 where position > $1
 order by position
 limit $2";

impl Store {
    /// Reads up to `limit` events after `after`, in global order.
    pub async fn read_stream(
        &self,
        after: StreamPosition,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        match self.backend() {
            Backend::Postgres(pool) => {
                let rows = sqlx::query(PG_READ)
                    .bind(after.tx.to_string())
                    .bind(after.pos)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok(StoredEvent {
                            position: StreamPosition {
                                tx: row.try_get("tx")?,
                                pos: row.try_get("global_position")?,
                            },
                            aggregate_type: row.try_get("aggregate_type")?,
                            aggregate_id: row.try_get("aggregate_id")?,
                            sequence: row.try_get("sequence")?,
                            event_type: row.try_get("event_type")?,
                            event_version: row.try_get("event_version")?,
                            payload: row.try_get("payload")?,
                            metadata: row.try_get("metadata")?,
                            recorded_at: row.try_get("recorded_at")?,
                            decoded: Decoded::default(),
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }
            Backend::Sqlite(pool) => {
                let rows = sqlx::query(SQLITE_READ)
                    .bind(after.pos)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        let payload: String = row.try_get("payload")?;
                        let metadata: String = row.try_get("metadata")?;
                        let recorded: String = row.try_get("recorded_at")?;
                        Ok(StoredEvent {
                            position: StreamPosition {
                                tx: 0,
                                pos: row.try_get("position")?,
                            },
                            aggregate_type: row.try_get("aggregate_type")?,
                            aggregate_id: row.try_get("aggregate_id")?,
                            sequence: row.try_get("sequence")?,
                            event_type: row.try_get("event_type")?,
                            event_version: row.try_get("event_version")?,
                            payload: serde_json::from_str(&payload)
                                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                            metadata: serde_json::from_str(&metadata)
                                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                            recorded_at: DateTime::parse_from_rfc3339(&recorded)
                                .ok()
                                .map(|t| t.with_timezone(&Utc)),
                            decoded: Decoded::default(),
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }
        }
    }

    /// The last position in the stream that a reader could see now (`None` when empty).
    pub async fn stream_head(&self) -> Result<Option<StreamPosition>, StoreError> {
        match self.backend() {
            Backend::Postgres(pool) => {
                let row = sqlx::query(
                    "select tx_id::text::bigint as tx, global_position from events
                      where tx_id < pg_snapshot_xmin(pg_current_snapshot())
                      order by tx_id desc, global_position desc limit 1",
                )
                .fetch_optional(pool)
                .await?;
                row.map(|r| {
                    Ok(StreamPosition {
                        tx: r.try_get("tx")?,
                        pos: r.try_get("global_position")?,
                    })
                })
                .transpose()
                .map_err(|e: sqlx::Error| e.into())
            }
            Backend::Sqlite(pool) => {
                let pos: Option<i64> = sqlx::query_scalar("select max(position) from events")
                    .fetch_one(pool)
                    .await?;
                Ok(pos.map(|pos| StreamPosition { tx: 0, pos }))
            }
        }
    }

    /// How many events a reader at `after` has yet to read (those visible now).
    pub async fn count_after(&self, after: StreamPosition) -> Result<i64, StoreError> {
        let count = match self.backend() {
            Backend::Postgres(pool) => {
                sqlx::query_scalar(
                    "select count(*) from events
                      where (tx_id, global_position) > ($1::text::xid8, $2)
                        and tx_id < pg_snapshot_xmin(pg_current_snapshot())",
                )
                .bind(after.tx.to_string())
                .bind(after.pos)
                .fetch_one(pool)
                .await?
            }
            Backend::Sqlite(pool) => {
                sqlx::query_scalar("select count(*) from events where position > $1")
                    .bind(after.pos)
                    .fetch_one(pool)
                    .await?
            }
        };
        Ok(count)
    }
}
