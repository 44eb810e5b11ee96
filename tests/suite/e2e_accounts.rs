//! Sign-up, input validation, the error shape, and start-up behaviour of the real binary.
use std::collections::HashMap;

use serde_json::json;

use super::support::{assert_error_shape, event_types, fast_env, read, Server, TestDb, PASSWORD};

#[tokio::test]
async fn test_password_policy_refusals_say_why() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let cases = [
        ("elevenchars", "at least 12"),
        (&"x7Kq".repeat(33)[..129], "at most 128"),
        ("password1234", "guess"),
        ("aaaaaaaaaaaaaaaa", "guess"),
        ("123456789012", "guess"),
        ("maryjones-rocks-2024", "email"),
        ("gatehouse-is-my-home-9", "service name"),
    ];
    for (password, why) in cases {
        let (status, body) = server
            .post(
                "/v1/accounts",
                json!({"email": "maryjones@example.com", "password": password}),
            )
            .await;
        assert_eq!(status, 422, "{password}: {body}");
        assert_error_shape_with_field(&body, "weak_password", "password");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(why),
            "{password}: {body}"
        );
    }
    // Twelve code points of a non-breached passphrase, and emoji, are fine.
    server.register("ok1@example.com", "quartz lynx 9").await;
    server
        .register("ok2@example.com", "🦊🌲🔥🐚 mossy 42 ⛵")
        .await;
    let pool = db.pool().await;
    let count: i64 =
        sqlx::query_scalar("select count(*) from events where event_type = 'AccountRegistered'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(count, 2, "refused sign-ups write nothing");
}

fn assert_error_shape_with_field(body: &serde_json::Value, code: &str, field: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
}

