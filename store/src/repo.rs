//! One repository type over both backends, delegating to postgres-es or sqlite-es.
//!
//! Snapshots are never handed to the inner repositories: postgres-es commits its snapshot update
//! before checking it (so a reported conflict may follow stored events) and records the last
//! event's sequence even when the snapshot stops mid-batch. [`super::AggregateStore`] writes
//! snapshots itself, after the events commit, as a pure cache.
use super::stream::EventRow;
use super::{Backend, Store};
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlite_es::SqliteEventRepository;

/// postgres-es or sqlite-es behind one type.
pub enum EventRepo {
    /// PostgreSQL (reads through postgres-es; appends with one statement, see [`append_pg`]).
    Postgres(PostgresEventRepository, sqlx::PgPool),
    /// Embedded SQLite.
    Sqlite(SqliteEventRepository, sqlx::SqlitePool),
}

impl EventRepo {
    /// The repository for a store's backend.
    pub fn for_store(store: &Store) -> Self {
        match store.backend() {
            Backend::Postgres(pool) => {
                Self::Postgres(PostgresEventRepository::new(pool.clone()), pool.clone())
            }
            Backend::Sqlite(pool) => {
                Self::Sqlite(SqliteEventRepository::new(pool.clone()), pool.clone())
            }
        }
    }
}

impl PersistedEventRepository for EventRepo {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        match self {
            Self::Postgres(r, _) => r.get_events::<A>(aggregate_id).await,
            Self::Sqlite(r, _) => r.get_events::<A>(aggregate_id).await,
        }
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        // postgres-es and sqlite-es format the sequence into the SQL text, so each value is a new
        // statement to parse, plan and cache; this is the hot path of every command, so bind it.
        let after = i64::try_from(last_sequence).unwrap_or(i64::MAX);
        let rows = match self {
            Self::Postgres(_, pool) => sqlx::query_as::<_, EventRow<Value>>(EVENTS_AFTER)
                .bind(A::TYPE)
                .bind(aggregate_id)
                .bind(after)
                .fetch_all(pool)
                .await
                .map_err(|e| PersistenceError::ConnectionError(Box::new(e)))?
                .into_iter()
                .map(|row| Ok(serialized(row)))
                .collect::<Result<Vec<_>, sqlx::Error>>(),
            Self::Sqlite(_, pool) => sqlx::query_as::<_, EventRow<String>>(EVENTS_AFTER)
                .bind(A::TYPE)
                .bind(aggregate_id)
                .bind(after)
                .fetch_all(pool)
                .await
                .map_err(|e| PersistenceError::ConnectionError(Box::new(e)))?
                .into_iter()
                .map(|row| Ok(serialized(row.parsed()?)))
                .collect::<Result<Vec<_>, sqlx::Error>>(),
        };
        rows.map_err(|e| PersistenceError::DeserializationError(Box::new(e)))
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        match self {
            Self::Postgres(r, _) => r.get_snapshot::<A>(aggregate_id).await,
            Self::Sqlite(r, _) => r.get_snapshot::<A>(aggregate_id).await,
        }
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        _snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        match self {
            Self::Postgres(_, pool) => append_pg(pool, events).await,
            Self::Sqlite(r, _) => r.persist::<A>(events, None).await,
        }
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        match self {
            Self::Postgres(r, _) => r.stream_events::<A>(aggregate_id).await,
            Self::Sqlite(r, _) => r.stream_events::<A>(aggregate_id).await,
        }
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        match self {
            Self::Postgres(r, _) => r.stream_all_events::<A>().await,
            Self::Sqlite(r, _) => r.stream_all_events::<A>().await,
        }
    }
}

const PG_APPEND: &str = "
insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
select t, i, s, e, v, p::json, m::json
  from unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
       as batch(t, i, s, e, v, p, m)";

/// Appends a command's events in a single statement (atomic on its own) instead of postgres-es's
/// transaction with one insert per event: one round trip per command on the hot sign-in path.
/// A taken `(aggregate_type, aggregate_id, sequence)` is an optimistic-concurrency conflict.
async fn append_pg(
    pool: &sqlx::PgPool,
    events: &[SerializedEvent],
) -> Result<(), PersistenceError> {
    if events.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&SerializedEvent) -> String| events.iter().map(f).collect::<Vec<String>>();
    let sequences: Vec<i64> = events
        .iter()
        .map(|e| i64::try_from(e.sequence).unwrap_or(i64::MAX))
        .collect();
    let result = sqlx::query(PG_APPEND)
        .bind(column(|e| e.aggregate_type.clone()))
        .bind(column(|e| e.aggregate_id.clone()))
        .bind(sequences)
        .bind(column(|e| e.event_type.clone()))
        .bind(column(|e| e.event_version.clone()))
        .bind(column(|e| e.payload.to_string()))
        .bind(column(|e| e.metadata.to_string()))
        .execute(pool)
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {
            Err(PersistenceError::OptimisticLockError)
        }
        Err(e) => Err(PersistenceError::ConnectionError(Box::new(e))),
    }
}

const EVENTS_AFTER: &str = "
select aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata
  from events
 where aggregate_type = $1 and aggregate_id = $2 and sequence > $3
 order by sequence";

fn serialized(row: EventRow<Value>) -> SerializedEvent {
    SerializedEvent {
        aggregate_id: row.aggregate_id,
        sequence: usize::try_from(row.sequence).unwrap_or_default(),
        aggregate_type: row.aggregate_type,
        event_type: row.event_type,
        event_version: row.event_version,
        payload: row.payload,
        metadata: row.metadata,
    }
}
