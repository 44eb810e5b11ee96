//! Two lockout doors and code budgets per requester, end to end (issue #18, items 3 and 4): a
//! stranger's wrong passwords from several networks and their forgot-password requests lock the
//! untrusted door and spend the untrusted code budget, while the owner's known device (its
//! `device_token`) still signs in and still gets an unlock code.
use serde_json::{json, Value};

use super::e2e_recovery::{world, World};
use super::support::{assert_error_shape, eventually, read, PASSWORD};

const OWNER_IP: &str = "192.0.2.10";

async fn post_from(w: &World, ip: &str, path: &str, body: Value) -> (u16, Value) {
    read(
        w.server
            .http
            .post(format!("{}{path}", w.server.base))
            .header("x-forwarded-for", ip)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn login_from(
    w: &World,
    ip: &str,
    email: &str,
    password: &str,
    device: Option<&str>,
) -> (u16, Value) {
    let mut body = json!({"identifier": email, "password": password});
    if let Some(token) = device {
        body["device_token"] = json!(token);
    }
    post_from(w, ip, "/v1/login", body).await
}

async fn doors_world() -> World {
    world(&[
        ("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1"),
        ("GATEHOUSE_LOCKOUT_SECONDS", "900"),
        // Small budgets so the test reaches them: 2 codes an hour per requester, 4 in all for
        // untrusted requesters (the sign-up's verification code is one of them).
        ("GATEHOUSE_CODE_MAX_PER_HOUR", "2"),
        ("GATEHOUSE_CODE_ACCOUNT_CEILING_PER_HOUR", "4"),
        // The per-route request limits are another mechanism; out of the way here.
        ("GATEHOUSE_RATE_LIMIT_PER_IP_PER_MINUTE", "1000"),
        ("GATEHOUSE_RATE_LIMIT_PER_IDENTIFIER_PER_MINUTE", "1000"),
    ])
    .await
}

/// The facts of an account's stream, in order, as stored (`{"<Type>": {...}}`).
async fn facts(w: &World, account_id: &str) -> Vec<Value> {
    let pool = w.db.pool().await;
    let rows: Vec<Value> =
        sqlx::query_scalar("select payload from events where aggregate_id = $1 order by sequence")
            .bind(account_id)
            .fetch_all(&pool)
            .await
            .unwrap();
    rows.into_iter().map(|p| p["fact"].clone()).collect()
}

fn of_type<'a>(facts: &'a [Value], name: &str) -> Vec<&'a Value> {
    facts.iter().filter_map(|f| f.get(name)).collect()
}

