//! `gatehouse-replay`: what auditors and operators run against a store.
//!
//! - `verify`: walks the global stream and checks every aggregate's hash chain, reporting the
//!   first broken link per aggregate (exit status 1 when any is found);
//! - `history --aggregate ID`: prints one aggregate's events as JSON lines, in order;
//! - `rebuild`: empties the read models and rebuilds them from the first event.
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gatehouse_domain::chain::ChainLink;
use gatehouse_projections::{ProjectionRunner, Store, StreamPosition};

#[derive(Debug, Parser)]
#[command(name = "gatehouse-replay", version, about)]
struct Cli {
    /// PostgreSQL URL; when absent, the embedded store under the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    database_url: Option<String>,
    /// Directory of the embedded store.
    #[arg(
        long,
        env = "GATEHOUSE_DATA_DIR",
        default_value = "./gatehouse-data",
        global = true
    )]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check every aggregate's hash chain.
    Verify,
    /// Print one aggregate's events as JSON lines.
    History {
        /// Aggregate id (an account id).
        #[arg(long)]
        aggregate: String,
    },
    /// Rebuild every read model from the first event.
    Rebuild,
}

const BATCH: i64 = 1000;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let store = match &cli.database_url {
        Some(url) => Store::connect_postgres(url, 4).await,
        None => Store::open_embedded(&cli.data_dir).await,
    };
    let store = match store {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gatehouse-replay: cannot open the store: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = store.migrate().await {
        eprintln!("gatehouse-replay: cannot migrate the store: {e}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Verify => verify(&store).await,
        Command::History { aggregate } => history(&store, &aggregate).await,
        Command::Rebuild => rebuild(&store).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gatehouse-replay: {e}");
            ExitCode::from(2)
        }
    }
}

async fn verify(store: &Store) -> Result<ExitCode, gatehouse_projections::StoreError> {
    let mut heads: HashMap<String, ChainLink> = HashMap::new();
    let mut broken: HashMap<String, i64> = HashMap::new();
    let mut position = StreamPosition::default();
    let mut events = 0u64;
    loop {
        let batch = store.read_stream(position, BATCH).await?;
        if batch.is_empty() {
            break;
        }
        for event in batch {
            position = event.position;
            events += 1;
            if broken.contains_key(&event.aggregate_id) {
                continue;
            }
            let head = heads.entry(event.aggregate_id.clone()).or_default();
            let recorded = event.payload.get("prev").and_then(|v| v.as_str());
            if recorded != Some(head.0.as_str()) {
                println!(
                    "BROKEN {} at sequence {}: expected prev {}, found {}",
                    event.aggregate_id,
                    event.sequence,
                    head.0,
                    recorded.unwrap_or("(none)")
                );
                broken.insert(event.aggregate_id.clone(), event.sequence);
                continue;
            }
            *head = head.next(&event.payload);
        }
    }
    println!(
        "verified {events} events in {} aggregates: {} broken",
        heads.len(),
        broken.len()
    );
    Ok(if broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn history(
    store: &Store,
    aggregate: &str,
) -> Result<ExitCode, gatehouse_projections::StoreError> {
    let mut position = StreamPosition::default();
    loop {
        let batch = store.read_stream(position, BATCH).await?;
        if batch.is_empty() {
            break;
        }
        for event in batch {
            position = event.position;
            if event.aggregate_id == aggregate {
                let line = serde_json::json!({
                    "sequence": event.sequence,
                    "event_type": event.event_type,
                    "event_version": event.event_version,
                    "recorded_at": event.recorded_at,
                    "payload": event.payload,
                    "metadata": event.metadata,
                });
                println!("{line}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn rebuild(store: &Store) -> Result<ExitCode, gatehouse_projections::StoreError> {
    let applied = ProjectionRunner::standard(store.clone()).rebuild().await?;
    println!("rebuilt read models from {applied} event applications");
    Ok(ExitCode::SUCCESS)
}
