//! Webhooks (issue #22) against the real binary on PostgreSQL, with receivers in the test that
//! verify the Standard Webhooks signatures independently of Gatehouse's code (HMAC-SHA256
//! computed here, from the `whsec_` secret the API showed once).
//!
//! What is checked: a credential-stuffing alert caused by a burst of sign-ins reaches a signed
//! webhook (the latency is printed for BENCHMARKS.md); a receiver failing three times gets each
//! message accepted exactly once, with the failed attempts listed in `/deliveries`; a server
//! SIGKILLed between the send and the recording of its outcome sends the message again with the
//! same `webhook-id`; private and loopback URLs refused at subscription unless listed, and a
//! name resolving to 127.0.0.1 refused at connection; a rotated secret signs beside the new one
//! during the grace; nothing is sent once disabled or deleted; an endpoint that keeps failing is
//! disabled with the alert `webhook_disabled`; every route is admin-only; the same on the embedded
//! store.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use reqwest::Method;
use serde_json::{json, Value};

use super::admin_api::{bootstrap_admin, create_staff};
use super::support::{fast_env, read, Server, TestDb, PASSWORD};

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signatures: Vec<String>,
    body: String,
    at: Instant,
    accepted: bool,
}

/// How a receiver answers.
#[derive(Clone, Copy)]
enum Behaviour {
    /// 204 to everything.
    Accept,
    /// 500 to the first `n` requests, then 204.
    FailFirst(usize),
    /// 500 to everything.
    AlwaysFail,
    /// Holds the first request open forever (the server is killed meanwhile), then 204.
    HoldFirst,
}

