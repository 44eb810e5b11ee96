//! The pages over plain HTTP (issue #21 item 3): what a browser is told and what is refused,
//! against the real binary on PostgreSQL. The browser flows are in `ui_self_service`.
use std::collections::HashMap;

use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::{json, Value};

use super::support::{assert_error_shape, fast_env, read, Server, TestDb, PASSWORD};

/// A browser without a browser: keeps the pages' cookies by hand, never follows redirects.
pub(super) struct PageClient {
    pub(super) base: String,
    pub(super) http: reqwest::Client,
    pub(super) cookies: HashMap<String, String>,
}

impl PageClient {
    pub(super) fn new(server: &Server) -> Self {
        Self {
            base: server.base.clone(),
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, headers: &HeaderMap) {
        for set in headers.get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
    }

    /// `GET path`: status, headers, body.
    pub(super) async fn get(&mut self, path: &str) -> (u16, HeaderMap, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        self.keep(&headers);
        (status, headers, r.text().await.unwrap())
    }

    /// `POST path` with a form (and whatever extra headers), as a browser on this origin would.
    pub(super) async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> (u16, HeaderMap, String) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded_pairs(form));
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        self.keep(&headers);
        (status, headers, r.text().await.unwrap())
    }

    /// The CSRF token of the forms of `path` (loaded first, which also sets the CSRF cookie).
    pub(super) async fn csrf(&mut self, path: &str) -> String {
        let (status, _, html) = self.get(path).await;
        assert_eq!(status, 200, "{html}");
        csrf_of(&html)
    }

    /// Signs in through the page; the answer to the form.
    pub(super) async fn sign_in(
        &mut self,
        identifier: &str,
        password: &str,
    ) -> (u16, HeaderMap, String) {
        let csrf = self.csrf("/sign-in").await;
        self.post(
            "/sign-in",
            &[
                ("csrf", &csrf),
                ("identifier", identifier),
                ("password", password),
            ],
            &[],
        )
        .await
    }
}

