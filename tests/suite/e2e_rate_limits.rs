//! Rate limits of the unauthenticated routes, against the real binary: one shared budget across
//! three server processes on one PostgreSQL database, and the same through a real Redis; the
//! 429 shape; a specific setting winning over the generic one; Redis down ⇒ fail open, counted.
//!
//! Slack: none beyond the GCRA refill. A limit of N a minute admits a burst of N and then one
//! request every 60/N s, so a burst that takes `elapsed` may see `elapsed / (60/N s)` more
//! admitted; the assertions allow exactly that (N = 3: one more per 20 s).
use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::support::{assert_error_shape, fast_env, Server, TestDb, METRICS_TOKEN, PASSWORD};

/// The limit the shared-budget tests set.
const N: u32 = 3;

/// Where the tests find Redis (`scripts/test` sets it).
fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

fn env(extra: &[(&str, String)]) -> HashMap<String, String> {
    let mut env = fast_env();
    for (k, v) in extra {
        env.insert(k.to_string(), v.clone());
    }
    env
}

/// A Redis key prefix of this test alone, so runs and tests never share a budget.
fn redis_env() -> Vec<(&'static str, String)> {
    vec![
        ("GATEHOUSE_REDIS_URL", redis_url()),
        (
            "GATEHOUSE_REDIS_PREFIX",
            format!("gh-test-{}:", uuid::Uuid::new_v4().simple()),
        ),
    ]
}

async fn three(db: &TestDb, env: &HashMap<String, String>) -> Vec<Server> {
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(Server::start(Some(&db.url), env).await);
    }
    servers
}

/// Sends `count` requests round-robin over `servers` (request `i` built by `body(i)`); answers
/// how many were admitted (anything but `429 rate_limited`), and the GCRA refill allowance for
/// the time it took.
async fn burst(
    servers: &[Server],
    path: &str,
    count: usize,
    body: impl Fn(usize) -> Value,
) -> (u32, u32) {
    let start = Instant::now();
    let mut admitted = 0;
    for i in 0..count {
        let (status, answer) = servers[i % servers.len()].post(path, body(i)).await;
        if status == 429 && answer["error"]["code"] == "rate_limited" {
            assert_error_shape(&answer, "rate_limited");
        } else {
            assert!(status < 500, "{path}: {status} {answer}");
            admitted += 1;
        }
    }
    let refill = u32::try_from(start.elapsed().as_secs() / u64::from(60 / N)).unwrap_or(u32::MAX);
    (admitted, refill)
}

fn assert_at_most_n(what: &str, (admitted, refill): (u32, u32)) {
    assert!(
        admitted >= N && admitted <= N + refill,
        "{what}: {admitted} admitted across three processes; the limit is {N} a minute (+{refill} refilled)"
    );
}

async fn metrics_text(server: &Server) -> String {
    let r = server
        .http
        .get(format!("{}/metrics", server.base))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    r.text().await.unwrap()
}

async fn refusals_in_metrics(servers: &[Server], route: &str) -> u64 {
    let mut total = 0;
    for s in servers {
        let text = metrics_text(s).await;
        let line = format!("gatehouse_rate_limited_total{{route=\"{route}\",key=\"ip\"}} ");
        total += text
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {line} in /metrics:\n{text}"));
    }
    total
}

/// Sign-up, sign-in and forgot-password, each limited to N a minute per IP, bursting 3N from
/// 127.0.0.1 over three processes.
async fn shared_budget(extra: &[(&str, String)]) {
    let db = TestDb::new().await;
    let mut settings = vec![
        (
            "GATEHOUSE_RATE_LIMIT_SIGNUP_PER_IP_PER_MINUTE",
            N.to_string(),
        ),
        (
            "GATEHOUSE_RATE_LIMIT_LOGIN_PER_IP_PER_MINUTE",
            N.to_string(),
        ),
        (
            "GATEHOUSE_RATE_LIMIT_FORGOT_PER_IP_PER_MINUTE",
            N.to_string(),
        ),
    ];
    settings.extend_from_slice(extra);
    let servers = three(&db, &env(&settings)).await;
    let count = 3 * N as usize;

    let tag = uuid::Uuid::new_v4().simple().to_string();
    let signups = burst(
        &servers,
        "/v1/accounts",
        count,
        |i| json!({"email": format!("flood{i}-{tag}@example.com"), "password": PASSWORD}),
    )
    .await;
    assert_at_most_n("sign-up", signups);
    assert_eq!(
        refusals_in_metrics(&servers, "signup").await,
        u64::from(count as u32 - signups.0),
        "every refusal is counted once, by the process that refused it"
    );

    let logins = burst(
        &servers,
        "/v1/login",
        count,
        |i| json!({"identifier": format!("nobody{i}-{tag}@example.com"), "password": PASSWORD}),
    )
    .await;
    assert_at_most_n("sign-in", logins);

    let forgot = burst(
        &servers,
        "/v1/password/forgot",
        count,
        |i| json!({"identifier": format!("lost{i}-{tag}@example.com")}),
    )
    .await;
    assert_at_most_n("forgot-password", forgot);
}

