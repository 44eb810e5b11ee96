//! The event stream published to NATS JetStream (issue #22), against the real binary on
//! PostgreSQL and a real NATS server with JetStream (`scripts/test` finds or starts one and
//! passes `TEST_NATS_URL`). Every test publishes to a stream and subject prefix of its own
//! (`GATEHOUSE_NATS_STREAM`, `GATEHOUSE_NATS_SUBJECT_PREFIX`), deleted at the end, so tests
//! running at once, or a NATS shared with others, never see each other's messages.
//!
//! What is checked: 10,000 events published, each exactly once after deduplication and in order
//! per aggregate, across a SIGKILL of the server while it publishes; alert changes published;
//! no payload carries a password, an email, a code or a session token; one publisher among
//! several processes, the other taking over; NATS unreachable never blocks a command.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::{json, Value};

use super::mail::SmtpSink;
use super::support::{fast_env, Server, TestDb, PASSWORD};

/// Polls `check` until it returns true, up to `within`.
async fn until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < within {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {within:?} waiting for: {what}");
}

/// Whether the publisher has published every event and every alert change: the read models
/// have applied the whole stream, and the publisher's checkpoint stands at the stream head and
/// at the alerts' latest change.
async fn caught_up(server: &Server, pool: &sqlx::PgPool) -> bool {
    let text = server.metrics().await;
    let projections_done = text
        .lines()
        .filter(|l| l.starts_with("gatehouse_projection_lag_events{"))
        .all(|l| l.ends_with(" 0"));
    if !projections_done || metric(&text, "gatehouse_nats_publisher_lag_events") != Some(0.0) {
        return false;
    }
    let pending: i64 = sqlx::query_scalar(
        "select count(*) from alerts_v1 a, stream_publishers p
          where (a.updated_tx, a.updated_pos, a.id) > (p.alerts_tx, p.alerts_pos, p.alerts_id)",
    )
    .fetch_one(pool)
    .await
    .unwrap_or(1);
    pending == 0
}

/// Where the tests find NATS (`scripts/test` sets it), or `None` when `scripts/test` found none
/// and said so (`TEST_NATS_SKIP`); with `CI=true` a missing NATS fails instead.
fn nats_url() -> Option<String> {
    if std::env::var_os("TEST_NATS_SKIP").is_some() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "NATS with JetStream is required on CI"
        );
        eprintln!("skipped: no NATS with JetStream (see scripts/test)");
        return None;
    }
    Some(std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string()))
}

/// A stream and subject prefix of this test alone, deleted when dropped.
struct TestStream {
    js: jetstream::Context,
    name: String,
    prefix: String,
}

impl TestStream {
    async fn new(url: &str) -> Self {
        let client = async_nats::connect(url).await.expect("connect to NATS");
        let tag = uuid::Uuid::new_v4().simple().to_string();
        Self {
            js: jetstream::new(client),
            name: format!("GH_TEST_{tag}"),
            prefix: format!("ghtest{tag}"),
        }
    }

    /// The server settings that publish here.
    fn env(&self, url: &str) -> HashMap<String, String> {
        let mut env = fast_env();
        env.insert("GATEHOUSE_NATS_URL".into(), url.into());
        env.insert("GATEHOUSE_NATS_STREAM".into(), self.name.clone());
        env.insert("GATEHOUSE_NATS_SUBJECT_PREFIX".into(), self.prefix.clone());
        env.insert("GATEHOUSE_NATS_LEASE_SECONDS".into(), "5".into());
        env.insert("GATEHOUSE_PROJECTION_COALESCE_MS".into(), "20".into());
        env
    }

