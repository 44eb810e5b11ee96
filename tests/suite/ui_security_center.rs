//! The security center's pages over HTTP (issue #21 item 1) against the real binary on
//! PostgreSQL with a real SMTP server: contacts and the anti-phishing phrase, the password,
//! API keys (the secret shown once), the withdrawal whitelist (with its cooldown) and team
//! invitations. Each form works end to end, is refused without its CSRF token, asks for the
//! proof when a sensitive change comes without it, and shows values as text, never markup.
use reqwest::header::LOCATION;
use reqwest::Method;
use serde_json::json;

use super::browser::Browser;
use super::e2e_recovery::{world, World};
use super::e2e_second_factor::{enrol, send};
use super::support::PASSWORD;
use super::ui_lost_factor::field_of;
use super::ui_pages::{csrf_of, PageClient};
use super::ui_self_service::sign_in_page;

const NEW_PASSWORD: &str = "meadow-copper-lantern-93";

/// A verified account signed in through the page (before its TOTP was enrolled, so that no
/// code is spent on signing in); the page, an API token and the backup codes.
pub(super) async fn signed_in_with_factor(
    w: &World,
    email: &str,
) -> (PageClient, String, Vec<String>) {
    w.verified_email_account(email).await;
    let mut page = PageClient::new(&w.server);
    let (status, headers, body) = page.sign_in(email, PASSWORD).await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(headers[LOCATION], "/account");
    let token = w.server.token(email, PASSWORD).await;
    let (_, codes) = enrol(&w.server, &token).await;
    (page, token, codes)
}

/// Posts `form` to `path` with the CSRF token of `from`: the answer.
pub(super) async fn submit(
    page: &mut PageClient,
    from: &str,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let csrf = page.csrf(from).await;
    let mut with = form.to_vec();
    with.push(("csrf", &csrf));
    page.post(path, &with, &[]).await
}

/// Whether a page asks for the proof: the refusal's code, and the proof fields again.
pub(super) fn proof_asked(html: &str) -> bool {
    html.contains("Confirm it's you")
        && [
            "invalid_password",
            "second_factor_required",
            "step_up_required",
            "invalid_second_factor",
        ]
        .iter()
        .any(|code| html.contains(code))
}

fn asks_for_proof(html: &str) {
    assert!(proof_asked(html), "{html}");
}

/// `raw` (holding markup) is on the page as text: escaped by the template, never as markup.
fn shown_as_text(html: &str, raw: &str) {
    let escaped = raw.replace('<', "&#60;").replace('>', "&#62;");
    assert!(!html.contains(raw), "not escaped: {html}");
    assert!(html.contains(&escaped), "{escaped} missing: {html}");
}

/// `form` with the proof: the password and the backup code `code`.
fn proved<'a>(form: &[(&'a str, &'a str)], code: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut with = form.to_vec();
    with.extend([
        ("password", PASSWORD),
        ("factor_method", "backup_code"),
        ("factor_code", code),
    ]);
    with
}

/// `form` posted to `path` is refused without its CSRF token (403), and, with it but without
/// the proof, answered with the page asking for the proof (403).
async fn refused_without_csrf_or_proof(
    page: &mut PageClient,
    from: &str,
    path: &str,
    form: &[(&str, &str)],
) {
    let (status, _, _) = page.post(path, form, &[]).await;
    assert_eq!(status, 403, "{path}: no CSRF token");
    let (status, _, html) = submit(page, from, path, form).await;
    assert_eq!(status, 403, "{path}: {html}");
    asks_for_proof(&html);
}

