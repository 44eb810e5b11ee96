//! Power-user controls end to end (issue #7): step-up, the cooldown table, API keys with rotation
//! verified by the platform, the withdrawal-address whitelist and the platform's withdrawal
//! check. Real binary, PostgreSQL, SMTP; short configured durations stand in for the clock.
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::admin_api::{bootstrap_admin, create_staff};
use super::e2e_recovery::{flow_id, world, World};
use super::e2e_second_factor::{enrol, now_step, send, totp_at_step};
use super::support::{
    assert_error_shape, assert_nowhere_in_database, fast_env, Server, TestDb, PASSWORD,
};

const NEW_PASSWORD: &str = "lantern-meadow-quartz-58";

async fn step_up(server: &Server, token: &str, secret: &[u8], step_offset: u64) -> (u16, Value) {
    send(
        server,
        Method::POST,
        "/v1/me/step-up",
        token,
        json!({"method": "totp", "code": totp_at_step(secret, now_step() + step_offset)}),
    )
    .await
}

async fn platform(server: &Server, token: &str, path: &str, body: Value) -> (u16, Value) {
    send(server, Method::POST, path, token, body).await
}

#[tokio::test]
async fn test_adding_a_second_factor_pauses_high_risk_actions_by_default() {
    let db = TestDb::new().await;
    let mut env = fast_env();
    env.remove("GATEHOUSE_COOLDOWN_AFTER_FACTOR_ADDED_SECONDS");
    let server = Server::start(Some(&db.url), &env).await;
    let email = "fresh.factor@example.com";
    server.register(email, PASSWORD).await;
    let token = server.token(email, PASSWORD).await;
    let (secret, _) = enrol(&server, &token).await;
    let (_, restrictions) = server
        .authed(Method::GET, "/v1/me/restrictions", &token)
        .await;
    assert_eq!(restrictions["reasons"], json!(["second_factor_added"]));
    assert!(restrictions["high_risk_blocked_until"].is_string());
    // A thief who enrolled their own app cannot turn the owner's factors off at once.
    let (status, body) = send(
        &server,
        Method::DELETE,
        "/v1/me/totp",
        &token,
        json!({"password": PASSWORD, "method": "totp", "code": totp_at_step(&secret, now_step() + 1)}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "high_risk_cooldown");
    assert!(
        body["error"]["retry_after"].as_i64().unwrap_or(0) > 3600,
        "{body}"
    );
}

#[tokio::test]
async fn test_step_up_gates_withdraw_keys_and_expires() {
    let db = TestDb::new().await;
    let mut env = fast_env();
    env.insert("GATEHOUSE_STEP_UP_SECONDS".into(), "3".into());
    let server = Server::start(Some(&db.url), &env).await;
    let email = "trader@example.com";
    server.register(email, PASSWORD).await;
    let token = server.token(email, PASSWORD).await;
    let withdraw_key = json!({"name": "payout bot", "scopes": ["read", "withdraw"]});

    // No second factor: a withdraw-scoped key is out of reach; a read key is not.
    let (status, body) = send(
        &server,
        Method::POST,
        "/v1/me/api-keys",
        &token,
        withdraw_key.clone(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "second_factor_required");
    // Any key needs a stepped-up session (issue #17): signing in is not a step-up; without a
    // factor the password steps up.
    let read_key = json!({"name": "reader", "scopes": ["read"]});
    let (status, body) = send(
        &server,
        Method::POST,
        "/v1/me/api-keys",
        &token,
        read_key.clone(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "step_up_required");
    let (status, body) = send(
        &server,
        Method::POST,
        "/v1/me/step-up",
        &token,
        json!({"proof": {"password": "not-the-password-x"}}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "invalid_password");
    let (status, body) = send(
        &server,
        Method::POST,
        "/v1/me/step-up",
        &token,
        json!({"proof": {"password": PASSWORD}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(&server, Method::POST, "/v1/me/api-keys", &token, read_key).await;
    assert_eq!(status, 201, "{body}");

    // Enrolled: the password step-up of a moment ago no longer counts (a session + password
    // that enrols a factor must not pass for a factor-proven session); a factor must step up.
    let (secret, _) = enrol(&server, &token).await;
    let (status, body) = send(
        &server,
        Method::POST,
        "/v1/me/api-keys",
        &token,
        withdraw_key.clone(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "step_up_required");
    let (status, body) = send(
        &server,
        Method::POST,
        "/v1/me/step-up",
        &token,
        json!({"method": "totp", "code": "000000"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "invalid_second_factor");
    let (status, body) = step_up(&server, &token, &secret, 1).await;
    assert_eq!(status, 200, "{body}");
    let (_, restrictions) = server
        .authed(Method::GET, "/v1/me/restrictions", &token)
        .await;
    assert!(
        restrictions["step_up_valid_until"].is_string(),
        "{restrictions}"
    );
    let (status, body) = send(
        &server,
        Method::POST,
        "/v1/me/api-keys",
        &token,
        withdraw_key.clone(),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // The new withdraw key started a cooldown: a second one is refused, and said why.
    let (_, restrictions) = server
        .authed(Method::GET, "/v1/me/restrictions", &token)
        .await;
    assert_eq!(restrictions["reasons"], json!(["withdraw_key_created"]));
    assert!(restrictions["blocked_actions"]
        .as_array()
        .unwrap()
        .contains(&json!("withdrawals")));
    let (status, body) = send(
        &server,
        Method::POST,
        "/v1/me/api-keys",
        &token,
        withdraw_key.clone(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "high_risk_cooldown");

    // The step-up lapses after its window.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, restrictions) = server
        .authed(Method::GET, "/v1/me/restrictions", &token)
        .await;
    assert!(
        restrictions["step_up_valid_until"].is_null(),
        "{restrictions}"
    );
    let (status, body) = send(
        &server,
        Method::POST,
        "/v1/me/api-keys",
        &token,
        withdraw_key,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "step_up_required");
}

#[tokio::test]
async fn test_api_keys_rotate_with_a_grace_period_and_the_platform_verifies_them() {
    let db = TestDb::new().await;
    let mut env = fast_env();
    env.insert(
        "GATEHOUSE_API_KEY_ROTATION_GRACE_SECONDS".into(),
        "2".into(),
    );
    let server = Server::start(Some(&db.url), &env).await;
    let admin = bootstrap_admin(&db).await;
    let platform_token = create_staff(&server, &admin, "exchange backend", "platform").await;
    let analyst = create_staff(&server, &admin, "ana", "analyst").await;
    let email = "bot.owner@example.com";
    let account_id = server.register(email, PASSWORD).await;
    let token = server.token(email, PASSWORD).await;
    let (status, body) = send(
        &server,
        Method::POST,
        "/v1/me/step-up",
        &token,
        json!({"proof": {"password": PASSWORD}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Malformed requests are refused in the documented shape.
    for bad in [
        json!({"name": "x", "scopes": []}),
        json!({"name": "", "scopes": ["read"]}),
        json!({"name": "x", "scopes": ["fly"]}),
        json!({"name": "x", "scopes": ["read"], "allowed_ips": ["not-an-ip"]}),
        json!({"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}),
    ] {
        let (status, body) = send(
            &server,
            Method::POST,
            "/v1/me/api-keys",
            &token,
            bad.clone(),
        )
        .await;
        assert!(status == 400 || status == 422, "{bad} -> {status} {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }

    let (status, created) = send(
        &server,
        Method::POST,
        "/v1/me/api-keys",
        &token,
        json!({"name": "market maker", "scopes": ["trade", "read"], "allowed_ips": ["192.0.2.0/24"]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key_id = created["key_id"].as_str().unwrap().to_string();
    let first = created["key"].as_str().unwrap().to_string();
    assert!(first.starts_with("ghk1."), "{first}");
    let verify = |key: &str, ip: &str| json!({"key": key, "ip": ip});

    // Only the platform (or an admin) may ask.
    let (status, _) = platform(
        &server,
        &token,
        "/v1/api-keys/verify",
        verify(&first, "192.0.2.9"),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = platform(
        &server,
        &analyst,
        "/v1/api-keys/verify",
        verify(&first, "192.0.2.9"),
    )
    .await;
    assert_eq!(status, 403);

    let (status, verdict) = platform(
        &server,
        &platform_token,
        "/v1/api-keys/verify",
        verify(&first, "192.0.2.9"),
    )
    .await;
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["valid"], true, "{verdict}");
    assert_eq!(verdict["account_id"], json!(account_id));
    assert_eq!(verdict["scopes"], json!(["read", "trade"]));
    let (_, verdict) = platform(
        &server,
        &platform_token,
        "/v1/api-keys/verify",
        verify(&first, "198.51.100.1"),
    )
    .await;
    assert_eq!(
        verdict,
        json!({"valid": false, "reason": "ip_not_allowed", "account_id": null, "key_id": null, "scopes": null, "high_risk_blocked_until": null})
    );
    // A forged secret on a real key id, and garbage.
    let forged = format!(
        "{}{}",
        &first[..first.len() - 4],
        if first.ends_with("AAAA") {
            "BBBB"
        } else {
            "AAAA"
        }
    );
    let (_, verdict) = platform(
        &server,
        &platform_token,
        "/v1/api-keys/verify",
        verify(&forged, "192.0.2.9"),
    )
    .await;
    assert_eq!(verdict["reason"], "invalid_key", "{verdict}");
    let (_, verdict) = platform(
        &server,
        &platform_token,
        "/v1/api-keys/verify",
        verify("nonsense", "192.0.2.9"),
    )
    .await;
    assert_eq!(verdict["reason"], "invalid_key");
    let (status, _) = platform(
        &server,
        &platform_token,
        "/v1/api-keys/verify",
        verify(&first, "not an ip"),
    )
    .await;
    assert_eq!(status, 400);

    // The listing shows the last use, never the secret.
    let (_, list) = server.authed(Method::GET, "/v1/me/api-keys", &token).await;
    assert_eq!(list["keys"][0]["last_used_ip"], "192.0.2.9", "{list}");
    assert!(list["keys"][0]["last_used_at"].is_string());
    assert!(!list.to_string().contains(&first[first.len() - 43..]));
    // Within a minute, the same client address does not rewrite the use; another address does.
    let used_at = list["keys"][0]["last_used_at"].clone();
    platform(
        &server,
        &platform_token,
        "/v1/api-keys/verify",
        verify(&first, "192.0.2.9"),
    )
    .await;
    let (_, list) = server.authed(Method::GET, "/v1/me/api-keys", &token).await;
    assert_eq!(list["keys"][0]["last_used_at"], used_at, "{list}");
    platform(
        &server,
        &platform_token,
        "/v1/api-keys/verify",
        verify(&first, "192.0.2.10"),
    )
    .await;
    let (_, list) = server.authed(Method::GET, "/v1/me/api-keys", &token).await;
    assert_eq!(list["keys"][0]["last_used_ip"], "192.0.2.10", "{list}");
    assert_ne!(list["keys"][0]["last_used_at"], used_at, "{list}");

    // Rotation: both secrets work during the grace period, then the old one is `rotated`.
    let (status, rotated) = send(
        &server,
        Method::POST,
        &format!("/v1/me/api-keys/{key_id}/rotate"),
        &token,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let second = rotated["key"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    for key in [&first, &second] {
        let (_, verdict) = platform(
            &server,
            &platform_token,
            "/v1/api-keys/verify",
            verify(key, "192.0.2.9"),
        )
        .await;
        assert_eq!(verdict["valid"], true, "{verdict}");
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, verdict) = platform(
        &server,
        &platform_token,
        "/v1/api-keys/verify",
        verify(&first, "192.0.2.9"),
    )
    .await;
    assert_eq!(verdict["reason"], "rotated", "{verdict}");
    let (_, verdict) = platform(
        &server,
        &platform_token,
        "/v1/api-keys/verify",
        verify(&second, "192.0.2.9"),
    )
    .await;
    assert_eq!(verdict["valid"], true);

    // Revoked: refused at once. Revoke-all ends the rest.
    let (status, _) = send(
        &server,
        Method::DELETE,
        &format!("/v1/me/api-keys/{key_id}"),
        &token,
        json!({}),
    )
    .await;
    assert_eq!(status, 204);
    let (_, verdict) = platform(
        &server,
        &platform_token,
        "/v1/api-keys/verify",
        verify(&second, "192.0.2.9"),
    )
    .await;
    assert_eq!(verdict["reason"], "revoked");
    let (status, _) = send(
        &server,
        Method::DELETE,
        &format!("/v1/me/api-keys/{key_id}"),
        &token,
        json!({}),
    )
    .await;
    assert_eq!(status, 404);
    let (_, other) = send(
        &server,
        Method::POST,
        "/v1/me/api-keys",
        &token,
        json!({"name": "b", "scopes": ["read"]}),
    )
    .await;
    let (status, body) = send(
        &server,
        Method::DELETE,
        "/v1/me/api-keys",
        &token,
        json!({}),
    )
    .await;
    assert_eq!((status, body["revoked"].clone()), (200, json!(1)));
    let (_, verdict) = platform(
        &server,
        &platform_token,
        "/v1/api-keys/verify",
        verify(other["key"].as_str().unwrap(), "192.0.2.9"),
    )
    .await;
    assert_eq!(verdict["reason"], "revoked");

    // No secret in clear anywhere in the database.
    let secrets: Vec<String> = [&first, &second]
        .iter()
        .map(|k| k[k.len() - 43..].to_string())
        .collect();
    let scanned = assert_nowhere_in_database(&db.pool().await, &secrets).await;
    assert!(scanned.iter().any(|t| t == "api_key_usage"), "{scanned:?}");
}

/// Proposes an address and confirms it with the emailed code; returns the address id.
async fn whitelist(w: &World, token: &str, email: &str, address: &str, n: usize) -> String {
    let (status, body) = send(
        &w.server,
        Method::POST,
        "/v1/me/withdrawal-addresses",
        token,
        json!({"asset": "btc", "network": "Bitcoin", "address": address, "label": "cold"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let code = w
        .smtp
        .wait_for(email, "withdrawal address confirmation code", n)
        .await
        .code();
    let (status, body) = send(
        &w.server,
        Method::POST,
        "/v1/me/withdrawal-addresses/confirm",
        token,
        json!({"flow_id": flow_id(&body), "code": code}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cooling_down");
    assert_eq!(body["address"], address);
    body["address_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn test_whitelisted_addresses_wait_their_cooldown_and_the_platform_checks_withdrawals() {
    let w = world(&[
        ("GATEHOUSE_WHITELIST_ADDRESS_COOLDOWN_SECONDS", "2"),
        ("GATEHOUSE_STEP_UP_SECONDS", "2"),
    ])
    .await;
    let admin = bootstrap_admin(&w.db).await;
    let platform_token = create_staff(&w.server, &admin, "exchange backend", "platform").await;
    let email = "hodler@example.com";
    let account_id = w.verified_email_account(email).await;
    let token = w.server.token(email, PASSWORD).await;
    let cold = "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh";
    let check = |address: &str| json!({"account_id": account_id, "asset": "BTC", "network": "bitcoin", "address": address});

    // Whitelist off: any address may receive.
    let (status, verdict) = platform(
        &w.server,
        &platform_token,
        "/v1/withdrawals/check",
        check("anything"),
    )
    .await;
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["allowed"], true);
    let (status, _) = send(
        &w.server,
        Method::PUT,
        "/v1/me/withdrawal-whitelist",
        &token,
        json!({"enabled": true}),
    )
    .await;
    assert_eq!(status, 204);

    // A proposal needs a second factor and a stepped-up session (issue #17): the password no
    // longer suffices, and signing in is not a step-up.
    let propose_cold =
        json!({"asset": "BTC", "network": "bitcoin", "address": cold, "password": PASSWORD});
    let (status, body) = send(
        &w.server,
        Method::POST,
        "/v1/me/withdrawal-addresses",
        &token,
        propose_cold.clone(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "second_factor_required");
    let (_, backup) = enrol(&w.server, &token).await;
    let (status, body) = send(
        &w.server,
        Method::POST,
        "/v1/me/withdrawal-addresses",
        &token,
        propose_cold,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "step_up_required");
    let step_up_with = |code: &str| json!({"proof": {"method": "backup_code", "code": code}});
    let (status, body) = send(
        &w.server,
        Method::POST,
        "/v1/me/step-up",
        &token,
        step_up_with(&backup[0]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let address_id = whitelist(&w, &token, email, cold, 1).await;

    let (_, verdict) = platform(
        &w.server,
        &platform_token,
        "/v1/withdrawals/check",
        check(cold),
    )
    .await;
    assert_eq!(verdict["allowed"], false, "{verdict}");
    assert_eq!(verdict["reason"], "address_cooling_down");
    assert!(verdict["until"].is_string());
    let (_, verdict) = platform(
        &w.server,
        &platform_token,
        "/v1/withdrawals/check",
        check("bc1qsomewhereelse"),
    )
    .await;
    assert_eq!(verdict["reason"], "not_whitelisted");
    // Another account's owner cannot ask (only the platform).
    let (status, _) = platform(&w.server, &token, "/v1/withdrawals/check", check(cold)).await;
    assert_eq!(status, 401);
    // The owner was told on every channel.
    w.smtp
        .wait_for(email, "A withdrawal address was added", 1)
        .await;

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, verdict) = platform(
        &w.server,
        &platform_token,
        "/v1/withdrawals/check",
        check(cold),
    )
    .await;
    assert_eq!(verdict["allowed"], true, "{verdict}");
    let (_, list) = w
        .server
        .authed(Method::GET, "/v1/me/withdrawal-addresses", &token)
        .await;
    assert_eq!(list["whitelist_only"], true);
    assert_eq!(list["addresses"][0]["status"], "active", "{list}");
    assert_eq!(list["addresses"][0]["label"], "cold");
    // The same address again is refused.
    let (status, body) = send(
        &w.server,
        Method::POST,
        "/v1/me/step-up",
        &token,
        step_up_with(&backup[1]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        &w.server,
        Method::POST,
        "/v1/me/withdrawal-addresses",
        &token,
        json!({"asset": "BTC", "network": "bitcoin", "address": cold, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_error_shape(&body, "address_already_listed");
    // The address is sealed at rest.
    let scanned = assert_nowhere_in_database(&w.db.pool().await, &[cold.to_string()]).await;
    assert!(scanned.iter().any(|t| t == "events"), "{scanned:?}");

    // Turning the whitelist off needs a stepped-up session: the last one has lapsed.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = send(
        &w.server,
        Method::PUT,
        "/v1/me/withdrawal-whitelist",
        &token,
        json!({"enabled": false}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "step_up_required");

    // A password reset starts the cooldown: withdrawals and whitelist changes stop. The account
    // has a second factor: the reset needs it too.
    let started = w.forgot(email, None).await;
    let mail = w.smtp.wait_for(email, "password reset code", 1).await;
    let (status, body) = w
        .server
        .post(
            "/v1/password/reset",
            json!({"flow_id": flow_id(&started), "code": mail.code(), "new_password": NEW_PASSWORD,
                   "proof": {"method": "backup_code", "code": backup[2]}}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (_, verdict) = platform(
        &w.server,
        &platform_token,
        "/v1/withdrawals/check",
        check(cold),
    )
    .await;
    assert_eq!(verdict["allowed"], false);
    assert_eq!(verdict["reason"], "high_risk_cooldown", "{verdict}");
    let (status, challenge) = w.server.login(email, NEW_PASSWORD).await;
    assert_eq!(status, 200, "{challenge}");
    let (status, session) = w
        .server
        .post(
            "/v1/login/mfa",
            json!({"challenge_id": challenge["challenge_id"], "method": "backup_code", "code": backup[3]}),
        )
        .await;
    assert_eq!(status, 200, "{session}");
    let token = session["session_token"].as_str().unwrap().to_string();
    let (status, body) = send(
        &w.server,
        Method::POST,
        "/v1/me/withdrawal-addresses",
        &token,
        json!({"asset": "ETH", "network": "ethereum", "address": "0xabc", "password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "high_risk_cooldown");
    // Removing an address stays possible.
    let (status, _) = send(
        &w.server,
        Method::DELETE,
        &format!("/v1/me/withdrawal-addresses/{address_id}"),
        &token,
        json!({}),
    )
    .await;
    assert_eq!(status, 204);
    let (_, list) = w
        .server
        .authed(Method::GET, "/v1/me/withdrawal-addresses", &token)
        .await;
    assert_eq!(list["addresses"], json!([]));
}