fn serde_urlencoded_pairs(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of the first hidden `csrf` field of a page.
pub(super) fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no csrf field in {html}"));
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

pub(super) async fn page_server(extra: &[(&str, &str)]) -> (TestDb, Server) {
    let db = TestDb::new().await;
    let mut env = fast_env();
    for (k, v) in extra {
        env.insert((*k).to_string(), (*v).to_string());
    }
    let server = Server::start(Some(&db.url), &env).await;
    (db, server)
}

fn assert_page_headers(headers: &HeaderMap) {
    let csp = headers["content-security-policy"].to_str().unwrap();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-content-type-options"], "nosniff");
}

/// The pages carry the strict headers, and their cookies the attributes the configuration
/// decides: `__Host-` and `Secure` with an https public URL, plain names on http.
#[tokio::test]
async fn test_pages_carry_strict_headers_and_cookie_attributes_follow_the_public_url() {
    let (_db, server) =
        page_server(&[("GATEHOUSE_PUBLIC_URL", "https://accounts.example.test")]).await;
    let mut page = PageClient::new(&server);
    let (status, headers, html) = page.get("/sign-in").await;
    assert_eq!(status, 200);
    assert_page_headers(&headers);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(
        !html.contains("<script>") && !html.contains("style=\""),
        "no inline script or style"
    );
    let set = headers[SET_COOKIE].to_str().unwrap();
    assert!(set.starts_with("__Host-gh_csrf="), "{set}");
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Domain"), "{set}");

    // Served over http (a laptop): no prefix, no Secure, whatever the request's Host says.
    let (_db2, plain) = page_server(&[]).await;
    let (_, headers, _) = PageClient::new(&plain).get("/sign-in").await;
    let set = headers[SET_COOKIE].to_str().unwrap();
    assert!(
        set.starts_with("gh_csrf=") && !set.contains("Secure"),
        "{set}"
    );

    // The freeze link's page is on the same layout, with the same headers, and still names
    // the endpoint its button posts to, never the token.
    let (status, headers, html) = page.get("/freeze?t=fz1.secret-token").await;
    assert_eq!(status, 200);
    assert_page_headers(&headers);
    assert!(
        html.contains("/v1/freeze") && html.contains("/assets/gatehouse.css"),
        "{html}"
    );
    assert!(!html.contains("secret-token"));

    // Assets come from the binary with their type, revalidated by ETag.
    let (status, headers, css) = page.get("/assets/gatehouse.css").await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert_eq!(headers["cache-control"], "no-cache");
    assert!(css.contains(":focus-visible"));
    let etag = headers["etag"].to_str().unwrap().to_string();
    let r = page
        .http
        .get(format!("{}/assets/gatehouse.css", page.base))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let (status, _, body) = page.get("/assets/nope.js").await;
    assert_eq!(status, 404);
    assert_error_shape(&serde_json::from_str(&body).unwrap(), "not_found");
}

/// A form without its CSRF token, with a wrong one, with another browser's, or sent from
/// another site is refused with 403 and changes nothing; the same form from the page signs in.
#[tokio::test]
async fn test_a_form_without_its_csrf_token_or_from_another_site_is_refused() {
    let (_db, server) = page_server(&[]).await;
    server.register("csrf@example.com", PASSWORD).await;
    let mut page = PageClient::new(&server);
    let token = page.csrf("/sign-in").await;
    let creds = [("identifier", "csrf@example.com"), ("password", PASSWORD)];

    let (status, _, html) = page.post("/sign-in", &creds, &[]).await;
    assert_eq!(status, 403, "no token");
    assert!(html.contains("refused"), "{html}");

    let mut forged = creds.to_vec();
    forged.push(("csrf", "00"));
    let (status, _, _) = page.post("/sign-in", &forged, &[]).await;
    assert_eq!(status, 403, "a wrong token");

    let mut other = PageClient::new(&server);
    let others = other.csrf("/sign-in").await;
    let mut theirs = creds.to_vec();
    theirs.push(("csrf", &others));
    let (status, _, _) = page.post("/sign-in", &theirs, &[]).await;
    assert_eq!(status, 403, "another browser's token");

    let mut right = creds.to_vec();
    right.push(("csrf", &token));
    for site in [
        [("sec-fetch-site", "cross-site")],
        [("origin", "https://evil.example")],
    ] {
        let (status, _, _) = page.post("/sign-in", &right, &site).await;
        assert_eq!(status, 403, "{site:?}");
    }
    assert!(
        !page.cookies.contains_key("gh_session"),
        "nothing signed in"
    );

    let origin = server.base.clone();
    let (status, headers, body) = page
        .post(
            "/sign-in",
            &right,
            &[("origin", &origin), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(headers[LOCATION], "/account");
    assert!(page.cookies.contains_key("gh_session"));
}

/// The session cookie authorises the pages only: the JSON API ignores cookies (bearer tokens
/// only), so a cross-site call carrying it is not signed in; the cookie holds no API token in
/// clear; and the page asks for sign-in once the session is revoked.
#[tokio::test]
async fn test_the_json_api_ignores_the_session_cookie_and_a_revoked_session_asks_for_sign_in() {
    let (_db, server) = page_server(&[]).await;
    server.register("cookie@example.com", PASSWORD).await;
    let mut page = PageClient::new(&server);
    let (status, _, _) = page.sign_in("cookie@example.com", PASSWORD).await;
    assert_eq!(status, 303);
    let cookie = page.cookies["gh_session"].clone();
    assert!(!cookie.starts_with("ghs"), "sealed, not the token");

    let r = page
        .http
        .get(format!("{}/v1/me", server.base))
        .header(COOKIE, page.cookie_header())
        .send()
        .await
        .unwrap();
    let (status, body) = read(r).await;
    assert_eq!(status, 401, "{body}");
    assert_error_shape(&body, "unauthenticated");
    // The sealed value is no bearer token either.
    let (status, _) = server.authed(reqwest::Method::GET, "/v1/me", &cookie).await;
    assert_eq!(status, 401);

    let (status, _, html) = page.get("/account").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("c****e@example.com") || html.contains("@example.com"),
        "{html}"
    );

    // Every session ended from elsewhere: the page asks to sign in again.
    let token = server.token("cookie@example.com", PASSWORD).await;
    let (status, _) = server
        .authed(reqwest::Method::DELETE, "/v1/me/sessions", &token)
        .await;
    assert_eq!(status, 200);
    let (status, headers, _) = page.get("/account").await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/sign-in?notice=expired");
    assert!(
        !page.cookies.contains_key("gh_session"),
        "the stale cookie is removed"
    );
}

/// `GATEHOUSE_UI=off`: no pages (`/` and the sign-in page answer 404 in the API's error shape),
/// while the freeze link's page and its assets are still served.
#[tokio::test]
async fn test_ui_off_serves_no_pages_but_keeps_the_freeze_page() {
    let (_db, server) = page_server(&[("GATEHOUSE_UI", "off")]).await;
    for path in ["/", "/sign-in", "/account", "/console"] {
        let (status, body) = read(
            server
                .http
                .get(format!("{}{path}", server.base))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_error_shape(&body, "not_found");
    }
    let mut page = PageClient::new(&server);
    let (status, _, html) = page.get("/freeze?t=x").await;
    assert_eq!(status, 200);
    assert!(html.contains("/assets/freeze.js"));
    let (status, _, _) = page.get("/assets/freeze.js").await;
    assert_eq!(status, 200);
    let (status, body) = server
        .post(
            "/v1/login",
            json!({"identifier": "x@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 401, "the API is served: {body}");
    let _: Value = body;
}
