//! Gatehouse's write side: the event store on PostgreSQL (postgres-es) or an embedded SQLite file
//! (sqlite-es), snapshots, the gap-free global stream, the command executor and the schema
//! migrations.
//!
//! It is its own crate because it is the one part every other layer stands on: the API executes
//! commands through it, the projections runner reads the global stream from it, and the replay
//! tool and the bench open it directly. None of them needs the read models to write an event, and
//! the read models never write to the event tables; keeping the two in one crate hid that
//! boundary. This crate knows nothing of the read models (`gatehouse-projections` depends on it,
//! never the reverse).
//!
//! Two pools per store: a typed one (postgres-es and sqlite-es need `Pool<Postgres>` /
//! `Pool<Sqlite>`, and the global stream reader uses dialect-specific SQL) and an `Any` pool for
//! the read models and side tables, whose SQL is written once in the subset both dialects share
//! (`$n` parameters, `on conflict`, integers and text).
#![forbid(unsafe_code)]
#![deny(clippy::all)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod aggregate_store;
mod commit_signal;
mod execute;
mod replica;
mod repo;
mod stream;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AnyPool, PgPool, SqlitePool};
use thiserror::Error;

pub use aggregate_store::{AggregateStore, SNAPSHOT_EVERY};
pub use commit_signal::CommitSignal;
pub use execute::{CommandExecutor, ExecuteError, Executed, DEFAULT_CACHE_CAPACITY};
pub use replica::ReplicaAtStart;
pub use repo::EventRepo;
pub use stream::{StoredEvent, StreamPosition};

/// Which database holds the events.
#[derive(Clone, Debug)]
pub enum Backend {
    /// PostgreSQL (production).
    Postgres(PgPool),
    /// An embedded SQLite file (laptops, demos).
    Sqlite(SqlitePool),
}

/// Store failures. The message may hold database detail: log it, never return it to a client.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Connecting or a query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored row could not be decoded.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The read database is not a replica of this store's primary (another cluster, another
    /// database), or a read database was given to the embedded store.
    #[error("{0}")]
    ReadReplica(String),
}

/// A connected store.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    any: AnyPool,
    /// The read pool on a PostgreSQL streaming replica, when one is configured.
    reads: Option<AnyPool>,
    /// Where the pools connect, so [`Store::background`] can open pools of its own there.
    origin: Origin,
}

/// What a store was opened on.
#[derive(Clone)]
enum Origin {
    Postgres {
        url: String,
        acquire_timeout: Duration,
    },
    Sqlite {
        dir: std::path::PathBuf,
    },
}

/// Never the URL: it may carry the database password, and a `Store` is `Debug`.
impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Postgres {
                acquire_timeout, ..
            } => f
                .debug_struct("Postgres")
                .field("url", &"[redacted]")
                .field("acquire_timeout", acquire_timeout)
                .finish(),
            Self::Sqlite { dir } => f.debug_struct("Sqlite").field("dir", dir).finish(),
        }
    }
}

static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

impl Store {
    /// Connects to PostgreSQL. Fails (never panics) when the server cannot be reached. A caller
    /// waits up to 10 s for a pooled connection (tools and tests; the server sets its own bound
    /// with [`Store::connect_postgres_with`]).
    pub async fn connect_postgres(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Self::connect_postgres_with(url, max_connections, Duration::from_secs(10)).await
    }

    /// Connects to PostgreSQL with a bound on how long a caller waits for a pooled connection:
    /// past it the query fails with [`sqlx::Error::PoolTimedOut`], so a request answers
    /// `unavailable` within that time when the database is away, and the pool reconnects by
    /// itself once it is back.
    pub async fn connect_postgres_with(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let options = PgConnectOptions::from_str(url)?;
        let origin = Origin::Postgres {
            url: url.to_string(),
            acquire_timeout,
        };
        let typed = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect_with(options)
            .await?;
        let any = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect(url)
            .await?;
        Ok(Self {
            backend: Backend::Postgres(typed),
            any,
            reads: None,
            origin,
        })
    }

    /// Opens (creating if needed) the embedded store `gatehouse.db` in `dir`.
    pub async fn open_embedded(dir: &Path) -> Result<Self, StoreError> {
        Self::open_embedded_with(dir, 4).await
    }

    async fn open_embedded_with(dir: &Path, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        let file = dir.join("gatehouse.db");
        let options = SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30));
        let typed = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await?;
        let url = format!("sqlite://{}", file.display());
        let any = AnyPoolOptions::new()
            .max_connections(max_connections)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("pragma busy_timeout = 30000")
                        .execute(conn)
                        .await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        Ok(Self {
            backend: Backend::Sqlite(typed),
            any,
            reads: None,
            origin: Origin::Sqlite {
                dir: dir.to_path_buf(),
            },
        })
    }

    /// The same database through pools of its own, at most `max_connections` each, for
    /// background work (the projections runner, outbox and publishing workers): their batches
    /// then never hold a connection a request is waiting for, and a request never queues behind
    /// them in the pool. On SQLite, writers still take turns on the file's one write lock (the
    /// busy timeout covers the wait), as they did on the shared pool.
    pub async fn background(&self, max_connections: u32) -> Result<Self, StoreError> {
        let max_connections = max_connections.max(1);
        let mut background = match &self.origin {
            Origin::Postgres {
                url,
                acquire_timeout,
            } => Self::connect_postgres_with(url, max_connections, *acquire_timeout).await?,
            Origin::Sqlite { dir } => Self::open_embedded_with(dir, max_connections).await?,
        };
        // The replica's read pool is shared, not opened again: what reads it (the read models'
        // checkpoints as the read routes see them) serves requests.
        background.reads = self.reads.clone();
        Ok(background)
    }

    /// Applies the schema for this backend (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
            Backend::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// The typed backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The pool for read models and side tables on the primary: every write, and every read
    /// a decision depends on.
    pub fn any(&self) -> &AnyPool {
        &self.any
    }

    /// The pool for the read-only queries of read-only routes: the streaming replica's when
    /// one is configured ([`Store::with_read_replica`]), else the primary's [`Store::any`], so
    /// route code never branches. What it answers may lag the primary by the replica's replay
    /// lag on top of the projections' own; a route that must show the caller's own writes
    /// waits for the read models' checkpoints *as this pool sees them* first.
    pub fn reads(&self) -> &AnyPool {
        self.reads.as_ref().unwrap_or(&self.any)
    }

    /// Whether reads go to a replica.
    pub fn has_read_replica(&self) -> bool {
        self.reads.is_some()
    }

    /// `"postgres"` or `"embedded"`.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "embedded",
        }
    }

    /// A trivial round trip to the read replica (`Ok` at once without one).
    pub async fn ping_reads(&self) -> Result<(), StoreError> {
        if let Some(reads) = &self.reads {
            sqlx::query("select 1").execute(reads).await?;
        }
        Ok(())
    }

    /// A trivial round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.any).await?;
        Ok(())
    }

    /// Closes every pool.
    pub async fn close(&self) {
        self.any.close().await;
        if let Some(reads) = &self.reads {
            reads.close().await;
        }
        match &self.backend {
            Backend::Postgres(p) => p.close().await,
            Backend::Sqlite(p) => p.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_a_store_never_shows_its_database_password() {
        let origin = Origin::Postgres {
            url: "postgres://gatehouse:hunter2-secret@db.internal/gatehouse".into(),
            acquire_timeout: Duration::from_secs(2),
        };
        let shown = format!("{origin:?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
