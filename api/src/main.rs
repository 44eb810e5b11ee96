//! The `gatehouse` binary.
use std::process::ExitCode;

use clap::Parser;
use gatehouse_api::config::{Cli, Command};

fn main() -> ExitCode {
    // Before any thread starts: the runtime's threads and the hashing threads each get their own
    // malloc arena otherwise, and each arena keeps memory it freed.
    allocator::limit_arenas();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("gatehouse: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
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

/// glibc's malloc arenas (issue #23, item 6).
mod allocator {
    /// Arenas when `MALLOC_ARENA_MAX` is not set. glibc's default is eight per core: every
    /// tokio worker and every hashing thread ends up with an arena of its own, and the Argon2
    /// working areas (19 MiB each at the default settings) and request buffers freed in one
    /// arena are kept there, not reused by the others. With two, the benchmarks saw no cost in
    /// throughput and a lower peak (BENCHMARKS.md, issue #23, item 6).
    const ARENAS: i32 = 2;

    /// Caps the number of arenas, unless the operator set `MALLOC_ARENA_MAX` (glibc has then
    /// applied it already).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    pub fn limit_arenas() {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        // SAFETY: `mallopt` only sets an allocator parameter; it is called before any other
        // thread exists, and a refusal (return value 0) leaves glibc's default in place.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }

    /// Other allocators and platforms: nothing to set.
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    pub fn limit_arenas() {}
}
