//! The staff console (issue #21 item 2) against the real binary on PostgreSQL: over plain HTTP
//! (its session, its refusals) and in Chromium (an analyst watching a stuffing alert arrive
//! live, a reviewer approving a lost-2FA case, an auditor refused). Every console page visited
//! in the browser is checked with axe-core and photographed (`target/screenshots/console-*`).
use std::time::Duration;

use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::json;

use super::admin_api::{bootstrap_admin, create_staff};
use super::browser::Browser;
use super::support::{assert_error_shape, read, Server, TestDb, PASSWORD};
use super::ui_pages::{csrf_of, page_server, PageClient};

/// Signs in to the console over HTTP with `token`; the answer to the form.
async fn console_sign_in(page: &mut PageClient, token: &str) -> (u16, String) {
    let csrf = page.csrf("/console/sign-in").await;
    let (status, headers, _) = page
        .post(
            "/console/sign-in",
            &[("csrf", &csrf), ("token", token)],
            &[],
        )
        .await;
    let location = headers
        .get(LOCATION)
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location)
}

/// The status of `GET /v1/admin/me` with `token`: whether the token works.
async fn me_status(server: &Server, token: &str) -> u16 {
    server
        .authed(reqwest::Method::GET, "/v1/admin/me", token)
        .await
        .0
}

/// `GET path` in the console answers the refusal page.
async fn assert_refused(page: &mut PageClient, path: &str) {
    let (status, _, html) = page.get(path).await;
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("Not allowed for your role"), "{html}");
}

/// The staff id in a `ghs1.<id>.<secret>` token.
fn staff_id(token: &str) -> &str {
    token.split('.').nth(1).unwrap()
}

async fn revoke(server: &Server, admin: &str, token: &str) {
    let r = server
        .http
        .delete(format!(
            "{}/v1/admin/staff/{}/tokens",
            server.base,
            staff_id(token)
        ))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
}

