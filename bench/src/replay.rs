//! `gatehouse-bench replay`: how fast every read model rebuilds from the stream, against the raw
//! rate of reading the same rows, on PostgreSQL, in one run.
//!
//! A fresh database is filled with `--events` synthetic `Account` events (a realistic mix:
//! failures, sign-ins with their sessions, logouts; 20 per account), then, alternating so that
//! drift on a shared machine shows: a plain scan of the stream through the same reader the
//! projections use, `COPY … TO STDOUT` of the same rows, a rebuild of all read models from
//! position zero (`ProjectionRunner::rebuild`, the live runner's code), scan and `COPY` again,
//! the auditors' `gatehouse-replay rebuild` into fresh tables, scan and `COPY` a third time. Each
//! rebuild is compared with the scans on either side of it. Peak resident memory is read after
//! each phase.
use std::time::Instant;

use clap::Parser;
use futures::StreamExt;
use gatehouse_projections::ProjectionRunner;
use gatehouse_store::{Store, StreamPosition};
use sqlx::postgres::PgPoolCopyExt;

/// Replay benchmark settings.
#[derive(Debug, Parser)]
#[command(name = "gatehouse-bench replay")]
struct ReplayArgs {
    /// PostgreSQL server (admin URL); a fresh database is created for the run and dropped after.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Events to generate.
    #[arg(long, default_value_t = 1_000_000)]
    events: i64,
    /// Events per read (and per projection transaction). 5,000 rebuilds twice as fast as
    /// 1,000 (fewer statements per event); peak memory follows this, not the stream's length.
    #[arg(long, default_value_t = 5000)]
    batch: i64,
    /// Keep the database afterwards (its name is printed).
    #[arg(long)]
    keep: bool,
    /// Also rebuild each read model alone, to show where the time goes.
    #[arg(long)]
    each: bool,
}

/// Synthetic events `$1..$2`: per account (20 events) a repeating failure, sign-in, session start,
/// logout, one second apart.
const GENERATE: &str = include_str!("../sql/generate-events.sql");

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

async fn scan(store: &Store, batch: i64) -> Result<(u64, f64), String> {
    let start = Instant::now();
    let mut position = StreamPosition::default();
    let mut n = 0u64;
    loop {
        let events = store
            .read_stream(position, batch)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = events.last() else { break };
        position = last.position;
        n += events.len() as u64;
    }
    Ok((n, n as f64 / start.elapsed().as_secs_f64()))
}

/// What `gatehouse-replay rebuild --json` reported, and its peak memory.
struct FreshRebuild {
    fold_seconds: f64,
    rebuild_seconds: f64,
    total_seconds: f64,
    differences: u64,
    peak_rss_mib: f64,
}

/// Runs the auditors' tool, `gatehouse-replay rebuild` (built next to this binary), on the
/// database: every read model rebuilt from zero into fresh shadow tables, then compared with the
/// live ones. Its peak RSS is sampled from `/proc` while it runs.
async fn fresh_rebuild(url: &str) -> Result<FreshRebuild, String> {
    let tool = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("gatehouse-replay");
    if !tool.exists() {
        return Err(format!(
            "{} not found: build it first (cargo build --release -p gatehouse-replay)",
            tool.display()
        ));
    }
    let mut child = tokio::process::Command::new(&tool)
        .args(["rebuild", "--json"])
        .env("DATABASE_URL", url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", tool.display()))?;
    let pid = child.id().unwrap_or(0);
    let mut stdout = child
        .stdout
        .take()
        .ok_or("no stdout from gatehouse-replay")?;
    let reader = tokio::spawn(async move {
        let mut out = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut out)
            .await
            .map(|_| out)
    });
    let mut peak_kib = 0f64;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if let Some(kib) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
        {
            peak_kib = peak_kib.max(kib);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let out = reader
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    // Exit status 1 means differences were found (reported below); anything else failed.
    if !status.success() && status.code() != Some(1) {
        return Err(format!("gatehouse-replay rebuild failed ({status})"));
    }
    let report: gatehouse_replay::report::RebuildReport = serde_json::from_str(&out)
        .map_err(|e| format!("unreadable gatehouse-replay report: {e}"))?;
    Ok(FreshRebuild {
        fold_seconds: report.seconds.fold,
        rebuild_seconds: report.seconds.rebuild,
        total_seconds: report.seconds.total,
        differences: report.differences,
        peak_rss_mib: peak_kib / 1024.0,
    })
}

async fn copy_out(pool: &sqlx::PgPool, events: i64) -> Result<(u64, f64), String> {
    let start = Instant::now();
    let mut stream = pool
        .copy_out_raw(
            "copy (select aggregate_type, aggregate_id, sequence, event_type, event_version, payload,
                          metadata, global_position, tx_id, recorded_at
                     from events order by tx_id, global_position) to stdout",
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        bytes += chunk.map_err(|e| e.to_string())?.len() as u64;
    }
    Ok((bytes, events as f64 / start.elapsed().as_secs_f64()))
}