#[tokio::test]
async fn test_three_processes_on_one_postgresql_share_each_limit() {
    shared_budget(&[]).await;
}

#[tokio::test]
async fn test_three_processes_on_one_redis_share_each_limit() {
    shared_budget(&redis_env()).await;
}

#[tokio::test]
async fn test_a_refusal_is_429_rate_limited_with_retry_after_and_the_specific_setting_wins() {
    let db = TestDb::new().await;
    let server = Server::start(
        Some(&db.url),
        &env(&[
            // Generous generic limit, strict specific one: the specific one applies.
            ("GATEHOUSE_RATE_LIMIT_PER_IP_PER_MINUTE", "1000".to_string()),
            (
                "GATEHOUSE_RATE_LIMIT_FORGOT_PER_IP_PER_MINUTE",
                "1".to_string(),
            ),
        ]),
    )
    .await;
    let forgot = |who: &str| json!({"identifier": format!("{who}@example.com")});
    let (status, body) = server.post("/v1/password/forgot", forgot("a")).await;
    assert_eq!(status, 202, "{body}");
    let r = server
        .http
        .post(format!("{}/v1/password/forgot", server.base))
        .json(&forgot("b"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let header: i64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header in seconds");
    let body: Value = r.json().await.unwrap();
    assert_error_shape(&body, "rate_limited");
    let retry_after = body["error"]["retry_after"].as_i64().expect("retry_after");
    assert_eq!(retry_after, header);
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // The generic limit still governs the routes without a specific setting.
    for who in ["c", "d", "e"] {
        let (status, body) = server.post("/v1/unlock/request", forgot(who)).await;
        assert_eq!(status, 202, "{body}");
    }
}

#[tokio::test]
async fn test_a_misspelt_limit_setting_stops_the_start_with_its_name() {
    let db = TestDb::new().await;
    let stderr = Server::try_start(
        Some(&db.url),
        &env(&[(
            "GATEHOUSE_RATE_LIMIT_SINGUP_PER_IP_PER_MINUTE",
            "5".to_string(),
        )]),
    )
    .await
    .err()
    .expect("the server must refuse to start");
    assert!(
        stderr.contains("GATEHOUSE_RATE_LIMIT_SINGUP_PER_IP_PER_MINUTE"),
        "{stderr}"
    );
}

#[tokio::test]
async fn test_with_redis_down_requests_are_served_and_counted() {
    let db = TestDb::new().await;
    // Nothing listens on port 1.
    let server = Server::start(
        Some(&db.url),
        &env(&[
            ("GATEHOUSE_REDIS_URL", "redis://127.0.0.1:1".to_string()),
            ("GATEHOUSE_LOG", "warn".to_string()),
            (
                "GATEHOUSE_RATE_LIMIT_SIGNUP_PER_IP_PER_MINUTE",
                "1".to_string(),
            ),
        ]),
    )
    .await;
    for i in 0..3 {
        let (status, body) = server
            .post(
                "/v1/accounts",
                json!({"email": format!("open{i}@example.com"), "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, 201, "fail open: {body}");
    }
    let text = metrics_text(&server).await;
    let failed_open: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("gatehouse_rate_limit_failed_open_total{backend=\"redis\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no failed-open counter in /metrics:\n{text}"));
    assert!(failed_open >= 3, "{failed_open}\n{text}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        server.logs().contains("rate limiter unavailable"),
        "{}",
        server.logs()
    );
}
