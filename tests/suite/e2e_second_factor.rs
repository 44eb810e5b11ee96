//! Second factors end to end: TOTP codes computed here by an independent RFC 6238
//! implementation (HMAC-SHA1 from RustCrypto, not totp-rs), two-step sign-in, replay refusal,
//! backup codes, lockout through wrong codes, removal and its cooldown.
use hmac::{KeyInit, Mac};
use serde_json::{json, Value};

use super::support::{
    assert_error_shape, assert_nowhere_in_database, fast_env, read, Server, TestDb, PASSWORD,
};

/// RFC 4648 base32 (no padding) decoding.
pub(super) fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits: u64 = 0;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u64;
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}

/// RFC 6238 TOTP (SHA-1, 6 digits, 30 s) for a time step.
pub(super) fn totp_at_step(secret: &[u8], step: u64) -> String {
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret).unwrap();
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let value = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", value % 1_000_000)
}

pub(super) fn now_step() -> u64 {
    (chrono::Utc::now().timestamp() as u64) / 30
}

#[test]
fn test_independent_totp_matches_rfc_6238_sha1_vectors() {
    // Appendix B, SHA-1, truncated to 6 digits.
    let seed = b"12345678901234567890";
    assert_eq!(totp_at_step(seed, 59 / 30), "287082");
    assert_eq!(totp_at_step(seed, 1111111109 / 30), "081804");
    assert_eq!(totp_at_step(seed, 1234567890 / 30), "005924");
}

