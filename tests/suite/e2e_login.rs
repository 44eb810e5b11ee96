//! Sign-in over HTTP against the real binary and PostgreSQL: lockout, unknown identifiers,
//! concurrency, rehash.
use std::collections::HashMap;

use serde_json::json;

use super::support::{assert_error_shape, event_types, fast_env, Server, TestDb, PASSWORD};

fn short_lockout() -> HashMap<String, String> {
    let mut env = fast_env();
    env.insert("GATEHOUSE_LOCKOUT_SECONDS".into(), "2".into());
    env.insert("GATEHOUSE_LOCKOUT_MAX_SECONDS".into(), "60".into());
    env
}

#[tokio::test]
async fn test_register_login_lock_expire_login() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &short_lockout()).await;
    let account = server.register("ann@example.com", PASSWORD).await;
    server.token("ann@example.com", PASSWORD).await;

    for attempt in 1..=4 {
        let (status, body) = server.login("ann@example.com", "wrong-password-123").await;
        assert_eq!(status, 401, "attempt {attempt}: {body}");
        assert_error_shape(&body, "invalid_credentials");
    }
    // The fifth failure locks; from then on even the right password is refused.
    let (status, body) = server.login("ann@example.com", "wrong-password-123").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "account_locked");
    assert!(
        body["error"]["retry_after"]
            .as_i64()
            .is_some_and(|s| (1..=2).contains(&s)),
        "{body}"
    );
    let (status, _) = server.login("ann@example.com", PASSWORD).await;
    assert_eq!(
        status, 429,
        "the right password must not open a locked account"
    );

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    server.token("ann@example.com", PASSWORD).await;

    let pool = db.pool().await;
    // Sign-in facts only: the sign-up's verification flow and its delivery are checked elsewhere.
    let types: Vec<String> = event_types(&pool, &account)
        .await
        .into_iter()
        .filter(|t| !t.starts_with("Notification") && t != "FlowStarted" && t != "CodeIssued")
        .collect();
    let expected = [
        "AccountRegistered",
        "LoginSucceeded",
        "DeviceTrusted",
        "SessionStarted",
        "LoginFailed",
        "LoginFailed",
        "LoginFailed",
        "LoginFailed",
        "LoginFailed",
        "AccountLocked",
        "LoginRejectedWhileLocked",
        "LoginSucceeded",
        "DeviceTrusted",
        "SessionStarted",
    ];
    assert_eq!(types, expected);
}

#[tokio::test]
async fn test_lock_doubles_on_repeat() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &short_lockout()).await;
    server.register("rex@example.com", PASSWORD).await;
    for _ in 0..5 {
        server.login("rex@example.com", "wrong-password-123").await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    for _ in 0..4 {
        let (status, _) = server.login("rex@example.com", "wrong-password-123").await;
        assert_eq!(status, 401);
    }
    let (status, body) = server.login("rex@example.com", "wrong-password-123").await;
    assert_eq!(status, 429);
    let retry = body["error"]["retry_after"].as_i64().unwrap();
    assert!(
        (3..=4).contains(&retry),
        "second lock should last 4 s, got {retry}"
    );
}

#[tokio::test]
async fn test_unknown_identifier_is_indistinguishable_and_recorded() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &short_lockout()).await;
    server.register("known@example.com", PASSWORD).await;

    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..6 {
        known.push(
            server
                .login("known@example.com", "wrong-password-123")
                .await,
        );
        unknown.push(
            server
                .login("ghost@example.com", "wrong-password-123")
                .await,
        );
    }
    for (k, u) in known.iter().zip(&unknown) {
        assert_eq!(k.0, u.0);
        let mut u_body = u.1.clone();
        let mut k_body = k.1.clone();
        // retry_after may differ by the second boundary between the two requests.
        for b in [&mut u_body, &mut k_body] {
            if let Some(e) = b["error"].as_object_mut() {
                e.remove("retry_after");
            }
        }
        assert_eq!(k_body, u_body);
    }
    assert_eq!(unknown[4].0, 429);
    assert_eq!(unknown[5].0, 429);

    // The attempts are recorded on a stand-in aggregate, never naming the identifier in clear.
    let pool = db.pool().await;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select aggregate_id, event_type from events where aggregate_id like 'unknown-%' order by sequence",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let types: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(
        types,
        [
            "LoginFailed",
            "LoginFailed",
            "LoginFailed",
            "LoginFailed",
            "LoginFailed",
            "AccountLocked",
            "LoginRejectedWhileLocked"
        ]
    );
    assert!(rows.iter().all(|r| !r.0.contains("ghost")));
    let leaked: i64 =
        sqlx::query_scalar("select count(*) from events where payload::text like '%ghost%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(leaked, 0);
}