/// Sign-in with a staff token checked by the API; a `SameSite=Strict` sealed cookie; forms
/// refused without their CSRF token; an analyst refused an admin-only action and the
/// reviewers' queue; the cookie useless once the staff token is revoked; sign-out.
#[tokio::test]
async fn test_console_session_follows_the_staff_token_and_the_api_roles() {
    let (db, server) = page_server(&[]).await;
    let admin = bootstrap_admin(&db).await;
    let analyst = create_staff(&server, &admin, "Ana <b>Lyst</b>", "analyst").await;
    let account = server.register("held@example.com", PASSWORD).await;
    let mut page = PageClient::new(&server);

    // No cookie: the sign-in page.
    let (status, headers, _) = page.get("/console/alerts").await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/console/sign-in");

    // A token that does not work: refused, on the page.
    let (status, _) = console_sign_in(&mut page, "ghs1.not-a-token").await;
    assert_eq!(status, 401);

    // The analyst's token: a sealed, Strict, HttpOnly cookie that holds no readable token.
    let csrf = page.csrf("/console/sign-in").await;
    let (status, headers, _) = page
        .post(
            "/console/sign-in",
            &[("csrf", &csrf), ("token", &analyst)],
            &[],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/console/alerts");
    let set = headers[SET_COOKIE].to_str().unwrap();
    assert!(set.starts_with("gh_console="), "{set}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains(staff_id(&analyst)), "{set}");

    let (status, _, html) = page.get("/console/alerts").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Alerts") && html.contains("analyst"),
        "{html}"
    );
    // The member's name is text, never markup.
    assert!(
        html.contains("Ana &#60;b&#62;Lyst") && !html.contains("<b>Lyst"),
        "{html}"
    );
    assert!(html.contains("/assets/console.js") && !html.contains("<script>"));

    // A form without its CSRF token is refused, whatever the cookie.
    let (status, _, html) = page
        .post("/console/alerts/abc/acknowledge", &[("note", "x")], &[])
        .await;
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("Form refused"), "{html}");
    let (status, _, _) = page
        .post(
            &format!("/console/accounts/{account}/actions/sign-out"),
            &[("reason", "no csrf")],
            &[],
        )
        .await;
    assert_eq!(status, 403);

    // An admin-only action with the analyst's cookie: the API refuses it, the page says so.
    let csrf = csrf_of(&page.get("/console/accounts").await.2);
    let (status, _, html) = page
        .post(
            &format!("/console/accounts/{account}/actions/sign-out"),
            &[("csrf", &csrf), ("reason", "testing roles")],
            &[],
        )
        .await;
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("Not allowed for your role"), "{html}");
    // So is the reviewers' queue.
    assert_refused(&mut page, "/console/recovery-cases").await;

    // The account search: a keyed lookup, then the account page.
    let (status, headers, html) = page
        .post(
            "/console/accounts",
            &[("csrf", &csrf), ("identifier", "Held@Example.com")],
            &[],
        )
        .await;
    assert_eq!(status, 303, "{html}");
    assert_eq!(
        headers[LOCATION],
        format!("/console/accounts/{account}").as_str()
    );
    let (status, _, html) = page.get(&format!("/console/accounts/{account}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("AccountRegistered"), "{html}");
    assert!(!html.contains("$argon2"), "secrets are redacted: {html}");
    let (status, _, html) = page
        .post(
            "/console/accounts",
            &[("csrf", &csrf), ("identifier", "nobody@example.com")],
            &[],
        )
        .await;
    assert_eq!(status, 404, "{html}");

    // The staff token is revoked: the very next request ends the console session.
    revoke(&server, &admin, &analyst).await;
    let (status, headers, _) = page.get("/console/alerts").await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/console/sign-in?notice=expired");
    assert!(headers[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));

    // The admin signs in and out.
    let (status, _) = console_sign_in(&mut page, &admin).await;
    assert_eq!(status, 303);
    let (status, _, html) = page.get("/console/alerts").await;
    assert_eq!(status, 200);
    let csrf = csrf_of(&html);
    let (status, headers, _) = page
        .post("/console/sign-out", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(status, 303);
    assert!(headers[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    let (status, _, _) = page.get("/console/alerts").await;
    assert_eq!(status, 303);
}

/// The console session ends after `GATEHOUSE_CONSOLE_IDLE_SECONDS` without a request, and each
/// request restarts that clock.
#[tokio::test]
async fn test_console_session_ends_when_idle() {
    let (db, server) = page_server(&[("GATEHOUSE_CONSOLE_IDLE_SECONDS", "2")]).await;
    let admin = bootstrap_admin(&db).await;
    let mut page = PageClient::new(&server);
    assert_eq!(console_sign_in(&mut page, &admin).await.0, 303);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let (status, _, _) = page.get("/console/alerts").await;
        assert_eq!(status, 200, "each request restarts the idle clock");
    }
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (status, headers, _) = page.get("/console/alerts").await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/console/sign-in?notice=idle");
}

/// The staff API routes the console uses: `GET /v1/admin/me` (any role) and the account
/// lookup by email or phone (auditor, analyst, admin), with their refusals.
#[tokio::test]
async fn test_staff_self_and_account_lookup_routes() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &super::support::fast_env()).await;
    let admin = bootstrap_admin(&db).await;
    let auditor = create_staff(&server, &admin, "aud", "auditor").await;
    let reviewer = create_staff(&server, &admin, "rev", "reviewer").await;
    let account = server.register("found@example.com", PASSWORD).await;

    let (status, me) = server
        .authed(reqwest::Method::GET, "/v1/admin/me", &reviewer)
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["roles"], json!(["reviewer"]));
    assert_eq!(me["staff_id"], staff_id(&reviewer));
    let (status, body) = read(
        server
            .http
            .get(format!("{}/v1/admin/me", server.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_error_shape(&body, "unauthenticated");

    let lookup = |token: String, identifier: &'static str| {
        let server = &server;
        async move {
            server
                .post_authed(
                    "/v1/admin/accounts/lookup",
                    &token,
                    json!({ "identifier": identifier }),
                )
                .await
        }
    };
    let (status, body) = lookup(auditor.clone(), " FOUND@example.com ").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account_id"], account.as_str());
    assert_eq!(body["kind"], "email");
    let (status, body) = lookup(auditor.clone(), "missing@example.com").await;
    assert_eq!(status, 404);
    assert_error_shape(&body, "not_found");
    let (status, body) = lookup(auditor.clone(), "neither an email nor a phone").await;
    assert_eq!(status, 422);
    assert_error_shape(&body, "invalid_identifier");
    let (status, body) = lookup(reviewer.clone(), "found@example.com").await;
    assert_eq!(status, 403);
    assert_error_shape(&body, "forbidden");
    let (status, _) = server
        .post(
            "/v1/admin/accounts/lookup",
            json!({"identifier": "found@example.com"}),
        )
        .await;
    assert_eq!(status, 401);

    // The staff record names the lookup hash, never the email.
    let pool = db.pool().await;
    let leaked: i64 = sqlx::query_scalar(
        "select count(*) from events where aggregate_type = 'Staff' and payload::text ilike '%found@example.com%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(leaked, 0);

    // Revoked: `me` says so.
    revoke(&server, &admin, &reviewer).await;
    assert_eq!(me_status(&server, &reviewer).await, 401);
}

/// Staff management in the console (admins): the members and their tokens listed with every
/// value escaped, a member created with their token shown once on the answer, their tokens
/// revoked; an analyst gets the refusal page and `GET /v1/admin/staff` answers 401 and 403.
#[tokio::test]
async fn test_admin_manages_staff_in_the_console_and_others_are_refused() {
    let (db, server) = page_server(&[]).await;
    let admin = bootstrap_admin(&db).await;
    let analyst = create_staff(&server, &admin, "Ana <i>Lyst</i>", "analyst").await;

    // The list route: admins only.
    let (status, body) = server
        .authed(reqwest::Method::GET, "/v1/admin/staff", &analyst)
        .await;
    assert_eq!(status, 403);
    assert_error_shape(&body, "forbidden");
    let (status, body) = read(
        server
            .http
            .get(format!("{}/v1/admin/staff", server.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_error_shape(&body, "unauthenticated");
    let (status, body) = server
        .authed(reqwest::Method::GET, "/v1/admin/staff", &admin)
        .await;
    assert_eq!(status, 200, "{body}");
    let listed = body["staff"].as_array().unwrap();
    let ana = listed
        .iter()
        .find(|m| m["staff_id"] == staff_id(&analyst))
        .unwrap();
    assert_eq!(ana["roles"], json!(["analyst"]));
    assert_eq!(ana["token_status"], "live");
    assert!(
        !body.to_string().contains(&analyst),
        "no token secret is listed"
    );

    // The analyst: the page and its forms are refused.
    let mut page = PageClient::new(&server);
    assert_eq!(console_sign_in(&mut page, &analyst).await.0, 303);
    assert_refused(&mut page, "/console/staff").await;
    let csrf = csrf_of(&page.get("/console/accounts").await.2);
    let (status, _, html) = page
        .post(
            "/console/staff",
            &[("csrf", &csrf), ("name", "sneaky"), ("admin", "on")],
            &[],
        )
        .await;
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("Not allowed for your role"), "{html}");

    // The admin: the list, names as text.
    let mut page = PageClient::new(&server);
    assert_eq!(console_sign_in(&mut page, &admin).await.0, 303);
    let (status, headers, html) = page.get("/console/staff").await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        html.contains("href=\"/console/staff\" aria-current=\"page\""),
        "{html}"
    );
    assert!(
        html.contains("Ana &#60;i&#62;Lyst") && !html.contains("<i>Lyst"),
        "{html}"
    );
    assert!(html.contains(staff_id(&analyst)), "{html}");
    assert!(!html.contains(&analyst), "no token secret is shown: {html}");

    // A member without a role: the API's message on the page.
    let csrf = csrf_of(&html);
    let (status, _, html) = page
        .post(
            "/console/staff",
            &[("csrf", &csrf), ("name", "Nobody")],
            &[],
        )
        .await;
    assert!((400..500).contains(&status), "{status} {html}");
    assert!(html.contains("alert error"), "{html}");

    // Created: the token shown once, and it works.
    let (status, headers, html) = page
        .post(
            "/console/staff",
            &[
                ("csrf", &csrf),
                ("name", "Rev <b>Iewer</b>"),
                ("reviewer", "on"),
                ("auditor", "on"),
            ],
            &[],
        )
        .await;
    assert_eq!(status, 201, "{html}");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        html.contains("Rev &#60;b&#62;Iewer") && !html.contains("<b>Iewer"),
        "{html}"
    );
    let start =
        html.find("id=\"staff-token-secret\">").unwrap() + "id=\"staff-token-secret\">".len();
    let token = html[start..].split('<').next().unwrap().trim().to_string();
    assert!(token.starts_with("ghs1."), "{token}");
    let (status, me) = server
        .authed(reqwest::Method::GET, "/v1/admin/me", &token)
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["roles"], json!(["auditor", "reviewer"]));
    let (_, _, html) = page.get("/console/staff").await;
    assert!(!html.contains(&token), "shown once: {html}");
    assert!(html.contains(staff_id(&token)), "{html}");

    // Revoked from the console: the token stops working; without CSRF, refused.
    let revoke_path = format!("/console/staff/{}/revoke", staff_id(&token));
    let (status, _, _) = page.post(&revoke_path, &[], &[]).await;
    assert_eq!(status, 403);
    let (status, headers, _) = page.post(&revoke_path, &[("csrf", &csrf)], &[]).await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/console/staff?done=revoke");
    assert_eq!(me_status(&server, &token).await, 401);
    let (_, _, html) = page.get("/console/staff?done=revoke").await;
    assert!(html.contains("Tokens revoked"), "{html}");
    assert!(html.contains("badge danger\">revoked"), "{html}");
    let (status, _, _) = page
        .post("/console/staff/..%2Fx/revoke", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(status, 404);
}

/// Cross-account login history in the console: attempts of every account with their user
/// agents as inert text, filtered by IP and by account, a bad cursor shown as the API's
/// message; a reviewer (whose API role does not read login history) gets the refusal page.
#[tokio::test]
async fn test_console_lists_login_history_across_accounts_and_refuses_reviewers() {
    let (db, server) = page_server(&[]).await;
    let admin = bootstrap_admin(&db).await;
    let auditor = create_staff(&server, &admin, "aud", "auditor").await;
    let reviewer = create_staff(&server, &admin, "rev", "reviewer").await;
    let first = server.register("history@example.com", PASSWORD).await;
    let second = server.register("other@example.com", PASSWORD).await;
    for (who, password, want) in [
        ("history@example.com", "not-their-password-1", 401),
        ("other@example.com", PASSWORD, 200),
    ] {
        let r = server
            .http
            .post(format!("{}/v1/login", server.base))
            .header("user-agent", "<script>alert(1)</script> UA")
            .json(&json!({"identifier": who, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want);
    }

    let mut page = PageClient::new(&server);
    assert_eq!(console_sign_in(&mut page, &auditor).await.0, 303);
    // The read model follows the events: wait for both accounts' attempts.
    let mut html = String::new();
    for _ in 0..50 {
        let (status, _, body) = page.get("/console/login-history").await;
        assert_eq!(status, 200, "{body}");
        html = body;
        if html.contains(&first) && html.contains(&second) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(html.contains(&first) && html.contains(&second), "{html}");
    assert!(
        html.contains("href=\"/console/login-history\" aria-current=\"page\""),
        "{html}"
    );
    assert!(
        html.contains("&#60;script&#62;alert(1)") && !html.contains("<script>alert"),
        "{html}"
    );
    assert!(
        html.contains("badge ok\">succeeded") && html.contains("badge warn\">failed"),
        "{html}"
    );

    // Filtered by account, then by IP.
    let (status, _, html) = page
        .get(&format!("/console/login-history?account={first}&ip="))
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(&first) && !html.contains(&second), "{html}");
    let (status, _, html) = page.get("/console/login-history?ip=127.0.0.1").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(&first) && html.contains(&second), "{html}");
    let (status, _, html) = page.get("/console/login-history?ip=192.0.2.1").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("No sign-in attempts."), "{html}");
    // A query value cannot reach another parameter of the API.
    let (status, _, html) = page
        .get(&format!(
            "/console/login-history?ip=127.0.0.1%26account%3D{first}"
        ))
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("No sign-in attempts."), "{html}");
    let (status, _, html) = page.get("/console/login-history?cursor=nonsense").await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("invalid cursor"), "{html}");

    // The reviewer: refused.
    let mut page = PageClient::new(&server);
    assert_eq!(console_sign_in(&mut page, &reviewer).await.0, 303);
    assert_refused(&mut page, "/console/login-history").await;
}

/// Signs in to the console in the browser.
async fn browser_sign_in(b: &Browser, base: &str, token: &str) {
    b.goto(&format!("{base}/console/sign-in")).await;
    b.fill("token", token).await;
    b.click("form[action='/console/sign-in'] button[type=submit]")
        .await;
    // The form's answer sends the browser on to the alerts. Wait for it: a `goto` issued before
    // it lands is overtaken by it (the reviewer then sees the alerts' refusal page).
    let mut path = String::new();
    for _ in 0..100 {
        path = b.path().await;
        if path == "/console/alerts" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the console sign-in never reached /console/alerts; the browser is at {path}");
}

/// A user agent that would run script if it were ever markup.
const HOSTILE_UA: &str =
    "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">";

/// An analyst signs in and watches the alert list while a stuffing burst runs: the alert
/// appears without a reload (the live feed), its evidence opens with the events redacted and
/// the hostile user agent shown as inert text, and the analyst acknowledges it.
#[tokio::test]
async fn test_analyst_sees_a_stuffing_alert_arrive_live_and_acknowledges_it() {
    let Some(b) = Browser::start("test_analyst_sees_a_stuffing_alert_arrive_live").await else {
        return;
    };
    let (db, server) = page_server(&[
        ("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1"),
        ("GATEHOUSE_ALERT_STUFFING_IP_IDENTIFIERS", "10"),
        ("GATEHOUSE_ALERT_STUFFING_NET_IDENTIFIERS", "10"),
    ])
    .await;
    let admin = bootstrap_admin(&db).await;
    let analyst = create_staff(&server, &admin, "Ana", "analyst").await;
    let base = server.base.clone();

    browser_sign_in(&b, &base, &analyst).await;
    b.wait_for_text("No alerts match").await;
    assert_eq!(b.path().await, "/console/alerts");
    b.wait_for_text("Live: new alerts appear").await;
    b.check_page("console-sign-in-done-alerts-empty").await;
    // A mark that a reload would wipe.
    b.js("window.__stayed = true;").await;

    for i in 0..10 {
        let r = server
            .http
            .post(format!("{base}/v1/login"))
            .header("x-forwarded-for", "203.0.113.9")
            .header("user-agent", HOSTILE_UA)
            .json(&json!({"identifier": format!("victim{i}@example.com"), "password": "not-their-password-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    // The rule name is also a filter option: wait for the subject, in a row.
    let text = b.wait_for_text("ip:203.0.113.9").await;
    assert!(text.contains("credential_stuffing"), "{text}");
    assert_eq!(
        b.js("return window.__stayed === true;").await,
        json!(true),
        "the alert arrived without a reload"
    );
    b.check_page("console-alerts").await;

    // The evidence: the sign-in failures, redacted, each linking to its (stand-in) account.
    b.click("tr[data-alert] a").await;
    let text = b.wait_for_text("Evidence").await;
    assert!(text.contains("203.0.113.9"), "{text}");
    b.check_page("console-alert-detail").await;
    let account = b
        .js("return document.querySelector('.evidence a').getAttribute('href');")
        .await;
    b.goto(&format!("{base}{}", account.as_str().unwrap()))
        .await;
    let text = b.wait_for_text("Sign-in history").await;
    assert!(text.contains("<script>window.__pwned"), "{text}");
    assert_eq!(
        b.js("return window.__pwned === undefined;").await,
        json!(true)
    );
    assert_eq!(
        b.js("return document.querySelectorAll('main script, main img').length;")
            .await,
        json!(0)
    );
    b.check_page("console-account").await;

    // Back to the alert: acknowledged.
    b.client.back().await.unwrap();
    b.wait_for_text("Evidence").await;
    b.fill("ack-note", "looking into it").await;
    b.click("#acknowledge").await;
    b.wait_for_text("Evidence").await;
    // The alert is a read model: the acknowledgement shows within moments.
    let detail = b.path().await;
    let mut text = String::new();
    for _ in 0..50 {
        text = b.wait_for_text("Evidence").await;
        if text.contains("looking into it") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.goto(&format!("{base}{detail}")).await;
    }
    assert!(
        text.contains("looking into it") && text.contains("acknowledged"),
        "{text}"
    );
    b.close().await;
}

/// A reviewer approves a lost-2FA case from the queue; an auditor is refused the queue and the
/// decision.
#[tokio::test]
async fn test_reviewer_approves_a_lost_factor_case_and_an_auditor_is_refused() {
    let Some(b) = Browser::start("test_reviewer_approves_a_lost_factor_case").await else {
        return;
    };
    let w = super::e2e_recovery::world(&[]).await;
    let (account, _) = super::e2e_lost_factor::protected_account(&w, "lost@example.com").await;
    super::e2e_lost_factor::up_to_review(&w, "lost@example.com", 1).await;
    let admin = bootstrap_admin(&w.db).await;
    let reviewer = create_staff(&w.server, &admin, "Rev", "reviewer").await;
    // The case id, as the reviewers' queue names it: the queue is a read model, which may not
    // have reached the last step yet.
    let mut case = None;
    for _ in 0..200 {
        let (status, queue) = w
            .server
            .authed(reqwest::Method::GET, "/v1/admin/recovery-cases", &reviewer)
            .await;
        assert_eq!(status, 200, "{queue}");
        case = queue["cases"][0]["case_id"].as_str().map(str::to_string);
        if case.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let case = case.expect("the case reaches the reviewers' queue within 10 s");
    let auditor = create_staff(&w.server, &admin, "Aud", "auditor").await;
    let base = w.server.base.clone();

    // The auditor: the queue is not theirs, nor is the decision (posted with a valid form).
    let mut page = PageClient::new(&w.server);
    assert_eq!(console_sign_in(&mut page, &auditor).await.0, 303);
    let (status, _, html) = page.get("/console/recovery-cases").await;
    assert_eq!(status, 403, "{html}");
    let csrf = csrf_of(&page.get("/console/accounts").await.2);
    let (status, _, html) = page
        .post(
            &format!("/console/recovery-cases/{case}/approve"),
            &[("csrf", &csrf), ("reason", "not mine to decide")],
            &[],
        )
        .await;
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("Not allowed for your role"), "{html}");

    // The reviewer, in the browser.
    browser_sign_in(&b, &base, &reviewer).await;
    b.goto(&format!("{base}/console/recovery-cases")).await;
    let text = b.wait_for_text("KYC-4471").await;
    assert!(
        text.contains(&account) && text.contains("lost my phone in a lake"),
        "{text}"
    );
    b.check_page("console-recovery-cases").await;
    b.fill(&format!("reason-{case}"), "KYC matches the holder")
        .await;
    b.click(&format!("button[data-approve='{case}']")).await;
    b.wait_for_text("Case approved").await;
    // The queue is a read model: the decided case leaves it within moments.
    let mut left = false;
    for _ in 0..50 {
        b.goto(&format!("{base}/console/recovery-cases")).await;
        if b.wait_for_text("Recovery cases")
            .await
            .contains("No cases await review")
        {
            left = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(left, "the approved case is still in the queue");

    // The auditor in the browser: the refusal page, accessible too.
    b.click("form.signout button").await;
    b.wait_for_text("You are signed out of the console").await;
    browser_sign_in(&b, &base, &auditor).await;
    // The alerts are not an auditor's either: the refusal page, accessible too.
    b.wait_for_text("Not allowed for your role").await;
    b.goto(&format!("{base}/console/recovery-cases")).await;
    let text = b.wait_for_text("Not allowed for your role").await;
    assert!(text.contains("auditor"), "{text}");
    b.check_page("console-refused").await;
    b.close().await;
}

/// The `data-sequence` of each listed event on an account page, in page order.
fn listed_sequences(html: &str) -> Vec<i64> {
    html.split("<li data-sequence=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().parse().unwrap())
        .collect()
}

/// A busy account (more events than the page lists): the account page lists its latest events
/// newest first with their time, pages back to the oldest, and draws the last 30 days as bars
/// whose counts are the events the test made (failures, sign-ins, the registration); the page
/// passes axe-core and fits a phone's width.
#[tokio::test]
async fn test_account_page_shows_the_latest_events_and_a_chart_of_the_days() {
    let (db, server) = page_server(&[("GATEHOUSE_LOCKOUT_THRESHOLD", "1000")]).await;
    let admin = bootstrap_admin(&db).await;
    let analyst = create_staff(&server, &admin, "Ana", "analyst").await;
    let email = "busy@example.com";
    let account = server.register(email, PASSWORD).await;
    const FAILURES: usize = 205;
    const SIGN_INS: usize = 3;
    for _ in 0..FAILURES {
        let (status, body) = server.login(email, "not-the-password-1").await;
        assert_eq!(status, 401, "{body}");
    }
    for _ in 0..SIGN_INS {
        let (status, body) = server.login(email, PASSWORD).await;
        assert_eq!(status, 200, "{body}");
    }
    let pool = db.pool().await;
    let stored_events = || async {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "select sequence, event_type from events where aggregate_type = 'Account' and aggregate_id = $1 order by sequence",
        )
        .bind(&account)
        .fetch_all(&pool)
        .await
        .unwrap();
        rows
    };
    let mut page = PageClient::new(&server);
    assert_eq!(console_sign_in(&mut page, &analyst).await.0, 303);
    // The delivery worker may still append notices to the account: the page is compared with
    // the events stored before and after it was read, once those agree.
    let (stored, html) = {
        let mut tries = 0;
        loop {
            let before = stored_events().await;
            let (status, _, html) = page.get(&format!("/console/accounts/{account}")).await;
            assert_eq!(status, 200, "{html}");
            if stored_events().await == before {
                break (before, html);
            }
            tries += 1;
            assert!(tries < 50, "the account's events never settled");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let count = |t: &str| stored.iter().filter(|(_, e)| e == t).count();
    assert_eq!(count("LoginFailed"), FAILURES);
    assert_eq!(count("LoginSucceeded"), SIGN_INS);
    assert!(stored.len() > 200, "{}", stored.len());
    let latest = stored.last().unwrap().0;
    // The latest events, newest first, each with its time; the oldest are a page back.
    let listed = listed_sequences(&html);
    assert_eq!(listed.len(), 200, "{listed:?}");
    assert_eq!(listed[0], latest);
    assert!(listed.windows(2).all(|w| w[0] == w[1] + 1), "{listed:?}");
    assert!(html.contains("<time datetime=\""), "{html}");
    let older = format!("/console/accounts/{account}?before={}", listed[199]);
    assert!(html.contains(&older), "{html}");
    let (status, _, back) = page.get(&older).await;
    assert_eq!(status, 200, "{back}");
    let rest = listed_sequences(&back);
    assert_eq!(rest.first(), Some(&(listed[199] - 1)));
    assert_eq!(rest.last(), Some(&stored[0].0));
    assert_eq!(listed.len() + rest.len(), stored.len());

    // The chart: one bar slot per day, the events of the test counted by kind.
    assert_eq!(html.matches("<g class=\"chart-day\"").count(), 30, "{html}");
    assert!(!html.contains("style="), "no inline style: {html}");
    let kind_total = |kind: &str| -> usize {
        html.split(&format!("data-kind=\"{kind}\" data-count=\""))
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap().parse::<usize>().unwrap())
            .sum()
    };
    assert_eq!(kind_total("failure"), FAILURES);
    assert_eq!(kind_total("success"), SIGN_INS);
    assert_eq!(kind_total("change"), 1, "the registration");
    assert_eq!(
        kind_total("failure") + kind_total("success") + kind_total("change") + kind_total("other"),
        stored.len()
    );
    // Its text alternative: the title, and the table of days.
    assert!(html.contains("role=\"img\" aria-labelledby=\"chart-title chart-desc\""));
    assert!(
        html.contains(&format!("Sign-in failures: <strong>{FAILURES}</strong>")),
        "{html}"
    );
    assert!(html.contains("<table data-chart-table>"));

    // In the browser: accessible, and no sideways scrolling at phone width.
    let Some(b) = Browser::start("test_account_page_shows_the_latest_events_and_a_chart").await
    else {
        return;
    };
    let base = server.base.clone();
    browser_sign_in(&b, &base, &analyst).await;
    b.wait_for_text("Alerts").await;
    b.goto(&format!("{base}/console/accounts/{account}")).await;
    b.wait_for_text("Latest events").await;
    assert_eq!(
        b.js("return document.querySelectorAll('svg[data-chart] g.chart-day').length;")
            .await,
        json!(30)
    );
    assert_eq!(
        b.js("return document.querySelector('li[data-sequence]').dataset.sequence;")
            .await,
        json!(latest.to_string())
    );
    b.check_page("console-account-timeline").await;
    b.close().await;
}
