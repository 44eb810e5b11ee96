//! Issue #17, findings 4 to 6, against the real binary on PostgreSQL: enumeration oracles
//! (step counts, channels, a flow id relabelled as a sign-in challenge), channel-bound steps, and
//! a lost-second-factor case in progress that a stranger's request must leave alone. Each test
//! fails on the code before its fix.
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

use super::e2e_lost_factor::{protected_account, review, reviewer, up_to_review};
use super::e2e_recovery::{flow_id, world, World};
use super::e2e_second_factor::{enrol, now_step, send, totp_at_step};
use super::mail::first_code;
use super::support::{assert_error_shape, PASSWORD};

const ORIGIN: &str = "http://localhost:8080";
/// Every test here sends many self-service requests from one address.
const GENEROUS_IP_LIMIT: (&str, &str) = ("GATEHOUSE_RATE_LIMIT_PER_IP_PER_MINUTE", "1000");

/// Signs up with an email and optionally a phone, verifying the ones asked for.
async fn sign_up(
    w: &World,
    email: &str,
    phone: Option<&str>,
    verify_email: bool,
    verify_phone: bool,
) {
    let mut req = json!({"email": email, "password": PASSWORD});
    if let Some(phone) = phone {
        req["phone"] = json!(phone);
    }
    let (status, created) = w.server.post("/v1/accounts", req).await;
    assert_eq!(status, 201, "{created}");
    if verify_email {
        let flow = created["verification_flow_id"].as_str().unwrap();
        let code = w
            .smtp
            .wait_for(email, "email verification code", 1)
            .await
            .code();
        let (status, body) = w
            .server
            .post("/v1/verify", json!({"flow_id": flow, "code": code}))
            .await;
        assert_eq!(status, 204, "{body}");
    }
    if let (Some(phone), true) = (phone, verify_phone) {
        let flow = created["phone_verification_flow_id"].as_str().unwrap();
        let code = first_code(&w.sms.wait_for(phone, 1).await).unwrap();
        let (status, body) = w
            .server
            .post("/v1/verify", json!({"flow_id": flow, "code": code}))
            .await;
        assert_eq!(status, 204, "{body}");
    }
}

/// Status, headers (but `date` and `content-length`, which vary with the clock, and the
/// request's own `x-request-id`) and body.
async fn post_raw(w: &World, path: &str, body: Value) -> (u16, BTreeMap<String, String>, Value) {
    let r = w
        .server
        .http
        .post(format!("{}{path}", w.server.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "date" | "content-length" | "x-request-id"))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("<binary>").to_string()))
        .collect();
    let text = r.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A flow view with what legitimately differs between two requests (the opaque id, the
/// instants) replaced by its length or shape.
fn comparable(view: &Value) -> Value {
    let mut v = view.clone();
    if let Some(o) = v.as_object_mut() {
        for key in ["flow_id", "expires_at", "resend_available_at"] {
            if let Some(Value::String(s)) = o.get(key) {
                let kept = if key == "flow_id" {
                    json!({"prefix": &s[..4], "len": s.len()})
                } else {
                    json!("<instant>")
                };
                o.insert(key.to_string(), kept);
            }
        }
        // The delivery status (issue #20) shows strangers the identifier typed, masked, and the
        // code's issue instant: both follow from the request, not from the account.
        if let Some(Value::Object(d)) = o.get_mut("delivery") {
            for key in ["destination", "at"] {
                if d.contains_key(key) {
                    d.insert(key.to_string(), json!("<from the request>"));
                }
            }
        }
    }
    v
}

// --- Finding 6: forgot password names the channel asked for or typed, for every identifier ---

#[tokio::test]
async fn test_forgot_and_unlock_answer_the_typed_channel_and_send_nothing_to_an_unverified_contact()
{
    let w = world(&[GENEROUS_IP_LIMIT]).await;
    // An account whose email is unverified and whose phone is verified.
    let email = "half.verified@example.com";
    let phone = "+447400900451";
    sign_up(&w, email, Some(phone), false, true).await;
    let unknown = "no.account.here@example.com";
    for path in ["/v1/password/forgot", "/v1/unlock/request"] {
        let known = post_raw(&w, path, json!({"identifier": email})).await;
        let stranger = post_raw(&w, path, json!({"identifier": unknown})).await;
        // Before the fix the known address answered `channel: "sms"` (the code went to the
        // verified phone), the unknown one `"email"`: a yes/no on "has an account with a
        // verified phone and no verified email".
        assert_eq!(known.0, 202, "{path}: {:?}", known.2);
        assert_eq!(known.2["channel"], "email", "{path}: {}", known.2);
        assert_eq!(
            (known.0, &known.1, comparable(&known.2)),
            (stranger.0, &stranger.1, comparable(&stranger.2)),
            "{path}"
        );
    }
    // Nothing went anywhere: the unverified email gets no code, the phone gets none either.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        w.smtp
            .messages_to(email)
            .iter()
            .all(|m| m.subject.contains("verification")),
        "{:?}",
        w.smtp.messages_to(email)
    );
    assert_eq!(
        w.sms.messages_to(phone).len(),
        1,
        "only the verification code"
    );
    // The phone, typed or asked for, gets its code.
    let typed = post_raw(&w, "/v1/password/forgot", json!({"identifier": phone})).await;
    assert_eq!(typed.2["channel"], "sms", "{}", typed.2);
    let text = w.sms.wait_for(phone, 2).await;
    assert!(text.contains("password reset"), "{text}");
    let unknown_phone = post_raw(
        &w,
        "/v1/password/forgot",
        json!({"identifier": "+447400900999"}),
    )
    .await;
    assert_eq!(
        (typed.0, &typed.1, comparable(&typed.2)),
        (
            unknown_phone.0,
            &unknown_phone.1,
            comparable(&unknown_phone.2)
        )
    );
}

