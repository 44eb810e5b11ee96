//! The auditors' tool against real PostgreSQL after real traffic: export round trips and filters,
//! rebuild equals live (and pins an altered row), state as of several instants, timeline, signed
//! checkpoints and every kind of tampering pinned to its event, erasure, policy backtests.
use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::fixtures_v1::{fixture_rows, load_fixture, FIXTURE_ACCOUNT};
use super::support::{fast_env, Server, TestDb, PASSWORD};

/// A checkpoint signing key for tests (an Ed25519 seed; never a production key).
const CHECKPOINT_KEY: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

fn replay_binary() -> PathBuf {
    super::support::binary().with_file_name("gatehouse-replay")
}

/// Waits until every event of this database is visible to stream readers. Visibility follows the
/// oldest transaction still running on the whole server, so a write in another test's database
/// can hold it back for a moment.
async fn stream_visible(db: &TestDb) {
    let pool = db.pool().await;
    super::support::eventually("every event visible in the stream", || async {
        let hidden: i64 = sqlx::query_scalar(
            "select count(*) from events where tx_id >= pg_snapshot_xmin(pg_current_snapshot())",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        hidden == 0
    })
    .await;
    pool.close().await;
}

/// Runs `gatehouse-replay` against a database: (exit status, stdout, stderr).
async fn run(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    stream_visible(db).await;
    let mut cmd = tokio::process::Command::new(replay_binary());
    cmd.args(args).env_clear().env("DATABASE_URL", &db.url);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn run_json(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let (code, out, err) = run(db, args, env).await;
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, v)
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "gh-replay-{}-{name}",
        uuid::Uuid::new_v4().simple()
    ))
}

async fn disable_append_only(pool: &sqlx::PgPool) {
    sqlx::query("alter table events disable trigger events_append_only")
        .execute(pool)
        .await
        .unwrap();
}

/// Real traffic: two accounts with successes, failures, a lock and a refused attempt.
async fn traffic(server: &Server) -> (String, String) {
    let a = server.register("ann.audit@example.com", PASSWORD).await;
    let b = server.register("bob.audit@example.com", PASSWORD).await;
    let token = server.token("ann.audit@example.com", PASSWORD).await;
    server
        .login("ann.audit@example.com", "wrong-password-one")
        .await;
    server.token("ann.audit@example.com", PASSWORD).await;
    server
        .authed(reqwest::Method::POST, "/v1/logout", &token)
        .await;
    for _ in 0..6 {
        server
            .login("bob.audit@example.com", "wrong-password-two")
            .await;
    }
    server
        .login("nobody@example.com", "wrong-password-three")
        .await;
    (a, b)
}

#[derive(Debug, PartialEq)]
struct Row {
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    payload: Value,
}

async fn stored_rows(pool: &sqlx::PgPool) -> Vec<Row> {
    let rows: Vec<(String, i64, String, String)> = sqlx::query_as(
        "select aggregate_id, sequence, event_type, payload::text from events order by tx_id, global_position",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(aggregate_id, sequence, event_type, payload)| Row {
            aggregate_id,
            sequence,
            event_type,
            payload: serde_json::from_str(&payload).unwrap(),
        })
        .collect()
}

