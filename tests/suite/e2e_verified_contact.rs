//! Sign-in needs a verified contact (GATEHOUSE_REQUIRE_VERIFIED_CONTACT, default on), and an
//! identifier nobody verified is released to the real owner's later sign-up
//! (GATEHOUSE_UNVERIFIED_CLAIM_SECONDS). The real binary on PostgreSQL, codes read from a real
//! SMTP server.
use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::mail::SmtpSink;
use super::support::{event_types, fast_env, Server, TestDb, PASSWORD};

const SUBJECT: &str = "email verification code";
const OTHER_PASSWORD: &str = "juniper-carousel-41-orbit";

struct World {
    db: TestDb,
    smtp: SmtpSink,
    server: Server,
}

async fn world(extra: &[(&str, &str)]) -> World {
    let db = TestDb::new().await;
    let smtp = SmtpSink::start().await;
    let mut env: HashMap<String, String> = fast_env();
    env.insert("GATEHOUSE_SMTP_URL".into(), smtp.url());
    // The rule under test, as it is by default (fast_env turns it off for other tests).
    env.insert("GATEHOUSE_REQUIRE_VERIFIED_CONTACT".into(), "true".into());
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    let server = Server::start(Some(&db.url), &env).await;
    World { db, smtp, server }
}

impl World {
    /// Signs up; returns the account id and the verification flow.
    async fn sign_up(&self, email: &str, password: &str) -> (String, String) {
        let (status, body) = self
            .server
            .post(
                "/v1/accounts",
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["account_id"].as_str().unwrap().to_string(),
            body["verification_flow_id"].as_str().unwrap().to_string(),
        )
    }

    async fn verify(&self, flow: &str, code: &str) -> (u16, Value) {
        self.server
            .post("/v1/verify", json!({"flow_id": flow, "code": code}))
            .await
    }

    /// A sign-in's status, headers (without `date` and the request's own `x-request-id`) and body.
    async fn login_raw(
        &self,
        identifier: &str,
        password: &str,
    ) -> (u16, Vec<(String, String)>, String) {
        let r = self
            .server
            .http
            .post(format!("{}/v1/login", self.server.base))
            .json(&json!({"identifier": identifier, "password": password}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let mut headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "date" | "x-request-id"))
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        headers.sort();
        (status, headers, r.text().await.unwrap())
    }
}

#[tokio::test]
async fn test_sign_in_without_a_verified_contact_answers_exactly_like_a_wrong_password() {
    let w = world(&[]).await;
    let (account, flow) = w.sign_up("fresh@example.com", PASSWORD).await;
    // A verified account for the comparison with a wrong password elsewhere.
    let (_, other_flow) = w.sign_up("settled@example.com", PASSWORD).await;
    let code = w
        .smtp
        .wait_for("settled@example.com", SUBJECT, 1)
        .await
        .code();
    assert_eq!(w.verify(&other_flow, &code).await.0, 204);

    let right = w.login_raw("fresh@example.com", PASSWORD).await;
    let wrong_here = w.login_raw("fresh@example.com", OTHER_PASSWORD).await;
    let wrong_elsewhere = w.login_raw("settled@example.com", OTHER_PASSWORD).await;
    assert_eq!(right.0, 401, "{right:?}");
    assert_eq!(right, wrong_here);
    assert_eq!(right, wrong_elsewhere);

    // Recorded as a failed sign-in with its own reason, counted like a wrong password.
    let pool = w.db.pool().await;
    let failures: Vec<(String, i64)> = sqlx::query_as(
        "select payload->'fact'->'LoginFailed'->>'reason',
                (payload->'fact'->'LoginFailed'->>'consecutive_failures')::bigint
           from events where aggregate_id = $1 and event_type = 'LoginFailed' order by sequence",
    )
    .bind(&account)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        failures,
        vec![
            ("contact_unverified".to_string(), 1),
            ("wrong_password".to_string(), 2)
        ]
    );

    // Once the email is verified, the same password signs in.
    let code = w
        .smtp
        .wait_for("fresh@example.com", SUBJECT, 1)
        .await
        .code();
    assert_eq!(w.verify(&flow, &code).await.0, 204);
    let (status, body) = w.server.login("fresh@example.com", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account_id"], account.as_str());
}

