//! Sessions over HTTP: list, revoke one, revoke others, logout, idle and absolute expiry; login
//! history and lockout views.
use reqwest::Method;

use super::support::{assert_error_shape, eventually, fast_env, Server, TestDb, PASSWORD};

#[tokio::test]
async fn test_revoked_tokens_fail_on_their_very_next_use() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    server.register("sam@example.com", PASSWORD).await;
    let a = server.token("sam@example.com", PASSWORD).await;
    let b = server.token("sam@example.com", PASSWORD).await;
    let c = server.token("sam@example.com", PASSWORD).await;

    let (_, me) = server.authed(Method::GET, "/v1/me", &a).await;
    assert_eq!(me["email"], "s*m@example.com", "{me}");
    let (status, list) = server.authed(Method::GET, "/v1/me/sessions", &a).await;
    assert_eq!(status, 200);
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let token_hashes: Vec<String> = sqlx::query_scalar("select payload::text from events")
        .fetch_all(&db.pool().await)
        .await
        .unwrap();
    assert!(token_hashes
        .iter()
        .all(|p| !p.contains(a.rsplit('.').next().unwrap())));

    // Revoke b from a: b fails immediately, a and c still work.
    let b_id = b.split('.').nth(2).unwrap();
    let (status, _) = server
        .authed(Method::DELETE, &format!("/v1/me/sessions/{b_id}"), &a)
        .await;
    assert_eq!(status, 204);
    let (status, body) = server.authed(Method::GET, "/v1/me", &b).await;
    assert_eq!(status, 401);
    assert_error_shape(&body, "unauthenticated");
    // Revoking it again: not found.
    let (status, _) = server
        .authed(Method::DELETE, &format!("/v1/me/sessions/{b_id}"), &a)
        .await;
    assert_eq!(status, 404);

    // Revoke all others from c.
    let (status, body) = server.authed(Method::DELETE, "/v1/me/sessions", &c).await;
    assert_eq!((status, body["revoked"].as_u64()), (200, Some(1)));
    assert_eq!(server.authed(Method::GET, "/v1/me", &a).await.0, 401);
    assert_eq!(server.authed(Method::GET, "/v1/me", &c).await.0, 200);

    // Logout: the token is dead on the next request.
    assert_eq!(server.authed(Method::POST, "/v1/logout", &c).await.0, 204);
    assert_eq!(server.authed(Method::GET, "/v1/me", &c).await.0, 401);
    assert_eq!(server.authed(Method::POST, "/v1/logout", &c).await.0, 401);

    // Every ending is recorded with who asked and from where.
    let ended: Vec<serde_json::Value> = sqlx::query_scalar(
        "select payload from events where event_type = 'SessionEnded' order by sequence",
    )
    .fetch_all(&db.pool().await)
    .await
    .unwrap();
    assert_eq!(ended.len(), 3, "revoked b, revoked a, logged out c");
    for e in &ended {
        assert_eq!(
            e["fact"]["SessionEnded"]["context"]["ip"], "127.0.0.1",
            "{e}"
        );
    }

    // A token with a valid shape but a forged secret is refused.
    let forged = format!("{}.{}", a.rsplit_once('.').unwrap().0, "A".repeat(43));
    assert_eq!(server.authed(Method::GET, "/v1/me", &forged).await.0, 401);
}

