//! Self-service recovery end to end: the real binary on PostgreSQL, a real SMTP server (aiosmtpd)
//! and an SMS webhook. Codes are read from the delivered messages, as a person would.
use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::Digest;

use super::mail::{first_code, SmsSink, SmtpSink};
use super::support::{
    assert_error_shape, assert_nowhere_in_database, event_types, fast_env, read, Server, TestDb,
    PASSWORD,
};

const NEW_PASSWORD: &str = "lantern-meadow-quartz-58";

pub(super) struct World {
    pub(super) db: TestDb,
    pub(super) smtp: SmtpSink,
    pub(super) sms: SmsSink,
    pub(super) server: Server,
}

pub(super) async fn world(extra: &[(&str, &str)]) -> World {
    let db = TestDb::new().await;
    let smtp = SmtpSink::start().await;
    let sms = SmsSink::start().await;
    let mut env: HashMap<String, String> = fast_env();
    env.insert("GATEHOUSE_SMTP_URL".into(), smtp.url());
    env.insert("GATEHOUSE_SMS_WEBHOOK_URL".into(), sms.url.clone());
    env.insert("GATEHOUSE_CODE_RESEND_SECONDS".into(), "2".into());
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    let server = Server::start(Some(&db.url), &env).await;
    World {
        db,
        smtp,
        sms,
        server,
    }
}