#[tokio::test]
async fn test_contacts_phrase_and_password_pages_work_and_ask_for_the_proof() {
    let w = world(&[]).await;
    let email = "contacts.page@example.com";
    let (mut page, token, codes) = signed_in_with_factor(&w, email).await;

    let (status, _, html) = page.get("/account").await;
    assert_eq!(status, 200);
    for link in [
        "/account/contacts",
        "/account/api-keys",
        "/account/whitelist",
        "/account/invitations",
        "/account/password",
    ] {
        assert!(html.contains(&format!("href=\"{link}\"")), "{link}: {html}");
    }
    let (status, _, html) = page.get("/account/contacts").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Anti-phishing phrase") && html.contains("name=\"factor_code\""),
        "{html}"
    );

    // The phrase: refused without the CSRF token, and without the password; set with it.
    let phrase = [("action", "set"), ("phrase", "<b>blue heron</b>")];
    refused_without_csrf_or_proof(
        &mut page,
        "/account/contacts",
        "/account/contacts/phrase",
        &phrase,
    )
    .await;
    let mut with_password = phrase.to_vec();
    with_password.push(("password", PASSWORD));
    let (status, headers, _) = submit(
        &mut page,
        "/account/contacts",
        "/account/contacts/phrase",
        &with_password,
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/account/contacts?done=phrase");
    let (_, _, html) = page.get("/account/contacts?done=phrase").await;
    assert!(html.contains("phrase is saved"), "{html}");
    assert!(
        !html.contains("blue heron"),
        "the phrase is shown only in emails"
    );
    let (_, me) = w.server.authed(Method::GET, "/v1/me", &token).await;
    assert_eq!(me["anti_phishing_phrase_set"], true);

    // A new email: the session alone is refused; with the proof, the code page of the shared
    // flow, and the code from the new inbox verifies it.
    let new_email = "contacts.new@example.com";
    let change = [("kind", "email"), ("value", new_email)];
    refused_without_csrf_or_proof(
        &mut page,
        "/account/contacts",
        "/account/contacts/change",
        &change,
    )
    .await;
    let (status, _, html) = submit(
        &mut page,
        "/account/contacts",
        "/account/contacts/change",
        &proved(&change, &codes[0]),
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Step 1 of 1") && html.contains("value=\"verify\""),
        "{html}"
    );
    let flow_id = field_of(&html, "flow_id");
    let code = w
        .smtp
        .wait_for(new_email, "email verification code", 1)
        .await
        .code();
    let (status, headers, html) = submit(
        &mut page,
        "/account/contacts",
        "/flow/confirm",
        &[("flow", "verify"), ("flow_id", &flow_id), ("code", &code)],
    )
    .await;
    assert_eq!(status, 303, "{html}");
    assert_eq!(headers[LOCATION], "/sign-in?notice=verified");
    assert_eq!(
        w.server.login(new_email, PASSWORD).await.0,
        200,
        "the new email signs in"
    );

    // The password: refused without the proof, changed with it.
    let new = [("new_password", NEW_PASSWORD)];
    refused_without_csrf_or_proof(&mut page, "/account/password", "/account/password", &new).await;
    let with_proof = proved(&new, &codes[1]);
    let (status, headers, html) = submit(
        &mut page,
        "/account/password",
        "/account/password",
        &with_proof,
    )
    .await;
    assert_eq!(status, 303, "{html}");
    assert_eq!(headers[LOCATION], "/account/password?done=changed");
    let (status, _, html) = page.get("/account/password?done=changed").await;
    assert_eq!(status, 200, "this session stays: {html}");
    assert_eq!(w.server.login(new_email, NEW_PASSWORD).await.0, 200);
}

#[tokio::test]
async fn test_api_keys_page_shows_the_secret_once_lists_and_revokes() {
    let w = world(&[]).await;
    let (mut page, token, codes) = signed_in_with_factor(&w, "keys.page@example.com").await;
    let (status, _, html) = page.get("/account/api-keys").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("No API key yet"), "{html}");

    let form = [
        ("name", "<i>bot</i>"),
        ("scope_read", "on"),
        ("allowed_ips", "203.0.113.7, 198.51.100.0/24"),
    ];
    let (list, create) = ("/account/api-keys", "/account/api-keys/create");
    refused_without_csrf_or_proof(&mut page, list, create, &form).await;
    let (status, _, html) = submit(&mut page, list, create, &proved(&form, &codes[0])).await;
    assert_eq!(status, 201, "{html}");
    assert!(html.contains("ghk1."), "the secret, this once: {html}");
    shown_as_text(&html, "<i>bot</i>");

    let (_, _, html) = page.get("/account/api-keys").await;
    assert!(!html.contains("ghk1."), "never shown again: {html}");
    assert!(
        html.contains("&#60;i&#62;bot") && html.contains("198.51.100.0/24"),
        "{html}"
    );
    let key_id = field_of(&html, "key_id");
    let (status, _, _) = page
        .post("/account/api-keys/revoke", &[("key_id", &key_id)], &[])
        .await;
    assert_eq!(status, 403, "no CSRF token");
    let (status, headers, _) = submit(
        &mut page,
        "/account/api-keys",
        "/account/api-keys/revoke",
        &[("key_id", &key_id)],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/account/api-keys?done=revoked");
    let (_, keys) = w
        .server
        .authed(Method::GET, "/v1/me/api-keys", &token)
        .await;
    assert_eq!(keys["keys"][0]["status"], "revoked", "{keys}");
}

