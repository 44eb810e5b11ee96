//! The proof policy end to end (issue #17, findings 2 and 3): a session with the password is not
//! enough to change a contact or the password of an account with a second factor, API keys need a
//! stepped-up session, and the inbox alone never resets a protected account. Real binary,
//! PostgreSQL, SMTP.
use reqwest::Method;
use serde_json::{json, Value};

use super::e2e_recovery::{flow_id, world, World};
use super::e2e_second_factor::{enrol, now_step, send, totp_at_step};
use super::support::{assert_error_shape, PASSWORD};

const NEW_PASSWORD: &str = "harbour-quiver-lantern-77";

/// Signs in with the password and a backup code; returns the session token.
async fn sign_in_with_backup(w: &World, email: &str, password: &str, backup: &str) -> String {
    let (status, challenge) = w.server.login(email, password).await;
    assert_eq!(status, 200, "{challenge}");
    let (status, session) = w
        .server
        .post(
            "/v1/login/mfa",
            json!({"challenge_id": challenge["challenge_id"], "method": "backup_code", "code": backup}),
        )
        .await;
    assert_eq!(status, 200, "{session}");
    session["session_token"].as_str().unwrap().to_string()
}

async fn put(w: &World, path: &str, token: &str, body: Value) -> (u16, Value) {
    send(&w.server, Method::PUT, path, token, body).await
}

#[tokio::test]
async fn test_session_and_password_change_nothing_on_an_account_with_a_second_factor() {
    let w = world(&[]).await;
    let email = "guarded.owner@example.com";
    w.verified_email_account(email).await;
    let token = w.server.token(email, PASSWORD).await;
    let (secret, backup) = enrol(&w.server, &token).await;
    // The thief's session: signed in with the password and a factor the thief got once.
    let stolen = sign_in_with_backup(&w, email, PASSWORD, &backup[0]).await;

    // Email change: the password alone is refused, the code sent nowhere.
    let change = |proof: Value| json!({"email": "thief.inbox@example.net", "proof": proof});
    let (status, body) = put(
        &w,
        "/v1/me/email",
        &stolen,
        change(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "second_factor_required");
    // The deprecated flat field is the same proof.
    let (status, body) = put(
        &w,
        "/v1/me/email",
        &stolen,
        json!({"email": "thief.inbox@example.net", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "second_factor_required");
    // A wrong factor is recorded and refused.
    let (status, body) = put(
        &w,
        "/v1/me/email",
        &stolen,
        change(json!({"password": PASSWORD, "method": "totp", "code": "000000"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "invalid_second_factor");

    // The password while signed in: the same rule.
    let (status, body) = put(
        &w,
        "/v1/me/password",
        &stolen,
        json!({"proof": {"password": PASSWORD}, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "second_factor_required");

    // API keys need a stepped-up session: signing in with a factor is not a step-up.
    let (status, body) = send(
        &w.server,
        Method::POST,
        "/v1/me/api-keys",
        &stolen,
        json!({"name": "bot", "scopes": ["read", "trade"]}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "step_up_required");
    let (_, restrictions) = w
        .server
        .authed(Method::GET, "/v1/me/restrictions", &stolen)
        .await;
    assert_eq!(restrictions["reasons"], json!([]), "{restrictions}");

    // Changing the password ends every other session but keeps this one.
    let (status, body) = put(
        &w,
        "/v1/me/password",
        &token,
        json!({"proof": {"password": PASSWORD, "method": "backup_code", "code": backup[1]}, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = w.server.authed(Method::GET, "/v1/me", &stolen).await;
    assert_eq!(status, 401, "the other session ended");
    let (status, _) = w.server.authed(Method::GET, "/v1/me", &token).await;
    assert_eq!(status, 200, "the changing session stays");
    w.smtp.wait_for(email, "Your password was changed", 1).await;
    // Then, with a current factor, the email change is taken (in force once the new address
    // is verified), pauses high-risk actions and tells the current address.
    let (status, body) = put(
        &w,
        "/v1/me/email",
        &token,
        json!({"email": "owner.moved@example.com", "proof": {"password": NEW_PASSWORD, "method": "totp", "code": totp_at_step(&secret, now_step() + 1)}}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (_, restrictions) = w
        .server
        .authed(Method::GET, "/v1/me/restrictions", &token)
        .await;
    let reasons = restrictions["reasons"].as_array().unwrap();
    assert!(
        reasons.contains(&json!("contact_changed")),
        "{restrictions}"
    );
    assert!(
        reasons.contains(&json!("password_changed")),
        "{restrictions}"
    );
    w.smtp
        .wait_for(email, "A change of your contact details was requested", 1)
        .await;
}

#[tokio::test]
async fn test_the_inbox_alone_never_resets_a_protected_account() {
    let w = world(&[]).await;
    let email = "inbox.only@example.com";
    w.verified_email_account(email).await;
    let token = w.server.token(email, PASSWORD).await;
    let (_, backup) = enrol(&w.server, &token).await;
    let (status, body) = send(
        &w.server,
        Method::POST,
        "/v1/me/step-up",
        &token,
        json!({"proof": {"method": "backup_code", "code": backup[0]}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, key) = send(
        &w.server,
        Method::POST,
        "/v1/me/api-keys",
        &token,
        json!({"name": "bot", "scopes": ["read"]}),
    )
    .await;
    assert_eq!(status, 201, "{key}");

    // The inbox holder asks for a reset and has the code, but no factor.
    let started = w.forgot(email, None).await;
    let code = w
        .smtp
        .wait_for(email, "password reset code", 1)
        .await
        .code();
    let (status, body) = w.reset(&flow_id(&started), &code, NEW_PASSWORD).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "second_factor_required", "{body}");
    assert_eq!(body["error"]["next_action"], "lost_2fa", "{body}");
    // A wrong factor is refused (and spends one of the code's tries).
    let reset_with = |proof: Value| json!({"flow_id": flow_id(&started), "code": code, "new_password": NEW_PASSWORD, "proof": proof});
    let (status, body) = w
        .server
        .post(
            "/v1/password/reset",
            reset_with(json!({"method": "totp", "code": "000000"})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "invalid_second_factor");
    // The old password still works: nothing changed.
    let (status, body) = w.server.login(email, PASSWORD).await;
    assert_eq!((status, body["mfa_required"].clone()), (200, json!(true)));

    // The owner, with the code and a factor: the same code still works.
    let (status, body) = w
        .server
        .post(
            "/v1/password/reset",
            reset_with(json!({"method": "backup_code", "code": backup[1]})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let token = sign_in_with_backup(&w, email, NEW_PASSWORD, &backup[2]).await;
    // Every API key was revoked with the reset.
    let (_, keys) = w
        .server
        .authed(Method::GET, "/v1/me/api-keys", &token)
        .await;
    assert!(keys["keys"][0]["revoked_at"].is_string(), "{keys}");
}
