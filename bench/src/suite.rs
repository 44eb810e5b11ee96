//! `gatehouse-bench suite`: the rows of issue #8 that the sign-in and replay benchmarks do not
//! cover, each measured against a limit taken in the same run where the issue names one, printed
//! as one table.
//!
//! Parts (all by default, or a selection with `--only`):
//! - `rates`: refused sign-ins on locked accounts per second (no hash) and one-time-code checks
//!   per second over HTTP, each against single-row `INSERT` transactions per second into the same
//!   PostgreSQL at the same concurrency (phases alternate: insert, refused, insert, codes,
//!   insert; each HTTP phase is compared with the mean of its two neighbours).
//! - `latency`: p50/p99 of a refused sign-in at half its measured saturation rate, open loop
//!   (a fixed schedule; latency counted from the scheduled send time).
//! - `lag`: projection lag at 80 % of the saturation of a mix of refused sign-ins and code checks,
//!   from the database: `projection_checkpoints` polled every few milliseconds against the
//!   `recorded_at` of every event each checkpoint move covered.
//! - `history`: a refused sign-in on an account with 10,000 past events against the same command
//!   on a fresh account, with the aggregate cache cold (first command after a server restart) and
//!   warm (medians of alternating commands).
//! - `cost`: CPU of a successful sign-in by phase: Argon2 threads, the server's other threads,
//!   PostgreSQL backends, and the read models (an in-process rebuild of the same events).
//! - `rss`: the server's peak resident memory with 100,000 accounts and 10,000 live sessions.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::future::BoxFuture;
use futures::FutureExt;
use gatehouse_domain::password::Argon2Settings;
use secrecy::SecretString;

pub(crate) use gatehouse_testkit::{sign_in_limits, ScratchDb, Server};

use crate::PASSWORD;

/// Where every subcommand that starts servers finds PostgreSQL and the `gatehouse` binary.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Target {
    /// PostgreSQL server (admin URL); fresh databases are created for the run and dropped after.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub(crate) database_url: String,
    /// The `gatehouse` binary (default: next to this one).
    #[arg(long)]
    pub(crate) server: Option<PathBuf>,
}

/// Suite settings.
#[derive(Debug, Clone, Parser)]
#[command(name = "gatehouse-bench suite")]
struct SuiteArgs {
    #[command(flatten)]
    target: Target,
    /// Parts to run, comma-separated: rates, latency, lag, history, cost, rss (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Concurrent clients (HTTP clients, and PostgreSQL connections of the INSERT loop).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Locked accounts the refused sign-ins and code checks are spread over.
    #[arg(long, default_value_t = 32)]
    accounts: usize,
    /// Past events of the "old" account in the history part.
    #[arg(long, default_value_t = 10_000)]
    history_events: i64,
    /// Server restarts for the cold-cache comparison.
    #[arg(long, default_value_t = 5)]
    cold_rounds: usize,
    /// Alternating command pairs for the warm comparison.
    #[arg(long, default_value_t = 200)]
    warm_pairs: usize,
    /// Accounts for the memory part.
    #[arg(long, default_value_t = 100_000)]
    rss_accounts: usize,
    /// Live sessions for the memory part.
    #[arg(long, default_value_t = 10_000)]
    rss_sessions: usize,
    /// The memory part's server hashes at the default Argon2 settings, so its peak is measured
    /// directly rather than estimated (100,000 sign-ups then take about 15 minutes on 2 cores).
    #[arg(long)]
    rss_default_argon2: bool,
    /// A few seconds in all: tiny counts, for CI (figures printed, meaningless).
    #[arg(long)]
    smoke: bool,
}

impl SuiteArgs {
    fn smoke(mut self) -> Self {
        if self.smoke {
            self.clients = self.clients.min(2);
            self.seconds = 1;
            self.accounts = self.accounts.min(4);
            self.history_events = self.history_events.min(200);
            self.cold_rounds = 1;
            self.warm_pairs = self.warm_pairs.min(10);
            self.rss_accounts = self.rss_accounts.min(200);
            self.rss_sessions = self.rss_sessions.min(50);
        }
        self
    }

    fn runs(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

/// Runs the suite; returns the process exit status.
pub async fn main(argv: Vec<String>) -> i32 {
    let args = SuiteArgs::parse_from(argv).smoke();
    for part in &args.only {
        if !["rates", "latency", "lag", "history", "cost", "rss"].contains(&part.as_str()) {
            eprintln!("gatehouse-bench suite: unknown part {part:?} (rates, latency, lag, history, cost, rss)");
            return 2;
        }
    }
    let (server, admin) = match prepare("suite", &args.target).await {
        Ok(ready) => ready,
        Err(status) => return status,
    };
    let mut ctx = Ctx {
        args,
        server,
        admin,
        rows: Vec::new(),
        notes: Vec::new(),
        default_argon2_hwm_mib: None,
        signin_hwm_mib: None,
    };
    let started = Instant::now();
    let result = run(&mut ctx).await;
    print_table(&ctx);
    eprintln!("suite took {:.0} s", started.elapsed().as_secs_f64());
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("gatehouse-bench suite: {e}");
            2
        }
    }
}

/// What every subcommand that starts servers needs first: the `gatehouse` binary (given, or next
/// to this one) and a connection to PostgreSQL. `Err` is the exit status, after saying why.
pub(crate) async fn prepare(
    command: &str,
    target: &Target,
) -> Result<(std::path::PathBuf, sqlx::PgPool), i32> {
    let database_url = target.database_url.as_str();
    let server = target.server.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("gatehouse")))
            .unwrap_or_default()
    });
    if !server.exists() {
        eprintln!(
            "gatehouse-bench {command}: {} not found: build it with `cargo build --release -p gatehouse-api`",
            server.display()
        );
        return Err(2);
    }
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    match sqlx::PgPool::connect(database_url).await {
        Ok(admin) => Ok((server, admin)),
        Err(e) => {
            eprintln!(
                "gatehouse-bench {command}: cannot reach PostgreSQL at {}: {e}",
                crate::redacted(database_url)
            );
            Err(2)
        }
    }
}

struct Ctx {
    args: SuiteArgs,
    server: PathBuf,
    admin: sqlx::PgPool,
    rows: Vec<Row>,
    notes: Vec<String>,
    /// Peak RSS (MiB) of the rates server, which hashed at the default Argon2 settings.
    default_argon2_hwm_mib: Option<f64>,
    /// Peak RSS (MiB) of the cost server at start and after its sign-ins at the default Argon2
    /// settings: what hashing at those settings adds.
    signin_hwm_mib: Option<(f64, f64)>,
}

