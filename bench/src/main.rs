//! `gatehouse-bench`: successful password logins per second over HTTP, on PostgreSQL, against the
//! physical limit at the same Argon2 parameters: raw verifications per second on every core,
//! measured in the same run (before and after the HTTP phase, averaged, so drift on a shared
//! machine shows up as a gap between the two).
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use gatehouse_domain::password::Argon2Settings;
use secrecy::SecretString;

/// Benchmark settings.
#[derive(Debug, Parser)]
#[command(name = "gatehouse-bench")]
struct Args {
    /// PostgreSQL server (admin URL); a fresh database is created for the run and dropped after.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Accounts signed in to (spread so that no account's queue is the bottleneck).
    #[arg(long, default_value_t = 32)]
    accounts: usize,
    /// Alternating rounds (raw, HTTP, raw, HTTP, …, raw).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The `gatehouse` binary (default: next to this one).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Sign-up and sign-in rate limits: `on` (far above the offered load, so every request
    /// pays for the shared limiter on PostgreSQL) or `off` (no limits, no limiter work).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    limiter: String,
    /// Also measure refused sign-ins: a second server whose per-IP sign-in limit is 1 a minute,
    /// so every attempt after the first is refused by the limiter (`429 rate_limited`).
    #[arg(long)]
    refused: bool,
}

const PASSWORD: &str = "benchmark-lantern-fjord-91";

