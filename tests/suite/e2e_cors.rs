//! CORS for the JSON API (issue #21 item 4), against the real binary on PostgreSQL: over plain
//! HTTP (what a browser is told) and in Chromium (a page on a second local origin calls the API,
//! and gets through only when its origin is listed).
use std::net::SocketAddr;

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use reqwest::Method;
use serde_json::json;

use super::browser::Browser;
use super::support::Server;
use super::ui_pages::page_server;

const LISTED: &str = "https://app.example.test";
const OTHER: &str = "https://evil.example.test";

/// `OPTIONS path` as a browser's preflight from `origin` for a JSON `POST` with a bearer token.
async fn preflight(server: &Server, path: &str, origin: &str) -> reqwest::Response {
    server
        .http
        .request(Method::OPTIONS, format!("{}{path}", server.base))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap()
}

fn header_of(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
}

/// A listed origin: its preflight is answered (methods, headers, max-age, never credentials) and
/// the API's answer names it and exposes `Retry-After` and `X-Request-Id`. Another origin gets
/// no `Access-Control-Allow-Origin` (the browser then blocks the call), and the pages never
/// carry CORS headers.
#[tokio::test]
async fn test_cors_allows_exactly_the_listed_origins_on_the_api_only() {
    let (_db, server) = page_server(&[(
        "GATEHOUSE_CORS_ORIGINS",
        "https://app.example.test, http://localhost:5173",
    )])
    .await;

    let r = preflight(&server, "/v1/accounts", LISTED).await;
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        header_of(&r, "access-control-allow-origin").as_deref(),
        Some(LISTED)
    );
    let methods = header_of(&r, "access-control-allow-methods").unwrap();
    assert!(
        methods.contains("post") && methods.contains("delete"),
        "{methods}"
    );
    let headers = header_of(&r, "access-control-allow-headers").unwrap();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
    assert_eq!(
        header_of(&r, "access-control-max-age").as_deref(),
        Some("600")
    );
    assert!(header_of(&r, "access-control-allow-credentials").is_none());
    assert!(header_of(&r, "vary").unwrap().contains("origin"));

    // The call itself: the origin is named, the two headers are readable.
    let r = server
        .http
        .post(format!("{}/v1/accounts", server.base))
        .header("origin", LISTED)
        .json(&json!({"email": "cors@example.com", "password": super::support::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(
        header_of(&r, "access-control-allow-origin").as_deref(),
        Some(LISTED)
    );
    let exposed = header_of(&r, "access-control-expose-headers").unwrap();
    assert!(
        exposed.contains("retry-after") && exposed.contains("x-request-id"),
        "{exposed}"
    );
    assert!(header_of(&r, "access-control-allow-credentials").is_none());

    // An origin not listed: neither the preflight nor the answer names it.
    let r = preflight(&server, "/v1/accounts", OTHER).await;
    assert!(header_of(&r, "access-control-allow-origin").is_none());
    let r = server
        .http
        .get(format!("{}/healthz", server.base))
        .header("origin", OTHER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(header_of(&r, "access-control-allow-origin").is_none());
    // Nor a near miss of a listed one.
    for near in ["https://app.example.test:8443", "http://app.example.test"] {
        let r = preflight(&server, "/v1/accounts", near).await;
        assert!(
            header_of(&r, "access-control-allow-origin").is_none(),
            "{near}"
        );
    }

    // The pages: no CORS headers, even for a listed origin.
    let r = server
        .http
        .get(format!("{}/sign-in", server.base))
        .header("origin", LISTED)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(header_of(&r, "access-control-allow-origin").is_none());
}

/// Off by default: no origin is named, not even on a preflight.
#[tokio::test]
async fn test_cors_is_off_by_default() {
    let (_db, server) = page_server(&[]).await;
    let r = preflight(&server, "/v1/accounts", LISTED).await;
    assert!(header_of(&r, "access-control-allow-origin").is_none());
    let r = server
        .http
        .get(format!("{}/healthz", server.base))
        .header("origin", LISTED)
        .send()
        .await
        .unwrap();
    assert!(header_of(&r, "access-control-allow-origin").is_none());
}

/// A value that is not a list of exact origins stops the server at start, naming the setting.
#[tokio::test]
async fn test_an_invalid_cors_origin_is_a_clear_startup_error() {
    let db = super::support::TestDb::new().await;
    for bad in ["*", "https://app.example.test/", "app.example.test"] {
        let mut env = super::support::fast_env();
        env.insert("GATEHOUSE_CORS_ORIGINS".into(), bad.into());
        let Err(stderr) = Server::try_start(Some(&db.url), &env).await else {
            panic!("the server started with GATEHOUSE_CORS_ORIGINS={bad}");
        };
        assert!(stderr.contains("GATEHOUSE_CORS_ORIGINS"), "{bad}: {stderr}");
    }
}

/// The frontend page the second origins serve: it calls the API named in its `#fragment` with a
/// JSON `POST` (a preflighted request) and writes what happened into `<main>`.
const FRONTEND_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Frontend</title></head>
<body><main id="out">waiting</main><script src="/call.js"></script></body></html>"#;

const FRONTEND_JS: &str = r#"
const api = decodeURIComponent(location.hash.slice(1));
fetch(api + '/v1/accounts', {
  method: 'POST',
  headers: {'content-type': 'application/json'},
  body: JSON.stringify({email: 'frontend-' + location.port + '@example.com', password: 'violet-anchor-tundra-58-quietly'})
}).then(r => {
  document.getElementById('out').textContent =
    'status ' + r.status + ' request-id ' + (r.headers.get('x-request-id') ? 'readable' : 'hidden');
}).catch(e => {
  document.getElementById('out').textContent = 'blocked ' + e.name;
});
"#;

/// A tiny HTTP server for the frontend page, on a port of its own (another origin).
async fn frontend() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new()
        .route("/", get(|| async { Html(FRONTEND_HTML) }))
        .route(
            "/call.js",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/javascript")], FRONTEND_JS).into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

/// In Chromium: a page on a listed origin calls the API and reads its answer (and its
/// `X-Request-Id`); the same page on an origin not listed is blocked by the browser.
#[tokio::test]
async fn test_a_frontend_on_a_listed_origin_calls_the_api_from_chromium_and_another_is_blocked() {
    let Some(b) = Browser::start("test_a_frontend_on_a_listed_origin_calls_the_api").await else {
        return;
    };
    let (listed, listed_task) = frontend().await;
    let (other, other_task) = frontend().await;
    let (_db, server) =
        page_server(&[("GATEHOUSE_CORS_ORIGINS", &format!("http://{listed}"))]).await;
    let fragment = url_fragment(&server.base);

    b.goto(&format!("http://{listed}/#{fragment}")).await;
    let text = b.wait_for_text("status").await;
    assert!(text.contains("status 201 request-id readable"), "{text}");

    b.goto(&format!("http://{other}/#{fragment}")).await;
    let text = b.wait_for_text("blocked").await;
    assert!(text.contains("blocked TypeError"), "{text}");
    b.close().await;
    listed_task.abort();
    other_task.abort();
}

fn url_fragment(base: &str) -> String {
    base.replace(':', "%3A").replace('/', "%2F")
}