impl World {
    /// Signs up with an email and confirms it with the code from the verification email.
    pub(super) async fn verified_email_account(&self, email: &str) -> String {
        let (status, body) = self
            .server
            .post(
                "/v1/accounts",
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let flow = body["verification_flow_id"].as_str().unwrap().to_string();
        let code = self
            .smtp
            .wait_for(email, "email verification code", 1)
            .await
            .code();
        let (status, body) = self
            .server
            .post("/v1/verify", json!({"flow_id": flow, "code": code}))
            .await;
        assert_eq!(status, 204, "{body}");
        body_account(&body, email, self).await
    }

    pub(super) async fn get(&self, path: &str) -> (u16, Value) {
        read(
            self.server
                .http
                .get(format!("{}{path}", self.server.base))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub(super) async fn put_authed(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        read(
            self.server
                .http
                .put(format!("{}{path}", self.server.base))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub(super) async fn forgot(&self, identifier: &str, channel: Option<&str>) -> Value {
        let mut req = json!({ "identifier": identifier });
        if let Some(c) = channel {
            req["channel"] = json!(c);
        }
        let (status, body) = self.server.post("/v1/password/forgot", req).await;
        assert_eq!(status, 202, "{body}");
        body
    }

    pub(super) async fn reset(&self, flow: &str, code: &str, password: &str) -> (u16, Value) {
        self.server
            .post(
                "/v1/password/reset",
                json!({"flow_id": flow, "code": code, "new_password": password}),
            )
            .await
    }
}

/// The account id of a signed-up identifier (from a sign-in).
async fn body_account(_: &Value, identifier: &str, w: &World) -> String {
    let (status, body) = w.server.login(identifier, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    body["account_id"].as_str().unwrap().to_string()
}

pub(super) fn flow_id(body: &Value) -> String {
    body["flow_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn test_forgot_password_by_email_resets_revokes_and_notifies_with_the_phrase() {
    let w = world(&[]).await;
    let email = "reset.me@example.com";
    let account = w.verified_email_account(email).await;
    let other = w.verified_email_account("someone.else@example.com").await;
    let token = w.server.token(email, PASSWORD).await;
    let (status, me) = w
        .server
        .authed(reqwest::Method::GET, "/v1/me", &token)
        .await;
    assert_eq!(status, 200);
    assert_eq!(me["email_verified"], true);
    assert_eq!(me["phone_verified"], false);
    // The session alone does not change the phrase (issue #17): the password, or a step-up.
    let (status, body) = w
        .put_authed(
            "/v1/me/anti-phishing-phrase",
            &token,
            json!({"phrase": "violet otter parade"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "invalid_password");
    let (status, body) = w
        .put_authed(
            "/v1/me/anti-phishing-phrase",
            &token,
            json!({"phrase": "violet otter parade", "proof": {"password": PASSWORD}}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    // Messages rendered before the phrase existed may still be landing: let them.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before_phrase = w.smtp.messages_to(email).len();
    let second_session = w.server.token(email, PASSWORD).await;

    let started = w.forgot(email, None).await;
    assert_eq!(started["kind"], "reset_password");
    assert_eq!(started["step"], 2);
    assert_eq!(started["steps_total"], 2);
    assert_eq!(started["next_action"], "enter_code_and_new_password");
    assert_eq!(started["channel"], "email");
    assert_eq!(started["attempts_remaining"], 5);
    let flow = flow_id(&started);
    let mail = w.smtp.wait_for(email, "password reset code", 1).await;
    assert!(
        mail.body
            .starts_with("Your anti-phishing phrase: violet otter parade"),
        "{}",
        mail.body
    );
    // Asking changed nothing yet: the old password still works.
    w.server.token(email, PASSWORD).await;

    // The old password may not come back.
    let (status, body) = w.reset(&flow, &mail.code(), PASSWORD).await;
    assert_eq!(status, 422, "{body}");
    assert_error_shape(&body, "password_reused");
    let (status, body) = w.reset(&flow, &mail.code(), NEW_PASSWORD).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(body, Value::Null, "a reset signs nobody in");

    // Every session ended at once; the old password is refused, the new one works.
    for t in [&token, &second_session] {
        let (status, _) = w.server.authed(reqwest::Method::GET, "/v1/me", t).await;
        assert_eq!(status, 401);
    }
    assert_eq!(w.server.login(email, PASSWORD).await.0, 401);
    let fresh = w.server.token(email, NEW_PASSWORD).await;
    let (_, restrictions) = w
        .server
        .authed(reqwest::Method::GET, "/v1/me/restrictions", &fresh)
        .await;
    assert!(
        restrictions["high_risk_blocked_until"].is_string(),
        "{restrictions}"
    );
    assert_eq!(restrictions["reasons"], json!(["password_reset"]));

    // The code is single use.
    let (status, body) = w
        .reset(&flow, &mail.code(), "another-fine-passphrase-9")
        .await;
    assert_eq!(status, 410);
    assert_error_shape(&body, "code_used");
    let (_, view) = w.get(&format!("/v1/flows/{flow}")).await;
    assert_eq!(view["status"], "completed");
    assert_eq!(view["next_action"], "done");

    // The owner hears about it, with the phrase; the other account's emails never carry it.
    let notice = w.smtp.wait_for(email, "password was changed", 1).await;
    assert!(notice.body.contains("violet otter parade"));
    for m in w.smtp.messages_to(email).iter().skip(before_phrase) {
        assert!(
            m.body.contains("violet otter parade"),
            "an email to the owner lacks the phrase: {m:?}"
        );
    }
    for m in w.smtp.messages_to("someone.else@example.com") {
        assert!(!m.body.contains("violet otter parade"), "{m:?}");
    }
    assert_ne!(account, other);
    let pool = w.db.pool().await;
    let types = event_types(&pool, &account).await;
    for expected in [
        "CodeIssued",
        "CodeUsed",
        "PasswordReset",
        "HighRiskCooldownStarted",
        "NotificationDelivered",
    ] {
        assert!(types.contains(&expected.to_string()), "{types:?}");
    }
}

#[tokio::test]
async fn test_forgot_password_by_sms_with_a_webhook_that_fails_once() {
    let w = world(&[]).await;
    let phone = "+14155550123";
    let (status, body) = w
        .server
        .post(
            "/v1/accounts",
            json!({"phone": phone, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let verify_flow = body["verification_flow_id"].as_str().unwrap().to_string();
    let sms = w.sms.wait_for(phone, 1).await;
    let code = first_code(&sms).unwrap();
    let (status, body) = w
        .server
        .post("/v1/verify", json!({"flow_id": verify_flow, "code": code}))
        .await;
    assert_eq!(status, 204, "{body}");

    // The provider is down for the first try: the worker retries with backoff.
    w.sms.fail_next(1);
    let started = w.forgot("+1 415 555 0123", None).await;
    assert_eq!(started["channel"], "sms");
    let text = w.sms.wait_for(phone, 2).await;
    assert!(text.contains("password reset"), "{text}");
    let (status, body) = w
        .reset(
            &flow_id(&started),
            &first_code(&text).unwrap(),
            NEW_PASSWORD,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    w.server.token(phone, NEW_PASSWORD).await;

    // "My text never arrived" can be answered from the events: a failure, then the delivery,
    // with the masked number.
    let pool = w.db.pool().await;
    let account = w.server.login(phone, NEW_PASSWORD).await.1["account_id"]
        .as_str()
        .unwrap()
        .to_string();
    let outcomes: Vec<Value> = sqlx::query_scalar(
        "select payload->'fact' from events where aggregate_id = $1
           and event_type in ('NotificationFailed', 'NotificationDelivered') order by sequence",
    )
    .bind(&account)
    .fetch_all(&pool)
    .await
    .unwrap();
    let failed = outcomes
        .iter()
        .position(|o| o.get("NotificationFailed").is_some())
        .expect("the failed try is recorded");
    let failure = &outcomes[failed]["NotificationFailed"];
    assert_eq!(failure["permanent"], false);
    assert_eq!(failure["destination"], "+14******123");
    assert!(outcomes[failed + 1..]
        .iter()
        .any(|o| { o["NotificationDelivered"]["notification_id"] == failure["notification_id"] }));
}

#[tokio::test]
async fn test_unlock_by_code_before_the_lock_ends() {
    let w = world(&[("GATEHOUSE_LOCKOUT_SECONDS", "900")]).await;
    let email = "locked.out@example.com";
    w.verified_email_account(email).await;
    for _ in 0..5 {
        w.server.login(email, "not-my-password-at-all").await;
    }
    let (status, body) = w.server.login(email, PASSWORD).await;
    assert_eq!(status, 429, "{body}");
    w.smtp.wait_for(email, "account was locked", 1).await;

    let (status, started) = w
        .server
        .post("/v1/unlock/request", json!({"identifier": email}))
        .await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["kind"], "unlock");
    let code = w
        .smtp
        .wait_for(email, "account unlock code", 1)
        .await
        .code();
    let (status, body) = w
        .server
        .post(
            "/v1/unlock/confirm",
            json!({"flow_id": flow_id(&started), "code": code}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    w.server.token(email, PASSWORD).await;
    w.smtp.wait_for(email, "account was unlocked", 1).await;
}

#[tokio::test]
async fn test_resend_waits_for_the_cooldown_and_can_switch_channel() {
    let w = world(&[]).await;
    let email = "two.channels@example.com";
    let phone = "+447400900123";
    let (status, body) = w
        .server
        .post(
            "/v1/accounts",
            json!({"email": email, "phone": phone, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let email_flow = body["verification_flow_id"].as_str().unwrap().to_string();
    let phone_flow = body["phone_verification_flow_id"]
        .as_str()
        .unwrap()
        .to_string();
    let code = w
        .smtp
        .wait_for(email, "email verification code", 1)
        .await
        .code();
    assert_eq!(
        w.server
            .post("/v1/verify", json!({"flow_id": email_flow, "code": code}))
            .await
            .0,
        204
    );
    let code = first_code(&w.sms.wait_for(phone, 1).await).unwrap();
    assert_eq!(
        w.server
            .post("/v1/verify", json!({"flow_id": phone_flow, "code": code}))
            .await
            .0,
        204
    );

    let started = w.forgot(email, Some("email")).await;
    let flow = flow_id(&started);
    let first_email_code = w
        .smtp
        .wait_for(email, "password reset code", 1)
        .await
        .code();
    let resend = format!("/v1/flows/{flow}/resend");
    let (status, body) = w.server.post(&resend, json!({"channel": "sms"})).await;
    assert_eq!(status, 429, "{body}");
    assert_error_shape_with_retry(&body, "code_rate_limited");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, view) = w.server.post(&resend, json!({"channel": "sms"})).await;
    assert_eq!(status, 202, "{view}");
    assert_eq!(view["channel"], "sms");
    let sms_code = first_code(&w.sms.wait_for(phone, 2).await).unwrap();
    // Only the newest code works: the emailed one now counts as a wrong try.
    if first_email_code != sms_code {
        let (status, body) = w.reset(&flow, &first_email_code, NEW_PASSWORD).await;
        assert_eq!(status, 422, "{body}");
        assert_error_shape(&body, "invalid_code");
    }
    let (status, body) = w.reset(&flow, &sms_code, NEW_PASSWORD).await;
    assert_eq!(status, 204, "{body}");
}

fn assert_error_shape_with_retry(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["retry_after"]
            .as_i64()
            .is_some_and(|s| s >= 1),
        "{body}"
    );
}

#[tokio::test]
async fn test_expired_code_is_refused_and_a_new_one_can_be_asked_for() {
    let w = world(&[("GATEHOUSE_CODE_TTL_SECONDS", "3")]).await;
    let email = "slow.reader@example.com";
    // The verification code expires too: verify after a resend instead.
    let (status, body) = w
        .server
        .post(
            "/v1/accounts",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201);
    let verify_flow = body["verification_flow_id"].as_str().unwrap().to_string();
    let code = w
        .smtp
        .wait_for(email, "email verification code", 1)
        .await
        .code();
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (status, body) = w
        .server
        .post("/v1/verify", json!({"flow_id": verify_flow, "code": code}))
        .await;
    assert_eq!(status, 410, "{body}");
    assert_error_shape(&body, "code_expired");
    let (_, view) = w.get(&format!("/v1/flows/{verify_flow}")).await;
    assert_eq!(view["status"], "code_expired");
    assert_eq!(view["next_action"], "request_new_code");
    let (status, body) = w
        .server
        .post(&format!("/v1/flows/{verify_flow}/resend"), json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    let code = w
        .smtp
        .wait_for(email, "email verification code", 2)
        .await
        .code();
    let (status, body) = w
        .server
        .post("/v1/verify", json!({"flow_id": verify_flow, "code": code}))
        .await;
    assert_eq!(status, 204, "{body}");
}

#[tokio::test]
async fn test_five_wrong_codes_exhaust_the_code() {
    let w = world(&[]).await;
    let email = "fat.fingers@example.com";
    w.verified_email_account(email).await;
    let flow = flow_id(&w.forgot(email, None).await);
    let right = w
        .smtp
        .wait_for(email, "password reset code", 1)
        .await
        .code();
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for left in (1..=4).rev() {
        let (status, body) = w.reset(&flow, wrong, NEW_PASSWORD).await;
        assert_eq!(status, 422, "{body}");
        assert_error_shape(&body, "invalid_code");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("{left} tr")),
            "{body}"
        );
    }
    let (status, body) = w.reset(&flow, wrong, NEW_PASSWORD).await;
    assert_eq!(status, 410, "{body}");
    assert_error_shape(&body, "code_exhausted");
    let (status, body) = w.reset(&flow, &right, NEW_PASSWORD).await;
    assert_eq!(status, 410, "the right code no longer works: {body}");
    assert_error_shape(&body, "code_exhausted");
    assert_eq!(w.server.login(email, NEW_PASSWORD).await.0, 401);
    // A forged or altered flow id is simply unknown.
    let mut forged = flow.clone();
    forged.pop();
    forged.push(if flow.ends_with('A') { 'B' } else { 'A' });
    let (status, body) = w.reset(&forged, &right, NEW_PASSWORD).await;
    assert_eq!(status, 404, "{body}");
    assert_error_shape(&body, "flow_not_found");
}

/// The keys of a JSON object, with the value types.
fn shape(v: &Value) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let t = match v {
                Value::String(_) => "string",
                Value::Number(_) => "number",
                Value::Bool(_) => "bool",
                Value::Null => "null",
                _ => "other",
            };
            (k.clone(), t)
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn test_unknown_identifier_flow_looks_the_same_and_sends_nothing() {
    let w = world(&[]).await;
    let known = "known.person@example.com";
    w.verified_email_account(known).await;
    let unknown = "nobody.here@example.com";
    let real = w.forgot(known, None).await;
    let fake = w.forgot(unknown, None).await;
    assert_eq!(shape(&real), shape(&fake));
    for field in [
        "kind",
        "step",
        "steps_total",
        "next_action",
        "status",
        "channel",
        "attempts_remaining",
    ] {
        assert_eq!(real[field], fake[field], "{field}");
    }
    assert_eq!(
        flow_id(&real).len(),
        flow_id(&fake).len(),
        "flow ids must not betray the account"
    );
    let (_, real_view) = w.get(&format!("/v1/flows/{}", flow_id(&real))).await;
    let (_, fake_view) = w.get(&format!("/v1/flows/{}", flow_id(&fake))).await;
    assert_eq!(shape(&real_view), shape(&fake_view));
    let (s1, b1) = w.reset(&flow_id(&real), "999999", NEW_PASSWORD).await;
    let (s2, b2) = w.reset(&flow_id(&fake), "999999", NEW_PASSWORD).await;
    assert_eq!((s1, &b1["error"]), (s2, &b2["error"]));
    // Resend cooldowns too.
    let (s1, b1) = w
        .server
        .post(&format!("/v1/flows/{}/resend", flow_id(&real)), json!({}))
        .await;
    let (s2, b2) = w
        .server
        .post(&format!("/v1/flows/{}/resend", flow_id(&fake)), json!({}))
        .await;
    assert_eq!((s1, &b1["error"]["code"]), (s2, &b2["error"]["code"]));
    // The real owner got the code; nothing went to the unknown address.
    w.smtp.wait_for(known, "password reset code", 1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(w.smtp.messages_to(unknown).is_empty());
    // And the attempt is on record (principle 4).
    let pool = w.db.pool().await;
    let recorded: i64 = sqlx::query_scalar(
        "select count(*) from events where aggregate_id like 'unknown-%' and event_type = 'FlowStarted'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(recorded, 1);
}

#[tokio::test]
async fn test_requests_are_throttled_per_identifier() {
    let w = world(&[("GATEHOUSE_RATE_LIMIT_PER_IDENTIFIER_PER_MINUTE", "3")]).await;
    for _ in 0..3 {
        w.forgot("someone@example.com", None).await;
    }
    let (status, body) = w
        .server
        .post(
            "/v1/password/forgot",
            json!({"identifier": "someone@example.com"}),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert_error_shape_with_retry(&body, "rate_limited");
    // Another identifier from the same client is still served.
    w.forgot("another@example.com", None).await;
}

#[tokio::test]
async fn test_no_code_or_unkeyed_code_hash_in_any_table_after_the_flows() {
    let w = world(&[]).await;
    let email = "scan.me@example.com";
    w.verified_email_account(email).await;
    let token = w.server.token(email, PASSWORD).await;
    w.put_authed(
        "/v1/me/anti-phishing-phrase",
        &token,
        json!({"phrase": "copper lighthouse"}),
    )
    .await;
    let flow = flow_id(&w.forgot(email, None).await);
    let code = w
        .smtp
        .wait_for(email, "password reset code", 1)
        .await
        .code();
    assert_eq!(w.reset(&flow, &code, NEW_PASSWORD).await.0, 204);
    let unlock = w
        .server
        .post("/v1/unlock/request", json!({"identifier": email}))
        .await
        .1;
    let unlock_code = w
        .smtp
        .wait_for(email, "account unlock code", 1)
        .await
        .code();
    w.smtp.wait_for(email, "password was changed", 1).await;
    tokio::time::sleep(Duration::from_millis(600)).await;

    let mut codes: Vec<String> = w
        .smtp
        .messages()
        .iter()
        .filter_map(|m| first_code(&m.body))
        .collect();
    codes.push(unlock_code);
    assert!(codes.len() >= 3, "{codes:?}");
    let mut needles: Vec<String> = vec![
        NEW_PASSWORD.into(),
        PASSWORD.into(),
        token.clone(),
        "copper lighthouse".into(),
        email.into(),
        flow.clone(),
        unlock["flow_id"].as_str().unwrap().into(),
    ];
    for code in &codes {
        // The code itself, and the unkeyed hashes anyone could brute-force.
        needles.push(format!("\"{code}\""));
        needles.push(hex(&sha2::Sha256::digest(code.as_bytes())));
        needles.push(hex(&sha2::Sha512::digest(code.as_bytes())));
    }
    let pool = w.db.pool().await;
    let tables = assert_nowhere_in_database(&pool, &needles).await;
    assert!(tables.contains(&"code_secrets".to_string()));
    // A code waiting for delivery is sealed, and delivered ones are gone.
    let held: i64 = sqlx::query_scalar("select count(*) from code_secrets")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(held, 0, "delivered codes are forgotten");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn test_changing_the_email_needs_the_password_verifies_the_new_one_and_tells_the_old() {
    let w = world(&[]).await;
    let old = "old.address@example.com";
    let new = "new.address@example.com";
    let account = w.verified_email_account(old).await;
    w.verified_email_account("taken.address@example.com").await;
    // Signed in by the old address: the server now caches where it leads.
    let token = w.server.token(old, PASSWORD).await;
    let (_, before) = w
        .server
        .authed(reqwest::Method::GET, "/v1/me", &token)
        .await;

    let change = |email: &str, password: &str| json!({"email": email, "password": password});
    let (status, body) = w
        .put_authed("/v1/me/email", &token, change(new, "not-the-password-x"))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "invalid_password");
    // Another account's address gets the same answer as a free one (issue #17, finding 6):
    // nothing is claimed, no code is sent, and its holder is told.
    let (status, body) = w
        .put_authed(
            "/v1/me/email",
            &token,
            change("taken.address@example.com", PASSWORD),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert!(body["verification_flow_id"].is_string(), "{body}");
    let taken_flow = body["verification_flow_id"].as_str().unwrap().to_string();
    w.smtp
        .wait_for(
            "taken.address@example.com",
            "Someone tried to use your address",
            1,
        )
        .await;
    // Nor does a resend send its holder a code that would verify the request.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = w
        .server
        .post(&format!("/v1/flows/{taken_flow}/resend"), json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let codes_to_holder = w
        .smtp
        .messages_to("taken.address@example.com")
        .iter()
        .filter(|m| m.subject.contains("email verification code"))
        .count();
    assert_eq!(codes_to_holder, 1, "only the holder's own sign-up code");
    let (status, body) = w
        .put_authed("/v1/me/email", &token, change(new, PASSWORD))
        .await;
    assert_eq!(status, 202, "{body}");
    let flow = body["verification_flow_id"].as_str().unwrap().to_string();

    w.smtp
        .wait_for(old, "A change of your contact details was requested", 1)
        .await;
    let code = w
        .smtp
        .wait_for(new, "email verification code", 1)
        .await
        .code();
    // Until the new address is verified, the old one stays the account's: for sign-in, for
    // recovery codes, and in what the account shows (issue #17).
    let (_, me) = w
        .server
        .authed(reqwest::Method::GET, "/v1/me", &token)
        .await;
    assert_eq!(me["email_verified"], true, "{me}");
    assert_eq!(me["email"], before["email"], "{me}");
    assert_eq!(w.server.login(old, PASSWORD).await.0, 200);
    assert_eq!(w.server.login(new, PASSWORD).await.0, 401);
    let started = w.forgot(old, None).await;
    w.smtp.wait_for(old, "password reset code", 1).await;
    assert_eq!(started["channel"], "email");
    assert_eq!(
        w.server
            .post("/v1/verify", json!({"flow_id": flow, "code": code}))
            .await
            .0,
        204
    );
    w.smtp
        .wait_for(old, "contact details were changed", 1)
        .await;
    let (_, me) = w
        .server
        .authed(reqwest::Method::GET, "/v1/me", &token)
        .await;
    assert_eq!(me["email_verified"], true, "{me}");
    assert_ne!(me["email"], before["email"], "{me}");

    // The old address no longer leads to the account, even from the server's cache.
    assert_eq!(w.server.login(old, PASSWORD).await.0, 401);
    let (status, body) = w.server.login(new, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account_id"], account.as_str());
    // And the old address is free for someone else.
    let (status, _) = w
        .server
        .post("/v1/accounts", json!({"email": old, "password": PASSWORD}))
        .await;
    assert_eq!(status, 201);
}