    /// Messages stored in the stream (0 before it exists).
    async fn count(&self) -> u64 {
        match self.js.get_stream(&self.name).await {
            Ok(mut stream) => stream.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// Every stored message in stream order: (subject, Nats-Msg-Id, body).
    async fn messages(&self) -> Vec<(String, String, Value)> {
        let mut stream = self.js.get_stream(&self.name).await.expect("the stream");
        let state = stream.info().await.expect("stream info").state.clone();
        let mut out = Vec::new();
        for seq in state.first_sequence..=state.last_sequence {
            let m = stream.get_raw_message(seq).await.expect("a stored message");
            let id = m
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_string())
                .unwrap_or_default();
            let body: Value = serde_json::from_slice(&m.payload).expect("a JSON body");
            out.push((m.subject.to_string(), id, body));
        }
        out
    }

    async fn delete(self) {
        let _ = self.js.delete_stream(&self.name).await;
    }
}

/// Inserts `rounds` × `aggregates` copies of a stored event as new aggregates' events, one
/// transaction per round (so the stream holds round 1 of every aggregate, then round 2, …).
async fn bulk_events(pool: &sqlx::PgPool, template: &str, aggregates: i64, rounds: i64) {
    let (event_type, version, payload): (String, String, Value) = sqlx::query_as(
        "select event_type, event_version, payload::jsonb from events
          where aggregate_type = 'Account' and event_type = $1 limit 1",
    )
    .bind(template)
    .fetch_one(pool)
    .await
    .unwrap();
    for round in 1..=rounds {
        sqlx::query(
            "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                                 payload, metadata)
             select 'Account', 'nats-bulk-' || g, $1, $2, $3, $4::json, '{}'
               from generate_series(1, $5) g order by g",
        )
        .bind(round)
        .bind(&event_type)
        .bind(&version)
        .bind(&payload)
        .bind(aggregates)
        .execute(pool)
        .await
        .unwrap();
    }
}

/// The value of a metric line `name` (first match) in a `/metrics` text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Checks the published events against the store: each event exactly once, in order per
/// aggregate, with its id, subject and a redacted payload. Returns the published bodies.
async fn assert_published_once_in_order(
    pool: &sqlx::PgPool,
    stream: &TestStream,
    messages: &[(String, String, Value)],
) {
    let stored: Vec<(String, String, i64, String)> = sqlx::query_as(
        "select aggregate_type, aggregate_id, sequence, event_type from events
          order by tx_id, global_position",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let events: Vec<&(String, String, Value)> = messages
        .iter()
        .filter(|(s, _, _)| s.starts_with(&format!("{}.events.", stream.prefix)))
        .collect();
    let ids: Vec<&str> = events.iter().map(|(_, id, _)| id.as_str()).collect();
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "an event was stored twice");
    let expected: HashSet<String> = stored
        .iter()
        .map(|(t, a, s, _)| format!("{t}:{a}:{s}"))
        .collect();
    let published: HashSet<String> = distinct.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        published.len(),
        expected.len(),
        "missing: {:?}; unexpected: {:?}",
        expected.difference(&published).take(5).collect::<Vec<_>>(),
        published.difference(&expected).take(5).collect::<Vec<_>>()
    );
    assert_eq!(published, expected);