/// A webhook receiver on 127.0.0.1.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Self {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let seen = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let seen = seen.clone();
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    // Counted and kept under one lock: concurrent requests see distinct counts.
                    let (n, accepted) = {
                        let mut seen = seen.lock().unwrap();
                        let n = seen.len();
                        let accepted = match behaviour {
                            Behaviour::Accept => true,
                            Behaviour::FailFirst(k) => n >= k,
                            Behaviour::AlwaysFail => false,
                            Behaviour::HoldFirst => n >= 1,
                        };
                        seen.push(Received {
                            id: header("webhook-id"),
                            timestamp: header("webhook-timestamp"),
                            signatures: header("webhook-signature")
                                .split(' ')
                                .filter(|s| !s.is_empty())
                                .map(str::to_string)
                                .collect(),
                            body,
                            at: Instant::now(),
                            accepted,
                        });
                        (n, accepted)
                    };
                    if matches!(behaviour, Behaviour::HoldFirst) && n == 0 {
                        // Never answers: the test kills the server meanwhile.
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    if accepted {
                        StatusCode::NO_CONTENT
                    } else {
                        StatusCode::INTERNAL_SERVER_ERROR
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { port, got }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `check` holds for what was received, up to `within`.
    async fn wait(&self, what: &str, within: Duration, check: impl Fn(&[Received]) -> bool) {
        let start = Instant::now();
        while start.elapsed() < within {
            if check(&self.got()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "timed out after {within:?} waiting for: {what}; got {:?}",
            self.got()
        );
    }
}

/// The Standard Webhooks signature of a message with a `whsec_` secret, computed here.
fn expected_signature(secret: &str, r: &Received) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("base64 secret");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", r.id, r.timestamp, r.body).as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Whether one of the message's signatures is the one `secret` makes, and its timestamp recent.
fn verifies(secret: &str, r: &Received) -> bool {
    let ts: i64 = r.timestamp.parse().unwrap_or(0);
    let fresh = (chrono::Utc::now().timestamp() - ts).abs() < 300;
    fresh && r.id.starts_with("msg_") && r.signatures.contains(&expected_signature(secret, r))
}

fn env_with_receivers() -> HashMap<String, String> {
    let mut env = fast_env();
    env.insert(
        "GATEHOUSE_WEBHOOK_ALLOW_HTTP_HOSTS".into(),
        "127.0.0.1".into(),
    );
    env.insert("GATEHOUSE_WEBHOOK_RETRY_BASE_MS".into(), "200".into());
    env.insert("GATEHOUSE_PROJECTION_COALESCE_MS".into(), "20".into());
    env
}

async fn call(
    server: &Server,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = server
        .http
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    read(req.send().await.unwrap()).await
}

/// Subscribes `url` to `kinds`; answers the id and the secret.
async fn subscribe(server: &Server, admin: &str, url: &str, kinds: Value) -> (String, String) {
    let (status, body) = call(
        server,
        Method::POST,
        "/v1/admin/webhooks",
        admin,
        Some(json!({"url": url, "kinds": kinds})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let secret = body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let bytes = STANDARD.decode(&secret["whsec_".len()..]).unwrap();
    assert!((24..=64).contains(&bytes.len()));
    (body["webhook_id"].as_str().unwrap().to_string(), secret)
}

/// Subscribes a receiver to sign-ups (`account.account_registered`).
async fn on_sign_ups(server: &Server, admin: &str, receiver: &Receiver) -> (String, String) {
    subscribe(
        server,
        admin,
        &receiver.url(),
        json!(["account.account_registered"]),
    )
    .await
}

async fn deliveries(server: &Server, admin: &str, id: &str) -> Vec<Value> {
    let (status, body) = call(
        server,
        Method::GET,
        &format!("/v1/admin/webhooks/{id}/deliveries?limit=500"),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().cloned().unwrap_or_default()
}

/// A database, its first admin's token, and a server on it with `env`.
async fn setup(env: &HashMap<String, String>) -> (TestDb, String, Server) {
    let db = TestDb::new().await;
    let admin = bootstrap_admin(&db).await;
    let server = Server::start(Some(&db.url), env).await;
    (db, admin, server)
}

/// The delivery attempts of `id` once there is one (up to 30 s).
async fn attempts_eventually(server: &Server, admin: &str, id: &str) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let attempts = deliveries(server, admin, id).await;
        if !attempts.is_empty() || start.elapsed() > Duration::from_secs(30) {
            return attempts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of a metric line `name` (first match) in a `/metrics` text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn test_a_stuffing_alert_reaches_signed_webhooks_once_with_retries_recorded() {
    let mut env = env_with_receivers();
    env.insert("GATEHOUSE_TRUSTED_PROXIES".into(), "127.0.0.1".into());
    env.insert(
        "GATEHOUSE_ALERT_STUFFING_IP_IDENTIFIERS".into(),
        "10".into(),
    );
    env.insert(
        "GATEHOUSE_ALERT_STUFFING_NET_IDENTIFIERS".into(),
        "10".into(),
    );
    let (_db, admin, server) = setup(&env).await;
    let ok = Receiver::start(Behaviour::Accept).await;
    let flaky = Receiver::start(Behaviour::FailFirst(3)).await;
    let (ok_id, ok_secret) = subscribe(
        &server,
        &admin,
        &ok.url(),
        json!(["alert.credential_stuffing"]),
    )
    .await;
    let (flaky_id, flaky_secret) =
        subscribe(&server, &admin, &flaky.url(), json!(["alert.*"])).await;

    // A burst of failed sign-ins from one address against ten identifiers.
    let burst = Instant::now();
    for i in 0..10 {
        let r = server
            .http
            .post(format!("{}/v1/login", server.base))
            .header("x-forwarded-for", "203.0.113.9")
            .json(&json!({"identifier": format!("stuffed{i}@example.com"), "password": "not-their-password-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    let last_sent = Instant::now();
    ok.wait(
        "the stuffing alert at the receiver",
        Duration::from_secs(30),
        |got| {
            got.iter()
                .any(|r| r.body.contains("\"alert.credential_stuffing\""))
        },
    )
    .await;
    let first = ok
        .got()
        .into_iter()
        .find(|r| r.body.contains("\"alert.credential_stuffing\""))
        .unwrap();
    eprintln!(
        "BENCH webhook: credential-stuffing alert received {} ms after the burst's last sign-in ({} ms after its first)",
        first.at.duration_since(last_sent).as_millis(),
        first.at.duration_since(burst).as_millis()
    );
    // Both alerts (the address and its network) arrive, whichever first.
    ok.wait(
        "the stuffing alert on the address",
        Duration::from_secs(30),
        |got| got.iter().any(|r| r.body.contains("\"ip:203.0.113.9\"")),
    )
    .await;
    // Verified here, from the secret shown once.
    for r in ok.got() {
        assert!(verifies(&ok_secret, &r), "a bad signature: {r:?}");
        assert!(!verifies(&flaky_secret, &r));
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["type"], "alert.credential_stuffing");
        assert_eq!(body["data"]["rule"], "credential_stuffing");
        assert!(body["timestamp"].is_string());
        assert!(!r.body.contains("not-their-password-1"));
        assert!(!r.body.contains("stuffed0@example.com"));
    }
    let subjects: HashSet<String> = ok
        .got()
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["data"]["subject"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(subjects.contains("ip:203.0.113.9"), "{subjects:?}");

    // The flaky receiver: three failures, then each message accepted exactly once, every
    // attempt of one message with the same id and body, each verified.
    flaky
        .wait(
            "the flaky receiver accepts",
            Duration::from_secs(30),
            |got| got.iter().any(|r| r.accepted),
        )
        .await;
    // Give every retry time to land, then check nothing is accepted twice.
    let text = server.metrics().await;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        let text = server.metrics().await;
        if metric(&text, "gatehouse_webhook_pending_messages") == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = flaky.got();
    let mut accepted: HashMap<String, usize> = HashMap::new();
    let mut bodies: HashMap<String, String> = HashMap::new();
    for r in &got {
        assert!(verifies(&flaky_secret, r), "a bad signature: {r:?}");
        if let Some(b) = bodies.insert(r.id.clone(), r.body.clone()) {
            assert_eq!(b, r.body, "a retry changed the body");
        }
        if r.accepted {
            *accepted.entry(r.id.clone()).or_default() += 1;
        }
    }
    assert_eq!(got.iter().filter(|r| !r.accepted).count(), 3);
    assert_eq!(accepted.len(), bodies.len(), "a message never accepted");
    assert!(
        accepted.values().all(|&n| n == 1),
        "accepted twice: {accepted:?}"
    );

    // The attempts are recorded: three failures with a retry time, then the successes.
    let attempts = deliveries(&server, &admin, &flaky_id).await;
    let failed: Vec<&Value> = attempts
        .iter()
        .filter(|d| d["outcome"] == "failed")
        .collect();
    assert_eq!(failed.len(), 3, "{attempts:?}");
    for f in &failed {
        assert_eq!(f["status"], 500);
        assert!(f["retry_at"].is_string(), "{f}");
    }
    let delivered: HashSet<&str> = attempts
        .iter()
        .filter(|d| d["outcome"] == "delivered")
        .map(|d| d["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(delivered, accepted.keys().map(String::as_str).collect());
    let retried = failed[0]["message_id"].as_str().unwrap();
    assert!(attempts.iter().any(|d| d["message_id"] == retried
        && d["outcome"] == "delivered"
        && d["attempt"].as_u64() > Some(1)));
    let ok_attempts = deliveries(&server, &admin, &ok_id).await;
    assert!(ok_attempts.iter().all(|d| d["outcome"] == "delivered"));

    assert!(
        metric(
            &text,
            "gatehouse_webhook_deliveries_total{outcome=\"delivered\"}"
        )
        .unwrap_or(0.0)
            > 0.0,
        "{text}"
    );
    let text = server.metrics().await;
    assert_eq!(
        metric(
            &text,
            "gatehouse_webhook_deliveries_total{outcome=\"failed\"}"
        ),
        Some(3.0)
    );
    assert!(metric(&text, "gatehouse_webhook_lag_seconds").is_some());
    server.kill().await;
}

#[tokio::test]
async fn test_a_server_killed_before_recording_the_outcome_sends_again_with_the_same_id() {
    let mut env = env_with_receivers();
    // A short request timeout, so the lease of a message whose sender died lapses soon.
    env.insert("GATEHOUSE_WEBHOOK_TIMEOUT_SECONDS".into(), "1".into());
    let (db, admin, server) = setup(&env).await;
    let receiver = Receiver::start(Behaviour::HoldFirst).await;
    let (id, secret) = on_sign_ups(&server, &admin, &receiver).await;
    server.register("kill-between@example.com", PASSWORD).await;
    receiver
        .wait("the first send", Duration::from_secs(30), |got| {
            !got.is_empty()
        })
        .await;
    // The server has sent and waits for the answer: killed before it can record anything.
    server.kill().await;
    let pool = db.pool().await;
    let recorded: i64 = sqlx::query_scalar(
        "select count(*) from events where aggregate_type = 'Webhook' and event_type like 'WebhookDeliver%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(recorded, 0, "the outcome was recorded before the kill");

    let restarted = Server::start(Some(&db.url), &env).await;
    receiver
        .wait("the redelivery", Duration::from_secs(30), |got| {
            got.len() >= 2
        })
        .await;
    let got = receiver.got();
    assert_eq!(
        got[0].id, got[1].id,
        "a redelivery carries the same webhook-id"
    );
    assert_eq!(got[0].body, got[1].body);
    assert!(verifies(&secret, &got[0]) && verifies(&secret, &got[1]));
    let body: Value = serde_json::from_str(&got[1].body).unwrap();
    assert_eq!(body["type"], "account.account_registered");
    assert!(!got[1].body.contains("kill-between@example.com"));
    let attempts = attempts_eventually(&restarted, &admin, &id).await;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0]["outcome"], "delivered");
    assert_eq!(attempts[0]["message_id"], got[0].id.as_str());
    // And nothing more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.got().len(), 2);
    restarted.kill().await;
}

#[tokio::test]
async fn test_private_addresses_are_refused_and_routes_are_admin_only() {
    let db = TestDb::new().await;
    let admin = bootstrap_admin(&db).await;
    // No host listed.
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let port = receiver.port;
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("https://127.0.0.1:{port}/hook"),
        "https://10.0.0.1/hook".to_string(),
        "http://10.0.0.1/hook".to_string(),
        "https://169.254.169.254/latest/meta-data".to_string(),
        "https://[::ffff:127.0.0.1]/hook".to_string(),
        "https://[::1]/hook".to_string(),
        "https://192.168.0.10/hook".to_string(),
        "https://100.64.1.1/hook".to_string(),
        "http://hooks.example.com/hook".to_string(),
        "https://user:pw@hooks.example.com/hook".to_string(),
        "file:///etc/passwd".to_string(),
    ] {
        let (status, body) = call(
            &server,
            Method::POST,
            "/v1/admin/webhooks",
            &admin,
            Some(json!({"url": url, "kinds": ["alert.*"]})),
        )
        .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["error"]["code"], "invalid_webhook_url", "{body}");
    }
    for kinds in [
        json!([]),
        json!(["webhook.*"]),
        json!(["webhook.webhook_delivered"]),
        json!(["alert.no_such_rule"]),
        json!(["account.no_such_event"]),
        json!(["alert.*", "account.password_reset", "account.login_faild"]),
        json!(["Account.PasswordReset"]),
        json!(["*"]),
    ] {
        let (status, body) = call(
            &server,
            Method::POST,
            "/v1/admin/webhooks",
            &admin,
            Some(json!({"url": "https://hooks.example.com/in", "kinds": kinds})),
        )
        .await;
        assert_eq!(status, 422, "{kinds}: {body}");
        assert_eq!(body["error"]["code"], "invalid_webhook_kinds");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("<namespace>.*"),
            "{body}"
        );
    }
    let (status, _) = call(
        &server,
        Method::POST,
        "/v1/admin/webhooks",
        &admin,
        Some(json!({"url": "https://hooks.example.com/in"})),
    )
    .await;
    assert!(status == 400 || status == 422, "{status}");

    // A name is checked when it resolves: `localhost` is accepted at subscription and refused
    // at connection time, so nothing reaches the receiver behind it.
    let (local_id, _) = subscribe(
        &server,
        &admin,
        &format!("https://localhost:{port}/hook"),
        json!(["account.account_registered"]),
    )
    .await;
    server.register("ssrf-probe@example.com", PASSWORD).await;
    let attempts = attempts_eventually(&server, &admin, &local_id).await;
    assert!(!attempts.is_empty(), "no attempt recorded");
    assert_eq!(attempts[0]["outcome"], "failed");
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no public address"),
        "{attempts:?}"
    );
    assert!(
        metric(
            &server.metrics().await,
            "gatehouse_webhook_deliveries_total{outcome=\"refused\"}"
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert!(receiver.got().is_empty(), "something reached 127.0.0.1");

    // Every route is the admins': other roles get 403, no token 401.
    let analyst = create_staff(&server, &admin, "ana", "analyst").await;
    let auditor = create_staff(&server, &admin, "aud", "auditor").await;
    let reviewer = create_staff(&server, &admin, "rev", "reviewer").await;
    let routes = [
        (
            Method::POST,
            "/v1/admin/webhooks".to_string(),
            Some(json!({"url": "https://hooks.example.com/in", "kinds": ["alert.*"]})),
        ),
        (Method::GET, "/v1/admin/webhooks".to_string(), None),
        (Method::GET, format!("/v1/admin/webhooks/{local_id}"), None),
        (
            Method::PATCH,
            format!("/v1/admin/webhooks/{local_id}"),
            Some(json!({"enabled": false})),
        ),
        (
            Method::DELETE,
            format!("/v1/admin/webhooks/{local_id}"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/admin/webhooks/{local_id}/rotate"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/admin/webhooks/{local_id}/deliveries"),
            None,
        ),
    ];
    for token in [&analyst, &auditor, &reviewer] {
        for (method, path, body) in &routes {
            let (status, answer) = call(&server, method.clone(), path, token, body.clone()).await;
            assert_eq!(status, 403, "{method} {path}: {answer}");
        }
    }
    for (method, path, body) in &routes {
        let mut req = server
            .http
            .request(method.clone(), format!("{}{path}", server.base));
        if let Some(b) = body {
            req = req.json(b);
        }
        let (status, _) = read(req.send().await.unwrap()).await;
        assert_eq!(status, 401, "{method} {path}");
    }
    // Every route is in the OpenAPI document.
    let (status, doc) = read(
        server
            .http
            .get(format!("{}/openapi.json", server.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    for (path, methods) in [
        ("/v1/admin/webhooks", &["get", "post"][..]),
        ("/v1/admin/webhooks/{id}", &["get", "patch", "delete"][..]),
        ("/v1/admin/webhooks/{id}/rotate", &["post"][..]),
        ("/v1/admin/webhooks/{id}/deliveries", &["get"][..]),
    ] {
        for method in methods {
            assert!(
                doc["paths"][path].get(*method).is_some(),
                "OpenAPI lacks {method} {path}"
            );
        }
    }
    // Unknown ids are 404s, never 500s.
    for path in [
        "/v1/admin/webhooks/not-a-uuid",
        "/v1/admin/webhooks/00000000-0000-0000-0000-000000000000",
        "/v1/admin/webhooks/00000000-0000-0000-0000-000000000000/deliveries",
    ] {
        let (status, _) = call(&server, Method::GET, path, &admin, None).await;
        assert_eq!(status, 404, "{path}");
    }
    server.kill().await;

    // Listed, the same address is accepted.
    let mut env = fast_env();
    env.insert(
        "GATEHOUSE_WEBHOOK_ALLOW_HTTP_HOSTS".into(),
        "127.0.0.1".into(),
    );
    let listed = Server::start(Some(&db.url), &env).await;
    subscribe(&listed, &admin, &receiver.url(), json!(["alert.*"])).await;
    let (status, _) = call(
        &listed,
        Method::POST,
        "/v1/admin/webhooks",
        &admin,
        Some(json!({"url": "http://10.0.0.1/hook", "kinds": ["alert.*"]})),
    )
    .await;
    assert_eq!(status, 422, "10.0.0.1 is not listed");
    listed.kill().await;
}

#[tokio::test]
async fn test_rotation_signs_with_both_secrets_and_nothing_is_sent_when_off_or_deleted() {
    let mut env = env_with_receivers();
    env.insert(
        "GATEHOUSE_WEBHOOK_ROTATION_GRACE_SECONDS".into(),
        "3600".into(),
    );
    let (db, admin, server) = setup(&env).await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let (id, old) = on_sign_ups(&server, &admin, &receiver).await;
    let (status, listed) = call(&server, Method::GET, "/v1/admin/webhooks", &admin, None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["webhooks"][0]["webhook_id"], id.as_str());
    assert_eq!(
        listed["webhooks"][0]["kinds"],
        json!(["account.account_registered"])
    );
    assert!(!listed.to_string().contains(&old["whsec_".len()..]));

    server.register("rotate-1@example.com", PASSWORD).await;
    receiver
        .wait("the first message", Duration::from_secs(30), |g| {
            g.len() == 1
        })
        .await;
    let first = &receiver.got()[0];
    assert_eq!(first.signatures.len(), 1);
    assert!(verifies(&old, first));

    let (status, rotated) = call(
        &server,
        Method::POST,
        &format!("/v1/admin/webhooks/{id}/rotate"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert!(rotated["previous_secret_until"].is_string());
    server.register("rotate-2@example.com", PASSWORD).await;
    receiver
        .wait("the message after rotation", Duration::from_secs(30), |g| {
            g.len() == 2
        })
        .await;
    let second = receiver.got()[1].clone();
    // During the grace: two entries, each the one its secret makes.
    assert_eq!(second.signatures.len(), 2, "{second:?}");
    assert!(second
        .signatures
        .contains(&expected_signature(&new, &second)));
    assert!(second
        .signatures
        .contains(&expected_signature(&old, &second)));

    // Disabled: nothing is sent; enabled again: new events are.
    let (status, off) = call(
        &server,
        Method::PATCH,
        &format!("/v1/admin/webhooks/{id}"),
        &admin,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!((status, &off["enabled"]), (200, &json!(false)), "{off}");
    server.register("rotate-3@example.com", PASSWORD).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.got().len(), 2, "sent while disabled");
    let (status, on) = call(
        &server,
        Method::PATCH,
        &format!("/v1/admin/webhooks/{id}"),
        &admin,
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!((status, &on["enabled"]), (200, &json!(true)), "{on}");
    server.register("rotate-4@example.com", PASSWORD).await;
    receiver
        .wait(
            "a message once enabled again",
            Duration::from_secs(30),
            |g| g.len() == 3,
        )
        .await;

    // Deleted: nothing more is sent, and it is gone from the API.
    let (status, _) = call(
        &server,
        Method::DELETE,
        &format!("/v1/admin/webhooks/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 204);
    server.register("rotate-5@example.com", PASSWORD).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.got().len(), 3, "sent after delete");
    let (status, _) = call(
        &server,
        Method::GET,
        &format!("/v1/admin/webhooks/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, listed) = call(&server, Method::GET, "/v1/admin/webhooks", &admin, None).await;
    assert_eq!(listed["webhooks"], json!([]));

    // Every change is a fact with its author, on the subscription and on the staff record;
    // no secret anywhere in the events.
    let pool = db.pool().await;
    let facts: Vec<String> = sqlx::query_scalar(
        "select event_type from events where aggregate_type = 'Webhook' and aggregate_id = $1
          and event_type not like 'WebhookDeliver%' order by sequence",
    )
    .bind(&id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        facts,
        vec![
            "WebhookSubscribed",
            "WebhookSecretRotated",
            "WebhookDisabled",
            "WebhookEnabled",
            "WebhookDeleted"
        ]
    );
    let actions: Vec<String> = sqlx::query_scalar(
        "select payload::jsonb #>> '{fact,StaffActionRecorded,action}' from events
          where aggregate_type = 'Staff' and event_type = 'StaffActionRecorded'
            and payload::jsonb #>> '{fact,StaffActionRecorded,action}' like 'webhooks.%'
          order by tx_id, global_position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for action in [
        "webhooks.create",
        "webhooks.rotate",
        "webhooks.disable",
        "webhooks.enable",
        "webhooks.delete",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
    let all: Vec<String> = sqlx::query_scalar("select payload::text from events")
        .fetch_all(&pool)
        .await
        .unwrap();
    for secret in [&old, &new] {
        let b64 = &secret["whsec_".len()..];
        assert!(!all.iter().any(|p| p.contains(b64)), "a secret in an event");
    }
    let sealed: Vec<String> = sqlx::query_scalar("select sealed from webhook_secrets")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(sealed.len(), 2);
    assert!(sealed.iter().all(|s| !s.contains(&old["whsec_".len()..])));
    server.kill().await;
}

#[tokio::test]
async fn test_an_endpoint_that_keeps_failing_is_disabled_with_an_alert() {
    let mut env = env_with_receivers();
    env.insert("GATEHOUSE_WEBHOOK_DISABLE_AFTER".into(), "3".into());
    env.insert("GATEHOUSE_WEBHOOK_RETRY_BASE_MS".into(), "50".into());
    let (_db, admin, server) = setup(&env).await;
    let broken = Receiver::start(Behaviour::AlwaysFail).await;
    let watcher = Receiver::start(Behaviour::Accept).await;
    let (id, _) = on_sign_ups(&server, &admin, &broken).await;
    let (_, watcher_secret) = subscribe(
        &server,
        &admin,
        &watcher.url(),
        json!(["alert.webhook_disabled"]),
    )
    .await;
    server
        .register("broken-endpoint@example.com", PASSWORD)
        .await;
    // The alert reaches the other subscription.
    watcher
        .wait("the webhook_disabled alert", Duration::from_secs(30), |g| {
            g.iter()
                .any(|r| r.body.contains("\"alert.webhook_disabled\""))
        })
        .await;
    let alert = watcher.got()[0].clone();
    assert!(verifies(&watcher_secret, &alert));
    let body: Value = serde_json::from_str(&alert.body).unwrap();
    assert_eq!(body["data"]["subject"], format!("webhook:{id}"));
    assert_eq!(broken.got().len(), 3, "three attempts, then disabled");
    let (status, shown) = call(
        &server,
        Method::GET,
        &format!("/v1/admin/webhooks/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(shown["enabled"], false);
    assert_eq!(shown["consecutive_failures"], 3);
    assert_eq!(
        metric(
            &server.metrics().await,
            "gatehouse_webhook_subscriptions_disabled"
        ),
        Some(1.0)
    );
    let (status, alerts) = call(
        &server,
        Method::GET,
        "/v1/admin/alerts?rule=webhook_disabled",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{alerts}");
    assert_eq!(alerts["alerts"][0]["subject"], format!("webhook:{id}"));
    server.kill().await;
}

// Once intermittent (1 full run in 4): the feed's first round met an empty stream and saved
// nothing, so a later round took itself for a first run and skipped the sign-up. Fixed in
// `webhooks::feed` (a checkpoint row says whether it was ever saved).
#[tokio::test]
async fn test_webhooks_work_on_the_embedded_store() {
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-e2e-webhooks-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut env = env_with_receivers();
    env.insert("GATEHOUSE_DATA_DIR".into(), dir.display().to_string());
    let server = Server::start(None, &env).await;
    let out = tokio::process::Command::new(super::support::binary())
        .args(["staff", "create", "--name", "root", "--role", "admin"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GATEHOUSE_DATA_DIR", &dir)
        .env("GATEHOUSE_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let receiver = Receiver::start(Behaviour::FailFirst(1)).await;
    let (id, secret) = on_sign_ups(&server, &admin, &receiver).await;
    server.register("embedded-hook@example.com", PASSWORD).await;
    receiver
        .wait("a retried delivery", Duration::from_secs(30), |g| {
            g.iter().any(|r| r.accepted)
        })
        .await;
    let got = receiver.got();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].id, got[1].id);
    assert!(got.iter().all(|r| verifies(&secret, r)));
    let start = Instant::now();
    let mut attempts = attempts_eventually(&server, &admin, &id).await;
    while attempts.len() < 2 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        attempts = deliveries(&server, &admin, &id).await;
    }
    let outcomes: Vec<&str> = attempts
        .iter()
        .map(|d| d["outcome"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(outcomes, vec!["failed", "delivered"]);
    server.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}