// --- Finding 6: lost-2FA counts four steps for everyone until the email code ---

#[tokio::test]
async fn test_lost_2fa_counts_four_steps_for_every_identifier_until_the_email_code() {
    let w = world(&[GENEROUS_IP_LIMIT]).await;
    let with_phone = "has.phone@example.com";
    let phone = "+447400900452";
    sign_up(&w, with_phone, Some(phone), true, true).await;
    let without_phone = "no.phone@example.com";
    sign_up(&w, without_phone, None, true, false).await;
    let mut answers = Vec::new();
    for identifier in [
        with_phone,
        without_phone,
        "nobody.at.all@example.com",
        phone,
    ] {
        let (status, headers, view) = post_raw(
            &w,
            "/v1/recovery/lost-2fa",
            json!({"identifier": identifier}),
        )
        .await;
        // Before the fix: 4 for the account with a verified phone, 3 for the others.
        assert_eq!(
            (status, view["step"].as_u64(), view["steps_total"].as_u64()),
            (202, Some(1), Some(4)),
            "{identifier}: {view}"
        );
        assert_eq!(view["channel"], "email", "{identifier}: {view}");
        answers.push((identifier, status, headers, comparable(&view)));
    }
    for (identifier, status, headers, view) in &answers[1..] {
        assert_eq!(
            (status, headers, view),
            (&answers[0].1, &answers[0].2, &answers[0].3),
            "{identifier} answers unlike {}",
            answers[0].0
        );
    }
    // Past the email step, the count tells the requester (who proved the inbox) what follows.
    let (_, view) = w
        .server
        .post(
            "/v1/recovery/lost-2fa",
            json!({"identifier": without_phone}),
        )
        .await;
    let code = w
        .smtp
        .wait_for(without_phone, "account recovery code", 2)
        .await
        .code();
    let (status, view) = w
        .server
        .post(
            "/v1/recovery/lost-2fa/code",
            json!({"flow_id": flow_id(&view), "code": code}),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (view["step"].as_u64(), view["steps_total"].as_u64()),
        (Some(2), Some(3))
    );
}

// --- Finding 4: the phone step accepts only a code sent by SMS ---

