//! The lost-second-factor pages over HTTP (issue #21 item 1) against the real binary on
//! PostgreSQL with a real SMTP server: "step N of M" from the API's flow view, the code step,
//! the evidence, the wait for a reviewer, the hold and the outcome; the forms' CSRF checks.
use std::time::Duration;

use reqwest::header::LOCATION;

use super::e2e_lost_factor::{protected_account, review, reviewer};
use super::e2e_recovery::world;
use super::support::PASSWORD;
use super::ui_pages::{csrf_of, PageClient};

/// The value of the hidden field `name` of a page.
pub(super) fn field_of(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {html}"));
    let rest = &html[at + marker.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// A form of owned values as the pairs [`PageClient::post`] takes.
pub(super) fn pairs<'a>(form: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    form.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The whole recovery through the pages: 4 steps until the email code is accepted, then 3
/// (no phone); evidence; the wait for review; the hold (finishing early is refused and says
/// so); the outcome. A form without its CSRF token is refused at each stage.
#[tokio::test]
async fn test_lost_factor_pages_walk_the_recovery_with_its_step_counter() {
    let w = world(&[("GATEHOUSE_RECOVERY_HOLD_SECONDS", "2")]).await;
    let email = "lost.page@example.com";
    let (account, _) = protected_account(&w, email).await;
    let (reviewer_token, analyst_token) = reviewer(&w).await;
    let mut page = PageClient::new(&w.server);

    let (status, _, html) = page.get("/lost-2fa").await;
    assert_eq!(status, 200);
    assert!(html.contains("Step 1 of 4"), "{html}");
    assert!(
        !html.contains("name=\"channel\""),
        "no channel choice: {html}"
    );
    let csrf = csrf_of(&html);

    // Values are escaped: what was typed comes back as text, never as markup.
    let typed = "<script>alert(1)</script>@example.com";
    let (_, _, html) = page
        .post("/lost-2fa", &[("csrf", &csrf), ("identifier", typed)], &[])
        .await;
    assert!(!html.contains("<script>alert"), "{html}");

    let (status, _, html) = page.post("/lost-2fa", &[("identifier", email)], &[]).await;
    assert_eq!(status, 403, "no CSRF token: {html}");
    let (status, _, html) = page
        .post("/lost-2fa", &[("csrf", &csrf), ("identifier", email)], &[])
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Step 1 of 4"), "{html}");
    assert!(
        !html.contains("name=\"channel\""),
        "a recovery step is bound to its channel"
    );
    let flow_id = field_of(&html, "flow_id");

    // A wrong code: the API's refusal on the same step.
    let confirm = |code: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("flow", "lost-2fa".to_string()),
            ("flow_id", flow_id.clone()),
            ("code", code.to_string()),
        ]
    };
    let (status, _, html) = page
        .post("/flow/confirm", &pairs(&confirm("000000")), &[])
        .await;
    assert_eq!(status, 422, "{html}");
    assert!(
        html.contains("invalid_code") && html.contains("Step 1 of 4"),
        "{html}"
    );

    let code = w
        .smtp
        .wait_for(email, "account recovery code", 1)
        .await
        .code();
    let mut right = confirm("");
    right[3].1 = code;
    let (status, _, html) = page.post("/flow/confirm", &pairs(&right), &[]).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Step 2 of 3"),
        "no phone: three steps now: {html}"
    );
    assert!(html.contains("name=\"kyc_reference\""), "{html}");

    let evidence = [
        ("flow_id", flow_id.as_str()),
        ("kyc_reference", "KYC-4471"),
        ("statement", "lost my phone in a lake"),
    ];
    let (status, _, _) = page.post("/lost-2fa/evidence", &evidence, &[]).await;
    assert_eq!(status, 403, "no CSRF token");
    let mut with_csrf = evidence.to_vec();
    with_csrf.push(("csrf", &csrf));
    let (status, _, html) = page.post("/lost-2fa/evidence", &with_csrf, &[]).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Step 3 of 3") && html.contains("Waiting for a reviewer"),
        "{html}"
    );
    assert!(!html.contains("KYC-4471"), "the evidence is not shown back");

    review(&w, &reviewer_token, &analyst_token, &account, true).await;
    let status_form = [
        ("csrf", csrf.as_str()),
        ("flow", "lost-2fa"),
        ("flow_id", flow_id.as_str()),
        ("action", "status"),
    ];
    let (status, _, html) = page.post("/flow/resend", &status_form, &[]).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("on hold"), "{html}");

    // Finishing before the hold is over: refused, and the page says so.
    let finish = [("csrf", csrf.as_str()), ("flow_id", flow_id.as_str())];
    let (status, _, html) = page.post("/lost-2fa/complete", &finish, &[]).await;
    assert_eq!(status, 409, "{html}");
    assert!(
        html.contains("hold_not_over") && html.contains("Finish the recovery"),
        "{html}"
    );
    let (status, _, _) = page
        .post("/lost-2fa/complete", &[("flow_id", flow_id.as_str())], &[])
        .await;
    assert_eq!(status, 403, "no CSRF token");

    tokio::time::sleep(Duration::from_millis(2300)).await;
    let (status, headers, _) = page.post("/lost-2fa/complete", &finish, &[]).await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/sign-in?notice=recovered");
    let (_, _, html) = page.get("/sign-in?notice=recovered").await;
    assert!(html.contains("second factors were removed"), "{html}");
    // The outcome is real: the password alone signs in now.
    let (status, body) = w.server.login(email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(body["mfa_required"], true, "{body}");

    // The flow has ended: its page says so.
    let (status, _, html) = page.post("/flow/resend", &status_form, &[]).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("This recovery has ended"), "{html}");
}
