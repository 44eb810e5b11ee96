//! Where the events live: PostgreSQL or the embedded store, and the projections' pace.
use std::path::PathBuf;

use clap::Args;

/// Store settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Store")]
pub struct StoreArgs {
    /// PostgreSQL URL; when absent the embedded store under the data directory is used.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// PostgreSQL URL of a streaming replica of `DATABASE_URL`'s database: the read-only routes
    /// read their read models from it (login history, activity, lockout, staff alert and
    /// sign-in views, recovery review list). Not valid with the embedded store.
    #[arg(long, env = "GATEHOUSE_READ_DATABASE_URL", hide_env_values = true)]
    pub read_database_url: Option<String>,
    /// Directory of the embedded store (and of its generated master key).
    #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = "./gatehouse-data")]
    pub data_dir: PathBuf,
    /// Master secret, 64 hex characters. Required with PostgreSQL; generated and kept in the data
    /// directory for the embedded store.
    #[arg(long, env = "GATEHOUSE_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// Connections in the database pool.
    #[arg(long, env = "GATEHOUSE_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// Connections of the background pools (the projections runner, the outbox, webhook and
    /// NATS workers), apart from the requests' pool so requests never wait behind them.
    #[arg(
        long,
        env = "GATEHOUSE_DB_BACKGROUND_CONNECTIONS",
        default_value_t = 4,
        value_parser = super::parse::count_u32(1)
    )]
    pub db_background_connections: u32,
    /// Milliseconds a request waits for a database connection before it answers `503
    /// unavailable` with `Retry-After` (the database is away or every connection is busy).
    #[arg(
        long,
        env = "GATEHOUSE_DB_ACQUIRE_TIMEOUT_MS",
        default_value_t = 2000,
        value_parser = super::parse::count_usize(100, 60_000)
    )]
    pub db_acquire_timeout_ms: usize,
    /// Accounts whose latest state the server keeps in memory between commands (a miss reads
    /// the account's snapshot and the events after it). About 1 KB each at rest, a few KB with
    /// live sessions and flows; 0 keeps none.
    #[arg(
        long,
        env = "GATEHOUSE_AGGREGATE_CACHE",
        default_value_t = gatehouse_store::DEFAULT_CACHE_CAPACITY,
        value_parser = super::parse::count_usize(0, 1_000_000)
    )]
    pub aggregate_cache: usize,
    /// Milliseconds the projections runner gathers new events before applying them (read models
    /// lag by about this much; larger batches cost less under load).
    #[arg(long, env = "GATEHOUSE_PROJECTION_COALESCE_MS", default_value_t = 100)]
    pub projection_coalesce_ms: u64,
    /// Milliseconds a read-model answer to a signed-in person (login history, activity) waits
    /// for the read model to reach that person's own latest event; past it the answer says
    /// `stale: true`. 0: never wait.
    #[arg(
        long,
        env = "GATEHOUSE_READ_YOUR_WRITES_MS",
        default_value_t = 1000,
        value_parser = super::parse::count_usize(0, 60_000)
    )]
    pub read_your_writes_ms: usize,
}

impl StoreArgs {
    /// How long the projections runner gathers events.
    pub fn coalesce(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.projection_coalesce_ms)
    }

    /// How long a request waits for a database connection.
    pub fn acquire_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.db_acquire_timeout_ms as u64)
    }

    /// How long a read-model answer waits for the caller's own latest event.
    pub fn read_your_writes(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.read_your_writes_ms as u64)
    }
}