#[tokio::test]
async fn test_lost_2fa_phone_step_cannot_be_moved_to_the_email() {
    let w = world(&[GENEROUS_IP_LIMIT]).await;
    let email = "phone.step@example.com";
    let phone = "+447400900453";
    sign_up(&w, email, Some(phone), true, true).await;
    let token = w.server.token(email, PASSWORD).await;
    enrol(&w.server, &token).await;

    let (status, view) = w
        .server
        .post("/v1/recovery/lost-2fa", json!({"identifier": email}))
        .await;
    assert_eq!(status, 202, "{view}");
    let flow = flow_id(&view);
    let code = w
        .smtp
        .wait_for(email, "account recovery code", 1)
        .await
        .code();
    let (status, view) = w
        .server
        .post(
            "/v1/recovery/lost-2fa/code",
            json!({"flow_id": flow, "code": code}),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (view["step"].as_u64(), view["steps_total"].as_u64()),
        (Some(2), Some(4))
    );
    assert_eq!(view["channel"], "sms");
    // Past the resend cooldown (2 s here), so that only the channel can be the reason.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let resend = format!("/v1/flows/{flow}/resend");
    // Before the fix: 202, the code went to the inbox, and it passed the phone step.
    let (status, body) = w.server.post(&resend, json!({"channel": "email"})).await;
    assert_eq!(status, 422, "{body}");
    assert_error_shape(&body, "channel_not_allowed");
    assert!(
        w.smtp
            .messages_to(email)
            .iter()
            .filter(|m| m.subject.contains("account recovery code"))
            .count()
            == 1
    );
    // By SMS it works, and that code passes the step.
    let (status, view) = w.server.post(&resend, json!({"channel": "sms"})).await;
    assert_eq!(status, 202, "{view}");
    assert_eq!(view["channel"], "sms");
    let sms = first_code(
        &w.sms
            .wait_for_containing(phone, "account recovery code", 2)
            .await,
    )
    .unwrap();
    let (status, view) = w
        .server
        .post(
            "/v1/recovery/lost-2fa/code",
            json!({"flow_id": flow, "code": sms}),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["next_action"], "submit_evidence");

    // The email step is bound too, with one answer for an account and a stranger.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut answers = Vec::new();
    for identifier in [email, "nobody.else@example.com"] {
        let (_, view) = w
            .server
            .post("/v1/recovery/lost-2fa", json!({"identifier": identifier}))
            .await;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        answers.push(
            w.server
                .post(
                    &format!("/v1/flows/{}/resend", flow_id(&view)),
                    json!({"channel": "sms"}),
                )
                .await,
        );
    }
    assert_eq!(answers[0].0, 422, "{}", answers[0].1);
    assert_eq!(answers[0], answers[1]);
}