pub(super) async fn send(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    read(
        server
            .http
            .request(method, format!("{}{path}", server.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Enrols TOTP for a signed-in account; returns the secret and the backup codes.
pub(super) async fn enrol(server: &Server, token: &str) -> (Vec<u8>, Vec<String>) {
    let (status, body) = send(
        server,
        reqwest::Method::POST,
        "/v1/me/totp",
        token,
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let uri = body["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(body["qr_svg"].as_str().unwrap().contains("<svg"));
    let secret = base32_decode(body["secret"].as_str().unwrap());
    assert!(secret.len() >= 20);
    // A wrong first code does not enrol.
    let wrong = if totp_at_step(&secret, now_step()) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let (status, body) = send(
        server,
        reqwest::Method::POST,
        "/v1/me/totp/confirm",
        token,
        json!({"code": wrong, "proof": {"password": PASSWORD}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    // The session alone does not add a factor (issue #17, finding 1): the password is needed.
    for proof in [json!(null), json!({"password": "not-the-password-x"})] {
        let (status, body) = send(
            server,
            reqwest::Method::POST,
            "/v1/me/totp/confirm",
            token,
            json!({"code": totp_at_step(&secret, now_step()), "proof": proof}),
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert_error_shape(&body, "invalid_password");
    }
    let (status, body) = send(
        server,
        reqwest::Method::POST,
        "/v1/me/totp/confirm",
        token,
        json!({"code": totp_at_step(&secret, now_step()), "proof": {"password": PASSWORD}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let codes: Vec<String> = body["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

async fn challenge(server: &Server, email: &str) -> String {
    let (status, body) = server.login(email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(
        body.get("session_token").is_none(),
        "no session before the second factor"
    );
    assert_eq!(body["methods"], json!(["totp", "backup_code"]));
    body["challenge_id"].as_str().unwrap().to_string()
}

async fn answer(server: &Server, challenge: &str, method: &str, code: &str) -> (u16, Value) {
    server
        .post(
            "/v1/login/mfa",
            json!({"challenge_id": challenge, "method": method, "code": code}),
        )
        .await
}

#[tokio::test]
async fn test_totp_two_step_sign_in_replay_backup_codes_and_lockout() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let email = "two.step@example.com";
    server.register(email, PASSWORD).await;
    let token = server.token(email, PASSWORD).await;
    let (secret, backup) = enrol(&server, &token).await;
    let (_, left) = server
        .authed(reqwest::Method::GET, "/v1/me/backup-codes", &token)
        .await;
    assert_eq!(left, json!({"remaining": 10, "totp_enrolled": true}));

    // The enrolment code's step is spent: the next step's code (within the skew) signs in.
    let ch = challenge(&server, email).await;
    let code = totp_at_step(&secret, now_step() + 1);
    let (status, body) = answer(&server, &ch, "totp", &code).await;
    assert_eq!(status, 200, "{body}");
    let session = body["session_token"].as_str().unwrap().to_string();
    assert_eq!(
        server
            .authed(reqwest::Method::GET, "/v1/me", &session)
            .await
            .0,
        200
    );
    // The challenge is single use; a replayed code fails on a new challenge.
    let (status, body) = answer(&server, &ch, "totp", &code).await;
    assert_eq!(status, 401);
    assert_error_shape(&body, "invalid_challenge");
    let ch = challenge(&server, email).await;
    let (status, body) = answer(&server, &ch, "totp", &code).await;
    assert_eq!(status, 401, "{body}");
    assert_error_shape(&body, "invalid_second_factor");

    // A backup code works once.
    let (status, body) = answer(&server, &ch, "backup_code", &backup[0].to_uppercase()).await;
    assert_eq!(status, 200, "{body}");
    let ch = challenge(&server, email).await;
    let (status, _) = answer(&server, &ch, "backup_code", &backup[0]).await;
    assert_eq!(status, 401);
    let (_, left) = server
        .authed(reqwest::Method::GET, "/v1/me/backup-codes", &token)
        .await;
    assert_eq!(left["remaining"], 9);

    // Wrong codes count toward the same lockout as wrong passwords (one failure so far, since
    // the backup-code sign-in reset the count).
    let mut last = (0, Value::Null);
    for _ in 0..4 {
        last = answer(&server, &ch, "totp", "123456").await;
    }
    assert_eq!(last.0, 429, "{}", last.1);
    assert_error_shape(&last.1, "account_locked");
    let (status, _) = server.login(email, PASSWORD).await;
    assert_eq!(status, 429, "the password alone cannot get past the lock");
}

#[tokio::test]
async fn test_removing_the_second_factor_needs_password_and_code_and_starts_a_cooldown() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let email = "remove.factor@example.com";
    server.register(email, PASSWORD).await;
    let token = server.token(email, PASSWORD).await;
    let (secret, backup) = enrol(&server, &token).await;
    let remove = |password: &str, method: &str, code: &str| json!({"password": password, "method": method, "code": code});
    let (status, body) = send(
        &server,
        reqwest::Method::DELETE,
        "/v1/me/totp",
        &token,
        remove("not-the-password-x", "backup_code", &backup[1]),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "invalid_password");
    let (status, body) = send(
        &server,
        reqwest::Method::DELETE,
        "/v1/me/totp",
        &token,
        remove(PASSWORD, "totp", "000001"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "invalid_second_factor");
    let (status, body) = send(
        &server,
        reqwest::Method::DELETE,
        "/v1/me/totp",
        &token,
        remove(PASSWORD, "totp", &totp_at_step(&secret, now_step() + 1)),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (_, restrictions) = server
        .authed(reqwest::Method::GET, "/v1/me/restrictions", &token)
        .await;
    assert_eq!(restrictions["reasons"], json!(["second_factor_removed"]));
    // Sign-in is one step again.
    let (status, body) = server.login(email, PASSWORD).await;
    assert_eq!(status, 200);
    assert!(body["session_token"].is_string(), "{body}");

    // Enrolled again, removal is refused while the cooldown runs.
    let (secret, _) = enrol(&server, &token).await;
    let (status, body) = send(
        &server,
        reqwest::Method::DELETE,
        "/v1/me/totp",
        &token,
        remove(PASSWORD, "totp", &totp_at_step(&secret, now_step() + 1)),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "high_risk_cooldown");
    assert!(body["error"]["retry_after"].as_i64().unwrap() > 3600);

    // Neither the TOTP secret nor any backup code is stored in clear.
    let pool = db.pool().await;
    let secret_hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let mut needles = vec![secret_hex];
    needles.extend(backup.iter().cloned());
    assert_nowhere_in_database(&pool, &needles).await;
}
