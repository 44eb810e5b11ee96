//! The `gatehouse` binary.
use std::process::ExitCode;

use clap::Parser;
use gatehouse_api::config::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // `text` (the default) for people, `json` for log shippers: one JSON object per line, with
    // the request's span (its id, method and route) on every line logged inside a request.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("GATEHOUSE_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().init(),
        Ok("text") | Err(std::env::VarError::NotPresent) => logs.init(),
        Ok(_) | Err(std::env::VarError::NotUnicode(_)) => {
            eprintln!("gatehouse: GATEHOUSE_LOG_FORMAT must be `text` or `json`");
            return ExitCode::FAILURE;
        }
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Keygen => match gatehouse_api::keys::generate_master_key_hex() {
            Ok(key) => {
                println!("{key}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("gatehouse: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Staff(args) => match gatehouse_api::staff::cli(args).await {
            Ok(out) => {
                // A new token alone on stdout, once (or the list); everything else on stderr.
                print!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("gatehouse: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Serve(args) => match gatehouse_api::server::serve(*args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gatehouse: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