/// Sequences of an account's `LoginFailed` events.
async fn failure_sequences(pool: &sqlx::PgPool, account: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "select sequence from events where aggregate_id = $1 and event_type = 'LoginFailed' order by sequence",
    )
    .bind(account)
    .fetch_all(pool)
    .await
    .unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(bytes);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn test_replay_export_round_trips_jsonl_and_csv_with_filters_and_manifest() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let (ann, bob) = traffic(&server).await;
    server.kill().await;
    let pool = db.pool().await;
    let stored = stored_rows(&pool).await;
    assert!(stored.len() > 15, "{}", stored.len());

    // JSON Lines, everything: the same events, in the same order, with a true digest.
    let out = tmp("all.jsonl");
    let (code, _, err) = run(&db, &["export", "--out", out.to_str().unwrap()], &[]).await;
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&out).unwrap();
    let back: Vec<Row> = String::from_utf8(bytes.clone())
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Row {
                aggregate_id: v["aggregate_id"].as_str().unwrap().into(),
                sequence: v["sequence"].as_i64().unwrap(),
                event_type: v["event_type"].as_str().unwrap().into(),
                payload: v["payload"].clone(),
            }
        })
        .collect();
    assert_eq!(back, stored);
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}.manifest.json", out.display())).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["sha256"], sha256_hex(&bytes));
    assert_eq!(manifest["events"], stored.len());
    assert_eq!(manifest["bytes"], bytes.len());
    let failed = stored
        .iter()
        .filter(|r| r.event_type == "LoginFailed")
        .count();
    assert_eq!(manifest["counts_by_type"]["LoginFailed"], failed);
    assert!(manifest["first_position"]["pos"].as_i64().is_some());

    // CSV on stdout, filtered by account and types: parse it back.
    let (code, csv_text, err) = run(
        &db,
        &[
            "export",
            "--format",
            "csv",
            "--account",
            &bob,
            "--event-type",
            "LoginFailed",
            "--event-type",
            "AccountLocked",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(headers.get(3), Some("aggregate_id"));
    let parsed: Vec<Row> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            Row {
                aggregate_id: r[3].to_string(),
                sequence: r[4].parse().unwrap(),
                event_type: r[5].to_string(),
                payload: serde_json::from_str(&r[9]).unwrap(),
            }
        })
        .collect();
    let expected: Vec<&Row> = stored
        .iter()
        .filter(|r| {
            r.aggregate_id == bob
                && (r.event_type == "LoginFailed" || r.event_type == "AccountLocked")
        })
        .collect();
    assert_eq!(parsed.iter().collect::<Vec<_>>(), expected);
    assert_eq!(
        parsed.len(),
        6,
        "five failures and a lock; the sixth was refused"
    );
    assert!(parsed.iter().all(|r| r.aggregate_id != ann));

    // A time window that ends before anything happened is empty.
    let (code, none, _) = run(&db, &["export", "--to", "2000-01-01"], &[]).await;
    assert_eq!(code, 0);
    assert!(none.is_empty(), "{none}");
}

