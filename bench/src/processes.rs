//! `gatehouse-bench processes`: what adding `gatehouse serve` processes on one PostgreSQL costs
//! (issue #23 item 5). For 1, 2, … `--max` processes on one database, the same closed-loop load
//! is spread round-robin over the processes, and each figure is set against a limit measured
//! right beside it in the same run:
//! - password sign-ins/s against raw Argon2id verifications/s in this process (phases before
//!   and after);
//! - refused sign-ins on locked accounts/s against single-row `INSERT` transactions/s into the
//!   same PostgreSQL (phases before and after).
//!
//! The processes share this machine's cores with PostgreSQL and the load generator, so the
//! table says what more processes cost on one machine (more hash threads than cores, more
//! runners and pools against one database), not what they gain on several.
use std::sync::Arc;

use clap::Parser;
use futures::FutureExt;

use crate::suite::{
    closed_loop, http_client, insert_op, lock_all, login, prepare, rates_env, refused_login_op,
    register_many, tempdir, Op, ScratchDb, Server, Target,
};
use crate::PASSWORD;

/// Settings of the processes benchmark.
#[derive(Debug, Clone, Parser)]
#[command(name = "gatehouse-bench processes")]
struct ProcessesArgs {
    #[command(flatten)]
    target: Target,
    /// Most server processes (the table has a row for 1 to this many).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=8))]
    max: u8,
    /// Concurrent HTTP clients (and PostgreSQL connections of the INSERT loop), whatever the
    /// number of processes.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    /// Accounts signed in to, and as many locked accounts.
    #[arg(long, default_value_t = 32)]
    accounts: usize,
    /// A few seconds in all: tiny counts, for CI (figures printed, meaningless).
    #[arg(long)]
    smoke: bool,
}

/// Calls `ops` in turn: call `i` goes to `ops[i % n]` as its call `i / n` (so each keeps its own
/// spread over accounts).
pub(crate) fn spread(ops: Vec<Op>) -> Op {
    let ops = Arc::new(ops);
    Arc::new(move |i| {
        let n = ops.len() as u64;
        ops[(i % n) as usize](i / n)
    })
}

fn sign_in_op(http: &reqwest::Client, base: &str, emails: Arc<Vec<String>>) -> Op {
    let (http, base) = (http.clone(), base.to_string());
    Arc::new(move |i| {
        let (http, base, emails) = (http.clone(), base.clone(), emails.clone());
        async move {
            let email = &emails[i as usize % emails.len()];
            matches!(login(&http, &base, email, PASSWORD).await, Ok((200, _)))
        }
        .boxed()
    })
}

/// One row of the table.
struct Measured {
    processes: usize,
    sign_ins: f64,
    argon2: f64,
    refused: f64,
    inserts: f64,
    failed: u64,
}

/// Runs the benchmark; returns the process exit status.
pub async fn main(argv: Vec<String>) -> i32 {
    let mut args = ProcessesArgs::parse_from(argv);
    if args.smoke {
        args.clients = args.clients.min(2);
        args.seconds = 1;
        args.accounts = args.accounts.min(4);
        args.max = args.max.min(2);
    }
    let (bin, admin) = match prepare("processes", &args.target).await {
        Ok(ready) => ready,
        Err(status) => return status,
    };
    let db = match ScratchDb::create(&admin, &args.target.database_url).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("gatehouse-bench processes: {e}");
            return 2;
        }
    };
    let mut servers = Vec::new();
    let result = run(&args, &bin, &db, &mut servers).await;
    for server in servers {
        server.kill().await;
    }
    db.drop(&admin).await;
    match result {
        Ok(rows) => {
            print(&args, &rows);
            0
        }
        Err(e) => {
            eprintln!("gatehouse-bench processes: {e}");
            2
        }
    }
}

