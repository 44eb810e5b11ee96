//! Read routes served from a PostgreSQL streaming replica (issue #23, item 5): with
//! `GATEHOUSE_READ_DATABASE_URL`, the read-only routes read their read models from the replica
//! and still show the caller's own writes (the account's head from the primary, the checkpoints
//! from the replica). With the replica's replay paused, a read says `stale: true` after the wait
//! while writes go on, which shows the reads really come from the replica; resumed, it catches
//! up. With the replica down, reads answer `503 unavailable` and `/readyz` stays ready, saying
//! so. A read URL that is not a replica of the primary's database refuses to start.
//!
//! The test makes its own primary and standby ([`Cluster::start`], [`Cluster::replica`]: initdb,
//! then `pg_basebackup -R -X stream` on a second free port), never touching the shared server.
//! Without the PostgreSQL tools it is skipped with a message, except under `CI=true`, where that
//! fails.
use std::collections::HashMap;

use gatehouse_testkit::Cluster;
use serde_json::Value;

use super::support::{admin_url, eventually, fast_env, Server, PASSWORD};

/// How long a read waits for the caller's own latest event (the paused-replay read waits all of it).
const READ_YOUR_WRITES_MS: &str = "3000";

/// The primary and its replica, or why they cannot be had (skipped outside CI).
fn clusters() -> Option<(Cluster, Cluster)> {
    let made = Cluster::start().and_then(|primary| {
        let replica = primary.replica()?;
        Ok((primary, replica))
    });
    match made {
        Ok(pair) => Some(pair),
        Err(why) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!(
                "SKIPPED e2e_read_replica: cannot start a throwaway PostgreSQL primary and a \
                 pg_basebackup replica: {why}"
            );
            None
        }
        Err(why) => panic!("CI=true: a throwaway primary and replica are required: {why}"),
    }
}

fn env_with_replica(replica: &str) -> HashMap<String, String> {
    let mut env = fast_env();
    env.insert(
        "GATEHOUSE_READ_DATABASE_URL".to_string(),
        replica.to_string(),
    );
    env.insert(
        "GATEHOUSE_READ_YOUR_WRITES_MS".to_string(),
        READ_YOUR_WRITES_MS.to_string(),
    );
    env.insert(
        "GATEHOUSE_DB_ACQUIRE_TIMEOUT_MS".to_string(),
        "1000".to_string(),
    );
    env
}

/// `GET path` with the session: status, `Retry-After` and body.
async fn read(server: &Server, path: &str, token: &str) -> (u16, Option<String>, Value) {
    let response = server
        .http
        .get(format!("{}{path}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (
        status,
        retry_after,
        response.json().await.unwrap_or_default(),
    )
}

/// `/readyz`: status and what it says of the read replica.
async fn readyz(server: &Server) -> (u16, Option<String>) {
    let (status, body) = server.authed(reqwest::Method::GET, "/readyz", "").await;
    (status, body["read_replica"].as_str().map(str::to_string))
}

fn succeeded_sign_ins(history: &Value) -> usize {
    history["entries"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["outcome"] == "succeeded").count())
        .unwrap_or(0)
}

fn sign_ins_in_activity(activity: &Value) -> usize {
    activity["entries"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["kind"] == "sign_in").count())
        .unwrap_or(0)
}

async fn on(url: &str, sql: &str) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

async fn replay_paused(url: &str) -> bool {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let state: String = sqlx::query_scalar("select pg_get_wal_replay_pause_state()")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    // `pause requested` already stops replay before the next WAL record.
    state != "not paused"
}