#[tokio::test]
async fn test_replay_export_time_filters_on_fixture_and_memory_stays_flat() {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    load_fixture(&pool).await;
    let (code, out, err) = run(
        &db,
        &[
            "export",
            "--from",
            "2026-01-06",
            "--to",
            "2026-01-06T08:04:00Z",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let types: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["event_type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(types, vec!["LoginFailed", "AccountLocked"]);

    // 100,000 events: peak memory like that of 10,000 (the export streams in batches).
    let rss = |manifest: &Value| manifest["peak_rss_kib"].as_u64().unwrap();
    let mut peaks = Vec::new();
    for n in [10_000i64, 100_000] {
        let db = TestDb::new().await;
        let pool = db.pool().await;
        let payload = fixture_rows()[2]["payload"].to_string();
        sqlx::query(
            "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             select 'Account', 'bulk-' || (g / 100), g % 100 + 1, 'LoginFailed', '1.0', $1::json, '{}'
               from generate_series(0, $2 - 1) g",
        )
        .bind(&payload)
        .bind(n)
        .execute(&pool)
        .await
        .unwrap();
        let out = tmp("bulk.jsonl");
        let manifest = tmp("bulk.manifest.json");
        let (code, _, err) = run(
            &db,
            &[
                "export",
                "--out",
                out.to_str().unwrap(),
                "--manifest",
                manifest.to_str().unwrap(),
            ],
            &[],
        )
        .await;
        assert_eq!(code, 0, "{err}");
        let m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        assert_eq!(m["events"], n);
        let lines = std::fs::read_to_string(&out).unwrap().lines().count();
        assert_eq!(lines as i64, n);
        peaks.push(rss(&m));
        let _ = std::fs::remove_file(&out);
    }
    eprintln!(
        "export peak RSS: 10k events {} KiB, 100k events {} KiB",
        peaks[0], peaks[1]
    );
    assert!(
        peaks[1] < peaks[0] + 16 * 1024,
        "peak memory grew with the number of events: {peaks:?} KiB"
    );
}

#[tokio::test]
async fn test_replay_rebuild_equals_live_and_pins_an_altered_row() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let (ann, bob) = traffic(&server).await;
    // Text that `COPY`'s text format must escape (the rebuild copies history rows in): a tab,
    // backslashes, and what would read as its null marker.
    let hostile_agent = "agent\tone \\N two\\ three";
    let r = server
        .http
        .post(format!("{}/v1/login", server.base))
        .header("user-agent", hostile_agent)
        .json(&serde_json::json!({"identifier": "ann.audit@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let pool = db.pool().await;
    // Let the live runner apply the traffic; the comparison is exact at any lag anyway.
    super::support::eventually("read models caught up", || async {
        let n: i64 =
            sqlx::query_scalar("select count(*) from login_history_v1 where account_id = $1")
                .bind(&bob)
                .fetch_one(&pool)
                .await
                .unwrap();
        let agents: Vec<Option<String>> = sqlx::query_scalar(
            "select user_agent from login_history_v1 where account_id = $1 and outcome = 'succeeded'",
        )
        .bind(&ann)
        .fetch_all(&pool)
        .await
        .unwrap();
        n == 6 && agents.iter().any(|a| a.as_deref() == Some(hostile_agent))
    })
    .await;

    // While the server runs.
    let (code, out, err) = run(&db, &["rebuild"], &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    let verdicts: Vec<&str> = out.lines().filter(|l| l.contains("rebuilt from")).collect();
    assert!(verdicts.len() >= 3, "{out}");
    assert!(
        verdicts.iter().all(|l| l.ends_with("equal to live")),
        "{out}"
    );
    // The security activity (issue #20) is rebuilt and compared like the others.
    assert!(verdicts.iter().any(|l| l.contains("activity_v1")), "{out}");
    // The shadow tables are scratch space (unlogged) and end with every index of their live
    // table, the reader-only ones built after the fold (same definition, same name).
    let index_defs = |schema: &'static str| {
        let pool = pool.clone();
        async move {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "select indexname::text, replace(indexdef, schemaname || '.', '')
                   from pg_indexes
                  where schemaname = $1 and tablename in
                        (select tablename from pg_tables where schemaname = 'gatehouse_rebuild')
                  order by 1",
            )
            .bind(schema)
            .fetch_all(&pool)
            .await
            .unwrap();
            rows
        }
    };
    let live = index_defs("public").await;
    let shadow = index_defs("gatehouse_rebuild").await;
    assert!(
        live.iter().any(|(n, _)| n == "login_history_v1_by_ip"),
        "{live:?}"
    );
    assert_eq!(shadow, live);
    let logged: i64 = sqlx::query_scalar(
        "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = 'gatehouse_rebuild' and c.relkind = 'r' and c.relpersistence <> 'u'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(logged, 0, "shadow tables must be unlogged");
    // The rebuild writes the alerts' signal windows once, at the end: the same rows as live
    // (failed sign-ins above are signals), not none.
    let signals = |table: &'static str| {
        let pool = pool.clone();
        async move {
            let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(&format!(
                "select signal, aggregate_id, sequence, at_ms from {table} order by 1, 2, 3"
            ))
            .fetch_all(&pool)
            .await
            .unwrap();
            rows
        }
    };
    let live_signals = signals("alert_signals_v1").await;
    assert!(live_signals.len() >= 3, "{live_signals:?}");
    assert_eq!(
        signals("gatehouse_rebuild.alert_signals_v1").await,
        live_signals
    );
    server.kill().await;

    sqlx::query("update lockout_state_v1 set consecutive_failures = 42 where account_id = $1")
        .bind(&ann)
        .execute(&pool)
        .await
        .unwrap();
    let (code, report) = run_json(&db, &["rebuild", "--json"], &[]).await;
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["differences"], 1, "{report}");
    let lockout = report["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["projection"] == "lockout_state_v1")
        .unwrap();
    let diffs = lockout["tables"][0]["differences"].as_array().unwrap();
    assert_eq!(diffs.len(), 1);
    assert_eq!(diffs[0]["kind"], "changed");
    assert_eq!(diffs[0]["key"]["account_id"], ann.as_str());
    assert_eq!(
        diffs[0]["columns"],
        serde_json::json!([{"column": "consecutive_failures", "live": 42, "rebuilt": 0}])
    );

    // One projection only: the others are not looked at.
    let (code, out, _) = run(&db, &["rebuild", "--projection", "sessions_v1"], &[]).await;
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = run(&db, &["rebuild", "--projection", "nope"], &[]).await;
    assert_eq!(code, 2);
    assert!(err.contains("lockout_state_v1"), "{err}");

    // A missing history row is reported, and --swap repairs the live read models.
    let failure = failure_sequences(&pool, &ann).await[0];
    sqlx::query("delete from login_history_v1 where account_id = $1 and sequence = $2")
        .bind(&ann)
        .bind(failure)
        .execute(&pool)
        .await
        .unwrap();
    let (code, out, _) = run(&db, &["rebuild", "--swap"], &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("missing from live"), "{out}");
    assert!(
        out.contains("consecutive_failures live=42 rebuilt=0"),
        "{out}"
    );
    let (code, out, _) = run(&db, &["rebuild"], &[]).await;
    assert_eq!(code, 0, "{out}");
    let repaired: i64 = sqlx::query_scalar(
        "select consecutive_failures from lockout_state_v1 where account_id = $1",
    )
    .bind(&ann)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(repaired, 0);
}

#[tokio::test]
async fn test_replay_state_at_several_instants_matches_hand_checked_expectations() {
    let db = TestDb::new().await;
    load_fixture(&db.pool().await).await;
    let state = |at: &'static str| {
        let db = &db;
        async move {
            let (code, v) = run_json(
                db,
                &["state", "--account", FIXTURE_ACCOUNT, "--at", at, "--json"],
                &[],
            )
            .await;
            assert_eq!(code, 0, "{v}");
            v
        }
    };
    let seqs = |v: &Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["sequence"].as_i64().unwrap())
            .collect()
    };

    // Before the account existed.
    let v = state("2026-01-05T08:00:00Z").await;
    assert_eq!(v["status"], "new");
    assert_eq!(v["events_applied"], 0);

    // After a failure and a success: one session open, no failures counted.
    let v = state("2026-01-05T10:10:00Z").await;
    assert_eq!(v["status"], "active");
    assert_eq!(seqs(&v["status_evidence"]), vec![1]);
    assert_eq!(v["contacts"]["email"], "sealed");
    assert_eq!(v["contacts"]["phone"], Value::Null);
    assert_eq!(v["lockout"]["locked"], false);
    assert_eq!(v["lockout"]["consecutive_failures"], 0);
    assert_eq!(seqs(&v["lockout"]["evidence"]), vec![4]);
    assert_eq!(v["sessions_open"], 1);
    assert_eq!(v["sessions"][0]["idle_expires_at"], "2026-01-05T10:31:00Z");
    assert_eq!(seqs(&v["sessions"][0]["evidence"]), vec![4, 5]);

    // Used at 10:20 (idle expiry pushed to 10:50), before the 10:30 logout.
    let v = state("2026-01-05T10:25:00Z").await;
    assert_eq!(v["sessions_open"], 1);
    assert_eq!(v["sessions"][0]["idle_expires_at"], "2026-01-05T10:50:00Z");
    assert_eq!(seqs(&v["sessions"][0]["evidence"]), vec![4, 5, 6]);

    // After the logout.
    let v = state("2026-01-05T10:45:00Z").await;
    assert_eq!(v["sessions_open"], 0);

    // Locked on the 6th at 08:00 until 08:15, one attempt refused meanwhile.
    let v = state("2026-01-06T08:10:00Z").await;
    assert_eq!(v["lockout"]["locked"], true);
    assert_eq!(v["lockout"]["locked_until"], "2026-01-06T08:15:00Z");
    assert_eq!(v["lockout"]["lock_level"], 1);
    assert_eq!(seqs(&v["lockout"]["evidence"]), vec![4, 9, 10, 11]);

    // The lock has run out; its level is remembered until the next success.
    let v = state("2026-01-06T09:00:00Z").await;
    assert_eq!(v["lockout"]["locked"], false);
    assert_eq!(v["lockout"]["lock_level"], 1);
    assert_eq!(v["lockout"]["consecutive_failures"], 0);
    assert_eq!(v["events_applied"], 11);

    // Text form.
    let (code, text, _) = run(
        &db,
        &[
            "state",
            "--account",
            FIXTURE_ACCOUNT,
            "--at",
            "2026-01-06T08:10:00Z",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0);
    assert!(text.contains("LOCKED until 2026-01-06T08:15:00Z"), "{text}");
    assert!(text.contains("#10"), "{text}");

    // The fixture also verifies and rebuilds through the store.
    let (code, out, _) = run(&db, &["verify"], &[]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = run(&db, &["rebuild", "--swap"], &[]).await;
    assert_eq!(code, 1, "the live read models were empty: {out}");
    let (code, out, _) = run(&db, &["rebuild"], &[]).await;
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn test_replay_timeline_text_and_html_chart() {
    let db = TestDb::new().await;
    load_fixture(&db.pool().await).await;
    let (code, text, _) = run(&db, &["timeline", "--account", FIXTURE_ACCOUNT], &[]).await;
    assert_eq!(code, 0);
    assert!(text.contains("2026-01-05"), "{text}");
    assert!(text.contains("2026-01-06"), "{text}");
    assert!(
        text.contains("sign-in failed: wrong password (5 in a row)"),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.contains('#')).count(),
        11,
        "{text}"
    );

    let page = tmp("timeline.html");
    let (code, _, err) = run(
        &db,
        &[
            "timeline",
            "--account",
            FIXTURE_ACCOUNT,
            "--html",
            page.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg"), "an inline chart");
    assert!(!html.contains("<script"), "no scripts");
    assert!(
        !html.contains("http://") || html.matches("http://").count() == 1,
        "only the SVG namespace"
    );
    assert!(html.contains("2026-01-05: 1 sign-ins"), "{html}");
    assert!(html.contains("2026-01-06: 1 failures"), "{html}");
    assert!(
        html.contains("2026-01-06: 1 refused while locked"),
        "{html}"
    );
}

#[tokio::test]
async fn test_replay_verify_pins_each_kind_of_tampering_to_its_event() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    // Six accounts with six events each (registration, three sign-ins with their sessions).
    let mut ids = Vec::new();
    // The forged insertion goes below the checkpoint, so its account's traffic comes first.
    for name in ["insert", "alter", "delete", "reorder", "dellast", "altlast"] {
        let email = format!("{name}@example.com");
        ids.push(server.register(&email, PASSWORD).await);
        server.login(&email, "wrong-password-x").await;
        server.token(&email, PASSWORD).await;
        server.login(&email, "wrong-password-y").await;
    }
    server.kill().await;
    let pool = db.pool().await;
    // The delivery worker may append outcome events, so each account's length is read back.
    let mut lasts = Vec::new();
    for id in &ids {
        let n: i64 = sqlx::query_scalar("select max(sequence) from events where aggregate_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(n >= 5, "{n}");
        lasts.push(n);
    }

    let key = [("GATEHOUSE_CHECKPOINT_KEY", CHECKPOINT_KEY)];
    let (code, out, err) = run(&db, &["checkpoint"], &key).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("checkpoint #1"), "{out}");
    let (code, out, _) = run(&db, &["checkpoint"], &key).await;
    assert_eq!(code, 0);
    assert!(out.contains("no new events"), "{out}");
    let (code, out, _) = run(&db, &["verify"], &key).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("signature and digest ok"), "{out}");
    // A checkpoint signed by a key other than the trusted one fails.
    let other = [(
        "GATEHOUSE_CHECKPOINT_PUBLIC_KEY",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    )];
    let (code, out, _) = run(&db, &["verify"], &other).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("untrusted key"), "{out}");

    disable_append_only(&pool).await;
    // Altered: event 2 of its account back-dated.
    sqlx::query(
        "update events set payload = jsonb_set(payload::jsonb, '{at}', '\"2000-01-01T00:00:00Z\"')::json
          where aggregate_id = $1 and sequence = 2",
    )
    .bind(&ids[1])
    .execute(&pool)
    .await
    .unwrap();
    // Deleted: event 3 of its account.
    sqlx::query("delete from events where aggregate_id = $1 and sequence = 3")
        .bind(&ids[2])
        .execute(&pool)
        .await
        .unwrap();
    // Reordered: events 2 and 3 swap places.
    sqlx::query(
        "update events e set payload = o.payload from events o
          where e.aggregate_id = $1 and o.aggregate_id = $1
            and ((e.sequence = 2 and o.sequence = 3) or (e.sequence = 3 and o.sequence = 2))",
    )
    .bind(&ids[3])
    .execute(&pool)
    .await
    .unwrap();
    // Deleted: the last event (only the signed checkpoint knows it existed).
    sqlx::query("delete from events where aggregate_id = $1 and sequence = $2")
        .bind(&ids[4])
        .bind(lasts[4])
        .execute(&pool)
        .await
        .unwrap();
    // Altered: the last event.
    sqlx::query(
        "update events set payload = jsonb_set(payload::jsonb, '{at}', '\"2000-01-01T00:00:00Z\"')::json
          where aggregate_id = $1 and sequence = $2",
    )
    .bind(&ids[5])
    .bind(lasts[5])
    .execute(&pool)
    .await
    .unwrap();
    // Inserted: a forged copy of the last event with a correctly recomputed link, slipped into the
    // stream right after the account's first event (below the checkpoint).
    let payload: String = sqlx::query_scalar(
        "select payload::text from events where aggregate_id = $1 and sequence = $2",
    )
    .bind(&ids[0])
    .bind(lasts[0])
    .fetch_one(&pool)
    .await
    .unwrap();
    let payload: Value = serde_json::from_str(&payload).unwrap();
    let head = gatehouse_domain::chain::ChainLink(payload["prev"].as_str().unwrap().to_string())
        .next(&payload);
    let mut forged = payload.clone();
    forged["prev"] = Value::String(head.0);
    sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, tx_id, global_position)
         select l.aggregate_type, l.aggregate_id, l.sequence + 1, l.event_type, l.event_version, $3::json, l.metadata,
                f.tx_id, f.global_position + 1000000
           from events l join events f on f.aggregate_id = l.aggregate_id and f.sequence = 1
          where l.aggregate_id = $1 and l.sequence = $2",
    )
    .bind(&ids[0])
    .bind(lasts[0])
    .bind(forged.to_string())
    .execute(&pool)
    .await
    .unwrap();

    let (code, report) = run_json(&db, &["verify", "--json"], &key).await;
    assert_eq!(code, 1, "{report}");
    let found: BTreeSet<(String, String, i64)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["aggregate_id"].as_str().unwrap().to_string(),
                f["sequence"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, i64)> = [
        ("altered", &ids[1], 2),
        ("deleted", &ids[2], 3),
        ("reordered", &ids[3], 2),
        ("deleted", &ids[4], lasts[4]),
        ("altered", &ids[5], lasts[5]),
        ("inserted", &ids[0], lasts[0] + 1),
    ]
    .into_iter()
    .map(|(k, id, s)| (k.to_string(), id.clone(), s))
    .collect();
    assert_eq!(found, expected, "{report}");
    assert_eq!(report["checkpoints"][0]["ok"], false, "{report}");
    assert_eq!(report["checkpoints"][0]["signature_ok"], true, "{report}");

    // Text form names them too.
    let (_, out, _) = run(&db, &["verify"], &key).await;
    assert!(
        out.contains(&format!("DELETED {} sequence 3", ids[2])),
        "{out}"
    );
    assert!(
        out.contains(&format!("INSERTED {} sequence {}", ids[0], lasts[0] + 1)),
        "{out}"
    );
}