async fn run(
    args: &ProcessesArgs,
    bin: &std::path::Path,
    db: &ScratchDb,
    servers: &mut Vec<Server>,
) -> Result<Vec<Measured>, String> {
    let outbox = tempdir()?;
    let mut env = rates_env();
    env.push(("GATEHOUSE_DEV_OUTBOX_DIR", outbox.display().to_string()));
    let http = http_client()?;
    servers.push(Server::start_bench(bin, &db.url, &env).await?);
    let base = servers[0].base.clone();
    eprintln!(
        "processes: registering {} accounts and locking {} more…",
        args.accounts, args.accounts
    );
    let emails: Vec<String> = (0..args.accounts)
        .map(|i| format!("signin{i}@example.com"))
        .collect();
    register_many(&http, &base, emails.clone(), args.clients).await?;
    let locked = register_many(
        &http,
        &base,
        (0..args.accounts)
            .map(|i| format!("locked{i}@example.com"))
            .collect(),
        args.clients,
    )
    .await?;
    lock_all(&http, &base, &locked).await?;
    let emails = Arc::new(emails);
    let pool = db.pool(args.clients as u32 + 2).await?;
    sqlx::query(
        "create table bench_inserts (id bigserial primary key, k bigint not null, v text not null)",
    )
    .execute(&pool)
    .await
    .map_err(|e| format!("create bench_inserts: {e}"))?;
    let insert = insert_op(&pool);
    let secs = args.seconds as f64;
    let mut rows = Vec::new();
    for n in 1..=usize::from(args.max) {
        while servers.len() < n {
            servers.push(Server::start_bench(bin, &db.url, &env).await?);
        }
        let sign_in = spread(
            servers
                .iter()
                .map(|s| sign_in_op(&http, &s.base, emails.clone()))
                .collect(),
        );
        let refused = spread(
            servers
                .iter()
                .map(|s| refused_login_op(&http, &s.base, &locked))
                .collect(),
        );
        // Warm every process's connections and caches.
        closed_loop(args.clients, 0.5, refused.clone()).await;
        closed_loop(args.clients, 0.5, sign_in.clone()).await;
        eprintln!("processes: {n}: raw Argon2, sign-ins, raw Argon2, INSERT, refused, INSERT ({} s each)…", args.seconds);
        let raw1 = crate::raw_phase(args.seconds).await;
        let (sign_ins, _, failed_sign_ins) = closed_loop(args.clients, secs, sign_in).await;
        let raw2 = crate::raw_phase(args.seconds).await;
        let (ins1, _, _) = closed_loop(args.clients, secs, insert.clone()).await;
        let (refused, _, failed_refused) = closed_loop(args.clients, secs, refused).await;
        let (ins2, _, _) = closed_loop(args.clients, secs, insert.clone()).await;
        rows.push(Measured {
            processes: n,
            sign_ins,
            argon2: (raw1 + raw2) / 2.0,
            refused,
            inserts: (ins1 + ins2) / 2.0,
            failed: failed_sign_ins + failed_refused,
        });
    }
    let _ = std::fs::remove_dir_all(&outbox);
    Ok(rows)
}

fn print(args: &ProcessesArgs, rows: &[Measured]) {
    println!(
        "processes on one PostgreSQL ({} clients spread round-robin, {} s phases, {} accounts each kind)",
        args.clients, args.seconds, args.accounts
    );
    println!("| processes | sign-ins/s | raw Argon2id/s | ratio | refused sign-ins/s | INSERT tx/s | ratio | other answers |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in rows {
        println!(
            "| {} | {:.1} | {:.1} | {:.2} | {:.0} | {:.0} | {:.2} | {} |",
            r.processes,
            r.sign_ins,
            r.argon2,
            r.sign_ins / r.argon2.max(f64::MIN_POSITIVE),
            r.refused,
            r.inserts,
            r.refused / r.inserts.max(f64::MIN_POSITIVE),
            r.failed
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn test_spread_takes_turns_and_keeps_each_ops_own_count() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let ops: Vec<Op> = (0..3u64)
            .map(|k| {
                let seen = seen.clone();
                let op: Op = Arc::new(move |i| {
                    seen.lock().unwrap().push((k, i));
                    async { true }.boxed()
                });
                op
            })
            .collect();
        let op = spread(ops);
        for i in 0..7 {
            assert!(op(i).await);
        }
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (0, 2)]
        );
    }
}