/// Runs the replay benchmark; returns the process exit status.
pub async fn main(argv: Vec<String>) -> i32 {
    let args = ReplayArgs::parse_from(argv);
    match run(&args).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("gatehouse-bench replay: {e}");
            2
        }
    }
}

async fn run(args: &ReplayArgs) -> Result<(), String> {
    let admin = sqlx::PgPool::connect(&args.database_url)
        .await
        .map_err(|e| {
            format!(
                "cannot reach PostgreSQL at {}: {e}",
                crate::redacted(&args.database_url)
            )
        })?;
    let db = format!("gatehouse_bench_replay_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("create database {db}"))
        .execute(&admin)
        .await
        .map_err(|e| e.to_string())?;
    let url = gatehouse_testkit::database_url(&args.database_url, &db);
    let result = measure(args, &url).await;
    if args.keep {
        eprintln!("kept database {db}");
    } else {
        let _ = sqlx::query(&format!("drop database if exists {db} with (force)"))
            .execute(&admin)
            .await;
    }
    result
}

async fn measure(args: &ReplayArgs, url: &str) -> Result<(), String> {
    let store = Store::connect_postgres(url, 8)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let pool = sqlx::PgPool::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let chunk = 100_000i64;
    let mut from = 0i64;
    while from < args.events {
        let to = (from + chunk).min(args.events) - 1;
        sqlx::query(GENERATE)
            .bind(from)
            .bind(to)
            .execute(&pool)
            .await
            .map_err(|e| e.to_string())?;
        from = to + 1;
        eprintln!("generated {from} events");
    }
    // Hint bits and statistics set, and the generation's dirty pages written out now: left to
    // the checkpointer, that writing slowed whichever phase came first (the first scan ran at
    // 60-70 % of the second's rate).
    for statement in ["vacuum analyze events", "checkpoint"] {
        sqlx::query(statement)
            .execute(&pool)
            .await
            .map_err(|e| e.to_string())?;
    }
    eprintln!(
        "generated {} events in {:.1} s; measuring…",
        args.events,
        started.elapsed().as_secs_f64()
    );
    let rss_start = peak_rss_mib();

    let (n1, scan1) = scan(&store, args.batch).await?;
    let (bytes, copy1) = copy_out(&pool, args.events).await?;
    let rss_scan = peak_rss_mib();
    eprintln!("scan: {n1} events at {scan1:.0}/s; COPY: {bytes} bytes at {copy1:.0} events/s; rebuilding…");

    let runner = ProjectionRunner::standard(store.clone()).with_batch(args.batch);
    let start = Instant::now();
    let applied = runner.rebuild().await.map_err(|e| e.to_string())?;
    let rebuild_secs = start.elapsed().as_secs_f64();
    let rebuild = args.events as f64 / rebuild_secs;
    let rss_rebuild = peak_rss_mib();

    let (n2, scan2) = scan(&store, args.batch).await?;
    let (_, copy2) = copy_out(&pool, args.events).await?;
    if n1 != n2 || n1 != u64::try_from(args.events).unwrap_or(0) {
        return Err(format!(
            "read {n1} then {n2} events, expected {}",
            args.events
        ));
    }
    let rows: i64 = sqlx::query_scalar(
        "select (select count(*) from lockout_state_v1) + (select count(*) from login_history_v1)
              + (select count(*) from sessions_v1)",
    )
    .fetch_one(&pool)
    .await
    .map_err(|e| e.to_string())?;
    let fresh = fresh_rebuild(url).await?;
    // The fresh-table rebuild's own reference: the scans just before and just after it.
    let (n3, scan3) = scan(&store, args.batch).await?;
    let (_, copy3) = copy_out(&pool, args.events).await?;
    if n3 != n1 {
        return Err(format!("read {n1} then {n3} events"));
    }
    let scan_mean = (scan1 + scan2) / 2.0;
    let copy_mean = (copy1 + copy2) / 2.0;
    let fresh_scan = (scan2 + scan3) / 2.0;
    let fresh_copy = (copy2 + copy3) / 2.0;
    let names: Vec<&str> = runner.projections().iter().map(|p| p.name()).collect();
    println!(
        "events: {}, batch: {}, read models: {} ({rows} rows in lockout_state_v1, login_history_v1, sessions_v1)",
        args.events,
        args.batch,
        names.join(", ")
    );
    println!(
        "plain scan (stream reader), events/s: {scan1:.0}, {scan2:.0}, {scan3:.0} (before and after each rebuild)"
    );
    println!("COPY TO STDOUT, events/s: {copy1:.0}, {copy2:.0}, {copy3:.0}");
    println!(
        "rebuild of all read models: {rebuild:.0} events/s ({applied} event applications in {rebuild_secs:.1} s)"
    );
    println!(
        "ratio rebuild / plain scan: {:.3} (scans 1-2, mean {scan_mean:.0}); rebuild / COPY: {:.3}",
        rebuild / scan_mean,
        rebuild / copy_mean
    );
    println!(
        "peak RSS (MiB): after generating {rss_start:.1}, after scans {rss_scan:.1}, after rebuild {rss_rebuild:.1}"
    );
    let fresh_rate = args.events as f64 / fresh.rebuild_seconds;
    println!(
        "rebuild into fresh tables (gatehouse-replay rebuild): {fresh_rate:.0} events/s ({:.1} s: fold {:.1} s, deferred indexes {:.1} s); compared with the live read models in {:.1} s: {} difference(s)",
        fresh.rebuild_seconds,
        fresh.fold_seconds,
        fresh.rebuild_seconds - fresh.fold_seconds,
        fresh.total_seconds - fresh.rebuild_seconds,
        fresh.differences
    );
    println!(
        "ratio fresh-table rebuild / plain scan: {:.3} (scans 2-3, mean {fresh_scan:.0}; {:.3} against the faster); / COPY: {:.3}; peak RSS of gatehouse-replay: {:.1} MiB",
        fresh_rate / fresh_scan,
        fresh_rate / scan2.max(scan3),
        fresh_rate / fresh_copy,
        fresh.peak_rss_mib
    );
    if fresh.differences != 0 {
        return Err(format!(
            "the fresh-table rebuild differs from the live one in {} row(s)",
            fresh.differences
        ));
    }
    if args.each {
        // Each read model alone, from zero, against the same scan reference.
        for projection in runner.projections() {
            let alone = ProjectionRunner::new(store.clone(), vec![projection.clone()])
                .with_batch(args.batch);
            let start = Instant::now();
            alone.rebuild().await.map_err(|e| e.to_string())?;
            let rate = args.events as f64 / start.elapsed().as_secs_f64();
            println!(
                "  {:<20} alone: {rate:>9.0} events/s, ratio to plain scan {:.3}",
                projection.name(),
                rate / scan_mean
            );
        }
    }
    store.close().await;
    Ok(())
}
