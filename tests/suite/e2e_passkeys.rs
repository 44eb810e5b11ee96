//! Passkeys end to end against the real binary, with the test kit's software authenticator
//! (`SoftPasskey`: resident credentials, user verification) playing the browser and the phone:
//! registration under the proof policy, a sign-in with no identifier typed, the refusals (no user
//! verification, a replayed answer, another origin, a counter that goes backwards), a sign-in
//! while strangers' wrong passwords hold the password door locked, removal under proof, the
//! notices (a passkey added, a new sign-in) and a reset that revokes every passkey.
use reqwest::Method;
use serde_json::{json, Value};

use super::e2e_second_factor::send;
use super::support::{
    assert_error_shape, event_types, eventually, fast_env, Server, SoftPasskey, TestDb, PASSWORD,
};

const ORIGIN: &str = "http://localhost:8080";

fn env() -> std::collections::HashMap<String, String> {
    let mut env = fast_env();
    env.insert("GATEHOUSE_WEBAUTHN_RP_ID".into(), "localhost".into());
    env.insert("GATEHOUSE_WEBAUTHN_ORIGINS".into(), ORIGIN.into());
    env.insert("GATEHOUSE_LOCKOUT_THRESHOLD".into(), "3".into());
    env
}

/// Starts a registration; answers the ceremony id and the authenticator's credential.
async fn authenticator_registers(
    server: &Server,
    token: &str,
    passkey: &mut SoftPasskey,
) -> (String, Value) {
    let (status, body) = server
        .post_authed("/v1/me/passkeys/registration", token, json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let selection = &body["options"]["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required", "{body}");
    assert_eq!(selection["userVerification"], "required", "{body}");
    let credential = passkey.register(&body["options"]).unwrap();
    (
        body["ceremony_id"].as_str().unwrap().to_string(),
        credential,
    )
}

/// Registers a passkey with the password as proof; answers its id.
async fn register_passkey(server: &Server, token: &str, passkey: &mut SoftPasskey) -> String {
    let (ceremony_id, credential) = authenticator_registers(server, token, passkey).await;
    let (status, body) = server
        .post_authed(
            "/v1/me/passkeys",
            token,
            json!({"ceremony_id": ceremony_id, "name": "my phone", "credential": credential,
                   "proof": {"password": PASSWORD}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["key_id"].as_str().unwrap().to_string()
}

/// Asks for sign-in options (no identifier) and lets the authenticator answer them.
async fn authenticator_signs_in(server: &Server, passkey: &mut SoftPasskey) -> (String, Value) {
    let (status, body) = server.post("/v1/login/passkey/options", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let options = &body["options"]["publicKey"];
    // Not an oracle: no account is named, no credential listed.
    assert!(
        options
            .get("allowCredentials")
            .is_none_or(|c| c.as_array().is_some_and(|a| a.is_empty())),
        "{body}"
    );
    assert!(options.get("user").is_none(), "{body}");
    assert_eq!(options["userVerification"], "required", "{body}");
    let assertion = passkey.sign_in(&body["options"]).unwrap();
    (body["ceremony_id"].as_str().unwrap().to_string(), assertion)
}

async fn finish_sign_in(server: &Server, ceremony_id: &str, assertion: &Value) -> (u16, Value) {
    server
        .post(
            "/v1/login/passkey",
            json!({"ceremony_id": ceremony_id, "credential": assertion, "device_id": "phone"}),
        )
        .await
}

async fn sign_in(server: &Server, passkey: &mut SoftPasskey) -> (u16, Value) {
    let (ceremony_id, assertion) = authenticator_signs_in(server, passkey).await;
    finish_sign_in(server, &ceremony_id, &assertion).await
}

#[tokio::test]
async fn test_a_passkey_is_registered_under_proof_and_signs_in_without_an_identifier() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &env()).await;
    let email = "passkey.holder@example.com";
    let account_id = server.register(email, PASSWORD).await;
    let token = server.token(email, PASSWORD).await;
    let mut passkey = SoftPasskey::new(ORIGIN);

    // A stolen session alone registers nothing (and the refused answer spends its ceremony).
    let (ceremony_id, credential) = authenticator_registers(&server, &token, &mut passkey).await;
    let (status, body) = server
        .post_authed(
            "/v1/me/passkeys",
            &token,
            json!({"ceremony_id": ceremony_id, "name": "thief", "credential": credential}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "invalid_password");
    let (status, body) = server
        .post_authed(
            "/v1/me/passkeys",
            &token,
            json!({"ceremony_id": ceremony_id, "name": "thief", "credential": credential,
                   "proof": {"password": "not the password"}}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_error_shape(&body, "ceremony_unknown");
    // …nor does a wrong password.
    let (ceremony_id, credential) = authenticator_registers(&server, &token, &mut passkey).await;
    let (status, body) = server
        .post_authed(
            "/v1/me/passkeys",
            &token,
            json!({"ceremony_id": ceremony_id, "name": "thief", "credential": credential,
                   "proof": {"password": "not the password"}}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "invalid_password");
    let (_, list) = server.authed(Method::GET, "/v1/me/passkeys", &token).await;
    assert_eq!(list["passkeys"], json!([]), "{list}");

    // With the password: registered, listed.
    let key_id = register_passkey(&server, &token, &mut passkey).await;
    let (status, list) = server.authed(Method::GET, "/v1/me/passkeys", &token).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["passkeys"][0]["key_id"], key_id.as_str(), "{list}");
    assert_eq!(list["passkeys"][0]["name"], "my phone", "{list}");

    // The sign-in: no identifier, no password; a session and a device token, like a sign-in.
    let (status, body) = sign_in(&server, &mut passkey).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account_id"], account_id.as_str(), "{body}");
    assert!(body["device_token"].as_str().is_some(), "{body}");
    let passkey_token = body["session_token"].as_str().unwrap().to_string();
    let (status, _) = server
        .authed(Method::GET, "/v1/me/passkeys", &passkey_token)
        .await;
    assert_eq!(status, 200);

    // The same sign-in facts as any sign-in, and the login history says how.
    let pool = db.pool().await;
    let types = event_types(&pool, &account_id).await;
    for expected in [
        "PasskeyRegistered",
        "PasskeyUsed",
        "LoginSucceeded",
        "DeviceTrusted",
        "SessionStarted",
    ] {
        assert!(types.iter().any(|t| t == expected), "{expected}: {types:?}");
    }
    eventually("the passkey sign-in in the login history", || {
        let server = &server;
        let passkey_token = passkey_token.clone();
        async move {
            let (_, history) = server
                .authed(Method::GET, "/v1/me/login-history", &passkey_token)
                .await;
            history["entries"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["reason"] == "passkey"))
        }
    })
    .await;
}

#[tokio::test]
async fn test_passkey_sign_ins_are_refused_without_user_verification_replayed_or_phished() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &env()).await;
    let email = "careful.holder@example.com";
    let account_id = server.register(email, PASSWORD).await;
    let token = server.token(email, PASSWORD).await;
    let mut passkey = SoftPasskey::new(ORIGIN);

    // An authenticator that does not verify its user cannot register a passkey…
    passkey.set_user_verification(false);
    let (ceremony_id, credential) = authenticator_registers(&server, &token, &mut passkey).await;
    let (status, body) = server
        .post_authed(
            "/v1/me/passkeys",
            &token,
            json!({"ceremony_id": ceremony_id, "name": "touch only", "credential": credential,
                   "proof": {"password": PASSWORD}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_error_shape(&body, "invalid_passkey");
    passkey.set_user_verification(true);
    register_passkey(&server, &token, &mut passkey).await;

    // …nor sign in with one: presence alone (a touch) is not a factor.
    passkey.set_user_verification(false);
    let (status, body) = sign_in(&server, &mut passkey).await;
    assert_eq!(status, 401, "{body}");
    assert_error_shape(&body, "invalid_passkey");
    passkey.set_user_verification(true);

    // An answer is good once: replayed on its ceremony, or on a new one, it is refused.
    let (ceremony_id, assertion) = authenticator_signs_in(&server, &mut passkey).await;
    let (status, body) = finish_sign_in(&server, &ceremony_id, &assertion).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = finish_sign_in(&server, &ceremony_id, &assertion).await;
    assert_eq!(status, 401, "{body}");
    assert_error_shape(&body, "invalid_passkey");
    let (fresh, _) = authenticator_signs_in(&server, &mut passkey).await;
    let (status, body) = finish_sign_in(&server, &fresh, &assertion).await;
    assert_eq!(status, 401, "{body}");
    assert_error_shape(&body, "invalid_passkey");

    // A phishing page on another origin gets an answer the server refuses.
    passkey.set_origin("https://gatehouse.example.net");
    let (status, body) = sign_in(&server, &mut passkey).await;
    assert_eq!(status, 401, "{body}");
    assert_error_shape(&body, "invalid_passkey");
    passkey.set_origin(ORIGIN);

    // A counter that goes backwards (a cloned passkey) is refused and recorded.
    passkey.rewind_counters(0);
    let (status, body) = sign_in(&server, &mut passkey).await;
    assert_eq!(status, 401, "{body}");
    assert_error_shape(&body, "invalid_passkey");

    let pool = db.pool().await;
    let types = event_types(&pool, &account_id).await;
    assert!(
        types.iter().any(|t| t == "SecurityKeyCounterRegressed"),
        "{types:?}"
    );
    assert!(
        types.iter().filter(|t| *t == "PasskeySignInFailed").count() >= 4,
        "{types:?}"
    );
    assert_eq!(
        types.iter().filter(|t| *t == "LoginSucceeded").count(),
        2,
        "the password sign-in and one passkey sign-in: {types:?}"
    );
    // Refused passkeys count toward no lock.
    assert!(!types.iter().any(|t| t == "AccountLocked"), "{types:?}");

    // An answer that names no account, or a made-up ceremony: the same answer.
    let (ceremony_id, mut assertion) = authenticator_signs_in(&server, &mut passkey).await;
    assertion["response"]["userHandle"] = Value::Null;
    let (status, body) = finish_sign_in(&server, &ceremony_id, &assertion).await;
    assert_eq!(status, 401, "{body}");
    assert_error_shape(&body, "invalid_passkey");
    let (_, assertion) = authenticator_signs_in(&server, &mut passkey).await;
    let (status, body) =
        finish_sign_in(&server, "00000000-0000-4000-8000-000000000000", &assertion).await;
    assert_eq!(status, 401, "{body}");
    assert_error_shape(&body, "invalid_passkey");
}

#[tokio::test]
async fn test_a_passkey_signs_in_while_strangers_hold_the_password_door_locked() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &env()).await;
    let email = "besieged.holder@example.com";
    server.register(email, PASSWORD).await;
    let token = server.token(email, PASSWORD).await;
    let mut passkey = SoftPasskey::new(ORIGIN);
    register_passkey(&server, &token, &mut passkey).await;

    // Strangers' wrong passwords lock the password door; the right password is refused too.
    for _ in 0..3 {
        let (status, body) = server.login(email, "a stranger's guess").await;
        assert!(status == 401 || status == 429, "{status} {body}");
    }
    let (status, body) = server.login(email, PASSWORD).await;
    assert_eq!(status, 429, "{body}");
    assert_error_shape(&body, "account_locked");

    // The passkey proves possession and user verification: it signs in.
    let (status, body) = sign_in(&server, &mut passkey).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["session_token"].as_str().is_some(), "{body}");

    // It lifts nothing: the password door stays locked to the strangers.
    let (status, body) = server.login(email, PASSWORD).await;
    assert_eq!(status, 429, "{body}");
    assert_error_shape(&body, "account_locked");
}

#[tokio::test]
async fn test_a_passkey_is_removed_only_under_proof_and_then_signs_in_no_more() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &env()).await;
    let email = "tidy.holder@example.com";
    let account_id = server.register(email, PASSWORD).await;
    let token = server.token(email, PASSWORD).await;
    let mut passkey = SoftPasskey::new(ORIGIN);
    let key_id = register_passkey(&server, &token, &mut passkey).await;
    let path = format!("/v1/me/passkeys/{key_id}");

    // A stolen session alone, or with a wrong password: refused.
    let (status, body) = send(&server, Method::DELETE, &path, &token, json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "invalid_password");
    let (status, body) = send(
        &server,
        Method::DELETE,
        &path,
        &token,
        json!({"proof": {"password": "not the password"}}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "invalid_password");
    let (status, _) = sign_in(&server, &mut passkey).await;
    assert_eq!(status, 200, "still registered");

    // An unknown id: 404.
    let (status, body) = send(
        &server,
        Method::DELETE,
        "/v1/me/passkeys/not-a-passkey",
        &token,
        json!({"proof": {"password": PASSWORD}}),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // With the password: removed, and it signs in no more.
    let (status, body) = send(
        &server,
        Method::DELETE,
        &path,
        &token,
        json!({"proof": {"password": PASSWORD}}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (_, list) = server.authed(Method::GET, "/v1/me/passkeys", &token).await;
    assert_eq!(list["passkeys"], json!([]), "{list}");
    let (status, body) = sign_in(&server, &mut passkey).await;
    assert_eq!(status, 401, "{body}");
    assert_error_shape(&body, "invalid_passkey");
    let types = event_types(&db.pool().await, &account_id).await;
    assert!(types.iter().any(|t| t == "PasskeyRemoved"), "{types:?}");
}

#[tokio::test]
async fn test_a_passkey_sign_in_sends_the_notices_and_a_reset_revokes_every_passkey() {
    let w = super::e2e_recovery::world(&[
        ("GATEHOUSE_WEBAUTHN_RP_ID", "localhost"),
        ("GATEHOUSE_WEBAUTHN_ORIGINS", ORIGIN),
    ])
    .await;
    let email = "noticed.holder@example.com";
    let account_id = w.verified_email_account(email).await;
    let token = w.server.token(email, PASSWORD).await;
    w.smtp.wait_for(email, "New sign-in", 1).await;
    let mut passkey = SoftPasskey::new(ORIGIN);
    register_passkey(&w.server, &token, &mut passkey).await;
    // Every verified channel is told a passkey was added.
    w.smtp.wait_for(email, "A passkey was added", 1).await;

    // A passkey sign-in from a device the account has not signed in from is announced like any
    // such sign-in (a phone's browser, on the same network).
    let (ceremony_id, assertion) = authenticator_signs_in(&w.server, &mut passkey).await;
    let (status, body) = super::support::read(
        w.server
            .http
            .post(format!("{}/v1/login/passkey", w.server.base))
            .header(
                "user-agent",
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 \
                 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            )
            .json(&json!({"ceremony_id": ceremony_id, "credential": assertion}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    w.smtp.wait_for(email, "New sign-in", 2).await;

    // Taking the account back by a reset revokes the passkey (a thief's would not survive).
    let flow = w.forgot(email, None).await;
    let code = w
        .smtp
        .wait_for(email, "password reset code", 1)
        .await
        .code();
    let (status, body) = w
        .reset(
            flow["flow_id"].as_str().unwrap(),
            &code,
            "lantern-meadow-quartz-58",
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let types = event_types(&w.db.pool().await, &account_id).await;
    assert!(types.iter().any(|t| t == "PasskeysRevoked"), "{types:?}");
    let (status, body) = sign_in(&w.server, &mut passkey).await;
    assert_eq!(status, 401, "{body}");
    assert_error_shape(&body, "invalid_passkey");
}
