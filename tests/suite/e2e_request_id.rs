//! Request ids and the executor's commit signal, over HTTP against the real binary: the id is
//! echoed (or replaced when unsafe), stored in the metadata of the events the request wrote, and
//! carried by JSON log lines; the read side catches up after a commit without any handler
//! nudging it.
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use super::support::{fast_env, Server, TestDb, PASSWORD};

const HEADER: &str = "x-request-id";

async fn sign_up(server: &Server, email: &str, request_id: &str) -> (String, String) {
    let response = server
        .http
        .post(format!("{}/v1/accounts", server.base))
        .header(HEADER, request_id)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let echoed = response.headers()[HEADER].to_str().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    (body["account_id"].as_str().unwrap().to_string(), echoed)
}

#[tokio::test]
async fn test_request_ids_are_echoed_replaced_when_unsafe_and_stored_with_events() {
    let db = TestDb::new().await;
    let mut env = fast_env();
    env.insert("GATEHOUSE_LOG_FORMAT".into(), "json".into());
    env.insert("GATEHOUSE_LOG".into(), "info,tower_http=debug".into());
    let server = Server::start(Some(&db.url), &env).await;

    // A safe id is kept and echoed, and the events the request wrote carry it.
    let id = "req-Safe_1.2-3";
    let (account_id, echoed) = sign_up(&server, "rid@example.com", id).await;
    assert_eq!(echoed, id);
    let metadata: Vec<String> = sqlx::query_scalar::<_, String>(
        "select metadata::text from events where aggregate_id = $1",
    )
    .bind(&account_id)
    .fetch_all(&db.pool().await)
    .await
    .unwrap();
    assert!(!metadata.is_empty());
    for m in &metadata {
        let m: Value = serde_json::from_str(m).unwrap();
        assert_eq!(m["request_id"], id, "{m}");
        assert!(m["recorded_by"].as_str().unwrap().starts_with("gatehouse/"));
        assert!(!m.to_string().contains("rid@"), "{m}");
    }

    // 64 characters is the longest id kept; 65, a space or a slash gets a fresh UUID.
    let longest = "a".repeat(64);
    for (raw, kept) in [
        (longest.as_str(), true),
        (&"a".repeat(65)[..], false),
        ("has space", false),
        ("a/b", false),
    ] {
        let response = server
            .http
            .get(format!("{}/healthz", server.base))
            .header(HEADER, raw)
            .send()
            .await
            .unwrap();
        let echoed = response.headers()[HEADER].to_str().unwrap().to_string();
        if kept {
            assert_eq!(echoed, raw);
        } else {
            assert_ne!(echoed, raw);
            assert!(uuid::Uuid::parse_str(&echoed).is_ok(), "{echoed}");
        }
    }
    // Without one, errors included, a generated one.
    let response = server
        .http
        .get(format!("{}/no/such/path", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert!(uuid::Uuid::parse_str(response.headers()[HEADER].to_str().unwrap()).is_ok());

    // JSON logs: every line is one JSON object; the request's lines carry its id and route,
    // never the identifier typed.
    let (status, _) = server.login("rid@example.com", "wrong-password-123").await;
    assert_eq!(status, 401);
    let mut seen = false;
    for _ in 0..50 {
        seen = server.logs().contains(id);
        if seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "no log line names the request id");
    let logs = server.logs();
    for line in logs.lines() {
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(parsed.is_object(), "{line}");
    }
    let line = logs
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["span"]["request_id"] == id)
        .expect("a line in the request's span");
    assert_eq!(line["span"]["route"], "/v1/accounts");
    assert_eq!(line["span"]["method"], "POST");
    assert!(!logs.contains("rid@example.com"));
    assert!(!logs.contains(PASSWORD));
    server.kill().await;
}

#[tokio::test]
async fn test_login_history_shows_a_sign_in_right_away_without_a_nudge() {
    let db = TestDb::new().await;
    let mut env = fast_env();
    // No gathering delay: the history is current as soon as the runner wakes.
    env.insert("GATEHOUSE_PROJECTION_COALESCE_MS".into(), "0".into());
    let server = Server::start(Some(&db.url), &env).await;
    server.register("hist@example.com", PASSWORD).await;
    let token = server.token("hist@example.com", PASSWORD).await;
    // Without the signal, a sign-in waits for the poll: 0 to 500 ms, 250 on average. The median
    // of nine rounds stays far below that when commits wake the runner, even on a busy machine.
    let mut waits = Vec::new();
    for round in 1..=9 {
        let (status, _) = server.login("hist@example.com", PASSWORD).await;
        assert_eq!(status, 200);
        let started = Instant::now();
        loop {
            let (_, page) = server
                .authed(Method::GET, "/v1/me/login-history?limit=100", &token)
                .await;
            // The first sign-in and this round's.
            if page["entries"].as_array().map_or(0, Vec::len) > round {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "round {round}: the sign-in is not in the history"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        waits.push(started.elapsed());
    }
    waits.sort();
    assert!(
        waits[4] < Duration::from_millis(120),
        "median wait {:?} (all: {waits:?})",
        waits[4]
    );
    server.kill().await;
}