#[tokio::test]
async fn test_whitelist_page_adds_with_code_and_cooldown_and_removes() {
    let w = world(&[]).await;
    let email = "whitelist.page@example.com";
    let (mut page, token, codes) = signed_in_with_factor(&w, email).await;
    let (status, _, html) = page.get("/account/whitelist").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("No address yet"), "{html}");

    let form = [
        ("asset", "BTC"),
        ("network", "bitcoin"),
        ("address", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"),
        ("label", "<script>alert(1)</script>cold"),
    ];
    let (list, add) = ("/account/whitelist", "/account/whitelist/add");
    refused_without_csrf_or_proof(&mut page, list, add, &form).await;
    let (status, _, html) = submit(&mut page, list, add, &proved(&form, &codes[0])).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Confirm the new address"), "{html}");
    let flow_id = field_of(&html, "flow_id");
    let code = w
        .smtp
        .wait_for(email, "withdrawal address confirmation code", 1)
        .await
        .code();
    let (status, _, html) = submit(
        &mut page,
        "/account/whitelist",
        "/account/whitelist/confirm",
        &[("flow_id", &flow_id), ("code", "000000")],
    )
    .await;
    assert_eq!(status, 422, "{html}");
    assert!(
        html.contains("invalid_code") && html.contains("Confirm the new address"),
        "{html}"
    );
    let (status, headers, html) = submit(
        &mut page,
        "/account/whitelist",
        "/account/whitelist/confirm",
        &[("flow_id", &flow_id), ("code", &code)],
    )
    .await;
    assert_eq!(status, 303, "{html}");
    assert_eq!(headers[LOCATION], "/account/whitelist?done=confirmed");

    let (_, _, html) = page.get("/account/whitelist?done=confirmed").await;
    assert!(
        html.contains("cooling down until"),
        "the cooldown is shown: {html}"
    );
    shown_as_text(&html, "<script>alert(1)</script>cold");
    let address_id = field_of(&html, "address_id");
    let (status, headers, _) = submit(
        &mut page,
        "/account/whitelist",
        "/account/whitelist/remove",
        &[("address_id", &address_id)],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/account/whitelist?done=removed");
    let (_, list) = w
        .server
        .authed(Method::GET, "/v1/me/withdrawal-addresses", &token)
        .await;
    assert_eq!(list["addresses"], json!([]), "{list}");
}

/// A team named `name` whose owner invited `email` (both accounts with verified emails); the
/// world and the team's id.
async fn invited_to_a_team(email: &str, name: &str) -> (World, String) {
    let w = world(&[]).await;
    w.verified_email_account("owner.team@example.com").await;
    w.verified_email_account(email).await;
    let owner = w.server.token("owner.team@example.com", PASSWORD).await;
    let (status, team) = send(
        &w.server,
        Method::POST,
        "/v1/teams",
        &owner,
        json!({"name": name}),
    )
    .await;
    assert_eq!(status, 201, "{team}");
    let team_id = team["team_id"].as_str().unwrap();
    let (status, body) = send(
        &w.server,
        Method::POST,
        "/v1/me/step-up",
        &owner,
        json!({"proof": {"password": PASSWORD}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        &w.server,
        Method::POST,
        &format!("/v1/teams/{team_id}/invitations"),
        &owner,
        json!({"email": email, "role": "trader"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (w, team_id.to_string())
}

#[tokio::test]
async fn test_invitations_page_lists_and_accepts() {
    let email = "invited.page@example.com";
    let (w, _) = invited_to_a_team(email, "<b>Desk</b> 9").await;
    let mut page = PageClient::new(&w.server);
    assert_eq!(page.sign_in(email, PASSWORD).await.0, 303);
    let (status, _, html) = page.get("/account/invitations").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("trader"), "{html}");
    shown_as_text(&html, "<b>Desk</b> 9");
    let accept = [
        ("team_id", field_of(&html, "team_id")),
        ("invitation_id", field_of(&html, "invitation_id")),
    ];
    let accept: Vec<(&str, &str)> = accept.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, _) = page.post("/account/invitations/accept", &accept, &[]).await;
    assert_eq!(status, 403, "no CSRF token");
    let csrf = csrf_of(&html);
    let mut with = accept.clone();
    with.push(("csrf", &csrf));
    let (status, headers, body) = page.post("/account/invitations/accept", &with, &[]).await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(headers[LOCATION], "/account/invitations?done=accepted");
    let (_, _, html) = page.get("/account/invitations?done=accepted").await;
    assert!(
        html.contains("You joined the team") && html.contains("No open invitation"),
        "{html}"
    );
    // Accepting again: the API's refusal, on the page.
    let (status, _, html) = page.post("/account/invitations/accept", &with, &[]).await;
    assert!(status == 404 || status == 409, "{status}: {html}");
    assert!(html.contains("Team invitations"), "{html}");
}

#[tokio::test]
async fn test_invitations_page_declines() {
    let email = "declines.page@example.com";
    let (w, team_id) = invited_to_a_team(email, "Desk 10").await;
    let mut page = PageClient::new(&w.server);
    assert_eq!(page.sign_in(email, PASSWORD).await.0, 303);
    let (_, _, html) = page.get("/account/invitations").await;
    assert!(html.contains("/account/invitations/decline"), "{html}");
    let invitation_id = field_of(&html, "invitation_id");
    let csrf = csrf_of(&html);
    let decline = [
        ("team_id", team_id.as_str()),
        ("invitation_id", invitation_id.as_str()),
    ];
    let (status, _, _) = page
        .post("/account/invitations/decline", &decline, &[])
        .await;
    assert_eq!(status, 403, "no CSRF token");
    let mut with = decline.to_vec();
    with.push(("csrf", &csrf));
    let (status, headers, body) = page.post("/account/invitations/decline", &with, &[]).await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(headers[LOCATION], "/account/invitations?done=declined");
    let (_, _, html) = page.get("/account/invitations?done=declined").await;
    assert!(
        html.contains("You declined the invitation") && html.contains("No open invitation"),
        "{html}"
    );
    // Declined is closed: accepting it now is the API's refusal, on the page.
    let (status, _, html) = page.post("/account/invitations/accept", &with, &[]).await;
    assert_eq!(status, 404, "{html}");
    assert!(html.contains("Team invitations"), "{html}");
}

/// In a real browser: the invitations page passes axe, and its Decline button (the form's second
/// submit button, sent to its own route by `formaction`) closes the invitation.
#[tokio::test]
async fn test_browser_declines_an_invitation() {
    let Some(b) = Browser::start("test_browser_declines_an_invitation").await else {
        return;
    };
    let email = "declines.browser@example.com";
    let (w, _) = invited_to_a_team(email, "Desk 11").await;
    sign_in_page(&b, &w.server.base, email, PASSWORD).await;
    b.wait_for_text("Your account").await;
    b.goto(&format!("{}/account/invitations", w.server.base))
        .await;
    b.wait_for_text("Desk 11").await;
    b.check_page("team-invitations").await;
    b.click("button[formaction='/account/invitations/decline']")
        .await;
    let text = b.wait_for_text("You declined the invitation").await;
    assert!(text.contains("No open invitation"), "{text}");
    let token = w.server.token(email, PASSWORD).await;
    let (_, mine) = w
        .server
        .authed(Method::GET, "/v1/me/team-invitations", &token)
        .await;
    assert_eq!(mine["invitations"], json!([]), "{mine}");
}
