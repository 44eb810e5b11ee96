//! The analysts' API over HTTP against the real binary: the staff bootstrap command, role checks
//! on every admin route, a new-device alert seen in the list and the live feed, acknowledged and
//! resolved, login history across accounts, a redacted account timeline, metrics, and the alerts
//! read model equal to a rebuild after the traffic.
use std::collections::HashMap;

use gatehouse_projections::ProjectionRunner;
use reqwest::Method;
use serde_json::{json, Value};

use super::alerts_rules::{dump, last_event, settle};
use super::support::{
    assert_error_shape, binary, eventually, fast_env, read, Server, TestDb, PASSWORD,
};

/// `gatehouse staff create` against the test database; returns the printed token.
pub(super) async fn bootstrap_admin(db: &TestDb) -> String {
    let out = tokio::process::Command::new(binary())
        .args(["staff", "create", "--name", "root", "--role", "admin"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("GATEHOUSE_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.trim().to_string();
    assert!(
        token.starts_with("ghs1.") && !token.contains('\n'),
        "{stdout}"
    );
    token
}

pub(super) async fn create_staff(server: &Server, admin: &str, name: &str, role: &str) -> String {
    let r = server
        .http
        .post(format!("{}/v1/admin/staff", server.base))
        .bearer_auth(admin)
        .json(&json!({"name": name, "roles": [role]}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(r).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["roles"], json!([role]));
    body["token"].as_str().unwrap().to_string()
}

async fn call(
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = server
        .http
        .request(method, format!("{}{path}", server.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    if r.headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"))
    {
        return (r.status().as_u16(), Value::Null);
    }
    read(r).await
}

async fn login_from(server: &Server, identifier: &str, ip: &str, device: &str) -> (u16, Value) {
    let r = server
        .http
        .post(format!("{}/v1/login", server.base))
        .header("x-forwarded-for", ip)
        .json(&json!({"identifier": identifier, "password": PASSWORD, "device_id": device}))
        .send()
        .await
        .unwrap();
    read(r).await
}

#[tokio::test]
async fn test_admin_routes_check_roles_and_alerts_flow_end_to_end() {
    let db = TestDb::new().await;
    let admin = bootstrap_admin(&db).await;
    let mut env: HashMap<String, String> = fast_env();
    env.insert("GATEHOUSE_TRUSTED_PROXIES".into(), "127.0.0.1".into());
    let server = Server::start(Some(&db.url), &env).await;
    let analyst = create_staff(&server, &admin, "ana", "analyst").await;
    let auditor = create_staff(&server, &admin, "aud", "auditor").await;
    let reviewer = create_staff(&server, &admin, "rev", "reviewer").await;

    let account = server.register("ann@example.com", PASSWORD).await;
    let some_alert = "00000000-0000-0000-0000-000000000000";
    // Every admin route: (method, path, body, a role that may, a role that may not).
    let routes: Vec<(Method, String, Option<Value>, &str, &str)> = vec![
        (
            Method::GET,
            "/v1/admin/alerts".into(),
            None,
            analyst.as_str(),
            auditor.as_str(),
        ),
        (
            Method::GET,
            "/v1/admin/alerts/stream".into(),
            None,
            analyst.as_str(),
            auditor.as_str(),
        ),
        (
            Method::GET,
            format!("/v1/admin/alerts/{some_alert}"),
            None,
            analyst.as_str(),
            auditor.as_str(),
        ),
        (
            Method::POST,
            format!("/v1/admin/alerts/{some_alert}/acknowledge"),
            Some(json!({"note": "n"})),
            analyst.as_str(),
            auditor.as_str(),
        ),
        (
            Method::POST,
            format!("/v1/admin/alerts/{some_alert}/resolve"),
            Some(json!({"note": "n"})),
            analyst.as_str(),
            auditor.as_str(),
        ),
        (
            Method::GET,
            "/v1/admin/login-history".into(),
            None,
            auditor.as_str(),
            reviewer.as_str(),
        ),
        (
            Method::GET,
            format!("/v1/admin/accounts/{account}/events"),
            None,
            auditor.as_str(),
            reviewer.as_str(),
        ),
        (
            Method::POST,
            "/v1/admin/staff".into(),
            Some(json!({"name": "x", "roles": ["analyst"]})),
            admin.as_str(),
            analyst.as_str(),
        ),
    ];
    // Ann's usual device and network.
    let (status, signed_in) =
        login_from(&server, "ann@example.com", "198.51.100.1", "ann-laptop").await;
    assert_eq!(status, 200, "{signed_in}");
    let session = signed_in["session_token"].as_str().unwrap().to_string();
    for (method, path, body, allowed, denied) in &routes {
        let (status, b) = call(&server, method.clone(), path, None, body.clone()).await;
        assert_eq!(status, 401, "{method} {path} without a token: {b}");
        assert_error_shape(&b, "unauthenticated");
        // An account's session token is no staff token.
        let (status, _) = call(&server, method.clone(), path, Some(&session), body.clone()).await;
        assert_eq!(status, 401, "{method} {path} with a session token");
        let forged = format!("ghs1.{account}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        let (status, _) = call(&server, method.clone(), path, Some(&forged), body.clone()).await;
        assert_eq!(status, 401, "{method} {path} with a forged token");
        for wrong in [*denied, reviewer.as_str()] {
            let (status, b) = call(&server, method.clone(), path, Some(wrong), body.clone()).await;
            assert_eq!(status, 403, "{method} {path} with a wrong role: {b}");
            assert_error_shape(&b, "forbidden");
        }
        let (status, b) = call(&server, method.clone(), path, Some(allowed), body.clone()).await;
        assert!(
            [200, 201, 404].contains(&status),
            "{method} {path} with the right role: {status} {b}"
        );
    }

    // The reviewers' queue: reviewers and admins only.
    let case = "00000000-0000-4000-8000-000000000000";
    let review_routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/v1/admin/recovery-cases".into(), None),
        (
            Method::POST,
            format!("/v1/admin/recovery-cases/{case}/approve"),
            Some(json!({"reason": "checked"})),
        ),
        (
            Method::POST,
            format!("/v1/admin/recovery-cases/{case}/deny"),
            Some(json!({"reason": "checked"})),
        ),
    ];
    for (method, path, body) in &review_routes {
        let (status, b) = call(&server, method.clone(), path, None, body.clone()).await;
        assert_eq!(status, 401, "{method} {path} without a token: {b}");
        let (status, _) = call(&server, method.clone(), path, Some(&session), body.clone()).await;
        assert_eq!(status, 401, "{method} {path} with a session token");
        for wrong in [analyst.as_str(), auditor.as_str()] {
            let (status, b) = call(&server, method.clone(), path, Some(wrong), body.clone()).await;
            assert_eq!(status, 403, "{method} {path} with a wrong role: {b}");
        }
        for right in [reviewer.as_str(), admin.as_str()] {
            let (status, b) = call(&server, method.clone(), path, Some(right), body.clone()).await;
            assert!(
                [200, 404].contains(&status),
                "{method} {path}: {status} {b}"
            );
        }
    }

    // Every admin route is in the OpenAPI document.
    let (status, doc) = call(&server, Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    for path in [
        "/v1/admin/alerts",
        "/v1/admin/alerts/stream",
        "/v1/admin/alerts/{id}",
        "/v1/admin/alerts/{id}/acknowledge",
        "/v1/admin/alerts/{id}/resolve",
        "/v1/admin/login-history",
        "/v1/admin/accounts/{id}/events",
        "/v1/admin/staff",
        "/v1/admin/recovery-cases",
        "/v1/admin/recovery-cases/{case_id}/approve",
        "/v1/admin/recovery-cases/{case_id}/deny",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }

    // A live feed opened before the new device signs in.
    let mut feed = server
        .http
        .get(format!("{}/v1/admin/alerts/stream", server.base))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);

    let (status, _) = login_from(&server, "ann@example.com", "198.51.100.1", "strange-phone").await;
    assert_eq!(status, 200);
    let pool = db.pool().await;
    let sign_ins: Vec<i64> = sqlx::query_scalar(
        "select sequence from events where aggregate_id = $1 and event_type = 'LoginSucceeded' order by sequence",
    )
    .bind(&account)
    .fetch_all(&pool)
    .await
    .unwrap();
    let new_device_seq = *sign_ins.last().unwrap();

    let mut received = String::new();
    while !received.contains("new_device_sign_in") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), feed.chunk())
            .await
            .expect("the live feed sends the new alert")
            .unwrap()
            .expect("the live feed stays open");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.contains("event: alert"), "{received}");
    drop(feed);

    let path = "/v1/admin/alerts?rule=new_device_sign_in&status=open";
    let (status, page) = call(&server, Method::GET, path, Some(&analyst), None).await;
    assert_eq!(status, 200, "{page}");
    let alerts = page["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{page}");
    let alert = &alerts[0];
    assert_eq!(alert["subject"], format!("account:{account}"));
    assert_eq!(alert["severity"], "low");
    assert_eq!(alert["count"], 1);
    assert_eq!(
        alert["evidence"],
        json!([{"aggregate_id": account, "sequence": new_device_seq, "at": alert["first_seen"]}])
    );
    assert!(page["next_cursor"].is_null());
    let id = alert["id"].as_str().unwrap().to_string();

    let (status, body) = call(
        &server,
        Method::POST,
        &format!("/v1/admin/alerts/{id}/acknowledge"),
        Some(&analyst),
        Some(json!({"note": "calling ann"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = call(
        &server,
        Method::POST,
        &format!("/v1/admin/alerts/{id}/resolve"),
        Some(&analyst),
        Some(json!({"note": "ann bought a phone"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    eventually("the alert shows as resolved", || {
        let server = &server;
        let analyst = analyst.clone();
        let id = id.clone();
        async move {
            let (_, a) = call(
                server,
                Method::GET,
                &format!("/v1/admin/alerts/{id}"),
                Some(&analyst),
                None,
            )
            .await;
            a["status"] == "resolved" && a["status_note"] == "ann bought a phone"
        }
    })
    .await;
    let (status, body) = call(
        &server,
        Method::POST,
        &format!("/v1/admin/alerts/{id}/resolve"),
        Some(&analyst),
        Some(json!({"note": "again"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_error_shape(&body, "alert_resolved");

    // Login history across accounts, by IP.
    let (status, history) = call(
        &server,
        Method::GET,
        "/v1/admin/login-history?ip=198.51.100.1",
        Some(&auditor),
        None,
    )
    .await;
    assert_eq!(status, 200, "{history}");
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{history}");
    assert!(entries
        .iter()
        .all(|e| e["account_id"] == account.as_str() && e["outcome"] == "succeeded"));
    assert_eq!(entries[0]["device_id"], "strange-phone");

    // The raw timeline, with hashes and sealed data redacted.
    let (status, timeline) = call(
        &server,
        Method::GET,
        &format!("/v1/admin/accounts/{account}/events?limit=500"),
        Some(&auditor),
        None,
    )
    .await;
    assert_eq!(status, 200, "{timeline}");
    let text = timeline.to_string();
    assert!(text.contains("AccountRegistered") && text.contains("[redacted]"));
    assert!(!text.contains("argon2"), "{text}");
    // No stored hash, verifier or sealed value of this account reaches staff: every string the
    // store holds under such a field is absent from the timeline.
    let stored: Vec<Value> = sqlx::query_scalar(
        "select payload::jsonb from events where aggregate_type = 'Account' and aggregate_id = $1",
    )
    .bind(&account)
    .fetch_all(&pool)
    .await
    .unwrap();
    fn secrets(value: &Value, under_secret: bool, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    let secret = under_secret
                        || ["hash", "verifier", "sealed", "secret"]
                            .iter()
                            .any(|w| key.contains(w));
                    secrets(v, secret, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| secrets(v, under_secret, out)),
            Value::String(s) if under_secret && s.len() >= 8 => out.push(s.clone()),
            _ => {}
        }
    }
    let mut hidden = Vec::new();
    stored.iter().for_each(|p| secrets(p, false, &mut hidden));
    assert!(
        hidden.len() >= 3,
        "the account should have a password hash, a session token hash and a sealed contact: {hidden:?}"
    );
    for secret in &hidden {
        assert!(!text.contains(secret.as_str()), "{secret} leaks: {text}");
    }

    // Each event says when the store recorded it (RFC 3339), in sequence order.
    let events = timeline["events"].as_array().unwrap();
    assert!(events.len() >= 3, "{timeline}");
    let times: Vec<chrono::DateTime<chrono::Utc>> = events
        .iter()
        .map(|e| {
            chrono::DateTime::parse_from_rfc3339(e["recorded_at"].as_str().unwrap())
                .unwrap_or_else(|err| panic!("{e}: {err}"))
                .with_timezone(&chrono::Utc)
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let age = chrono::Utc::now() - times[times.len() - 1];
    assert!(
        age < chrono::Duration::hours(1) && age > -chrono::Duration::hours(1),
        "{age}"
    );
    // The latest events first (`order=desc`), paged back with `before`; `after` still pages
    // forward.
    let sequences: Vec<i64> = events
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    let latest = *sequences.last().unwrap();
    let path = format!("/v1/admin/accounts/{account}/events");
    let (status, page) = call(
        &server,
        Method::GET,
        &format!("{path}?order=desc&limit=2"),
        Some(&auditor),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let newest: Vec<i64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(
        newest,
        vec![latest, sequences[sequences.len() - 2]],
        "{page}"
    );
    assert_eq!(
        page["events"][0]["recorded_at"],
        events[events.len() - 1]["recorded_at"]
    );
    assert_eq!(page["next_before"], newest[1], "{page}");
    assert!(page["next_after"].is_null(), "{page}");
    let (status, older) = call(
        &server,
        Method::GET,
        &format!("{path}?order=desc&limit=2&before={}", newest[1]),
        Some(&auditor),
        None,
    )
    .await;
    assert_eq!(status, 200, "{older}");
    assert_eq!(
        older["events"][0]["sequence"],
        sequences[sequences.len() - 3],
        "{older}"
    );
    let (status, first) = call(
        &server,
        Method::GET,
        &format!("{path}?order=asc&limit=2&after={}", sequences[0]),
        Some(&auditor),
        None,
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["events"][0]["sequence"], sequences[1], "{first}");
    assert_eq!(first["next_after"], sequences[2], "{first}");
    assert!(first["next_before"].is_null(), "{first}");
    for (query, field) in [
        ("order=newest", "order"),
        ("order=DESC", "order"),
        ("before=0", "before"),
    ] {
        let (status, body) = call(
            &server,
            Method::GET,
            &format!("{path}?{query}"),
            Some(&auditor),
            None,
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_error_shape(&body, "invalid_request");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let params = &doc["paths"]["/v1/admin/accounts/{id}/events"]["get"]["parameters"];
    let order = params
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "order")
        .expect("order documented");
    assert_eq!(order["schema"]["enum"], json!(["asc", "desc"]), "{order}");
    assert!(
        params
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "before"),
        "{params}"
    );
    let event_schema = &doc["components"]["schemas"]["TimelineEvent"];
    assert_eq!(
        event_schema["properties"]["recorded_at"]["format"], "date-time",
        "{event_schema}"
    );

    // Who looked: staff actions are events too.
    let looked: i64 = sqlx::query_scalar(
        "select count(*) from events where aggregate_type = 'Staff' and event_type = 'StaffActionRecorded'
            and payload::text like '%account.events%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(looked >= 2, "{looked}");

    let metrics = server.metrics().await;
    assert!(
        metrics.contains("gatehouse_alerts_raised_total{rule=\"new_device_sign_in\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gatehouse_projection_events_applied_total{projection=\"alerts_v1\"}"),
        "{metrics}"
    );

    // The alerts read model equals a rebuild from zero after the traffic.
    let store = db.store().await;
    let target = last_event(&pool).await;
    eventually("alerts catch up", || {
        let store = store.clone();
        async move {
            let runner = ProjectionRunner::standard(store.clone());
            runner.checkpoint("alerts_v1").await.unwrap() >= target
        }
    })
    .await;
    server.kill().await;
    let live = dump(&pool).await;
    let runner = ProjectionRunner::standard(store.clone());
    runner.rebuild().await.unwrap();
    settle(&runner, &pool, "alerts_v1").await;
    assert_eq!(live, dump(&pool).await);
}

#[tokio::test]
async fn test_stuffing_over_http_flags_the_ip_which_is_then_throttled() {
    let db = TestDb::new().await;
    let mut env: HashMap<String, String> = fast_env();
    env.insert("GATEHOUSE_TRUSTED_PROXIES".into(), "127.0.0.1".into());
    env.insert(
        "GATEHOUSE_ALERT_STUFFING_IP_IDENTIFIERS".into(),
        "10".into(),
    );
    env.insert(
        "GATEHOUSE_ALERT_STUFFING_NET_IDENTIFIERS".into(),
        "10".into(),
    );
    env.insert("GATEHOUSE_FLAGGED_LOGINS_PER_MINUTE".into(), "3".into());
    let server = Server::start(Some(&db.url), &env).await;
    let attempt = |i: usize, ip: &'static str| {
        let server = &server;
        async move {
            let r = server
                .http
                .post(format!("{}/v1/login", server.base))
                .header("x-forwarded-for", ip)
                .json(&json!({"identifier": format!("victim{i}@example.com"), "password": "not-their-password-1"}))
                .send()
                .await
                .unwrap();
            read(r).await
        }
    };
    for i in 0..10 {
        let (status, body) = attempt(i, "203.0.113.9").await;
        assert_eq!(status, 401, "{body}");
    }
    let pool = db.pool().await;
    eventually("the stuffing alert is raised", || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "select count(*) from alerts_v1 where rule = 'credential_stuffing' and subject = 'ip:203.0.113.9' and count = 10",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            n == 1
        }
    })
    .await;
    // From now on the flagged IP gets a stricter limit; other clients are unaffected.
    let mut i = 100;
    eventually("the flagged IP is throttled", || {
        i += 1;
        let n = i;
        let attempt = &attempt;
        async move {
            let (status, body) = attempt(n, "203.0.113.9").await;
            status == 429 && body["error"]["code"] == "rate_limited"
        }
    })
    .await;
    let (status, _) = attempt(1000, "192.0.2.77").await;
    assert_eq!(status, 401);
    let decisions: Vec<String> = sqlx::query_scalar(
        "select payload::text from events where aggregate_type = 'Protection' and event_type = 'NetworkThrottled'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert!(decisions[0].contains("ip:203.0.113.9"), "{decisions:?}");
}
