//! Staff tokens expire (GATEHOUSE_STAFF_TOKEN_SECONDS), are reissued and revoked by admins over
//! HTTP and from the command line (`gatehouse staff list|token|revoke`), each recorded on the
//! member's `Staff` aggregate; an expired or revoked token is refused exactly like an unknown one.
use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::support::{assert_error_shape, binary, event_types, fast_env, Server, TestDb};

/// Runs `gatehouse staff …` against the test database: (exit success, stdout, stderr).
async fn staff_cli(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(binary());
    cmd.arg("staff")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("GATEHOUSE_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

async fn bootstrap(db: &TestDb, name: &str, role: &str) -> (String, String) {
    let (ok, stdout, stderr) =
        staff_cli(db, &["create", "--name", name, "--role", role], &[]).await;
    assert!(ok, "{stderr}");
    let token = stdout.trim().to_string();
    let id = token.split('.').nth(1).unwrap().to_string();
    (id, token)
}

async fn call(server: &Server, method: Method, path: &str, token: &str) -> (u16, Value) {
    server.authed(method, path, token).await
}

/// A staff route every role may not use; the alerts list needs analyst or admin.
async fn alerts(server: &Server, token: &str) -> (u16, Value) {
    call(server, Method::GET, "/v1/admin/alerts", token).await
}

/// The answer to a staff token that never existed (same member id, made-up secret).
async fn unknown_answer(server: &Server, token: &str) -> (u16, Value) {
    let id = token.split('.').nth(1).unwrap();
    alerts(server, &format!("ghs1.{id}.{}", "A".repeat(43))).await
}

#[tokio::test]
async fn test_staff_tokens_expire_and_admins_reissue_and_revoke_them_over_http() {
    let db = TestDb::new().await;
    // The admin's token comes from the command line with the default lifetime (30 days).
    let (_, admin) = bootstrap(&db, "root", "admin").await;
    let mut env: HashMap<String, String> = fast_env();
    env.insert("GATEHOUSE_STAFF_TOKEN_SECONDS".into(), "2".into());
    let server = Server::start(Some(&db.url), &env).await;

    // A member created by the admin gets a token that lives 2 s.
    let (status, body) = server
        .post_authed(
            "/v1/admin/staff",
            &admin,
            json!({"name": "ana", "roles": ["analyst"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let analyst_id = body["staff_id"].as_str().unwrap().to_string();
    let first = body["token"].as_str().unwrap().to_string();
    assert_eq!(alerts(&server, &first).await.0, 200);
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let expired = alerts(&server, &first).await;
    assert_eq!(expired.0, 401);
    assert_error_shape(&expired.1, "unauthenticated");
    assert_eq!(expired, unknown_answer(&server, &first).await);
    // The admin's own token carries its own expiry (30 days), whatever the server's setting.
    assert_eq!(alerts(&server, &admin).await.0, 200);

    // Reissue: a new token, shown once; the old one stays dead.
    let path = format!("/v1/admin/staff/{analyst_id}/tokens");
    let (status, body) = call(&server, Method::POST, &path, &admin).await;
    assert_eq!(status, 201, "{body}");
    let second = body["token"].as_str().unwrap().to_string();
    assert_eq!(body["staff_id"], analyst_id.as_str());
    assert!(
        body["token_id"].as_str().is_some_and(|t| t.len() == 36),
        "{body}"
    );
    assert!(body["expires_at"].is_string(), "{body}");
    assert_eq!(alerts(&server, &second).await.0, 200);
    assert_eq!(alerts(&server, &first).await.0, 401);
    // A reissue ends the token it replaces at once.
    let (status, body) = call(&server, Method::POST, &path, &admin).await;
    assert_eq!(status, 201, "{body}");
    let third = body["token"].as_str().unwrap().to_string();
    assert_eq!(alerts(&server, &second).await.0, 401);
    assert_eq!(alerts(&server, &third).await.0, 200);

    // Only admins: the analyst may neither reissue nor revoke, not even their own.
    let (status, body) = call(&server, Method::POST, &path, &third).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(&server, Method::DELETE, &path, &third).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = server.post("/v1/admin/staff/x/tokens", json!({})).await;
    assert_eq!(status, 401, "{body}");
    // An unknown member is a 404 in the standard shape.
    for missing in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_string()] {
        let (status, body) = call(
            &server,
            Method::DELETE,
            &format!("/v1/admin/staff/{missing}/tokens"),
            &admin,
        )
        .await;
        assert_eq!(status, 404, "{body}");
        assert_error_shape(&body, "not_found");
    }

    // Revoke: 204, and the live token answers like an unknown one.
    let (status, body) = call(&server, Method::DELETE, &path, &admin).await;
    assert_eq!(status, 204, "{body}");
    let revoked = alerts(&server, &third).await;
    assert_eq!(revoked.0, 401);
    assert_eq!(revoked, unknown_answer(&server, &third).await);

    // Each change is a fact on the member's aggregate.
    let pool = db.pool().await;
    let types = event_types(&pool, &analyst_id).await;
    let tokens: Vec<&String> = types.iter().filter(|t| t.contains("Token")).collect();
    assert_eq!(
        tokens,
        vec!["StaffTokenIssued", "StaffTokenIssued", "StaffTokensRevoked"],
        "{types:?}"
    );
}

#[tokio::test]
async fn test_staff_command_line_lists_reissues_and_revokes_tokens() {
    let db = TestDb::new().await;
    let (admin_id, admin) = bootstrap(&db, "root", "admin").await;
    let (auditor_id, first) = bootstrap(&db, "audrey", "auditor").await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let events = format!("/v1/admin/accounts/{}/events", uuid::Uuid::new_v4());
    assert_eq!(call(&server, Method::GET, &events, &first).await.0, 200);

    let (ok, list, stderr) = staff_cli(&db, &["list"], &[]).await;
    assert!(ok, "{stderr}");
    for needle in [
        admin_id.as_str(),
        auditor_id.as_str(),
        "root",
        "audrey",
        "auditor",
        "valid until",
    ] {
        assert!(list.contains(needle), "{needle} missing from:\n{list}");
    }

    // `token`: a new token alone on stdout; the old one stops working.
    let (ok, stdout, stderr) = staff_cli(&db, &["token", "--id", &auditor_id], &[]).await;
    assert!(ok, "{stderr}");
    let second = stdout.trim().to_string();
    assert!(second.starts_with(&format!("ghs1.{auditor_id}.")) && !second.contains('\n'));
    assert_eq!(call(&server, Method::GET, &events, &second).await.0, 200);
    assert_eq!(call(&server, Method::GET, &events, &first).await.0, 401);

    // `revoke`: nothing on stdout; no token of the member works.
    let (ok, stdout, stderr) = staff_cli(&db, &["revoke", "--id", &auditor_id], &[]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(call(&server, Method::GET, &events, &second).await.0, 401);
    assert_eq!(alerts(&server, &admin).await.0, 200);
    let (_, list, _) = staff_cli(&db, &["list"], &[]).await;
    let line = list.lines().find(|l| l.starts_with(&auditor_id)).unwrap();
    assert!(line.contains("revoked"), "{list}");

    // A token issued with a lifetime that has run out is listed as expired and refused.
    let (ok, stdout, _) = staff_cli(
        &db,
        &["token", "--id", &auditor_id],
        &[("GATEHOUSE_STAFF_TOKEN_SECONDS", "1")],
    )
    .await;
    assert!(ok);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        call(&server, Method::GET, &events, stdout.trim()).await.0,
        401
    );
    let (_, list, _) = staff_cli(&db, &["list"], &[]).await;
    let line = list.lines().find(|l| l.starts_with(&auditor_id)).unwrap();
    assert!(line.contains("expired"), "{list}");

    // Unknown members and bad settings fail with a message, never a panic.
    let (ok, _, stderr) = staff_cli(
        &db,
        &["revoke", "--id", &uuid::Uuid::new_v4().to_string()],
        &[],
    )
    .await;
    assert!(!ok && stderr.contains("not_found"), "{stderr}");
    let (ok, _, stderr) =
        staff_cli(&db, &["list"], &[("GATEHOUSE_STAFF_TOKEN_SECONDS", "0")]).await;
    assert!(
        !ok && stderr.contains("GATEHOUSE_STAFF_TOKEN_SECONDS"),
        "{stderr}"
    );
}

#[tokio::test]
async fn test_a_token_from_before_expiry_counts_from_the_members_creation() {
    // `StaffCreated` events written before tokens expired carry no expiry: such a token expires
    // GATEHOUSE_STAFF_TOKEN_SECONDS after the member was created.
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let secret = "A".repeat(43);
    let hash = {
        use sha2::Digest as _;
        sha2::Sha256::digest(secret.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let mut tokens = Vec::new();
    for days_ago in [29, 31] {
        let id = uuid::Uuid::new_v4().to_string();
        let at = chrono::Utc::now() - chrono::Duration::days(days_ago);
        let payload = json!({
            "at": at,
            "prev": gatehouse_domain::chain::GENESIS,
            "fact": {"StaffCreated": {
                "name": format!("legacy-{days_ago}"), "roles": ["analyst"],
                "token_hash": hash, "created_by": null
            }}
        });
        sqlx::query(
            "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             values ('Staff', $1, 1, 'StaffCreated', '1.0', $2, '{}')",
        )
        .bind(&id)
        .bind(&payload)
        .execute(&pool)
        .await
        .unwrap();
        tokens.push(format!("ghs1.{id}.{secret}"));
    }
    let server = Server::start(Some(&db.url), &fast_env()).await;
    assert_eq!(alerts(&server, &tokens[0]).await.0, 200);
    assert_eq!(alerts(&server, &tokens[1]).await.0, 401);
    let (ok, list, stderr) = staff_cli(&db, &["list"], &[]).await;
    assert!(ok, "{stderr}");
    assert!(list.contains("(issued at creation)"), "{list}");
}
