//! The global stream: every event of every aggregate, in one order that never skips a late commit.
//!
//! PostgreSQL takes a `bigserial` value before commit, so a reader that follows it alone can pass
//! over a row whose transaction commits late. Here the order is `(tx_id, global_position)` and a
//! reader only sees rows of transactions older than its horizon (`pg_horizon!`): the oldest
//! transaction, running when the reader's snapshot was taken, that may append events to this
//! database. Rows below it never change, so no late commit lands below a position already read.
//!
//! An appender is recognised by its row-exclusive lock on `events`, taken before its transaction
//! has an id; migration `0170_events_first_write` makes the insert of events the first write of
//! its transaction, so a transaction without that lock can never append later. Long transactions
//! elsewhere (another database of the cluster, or other tables of this one) hold no reader back,
//! where the cluster-wide `pg_snapshot_xmin` did, and appends still commit concurrently.
//!
//! On SQLite, writers are serialised and the position is assigned inside the writing transaction,
//! so position order is commit order.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// The horizon of a PostgreSQL reader, as a `with` clause defining `horizon(h)` (an `xid8`).
///
/// It reads, in one statement: the statement's snapshot, then `pg_locks`. A transaction running
/// at the snapshot (`pg_snapshot_xip`) is passed over only when the locks show it running under
/// a virtual transaction that holds no row-exclusive lock on this database's `events`: it can no
/// longer append (its first write was not an event). Every other one bounds the horizon, whether
/// it appends now, or ended between the snapshot and the lock read, or has not yet shown its
/// transaction lock (conservative: the next read moves on). Transactions that begin after the
/// snapshot get ids at or past its `xmax`, which caps the horizon. Locks are matched on the
/// virtual transaction, which prepared transactions keep too.
macro_rules! pg_horizon {
    () => {
        "
with locks as materialized (
       select locktype, mode, granted, virtualtransaction, database, relation,
              transactionid::text::bigint as xid32
         from pg_locks),
     appenders as (
       select virtualtransaction from locks
        where locktype = 'relation' and mode = 'RowExclusiveLock'
          and relation = 'events'::regclass
          and database = (select oid from pg_database where datname = current_database())),
     not_appending as (
       select xid32 from locks
        where locktype = 'transactionid' and mode = 'ExclusiveLock' and granted
          and virtualtransaction not in (select virtualtransaction from appenders)),
     snapshot as (select pg_current_snapshot() as s),
     horizon as (
       select coalesce(
                (select x from pg_snapshot_xip(s) as x
                  where x::text::bigint % 4294967296 not in (select xid32 from not_appending)
                  order by x limit 1),
                pg_snapshot_xmax(s)) as h
         from snapshot)
"
    };
}

const PG_READ: &str = concat!(
    pg_horizon!(),
    "
select aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata,
       global_position, tx_id::text::bigint as tx, recorded_at
  from events
 where (tx_id, global_position) > ($1::text::xid8, $2)
   and tx_id < (select h from horizon)
 order by tx_id, global_position
 limit $3"
);

const SQLITE_READ: &str = "
select aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata,
       position, recorded_at
  from events
 where position > $1
 order by position
 limit $2";

/// The columns every reader of the event table takes, as stored: `J` is the payload's type, `json`
/// (a [`Value`]) on PostgreSQL and text (a `String`) on SQLite.
#[derive(sqlx::FromRow)]
pub(crate) struct EventRow<J> {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: J,
    pub metadata: J,
}

impl EventRow<String> {
    /// The row with its payload and metadata (text, as SQLite stores them) parsed.
    pub(crate) fn parsed(self) -> Result<EventRow<Value>, sqlx::Error> {
        let parse = |text: &str| {
            serde_json::from_str::<Value>(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
        };
        Ok(EventRow {
            payload: parse(&self.payload)?,
            metadata: parse(&self.metadata)?,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            sequence: self.sequence,
            event_type: self.event_type,
            event_version: self.event_version,
        })
    }
}

/// A row of [`PG_READ`].
#[derive(sqlx::FromRow)]
struct PgStreamRow {
    #[sqlx(flatten)]
    event: EventRow<Value>,
    tx: i64,
    global_position: i64,
    recorded_at: Option<DateTime<Utc>>,
}

/// A row of [`SQLITE_READ`].
#[derive(sqlx::FromRow)]
struct SqliteStreamRow {
    #[sqlx(flatten)]
    event: EventRow<String>,
    position: i64,
    recorded_at: String,
}

/// A row of the stream head query on PostgreSQL.
#[derive(sqlx::FromRow)]
struct PgHeadRow {
    tx: i64,
    global_position: i64,
}

impl StoredEvent {
    fn from_row(
        event: EventRow<Value>,
        position: StreamPosition,
        recorded_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            position,
            aggregate_type: event.aggregate_type,
            aggregate_id: event.aggregate_id,
            sequence: event.sequence,
            event_type: event.event_type,
            event_version: event.event_version,
            payload: event.payload,
            metadata: event.metadata,
            recorded_at,
            decoded: Decoded::default(),
        }
    }
}

