//! Freezing an account end to end (issue #20, items 1, 2, 3 and 8): the real binary on
//! PostgreSQL, a real SMTP server, and a small GeoIP database written by the test kit.
//!
//! The hacked-email story of the KuCoin guide's FAQ: a stranger signs in from a new device and
//! network, the owner gets a notice naming the place with a freeze link, a mail scanner's `GET`
//! freezes nothing, the owner's click does, the stranger's session and API key stop at once, the
//! stranger's right password answers `account_frozen` and a wrong one `invalid_credentials`, the
//! owner unfreezes with a code and TOTP and changes the password signed in. An account with a
//! verified email and phone needs a code by each to unfreeze (the inbox and the factor alone
//! reach only step 2).
use reqwest::Method;
use serde_json::{json, Value};

use super::admin_api::{bootstrap_admin, create_staff};
use super::e2e_recovery::{world, World};
use super::e2e_second_factor::{enrol, now_step, send, totp_at_step};
use super::mail::first_code;
use super::support::{assert_error_shape, event_types, read, PASSWORD};

const OWNER_IP: &str = "192.0.2.10";
const OWNER_UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
/// In the test GeoIP database: Lisbon, Portugal.
const STRANGER_IP: &str = "198.51.100.23";
const STRANGER_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0 Safari/537.36";
const NEW_PASSWORD: &str = "quartz-harbour-lantern-93";

async fn freeze_world() -> (World, tempfile_path::Path) {
    let geoip = tempfile_path::Path::new("geoip.mmdb");
    std::fs::write(
        geoip.as_path(),
        gatehouse_testkit::geoip::city_database([198, 51, 100, 0], 24, "Lisbon", "Portugal", "PT"),
    )
    .unwrap();
    let path = geoip.as_path().display().to_string();
    let w = world(&[
        ("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1"),
        ("GATEHOUSE_GEOIP_DB", &path),
        ("GATEHOUSE_PUBLIC_URL", "https://accounts.example.test/"),
        ("GATEHOUSE_RATE_LIMIT_PER_IP_PER_MINUTE", "1000"),
        ("GATEHOUSE_RATE_LIMIT_PER_IDENTIFIER_PER_MINUTE", "1000"),
    ])
    .await;
    (w, geoip)
}

/// A request from `ip` with user agent `ua`.
async fn from(
    w: &World,
    (ip, ua): (&str, &str),
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = w
        .server
        .http
        .request(method, format!("{}{path}", w.server.base))
        .header("x-forwarded-for", ip)
        .header("user-agent", ua);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    read(req.send().await.unwrap()).await
}