#[tokio::test]
async fn test_unverified_sign_in_refusals_lock_like_wrong_passwords() {
    // Were they not counted, repeating a sign-in would tell one's own unverified account (never
    // locks) from someone else's reached through the duplicate sign-up decoy (locks).
    let w = world(&[("GATEHOUSE_LOCKOUT_THRESHOLD", "3")]).await;
    w.sign_up("squatter@example.com", PASSWORD).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(w.server.login("squatter@example.com", PASSWORD).await.0);
    }
    assert_eq!(statuses, vec![401, 401, 429]);
}

#[tokio::test]
async fn test_an_expired_unverified_claim_goes_to_the_real_owner() {
    let w = world(&[("GATEHOUSE_UNVERIFIED_CLAIM_SECONDS", "1")]).await;
    let email = "owner@example.com";
    // Someone signs up with the owner's address and never verifies it.
    let (squatter, squatter_flow) = w.sign_up(email, OTHER_PASSWORD).await;
    let squatter_code = w.smtp.wait_for(email, SUBJECT, 1).await.code();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The owner signs up with their own password: a real account, not the decoy.
    let (owner, owner_flow) = w.sign_up(email, PASSWORD).await;
    assert_ne!(owner, squatter);
    let code = w.smtp.wait_for(email, SUBJECT, 2).await.code();
    let (status, body) = w.verify(&owner_flow, &code).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = w.server.login(email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account_id"], owner.as_str());

    // The first account lost the address: its password opens nothing, its old code is void.
    assert_eq!(w.server.login(email, OTHER_PASSWORD).await.0, 401);
    let (status, body) = w.verify(&squatter_flow, &squatter_code).await;
    assert_eq!(status, 404, "{body}");
    let pool = w.db.pool().await;
    let types = event_types(&pool, &squatter).await;
    assert!(
        types.contains(&"UnverifiedContactReleased".to_string()),
        "{types:?}"
    );
    assert!(!types.contains(&"DuplicateRegistrationAttempted".to_string()));
    let holder: String =
        sqlx::query_scalar("select account_id from identifier_claims where account_id in ($1, $2)")
            .bind(&squatter)
            .bind(&owner)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(holder, owner);
}

#[tokio::test]
async fn test_a_verified_or_recent_claim_is_never_taken_over() {
    let w = world(&[("GATEHOUSE_UNVERIFIED_CLAIM_SECONDS", "2")]).await;
    // Verified: kept however old.
    let (holder, flow) = w.sign_up("kept@example.com", PASSWORD).await;
    let code = w.smtp.wait_for("kept@example.com", SUBJECT, 1).await.code();
    assert_eq!(w.verify(&flow, &code).await.0, 204);
    // Unverified but recent: kept until the claim expires.
    let (young, _) = w.sign_up("young@example.com", PASSWORD).await;
    let (decoy, _) = w.sign_up("young@example.com", OTHER_PASSWORD).await;
    assert_ne!(decoy, young);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (decoy2, _) = w.sign_up("kept@example.com", OTHER_PASSWORD).await;
    assert_ne!(decoy2, holder);
    assert_eq!(
        w.server.login("kept@example.com", OTHER_PASSWORD).await.0,
        401
    );
    assert_eq!(w.server.login("kept@example.com", PASSWORD).await.0, 200);
    let pool = w.db.pool().await;
    for id in [&holder, &young] {
        let types = event_types(&pool, id).await;
        assert!(
            types.contains(&"DuplicateRegistrationAttempted".to_string())
                && !types.contains(&"UnverifiedContactReleased".to_string()),
            "{types:?}"
        );
    }
}
