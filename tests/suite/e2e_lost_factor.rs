//! Lost second factor without a backup code: email code, evidence, review, hold, removal; the
//! owner's cancellation; a denial. Reviewers work through `/v1/admin/recovery-cases` with staff
//! tokens (an admin bootstrapped with `gatehouse staff create`).
use std::time::Duration;

use serde_json::{json, Value};

use super::e2e_recovery::{world, World};
use super::e2e_second_factor::enrol;
use super::support::{assert_error_shape, binary, read, PASSWORD};

const HOLD_SECONDS: i64 = 2;

/// A reviewer's token: an admin bootstrapped with the CLI creates a `reviewer`.
pub(super) async fn reviewer(w: &World) -> (String, String) {
    let out = tokio::process::Command::new(binary())
        .args(["staff", "create", "--name", "root", "--role", "admin"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &w.db.url)
        .env("GATEHOUSE_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let create = |role: &'static str| {
        let admin = admin.clone();
        async move {
            let (status, body) = read(
                w.server
                    .http
                    .post(format!("{}/v1/admin/staff", w.server.base))
                    .bearer_auth(&admin)
                    .json(&json!({"name": format!("a {role}"), "roles": [role]}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 201, "{body}");
            body["token"].as_str().unwrap().to_string()
        }
    };
    (create("reviewer").await, create("analyst").await)
}

/// The reviewer finds the case in the queue (with the evidence) and decides.
pub(super) async fn review(w: &World, reviewer: &str, analyst: &str, account: &str, approve: bool) {
    let queue = |token: String| async move {
        read(
            w.server
                .http
                .get(format!("{}/v1/admin/recovery-cases", w.server.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    // Only reviewers (and admins) see the queue.
    assert_eq!(queue(analyst.to_string()).await.0, 403);
    let mut case = Value::Null;
    for _ in 0..100 {
        let (status, body) = queue(reviewer.to_string()).await;
        assert_eq!(status, 200, "{body}");
        if let Some(c) = body["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["account_id"] == account)
        {
            case = c.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(case["evidence"]["kyc_reference"], "KYC-4471", "{case}");
    let verb = if approve { "approve" } else { "deny" };
    let path = format!(
        "{}/v1/admin/recovery-cases/{}/{verb}",
        w.server.base,
        case["case_id"].as_str().unwrap()
    );
    let decide = |token: &str| {
        w.server
            .http
            .post(&path)
            .bearer_auth(token)
            .json(&json!({"reason": "passport and selfie match the KYC record"}))
            .send()
    };
    assert_eq!(decide(analyst).await.unwrap().status().as_u16(), 403);
    let (status, body) = read(decide(reviewer).await.unwrap()).await;
    assert_eq!(status, 204, "{body}");
}

/// Signs up with a verified email and TOTP; returns the account id and a session token.
pub(super) async fn protected_account(w: &World, email: &str) -> (String, String) {
    let account = w.verified_email_account(email).await;
    let token = w.server.token(email, PASSWORD).await;
    enrol(&w.server, &token).await;
    (account, token)
}

/// Runs steps 1 to 3; returns the flow id.
pub(super) async fn up_to_review(w: &World, email: &str, nth_code: usize) -> String {
    let (status, view) = w
        .server
        .post("/v1/recovery/lost-2fa", json!({"identifier": email}))
        .await;
    assert_eq!(status, 202, "{view}");
    assert_eq!(view["kind"], "lost_second_factor");
    // Four steps for every identifier until the email code is accepted (issue #17).
    assert_eq!(
        (view["step"].as_u64(), view["steps_total"].as_u64()),
        (Some(1), Some(4))
    );
    let flow = view["flow_id"].as_str().unwrap().to_string();
    let code = w
        .smtp
        .wait_for(email, "account recovery code", nth_code)
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
    // Past the email step, an account without a phone counts three steps.
    assert_eq!(
        (view["step"].as_u64(), view["steps_total"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(view["next_action"], "submit_evidence");
    let (status, view) = w
        .server
        .post(
            "/v1/recovery/lost-2fa/evidence",
            json!({"flow_id": flow, "kyc_reference": "KYC-4471", "statement": "lost my phone in a lake"}),
        )
        .await;
    assert_eq!(status, 202, "{view}");
    assert_eq!(
        (view["step"].as_u64(), view["steps_total"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(view["status"], "in_review");
    flow
}

#[tokio::test]
async fn test_approved_recovery_removes_the_factor_after_the_hold() {
    let hold = HOLD_SECONDS.to_string();
    let w = world(&[("GATEHOUSE_RECOVERY_HOLD_SECONDS", hold.as_str())]).await;
    let email = "lost.phone@example.com";
    let (account, old_session) = protected_account(&w, email).await;
    let (reviewer_token, analyst_token) = reviewer(&w).await;
    let flow = up_to_review(&w, email, 1).await;
    // The owner is told on every channel as soon as evidence is in.
    w.smtp
        .wait_for(email, "Account recovery requested", 1)
        .await;

    review(&w, &reviewer_token, &analyst_token, &account, true).await;
    let (_, view) = w.get(&format!("/v1/flows/{flow}")).await;
    assert_eq!(view["status"], "approved");
    assert_eq!(view["next_action"], "await_hold_end");
    w.smtp.wait_for(email, "recovery approved", 1).await;
    let (status, body) = w
        .server
        .post("/v1/recovery/lost-2fa/complete", json!({"flow_id": flow}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_error_shape(&body, "hold_not_over");

    tokio::time::sleep(Duration::from_millis(HOLD_SECONDS as u64 * 1000 + 200)).await;
    let (status, body) = w
        .server
        .post("/v1/recovery/lost-2fa/complete", json!({"flow_id": flow}))
        .await;
    assert_eq!(status, 204, "{body}");
    // Every session ended; sign-in needs the password only; high-risk actions are paused.
    assert_eq!(
        w.server
            .authed(reqwest::Method::GET, "/v1/me", &old_session)
            .await
            .0,
        401
    );
    let (status, body) = w.server.login(email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let token = body["session_token"].as_str().unwrap().to_string();
    let (_, restrictions) = w
        .server
        .authed(reqwest::Method::GET, "/v1/me/restrictions", &token)
        .await;
    assert_eq!(restrictions["reasons"], json!(["lost_factor_recovery"]));
    // The evidence is sealed: neither the reference nor the statement is stored in clear.
    let pool = w.db.pool().await;
    let leaked: i64 = sqlx::query_scalar(
        "select count(*) from events where payload::text like '%KYC-4471%' or payload::text like '%lake%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(leaked, 0);
}

#[tokio::test]
async fn test_owner_cancels_during_the_hold_and_a_denial_ends_the_case() {
    let w = world(&[("GATEHOUSE_RECOVERY_HOLD_SECONDS", "1")]).await;
    let email = "still.here@example.com";
    let (account, session) = protected_account(&w, email).await;
    let (reviewer_token, analyst_token) = reviewer(&w).await;

    let flow = up_to_review(&w, email, 1).await;
    review(&w, &reviewer_token, &analyst_token, &account, true).await;
    let (status, _) = w
        .server
        .authed(reqwest::Method::DELETE, "/v1/me/recovery", &session)
        .await;
    assert_eq!(status, 204);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = w
        .server
        .post("/v1/recovery/lost-2fa/complete", json!({"flow_id": flow}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_error_shape(&body, "wrong_step");
    // The second factor is still required.
    let (_, body) = w.server.login(email, PASSWORD).await;
    assert_eq!(body["mfa_required"], true, "{body}");

    // Denied: the case closes, nothing changes.
    tokio::time::sleep(Duration::from_millis(2100)).await; // resend cooldown of codes
    let flow = up_to_review(&w, email, 2).await;
    review(&w, &reviewer_token, &analyst_token, &account, false).await;
    w.smtp.wait_for(email, "recovery denied", 1).await;
    let (_, view) = w.get(&format!("/v1/flows/{flow}")).await;
    assert_eq!(view["status"], "closed", "{view}");
    let (_, body) = w.server.login(email, PASSWORD).await;
    assert_eq!(body["mfa_required"], true, "{body}");
}