#[tokio::test]
async fn test_hundred_parallel_wrong_passwords_are_all_recorded_and_lock_once() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let account = server.register("race@example.com", PASSWORD).await;

    let requests = (0..100).map(|i| {
        let server = &server;
        async move {
            server
                .login("race@example.com", &format!("wrong-password-{i:03}"))
                .await
                .0
        }
    });
    let statuses = futures::future::join_all(requests).await;
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    let locked = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(unauthorized + locked, 100, "{statuses:?}");
    assert_eq!(
        unauthorized, 4,
        "only the threshold's worth of guesses is checked"
    );

    let pool = db.pool().await;
    let types = event_types(&pool, &account).await;
    let count = |t: &str| types.iter().filter(|x| *x == t).count();
    assert_eq!(
        count("LoginFailed") + count("LoginRejectedWhileLocked"),
        100,
        "every attempt is an event"
    );
    assert_eq!(
        count("LoginFailed"),
        5,
        "no more than the threshold is evaluated"
    );
    assert_eq!(count("AccountLocked"), 1);
}

#[tokio::test]
async fn test_login_rehashes_when_parameters_change() {
    let db = TestDb::new().await;
    let old = Server::start(Some(&db.url), &fast_env()).await;
    let account = old.register("hash@example.com", PASSWORD).await;
    old.kill().await;

    let mut env = fast_env();
    env.insert("GATEHOUSE_ARGON2_MEMORY_KIB".into(), "2048".into());
    let new = Server::start(Some(&db.url), &env).await;
    new.token("hash@example.com", PASSWORD).await;
    new.token("hash@example.com", PASSWORD).await;

    let pool = db.pool().await;
    let hashes: Vec<serde_json::Value> = sqlx::query_scalar(
        "select payload from events where aggregate_id = $1 and event_type in ('AccountRegistered', 'PasswordRehashed') order by sequence",
    )
    .bind(&account)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        hashes.len(),
        2,
        "exactly one rehash, on the first login with new parameters"
    );
    let phc = |v: &serde_json::Value| v.to_string();
    assert!(
        phc(&hashes[0]).contains("$argon2id$v=19$m=1024,t=1,p=1$"),
        "{}",
        hashes[0]
    );
    assert!(
        phc(&hashes[1]).contains("$argon2id$v=19$m=2048,t=1,p=1$"),
        "{}",
        hashes[1]
    );
}

#[tokio::test]
async fn test_password_is_not_truncated_and_normalised() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let long: String = "river stone lamp orbit "
        .repeat(5)
        .chars()
        .take(100)
        .collect();
    assert_eq!(long.chars().count(), 100);
    server.register("long@example.com", &long).await;
    server.token("long@example.com", &long).await;
    for variant in [
        long.chars().take(72).collect::<String>(),
        long.chars().take(99).collect(),
        format!("{long}x"),
    ] {
        let (status, _) = server.login("long@example.com", &variant).await;
        assert_eq!(
            status,
            401,
            "variant of length {} must fail",
            variant.chars().count()
        );
    }
    // Precomposed é at sign-up, decomposed at sign-in.
    server
        .register("accent@example.com", "caf\u{e9} m\u{e9}t\u{e9}orite 4821")
        .await;
    server
        .token(
            "accent@example.com",
            "cafe\u{301} me\u{301}te\u{301}orite 4821",
        )
        .await;
}

#[tokio::test]
async fn test_client_ip_honours_forwarded_for_only_from_trusted_proxies() {
    let db = TestDb::new().await;
    let plain = Server::start(Some(&db.url), &fast_env()).await;
    plain.register("ip@example.com", PASSWORD).await;
    let send = |server: &Server| {
        server
            .http
            .post(format!("{}/v1/login", server.base))
            .header("x-forwarded-for", "198.51.100.7")
            .json(&json!({"identifier": "ip@example.com", "password": PASSWORD}))
            .send()
    };
    let (_, body) = super::support::read(send(&plain).await.unwrap()).await;
    let token = body["session_token"].as_str().unwrap().to_string();
    let mut env = fast_env();
    env.insert("GATEHOUSE_TRUSTED_PROXIES".into(), "127.0.0.1".into());
    let proxied = Server::start(Some(&db.url), &env).await;
    super::support::read(send(&proxied).await.unwrap()).await;

    let (_, sessions) = plain
        .authed(reqwest::Method::GET, "/v1/me/sessions", &token)
        .await;
    let ips: Vec<&str> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ip"].as_str().unwrap())
        .collect();
    assert!(ips.contains(&"127.0.0.1"), "{sessions}");
    assert!(ips.contains(&"198.51.100.7"), "{sessions}");
    assert_eq!(ips.len(), 2);
}