#[tokio::test]
async fn test_read_routes_read_the_replica_with_read_your_writes_and_fail_alone() {
    let Some((primary, replica)) = clusters() else {
        return;
    };
    let server = Server::start(Some(&primary.url()), &env_with_replica(&replica.url())).await;
    assert_eq!(readyz(&server).await, (200, Some("ok".to_string())));

    // Read your own writes through the replica: the sign-in is there at the first read.
    server.register("replica@example.com", PASSWORD).await;
    let token = server.token("replica@example.com", PASSWORD).await;
    let (status, _, history) = read(&server, "/v1/me/login-history", &token).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history.get("stale"), None, "{history}");
    assert_eq!(succeeded_sign_ins(&history), 1, "{history}");
    let (status, _, activity) = read(&server, "/v1/me/activity", &token).await;
    assert_eq!(status, 200, "{activity}");
    assert_eq!(activity.get("stale"), None, "{activity}");
    assert_eq!(sign_ins_in_activity(&activity), 1, "{activity}");

    // Replay paused on the replica: writes go on (to the primary, whose read model applies
    // them), but a read cannot see them: it says so after the wait. Reads come from the replica.
    on(&replica.url(), "select pg_wal_replay_pause()").await;
    let standby = replica.url();
    eventually("the replica's replay is paused", || {
        let standby = standby.clone();
        async move { replay_paused(&standby).await }
    })
    .await;
    let token = server.token("replica@example.com", PASSWORD).await;
    let primary_url = primary.url();
    eventually("the primary's login history has the second sign-in", || {
        let primary_url = primary_url.clone();
        async move {
            let pool = sqlx::PgPool::connect(&primary_url).await.unwrap();
            let n: i64 = sqlx::query_scalar(
                "select count(*) from login_history_v1 where outcome = 'succeeded'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            pool.close().await;
            n == 2
        }
    })
    .await;
    let (status, _, history) = read(&server, "/v1/me/login-history", &token).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["stale"], true, "{history}");
    assert_eq!(succeeded_sign_ins(&history), 1, "{history}");

    // Resumed: the replica catches up, and the read shows the second sign-in, fresh.
    on(&replica.url(), "select pg_wal_replay_resume()").await;
    let (status, _, history) = read(&server, "/v1/me/login-history", &token).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history.get("stale"), None, "{history}");
    assert_eq!(succeeded_sign_ins(&history), 2, "{history}");

    // The replica goes away: reads answer 503 unavailable with Retry-After, sign-ins go on, and
    // the process stays ready, saying the replica is unavailable.
    replica.stop("immediate").unwrap();
    let (status, retry_after, body) = read(&server, "/v1/me/login-history", &token).await;
    assert_eq!(
        (
            status,
            body["error"]["code"].as_str(),
            retry_after.is_some()
        ),
        (503, Some("unavailable"), true),
        "{body}"
    );
    let token = server.token("replica@example.com", PASSWORD).await;
    assert_eq!(
        readyz(&server).await,
        (200, Some("unavailable".to_string()))
    );

    // Back by itself.
    replica.start_again().unwrap();
    let (status, _, history) = read(&server, "/v1/me/login-history", &token).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history.get("stale"), None, "{history}");
    assert_eq!(succeeded_sign_ins(&history), 3, "{history}");
    assert_eq!(readyz(&server).await, (200, Some("ok".to_string())));
    drop(server);
    drop(replica);
    drop(primary);
}

#[tokio::test]
async fn test_a_read_url_that_is_no_replica_of_the_primary_refuses_to_start() {
    let Some((primary, replica)) = clusters() else {
        return;
    };
    drop(replica);
    let refused = |env: HashMap<String, String>, database: Option<String>| async move {
        match Server::try_start(database.as_deref(), &env).await {
            Ok(_) => panic!("the server started with {env:?}"),
            Err(stderr) => stderr,
        }
    };
    // Another cluster (the shared test server).
    let stderr = refused(env_with_replica(&admin_url()), Some(primary.url())).await;
    assert!(
        stderr.contains("another PostgreSQL cluster"),
        "another cluster: {stderr}"
    );
    // The right cluster, another database.
    let other_database = format!("postgres://postgres@127.0.0.1:{}/template1", primary.port);
    let stderr = refused(env_with_replica(&other_database), Some(primary.url())).await;
    assert!(
        stderr.contains("same database"),
        "another database: {stderr}"
    );
    // The embedded store has no replicas.
    let stderr = refused(env_with_replica(&primary.url()), None).await;
    assert!(
        stderr.contains("GATEHOUSE_READ_DATABASE_URL needs PostgreSQL"),
        "embedded: {stderr}"
    );
}
