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
    /// Milliseconds the projections runner gathers new events before applying them (read models
    /// lag by about this much; larger batches cost less under load).
    #[arg(long, env = "GATEHOUSE_PROJECTION_COALESCE_MS", default_value_t = 100)]
    pub projection_coalesce_ms: u64,
}

impl StoreArgs {
    /// How long the projections runner gathers events.
    pub fn coalesce(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.projection_coalesce_ms)
    }
}