#[tokio::test]
async fn test_identifiers_are_validated_and_required() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let (status, body) = server
        .post("/v1/accounts", json!({"password": PASSWORD}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "identifier_required");
    let (status, body) = server
        .post(
            "/v1/accounts",
            json!({"email": "not-an-email", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_email"))
    );
    let (status, body) = server
        .post(
            "/v1/accounts",
            json!({"phone": "0612345678", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_phone"))
    );

    // Phone-only accounts sign in with the number in any common spelling.
    let (status, _) = server
        .post(
            "/v1/accounts",
            json!({"phone": "+44 20 7946 0958", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201);
    let token = server.token("+442079460958", PASSWORD).await;
    let (status, me) = server.authed(reqwest::Method::GET, "/v1/me", &token).await;
    assert_eq!(status, 200);
    assert_eq!(me["phone"], "+44*******958", "{me}");
    assert!(me["email"].is_null(), "{me}");
}

#[tokio::test]
async fn test_duplicate_sign_up_looks_like_success_and_is_recorded_on_the_holder() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let holder = server.register("dup@example.com", PASSWORD).await;
    let (status, body) = server
        .post(
            "/v1/accounts",
            json!({"email": "DUP@example.com", "password": "another-strong-pass-77"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let decoy = body["account_id"].as_str().unwrap();
    assert_ne!(decoy, holder);
    // The second password does not open the account, the first still does.
    assert_eq!(
        server
            .login("dup@example.com", "another-strong-pass-77")
            .await
            .0,
        401
    );
    server.token("dup@example.com", PASSWORD).await;
    let pool = db.pool().await;
    assert!(event_types(&pool, &holder)
        .await
        .contains(&"DuplicateRegistrationAttempted".to_string()));
    // The decoy id holds only the answer's verification flow, which sends nothing.
    assert_eq!(
        event_types(&pool, decoy).await,
        vec!["FlowStarted".to_string(), "CodeIssued".to_string()]
    );
    let deliverable: Vec<bool> = sqlx::query_scalar(
        "select (payload->'fact'->'CodeIssued'->>'deliverable')::boolean from events
          where aggregate_id = $1 and event_type = 'CodeIssued'",
    )
    .bind(decoy)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(deliverable, vec![false]);
}

#[tokio::test]
async fn test_malformed_requests_get_the_error_shape_never_a_500() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let url = |p: &str| format!("{}{p}", server.base);
    // No connection reuse: the server answers an oversized body with 413 and closes the
    // connection before reading it all, which a pooled connection would trip over.
    gatehouse_api::install_tls_provider();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    // Four times the 16 KiB limit. Not megabytes: the server answers 413 without reading the
    // body and closes, and a client still writing a body larger than the socket buffers then
    // fails with a broken pipe instead of reading the answer (seen under load).
    let huge = "a".repeat(64 * 1024);
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            http.post(url("/v1/login")).body("{}"),
            415,
            "unsupported_media_type",
        ),
        (
            server
                .http
                .post(url("/v1/login"))
                .header("content-type", "application/json")
                .body("{nope"),
            400,
            "invalid_request",
        ),
        (
            server
                .http
                .post(url("/v1/login"))
                .json(&json!({"identifier": 5, "password": "x"})),
            400,
            "invalid_request",
        ),
        (
            server
                .http
                .post(url("/v1/login"))
                .json(&json!({"identifier": "a@b.co"})),
            400,
            "invalid_request",
        ),
        (
            server
                .http
                .post(url("/v1/login"))
                .json(&json!({"identifier": "a@b.co", "password": "x", "extra": 1})),
            400,
            "invalid_request",
        ),
        (
            server
                .http
                .post(url("/v1/login"))
                .json(&json!({"identifier": "a@b.co", "password": huge})),
            413,
            "payload_too_large",
        ),
        (
            http.post(url("/v1/accounts")).json(&json!([1, 2])),
            400,
            "invalid_request",
        ),
        (http.get(url("/v1/me/sessions")), 401, "unauthenticated"),
        (
            server
                .http
                .get(url("/v1/me/sessions"))
                .bearer_auth("gh1.garbage"),
            401,
            "unauthenticated",
        ),
        (
            server
                .http
                .delete(url("/v1/me/sessions/not-a-uuid"))
                .bearer_auth("x"),
            401,
            "unauthenticated",
        ),
        (http.get(url("/v1/nowhere")), 404, "not_found"),
        (http.put(url("/v1/login")), 405, "method_not_allowed"),
    ];
    for (i, (request, status, code)) in cases.into_iter().enumerate() {
        let (got, body) = read(request.send().await.unwrap()).await;
        assert_eq!(got, status, "case {i}: {body}");
        assert_error_shape(&body, code);
        let text = body.to_string().to_lowercase();
        for leak in ["panic", "sqlx", "postgres", "stack", "src/"] {
            assert!(!text.contains(leak), "case {i} leaks {leak}: {body}");
        }
    }
}

#[tokio::test]
async fn test_service_documents() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let (status, body) = read(
        server
            .http
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = read(
        server
            .http
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["store"].as_str()), (200, Some("postgres")));
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
    for path in [
        "/metrics",
        "/v1/accounts",
        "/v1/login",
        "/v1/logout",
        "/v1/me/sessions",
        "/v1/me/sessions/{session_id}",
        "/v1/me/login-history",
        "/v1/me/lockout",
        "/v1/me/email",
        "/v1/me/phone",
        "/v1/me/anti-phishing-phrase",
        "/v1/me/restrictions",
        "/v1/password/forgot",
        "/v1/password/reset",
        "/v1/unlock/request",
        "/v1/unlock/confirm",
        "/v1/verify",
        "/v1/flows/{flow_id}",
        "/v1/flows/{flow_id}/resend",
    ] {
        assert!(doc["paths"].get(path).is_some(), "OpenAPI lacks {path}");
    }
    for schema in ["FlowView", "ResetRequest", "RestrictionsView", "ErrorBody"] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "OpenAPI lacks the {schema} schema"
        );
    }
    // Every reference resolves (a type alias in a `request_body` would leave a dangling one).
    fn refs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        ("$ref", Some(target)) => out.push(target.to_string()),
                        _ => refs(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for target in found {
        let name = target.trim_start_matches("#/components/schemas/");
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling OpenAPI reference {target}"
        );
    }
    // Every sensitive route takes the one `proof` object (issue #17).
    let schema_of = |path: &str, method: &str| {
        let body =
            &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
        let name = body["$ref"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("#/components/schemas/")
            .to_string();
        doc["components"]["schemas"][name.as_str()].clone()
    };
    for (path, method) in [
        ("/v1/me/totp/confirm", "post"),
        ("/v1/me/totp", "delete"),
        ("/v1/me/backup-codes", "post"),
        ("/v1/me/security-keys", "post"),
        ("/v1/me/security-keys/{key_id}", "delete"),
        ("/v1/me/email", "put"),
        ("/v1/me/phone", "put"),
        ("/v1/me/password", "put"),
        ("/v1/password/reset", "post"),
        ("/v1/me/step-up", "post"),
        ("/v1/me/anti-phishing-phrase", "put"),
        ("/v1/me/anti-phishing-phrase", "delete"),
    ] {
        let schema = schema_of(path, method);
        assert!(
            schema["properties"]["proof"].is_object(),
            "{method} {path} does not take `proof`: {schema}"
        );
        let responses = &doc["paths"][path][method]["responses"];
        assert!(
            responses.get("403").is_some(),
            "{method} {path} documents no 403"
        );
    }
    // Metrics: every read model reports its lag, which returns to zero once it catches up.
    server.register("metrics@example.com", PASSWORD).await;
    super::support::eventually("projections report zero lag", || async {
        let r = server
            .http
            .get(format!("{}/metrics", server.base))
            .bearer_auth(super::support::METRICS_TOKEN)
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        [
            "lockout_state_v1",
            "login_history_v1",
            "sessions_v1",
            "notification_outbox_v1",
        ]
        .iter()
        .all(|p| {
            text.contains(&format!(
                "gatehouse_projection_lag_events{{projection=\"{p}\"}} 0"
            ))
        })
    })
    .await;
    let r = server
        .http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn test_postgres_without_master_key_refuses_to_start_and_says_how_to_fix() {
    let db = TestDb::new().await;
    let mut cmd = tokio::process::Command::new(super::support::binary());
    let out = cmd
        .arg("serve")
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("GATEHOUSE_MASTER_KEY") && stderr.contains("gatehouse keygen"),
        "{stderr}"
    );

    let out = tokio::process::Command::new(super::support::binary())
        .arg("serve")
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("GATEHOUSE_MASTER_KEY", "too-short")
        .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("64 hex characters"));
}

#[tokio::test]
async fn test_embedded_store_is_durable_across_restarts() {
    let dir = std::env::temp_dir().join(format!("gatehouse-e2e-{}", uuid::Uuid::new_v4().simple()));
    let mut env: HashMap<String, String> = fast_env();
    env.insert("GATEHOUSE_DATA_DIR".into(), dir.display().to_string());
    let first = Server::start(None, &env).await;
    first.register("local@example.com", PASSWORD).await;
    let token = first.token("local@example.com", PASSWORD).await;
    first.kill().await;
    let key = std::fs::read_to_string(dir.join("master.key")).unwrap();
    assert_eq!(key.trim().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "master.key must be private to its owner");
    }

    let second = Server::start(None, &env).await;
    let (status, sessions) = second
        .authed(reqwest::Method::GET, "/v1/me/sessions", &token)
        .await;
    assert_eq!(status, 200, "{sessions}");
    second.token("local@example.com", PASSWORD).await;
    let (_, ready) = read(
        second
            .http
            .get(format!("{}/readyz", second.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ready["store"], "embedded");
    // Neither the password, the token nor the email are in the file in clear.
    second.kill().await;
    let mut bytes = std::fs::read(dir.join("gatehouse.db")).unwrap();
    if let Ok(wal) = std::fs::read(dir.join("gatehouse.db-wal")) {
        bytes.extend(wal);
    }
    let secret = token.rsplit('.').next().unwrap();
    for needle in [PASSWORD, secret, "local@example.com"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} found in the embedded store"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn test_server_refuses_a_master_key_other_than_the_stores() {
    let db = TestDb::new().await;
    let first = Server::start(Some(&db.url), &fast_env()).await;
    first.register("keyed@example.com", PASSWORD).await;
    first.kill().await;

    let mut env = fast_env();
    env.insert("GATEHOUSE_MASTER_KEY".into(), "ab".repeat(32));
    let refused = Server::try_start(Some(&db.url), &env).await;
    let stderr = match refused {
        Ok(_) => panic!("a server with another master key must not start"),
        Err(stderr) => stderr,
    };
    assert!(
        stderr.contains("not the key this store was set up with"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&"ab".repeat(32)),
        "the key must not be echoed"
    );

    // The original key still works, and the account is still found.
    let again = Server::start(Some(&db.url), &fast_env()).await;
    again.token("keyed@example.com", PASSWORD).await;
}

#[tokio::test]
async fn test_claims_left_by_a_crashed_sign_up_are_reclaimed_once_stale() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let keys = gatehouse_api::keys::Keys::from_master_hex(super::support::TEST_MASTER_KEY).unwrap();
    let pool = db.pool().await;
    let now_ms = chrono::Utc::now().timestamp_millis();
    // A crash between the claim and the first event leaves a claim whose account has no events.
    for (email, age_ms) in [
        ("recent@example.com", 0),
        ("stale@example.com", 10 * 60 * 1000),
    ] {
        sqlx::query("insert into identifier_claims (lookup, account_id, kind, claimed_ms) values ($1, $2, 'Email', $3)")
            .bind(keys.lookup(email))
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(now_ms - age_ms)
            .execute(&pool)
            .await
            .unwrap();
    }
    // A recent claim may belong to a sign-up still in flight: it is respected.
    server.register("recent@example.com", PASSWORD).await;
    assert_eq!(server.login("recent@example.com", PASSWORD).await.0, 401);
    // A stale one is released and the sign-up goes through.
    server.register("stale@example.com", PASSWORD).await;
    server.token("stale@example.com", PASSWORD).await;
}
