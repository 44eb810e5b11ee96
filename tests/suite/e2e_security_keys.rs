//! Security keys end to end, with a software authenticator (`webauthn-authenticator-rs`'s
//! `SoftPasskey`) playing the browser and the key: registration, sign-in, a counter that goes
//! backwards, forged and phished answers, rename and removal.
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

use super::e2e_second_factor::send;
use super::support::{assert_error_shape, event_types, fast_env, Server, TestDb, PASSWORD};

const ORIGIN: &str = "http://localhost:8080";

fn env() -> std::collections::HashMap<String, String> {
    let mut env = fast_env();
    env.insert("GATEHOUSE_WEBAUTHN_RP_ID".into(), "localhost".into());
    env.insert("GATEHOUSE_WEBAUTHN_ORIGINS".into(), ORIGIN.into());
    env
}

/// Starts a registration; answers the ceremony id and what the key made of the options.
async fn key_answer_to_registration(
    server: &Server,
    token: &str,
    key: &mut SoftPasskey,
    origin: &str,
) -> (String, Value) {
    let (status, body) = send(
        server,
        reqwest::Method::POST,
        "/v1/me/security-keys/registration",
        token,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Browsers refuse a required-verification credProtect policy beside a preferred user
    // verification (Chromium: "Requested protection policy is inconsistent"); none is asked.
    assert!(
        body["options"]["publicKey"]["extensions"]
            .get("credentialProtectionPolicy")
            .is_none(),
        "{body}"
    );
    let options: CreationChallengeResponse =
        serde_json::from_value(body["options"].clone()).unwrap();
    assert_eq!(options.public_key.rp.id, "localhost");
    let credential = key
        .do_registration(Url::parse(origin).unwrap(), options)
        .unwrap();
    (
        body["ceremony_id"].as_str().unwrap().to_string(),
        serde_json::to_value(credential).unwrap(),
    )
}

/// Registers a key; answers its id and the backup codes, if any came.
async fn register_key(server: &Server, token: &str, key: &mut SoftPasskey) -> (String, Value) {
    let (ceremony_id, credential) = key_answer_to_registration(server, token, key, ORIGIN).await;
    let (status, body) = send(
        server,
        reqwest::Method::POST,
        "/v1/me/security-keys",
        token,
        json!({"ceremony_id": ceremony_id, "name": "blue key", "password": PASSWORD, "credential": credential}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["key_id"].as_str().unwrap().to_string(),
        body["backup_codes"].clone(),
    )
}

/// Signs the options a challenge endpoint answered; returns the ceremony id and the assertion.
fn sign(key: &mut SoftPasskey, body: &Value) -> (String, Value) {
    let options: RequestChallengeResponse =
        serde_json::from_value(body["options"].clone()).unwrap();
    let assertion = key
        .do_authentication(Url::parse(ORIGIN).unwrap(), options)
        .unwrap();
    (
        body["ceremony_id"].as_str().unwrap().to_string(),
        serde_json::to_value(assertion).unwrap(),
    )
}

/// Signs in with the password; answers the second-factor challenge.
async fn mfa_challenge(server: &Server, email: &str) -> String {
    let (status, body) = server.login(email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mfa_required"], true, "{body}");
    let methods = body["methods"].as_array().unwrap();
    assert!(methods.contains(&json!("security_key")), "{body}");
    body["challenge_id"].as_str().unwrap().to_string()
}

/// Asks for the key's sign-in ceremony and signs it.
async fn key_signs_challenge(
    server: &Server,
    challenge: &str,
    key: &mut SoftPasskey,
) -> (String, Value) {
    let (status, body) = server
        .post(
            "/v1/login/mfa/security-key",
            json!({"challenge_id": challenge}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    sign(key, &body)
}

async fn finish(
    server: &Server,
    challenge: &str,
    ceremony: &str,
    assertion: &Value,
) -> (u16, Value) {
    server
        .post(
            "/v1/login/mfa",
            json!({"challenge_id": challenge, "method": "security_key", "ceremony_id": ceremony, "assertion": assertion}),
        )
        .await
}

#[tokio::test]
async fn test_register_sign_in_and_a_counter_that_goes_backwards_is_refused_and_recorded() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &env()).await;
    let email = "key.holder@example.com";
    let account_id = server.register(email, PASSWORD).await;
    let token = server.token(email, PASSWORD).await;
    let mut key = SoftPasskey::new(true);

    // The password is required, and a refused registration spends its ceremony.
    let (ceremony, credential) =
        key_answer_to_registration(&server, &token, &mut key, ORIGIN).await;
    let (status, body) = send(
        &server,
        reqwest::Method::POST,
        "/v1/me/security-keys",
        &token,
        json!({"ceremony_id": ceremony, "name": "k", "password": "not the password at all", "credential": credential}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "invalid_password");
    let (status, body) = send(
        &server,
        reqwest::Method::POST,
        "/v1/me/security-keys",
        &token,
        json!({"ceremony_id": ceremony, "name": "k", "password": PASSWORD, "credential": credential}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_error_shape(&body, "ceremony_unknown");

    // A key answering on another origin (a phishing site) is refused.
    let (ceremony, credential) =
        key_answer_to_registration(&server, &token, &mut key, "http://localhost:9999").await;
    let (status, body) = send(
        &server,
        reqwest::Method::POST,
        "/v1/me/security-keys",
        &token,
        json!({"ceremony_id": ceremony, "name": "k", "password": PASSWORD, "credential": credential}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_error_shape(&body, "invalid_security_key");

    // Registered: the first second factor brings ten backup codes.
    let (key_id, codes) = register_key(&server, &token, &mut key).await;
    assert_eq!(codes.as_array().map(Vec::len), Some(10), "{codes}");
    let (status, list) = server
        .authed(reqwest::Method::GET, "/v1/me/security-keys", &token)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["keys"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["keys"][0]["key_id"], json!(key_id));
    assert_eq!(list["keys"][0]["name"], "blue key");
    assert!(list["keys"][0]["last_used_at"].is_null());

    // Two-step sign-in with the key.
    let challenge = mfa_challenge(&server, email).await;
    let (ceremony, assertion) = key_signs_challenge(&server, &challenge, &mut key).await;
    let (status, body) = finish(&server, &challenge, &ceremony, &assertion).await;
    assert_eq!(status, 200, "{body}");
    let session = body["session_token"].as_str().unwrap().to_string();
    assert_eq!(
        server
            .authed(reqwest::Method::GET, "/v1/me", &session)
            .await
            .0,
        200
    );
    // The same answer again: its ceremony is spent.
    let challenge = mfa_challenge(&server, email).await;
    let (status, body) = finish(&server, &challenge, &ceremony, &assertion).await;
    assert_eq!(status, 409, "{body}");
    assert_error_shape(&body, "ceremony_unknown");

    // A forged signature is a wrong second factor.
    let (ceremony, mut forged) = key_signs_challenge(&server, &challenge, &mut key).await;
    let signature = forged["response"]["signature"]
        .as_str()
        .unwrap()
        .to_string();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    forged["response"]["signature"] = json!(format!("{flipped}{}", &signature[1..]));
    let (status, body) = finish(&server, &challenge, &ceremony, &forged).await;
    assert_eq!(status, 401, "{body}");
    assert_error_shape(&body, "invalid_second_factor");

    // A cloned key: two signatures made in turn, the later one used first. The earlier one's
    // counter is then behind the stored one: refused and recorded.
    let first = mfa_challenge(&server, email).await;
    let second = mfa_challenge(&server, email).await;
    let (early_ceremony, early) = key_signs_challenge(&server, &first, &mut key).await;
    let (late_ceremony, late) = key_signs_challenge(&server, &second, &mut key).await;
    let (status, body) = finish(&server, &second, &late_ceremony, &late).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = finish(&server, &first, &early_ceremony, &early).await;
    assert_eq!(status, 401, "{body}");
    assert_error_shape(&body, "invalid_second_factor");
    let types = event_types(&db.pool().await, &account_id).await;
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "SecurityKeyCounterRegressed")
            .count(),
        1,
        "{types:?}"
    );
    assert_eq!(
        types.iter().filter(|t| *t == "SecurityKeyUsed").count(),
        2,
        "{types:?}"
    );
    let (_, list) = server
        .authed(reqwest::Method::GET, "/v1/me/security-keys", &token)
        .await;
    assert!(list["keys"][0]["last_used_at"].is_string(), "{list}");
}

#[tokio::test]
async fn test_rename_and_remove_with_the_key_itself_turns_two_step_sign_in_off() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &env()).await;
    let email = "key.remover@example.com";
    server.register(email, PASSWORD).await;
    let token = server.token(email, PASSWORD).await;
    let mut key = SoftPasskey::new(true);
    let (key_id, _) = register_key(&server, &token, &mut key).await;

    let (status, _) = send(
        &server,
        reqwest::Method::PATCH,
        &format!("/v1/me/security-keys/{key_id}"),
        &token,
        json!({"name": "  desk drawer  "}),
    )
    .await;
    assert_eq!(status, 204);
    let (_, list) = server
        .authed(reqwest::Method::GET, "/v1/me/security-keys", &token)
        .await;
    assert_eq!(list["keys"][0]["name"], "desk drawer");
    let (status, body) = send(
        &server,
        reqwest::Method::PATCH,
        &format!("/v1/me/security-keys/{key_id}"),
        &token,
        json!({"name": "x".repeat(65)}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = send(
        &server,
        reqwest::Method::PATCH,
        "/v1/me/security-keys/not-a-key",
        &token,
        json!({"name": "x"}),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // Removal needs the password and a current factor; the key answers a fresh challenge.
    let (status, body) = send(
        &server,
        reqwest::Method::POST,
        "/v1/me/security-keys/challenge",
        &token,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (ceremony, assertion) = sign(&mut key, &body);
    let path = format!("/v1/me/security-keys/{key_id}");
    let (status, body) = send(
        &server,
        reqwest::Method::DELETE,
        &path,
        &token,
        json!({"password": "wrong password here", "method": "security_key", "ceremony_id": ceremony, "assertion": assertion}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "invalid_password");
    let (_, body) = send(
        &server,
        reqwest::Method::POST,
        "/v1/me/security-keys/challenge",
        &token,
        json!({}),
    )
    .await;
    let (ceremony, assertion) = sign(&mut key, &body);
    let (status, body) = send(
        &server,
        reqwest::Method::DELETE,
        &path,
        &token,
        json!({"password": PASSWORD, "method": "security_key", "ceremony_id": ceremony, "assertion": assertion}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (_, list) = server
        .authed(reqwest::Method::GET, "/v1/me/security-keys", &token)
        .await;
    assert_eq!(list["keys"], json!([]));
    // No factor left: one-step sign-in, and high-risk changes paused.
    let (status, body) = server.login(email, PASSWORD).await;
    assert_eq!(status, 200);
    assert!(body["session_token"].is_string(), "{body}");
    let (_, restrictions) = server
        .authed(reqwest::Method::GET, "/v1/me/restrictions", &token)
        .await;
    assert!(
        restrictions["high_risk_blocked_until"].is_string(),
        "{restrictions}"
    );
    // A key registered again (a new credential) brings new backup codes: the old set went with
    // the last factor.
    let (_, codes) = register_key(&server, &token, &mut key).await;
    assert_eq!(codes.as_array().map(Vec::len), Some(10));
}

#[tokio::test]
async fn test_a_credential_id_belongs_to_one_account_and_comes_back_to_its_owner() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let now = chrono::Utc::now();
    use gatehouse_api::webauthn::{claim_key, release_key};
    assert!(claim_key(&store, "cred-1", "alice", now).await.unwrap());
    assert!(
        !claim_key(&store, "cred-1", "mallory", now).await.unwrap(),
        "another account cannot register the same credential"
    );
    // Every factor removed at once leaves the claim; the owner may bring the key back.
    assert!(claim_key(&store, "cred-1", "alice", now).await.unwrap());
    release_key(&store, "cred-1", "mallory").await.unwrap();
    assert!(!claim_key(&store, "cred-1", "mallory", now).await.unwrap());
    release_key(&store, "cred-1", "alice").await.unwrap();
    assert!(claim_key(&store, "cred-1", "mallory", now).await.unwrap());
}

#[tokio::test]
async fn test_malformed_and_misdirected_security_key_requests_are_refused() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &env()).await;
    let owner = "key.owner@example.com";
    let other = "other.person@example.com";
    server.register(owner, PASSWORD).await;
    server.register(other, PASSWORD).await;
    let owner_token = server.token(owner, PASSWORD).await;
    let other_token = server.token(other, PASSWORD).await;
    let mut key = SoftPasskey::new(true);

    // No key yet: no challenge to answer.
    let (status, body) = send(
        &server,
        reqwest::Method::POST,
        "/v1/me/security-keys/challenge",
        &owner_token,
        json!({}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_error_shape(&body, "no_security_key");

    // Someone else's ceremony is unknown to this account.
    let (ceremony, credential) =
        key_answer_to_registration(&server, &owner_token, &mut key, ORIGIN).await;
    let (status, body) = send(
        &server,
        reqwest::Method::POST,
        "/v1/me/security-keys",
        &other_token,
        json!({"ceremony_id": ceremony, "name": "k", "password": PASSWORD, "credential": credential}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_error_shape(&body, "ceremony_unknown");

    // Garbage where a credential goes: 400 in the documented shape, nothing recorded.
    for bad in [json!("nope"), json!({"id": 1}), json!(null)] {
        let (status, body) = send(
            &server,
            reqwest::Method::POST,
            "/v1/me/security-keys",
            &owner_token,
            json!({"ceremony_id": ceremony, "name": "k", "password": PASSWORD, "credential": bad}),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_error_shape(&body, "invalid_request");
    }
    let (status, _) = send(
        &server,
        reqwest::Method::POST,
        "/v1/me/security-keys",
        &owner_token,
        json!({"ceremony_id": ceremony, "name": "", "password": PASSWORD, "credential": credential}),
    )
    .await;
    assert_eq!(status, 400);

    // The owner registers; a sign-in answer needs a ceremony and a credential-shaped assertion.
    register_key(&server, &owner_token, &mut key).await;
    let challenge = mfa_challenge(&server, owner).await;
    let (status, body) = server
        .post(
            "/v1/login/mfa",
            json!({"challenge_id": challenge, "method": "security_key"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_error_shape(&body, "invalid_request");
    let (status, body) = finish(&server, &challenge, "no-such-ceremony", &json!({"x": 1})).await;
    assert_eq!(status, 400, "{body}");
    let (ceremony, assertion) = key_signs_challenge(&server, &challenge, &mut key).await;
    let (status, body) = finish(
        &server,
        &challenge,
        "00000000-0000-0000-0000-000000000000",
        &assertion,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_error_shape(&body, "ceremony_unknown");
    // A forged sign-in challenge token is refused before any ceremony starts.
    let (status, body) = server
        .post(
            "/v1/login/mfa/security-key",
            json!({"challenge_id": "forged"}),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert_error_shape(&body, "invalid_challenge");
    // The genuine answer still works.
    let (status, body) = finish(&server, &challenge, &ceremony, &assertion).await;
    assert_eq!(status, 200, "{body}");
}

/// A reset on a security-key account: the key answers a challenge that the flow may ask for
/// only once its code proved right (issue #17), so a flow id alone tells nobody about the keys.
#[tokio::test]
async fn test_a_reset_is_proven_with_the_key_whose_challenge_needs_the_code_first() {
    let w = super::e2e_recovery::world(&[
        ("GATEHOUSE_WEBAUTHN_RP_ID", "localhost"),
        ("GATEHOUSE_WEBAUTHN_ORIGINS", ORIGIN),
    ])
    .await;
    let email = "key.reset@example.com";
    w.verified_email_account(email).await;
    let token = w.server.token(email, PASSWORD).await;
    let mut key = SoftPasskey::new(true);
    register_key(&w.server, &token, &mut key).await;

    let started = w.forgot(email, None).await;
    let flow = super::e2e_recovery::flow_id(&started);
    let stranger = w.forgot("nobody.here@example.com", None).await;
    let key_challenge = |flow: &str| format!("/v1/flows/{flow}/security-key");
    // Before the code: the same answer as an unknown identifier's flow.
    let (status, mine) = w.server.post(&key_challenge(&flow), json!({})).await;
    let (other_status, theirs) = w
        .server
        .post(
            &key_challenge(&super::e2e_recovery::flow_id(&stranger)),
            json!({}),
        )
        .await;
    assert_eq!((status, other_status), (404, 404), "{mine} {theirs}");
    assert_eq!(mine, theirs);
    assert_error_shape(&mine, "flow_not_found");

    let code = w
        .smtp
        .wait_for(email, "password reset code", 1)
        .await
        .code();
    let new_password = "kestrel-marble-sonnet-44";
    let (status, body) = w.reset(&flow, &code, new_password).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["next_action"], "lost_2fa", "{body}");
    // The code proved right: the flow may ask for the key's challenge now, and the signed
    // answer proves the reset.
    let (status, options) = w.server.post(&key_challenge(&flow), json!({})).await;
    assert_eq!(status, 200, "{options}");
    let (ceremony_id, assertion) = sign(&mut key, &options);
    let (status, body) = w
        .server
        .post(
            "/v1/password/reset",
            json!({"flow_id": flow, "code": code, "new_password": new_password,
                   "proof": {"method": "security_key", "ceremony_id": ceremony_id, "assertion": assertion}}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    // Spent: the flow asks for nothing more.
    let (status, _) = w.server.post(&key_challenge(&flow), json!({})).await;
    assert_eq!(status, 404);
    let (status, body) = w.server.login(email, new_password).await;
    assert_eq!((status, body["mfa_required"].clone()), (200, json!(true)));
}
