//! Breached passwords (issue #18 item 6), end to end: a local range server speaking the Pwned
//! Passwords k-anonymity format, and a small generated file in the downloadable format. A
//! password listed there is refused at sign-up, reset and password change with 422
//! `breached_password`; when the range service is down the check is skipped and counted.
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use sha1::{Digest as _, Sha1};

use super::e2e_recovery::{flow_id, world};
use super::support::{assert_error_shape, eventually, fast_env, Server, TestDb, PASSWORD};

/// Strong by the policy's estimate, and listed as breached by the corpora below.
const BREACHED: &str = "plinth-vortex-harbour-93-sable";
/// Strong and listed by no corpus.
const UNLISTED: &str = "quiver-lagoon-ember-71-thistle";

fn sha1_hex(password: &str) -> String {
    Sha1::digest(password.as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// A range server answering `/range/{prefix}` like api.pwnedpasswords.com: CRLF lines of
/// `SUFFIX:COUNT`, padding lines with count 0, `BREACHED` seen 3 times. Records the prefixes
/// asked for.
async fn range_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = asked.clone();
    let app = axum::Router::new().route(
        "/range/{prefix}",
        axum::routing::get(
            move |axum::extract::Path(prefix): axum::extract::Path<String>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(prefix.clone());
                    let breached = sha1_hex(BREACHED);
                    let mut lines = vec![
                        "0018A45C4D1DEF81644B54AB7F969B88D65:1".to_string(),
                        "00D4F6E8FA6EECAD2A3AA415EEC418D38EC:0".to_string(),
                    ];
                    if breached.starts_with(&prefix) {
                        lines.push(format!("{}:3", &breached[5..]));
                    }
                    lines.push("FFFF6E8FA6EECAD2A3AA415EEC418D38EC1:0".to_string());
                    lines.join("\r\n")
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/range"), asked)
}

async fn sign_up(server: &Server, email: &str, password: &str) -> (u16, Value) {
    server
        .post(
            "/v1/accounts",
            json!({"email": email, "password": password}),
        )
        .await
}

fn assert_breached(status: u16, body: &Value, field: &str) {
    assert_eq!(status, 422, "{body}");
    assert_error_shape(body, "breached_password");
    assert_eq!(body["error"]["field"], field, "{body}");
}

async fn skipped_checks(server: &Server) -> u64 {
    let text = server.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix("gatehouse_breach_checks_skipped_total "))
        .unwrap_or_else(|| panic!("no skip counter in {text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn test_breached_passwords_are_refused_with_the_range_service_everywhere_one_is_set() {
    let (url, asked) = range_server().await;
    let w = world(&[("GATEHOUSE_PWNED_RANGE_URL", &url)]).await;

    // Sign-up.
    let (status, body) = sign_up(&w.server, "breached.signup@example.com", BREACHED).await;
    assert_breached(status, &body, "password");
    // Only the first five hex digits of the hash left the process.
    assert_eq!(
        asked.lock().unwrap().clone(),
        vec![sha1_hex(BREACHED)[..5].to_string()]
    );
    let email = "breached.owner@example.com";
    w.verified_email_account(email).await;

    // Password change while signed in.
    let token = w.server.token(email, PASSWORD).await;
    let (status, body) = w
        .put_authed(
            "/v1/me/password",
            &token,
            json!({"proof": {"password": PASSWORD}, "new_password": BREACHED}),
        )
        .await;
    assert_breached(status, &body, "new_password");

    // Reset with a code.
    let started = w.forgot(email, None).await;
    let flow = flow_id(&started);
    let code = w
        .smtp
        .wait_for(email, "password reset code", 1)
        .await
        .code();
    let (status, body) = w.reset(&flow, &code, BREACHED).await;
    assert_breached(status, &body, "new_password");
    // The code was not spent on the refused password.
    let (status, body) = w.reset(&flow, &code, UNLISTED).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(w.server.login(email, UNLISTED).await.0, 200);
    assert_eq!(skipped_checks(&w.server).await, 0);
}

#[tokio::test]
async fn test_breached_passwords_are_refused_with_the_local_file_from_the_minimum_count() {
    let db = TestDb::new().await;
    // The downloadable format: uppercase SHA-1, sorted, CRLF.
    let mut hashes: Vec<(String, u32)> = (0..500)
        .map(|i| (sha1_hex(&format!("filler-{i}")), i + 1))
        .collect();
    hashes.push((sha1_hex(BREACHED), 3));
    hashes.sort();
    let text: String = hashes.iter().map(|(h, n)| format!("{h}:{n}\r\n")).collect();
    let path = std::env::temp_dir().join(format!("pwned-e2e-{}.txt", uuid::Uuid::new_v4()));
    std::fs::write(&path, text).unwrap();

    let mut env = fast_env();
    env.insert("GATEHOUSE_PWNED_FILE".into(), path.display().to_string());
    let server = Server::start(Some(&db.url), &env).await;
    let (status, body) = sign_up(&server, "file.breached@example.com", BREACHED).await;
    assert_breached(status, &body, "password");
    let (status, body) = sign_up(&server, "file.clean@example.com", UNLISTED).await;
    assert_eq!(status, 201, "{body}");
    server.kill().await;

    // Seen 3 times: below a minimum of 4 it is accepted.
    env.insert("GATEHOUSE_PWNED_MIN_COUNT".into(), "4".into());
    let server = Server::start(Some(&db.url), &env).await;
    let (status, body) = sign_up(&server, "file.tolerated@example.com", BREACHED).await;
    assert_eq!(status, 201, "{body}");
    server.kill().await;

    // A file that cannot be read stops the server at start rather than checking nothing.
    env.insert(
        "GATEHOUSE_PWNED_FILE".into(),
        "/nonexistent/pwned.txt".into(),
    );
    let err = Server::try_start(Some(&db.url), &env).await.err();
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("GATEHOUSE_PWNED_FILE")),
        "{err:?}"
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn test_an_unreachable_range_service_skips_the_check_and_counts_it() {
    let db = TestDb::new().await;
    // A port nobody listens on.
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let mut env = fast_env();
    env.insert(
        "GATEHOUSE_PWNED_RANGE_URL".into(),
        format!("http://{closed}/range"),
    );
    let server = Server::start(Some(&db.url), &env).await;
    assert_eq!(skipped_checks(&server).await, 0);
    let (status, body) = sign_up(&server, "range.down@example.com", BREACHED).await;
    assert_eq!(
        status, 201,
        "a sign-up never fails because a third party is down: {body}"
    );
    assert_eq!(skipped_checks(&server).await, 1);
    eventually("the skipped check to be logged", || async {
        server.logs().contains("breached-password check skipped")
    })
    .await;
}