fn raw_verifications_per_second(seconds: u64) -> f64 {
    let settings = Argon2Settings::default();
    let password = SecretString::from(PASSWORD);
    let hash = match settings.hash_blocking(&password, b"benchmarksalt123") {
        Ok(h) => h,
        Err(e) => {
            eprintln!("argon2 failed: {e}");
            std::process::exit(1);
        }
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let (stop, count, hash, password) =
                (stop.clone(), count.clone(), hash.clone(), password.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    assert!(settings.verify_blocking(&password, &hash));
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// The server part of a database URL, for messages: scheme, host, port and database, without the
/// user name or password that may be in it.
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://…@{host}"),
        _ => url.to_string(),
    }
}

mod enumeration;
mod processes;
mod publisher_lag;
mod replay;
mod suite;

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("replay") {
        let argv = std::env::args().skip(1).collect();
        std::process::exit(replay::main(argv).await);
    }
    if std::env::args().nth(1).as_deref() == Some("enumeration") {
        let argv = std::env::args().skip(1).collect();
        std::process::exit(enumeration::main(argv).await);
    }
    if std::env::args().nth(1).as_deref() == Some("processes") {
        let argv = std::env::args().skip(1).collect();
        std::process::exit(processes::main(argv).await);
    }
    if std::env::args().nth(1).as_deref() == Some("suite") {
        let argv = std::env::args().skip(1).collect();
        std::process::exit(suite::main(argv).await);
    }
    let args = Args::parse();
    let server_bin = args.server.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("gatehouse")))
            .unwrap_or_default()
    });
    if !server_bin.exists() {
        eprintln!(
            "{} not found: build it with `cargo build --release -p gatehouse-api`",
            server_bin.display()
        );
        std::process::exit(2);
    }
    let admin = sqlx::PgPool::connect(&args.database_url)
        .await
        .unwrap_or_else(|e| {
            eprintln!(
                "cannot reach PostgreSQL at {}: {e}",
                redacted(&args.database_url)
            );
            std::process::exit(2);
        });
    // The same fresh database and child server as the suite's parts.
    let db = suite::ScratchDb::create(&admin, &args.database_url)
        .await
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2);
        });
    let limits = suite::sign_in_limits(if args.limiter == "on" { "1000000" } else { "0" });
    let server = match suite::Server::start_bench(&server_bin, &db.url, &limits).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("{e}");
            db.drop(&admin).await;
            std::process::exit(2);
        }
    };
    let base = server.base.clone();
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()
        .expect("client");

    eprintln!("registering {} accounts…", args.accounts);
    for i in 0..args.accounts {
        let r = http
            .post(format!("{base}/v1/accounts"))
            .json(&serde_json::json!({"email": format!("bench{i}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .expect("register");
        assert_eq!(r.status().as_u16(), 201);
    }

    // Alternate raw and HTTP phases; each HTTP phase is compared with the raw phases on either
    // side of it, so a neighbour's burst on this shared machine skews one round, not the result.
    let lag_probe = publisher_lag::Probe::from_env(&http, &base);
    let mut lag_rounds = Vec::new();
    let mut raws = vec![raw_phase(args.seconds).await];
    let mut https = Vec::new();
    let (mut ok_total, mut failed_total) = (0u64, 0u64);
    for round in 0..args.rounds {
        eprintln!(
            "round {}: HTTP logins with {} clients ({} s), then raw argon2…",
            round + 1,
            args.clients,
            args.seconds
        );
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = lag_probe.as_ref().map(|p| p.sample_until(stop.clone()));
        let (rate, ok, failed) = http_phase(&http, &base, &args, |s| s.is_success()).await;
        stop.store(true, Ordering::Relaxed);
        if let (Some(sampler), Some(probe)) = (sampler, &lag_probe) {
            let samples = sampler.await.unwrap_or_default();
            let drained = match probe.drained_within(Duration::from_secs(60)).await {
                Some(d) => format!("caught up {:.2} s after the phase", d.as_secs_f64()),
                None => "not caught up within 60 s".to_string(),
            };
            lag_rounds.push(format!("{}; {drained}", publisher_lag::summary(&samples)));
        }
        https.push(rate);
        ok_total += ok;
        failed_total += failed;
        raws.push(raw_phase(args.seconds).await);
    }
    let ratios: Vec<f64> = https
        .iter()
        .enumerate()
        .map(|(i, h)| h / ((raws[i] + raws[i + 1]) / 2.0))
        .collect();

    server.kill().await;
    // Refused sign-ins: a server whose per-IP sign-in limit is 1 a minute refuses every attempt
    // after the first with `429 rate_limited`, before any Argon2 work.
    let refused = if args.refused {
        let mut limits = suite::sign_in_limits("1000000");
        limits.push((
            "GATEHOUSE_RATE_LIMIT_LOGIN_PER_IP_PER_MINUTE",
            "1".to_string(),
        ));
        match suite::Server::start_bench(&server_bin, &db.url, &limits).await {
            Ok(server) => {
                eprintln!("refused sign-ins ({} s)…", args.seconds);
                let (rate, _, _) =
                    http_phase(&http, &server.base, &args, |s| s.as_u16() == 429).await;
                server.kill().await;
                Some(rate)
            }
            Err(e) => {
                eprintln!("{e}");
                None
            }
        }
    } else {
        None
    };
    db.drop(&admin).await;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("cores: {cores}, argon2id m=19456 KiB t=2 p=1, clients: {}, accounts: {}, {} rounds of {} s", args.clients, args.accounts, args.rounds, args.seconds);
    println!("raw argon2 verifications/s per phase: {}", fmt(&raws));
    println!(
        "HTTP logins/s per round (successful): {} ({ok_total} ok, {failed_total} failed)",
        fmt(&https)
    );
    println!("ratio per round: {}", fmt3(&ratios));
    println!(
        "median raw: {:.1}/s, median logins: {:.1}/s, median ratio: {:.3}",
        median(&raws),
        median(&https),
        median(&ratios)
    );
    println!("limiter: {}", args.limiter);
    for (round, lag) in lag_rounds.iter().enumerate() {
        println!("NATS publisher during round {}: {lag}", round + 1);
    }

    if let Some(rate) = refused {
        println!("refused sign-ins/s (429 rate_limited): {rate:.1}");
    }
}

async fn raw_phase(seconds: u64) -> f64 {
    tokio::task::spawn_blocking(move || raw_verifications_per_second(seconds))
        .await
        .unwrap_or(0.0)
}

/// Sign-ins answered as `counts` expects, per second over one phase, with the counted and other
/// counts.
async fn http_phase(
    http: &reqwest::Client,
    base: &str,
    args: &Args,
    counts: fn(reqwest::StatusCode) -> bool,
) -> (f64, u64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let start = Instant::now();
    let clients: Vec<_> = (0..args.clients)
        .map(|c| {
            let (http, base, ok, failed) = (http.clone(), base.to_string(), ok.clone(), failed.clone());
            let accounts = args.accounts;
            tokio::spawn(async move {
                let mut i = c;
                while Instant::now() < deadline {
                    let r = http
                        .post(format!("{base}/v1/login"))
                        .json(&serde_json::json!({"identifier": format!("bench{}@example.com", i % accounts), "password": PASSWORD}))
                        .send()
                        .await;
                    match r {
                        Ok(r) if counts(r.status()) => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    i += 7;
                }
            })
        })
        .collect();
    for c in clients {
        let _ = c.await;
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    (ok as f64 / start.elapsed().as_secs_f64(), ok, failed)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn fmt(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn fmt3(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.3}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn test_messages_show_no_credentials() {
        assert_eq!(
            super::redacted("postgres://bench:s3cret@db.internal:5432/postgres"),
            "postgres://…@db.internal:5432/postgres"
        );
        assert_eq!(
            super::redacted("postgres://127.0.0.1/x"),
            "postgres://127.0.0.1/x"
        );
    }
}