    // In order per aggregate: sequences 1, 2, 3 … as stored.
    let mut next: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (subject, id, body) in &events {
        let aggregate = (
            body["aggregate_type"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            body["aggregate_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        let sequence = body["sequence"].as_i64().unwrap_or_default();
        let expected_seq = next.entry(aggregate.clone()).or_insert(1);
        assert_eq!(
            sequence, *expected_seq,
            "{aggregate:?} out of order at {id}"
        );
        *expected_seq += 1;
        assert_eq!(body["id"].as_str(), Some(id.as_str()));
        let event_type = body["event_type"].as_str().unwrap_or_default();
        assert!(
            subject.ends_with(&format!(
                ".events.{}.{}",
                snake(&aggregate.0),
                snake(event_type)
            )),
            "{subject} for {event_type}"
        );
    }
}

/// snake_case of a type name, written independently of the server's.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test]
async fn test_ten_thousand_events_published_once_in_order_across_a_sigkill() {
    let Some(url) = nats_url() else { return };
    let stream = TestStream::new(&url).await;
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let smtp = SmtpSink::start().await;
    let mut env = stream.env(&url);
    env.insert("GATEHOUSE_SMTP_URL".into(), smtp.url());

    // Real traffic first, with secrets we know: an email, a password, a verification code and a
    // session token must never appear in a published payload.
    let server = Server::start(Some(&db.url), &env).await;
    let email = "nats-secret-owner@example.com";
    server.register(email, PASSWORD).await;
    let code = smtp
        .wait_for(email, "email verification code", 1)
        .await
        .code();
    let (status, _) = server.login(email, "a-wrong-password-for-nats").await;
    assert_eq!(status, 401);
    let token = server.token(email, PASSWORD).await;

    // Then 10,000 events of 100 aggregates, appended as the store would (one transaction per
    // round), before the server publishes them.
    bulk_events(&pool, "LoginFailed", 100, 100).await;
    let total: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(total >= 10_000, "{total}");

    // SIGKILL while it publishes.
    let start = Instant::now();
    let mut at_kill = 0;
    while start.elapsed() < Duration::from_secs(60) {
        at_kill = stream.count().await;
        if at_kill >= 1_500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().await;
    assert!(
        at_kill >= 1_500 && at_kill < total as u64,
        "the kill should land mid-publish ({at_kill} of {total} stored)"
    );
    let (published_tx, published_pos): (i64, i64) =
        sqlx::query_as("select tx_id, position from stream_publishers")
            .fetch_one(&pool)
            .await
            .unwrap();
    let (head_tx, head_pos): (i64, i64) = sqlx::query_as(
        "select tx_id::text::bigint, global_position from events
          order by tx_id desc, global_position desc limit 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        (published_tx, published_pos) < (head_tx, head_pos),
        "the checkpoint had reached the head before the kill"
    );

    // A new process takes over once the dead one's lease lapses, and finishes.
    let restarted = Server::start(Some(&db.url), &env).await;
    until(
        "every event and alert change published",
        Duration::from_secs(120),
        || caught_up(&restarted, &pool),
    )
    .await;
    assert_eq!(
        metric(
            &restarted.metrics().await,
            "gatehouse_nats_publisher_active"
        ),
        Some(1.0)
    );
    // Alert changes follow the alerts read model (100 failures on each bulk account).
    let alerts: Vec<(String, String)> = sqlx::query_as("select id, rule from alerts_v1")
        .fetch_all(&pool)
        .await
        .unwrap();
    let messages = stream.messages().await;
    eprintln!(
        "{total} events, {} alerts; killed with {at_kill} stored; {} messages in the end",
        alerts.len(),
        messages.len()
    );
    assert!(!alerts.is_empty(), "the bulk failures raise alerts");
    assert_published_once_in_order(&pool, &stream, &messages).await;
    let mut alerted = HashSet::new();
    for (subject, id, body) in &messages {
        if let Some(rule) = subject.strip_prefix(&format!("{}.alerts.", stream.prefix)) {
            assert_eq!(body["rule"].as_str(), Some(rule));
            assert_eq!(body["id"].as_str(), Some(id.as_str()));
            assert!(id.starts_with("alert:"), "{id}");
            alerted.insert(body["alert_id"].as_str().unwrap_or_default().to_string());
        }
    }
    for (id, rule) in &alerts {
        assert!(alerted.contains(id), "alert {id} ({rule}) never published");
    }
    let everything = messages
        .iter()
        .map(|(_, _, b)| b.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    for secret in [email, PASSWORD, code.as_str(), token.as_str(), "$argon2"] {
        assert!(
            !everything.contains(secret),
            "a published payload carries {secret:?}"
        );
    }
    // The sign-up is there, with its contact redacted.
    assert!(
        messages.iter().any(
            |(s, _, b)| s.ends_with(".events.account.account_registered")
                && b["payload"].to_string().contains("[redacted]")
        ),
        "no redacted AccountRegistered"
    );
    let text = restarted.metrics().await;
    assert!(
        metric(&text, "gatehouse_nats_published_total{kind=\"event\"}").unwrap_or(0.0) > 0.0,
        "{text}"
    );
    restarted.kill().await;
    stream.delete().await;
}

#[tokio::test]
async fn test_one_process_publishes_and_another_takes_over() {
    let Some(url) = nats_url() else { return };
    let stream = TestStream::new(&url).await;
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let env = stream.env(&url);
    let a = Server::start(Some(&db.url), &env).await;
    let b = Server::start(Some(&db.url), &env).await;
    a.register("nats-ha-1@example.com", PASSWORD).await;
    b.register("nats-ha-2@example.com", PASSWORD).await;

    let active = |text: String| metric(&text, "gatehouse_nats_publisher_active").map(|v| v as u8);
    let start = Instant::now();
    let a_leads = loop {
        let (x, y) = (active(a.metrics().await), active(b.metrics().await));
        match (x, y) {
            (Some(1), Some(0)) => break true,
            (Some(0), Some(1)) => break false,
            (Some(1), Some(1)) => panic!("both processes publish"),
            _ if start.elapsed() > Duration::from_secs(30) => panic!("no publisher: {x:?} {y:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let (leader, standby) = if a_leads { (a, b) } else { (b, a) };
    until(
        "the first events published",
        Duration::from_secs(30),
        || caught_up(&leader, &pool),
    )
    .await;
    assert_eq!(active(standby.metrics().await), Some(0));
    leader.kill().await;
    standby.register("nats-ha-3@example.com", PASSWORD).await;
    let (status, _) = standby.login("nats-ha-1@example.com", PASSWORD).await;
    assert_eq!(status, 200);
    until(
        "the standby took over and caught up",
        Duration::from_secs(30),
        || async { active(standby.metrics().await) == Some(1) && caught_up(&standby, &pool).await },
    )
    .await;
    let messages = stream.messages().await;
    assert_published_once_in_order(&pool, &stream, &messages).await;
    standby.kill().await;
    stream.delete().await;
}

#[tokio::test]
async fn test_nats_unreachable_blocks_nothing_and_is_counted() {
    // Nothing listens on this port (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let db = TestDb::new().await;
    let mut env = fast_env();
    env.insert(
        "GATEHOUSE_NATS_URL".into(),
        format!("nats://127.0.0.1:{port}"),
    );
    let server = Server::start(Some(&db.url), &env).await;
    let begun = Instant::now();
    server.register("nats-down@example.com", PASSWORD).await;
    let (status, body) = server.login("nats-down@example.com", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        begun.elapsed() < Duration::from_secs(10),
        "commands waited for NATS"
    );
    until(
        "failures counted and the lag shown",
        Duration::from_secs(30),
        || async {
            let text = server.metrics().await;
            metric(&text, "gatehouse_nats_publish_failures_total").unwrap_or(0.0) >= 2.0
                && metric(&text, "gatehouse_nats_publisher_lag_events").unwrap_or(0.0) > 0.0
        },
    )
    .await;
    // Logged at most every 10 s, however often it retried.
    let logged = server
        .logs()
        .matches("event stream publishing to NATS failed")
        .count();
    assert!(
        logged <= 1 + begun.elapsed().as_secs() as usize / 10,
        "{logged} lines"
    );
    let (status, _) = server
        .post(
            "/v1/login",
            json!({"identifier": "nats-down@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200);
    server.kill().await;
}

#[tokio::test]
async fn test_alert_raise_acknowledge_and_resolve_are_published_in_order() {
    let Some(url) = nats_url() else { return };
    let stream = TestStream::new(&url).await;
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let admin = super::admin_api::bootstrap_admin(&db).await;
    let server = Server::start(Some(&db.url), &stream.env(&url)).await;
    let email = "nats-alerts@example.com";
    server.register(email, PASSWORD).await;
    // A sign-in from a second device raises `new_device_sign_in`.
    for device in ["nats-device-1", "nats-device-2"] {
        let (status, body) = server
            .post(
                "/v1/login",
                json!({"identifier": email, "password": PASSWORD, "device_id": device}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    until("the alert raised", Duration::from_secs(30), || async {
        let n: i64 =
            sqlx::query_scalar("select count(*) from alerts_v1 where rule = 'new_device_sign_in'")
                .fetch_one(&pool)
                .await
                .unwrap();
        n > 0
    })
    .await;
    let alert_id: String =
        sqlx::query_scalar("select id from alerts_v1 where rule = 'new_device_sign_in'")
            .fetch_one(&pool)
            .await
            .unwrap();
    for step in ["", "acknowledge", "resolve"] {
        if !step.is_empty() {
            let (status, body) = server
                .post_authed(
                    &format!("/v1/admin/alerts/{alert_id}/{step}"),
                    &admin,
                    json!({"note": "looked at it"}),
                )
                .await;
            assert_eq!(status, 202, "{body}");
        }
        until("the change published", Duration::from_secs(30), || {
            caught_up(&server, &pool)
        })
        .await;
    }
    let statuses: Vec<String> = stream
        .messages()
        .await
        .into_iter()
        .filter(|(s, _, b)| {
            s == &format!("{}.alerts.new_device_sign_in", stream.prefix)
                && b["alert_id"].as_str() == Some(alert_id.as_str())
        })
        .map(|(_, _, b)| b["status"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(statuses, ["open", "acknowledged", "resolved"]);
    server.kill().await;
    stream.delete().await;
}