#[tokio::test]
async fn test_whitelist_codes_cannot_be_moved_to_sms() {
    let w = world(&[GENEROUS_IP_LIMIT]).await;
    let email = "whitelister@example.com";
    let phone = "+447400900454";
    sign_up(&w, email, Some(phone), true, true).await;
    let token = w.server.token(email, PASSWORD).await;
    let (secret, _) = enrol(&w.server, &token).await;
    let (status, body) = send(
        &w.server,
        reqwest::Method::POST,
        "/v1/me/step-up",
        &token,
        json!({"method": "totp", "code": totp_at_step(&secret, now_step() + 1)}),
    )
    .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let (status, body) = send(
        &w.server,
        reqwest::Method::POST,
        "/v1/me/withdrawal-addresses",
        &token,
        json!({"asset": "BTC", "network": "bitcoin", "address": "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh", "label": "cold", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let flow = flow_id(&body);
    w.smtp
        .wait_for(email, "withdrawal address confirmation code", 1)
        .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Before the fix: 202, and the confirmation code went by SMS.
    let (status, body) = w
        .server
        .post(
            &format!("/v1/flows/{flow}/resend"),
            json!({"channel": "sms"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_error_shape(&body, "channel_not_allowed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Security notices may go by SMS; the confirmation code never does.
    assert_eq!(
        w.sms
            .messages_to(phone)
            .iter()
            .filter(|m| m["body"]
                .as_str()
                .unwrap_or_default()
                .contains("withdrawal address"))
            .count(),
        0,
        "no whitelist code by SMS"
    );
}

// --- Finding 5: a stranger's request leaves an approved case untouched ---

#[tokio::test]
async fn test_a_strangers_request_leaves_an_approved_case_and_the_owner_completes_it() {
    let w = world(&[GENEROUS_IP_LIMIT, ("GATEHOUSE_RECOVERY_HOLD_SECONDS", "4")]).await;
    let email = "approved.case@example.com";
    let (account, _session) = protected_account(&w, email).await;
    let (reviewer_token, analyst_token) = reviewer(&w).await;
    let flow = up_to_review(&w, email, 1).await;
    review(&w, &reviewer_token, &analyst_token, &account, true).await;
    let (_, view) = w.get(&format!("/v1/flows/{flow}")).await;
    assert_eq!(view["status"], "approved", "{view}");

    // A stranger asks to recover the account, twice: the answer is the one anybody gets.
    let unknown = post_raw(
        &w,
        "/v1/recovery/lost-2fa",
        json!({"identifier": "unknown.person@example.com"}),
    )
    .await;
    let mut stranger_flows = Vec::new();
    for _ in 0..2 {
        let stranger = post_raw(&w, "/v1/recovery/lost-2fa", json!({"identifier": email})).await;
        assert_eq!(
            (stranger.0, &stranger.1, comparable(&stranger.2)),
            (unknown.0, &unknown.1, comparable(&unknown.2))
        );
        stranger_flows.push(flow_id(&stranger.2));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The case is as it was (before the fix: `closed`, and the owner's completion failed).
    let (_, view) = w.get(&format!("/v1/flows/{flow}")).await;
    assert_eq!(view["status"], "approved", "{view}");
    assert_eq!(view["next_action"], "await_hold_end", "{view}");
    // The stranger's flow looks like any at its first step, and never progresses: no code went.
    let (_, view) = w.get(&format!("/v1/flows/{}", stranger_flows[0])).await;
    assert_eq!(
        (view["step"].as_u64(), view["steps_total"].as_u64()),
        (Some(1), Some(4))
    );
    assert_eq!(view["status"], "awaiting_code");
    // The owner is told once, however many requests came.
    w.smtp.wait_for(email, "Another recovery request", 1).await;

    // After the hold the owner completes the recovery.
    let mut completed = None;
    for _ in 0..100 {
        let (status, body) = w
            .server
            .post("/v1/recovery/lost-2fa/complete", json!({"flow_id": flow}))
            .await;
        if status == 409 && body["error"]["code"] == "hold_not_over" {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        completed = Some((status, body));
        break;
    }
    let (status, body) = completed.expect("the hold ends");
    assert_eq!(status, 204, "{body}");
    let (status, body) = w.server.login(email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["session_token"].is_string(),
        "no second factor any more: {body}"
    );
    // The read model agrees: one case, completed.
    let pool = w.db.pool().await;
    let mut statuses = Vec::new();
    for _ in 0..100 {
        statuses = sqlx::query_scalar::<_, String>(
            "select status from recovery_cases_v1 where account_id = $1",
        )
        .bind(&account)
        .fetch_all(&pool)
        .await
        .unwrap();
        if statuses == ["completed"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(statuses, ["completed"]);
    // Exactly one recovery code ever reached the owner (the stranger's flows got none), and one
    // notice of the requests set aside.
    let count = |subject: &str| {
        w.smtp
            .messages_to(email)
            .iter()
            .filter(|m| m.subject.contains(subject))
            .count()
    };
    assert_eq!(count("account recovery code"), 1);
    assert_eq!(count("Another recovery request"), 1);
}

// --- Finding 6: a flow id relabelled as a sign-in challenge ---

/// Registers a software security key for a signed-in account.
async fn register_key(w: &World, token: &str, key: &mut SoftPasskey) {
    let (status, body) = send(
        &w.server,
        reqwest::Method::POST,
        "/v1/me/security-keys/registration",
        token,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let options: CreationChallengeResponse =
        serde_json::from_value(body["options"].clone()).unwrap();
    let credential = key
        .do_registration(Url::parse(ORIGIN).unwrap(), options)
        .unwrap();
    let (status, body) = send(
        &w.server,
        reqwest::Method::POST,
        "/v1/me/security-keys",
        token,
        json!({"ceremony_id": body["ceremony_id"], "name": "blue key", "password": PASSWORD, "credential": credential}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn test_only_an_open_challenge_gets_security_key_options() {
    let w = world(&[
        GENEROUS_IP_LIMIT,
        ("GATEHOUSE_WEBAUTHN_RP_ID", "localhost"),
        ("GATEHOUSE_WEBAUTHN_ORIGINS", ORIGIN),
    ])
    .await;
    let with_key = "key.owner@example.com";
    sign_up(&w, with_key, None, true, false).await;
    let token = w.server.token(with_key, PASSWORD).await;
    let mut key = SoftPasskey::new(true);
    register_key(&w, &token, &mut key).await;
    let without_key = "no.key@example.com";
    sign_up(&w, without_key, None, true, false).await;

    let key_options = |challenge: String| {
        let w = &w;
        async move {
            w.server
                .post(
                    "/v1/login/mfa/security-key",
                    json!({"challenge_id": challenge}),
                )
                .await
        }
    };
    let invalid = key_options("ch1.not-a-challenge".into()).await;
    assert_eq!(invalid.0, 401, "{}", invalid.1);
    assert_error_shape(&invalid.1, "invalid_challenge");

    // A forgot-password flow id relabelled as a challenge: before the fix, 200 with the key ids
    // for an account with a key, 409 `no_security_key` for the others.
    for identifier in [with_key, without_key, "nobody.here@example.com"] {
        let flow = flow_id(&w.forgot(identifier, None).await);
        let relabelled = format!("ch1.{}", flow.strip_prefix("fl1.").unwrap());
        assert_eq!(key_options(relabelled).await, invalid, "{identifier}");
    }

    // A real challenge gets the options; answered, it is spent; altered, it is unknown.
    let (status, body) = w.server.login(with_key, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let challenge = body["challenge_id"].as_str().unwrap().to_string();
    let mut altered = challenge.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(key_options(altered).await, invalid);
    let (status, body) = key_options(challenge.clone()).await;
    assert_eq!(status, 200, "{body}");
    let options: RequestChallengeResponse =
        serde_json::from_value(body["options"].clone()).unwrap();
    let assertion = key
        .do_authentication(Url::parse(ORIGIN).unwrap(), options)
        .unwrap();
    let (status, body) = w
        .server
        .post(
            "/v1/login/mfa",
            json!({"challenge_id": challenge, "method": "security_key", "ceremony_id": body["ceremony_id"], "assertion": assertion}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Before the fix a spent challenge still got fresh options.
    assert_eq!(key_options(challenge).await, invalid);
}

// --- Identical answers, table-driven ---

#[tokio::test]
async fn test_self_service_answers_are_identical_for_every_kind_of_identifier() {
    let w = world(&[GENEROUS_IP_LIMIT]).await;
    let known_with_phone = "table.phone@example.com";
    sign_up(&w, known_with_phone, Some("+447400900461"), true, true).await;
    let known_without_phone = "table.email@example.com";
    sign_up(&w, known_without_phone, None, true, false).await;
    let unverified = "table.unverified@example.com";
    sign_up(&w, unverified, None, false, false).await;
    let unknown = "table.unknown@example.com";
    let identifiers = [
        ("known, verified phone", known_with_phone),
        ("known, no phone", known_without_phone),
        ("unverified", unverified),
        ("unknown", unknown),
    ];
    let mut failures = Vec::new();
    for path in [
        "/v1/password/forgot",
        "/v1/unlock/request",
        "/v1/recovery/lost-2fa",
    ] {
        let mut answers = Vec::new();
        for (label, identifier) in identifiers {
            let (status, headers, body) =
                post_raw(&w, path, json!({"identifier": identifier})).await;
            answers.push((label, status, headers, comparable(&body)));
        }
        let (first_label, status, headers, body) = &answers[0];
        for (label, s, h, b) in &answers[1..] {
            if (s, h, b) != (status, headers, body) {
                failures.push(format!(
                    "{path}: {label} answered\n  {s} {h:?} {b}\nbut {first_label}\n  {status} {headers:?} {body}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
