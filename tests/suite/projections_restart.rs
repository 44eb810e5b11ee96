//! Kill the server with SIGKILL while it writes, restart it, and the read models must equal a
//! rebuild from the first event: checkpoints move in the same transaction as the rows.
use std::time::Duration;

use gatehouse_projections::ProjectionRunner;
use sqlx::PgPool;

use super::alerts_rules::settle_every;
use super::support::{eventually, fast_env, Server, TestDb, PASSWORD};

/// The read models of the first issues and their keys.
const CORE_TABLES: [(&str, &str); 5] = [
    ("lockout_state_v1", "account_id"),
    ("login_history_v1", "account_id, sequence"),
    ("sessions_v1", "session_id"),
    ("notification_outbox_v1", "id"),
    ("notification_contacts_v1", "account_id"),
];

/// The read models of later issues that the kill test and the batch test also compare.
const LATER_TABLES: [(&str, &str); 1] = [("activity_v1", "account_id, sequence")];

async fn snapshot(pool: &PgPool) -> Vec<String> {
    let mut rows = super::support::table_rows(pool, &CORE_TABLES).await;
    rows.extend(super::support::table_rows(pool, &LATER_TABLES).await);
    // `updated_ms` records when a row was written, not what it says.
    rows.into_iter().map(|r| strip_updated(&r)).collect()
}

fn strip_updated(row: &str) -> String {
    match row.find(",\"updated_ms\":") {
        Some(i) => {
            let rest = &row[i + 1..];
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            format!("{}{}", &row[..i], &rest[end..])
        }
        None => row.to_string(),
    }
}