#[tokio::test]
async fn test_a_strangers_lockout_and_code_requests_do_not_stop_the_owners_device() {
    let w = doors_world().await;
    let email = "owner.with.laptop@example.com";
    let account_id = w.verified_email_account(email).await;

    // The owner signs in from their laptop and keeps the device token.
    let (status, body) = login_from(&w, OWNER_IP, email, PASSWORD, None).await;
    assert_eq!(status, 200, "{body}");
    let first_token = body["device_token"].as_str().unwrap().to_string();
    assert!(first_token.starts_with("dv1."), "{first_token}");

    // A stranger guesses from five networks: the fifth failure locks the untrusted door,
    for n in 1..=5 {
        let (status, body) = login_from(
            &w,
            &format!("198.51.{n}.7"),
            email,
            "not-the-password",
            None,
        )
        .await;
        let expected = if n < 5 { 401 } else { 429 };
        assert_eq!(status, expected, "attempt {n}: {body}");
    }
    // and from there even the right password is refused without a device token,
    let (status, body) = login_from(&w, "198.51.9.7", email, PASSWORD, None).await;
    assert_eq!(status, 429, "{body}");
    assert_error_shape(&body, "account_locked");
    // the owner's own network included.
    let (status, _) = login_from(&w, OWNER_IP, email, PASSWORD, None).await;
    assert_eq!(status, 429);

    // The stranger asks for reset codes: one network spends its own budget (2), then is
    // refused; another network brings the untrusted requesters to the account's ceiling (4).
    let forgot =
        |ip: &'static str| post_from(&w, ip, "/v1/password/forgot", json!({"identifier": email}));
    for (ip, expected) in [
        ("198.51.1.7", 202),
        ("198.51.1.7", 202),
        ("198.51.1.7", 429),
        ("198.51.2.7", 202),
    ] {
        let (status, body) = forgot(ip).await;
        assert_eq!(status, expected, "{ip}: {body}");
        if expected == 429 {
            assert_error_shape(&body, "code_rate_limited");
        }
    }
    // after which every untrusted network is refused.
    for ip in ["198.51.2.7", "198.51.3.7", OWNER_IP] {
        let (status, body) =
            post_from(&w, ip, "/v1/unlock/request", json!({"identifier": email})).await;
        assert_eq!(status, 429, "{ip}: {body}");
        assert_error_shape(&body, "code_rate_limited");
    }

    // Forged and foreign tokens are no token at all: the same lock answer.
    let (status, other) = w
        .server
        .post(
            "/v1/password/forgot",
            json!({"identifier": "nobody@example.com"}),
        )
        .await;
    assert_eq!(status, 202, "{other}");
    let flow_as_device = format!(
        "dv1.{}.{}",
        &other["flow_id"].as_str().unwrap()[4..],
        "A".repeat(43)
    );
    let (sealed, _) = first_token.rsplit_once('.').unwrap();
    let wrong_secret = format!("{sealed}.{}", "B".repeat(43));
    let session = body_token(&w, "second.account@example.com").await;
    for forged in [
        "dv1.garbage.garbage".to_string(),
        flow_as_device,
        wrong_secret,
        session.0.clone(),
    ] {
        let (status, body) = login_from(&w, OWNER_IP, email, PASSWORD, Some(&forged)).await;
        assert_eq!(status, 429, "{forged}: {body}");
        assert_error_shape(&body, "account_locked");
    }
    // Account B's device token does not open account A's device door.
    let (status, _) = login_from(&w, OWNER_IP, email, PASSWORD, Some(&session.1)).await;
    assert_eq!(status, 429);

    // The owner's laptop signs in with its device token and the right password,
    let (status, body) = login_from(&w, OWNER_IP, email, PASSWORD, Some(&first_token)).await;
    assert_eq!(status, 200, "{body}");
    let token = body["device_token"].as_str().unwrap().to_string();
    let session_token = body["session_token"].as_str().unwrap().to_string();
    // (the token is renewed: the previous one now counts as none),
    assert_ne!(token, first_token);
    let (status, _) = login_from(&w, OWNER_IP, email, PASSWORD, Some(&first_token)).await;
    assert_eq!(status, 429);
    // and gets an unlock code from its own budget, past the ceiling.
    let (status, body) = post_from(
        &w,
        OWNER_IP,
        "/v1/unlock/request",
        json!({"identifier": email, "device_token": token}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    w.smtp.wait_for(email, "account unlock code", 1).await;

    // The stranger stays locked out.
    let (status, _) = login_from(&w, "198.51.4.7", email, PASSWORD, None).await;
    assert_eq!(status, 429);

    // The events say which door: the lock and the stranger's refusals are on the untrusted
    // door (no `door` field), the owner's sign-in and code on the device's.
    let facts = facts(&w, &account_id).await;
    let locks = of_type(&facts, "AccountLocked");
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert!(locks[0].get("door").is_none(), "{locks:?}");
    let successes = of_type(&facts, "LoginSucceeded");
    let device_id = successes.last().unwrap()["door"]["device"]
        .as_str()
        .unwrap()
        .to_string();
    // (the sign-up helper's own sign-in trusted another device; the laptop was trusted at its
    // first sign-in, then renewed, under one id; no token is stored, only its hash)
    let trusted = of_type(&facts, "DeviceTrusted");
    let laptop: Vec<_> = trusted
        .iter()
        .filter(|t| t["device_id"] == device_id.as_str())
        .collect();
    assert_eq!(laptop.len(), 2, "{trusted:?}");
    for t in [&first_token, &token] {
        assert!(!facts.iter().any(|f| f.to_string().contains(t.as_str())));
    }
    assert_eq!(of_type(&facts, "CodeCeilingReached").len(), 1);
    let codes = of_type(&facts, "CodeIssued");
    assert_eq!(
        codes.last().unwrap()["requester"]["device"],
        device_id.as_str()
    );
    assert!(of_type(&facts, "LoginRejectedWhileLocked")
        .iter()
        .all(|r| r.get("door").is_none()));

    // The login history shows the doors; the owner's device lists its own (open) door.
    let history_path = "/v1/me/login-history?limit=100";
    eventually("the device sign-in in the login history", || async {
        let (_, page) = w
            .server
            .authed(reqwest::Method::GET, history_path, &session_token)
            .await;
        page["entries"].as_array().is_some_and(|e| {
            e.iter()
                .any(|e| e["door"] == "device" && e["trusted_device_id"] == device_id.as_str())
                && e.iter()
                    .any(|e| e["door"] == "untrusted" && e["outcome"] == "locked")
        })
    })
    .await;
    let (status, devices) = w
        .server
        .authed(reqwest::Method::GET, "/v1/me/devices", &session_token)
        .await;
    assert_eq!(status, 200, "{devices}");
    let list = devices["devices"].as_array().unwrap();
    let laptop = list
        .iter()
        .find(|d| d["device_id"] == device_id.as_str())
        .unwrap();
    assert_eq!(laptop["current"], true, "{devices}");
    assert!(laptop["locked_until"].is_null());
    assert!(laptop.get("token_hash").is_none());
    let (_, lockout) = w
        .server
        .authed(reqwest::Method::GET, "/v1/me/lockout", &session_token)
        .await;
    assert_eq!(lockout["door"], "untrusted");

    // Revoking the device needs a stepped-up session (a stolen session cannot take the door).
    let path = format!("/v1/me/devices/{device_id}");
    let (status, body) = w
        .server
        .authed(reqwest::Method::DELETE, &path, &session_token)
        .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "step_up_required");
}

/// Signs up a second account, signs it in, and returns its session token and device token.
async fn body_token(w: &World, email: &str) -> (String, String) {
    w.server.register(email, PASSWORD).await;
    let (status, body) = w.server.login(email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    (
        body["session_token"].as_str().unwrap().to_string(),
        body["device_token"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn test_a_devices_door_locks_on_its_own_and_a_reset_revokes_devices() {
    let w = world(&[
        ("GATEHOUSE_DEVICE_LOCKOUT_THRESHOLD", "2"),
        ("GATEHOUSE_RATE_LIMIT_PER_IP_PER_MINUTE", "1000"),
        ("GATEHOUSE_RATE_LIMIT_PER_IDENTIFIER_PER_MINUTE", "1000"),
    ])
    .await;
    let email = "device.door@example.com";
    w.verified_email_account(email).await;
    let (status, body) = w.server.login(email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let device = body["device_token"].as_str().unwrap().to_string();
    let with_device =
        |password: &str| json!({"identifier": email, "password": password, "device_token": device});
    // Two wrong passwords with the device token lock its door (its own threshold),
    let (status, _) = w.server.post("/v1/login", with_device("wrong-one")).await;
    assert_eq!(status, 401);
    let (status, body) = w.server.post("/v1/login", with_device("wrong-two")).await;
    assert_eq!(status, 429, "{body}");
    assert_error_shape(&body, "account_locked");
    let (status, _) = w.server.post("/v1/login", with_device(PASSWORD)).await;
    assert_eq!(status, 429);
    // while the untrusted door is still open.
    let (status, body) = w.server.login(email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");

    // A password reset revokes every trusted device: the token then counts as none.
    let (status, started) = w
        .server
        .post("/v1/password/forgot", json!({"identifier": email}))
        .await;
    assert_eq!(status, 202, "{started}");
    let code = w
        .smtp
        .wait_for(email, "password reset code", 1)
        .await
        .code();
    let new_password = "lantern-meadow-quartz-58";
    let (status, body) = w
        .server
        .post(
            "/v1/password/reset",
            json!({"flow_id": started["flow_id"], "code": code, "new_password": new_password}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = w
        .server
        .post(
            "/v1/login",
            json!({"identifier": email, "password": new_password, "device_token": device}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Only the device of this sign-in is trusted now: the reset revoked the three before it.
    let session = body["session_token"].as_str().unwrap().to_string();
    let (_, devices) = w
        .server
        .authed(reqwest::Method::GET, "/v1/me/devices", &session)
        .await;
    let list = devices["devices"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{devices}");
    assert_eq!(list[0]["current"], true);
    let revoked: i64 = sqlx::query_scalar(
        "select count(*) from events where event_type = 'DeviceRevoked'
            and payload->'fact'->'DeviceRevoked'->>'reason' = 'password_reset'",
    )
    .fetch_one(&w.db.pool().await)
    .await
    .unwrap();
    assert_eq!(revoked, 3);

    // The owner revokes it from a stepped-up session: the sessions it opened end.
    let (status, body) = read(
        w.server
            .http
            .post(format!("{}/v1/me/step-up", w.server.base))
            .bearer_auth(&session)
            .json(&json!({"proof": {"password": new_password}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(status < 300, "{status} {body}");
    let path = format!("/v1/me/devices/{}", list[0]["device_id"].as_str().unwrap());
    let (status, body) = w
        .server
        .authed(reqwest::Method::DELETE, &path, &session)
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = w
        .server
        .authed(reqwest::Method::GET, "/v1/me", &session)
        .await;
    assert_eq!(status, 401);
    let (status, body) = w
        .server
        .authed(reqwest::Method::DELETE, &path, &session)
        .await;
    assert_eq!(status, 401, "{body}");
}

/// The owner's known device is exempt from the per-identifier request limits of sign-in and
/// forgot-password (issue #18): a stranger who keeps an identifier's budget spent cannot keep its
/// owner out. A device token sealed for another account (the attacker's own) buys nothing.
#[tokio::test]
async fn test_a_device_token_for_the_account_skips_the_per_identifier_limit_and_no_other_does() {
    let w = world(&[
        ("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1"),
        ("GATEHOUSE_RATE_LIMIT_LOGIN_PER_IDENTIFIER_PER_MINUTE", "3"),
        ("GATEHOUSE_RATE_LIMIT_FORGOT_PER_IDENTIFIER_PER_MINUTE", "1"),
        ("GATEHOUSE_RATE_LIMIT_LOGIN_PER_IP_PER_MINUTE", "1000"),
        ("GATEHOUSE_RATE_LIMIT_LOGIN_PER_NETWORK_PER_MINUTE", "1000"),
        ("GATEHOUSE_RATE_LIMIT_PER_IP_PER_MINUTE", "1000"),
    ])
    .await;
    let victim = "limited.owner@example.com";
    let attacker = "limited.attacker@example.com";
    w.verified_email_account(victim).await;
    w.verified_email_account(attacker).await;
    // Each signed in once to set up (`verified_email_account`) and signs in once more from their
    // own device: two of the victim's three sign-ins a minute.
    let (status, body) = login_from(&w, OWNER_IP, victim, PASSWORD, None).await;
    assert_eq!(status, 200, "{body}");
    let owner_token = body["device_token"].as_str().unwrap().to_string();
    let (status, body) = login_from(&w, "203.0.113.5", attacker, PASSWORD, None).await;
    assert_eq!(status, 200, "{body}");
    let attacker_token = body["device_token"].as_str().unwrap().to_string();

    // The stranger spends the rest of the victim's identifier budget, then is refused.
    let (status, body) = login_from(&w, "198.51.100.7", victim, "wrong-password", None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = login_from(&w, "198.51.101.7", victim, "wrong-password", None).await;
    assert_eq!(status, 429, "{body}");
    assert_error_shape(&body, "rate_limited");
    // Their own account's device token does not lift the victim's limit,
    let (status, body) =
        login_from(&w, "198.51.102.7", victim, PASSWORD, Some(&attacker_token)).await;
    assert_eq!(status, 429, "{body}");
    assert_error_shape(&body, "rate_limited");
    // nor does the owner's network without the token,
    let (status, body) = login_from(&w, OWNER_IP, victim, PASSWORD, None).await;
    assert_eq!(status, 429, "{body}");
    // but the owner's device signs in.
    let (status, body) = login_from(&w, OWNER_IP, victim, PASSWORD, Some(&owner_token)).await;
    assert_eq!(status, 200, "{body}");
    let owner_token = body["device_token"].as_str().unwrap().to_string();

    // Forgot-password: the stranger's one request a minute spends the identifier's budget;
    let forgot = |ip: &'static str, token: Option<String>| {
        let mut body = json!({"identifier": victim});
        if let Some(token) = token {
            body["device_token"] = json!(token);
        }
        post_from(&w, ip, "/v1/password/forgot", body)
    };
    assert_eq!(forgot("198.51.100.7", None).await.0, 202);
    let (status, body) = forgot("198.51.103.7", Some(attacker_token.clone())).await;
    assert_eq!(status, 429, "{body}");
    assert_error_shape(&body, "rate_limited");
    // the owner's device still gets a code.
    let (status, body) = forgot(OWNER_IP, Some(owner_token)).await;
    assert_eq!(status, 202, "{body}");
}
