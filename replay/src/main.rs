//! `gatehouse-replay`: what auditors and operators run against a store (PostgreSQL, or the
//! embedded store), reading the same stream with the same domain and projection code as the
//! server.
//!
//! - `verify`: every aggregate's hash chain and the signed stream checkpoints; names each altered,
//!   deleted, reordered or inserted event;
//! - `checkpoint`: signs (Ed25519) the stream's running digest at its current end;
//! - `export`: events as JSON Lines or CSV, filtered, with a manifest and digest;
//! - `rebuild`: read models rebuilt from position zero into shadow tables, compared row by row
//!   with the live ones, optionally swapped in;
//! - `state --account ID --at T`: the account as it stood at T, with the events that made it so;
//! - `timeline --account ID [--html FILE]`: a readable timeline, or a page with a chart;
//! - `erase --account ID`: destroys the account's data key (crypto-shredding);
//! - `backtest --policy FILE`: what other lockout settings would have done to the same history;
//! - `history --aggregate ID`: one aggregate's events as stored, as JSON lines.
//!
//! Exit status: 0 success; 1 a difference or tampering was found; 2 the command failed.
//!
//! Every text meant for a terminal passes the values it shows through
//! [`gatehouse_domain::text::escape_control`]: a device id or user agent chosen by a client
//! cannot send escape sequences to the auditor's terminal. JSON, CSV and HTML outputs escape by
//! their own rules.
#![forbid(unsafe_code)]
#![deny(clippy::all)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

// A rebuild decodes and frees millions of small JSON trees and rows; glibc's allocator took a
// third of the process's time there (BENCHMARKS.md, issue #23).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod account;
mod backtest;
mod erase;
mod export;
mod rebuild;
mod source;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use gatehouse_domain::text::escape_control;
use gatehouse_store::Store;

use crate::source::{Error, Result};

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
    /// Check every aggregate's hash chain and the signed checkpoints; name each tampered event.
    Verify(verify::VerifyArgs),
    /// Sign a checkpoint of the global stream (key: GATEHOUSE_CHECKPOINT_KEY or --key-file).
    Checkpoint {
        /// File holding the Ed25519 seed as 64 hex characters.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Keep running, signing a checkpoint every this many seconds.
        #[arg(long)]
        every: Option<u64>,
    },
    /// Print one aggregate's events as JSON lines, as stored.
    History {
        /// Aggregate id (an account id).
        #[arg(long)]
        aggregate: String,
    },
    /// Export events as JSON Lines or CSV, with a manifest.
    Export(export::ExportArgs),
    /// Rebuild read models from position zero into shadow tables and compare with the live ones.
    Rebuild(rebuild::RebuildArgs),
    /// The account as it stood at an instant, with the events that made it so.
    State {
        /// Account id.
        #[arg(long)]
        account: String,
        /// The instant (RFC 3339, or YYYY-MM-DD for midnight UTC); default now.
        #[arg(long)]
        at: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// An account's timeline as text, or as an HTML page with a chart per day.
    Timeline {
        /// Account id.
        #[arg(long)]
        account: String,
        /// Write a self-contained HTML page here instead of printing text.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Erase an account's personal data by destroying its data key (events stay, sealed).
    Erase {
        /// Account id.
        #[arg(long)]
        account: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Replay sign-in history through other lockout settings and report what would differ.
    Backtest {
        /// Policy file (TOML, or JSON when it ends in .json): threshold, lock_seconds,
        /// max_lock_seconds.
        #[arg(long)]
        policy: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

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
            eprintln!(
                "gatehouse-replay: cannot open the store: {}",
                escape_control(&e.to_string())
            );
            return ExitCode::from(2);
        }
    };
    if let Err(e) = store.migrate().await {
        eprintln!(
            "gatehouse-replay: cannot migrate the store: {}",
            escape_control(&e.to_string())
        );
        return ExitCode::from(2);
    }
    let result = run(&store, cli.command).await;
    store.close().await;
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gatehouse-replay: {}", escape_control(&e.to_string()));
            ExitCode::from(2)
        }
    }
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(std::io::Error::from)?;
    println!("{text}");
    Ok(())
}

fn status(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn run(store: &Store, command: Command) -> Result<ExitCode> {
    match command {
        Command::Verify(args) => {
            let (report, lines, ok) = verify::verify(store, &args).await?;
            if args.json {
                print_json(&report)?;
            } else {
                for line in lines {
                    println!("{}", escape_control(&line));
                }
            }
            Ok(status(!ok))
        }
        Command::Checkpoint { key_file, every } => {
            let key = verify::signing_key(key_file.as_deref())?;
            loop {
                match verify::checkpoint(store, &key).await? {
                    Some(cp) => println!(
                        "checkpoint #{} at ({}, {}): {} events, digest {}",
                        cp.id, cp.position.tx, cp.position.pos, cp.count, cp.digest
                    ),
                    None => println!("no new events since the last checkpoint"),
                }
                let Some(secs) = every else {
                    return Ok(ExitCode::SUCCESS);
                };
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(secs.max(1))) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
                }
            }
        }
        Command::History { aggregate } => {
            for event in source::aggregate_events(store, "Account", &aggregate).await? {
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
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(args) => {
            let manifest = export::export(store, &args).await?;
            if args.out.is_some() && args.manifest.is_none() {
                eprintln!(
                    "exported {} events, sha256 {}",
                    manifest.events, manifest.sha256
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rebuild(args) => {
            let (report, differ) = rebuild::rebuild(store, &args).await?;
            if args.json {
                print_json(&report)?;
            } else {
                for line in &report.text {
                    println!("{}", escape_control(line));
                }
            }
            Ok(status(differ))
        }
        Command::State { account, at, json } => {
            let at = match at {
                Some(t) => source::parse_instant(&t)?,
                None => chrono::Utc::now(),
            };
            let report = account::state(store, &account, at).await?;
            if json {
                print_json(&report)?;
            } else {
                print!("{}", account::state_text(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Timeline { account, html } => {
            let entries = account::load(store, &account).await?;
            match html {
                Some(path) => {
                    std::fs::write(&path, account::timeline_html(&account, &entries)).map_err(
                        |e| Error::Usage(format!("cannot write {}: {e}", path.display())),
                    )?;
                    eprintln!("wrote {}", escape_control(&path.display().to_string()));
                }
                None => print!("{}", account::timeline_text(&account, &entries)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Erase { account, json } => {
            let report = erase::erase(store, &account).await?;
            if json {
                print_json(&report)?;
            } else {
                println!(
                    "erased account {}: data key destroyed, {} identifier claim(s) removed",
                    escape_control(&account),
                    report.identifier_claims_removed
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Backtest { policy, json } => {
            let policy = backtest::PolicyFile::read(&policy)?;
            let report = backtest::backtest(store, &policy).await?;
            if json {
                print_json(&report)?;
            } else {
                print!("{}", backtest::text(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