impl Store {
    /// Reads up to `limit` events after `after`, in global order.
    pub async fn read_stream(
        &self,
        after: StreamPosition,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        match self.backend() {
            Backend::Postgres(pool) => {
                let rows: Vec<PgStreamRow> = sqlx::query_as(PG_READ)
                    .bind(after.tx.to_string())
                    .bind(after.pos)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|row| {
                        let position = StreamPosition {
                            tx: row.tx,
                            pos: row.global_position,
                        };
                        StoredEvent::from_row(row.event, position, row.recorded_at)
                    })
                    .collect())
            }
            Backend::Sqlite(pool) => {
                let rows: Vec<SqliteStreamRow> = sqlx::query_as(SQLITE_READ)
                    .bind(after.pos)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.into_iter()
                    .map(|row| {
                        let event = row.event.parsed()?;
                        let position = StreamPosition {
                            tx: 0,
                            pos: row.position,
                        };
                        let recorded_at = DateTime::parse_from_rfc3339(&row.recorded_at)
                            .ok()
                            .map(|t| t.with_timezone(&Utc));
                        Ok(StoredEvent::from_row(event, position, recorded_at))
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
                let row: Option<PgHeadRow> = sqlx::query_as(concat!(
                    pg_horizon!(),
                    "select tx_id::text::bigint as tx, global_position from events
                      where tx_id < (select h from horizon)
                      order by tx_id desc, global_position desc limit 1"
                ))
                .fetch_optional(pool)
                .await?;
                Ok(row.map(|r| StreamPosition {
                    tx: r.tx,
                    pos: r.global_position,
                }))
            }
            Backend::Sqlite(pool) => {
                let pos: Option<i64> = sqlx::query_scalar("select max(position) from events")
                    .fetch_one(pool)
                    .await?;
                Ok(pos.map(|pos| StreamPosition { tx: 0, pos }))
            }
        }
    }

    /// Where the last event of one aggregate stands in the global stream (`None` before its
    /// first): what a read model must have applied to reflect that aggregate's latest change
    /// (read your own writes).
    pub async fn aggregate_head(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<StreamPosition>, StoreError> {
        match self.backend() {
            Backend::Postgres(pool) => {
                let row: Option<PgHeadRow> = sqlx::query_as(
                    "select tx_id::text::bigint as tx, global_position from events
                      where aggregate_type = $1 and aggregate_id = $2
                      order by sequence desc limit 1",
                )
                .bind(aggregate_type)
                .bind(aggregate_id)
                .fetch_optional(pool)
                .await?;
                Ok(row.map(|r| StreamPosition {
                    tx: r.tx,
                    pos: r.global_position,
                }))
            }
            Backend::Sqlite(pool) => {
                let pos: Option<Option<i64>> = sqlx::query_scalar(
                    "select position from events
                      where aggregate_type = $1 and aggregate_id = $2
                      order by sequence desc limit 1",
                )
                .bind(aggregate_type)
                .bind(aggregate_id)
                .fetch_optional(pool)
                .await?;
                Ok(pos.flatten().map(|pos| StreamPosition { tx: 0, pos }))
            }
        }
    }

    /// How many events a reader at `after` has yet to read (those visible now).
    pub async fn count_after(&self, after: StreamPosition) -> Result<i64, StoreError> {
        let count = match self.backend() {
            Backend::Postgres(pool) => {
                sqlx::query_scalar(concat!(
                    pg_horizon!(),
                    "select count(*) from events
                      where (tx_id, global_position) > ($1::text::xid8, $2)
                        and tx_id < (select h from horizon)"
                ))
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