#[tokio::test]
async fn test_kill_and_restart_leaves_read_models_equal_to_a_rebuild() {
    let db = TestDb::new().await;
    let env = fast_env();
    let server = Server::start(Some(&db.url), &env).await;
    for i in 0..4 {
        server
            .register(&format!("k{i}@example.com"), PASSWORD)
            .await;
    }
    // Traffic in flight when the process dies.
    let http = server.http.clone();
    let base = server.base.clone();
    let traffic = tokio::spawn(async move {
        for round in 0..200 {
            let i = round % 4;
            let password = if round % 3 == 0 {
                PASSWORD.to_string()
            } else {
                format!("wrong-{round}-password")
            };
            let _ = http
                .post(format!("{base}/v1/login"))
                .json(&serde_json::json!({"identifier": format!("k{i}@example.com"), "password": password}))
                .send()
                .await;
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.kill().await;
    let _ = traffic.await;

    let pool = db.pool().await;
    let events: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        events > 4,
        "the kill should land mid-traffic ({events} events)"
    );

    let restarted = Server::start(Some(&db.url), &env).await;
    restarted.token("k0@example.com", PASSWORD).await;
    let store = db.store().await;
    let expected = ProjectionRunner::standard(store.clone())
        .projections()
        .len() as i64;
    eventually("projections reach the head", || {
        let (pool, store) = (pool.clone(), store.clone());
        async move {
            // The head moves while the delivery worker records outcomes, and a transaction
            // becomes readable only once older ones (other tests' too) finished: require that
            // nothing lies beyond the head and that every checkpoint reached it.
            let Some(head) = store.stream_head().await.unwrap() else {
                return false;
            };
            let beyond: i64 = sqlx::query_scalar(
                "select count(*) from events where (tx_id::text::bigint, global_position) > ($1, $2)",
            )
            .bind(head.tx)
            .bind(head.pos)
            .fetch_one(&pool)
            .await
            .unwrap();
            let behind: i64 = sqlx::query_scalar(
                "select count(*) from projection_checkpoints where (tx_id, position) < ($1, $2)",
            )
            .bind(head.tx)
            .bind(head.pos)
            .fetch_one(&pool)
            .await
            .unwrap();
            let total: i64 = sqlx::query_scalar("select count(*) from projection_checkpoints")
                .fetch_one(&pool)
                .await
                .unwrap();
            beyond == 0 && total == expected && behind == 0
        }
    })
    .await;
    restarted.kill().await;
    // An outcome the worker recorded between the check and the kill is applied here, by the
    // same runner code, before the live tables are compared with a rebuild.
    settle_every(&ProjectionRunner::standard(store.clone()), &pool).await;

    let live = snapshot(&pool).await;
    assert!(live.iter().any(|r| r.starts_with("login_history_v1")));
    let runner = ProjectionRunner::standard(store.clone());
    let rebuilt_count = runner.rebuild().await.unwrap();
    settle_every(&runner, &pool).await;
    assert!(rebuilt_count > 0);
    let rebuilt = snapshot(&pool).await;
    assert_eq!(live, rebuilt);
}

/// Every read model's rows, `updated_ms` included (both sides below are rebuilds of one stream).
async fn every_read_model(pool: &PgPool) -> Vec<String> {
    let mut rows = super::support::table_rows(pool, &CORE_TABLES).await;
    rows.extend(super::support::table_rows(pool, &LATER_TABLES).await);
    rows.extend(super::support::table_rows(pool, &[("recovery_cases_v1", "flow_id")]).await);
    rows.extend(super::support::table_rows(pool, &super::support::ALERT_TABLES).await);
    rows
}

/// The set-based writes fold a whole batch per row (lockout, sessions, outbox, alerts): a
/// rebuild in one batch must equal a rebuild one event per batch, where nothing is folded. The
/// traffic interleaves, on the same rows, every kind of change those folds merge: failures,
/// a lock and refusals, sign-ins, sessions ended, new devices and IPs.
#[tokio::test]
async fn test_one_batch_equals_one_event_per_batch() {
    let db = TestDb::new().await;
    let mut env = fast_env();
    env.insert("GATEHOUSE_TRUSTED_PROXIES".into(), "127.0.0.1".into());
    let server = Server::start(Some(&db.url), &env).await;
    for i in 0..3 {
        server
            .register(&format!("f{i}@example.com"), PASSWORD)
            .await;
    }
    let login = |i: usize, password: &'static str, device: &'static str, ip: &'static str| {
        server
            .http
            .post(format!("{}/v1/login", server.base))
            .header("x-forwarded-for", ip)
            .json(&serde_json::json!({
                "identifier": format!("f{i}@example.com"),
                "password": password,
                "device_id": device,
            }))
            .send()
    };
    for i in 0..3 {
        for _ in 0..2 {
            login(i, "wrong-password-entirely", "d1", "198.51.100.1")
                .await
                .unwrap();
        }
        let r = login(i, PASSWORD, "d1", "198.51.100.1").await.unwrap();
        let token = r.json::<serde_json::Value>().await.unwrap()["session_token"]
            .as_str()
            .unwrap()
            .to_string();
        login(i, "wrong-password-entirely", "d2", "198.51.100.2")
            .await
            .unwrap();
        let r = server
            .http
            .post(format!("{}/v1/logout", server.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
        // A second device and IP, then enough failures to lock, then refusals while locked.
        login(i, PASSWORD, "d2", "198.51.100.2").await.unwrap();
        for _ in 0..7 {
            login(i, "wrong-password-entirely", "d3", "198.51.100.3")
                .await
                .unwrap();
        }
    }
    server.kill().await;

    let pool = db.pool().await;
    let store = db.store().await;
    let locked: i64 = sqlx::query_scalar(
        "select count(*) from events where event_type in ('AccountLocked', 'LoginRejectedWhileLocked')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        locked >= 6,
        "the traffic should lock every account ({locked})"
    );

    let runner = ProjectionRunner::standard(store.clone()).with_batch(10_000);
    runner.rebuild().await.unwrap();
    settle_every(&runner, &pool).await;
    let folded = every_read_model(&pool).await;
    let runner = ProjectionRunner::standard(store.clone()).with_batch(1);
    runner.rebuild().await.unwrap();
    settle_every(&runner, &pool).await;
    let one_by_one = every_read_model(&pool).await;
    assert!(folded.iter().any(|r| r.starts_with("sessions_v1")));
    assert!(folded.iter().any(|r| r.starts_with("alerts_v1")));
    assert!(folded
        .iter()
        .any(|r| r.starts_with("lockout_state_v1") && r.contains("\"lock_level\":1")));
    assert_eq!(folded, one_by_one);
}

/// Between batches the runner keeps where the slowest read model stood instead of asking the
/// database, and takes the checkpoints again under its locks. A read model emptied meanwhile
/// (its checkpoint moved back, as a rebuild does) is refilled from its own checkpoint, not from
/// where the runner read last, and read models another process moved ahead are left as they are.
#[tokio::test]
async fn test_a_checkpoint_moved_back_between_batches_is_refilled_not_skipped() {
    let db = TestDb::new().await;
    let env = fast_env();
    let server = Server::start(Some(&db.url), &env).await;
    server.register("m0@example.com", PASSWORD).await;
    server.token("m0@example.com", PASSWORD).await;
    server.kill().await;
    let pool = db.pool().await;
    let store = db.store().await;
    let runner = ProjectionRunner::standard(store.clone());
    while runner.run_once().await.unwrap() > 0 {}

    // Another process applies more events, then one read model is emptied.
    let server = Server::start(Some(&db.url), &env).await;
    server.register("m1@example.com", PASSWORD).await;
    server.token("m1@example.com", PASSWORD).await;
    server.kill().await;
    settle_every(&ProjectionRunner::standard(store.clone()), &pool).await;
    let emptied = runner
        .projections()
        .iter()
        .find(|p| p.tables().contains(&"login_history_v1"))
        .expect("the login history read model")
        .clone();
    for table in emptied.tables() {
        sqlx::query(&format!("delete from {table}"))
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query("delete from projection_checkpoints where projection = $1")
        .bind(emptied.name())
        .execute(&pool)
        .await
        .unwrap();

    while runner.run_once().await.unwrap() > 0 {}
    let live = snapshot(&pool).await;
    assert!(
        live.iter()
            .filter(|r| r.starts_with("login_history_v1"))
            .count()
            >= 2,
        "both accounts' sign-ins are back: {live:?}"
    );
    let rebuilder = ProjectionRunner::standard(store.clone());
    rebuilder.rebuild().await.unwrap();
    settle_every(&rebuilder, &pool).await;
    assert_eq!(live, snapshot(&pool).await);
}