#[tokio::test]
async fn test_replay_erase_leaves_no_personal_data_and_replay_still_works() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let email = "forget.me@example.net";
    let phone = "+14155557654";
    let (status, body) = server
        .post(
            "/v1/accounts",
            serde_json::json!({"email": email, "phone": phone, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let account = body["account_id"].as_str().unwrap().to_string();
    server.token(email, PASSWORD).await;
    server.login(email, "wrong-password-z").await;
    let keep = server.register("keep.me@example.net", PASSWORD).await;
    // A side row with personal data (an API key's last client address) goes with the account.
    let pool = db.pool().await;
    for owner in [&account, &keep] {
        sqlx::query("insert into api_key_usage (key_id, account_id, last_used_ms, last_ip) values ($1, $2, 1, '198.51.100.23')")
            .bind(format!("key-of-{owner}"))
            .bind(owner)
            .execute(&pool)
            .await
            .unwrap();
    }

    let (code, v) = run_json(&db, &["erase", "--account", &account, "--json"], &[]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["identifier_claims_removed"], 2);
    assert_eq!(v["side_rows_removed"], 1);
    let left: Vec<String> = sqlx::query_scalar("select account_id from api_key_usage")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, vec![keep.clone()]);
    let (code, _, err) = run(&db, &["erase", "--account", "no-such-account"], &[]).await;
    assert_eq!(code, 2, "{err}");

    server.token("keep.me@example.net", PASSWORD).await;
    server.kill().await;

    let pool = db.pool().await;
    let (wrapped, destroyed): (Vec<u8>, Option<i64>) =
        sqlx::query_as("select wrapped_key, destroyed_ms from account_keys where account_id = $1")
            .bind(&account)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(wrapped.is_empty());
    assert!(destroyed.is_some());

    // Replay still works: chains verify, read models rebuild identically.
    let (code, out, _) = run(&db, &["verify"], &[]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = run(&db, &["rebuild"], &[]).await;
    assert_eq!(code, 0, "{out}");

    // State and export show the sealed fields as erased, and only for that account.
    let (code, v) = run_json(&db, &["state", "--account", &account, "--json"], &[]).await;
    assert_eq!(code, 0);
    assert_eq!(v["contacts"]["email"], "erased");
    assert_eq!(v["contacts"]["phone"], "erased");
    let (code, v) = run_json(&db, &["state", "--account", &keep, "--json"], &[]).await;
    assert_eq!(code, 0);
    assert_eq!(v["contacts"]["email"], "sealed");
    let (code, export, _) = run(&db, &["export", "--account", &account], &[]).await;
    assert_eq!(code, 0);
    let registered: Value = serde_json::from_str(export.lines().next().unwrap()).unwrap();
    let fact = &registered["payload"]["fact"]["AccountRegistered"];
    assert_eq!(fact["email"]["sealed"], "erased", "{registered}");
    assert_eq!(fact["phone"]["sealed"], "erased", "{registered}");

    // No table, the rebuild's shadow tables included, holds the email or phone in clear.
    let tables: Vec<(String, String)> = sqlx::query_as(
        "select table_schema::text, table_name::text from information_schema.tables
          where table_schema in ('public', 'gatehouse_rebuild') and table_type = 'BASE TABLE'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(tables.len() >= 10, "{tables:?}");
    let needles = [email, "forget.me", "14155557654"];
    for (schema, table) in &tables {
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("select t::text from {schema}.{table} t"))
                .fetch_all(&pool)
                .await
                .unwrap();
        for row in rows {
            for needle in needles {
                assert!(
                    !row.contains(needle),
                    "{schema}.{table} holds {needle}: {row}"
                );
            }
        }
    }
    for needle in needles {
        assert!(!export.contains(needle));
    }
}

#[tokio::test]
async fn test_replay_backtest_reports_accounts_a_policy_would_lock_differently() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    // Three failures then a success: never locked under the default threshold of 5.
    let careless = server.register("careless@example.com", PASSWORD).await;
    for _ in 0..3 {
        server
            .login("careless@example.com", "wrong-password-c")
            .await;
    }
    server.token("careless@example.com", PASSWORD).await;
    // Six failures: locked at the fifth, the sixth refused.
    let attacked = server.register("attacked@example.com", PASSWORD).await;
    for _ in 0..6 {
        server
            .login("attacked@example.com", "wrong-password-a")
            .await;
    }
    let calm = server.register("calm@example.com", PASSWORD).await;
    server.token("calm@example.com", PASSWORD).await;
    server.kill().await;

    let pool = db.pool().await;
    let careless_failures = failure_sequences(&pool, &careless).await;
    let attacked_failures = failure_sequences(&pool, &attacked).await;
    assert_eq!(careless_failures.len(), 3);
    assert_eq!(
        attacked_failures.len(),
        5,
        "the sixth attempt was refused unchecked"
    );
    let strict = tmp("strict.toml");
    std::fs::write(&strict, "threshold = 3\nlock_seconds = 600\n").unwrap();
    let (code, v) = run_json(
        &db,
        &["backtest", "--policy", strict.to_str().unwrap(), "--json"],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{v}");
    let would = v["would_have_been_locked"].as_array().unwrap();
    assert_eq!(would.len(), 1, "{v}");
    assert_eq!(would[0]["account"], careless.as_str());
    assert_eq!(
        would[0]["simulated_locks"][0]["failure_sequences"],
        serde_json::json!(careless_failures)
    );
    assert_eq!(
        would[0]["successes_that_would_have_been_refused"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{v}"
    );
    let changed = v["locked_differently"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{v}");
    assert_eq!(changed[0]["account"], attacked.as_str());
    assert_eq!(
        changed[0]["simulated_locks"][0]["failure_sequences"],
        serde_json::json!(attacked_failures[..3])
    );
    assert_eq!(
        changed[0]["actual_locks"][0]["failure_sequences"],
        serde_json::json!(attacked_failures)
    );
    let text = serde_json::to_string(&v).unwrap();
    assert!(!text.contains(&calm), "unchanged accounts are not reported");

    let lax = tmp("lax.json");
    std::fs::write(&lax, r#"{"threshold": 10}"#).unwrap();
    let (code, v) = run_json(
        &db,
        &["backtest", "--policy", lax.to_str().unwrap(), "--json"],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{v}");
    let not = v["would_not_have_been_locked"].as_array().unwrap();
    assert_eq!(not.len(), 1, "{v}");
    assert_eq!(not[0]["account"], attacked.as_str());
    assert_eq!(
        not[0]["refused_attempts_with_unknown_outcome"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "the sixth attempt was never checked: {v}"
    );

    let bad = tmp("bad.toml");
    std::fs::write(&bad, "threshold = 0\n").unwrap();
    let (code, _, err) = run(&db, &["backtest", "--policy", bad.to_str().unwrap()], &[]).await;
    assert_eq!(code, 2, "{err}");
}

#[tokio::test]
async fn test_replay_state_shows_second_factors_keys_and_whitelist_as_of_an_instant() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let email = "factors.state@example.net";
    let account = server.register(email, PASSWORD).await;
    let token = server.token(email, PASSWORD).await;
    let before = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (secret, _) = super::e2e_second_factor::enrol(&server, &token).await;
    // API keys need a stepped-up session: with a factor enrolled, a current one.
    let (status, body) = super::e2e_second_factor::send(
        &server,
        reqwest::Method::POST,
        "/v1/me/step-up",
        &token,
        serde_json::json!({"proof": {"method": "totp", "code": super::e2e_second_factor::totp_at_step(&secret, super::e2e_second_factor::now_step() + 1)}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = super::e2e_second_factor::send(
        &server,
        reqwest::Method::POST,
        "/v1/me/api-keys",
        &token,
        serde_json::json!({"name": "reader", "scopes": ["read"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let (code, v) = run_json(&db, &["state", "--account", &account, "--json"], &[]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["second_factors"]["totp"], true, "{v}");
    assert_eq!(v["second_factors"]["backup_codes_left"], 10);
    assert_eq!(v["second_factors"]["security_keys"], serde_json::json!([]));
    let evidence: Vec<&str> = v["second_factors"]["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().or(e["what"].as_str()).unwrap_or(""))
        .collect();
    assert_eq!(evidence.len(), 2, "{v}");
    assert_eq!(v["api_keys"][0]["name"], "reader");
    assert_eq!(v["api_keys"][0]["status"], "active");
    assert_eq!(v["withdrawal_whitelist"]["whitelist_only"], false);
    assert!(v["recovery"].is_null());

    // As of before the enrolment: nothing of it.
    let at = before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (code, v) = run_json(
        &db,
        &["state", "--account", &account, "--at", &at, "--json"],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["second_factors"]["totp"], false, "{v}");
    assert_eq!(v["api_keys"], serde_json::json!([]));
    let (code, text, _) = run(&db, &["state", "--account", &account], &[]).await;
    assert_eq!(code, 0);
    assert!(
        text.contains("second factors: totp on, 10 backup code(s) left"),
        "{text}"
    );
}
