//! `/metrics` is no one else's business: on the public address it needs the bearer token
//! (GATEHOUSE_METRICS_TOKEN) and answers exactly like an unknown path without it; a separate
//! address (GATEHOUSE_METRICS_LISTEN) serves it without a token.
use std::collections::HashMap;

use reqwest::Method;

use super::support::{assert_error_shape, fast_env, Server, TestDb, METRICS_TOKEN};

/// Status, headers (without `date` and the request's own `x-request-id`) and body of a request.
async fn raw(
    server: &Server,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let mut req = server.http.request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn test_metrics_need_the_token_and_otherwise_look_like_an_unknown_path() {
    let db = TestDb::new().await;
    let server = Server::start(Some(&db.url), &fast_env()).await;
    let base = server.base.clone();
    let unknown = raw(&server, &base, Method::GET, "/no-such-path", None).await;
    assert_eq!(unknown.0, 404);
    assert_error_shape(&serde_json::from_str(&unknown.2).unwrap(), "not_found");
    for (method, token) in [
        (Method::GET, None),
        (Method::GET, Some("wrong-token-wrong-token-wrong")),
        (Method::GET, Some(&METRICS_TOKEN[..METRICS_TOKEN.len() - 1])),
        (Method::POST, None),
        (Method::DELETE, Some("wrong-token-wrong-token-wrong")),
    ] {
        let got = raw(&server, &base, method.clone(), "/metrics", token).await;
        let unknown = raw(&server, &base, method.clone(), "/no-such-path", token).await;
        assert_eq!(got, unknown, "{method} /metrics with {token:?}");
    }
    let (status, _, text) = raw(&server, &base, Method::GET, "/metrics", Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("gatehouse_projection_lag_events"), "{text}");
    let (status, _, _) = raw(
        &server,
        &base,
        Method::POST,
        "/metrics",
        Some(METRICS_TOKEN),
    )
    .await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn test_metrics_on_their_own_address_and_not_at_all_without_a_token() {
    let db = TestDb::new().await;
    let port = free_port();
    let mut env: HashMap<String, String> = fast_env();
    env.remove("GATEHOUSE_METRICS_TOKEN");
    env.insert(
        "GATEHOUSE_METRICS_LISTEN".into(),
        format!("127.0.0.1:{port}"),
    );
    let server = Server::start(Some(&db.url), &env).await;
    let metrics_base = format!("http://127.0.0.1:{port}");
    // The metrics address: no token needed, and nothing else served there.
    let (status, _, text) = raw(&server, &metrics_base, Method::GET, "/metrics", None).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("gatehouse_alerts_raised_total"), "{text}");
    let (status, _, _) = raw(&server, &metrics_base, Method::GET, "/healthz", None).await;
    assert_eq!(status, 404);
    // The public address: no token configured, so no token opens it.
    let base = server.base.clone();
    for token in [None, Some(METRICS_TOKEN), Some("")] {
        let got = raw(&server, &base, Method::GET, "/metrics", token).await;
        let unknown = raw(&server, &base, Method::GET, "/no-such-path", token).await;
        assert_eq!(got.0, 404);
        assert_eq!(got, unknown);
    }
}

#[tokio::test]
async fn test_a_short_metrics_token_is_refused_at_start() {
    let db = TestDb::new().await;
    let mut env: HashMap<String, String> = fast_env();
    env.insert("GATEHOUSE_METRICS_TOKEN".into(), "short".into());
    let stderr = match Server::try_start(Some(&db.url), &env).await {
        Ok(_) => panic!("the server started with a 5-character metrics token"),
        Err(stderr) => stderr,
    };
    assert!(stderr.contains("GATEHOUSE_METRICS_TOKEN"), "{stderr}");
}
