//! One repository type over both backends, delegating to postgres-es or sqlite-es.
//!
//! Snapshots are never handed to the inner repositories: postgres-es commits its snapshot update
//! before checking it (so a reported conflict may follow stored events) and records the last
//! event's sequence even when the snapshot stops mid-batch. [`super::AggregateStore`] writes
//! snapshots itself, after the events commit, as a pure cache.
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlite_es::SqliteEventRepository;

use super::{Backend, Store};

/// postgres-es or sqlite-es behind one type.
pub enum EventRepo {
    /// PostgreSQL.
    Postgres(PostgresEventRepository),
    /// Embedded SQLite.
    Sqlite(SqliteEventRepository),
}

impl EventRepo {
    /// The repository for a store's backend.
    pub fn for_store(store: &Store) -> Self {
        match store.backend() {
            Backend::Postgres(pool) => Self::Postgres(PostgresEventRepository::new(pool.clone())),
            Backend::Sqlite(pool) => Self::Sqlite(SqliteEventRepository::new(pool.clone())),
        }
    }
}

impl PersistedEventRepository for EventRepo {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        match self {
            Self::Postgres(r) => r.get_events::<A>(aggregate_id).await,
            Self::Sqlite(r) => r.get_events::<A>(aggregate_id).await,
        }
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        match self {
            Self::Postgres(r) => r.get_last_events::<A>(aggregate_id, last_sequence).await,
            Self::Sqlite(r) => r.get_last_events::<A>(aggregate_id, last_sequence).await,
        }
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        match self {
            Self::Postgres(r) => r.get_snapshot::<A>(aggregate_id).await,
            Self::Sqlite(r) => r.get_snapshot::<A>(aggregate_id).await,
        }
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        _snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        match self {
            Self::Postgres(r) => r.persist::<A>(events, None).await,
            Self::Sqlite(r) => r.persist::<A>(events, None).await,
        }
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        match self {
            Self::Postgres(r) => r.stream_events::<A>(aggregate_id).await,
            Self::Sqlite(r) => r.stream_events::<A>(aggregate_id).await,
        }
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        match self {
            Self::Postgres(r) => r.stream_all_events::<A>().await,
            Self::Sqlite(r) => r.stream_all_events::<A>().await,
        }
    }
}