/// One line of the final table.
struct Row {
    figure: String,
    value: String,
    limit: String,
    ratio: String,
    target: String,
    met: Option<bool>,
}

fn row(
    figure: &str,
    value: String,
    limit: &str,
    ratio: String,
    target: &str,
    met: Option<bool>,
) -> Row {
    Row {
        figure: figure.to_string(),
        value,
        limit: limit.to_string(),
        ratio,
        target: target.to_string(),
        met,
    }
}

async fn run(ctx: &mut Ctx) -> Result<(), String> {
    let a = &ctx.args;
    if a.runs("rates") || a.runs("latency") || a.runs("lag") || a.runs("history") {
        let db = ScratchDb::create(&ctx.admin, &ctx.args.target.database_url).await?;
        let result = rates_latency_lag_history(ctx, &db).await;
        db.drop(&ctx.admin).await;
        result?;
    }
    if ctx.args.runs("cost") {
        let db = ScratchDb::create(&ctx.admin, &ctx.args.target.database_url).await?;
        let result = cost(ctx, &db).await;
        db.drop(&ctx.admin).await;
        result?;
    }
    if ctx.args.runs("rss") {
        let db = ScratchDb::create(&ctx.admin, &ctx.args.target.database_url).await?;
        let result = rss(ctx, &db).await;
        db.drop(&ctx.admin).await;
        result?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Databases, the server, HTTP

pub(crate) fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// A registered account.
#[derive(Clone)]
pub(crate) struct Account {
    pub(crate) email: String,
    account_id: String,
    pub(crate) flow: String,
}

async fn register(http: &reqwest::Client, base: &str, email: &str) -> Result<Account, String> {
    // Setup, not a measurement: a request that could not be sent (a pooled connection closed
    // under it) is tried again, a few times.
    let mut tries = 0;
    let r = loop {
        let sent = http
            .post(format!("{base}/v1/accounts"))
            .json(&serde_json::json!({"email": email, "password": PASSWORD}))
            .send()
            .await;
        match sent {
            Ok(r) => break r,
            Err(e) if tries < 3 && !e.is_timeout() => {
                tries += 1;
                eprintln!("  register {email}: {e:?}; trying again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(format!("register {email}: {e:?}")),
        }
    };
    if r.status().as_u16() != 201 {
        return Err(format!("register {email}: HTTP {}", r.status()));
    }
    let body: serde_json::Value = r
        .json()
        .await
        .map_err(|e| format!("register {email}: {e}"))?;
    Ok(Account {
        email: email.to_string(),
        account_id: body["account_id"].as_str().unwrap_or_default().to_string(),
        flow: body["verification_flow_id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}

/// Registers `emails` with `concurrency` requests in flight.
pub(crate) async fn register_many(
    http: &reqwest::Client,
    base: &str,
    emails: Vec<String>,
    concurrency: usize,
) -> Result<Vec<Account>, String> {
    use futures::{StreamExt, TryStreamExt};
    let total = emails.len();
    let counter = AtomicU64::new(0);
    let done = &counter;
    let started = Instant::now();
    futures::stream::iter(emails)
        .map(|email| async move {
            let r = register(http, base, &email).await;
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if total >= 20_000 && n.is_multiple_of(20_000) {
                eprintln!(
                    "  registered {n} of {total} ({:.0}/s)",
                    n as f64 / started.elapsed().as_secs_f64()
                );
            }
            r
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

pub(crate) async fn login(
    http: &reqwest::Client,
    base: &str,
    identifier: &str,
    password: &str,
) -> Result<(u16, serde_json::Value), String> {
    let r = http
        .post(format!("{base}/v1/login"))
        .json(&serde_json::json!({"identifier": identifier, "password": password}))
        .send()
        .await
        .map_err(|e| format!("login: {e}"))?;
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(serde_json::Value::Null);
    Ok((status, body))
}

/// Locks each account with wrong passwords (the threshold, 5 by default).
pub(crate) async fn lock_all(
    http: &reqwest::Client,
    base: &str,
    accounts: &[Account],
) -> Result<(), String> {
    use futures::StreamExt;
    let results: Vec<Result<(), String>> = futures::stream::iter(accounts.iter())
        .map(|a| async move {
            for _ in 0..20 {
                let (status, _) =
                    login(http, base, &a.email, "wrong-password-for-the-bench").await?;
                if status == 429 {
                    return Ok(());
                }
            }
            Err(format!("{} did not lock after 20 wrong passwords", a.email))
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// Load shapes

pub(crate) type Op = Arc<dyn Fn(u64) -> BoxFuture<'static, bool> + Send + Sync>;

/// `clients` loops calling `op` back to back for `seconds`: (successes per second, ok, failed).
pub(crate) async fn closed_loop(clients: usize, seconds: f64, op: Op) -> (f64, u64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (ok, failed, op) = (ok.clone(), failed.clone(), op.clone());
            tokio::spawn(async move {
                let mut i = c as u64;
                while Instant::now() < deadline {
                    if op(i).await {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    i += clients as u64;
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    (ok as f64 / start.elapsed().as_secs_f64(), ok, failed)
}

/// Open loop: `op` started on a fixed schedule of `rate` per second for `seconds`, whatever the
/// answers; each latency runs from the scheduled start (no coordinated omission). Returns the
/// latencies in ms of the successful calls and the count of failed ones.
async fn open_loop(rate: f64, seconds: f64, op: Op) -> (Vec<f64>, u64) {
    let n = (rate * seconds).max(1.0) as u64;
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::with_capacity(n as usize);
    for i in 0..n {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(at).await;
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let ok = op(i).await;
            (at.elapsed().as_secs_f64() * 1000.0, ok)
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut failed = 0;
    for t in tasks {
        match t.await {
            Ok((ms, true)) => latencies.push(ms),
            _ => failed += 1,
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    (latencies, failed)
}

pub(crate) fn refused_login_op(http: &reqwest::Client, base: &str, accounts: &[Account]) -> Op {
    let (http, base) = (http.clone(), base.to_string());
    let emails: Arc<Vec<String>> = Arc::new(accounts.iter().map(|a| a.email.clone()).collect());
    Arc::new(move |i| {
        let (http, base, emails) = (http.clone(), base.clone(), emails.clone());
        async move {
            let email = &emails[i as usize % emails.len()];
            // Locked: refused before any password check (429 account_locked).
            matches!(login(&http, &base, email, PASSWORD).await, Ok((429, _)))
        }
        .boxed()
    })
}

fn code_check_op(http: &reqwest::Client, base: &str, accounts: &[Account]) -> Op {
    let (http, base) = (http.clone(), base.to_string());
    let flows: Arc<Vec<String>> = Arc::new(accounts.iter().map(|a| a.flow.clone()).collect());
    Arc::new(move |i| {
        let (http, base, flows) = (http.clone(), base.clone(), flows.clone());
        async move {
            let flow = &flows[i as usize % flows.len()];
            // A wrong code: checked, counted, refused (422 invalid_code).
            let r = http
                .post(format!("{base}/v1/verify"))
                .json(&serde_json::json!({"flow_id": flow, "code": format!("{:06}", (i * 7919) % 1_000_000)}))
                .send()
                .await;
            matches!(r, Ok(r) if r.status().as_u16() == 422 || r.status().as_u16() == 204)
        }
        .boxed()
    })
}

pub(crate) fn insert_op(pool: &sqlx::PgPool) -> Op {
    let pool = pool.clone();
    Arc::new(move |i| {
        let pool = pool.clone();
        async move {
            sqlx::query("insert into bench_inserts (k, v) values ($1, $2)")
                .bind(i as i64)
                .bind("gatehouse-bench single-row insert")
                .execute(&pool)
                .await
                .is_ok()
        }
        .boxed()
    })
}

fn mix_op(a: Op, b: Op) -> Op {
    crate::processes::spread(vec![a, b])
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    percentile(&v, 0.5)
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc (Linux; USER_HZ = 100)

const TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime of a `/proc/…/stat` file, in ticks.
fn stat_ticks(path: &str) -> Option<u64> {
    parse_stat_ticks(&std::fs::read_to_string(path).ok()?)
}

/// utime + stime from the text of a `/proc/…/stat` file (the command name, in parentheses, may
/// itself hold spaces and parentheses: fields are counted after the last `)`).
fn parse_stat_ticks(text: &str) -> Option<u64> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU ticks of a process's threads: (Argon2 hashing threads, every other thread).
fn thread_ticks(pid: u32) -> (u64, u64) {
    let (mut hash, mut other) = (0, 0);
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    for entry in dir.flatten() {
        let path = entry.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let ticks = stat_ticks(&path.join("stat").to_string_lossy()).unwrap_or(0);
        if comm.starts_with("argon2") {
            hash += ticks;
        } else {
            other += ticks;
        }
    }
    (hash, other)
}

/// CPU ticks of each PostgreSQL backend connected to `db` (needs the server on this machine).
async fn backend_ticks(admin: &sqlx::PgPool, db: &str) -> HashMap<i32, u64> {
    let pids: Vec<i32> = sqlx::query_scalar("select pid from pg_stat_activity where datname = $1")
        .bind(db)
        .fetch_all(admin)
        .await
        .unwrap_or_default();
    pids.into_iter()
        .filter_map(|pid| stat_ticks(&format!("/proc/{pid}/stat")).map(|t| (pid, t)))
        .collect()
}

fn ticks_between(before: &HashMap<i32, u64>, after: &HashMap<i32, u64>) -> u64 {
    after
        .iter()
        .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum()
}

fn ms(ticks: u64, per: f64) -> f64 {
    ticks as f64 / TICKS_PER_SECOND * 1000.0 / per.max(1.0)
}

fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// Waits until every read model has applied the whole stream (at most `limit` seconds); returns
/// the seconds waited.
async fn caught_up(pool: &sqlx::PgPool, limit: f64) -> Result<f64, String> {
    let started = Instant::now();
    loop {
        let behind: i64 = sqlx::query_scalar(
            "select count(*) from projection_checkpoints c
              where (c.tx_id, c.position) < (select tx_id::text::bigint, global_position from events
                                              order by tx_id desc, global_position desc limit 1)",
        )
        .fetch_one(pool)
        .await
        .map_err(|e| format!("checkpoints: {e}"))?;
        let waited = started.elapsed().as_secs_f64();
        if behind == 0 {
            return Ok(waited);
        }
        if waited > limit {
            eprintln!("  read models still behind after {limit:.0} s; going on");
            return Ok(waited);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Part: rates, latency, lag, history (one database, one server, restarted for the cold cache)

/// Settings of the first server: long locks, per-flow and per-IP throttles out of the way, codes
/// that take any number of wrong tries, no stricter sign-in limit from stuffing alerts (every
/// request comes from 127.0.0.1). The paths measured are otherwise the production ones.
pub(crate) fn rates_env() -> Vec<(&'static str, String)> {
    vec![
        ("GATEHOUSE_LOCKOUT_SECONDS", "86400".into()),
        ("GATEHOUSE_LOCKOUT_MAX_SECONDS", "86400".into()),
        ("GATEHOUSE_FLAGGED_LOGINS_PER_MINUTE", "0".into()),
        (
            "GATEHOUSE_RATE_LIMIT_PER_IP_PER_MINUTE",
            "1000000000".into(),
        ),
        (
            "GATEHOUSE_RATE_LIMIT_PER_IDENTIFIER_PER_MINUTE",
            "1000000000".into(),
        ),
        ("GATEHOUSE_CODE_MAX_ATTEMPTS", "1000000000".into()),
    ]
    .into_iter()
    .chain(sign_in_limits("1000000"))
    .collect()
}

async fn rates_latency_lag_history(ctx: &mut Ctx, db: &ScratchDb) -> Result<(), String> {
    let args = ctx.args.clone();
    let outbox = tempdir()?;
    let mut env = rates_env();
    env.push(("GATEHOUSE_DEV_OUTBOX_DIR", outbox.display().to_string()));
    let result = async {
        let server = Server::start_bench(&ctx.server, &db.url, &env).await?;
        match rates_latency_lag(ctx, db, &server, &args).await {
            Ok(()) if args.runs("history") => history(ctx, db, server, &env).await,
            Ok(()) => {
                server.kill().await;
                Ok(())
            }
            Err(e) => {
                server.kill().await;
                Err(e)
            }
        }
    }
    .await;
    let _ = std::fs::remove_dir_all(&outbox);
    result
}

pub(crate) fn tempdir() -> Result<PathBuf, String> {
    let dir =
        std::env::temp_dir().join(format!("gatehouse-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    Ok(dir)
}

async fn rates_latency_lag(
    ctx: &mut Ctx,
    db: &ScratchDb,
    server: &Server,
    args: &SuiteArgs,
) -> Result<(), String> {
    let need_rates = args.runs("rates") || args.runs("latency") || args.runs("lag");
    if !need_rates {
        return Ok(());
    }
    let http = http_client()?;
    let base = server.base.clone();
    eprintln!("rates: registering and locking {} accounts…", args.accounts);
    let emails = (0..args.accounts)
        .map(|i| format!("locked{i}@example.com"))
        .collect();
    let accounts = register_many(&http, &base, emails, args.clients).await?;
    lock_all(&http, &base, &accounts).await?;

    let pool = db.pool(args.clients as u32 + 2).await?;
    sqlx::query(
        "create table bench_inserts (id bigserial primary key, k bigint not null, v text not null)",
    )
    .execute(&pool)
    .await
    .map_err(|e| format!("create bench_inserts: {e}"))?;
    let secs = args.seconds as f64;
    let refused = refused_login_op(&http, &base, &accounts);
    let codes = code_check_op(&http, &base, &accounts);
    let insert = insert_op(&pool);
    // Warm up both paths (connections, prepared statements, caches).
    closed_loop(args.clients, 0.5, refused.clone()).await;
    closed_loop(args.clients, 0.5, codes.clone()).await;
    closed_loop(args.clients, 0.5, insert.clone()).await;

    eprintln!(
        "rates: INSERT, refused sign-ins, INSERT, code checks, INSERT ({} s each, {} clients)…",
        args.seconds, args.clients
    );
    // Each phase starts with the read models caught up, so no phase pays for the last one's
    // projection work; the time they needed after each HTTP phase is printed.
    caught_up(&pool, 120.0).await?;
    let me_before = stat_ticks("/proc/self/stat").unwrap_or(0);
    let (ins1, ins1_ok, ins1_failed) = closed_loop(args.clients, secs, insert.clone()).await;
    let me_insert = stat_ticks("/proc/self/stat")
        .unwrap_or(0)
        .saturating_sub(me_before);
    caught_up(&pool, 120.0).await?;
    let cpu_before = (
        thread_ticks(server.pid),
        backend_ticks(&ctx.admin, &db.name).await,
        stat_ticks("/proc/self/stat").unwrap_or(0),
    );
    let (ref_rate, ref_ok, ref_failed) = closed_loop(args.clients, secs, refused.clone()).await;
    let cpu_after = (
        thread_ticks(server.pid),
        backend_ticks(&ctx.admin, &db.name).await,
        stat_ticks("/proc/self/stat").unwrap_or(0),
    );
    let ref_behind = caught_up(&pool, 120.0).await?;
    let (ins2, _, ins2_failed) = closed_loop(args.clients, secs, insert.clone()).await;
    caught_up(&pool, 120.0).await?;
    let (code_rate, code_ok, code_failed) = closed_loop(args.clients, secs, codes.clone()).await;
    let code_behind = caught_up(&pool, 120.0).await?;
    let (ins3, _, ins3_failed) = closed_loop(args.clients, secs, insert.clone()).await;
    caught_up(&pool, 120.0).await?;
    let ins_failed = ins1_failed + ins2_failed + ins3_failed;
    let ref_ratio = ref_rate / ((ins1 + ins2) / 2.0);
    let code_ratio = code_rate / ((ins2 + ins3) / 2.0);
    println!(
        "rates ({} clients, {} locked accounts, {} s phases)",
        args.clients, args.accounts, args.seconds
    );
    println!(
        "  single-row INSERT transactions/s: {ins1:.0}, {ins2:.0}, {ins3:.0} ({ins_failed} failed)"
    );
    println!("  refused sign-ins on locked accounts/s: {ref_rate:.0} ({ref_ok} refused as locked, {ref_failed} other) -> ratio {ref_ratio:.3}");
    println!("  one-time-code checks/s (wrong codes): {code_rate:.0} ({code_ok} checked, {code_failed} other) -> ratio {code_ratio:.3}");
    println!("  read models needed {ref_behind:.1} s after the refused phase and {code_behind:.1} s after the codes phase to catch up");
    let refused_server = cpu_after.0 .1.saturating_sub(cpu_before.0 .1);
    let refused_pg = ticks_between(&cpu_before.1, &cpu_after.1);
    let refused_me = cpu_after.2.saturating_sub(cpu_before.2);
    let per = ref_ok as f64;
    println!(
        "  CPU per refused sign-in: server {:.2} ms, PostgreSQL backends {:.2} ms, this load generator {:.2} ms (per INSERT: {:.2} ms)",
        ms(refused_server, per),
        ms(refused_pg, per),
        ms(refused_me, per),
        ms(me_insert, ins1_ok as f64)
    );
    println!(
        "  share of the machine's CPU taken by this load generator: {:.0}% in the refused phase, {:.0}% in the first INSERT phase",
        100.0 * refused_me as f64 / TICKS_PER_SECOND / secs / cores(),
        100.0 * me_insert as f64 / TICKS_PER_SECOND / secs / cores()
    );
    ctx.notes.push(format!(
        "refused sign-in (no hash), CPU per command: server {:.2} ms, PostgreSQL backends {:.2} ms",
        ms(refused_server, per),
        ms(refused_pg, per)
    ));
    if args.runs("rates") {
        ctx.rows.push(row(
            "Refused sign-ins on a locked account/s (no hash)",
            format!("{ref_rate:.0}/s"),
            &format!("INSERT tx/s {:.0}", (ins1 + ins2) / 2.0),
            format!("{ref_ratio:.2}"),
            "≥ 0.5",
            Some(ref_ratio >= 0.5),
        ));
        ctx.rows.push(row(
            "One-time-code checks/s (wrong codes)",
            format!("{code_rate:.0}/s"),
            &format!("INSERT tx/s {:.0}", (ins2 + ins3) / 2.0),
            format!("{code_ratio:.2}"),
            "≥ 0.5",
            Some(code_ratio >= 0.5),
        ));
    }

    if args.runs("latency") {
        let rate = (ref_rate / 2.0).max(1.0);
        let seconds = (secs * 2.0).max(1.0);
        caught_up(&pool, 120.0).await?;
        eprintln!("latency: refused sign-ins, open loop at {rate:.0}/s for {seconds:.0} s…");
        let (lat, failed) = open_loop(rate, seconds, refused.clone()).await;
        let (p50, p99, max) = (
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0),
        );
        println!(
            "latency at half saturation ({rate:.0}/s of {ref_rate:.0}/s, open loop, {} commands, {failed} failed): p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
            lat.len()
        );
        ctx.rows.push(row(
            "p99 latency of a refused sign-in at half saturation (open loop)",
            format!("p99 {p99:.1} ms (p50 {p50:.1} ms)"),
            "—",
            "—".into(),
            "< 10 ms",
            Some(p99 < 10.0),
        ));
    }

    if args.runs("lag") {
        // Saturation of an even mix of the two commands: the harmonic mean of their rates.
        let mix_saturation = 2.0 / (1.0 / ref_rate.max(1.0) + 1.0 / code_rate.max(1.0));
        let seconds = (secs * 2.0).max(1.0);
        // Lower loads first, to show where the lag starts to grow; the row is the 80 % one.
        let fractions: &[f64] = if args.smoke { &[0.8] } else { &[0.2, 0.5, 0.8] };
        for &fraction in fractions {
            let rate = (mix_saturation * fraction).max(1.0);
            eprintln!("lag: mix of refused sign-ins and code checks, open loop at {rate:.0}/s for {seconds:.0} s…");
            let lag = projection_lag(&pool, rate, seconds, mix_op(refused.clone(), codes.clone()))
                .await?;
            println!(
                "projection lag at {:.0}% of the mix's saturation ({rate:.0}/s of {mix_saturation:.0}/s, {} events): command p50 {:.1} ms, p99 {:.1} ms",
                fraction * 100.0, lag.events, lag.command_p50, lag.command_p99
            );
            println!(
                "  longest transaction seen while polling: {:.0} ms in this database, {:.0} ms in other databases of the cluster",
                lag.oldest_here, lag.oldest_elsewhere
            );
            if !lag.oldest_query.is_empty() {
                println!(
                    "  (the one in this database was running: {})",
                    lag.oldest_query
                );
            }
            let mut worst_p99 = 0.0f64;
            let mut worst_p50 = 0.0f64;
            for (name, p50, p99, seen_p99, missing) in &lag.per_projection {
                println!("  {name:<24} lag p50 {p50:>7.1} ms, p99 {p99:>7.1} ms (seen by the poller: p99 {seen_p99:.1} ms){}",
                    if *missing > 0 { format!(", {missing} events not reached") } else { String::new() });
                worst_p99 = worst_p99.max(*p99);
                worst_p50 = worst_p50.max(*p50);
            }
            if fraction == 0.8 {
                ctx.rows.push(row(
                    "Projection lag at 80% of saturation (slowest read model)",
                    format!("p99 {worst_p99:.0} ms (p50 {worst_p50:.0} ms)"),
                    "—",
                    "—".into(),
                    "p99 < 100 ms",
                    Some(worst_p99 < 100.0),
                ));
            } else {
                ctx.notes.push(format!(
                    "projection lag at {:.0}% of saturation: p99 {worst_p99:.0} ms, p50 {worst_p50:.0} ms (command p99 {:.1} ms)",
                    fraction * 100.0,
                    lag.command_p99
                ));
            }
        }
    }
    ctx.default_argon2_hwm_mib = Some(server.memory_mib().0);
    pool.close().await;
    Ok(())
}

struct Lag {
    /// Longest-running transaction seen (ms), in this database and in other databases.
    oldest_here: f64,
    oldest_elsewhere: f64,
    /// The statement the longest transaction in this database was running when seen.
    oldest_query: String,
    events: usize,
    command_p50: f64,
    command_p99: f64,
    /// (projection, p50 ms, p99 ms, p99 as seen by the poller, events never reached)
    per_projection: Vec<(String, f64, f64, f64, usize)>,
}

/// Runs `op` open loop while polling the checkpoints; then matches every event of the window
/// with the first checkpoint state that covers it.
async fn projection_lag(
    pool: &sqlx::PgPool,
    rate: f64,
    seconds: f64,
    op: Op,
) -> Result<Lag, String> {
    caught_up(pool, 120.0).await?;
    let first: i64 = sqlx::query_scalar("select coalesce(max(global_position), 0) from events")
        .fetch_one(pool)
        .await
        .map_err(|e| format!("events: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (pool, stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            // (projection, tx, position, updated_ms, seen_ms)
            let mut seen: Vec<(String, i64, i64, i64, f64)> = Vec::new();
            let mut last: HashMap<String, (i64, i64)> = HashMap::new();
            // Oldest transaction holding an id, in this database and in the others of the
            // cluster: the stream is read only below the cluster-wide oldest running one.
            let (mut oldest_here, mut oldest_elsewhere) = (0.0f64, 0.0f64);
            let mut oldest_query = String::new();
            let mut polls = 0u64;
            while !stop.load(Ordering::Relaxed) {
                polls += 1;
                if polls.is_multiple_of(4) {
                    let ages: Vec<(bool, f64, String)> = sqlx::query_as(
                        "select datname = current_database(),
                                extract(epoch from clock_timestamp() - xact_start)::float8 * 1000,
                                left(regexp_replace(query, '\\s+', ' ', 'g'), 100)
                           from pg_stat_activity
                          where backend_xid is not null and xact_start is not null",
                    )
                    .fetch_all(&pool)
                    .await
                    .unwrap_or_default();
                    for (here, age, query) in ages {
                        if here {
                            if age > oldest_here {
                                oldest_here = age;
                                oldest_query = query;
                            }
                        } else {
                            oldest_elsewhere = oldest_elsewhere.max(age);
                        }
                    }
                }
                let rows: Vec<(String, i64, i64, i64, f64)> = sqlx::query_as(
                    "select projection, tx_id, position, updated_ms,
                            extract(epoch from clock_timestamp())::float8 * 1000 from projection_checkpoints",
                )
                .fetch_all(&pool)
                .await
                .unwrap_or_default();
                for r in rows {
                    if last.get(&r.0) != Some(&(r.1, r.2)) {
                        last.insert(r.0.clone(), (r.1, r.2));
                        seen.push(r);
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (seen, oldest_here, oldest_elsewhere, oldest_query)
        })
    };
    let (lat, _) = open_loop(rate, seconds, op).await;
    // Let the read models catch up (or give up after 60 s).
    caught_up(pool, 60.0).await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, Ordering::Relaxed);
    let (seen, oldest_here, oldest_elsewhere, oldest_query) =
        poller.await.map_err(|e| format!("poller: {e}"))?;
    let events: Vec<(i64, i64, f64)> = sqlx::query_as(
        "select tx_id::text::bigint, global_position, extract(epoch from recorded_at)::float8 * 1000
           from events where global_position > $1 order by 1, 2",
    )
    .bind(first)
    .fetch_all(pool)
    .await
    .map_err(|e| format!("events: {e}"))?;
    let mut names: Vec<String> = seen.iter().map(|s| s.0.clone()).collect();
    names.sort();
    names.dedup();
    let mut per_projection = Vec::new();
    for name in names {
        let moves: Vec<&(String, i64, i64, i64, f64)> =
            seen.iter().filter(|s| s.0 == name).collect();
        let (mut lags, mut seen_lags, mut missing) = (Vec::new(), Vec::new(), 0usize);
        let mut j = 0;
        for (tx, pos, recorded) in &events {
            while j < moves.len() && (moves[j].1, moves[j].2) < (*tx, *pos) {
                j += 1;
            }
            match moves.get(j) {
                Some(m) => {
                    lags.push(m.3 as f64 - recorded);
                    seen_lags.push(m.4 - recorded);
                }
                None => missing += 1,
            }
        }
        lags.sort_by(|a, b| a.total_cmp(b));
        seen_lags.sort_by(|a, b| a.total_cmp(b));
        per_projection.push((
            name,
            percentile(&lags, 0.5),
            percentile(&lags, 0.99),
            percentile(&seen_lags, 0.99),
            missing,
        ));
    }
    Ok(Lag {
        oldest_query,
        oldest_here,
        oldest_elsewhere,
        events: events.len(),
        command_p50: percentile(&lat, 0.5),
        command_p99: percentile(&lat, 0.99),
        per_projection,
    })
}

async fn history(
    ctx: &mut Ctx,
    db: &ScratchDb,
    server: Server,
    env: &[(&str, String)],
) -> Result<(), String> {
    let args = ctx.args.clone();
    let http = http_client()?;
    let mut server = server;
    let base = server.base.clone();
    eprintln!(
        "history: an account with {} past events and a fresh one…",
        args.history_events
    );
    let accounts = register_many(
        &http,
        &base,
        vec![
            "old@example.com".into(),
            "fresh@example.com".into(),
            "warmup@example.com".into(),
        ],
        3,
    )
    .await?;
    lock_all(&http, &base, &accounts).await?;
    let (old, fresh, warmup) = (&accounts[0], &accounts[1], &accounts[2]);
    let pool = db.pool(2).await?;
    let count = |id: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("select count(*) from events where aggregate_id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .map_err(|e| format!("count events: {e}"))
        }
    };
    // Grow the old account's stream with refused sign-ins (one event each), through the API.
    let started = Instant::now();
    loop {
        let have = count(old.account_id.clone()).await?;
        if have >= args.history_events {
            break;
        }
        let missing = (args.history_events - have) as u64;
        let op = refused_login_op(&http, &base, std::slice::from_ref(old));
        let done = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..args.clients)
            .map(|_| {
                let (op, done) = (op.clone(), done.clone());
                tokio::spawn(async move {
                    while done.fetch_add(1, Ordering::Relaxed) < missing {
                        op(0).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }
    let old_events = count(old.account_id.clone()).await?;
    let fresh_events = count(fresh.account_id.clone()).await?;
    let snapshot: Option<i64> =
        sqlx::query_scalar("select last_sequence from snapshots where aggregate_id = $1")
            .bind(&old.account_id)
            .fetch_optional(&pool)
            .await
            .map_err(|e| format!("snapshots: {e}"))?;
    eprintln!(
        "history: {old_events} events written in {:.1} s (latest snapshot at sequence {})",
        started.elapsed().as_secs_f64(),
        snapshot.map_or("none".to_string(), |s| s.to_string())
    );
    pool.close().await;

    let timed = |who: &Account, base: String| {
        let (http, email) = (http.clone(), who.email.clone());
        async move {
            let t = Instant::now();
            let (status, _) = login(&http, &base, &email, PASSWORD).await?;
            if status != 429 {
                return Err(format!(
                    "expected 429 account_locked for {email}, got {status}"
                ));
            }
            Ok::<f64, String>(t.elapsed().as_secs_f64() * 1000.0)
        }
    };
    // Warm: the aggregate is in the server's state cache.
    let (mut warm_old, mut warm_fresh) = (Vec::new(), Vec::new());
    for i in 0..args.warm_pairs {
        if i % 2 == 0 {
            warm_old.push(timed(old, base.clone()).await?);
            warm_fresh.push(timed(fresh, base.clone()).await?);
        } else {
            warm_fresh.push(timed(fresh, base.clone()).await?);
            warm_old.push(timed(old, base.clone()).await?);
        }
    }
    // Cold: the first command on each account after a restart.
    let (mut cold_old, mut cold_fresh) = (Vec::new(), Vec::new());
    for round in 0..args.cold_rounds {
        server.kill().await;
        server = Server::start_bench(&ctx.server, &db.url, env).await?;
        let base = server.base.clone();
        // Warm the connection pools and code paths on a third account first.
        for _ in 0..3 {
            timed(warmup, base.clone()).await?;
        }
        if round % 2 == 0 {
            cold_old.push(timed(old, base.clone()).await?);
            cold_fresh.push(timed(fresh, base.clone()).await?);
        } else {
            cold_fresh.push(timed(fresh, base.clone()).await?);
            cold_old.push(timed(old, base.clone()).await?);
        }
    }
    server.kill().await;
    let (wo, wf) = (median(&warm_old), median(&warm_fresh));
    let (co, cf) = (median(&cold_old), median(&cold_fresh));
    println!("history: refused sign-in on an account with {old_events} events vs a fresh one ({fresh_events} events)");
    println!(
        "  warm cache ({} pairs): median {wo:.2} ms vs {wf:.2} ms -> ratio {:.2}",
        args.warm_pairs,
        wo / wf
    );
    println!(
        "  cold (first command after a restart, {} restarts): {} ms vs {} ms -> ratio of medians {:.2}",
        args.cold_rounds,
        fmt2(&cold_old),
        fmt2(&cold_fresh),
        co / cf
    );
    ctx.rows.push(row(
        &format!(
            "Command on an account with {} past events, warm cache",
            args.history_events
        ),
        format!("{wo:.2} ms"),
        &format!("fresh account {wf:.2} ms"),
        format!("{:.2}", wo / wf),
        "≤ 1.2",
        Some(wo / wf <= 1.2),
    ));
    ctx.rows.push(row(
        "Same, cold cache (first command after restart)",
        format!("{co:.2} ms"),
        &format!("fresh account {cf:.2} ms"),
        format!("{:.2}", co / cf),
        "≤ 1.2",
        Some(co / cf <= 1.2),
    ));
    Ok(())
}

fn fmt2(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Part: cost of a successful sign-in by phase

/// CPU seconds of one raw Argon2id verification at the default settings, on this thread.
fn raw_verification_cpu_ms(count: u32) -> Result<f64, String> {
    let settings = Argon2Settings::default();
    let password = SecretString::from(PASSWORD);
    let hash = settings
        .hash_blocking(&password, b"benchmarksalt123")
        .map_err(|e| format!("argon2: {e}"))?;
    let before = stat_ticks("/proc/thread-self/stat").unwrap_or(0);
    for _ in 0..count {
        if !settings.verify_blocking(&password, &hash) {
            return Err("argon2 verification failed".into());
        }
    }
    let after = stat_ticks("/proc/thread-self/stat").unwrap_or(0);
    Ok(ms(after.saturating_sub(before), count as f64))
}

async fn cost(ctx: &mut Ctx, db: &ScratchDb) -> Result<(), String> {
    let args = ctx.args.clone();
    let outbox = tempdir()?;
    let mut env = vec![("GATEHOUSE_DEV_OUTBOX_DIR", outbox.display().to_string())];
    env.extend(sign_in_limits("1000000"));
    let result = cost_inner(ctx, db, &env, &args).await;
    let _ = std::fs::remove_dir_all(&outbox);
    result
}

async fn cost_inner(
    ctx: &mut Ctx,
    db: &ScratchDb,
    env: &[(&str, String)],
    args: &SuiteArgs,
) -> Result<(), String> {
    let server = Server::start_bench(&ctx.server, &db.url, env).await?;
    let (start_hwm, _) = server.memory_mib();
    let http = http_client()?;
    let base = server.base.clone();
    let n = args.accounts.max(args.clients);
    eprintln!(
        "cost: registering {n} accounts, then successful sign-ins for {} s…",
        args.seconds
    );
    let emails = (0..n).map(|i| format!("signin{i}@example.com")).collect();
    let accounts = register_many(&http, &base, emails, args.clients).await?;
    let count = args.seconds.max(1) as u32 * 10;
    let raw = tokio::task::spawn_blocking(move || raw_verification_cpu_ms(count))
        .await
        .map_err(|e| e.to_string())??;
    let pool = db.pool(2).await?;
    let events_now = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, i64>("select count(*) from events")
            .fetch_one(&pool)
            .await
            .map_err(|e| format!("events: {e}"))
    };
    let emails: Arc<Vec<String>> = Arc::new(accounts.iter().map(|a| a.email.clone()).collect());
    let op: Op = {
        let (http, base) = (http.clone(), base.clone());
        Arc::new(move |i| {
            let (http, base, emails) = (http.clone(), base.clone(), emails.clone());
            async move {
                let email = &emails[(i as usize * 7) % emails.len()];
                matches!(login(&http, &base, email, PASSWORD).await, Ok((200, _)))
            }
            .boxed()
        })
    };
    closed_loop(args.clients, 1.0, op.clone()).await;
    let events_before = events_now(pool.clone()).await?;
    let server_before = thread_ticks(server.pid);
    let pg_before = backend_ticks(&ctx.admin, &db.name).await;
    let (rate, ok, failed) = closed_loop(args.clients, args.seconds as f64, op).await;
    let server_after = thread_ticks(server.pid);
    let pg_after = backend_ticks(&ctx.admin, &db.name).await;
    let events_after = events_now(pool.clone()).await?;
    // Give the read models a moment, then stop the server and rebuild them in-process.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (signin_hwm, _) = server.memory_mib();
    ctx.signin_hwm_mib = Some((start_hwm, signin_hwm));
    server.kill().await;
    pool.close().await;
    let per = ok as f64;
    let hash_ms = ms(server_after.0.saturating_sub(server_before.0), per);
    let other_ms = ms(server_after.1.saturating_sub(server_before.1), per);
    let pg_ms = ms(ticks_between(&pg_before, &pg_after), per);
    let events_per_login = (events_after - events_before) as f64 / per.max(1.0);

    eprintln!("cost: rebuilding the read models from the same events, in-process…");
    let store = gatehouse_store::Store::connect_postgres(&db.url, 4)
        .await
        .map_err(|e| format!("store: {e}"))?;
    let runner = gatehouse_projections::ProjectionRunner::standard(store.clone());
    let me_before = stat_ticks("/proc/self/stat").unwrap_or(0);
    let pg_before = backend_ticks(&ctx.admin, &db.name).await;
    let started = Instant::now();
    runner
        .rebuild()
        .await
        .map_err(|e| format!("rebuild: {e}"))?;
    let wall = started.elapsed().as_secs_f64();
    let pg_after = backend_ticks(&ctx.admin, &db.name).await;
    let me_after = stat_ticks("/proc/self/stat").unwrap_or(0);
    store.close().await;
    let total_events = events_after as f64;
    let proj_process_ms = ms(me_after.saturating_sub(me_before), total_events);
    let proj_pg_ms = ms(ticks_between(&pg_before, &pg_after), total_events);
    let proj_per_login = (proj_process_ms + proj_pg_ms) * events_per_login;

    println!(
        "cost of a successful sign-in ({rate:.1}/s, {ok} ok, {failed} failed, {} clients), CPU ms per sign-in:",
        args.clients
    );
    println!("  hash: Argon2 threads of the server {hash_ms:.1} ms (raw verification in the bench: {raw:.1} ms)");
    println!("  server, every other thread (HTTP, identifier, load, decide, append, live read models): {other_ms:.2} ms");
    println!("  PostgreSQL backends of the database (append, directory, read-model writes): {pg_ms:.2} ms");
    println!("  events appended per sign-in: {events_per_login:.2}");
    println!(
        "  read models, from a rebuild of the same {events_after} events in {wall:.2} s: {:.3} ms process + {:.3} ms PostgreSQL per event -> about {proj_per_login:.2} ms per sign-in",
        proj_process_ms, proj_pg_ms
    );
    let total = hash_ms + other_ms + pg_ms;
    ctx.rows.push(row(
        "Cost of a successful sign-in by phase (CPU ms)",
        format!(
            "hash {hash_ms:.1} ({:.0}%), server rest {other_ms:.1}, PostgreSQL {pg_ms:.1}; read models ≈ {proj_per_login:.1} (rebuild)",
            100.0 * hash_ms / total.max(0.001)
        ),
        &format!("raw Argon2 {raw:.1} ms"),
        format!("{:.2}", hash_ms / raw.max(0.001)),
        "(informative)",
        None,
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Part: peak memory with many accounts and sessions

async fn rss(ctx: &mut Ctx, db: &ScratchDb) -> Result<(), String> {
    let args = ctx.args.clone();
    let outbox = tempdir()?;
    let mut env = vec![("GATEHOUSE_DEV_OUTBOX_DIR", outbox.display().to_string())];
    if !args.rss_default_argon2 {
        // Cheap Argon2 so that 100,000 sign-ups take minutes, not a quarter of an hour (see the
        // note printed).
        env.push(("GATEHOUSE_ARGON2_MEMORY_KIB", "256".to_string()));
        env.push(("GATEHOUSE_ARGON2_ITERATIONS", "1".to_string()));
    }
    env.extend(sign_in_limits("1000000"));
    let result = rss_inner(ctx, db, &env, &args).await;
    let _ = std::fs::remove_dir_all(&outbox);
    result
}

async fn rss_inner(
    ctx: &mut Ctx,
    db: &ScratchDb,
    env: &[(&str, String)],
    args: &SuiteArgs,
) -> Result<(), String> {
    use futures::StreamExt;
    let server = Server::start_bench(&ctx.server, &db.url, env).await?;
    let http = http_client()?;
    let base = server.base.clone();
    let (start_hwm, _) = server.memory_mib();
    let concurrency = args.clients * 2;
    eprintln!("rss: registering {} accounts…", args.rss_accounts);
    let started = Instant::now();
    let emails = (0..args.rss_accounts)
        .map(|i| format!("member{i}@example.com"))
        .collect();
    let mut server = server;
    let accounts = match register_many(&http, &base, emails, concurrency).await {
        Ok(a) => a,
        Err(e) => return Err(format!("{e}\n{}", server.state())),
    };
    let reg_secs = started.elapsed().as_secs_f64();
    let (after_reg_hwm, _) = server.memory_mib();
    eprintln!(
        "rss: {} sign-ups in {reg_secs:.0} s; opening {} sessions…",
        accounts.len(),
        args.rss_sessions
    );
    let sessions: Vec<Option<String>> =
        futures::stream::iter(accounts.iter().take(args.rss_sessions))
            .map(|a| {
                let (http, base) = (&http, base.as_str());
                async move {
                    match login(http, base, &a.email, PASSWORD).await {
                        Ok((200, body)) => body["session_token"].as_str().map(str::to_string),
                        _ => None,
                    }
                }
            })
            .buffered(concurrency)
            .collect()
            .await;
    let tokens: Vec<String> = sessions.into_iter().flatten().collect();
    let (after_login_hwm, _) = server.memory_mib();
    eprintln!(
        "rss: {} sessions; reading every account's flow and every session's profile…",
        tokens.len()
    );
    let reads_counter = AtomicU64::new(0);
    let reads_ok = &reads_counter;
    let (http, base) = (&http, base.as_str());
    futures::stream::iter(tokens.iter())
        .for_each_concurrent(concurrency, |t| async move {
            for path in ["/v1/me", "/v1/me/sessions"] {
                if let Ok(r) = http
                    .get(format!("{base}{path}"))
                    .bearer_auth(t)
                    .send()
                    .await
                {
                    if r.status().is_success() {
                        reads_ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
        .await;
    futures::stream::iter(accounts.iter())
        .for_each_concurrent(concurrency, |a| async move {
            if let Ok(r) = http.get(format!("{base}/v1/flows/{}", a.flow)).send().await {
                if r.status().is_success() {
                    reads_ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .await;
    let (hwm, rss_now) = server.memory_mib();
    server.kill().await;
    let live = tokens.len();
    println!(
        "memory: {} accounts ({reg_secs:.0} s of sign-ups), {live} live sessions, {} successful reads",
        accounts.len(),
        reads_counter.load(Ordering::Relaxed)
    );
    println!(
        "  server peak RSS (VmHWM), MiB: at start {start_hwm:.1}, after sign-ups {after_reg_hwm:.1}, after sign-ins {after_login_hwm:.1}, after reads {hwm:.1} (current {rss_now:.1})"
    );
    let (figure, mib) = if args.rss_default_argon2 {
        (
            format!("{hwm:.1} MiB measured at the default Argon2 settings"),
            hwm,
        )
    } else {
        // The sign-ups ran at cheap Argon2 settings; add what a server hashing at the default
        // settings grew by during its sign-ins (measured in the cost part of this run, if it
        // ran). An estimate only: `--rss-default-argon2` measures it.
        let allowance = ctx
            .signin_hwm_mib
            .map(|(start, peak)| (peak - start).max(0.0));
        let estimate = hwm + allowance.unwrap_or(0.0);
        println!(
            "  with the default Argon2 settings (cost part's growth added: {}): about {estimate:.1} MiB",
            allowance.map_or("not measured".to_string(), |a| format!("{a:.1} MiB"))
        );
        ctx.notes.push(format!(
            "memory part: Argon2 at m=256 KiB, t=1 so that the sign-ups are affordable (--rss-default-argon2 measures at the default settings); at the default m=19456 KiB each hashing thread keeps a 19 MiB working area ({} threads here by default){}",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            ctx.default_argon2_hwm_mib
                .map(|m| format!("; the rates server, which hashed at the default settings, peaked at {m:.1} MiB"))
                .unwrap_or_default()
        ));
        (
            format!("{hwm:.1} MiB measured at cheap Argon2, ≈ {estimate:.1} MiB estimated with default Argon2"),
            estimate,
        )
    };
    let mb = mib * 1.048_576;
    ctx.rows.push(row(
        &format!(
            "Server peak RSS, {} accounts and {live} live sessions",
            accounts.len()
        ),
        format!("{figure} ({mb:.0} MB)"),
        "—",
        "—".into(),
        "< 100 MB",
        Some(mb < 100.0),
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------

fn print_table(ctx: &Ctx) {
    if ctx.rows.is_empty() {
        return;
    }
    println!();
    println!("| Figure | Measured | Limit (same run) | Ratio | Target | Met |");
    println!("|---|---|---|---|---|---|");
    for r in &ctx.rows {
        let met = match r.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "—",
        };
        println!(
            "| {} | {} | {} | {} | {} | {met} |",
            r.figure, r.value, r.limit, r.ratio, r.target
        );
    }
    for n in &ctx.notes {
        println!("note: {n}");
    }
    if ctx.args.smoke {
        println!("(smoke mode: tiny counts; the figures mean nothing)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_stat_ticks_are_utime_plus_stime_after_the_command_name() {
        let line = "4242 (tokio-rt (w) 1) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 25 0 0 20 0 7 0 100 0 0";
        assert_eq!(parse_stat_ticks(line), Some(175));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn test_percentiles_pick_from_sorted_values() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert!(percentile(&[], 0.5).is_nan());
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn test_smoke_shrinks_every_count() {
        let args = SuiteArgs::parse_from(["suite", "--smoke"]).smoke();
        assert!(args.seconds == 1 && args.history_events <= 200 && args.rss_accounts <= 200);
        assert!(args.runs("rss"));
        let only = SuiteArgs::parse_from(["suite", "--only", "lag,history"]);
        assert!(only.runs("lag") && only.runs("history") && !only.runs("rss"));
    }
}