/// Signs in from `place` with the password and, when asked for, a backup code; the session
/// token.
async fn sign_in(
    w: &World,
    place: (&str, &str),
    email: &str,
    password: &str,
    backup: Option<&str>,
) -> String {
    let (status, body) = from(
        w,
        place,
        Method::POST,
        "/v1/login",
        None,
        Some(json!({"identifier": email, "password": password})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    if body["mfa_required"] == true {
        let (status, body) = from(
            w,
            place,
            Method::POST,
            "/v1/login/mfa",
            None,
            Some(json!({"challenge_id": body["challenge_id"], "method": "backup_code", "code": backup.unwrap()})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        return body["session_token"].as_str().unwrap().to_string();
    }
    body["session_token"].as_str().unwrap().to_string()
}

/// Waits for the new-sign-in notice naming `ip`.
async fn notice_from(w: &World, email: &str, ip: &str) -> super::mail::Mail {
    for _ in 0..300 {
        if let Some(m) = w
            .smtp
            .messages_to(email)
            .into_iter()
            .find(|m| m.subject.contains("New sign-in") && m.body.contains(ip))
        {
            return m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "no new-sign-in notice from {ip}: {:#?}",
        w.smtp.messages_to(email)
    );
}

fn sign_in_notices(w: &World, email: &str) -> usize {
    w.smtp
        .messages_to(email)
        .into_iter()
        .filter(|m| m.subject.contains("New sign-in"))
        .count()
}

/// The freeze link in a message body.
fn freeze_link(body: &str) -> String {
    body.split_whitespace()
        .find(|w| w.starts_with("https://accounts.example.test/freeze?t="))
        .unwrap_or_else(|| panic!("no freeze link in {body}"))
        .to_string()
}

fn link_secret_of(token: &str) -> &str {
    token.trim_start_matches("fz1.")
}

fn token_of(link: &str) -> String {
    link.split_once("?t=").unwrap().1.to_string()
}

async fn staff_post(w: &World, token: &str, path: &str, body: Value) -> (u16, Value) {
    send(&w.server, Method::POST, path, token, body).await
}

/// Starts an unfreeze for `email` and for `unknown`: both answers must be the same, field for
/// field (no oracle). Returns the account's flow.
async fn start_unfreeze_like_a_stranger(w: &World, email: &str, unknown: &str) -> Value {
    let (status, flow) = w
        .server
        .post("/v1/unfreeze", json!({"identifier": email}))
        .await;
    assert_eq!(status, 202, "{flow}");
    let (status, other) = w
        .server
        .post("/v1/unfreeze", json!({"identifier": unknown}))
        .await;
    assert_eq!(status, 202, "{other}");
    for field in [
        "kind",
        "step",
        "steps_total",
        "next_action",
        "status",
        "channel",
        "attempts_remaining",
    ] {
        assert_eq!(flow[field], other[field], "{field}: {flow} / {other}");
    }
    assert_eq!(
        flow.as_object().unwrap().keys().collect::<Vec<_>>(),
        other.as_object().unwrap().keys().collect::<Vec<_>>()
    );
    flow
}

#[tokio::test]
async fn test_the_hacked_email_story_freeze_by_link_then_unfreeze_with_code_and_totp() {
    let (w, _geoip) = freeze_world().await;
    let email = "hacked.inbox@example.com";
    let account_id = w.verified_email_account(email).await;
    let owner = (OWNER_IP, OWNER_UA);
    let stranger = (STRANGER_IP, STRANGER_UA);

    // The owner signs in (a first sign-in: noticed) and enrols TOTP.
    let owner_token = sign_in(&w, owner, email, PASSWORD, None).await;
    notice_from(&w, email, OWNER_IP).await;
    let (secret, backup) = enrol(&w.server, &owner_token).await;

    // A stranger with the password and a stolen backup code signs in from a new device and
    // network, steps up with another code and makes an API key.
    let stolen = sign_in(&w, stranger, email, PASSWORD, Some(&backup[0])).await;
    let (status, body) = from(
        &w,
        stranger,
        Method::POST,
        "/v1/me/step-up",
        Some(&stolen),
        Some(json!({"proof": {"method": "backup_code", "code": backup[1]}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, key) = from(
        &w,
        stranger,
        Method::POST,
        "/v1/me/api-keys",
        Some(&stolen),
        Some(json!({"name": "exfil", "scopes": ["read"]})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let api_key = key["key"].as_str().unwrap().to_string();
    let admin = bootstrap_admin(&w.db).await;
    let verify = json!({"key": api_key, "ip": STRANGER_IP});
    let (status, verdict) = staff_post(&w, &admin, "/v1/api-keys/verify", verify.clone()).await;
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["valid"], true, "{verdict}");

    // The owner's notice: when, where (the GeoIP place), the device, the phrase line and the
    // freeze link.
    let notice = notice_from(&w, email, STRANGER_IP).await;
    assert!(notice.body.contains(STRANGER_IP), "{}", notice.body);
    assert!(
        notice.body.contains("Approximate place: Lisbon, Portugal"),
        "{}",
        notice.body
    );
    assert!(notice.body.contains("Chrome"), "{}", notice.body);
    assert!(
        notice.body.contains("anti-phishing phrase"),
        "{}",
        notice.body
    );
    let link = freeze_link(&notice.body);
    let token = token_of(&link);
    assert!(token.starts_with("fz1."), "{token}");

    // A mail scanner fetches the link: a page, and nothing frozen.
    let page = w
        .server
        .http
        .get(format!("{}/freeze?t={token}", w.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("/v1/freeze"), "{html}");
    assert!(!html.contains(&token), "the page never echoes the token");
    let (status, _) = w.server.authed(Method::GET, "/v1/me", &stolen).await;
    assert_eq!(status, 200, "a GET froze nothing");

    // A token of another kind is refused as a freeze link.
    let forgot = w.forgot(email, None).await;
    let (status, body) = w
        .server
        .post("/v1/freeze", json!({"token": forgot["flow_id"]}))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_error_shape(&body, "freeze_link_invalid");

    // The owner's click freezes: the stranger's session and key stop at once.
    let (status, body) = w.server.post("/v1/freeze", json!({"token": token})).await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = w.server.authed(Method::GET, "/v1/me", &stolen).await;
    assert_eq!(status, 401);
    let (status, _) = w.server.authed(Method::GET, "/v1/me", &owner_token).await;
    assert_eq!(status, 401, "every session ends");
    let (_, verdict) = staff_post(&w, &admin, "/v1/api-keys/verify", verify).await;
    assert_eq!(verdict["valid"], false, "{verdict}");
    let (_, check) = staff_post(
        &w,
        &admin,
        "/v1/withdrawals/check",
        json!({"account_id": account_id, "asset": "BTC", "network": "bitcoin", "address": "bc1qexample"}),
    )
    .await;
    assert_eq!(check["allowed"], false, "{check}");
    assert_eq!(check["reason"], "account_frozen", "{check}");
    w.smtp.wait_for(email, "Your account was frozen", 1).await;

    // The link works once.
    let (status, body) = w.server.post("/v1/freeze", json!({"token": token})).await;
    assert_eq!(status, 410, "{body}");
    assert_error_shape(&body, "freeze_link_used");

    // The stranger's right password: 403 account_frozen; a wrong one: 401 as ever.
    let (status, body) = from(
        &w,
        stranger,
        Method::POST,
        "/v1/login",
        None,
        Some(json!({"identifier": email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "account_frozen");
    assert_eq!(body["error"]["next_action"], "unfreeze", "{body}");
    let (status, body) = from(
        &w,
        stranger,
        Method::POST,
        "/v1/login",
        None,
        Some(json!({"identifier": email, "password": "not-the-password-at-all"})),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_error_shape(&body, "invalid_credentials");

    // Unfreeze: the answer is the same for an unknown identifier.
    let flow = start_unfreeze_like_a_stranger(&w, email, "nobody.here@example.com").await;
    let code = w
        .smtp
        .wait_for(email, "account unfreeze code", 1)
        .await
        .code();
    // The code alone is not enough on an account with a second factor.
    let (status, body) = w
        .server
        .post(
            "/v1/unfreeze/confirm",
            json!({"flow_id": flow["flow_id"], "code": code}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "second_factor_required");
    assert_eq!(body["error"]["next_action"], "lost_2fa", "{body}");
    let (status, body) = w
        .server
        .post(
            "/v1/unfreeze/confirm",
            json!({"flow_id": flow["flow_id"], "code": code,
                   "proof": {"method": "totp", "code": totp_at_step(&secret, now_step() + 1)}}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    w.smtp.wait_for(email, "Your account was unfrozen", 1).await;

    // The owner signs in again and changes the password signed in; the notice has a link.
    let owner_token = sign_in(&w, owner, email, PASSWORD, Some(&backup[2])).await;
    let (status, body) = send(
        &w.server,
        Method::PUT,
        "/v1/me/password",
        &owner_token,
        json!({"proof": {"password": PASSWORD, "method": "backup_code", "code": backup[3]},
               "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let changed = w.smtp.wait_for(email, "Your password was changed", 1).await;
    let link = freeze_link(&changed.body);
    assert_ne!(token_of(&link), token, "each message has its own link");

    let types = event_types(&w.db.pool().await, &account_id).await;
    for expected in [
        "AccountFrozen",
        "LoginRefusedWhileFrozen",
        "AccountUnfrozen",
        "PasswordChanged",
    ] {
        assert!(types.iter().any(|t| t == expected), "{expected}: {types:?}");
    }
    // The owner exports the security activity (the guide's "exported any session logs you
    // need"): every step of the story is in both formats, the stranger's address included.
    let mut csv_kinds = Vec::new();
    let response = w
        .server
        .http
        .get(format!(
            "{}/v1/me/activity/export?format=csv",
            w.server.base
        ))
        .bearer_auth(&owner_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let csv = response.text().await.unwrap();
    for line in csv.lines().skip(2) {
        csv_kinds.push(line.split(',').nth(1).unwrap_or_default().to_string());
    }
    let response = w
        .server
        .http
        .get(format!(
            "{}/v1/me/activity/export?format=json",
            w.server.base
        ))
        .bearer_auth(&owner_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let export: Value = response.json().await.unwrap();
    let json_kinds: Vec<String> = export["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(csv_kinds, json_kinds, "the two formats hold the same rows");
    for step in [
        "sign_in",
        "totp_enrolled",
        "session_stepped_up",
        "api_key_created",
        "account_frozen",
        "session_ended",
        "api_key_revoked",
        "sign_in_refused_frozen",
        "sign_in_failed",
        "code_issued",
        "account_unfrozen",
        "password_changed",
    ] {
        assert!(
            json_kinds.iter().any(|k| k == step),
            "{step} missing from the export: {json_kinds:?}"
        );
    }
    assert!(
        csv.contains(STRANGER_IP),
        "the stranger's address is in the export"
    );

    // The link's token is never logged (the request span names the route template only).
    assert!(!w.server.logs().contains(link_secret_of(&token)), "logged");
    // The freeze links are never stored.
    let link_secret = link_secret_of(&token);
    super::support::assert_nowhere_in_database(&w.db.pool().await, &[link_secret.to_string()])
        .await;
}

/// Signs up with an email and a phone and verifies both with the codes received; the account id.
async fn verified_email_and_phone_account(w: &World, email: &str, phone: &str) -> String {
    let (status, body) = w
        .server
        .post(
            "/v1/accounts",
            json!({"email": email, "phone": phone, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let email_flow = body["verification_flow_id"].clone();
    let phone_flow = body["phone_verification_flow_id"].clone();
    let code = w
        .smtp
        .wait_for(email, "email verification code", 1)
        .await
        .code();
    let (status, body) = w
        .server
        .post("/v1/verify", json!({"flow_id": email_flow, "code": code}))
        .await;
    assert_eq!(status, 204, "{body}");
    let text = w
        .sms
        .wait_for_containing(phone, "phone verification", 1)
        .await;
    let code = first_code(&text).unwrap();
    let (status, body) = w
        .server
        .post("/v1/verify", json!({"flow_id": phone_flow, "code": code}))
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = w.server.login(email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    body["account_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn test_unfreeze_with_a_verified_email_and_phone_needs_a_code_by_each() {
    let (w, _geoip) = freeze_world().await;
    let email = "two.contacts@example.com";
    let phone = "+447400900456";
    let account_id = verified_email_and_phone_account(&w, email, phone).await;
    let session = w.server.token(email, PASSWORD).await;
    let (secret, _backup) = enrol(&w.server, &session).await;
    let (status, body) = w
        .server
        .post_authed("/v1/me/freeze", &session, json!({}))
        .await;
    assert_eq!(status, 204, "{body}");
    w.smtp.wait_for(email, "Your account was frozen", 1).await;

    // Before the first code: step 1 of 2 for the account and an unknown identifier alike.
    let flow = start_unfreeze_like_a_stranger(&w, email, "no.such.person@example.com").await;
    assert_eq!(
        (flow["step"].as_u64(), flow["steps_total"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(
        flow["next_action"], "enter_code_and_second_factor",
        "{flow}"
    );

    // The inbox and the factor get only to step 2: the code of the phone follows.
    let email_code = w
        .smtp
        .wait_for(email, "account unfreeze code", 1)
        .await
        .code();
    let (status, step) = w
        .server
        .post(
            "/v1/unfreeze/confirm",
            json!({"flow_id": flow["flow_id"], "code": email_code,
                   "proof": {"method": "totp", "code": totp_at_step(&secret, now_step() + 1)}}),
        )
        .await;
    assert_eq!(status, 202, "{step}");
    assert_eq!(step["flow_id"], flow["flow_id"], "{step}");
    assert_eq!(
        (step["step"].as_u64(), step["steps_total"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(step["channel"], "sms", "{step}");
    assert_eq!(step["next_action"], "enter_code", "{step}");
    assert_eq!(step["status"], "awaiting_code", "{step}");
    let (status, body) = w.server.login(email, PASSWORD).await;
    assert_eq!(status, 403, "still frozen: {body}");
    assert_error_shape(&body, "account_frozen");

    // The second step is bound to the phone: a resend by email is refused, and the emailed
    // code does not complete it.
    let flow_id = flow["flow_id"].as_str().unwrap();
    let (status, body) = w
        .server
        .post(
            &format!("/v1/flows/{flow_id}/resend"),
            json!({"channel": "email"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_error_shape(&body, "channel_not_allowed");
    let sms_code = first_code(&w.sms.wait_for_containing(phone, "unfreeze", 1).await).unwrap();
    if sms_code != email_code {
        let (status, body) = w
            .server
            .post(
                "/v1/unfreeze/confirm",
                json!({"flow_id": flow_id, "code": email_code}),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert_error_shape(&body, "invalid_code");
    }
    let (status, body) = w
        .server
        .post(
            "/v1/unfreeze/confirm",
            json!({"flow_id": flow_id, "code": sms_code}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    w.smtp.wait_for(email, "Your account was unfrozen", 1).await;
    let (status, body) = w.server.login(email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let (_, view) = w.get(&format!("/v1/flows/{flow_id}")).await;
    assert_eq!(view["status"], "completed", "{view}");

    let types = event_types(&w.db.pool().await, &account_id).await;
    let unfrozen = types.iter().filter(|t| *t == "AccountUnfrozen").count();
    assert_eq!(unfrozen, 1, "{types:?}");
}

#[tokio::test]
async fn test_a_known_device_signs_in_without_a_notice_and_a_new_network_gets_one() {
    let (w, _geoip) = freeze_world().await;
    let email = "creature.of.habit@example.com";
    w.verified_email_account(email).await;
    let home = (OWNER_IP, OWNER_UA);
    sign_in(&w, home, email, PASSWORD, None).await;
    notice_from(&w, email, OWNER_IP).await;
    let before = sign_in_notices(&w, email);
    // Same network (another address in the /24), same browser (a newer version): no notice.
    sign_in(
        &w,
        ("192.0.2.77", &OWNER_UA.replace("120.0", "121.0")),
        email,
        PASSWORD,
        None,
    )
    .await;
    // Then a new network: its notice is the next one, so the known sign-in sent none.
    sign_in(&w, (STRANGER_IP, OWNER_UA), email, PASSWORD, None).await;
    let next = notice_from(&w, email, STRANGER_IP).await;
    assert!(next.body.contains("Lisbon, Portugal"), "{}", next.body);
    assert!(next.body.contains("/freeze?t=fz1."), "{}", next.body);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        sign_in_notices(&w, email),
        before + 1,
        "{:#?}",
        w.smtp.messages_to(email)
    );
    assert!(!w
        .smtp
        .messages_to(email)
        .iter()
        .any(|m| m.body.contains("192.0.2.77")));
    // An address the database does not place: the notice says so.
    sign_in(&w, ("203.0.113.5", OWNER_UA), email, PASSWORD, None).await;
    let third = notice_from(&w, email, "203.0.113.5").await;
    assert!(
        third.body.contains("Approximate place: unknown"),
        "{}",
        third.body
    );
}

#[tokio::test]
async fn test_staff_actions_need_their_roles_and_are_recorded_on_both_sides() {
    let (w, _geoip) = freeze_world().await;
    let email = "called.support@example.com";
    let account_id = w.verified_email_account(email).await;
    let session = w.server.token(email, PASSWORD).await;
    let admin = bootstrap_admin(&w.db).await;
    let reviewer = create_staff(&w.server, &admin, "rita", "reviewer").await;
    let analyst = create_staff(&w.server, &admin, "anna", "analyst").await;
    let path = |action: &str| format!("/v1/admin/accounts/{account_id}/{action}");
    let reason = json!({"reason": "the owner called from the number on file"});

    // No token: 401; a role without the permission: 403.
    let (status, body) = w.server.post(&path("freeze"), reason.clone()).await;
    assert_eq!(status, 401, "{body}");
    for (token, action) in [
        (&analyst, "freeze"),
        (&analyst, "unfreeze"),
        (&reviewer, "sign-out"),
        (&reviewer, "unlock"),
    ] {
        let (status, body) = staff_post(&w, token, &path(action), reason.clone()).await;
        assert_eq!(status, 403, "{action}: {body}");
        assert_error_shape(&body, "forbidden");
    }
    // A reason is required.
    let (status, body) = staff_post(&w, &admin, &path("unlock"), json!({"reason": "  "})).await;
    assert_eq!(status, 422, "{body}");
    assert_error_shape(&body, "invalid_reason");

    // The admin signs every session out and unlocks.
    let (status, body) = staff_post(&w, &admin, &path("sign-out"), reason.clone()).await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = w.server.authed(Method::GET, "/v1/me", &session).await;
    assert_eq!(status, 401);
    w.smtp
        .wait_for(email, "Every session was signed out", 1)
        .await;
    let (status, body) = staff_post(&w, &admin, &path("unlock"), reason.clone()).await;
    assert_eq!(status, 204, "{body}");

    // The reviewer freezes; freezing again is a conflict.
    let (status, body) = staff_post(&w, &reviewer, &path("freeze"), reason.clone()).await;
    assert_eq!(status, 204, "{body}");
    let frozen = w.smtp.wait_for(email, "Your account was frozen", 1).await;
    assert!(frozen.body.contains("our support team"), "{}", frozen.body);
    let (status, body) = staff_post(&w, &admin, &path("freeze"), reason.clone()).await;
    assert_eq!(status, 409, "{body}");
    assert_error_shape(&body, "already_frozen");

    // The reviewer unfreezes: the account stays frozen through the recovery hold, and the
    // owner is told, with a freeze link to stop it.
    let (status, body) = staff_post(&w, &reviewer, &path("unfreeze"), reason.clone()).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = w.server.login(email, PASSWORD).await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "account_frozen");
    let pending = w
        .smtp
        .wait_for(email, "Your account will be unfrozen", 1)
        .await;
    let link = freeze_link(&pending.body);
    // The owner did not ask for it: the link freezes it again (the release is cancelled).
    let (status, body) = w
        .server
        .post("/v1/freeze", json!({"token": token_of(&link)}))
        .await;
    assert_eq!(status, 204, "{body}");

    // The auditors' tool shows the freeze, and the unfreeze decided with its hold.
    let now = chrono::Utc::now().to_rfc3339();
    let mut state = String::new();
    for _ in 0..100 {
        let (code, out) = replay(&w, &["state", "--account", &account_id, "--at", &now]).await;
        assert_eq!(code, 0, "{out}");
        state = out;
        if state.contains("FROZEN since") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(state.contains("FROZEN since"), "{state}");
    let (code, timeline) = replay(&w, &["timeline", "--account", &account_id]).await;
    assert_eq!(code, 0, "{timeline}");
    assert!(timeline.contains("FROZEN by staff"), "{timeline}");
    assert!(
        timeline.contains("unfreeze decided, effective"),
        "{timeline}"
    );
    assert!(timeline.contains("FROZEN by a freeze link"), "{timeline}");

    // Each action on the account's stream and on the member's record.
    let types = event_types(&w.db.pool().await, &account_id).await;
    let taken = types.iter().filter(|t| *t == "StaffActionTaken").count();
    assert_eq!(taken, 4, "{types:?}");
    for (token, actions) in [
        (&admin, vec!["account.sign_out", "account.unlock"]),
        (&reviewer, vec!["account.freeze", "account.unfreeze"]),
    ] {
        let staff_id = token.split('.').nth(1).unwrap();
        let recorded = staff_actions(&w, staff_id).await;
        for action in actions {
            assert!(
                recorded.iter().any(|a| a == action),
                "{action}: {recorded:?}"
            );
        }
    }
}

/// `gatehouse-replay` against the test database: exit status and stdout.
async fn replay(w: &World, args: &[&str]) -> (i32, String) {
    let bin = super::support::binary().with_file_name("gatehouse-replay");
    let out = tokio::process::Command::new(bin)
        .args(args)
        .env_clear()
        .env("DATABASE_URL", &w.db.url)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The actions recorded on a staff member's aggregate.
async fn staff_actions(w: &World, staff_id: &str) -> Vec<String> {
    let pool = w.db.pool().await;
    let rows: Vec<Value> =
        sqlx::query_scalar("select payload from events where aggregate_id = $1 order by sequence")
            .bind(staff_id)
            .fetch_all(&pool)
            .await
            .unwrap();
    rows.iter()
        .filter_map(|p| p.pointer("/fact/StaffActionRecorded/action"))
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// A file under the system's temporary directory, removed when dropped.
mod tempfile_path {
    /// The path.
    pub struct Path(std::path::PathBuf);

    impl Path {
        /// A fresh path ending in `name`.
        pub fn new(name: &str) -> Self {
            Self(std::env::temp_dir().join(format!("gatehouse-{}-{name}", uuid::Uuid::new_v4())))
        }

        /// As a path.
        pub fn as_path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// "Is this account frozen?" is no oracle: an unfreeze asked for an account that is not frozen
/// gets the answer an unknown identifier gets, and its owner receives no code.
#[tokio::test]
async fn test_an_unfreeze_for_an_account_that_is_not_frozen_answers_like_an_unknown_one() {
    let (w, _geoip) = freeze_world().await;
    let email = "not.frozen@example.com";
    w.verified_email_account(email).await;
    let flow = start_unfreeze_like_a_stranger(&w, email, "nobody.at.all@example.com").await;
    assert_eq!(flow["kind"], "unfreeze", "{flow}");
    // Give a code time to arrive, were one sent.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let codes = w
        .smtp
        .messages_to(email)
        .into_iter()
        .filter(|m| m.subject.contains("unfreeze"))
        .count();
    assert_eq!(
        codes, 0,
        "no unfreeze code goes to an account that is not frozen"
    );
}