#[tokio::test]
async fn test_sessions_expire_when_idle_and_at_their_absolute_limit() {
    let db = TestDb::new().await;
    let mut env = fast_env();
    env.insert("GATEHOUSE_SESSION_IDLE_SECONDS".into(), "1".into());
    env.insert("GATEHOUSE_SESSION_ABSOLUTE_SECONDS".into(), "3".into());
    let server = Server::start(Some(&db.url), &env).await;
    server.register("eve@example.com", PASSWORD).await;

    let idle = server.token("eve@example.com", PASSWORD).await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(
        server.authed(Method::GET, "/v1/me", &idle).await.0,
        401,
        "idle session must expire"
    );

    // Used every 400 ms, a session stays alive past its idle limit but not past the absolute one.
    let busy = server.token("eve@example.com", PASSWORD).await;
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_millis(2500) {
        assert_eq!(
            server.authed(Method::GET, "/v1/me", &busy).await.0,
            200,
            "at {:?}",
            started.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(
        server.authed(Method::GET, "/v1/me", &busy).await.0,
        401,
        "absolute limit must hold"
    );
}

#[tokio::test]
async fn test_login_history_pages_and_lockout_view() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    server.register("hal@example.com", PASSWORD).await;
    for _ in 0..3 {
        server.login("hal@example.com", "wrong-password-123").await;
    }
    let token = server
        .http
        .post(format!("{}/v1/login", server.base))
        .header("user-agent", "history-test/1.0")
        .json(&serde_json::json!({"identifier": "hal@example.com", "password": PASSWORD, "device_id": "laptop-7"}))
        .send()
        .await
        .unwrap();
    let token = super::support::read(token).await.1["session_token"]
        .as_str()
        .unwrap()
        .to_string();

    eventually("login history catches up", || async {
        let (_, page) = server
            .authed(Method::GET, "/v1/me/login-history?limit=10", &token)
            .await;
        page["entries"].as_array().is_some_and(|e| e.len() == 4)
    })
    .await;
    let (_, first) = server
        .authed(Method::GET, "/v1/me/login-history?limit=3", &token)
        .await;
    let entries = first["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["outcome"], "succeeded");
    assert_eq!(entries[0]["device_id"], "laptop-7");
    assert_eq!(entries[0]["user_agent"], "history-test/1.0");
    assert_eq!(entries[0]["ip"], "127.0.0.1");
    assert_eq!(entries[1]["outcome"], "failed");
    assert_eq!(entries[1]["reason"], "wrong_password");
    let cursor = first["next_cursor"].as_i64().unwrap();
    let (_, second) = server
        .authed(
            Method::GET,
            &format!("/v1/me/login-history?limit=3&cursor={cursor}"),
            &token,
        )
        .await;
    assert_eq!(second["entries"].as_array().unwrap().len(), 1);
    assert!(second["next_cursor"].is_null());

    let (status, body) = server
        .authed(Method::GET, "/v1/me/login-history?limit=0", &token)
        .await;
    assert_eq!(status, 400);
    assert_error_shape(&body, "invalid_request");
    let (status, _) = server
        .authed(Method::GET, "/v1/me/login-history?limit=abc", &token)
        .await;
    assert_eq!(status, 400);

    let (status, lockout) = server.authed(Method::GET, "/v1/me/lockout", &token).await;
    assert_eq!(status, 200);
    assert_eq!(lockout["locked"], false);
    assert_eq!(
        lockout["consecutive_failures"], 0,
        "a success resets the count: {lockout}"
    );
    assert_eq!(lockout["remaining_attempts"], 5);
}

#[tokio::test]
async fn test_one_account_cannot_touch_another_accounts_sessions() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    server.register("alice@example.com", PASSWORD).await;
    server.register("mallory@example.com", PASSWORD).await;
    let alice = server.token("alice@example.com", PASSWORD).await;
    let mallory = server.token("mallory@example.com", PASSWORD).await;

    // Revoking Alice's session id from Mallory's session: not found, and Alice is still in.
    let alice_session = alice.split('.').nth(2).unwrap();
    let (status, body) = server
        .authed(
            Method::DELETE,
            &format!("/v1/me/sessions/{alice_session}"),
            &mallory,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(server.authed(Method::GET, "/v1/me", &alice).await.0, 200);

    // Mallory's secret under Alice's account and session ids: refused.
    let parts: Vec<&str> = alice.split('.').collect();
    let grafted = format!(
        "gh1.{}.{}.{}",
        parts[1],
        parts[2],
        mallory.rsplit('.').next().unwrap()
    );
    assert_eq!(server.authed(Method::GET, "/v1/me", &grafted).await.0, 401);
    // Alice's own token with Mallory's account id: refused too.
    let moved = format!(
        "gh1.{}.{}.{}",
        mallory.split('.').nth(1).unwrap(),
        parts[2],
        parts[3]
    );
    assert_eq!(server.authed(Method::GET, "/v1/me", &moved).await.0, 401);
    // Revoking everything else from Mallory's session leaves Alice's session alone.
    server
        .authed(Method::DELETE, "/v1/me/sessions", &mallory)
        .await;
    assert_eq!(server.authed(Method::GET, "/v1/me", &alice).await.0, 200);
}
