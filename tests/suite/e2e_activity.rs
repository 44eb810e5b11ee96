//! The account holder's security center, end to end against the real binary on PostgreSQL with a
//! real SMTP server (issue #20, items 4, 5, 6 and 9): the security activity and its CSV and JSON
//! exports, reading one's own writes at once, a code's delivery status in its flow (the real one
//! only for the owner), and devices listed, renamed and forgotten.
use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::e2e_recovery::{world, World};
use super::e2e_second_factor::enrol;
use super::mail::{first_code, SmsSink, SmtpSink};
use super::support::{assert_error_shape, eventually, fast_env, read, Server, TestDb, PASSWORD};

/// A `GET` with a bearer token and extra headers.
async fn get_with(
    server: &Server,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = server.http.get(format!("{}{path}", server.base));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    read(req.send().await.unwrap()).await
}

/// A `GET` of an export: status, content type, body text.
async fn get_text(server: &Server, path: &str, token: &str) -> (u16, String, String) {
    let r = server
        .http
        .get(format!("{}{path}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, r.text().await.unwrap())
}

/// Signs in with a user agent and device id; returns the body.
async fn login_as(server: &Server, identifier: &str, agent: &str, device: &str) -> Value {
    let r = server
        .http
        .post(format!("{}/v1/login", server.base))
        .header("user-agent", agent)
        .json(&json!({"identifier": identifier, "password": PASSWORD, "device_id": device}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(r).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Every entry of the activity, newest first, through pages of `limit`.
async fn all_entries(server: &Server, token: &str, limit: usize, kind: Option<&str>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let mut path = format!("/v1/me/activity?limit={limit}");
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        if let Some(k) = kind {
            path.push_str(&format!("&kind={k}"));
        }
        let (status, page) = get_with(server, &path, Some(token), &[]).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.get("stale").is_none(), "{page}");
        out.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

fn kinds(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

/// A minimal CSV reader for the export (RFC 4180 quoting).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut cell, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if cell.is_empty() => quoted = true,
            (',', false) => row.push(std::mem::take(&mut cell)),
            ('\r', false) => {}
            ('\n', false) => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => cell.push(c),
        }
    }
    rows
}

#[tokio::test]
async fn test_activity_lists_security_events_and_exports_the_same_rows() {
    let w = world(&[]).await;
    let email = "activity.owner@example.com";
    let account_id = w.verified_email_account(email).await;
    let verification_code = w
        .smtp
        .wait_for(email, "email verification code", 1)
        .await
        .code();
    // A sign-in whose user agent a spreadsheet would run as a formula.
    let agent = "=HYPERLINK(\"http://evil.example\",\"click\")";
    let signed_in = login_as(&w.server, email, agent, "laptop-1").await;
    let token = signed_in["session_token"].as_str().unwrap().to_string();
    // A wrong password, an API key (after a step-up), then a second factor.
    let (status, _) = w.server.login(email, "not-the-password-at-all").await;
    assert_eq!(status, 401);
    let (status, body) = w
        .server
        .post_authed(
            "/v1/me/step-up",
            &token,
            json!({"proof": {"password": PASSWORD}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = w
        .server
        .post_authed(
            "/v1/me/api-keys",
            &token,
            json!({"name": "@trading-bot", "scopes": ["read"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let api_secret = body["key"].as_str().unwrap_or_default().to_string();
    enrol(&w.server, &token).await;

    // The activity, newest first, says it all in plain words (once the notices the steps above
    // sent have settled, so that every read below sees the same rows).
    let mut entries = all_entries(&w.server, &token, 100, None).await;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let again = all_entries(&w.server, &token, 100, None).await;
        if again == entries {
            break;
        }
        entries = again;
    }
    let all = kinds(&entries);
    for kind in [
        "account_created",
        "code_issued",
        "code_delivered",
        "code_used",
        "contact_verified",
        "sign_in",
        "sign_in_failed",
        "session_stepped_up",
        "api_key_created",
        "totp_enrolled",
        "backup_codes_generated",
    ] {
        assert!(
            all.contains(&kind.to_string()),
            "{kind} missing from {all:?}"
        );
    }
    let at = |kind: &str| all.iter().position(|k| k == kind).unwrap();
    assert!(
        at("totp_enrolled") < at("api_key_created")
            && at("api_key_created") < at("sign_in_failed")
            && at("sign_in_failed") < at("account_created"),
        "newest first: {all:?}"
    );
    let delivered = entries
        .iter()
        .find(|e| e["kind"] == "code_delivered")
        .unwrap();
    assert_eq!(
        delivered["detail"],
        "One-time code sent by email to a************r@example.com"
    );
    assert_eq!(delivered["outcome"], "succeeded");
    let sign_in = entries.iter().find(|e| e["kind"] == "sign_in").unwrap();
    assert_eq!(sign_in["user_agent"], agent);
    assert_eq!(sign_in["device"], "laptop-1");
    assert_eq!(sign_in["ip"], "127.0.0.1");
    let key = entries
        .iter()
        .find(|e| e["kind"] == "api_key_created")
        .unwrap();
    assert_eq!(key["detail"], "API key \"@trading-bot\" created (read)");
    // No secret in any row: not the code, not the full address, not the key's secret.
    let text = serde_json::to_string(&entries).unwrap();
    assert!(!text.contains(&verification_code));
    assert!(!text.contains(email));
    assert!(api_secret.len() > 10 && !text.contains(&api_secret));

    // Paging by cursor gives the same rows; the kind filter only its kind.
    assert_eq!(all_entries(&w.server, &token, 2, None).await, entries);
    let sign_ins = all_entries(&w.server, &token, 100, Some("sign_in")).await;
    assert_eq!(sign_ins.len(), 2, "{sign_ins:?}");
    assert!(sign_ins.iter().all(|e| e["kind"] == "sign_in"));
    // Bad parameters: the one error shape.
    for bad in [
        "/v1/me/activity?limit=0",
        "/v1/me/activity?limit=101",
        "/v1/me/activity?limit=ten",
        "/v1/me/activity?cursor=-1",
        "/v1/me/activity?cursor=abc",
        "/v1/me/activity?kind=no_such_kind",
        "/v1/me/activity/export?format=xml",
        "/v1/me/activity/export?from=yesterday",
        "/v1/me/activity/export?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
    ] {
        let (status, body) = get_with(&w.server, bad, Some(&token), &[]).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_error_shape(&body, "invalid_request");
    }
    let (status, _) = get_with(&w.server, "/v1/me/activity", None, &[]).await;
    assert_eq!(status, 401);

    // The CSV export: a first line naming the account and the range, the columns, the same rows
    // newest first, and the formula-like user agent neutralised.
    let (status, content_type, csv) =
        get_text(&w.server, "/v1/me/activity/export?format=csv", &token).await;
    assert_eq!(status, 200, "{csv}");
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let first = csv.lines().next().unwrap();
    assert!(
        first.starts_with(&format!(
            "# Gatehouse security activity of account {account_id} from the first entry to "
        )),
        "{first}"
    );
    let rows = csv_rows(csv.split_once("\r\n").unwrap().1);
    assert_eq!(
        rows[0],
        [
            "at",
            "kind",
            "outcome",
            "ip",
            "user_agent",
            "device",
            "detail"
        ]
    );
    let rows = &rows[1..];
    assert_eq!(
        rows.iter().map(|r| r[1].clone()).collect::<Vec<_>>(),
        all,
        "{csv}"
    );
    let csv_sign_in = rows.iter().find(|r| r[1] == "sign_in").unwrap();
    assert_eq!(csv_sign_in[4], format!("'{agent}"));
    assert!(!csv.contains(&format!(",{agent}")), "{csv}");

    // The JSON export: the same rows.
    let (status, content_type, text) =
        get_text(&w.server, "/v1/me/activity/export?format=json", &token).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type, "application/json");
    let export: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(export["account_id"], account_id);
    assert!(export.get("stale").is_none());
    let exported = export["entries"].as_array().unwrap();
    assert_eq!(kinds(exported), all);
    assert_eq!(exported.len(), rows.len());
    for (e, r) in exported.iter().zip(rows) {
        assert_eq!(e["detail"], r[6]);
        assert_eq!(
            e["user_agent"].as_str().unwrap_or_default(),
            r[4].trim_start_matches('\'')
        );
    }
    // A range: only what happened in it.
    let (status, _, text) = get_text(
        &w.server,
        "/v1/me/activity/export?format=json&from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z",
        &token,
    )
    .await;
    assert_eq!(status, 200);
    let export: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(export["entries"], json!([]));
}

#[tokio::test]
async fn test_a_sign_in_is_in_history_and_activity_at_once_every_time() {
    let w = world(&[]).await;
    let email = "reads.own.writes@example.com";
    w.verified_email_account(email).await;
    for i in 0..100 {
        let agent = format!("rw-agent-{i}");
        let body = login_as(&w.server, email, &agent, "rw").await;
        let token = body["session_token"].as_str().unwrap();
        let (status, history) =
            get_with(&w.server, "/v1/me/login-history?limit=1", Some(token), &[]).await;
        assert_eq!(status, 200, "{history}");
        assert_eq!(
            history["entries"][0]["user_agent"], agent,
            "#{i}: {history}"
        );
        assert!(history.get("stale").is_none(), "#{i}: {history}");
        let (status, activity) = get_with(
            &w.server,
            "/v1/me/activity?limit=1&kind=sign_in",
            Some(token),
            &[],
        )
        .await;
        assert_eq!(status, 200, "{activity}");
        assert_eq!(
            activity["entries"][0]["user_agent"], agent,
            "#{i}: {activity}"
        );
        assert!(activity.get("stale").is_none(), "#{i}: {activity}");
    }
}

#[tokio::test]
async fn test_an_answer_that_cannot_wait_says_it_is_stale() {
    // The runner gathers events for 3 s and reads may not wait: the sign-in is not there yet,
    // and the answer says so.
    let w = world(&[
        ("GATEHOUSE_PROJECTION_COALESCE_MS", "3000"),
        ("GATEHOUSE_READ_YOUR_WRITES_MS", "0"),
    ])
    .await;
    let email = "too.quick@example.com";
    w.verified_email_account(email).await;
    // The runner also looks every 500 ms without being woken, and may then apply a sign-in at
    // once: a few tries, each after the runner went idle.
    let mut answers = Vec::new();
    for attempt in 0..3 {
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let body = login_as(&w.server, email, &format!("quick-{attempt}"), "q").await;
        let token = body["session_token"].as_str().unwrap();
        let (status, history) = get_with(&w.server, "/v1/me/login-history", Some(token), &[]).await;
        assert_eq!(status, 200, "{history}");
        let (status, activity) = get_with(&w.server, "/v1/me/activity", Some(token), &[]).await;
        assert_eq!(status, 200, "{activity}");
        if history["stale"] == true && activity["stale"] == true {
            return;
        }
        answers.push((history, activity));
    }
    panic!("never stale: {answers:?}");
}

/// An SMTP server that refuses every recipient (`550`), as a provider refusing the message.
async fn refusing_smtp() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (r, mut wr) = socket.into_split();
                let mut lines = BufReader::new(r).lines();
                let _ = wr.write_all(b"220 refusing ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250 refusing\r\n"
                    } else if upper.starts_with("MAIL") || upper.starts_with("RSET") {
                        b"250 ok\r\n"
                    } else if upper.starts_with("RCPT") {
                        b"550 5.7.1 message refused\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = wr.write_all(b"221 bye\r\n").await;
                        break;
                    } else {
                        b"503 bad sequence\r\n"
                    };
                    if wr.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, task)
}

/// The delivery status of a flow as `headers` see it.
async fn delivery(
    server: &Server,
    flow: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Value {
    let (status, body) = get_with(server, &format!("/v1/flows/{flow}"), token, headers).await;
    assert_eq!(status, 200, "{body}");
    body["delivery"].clone()
}

fn shape(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn test_delivery_status_is_real_for_the_owner_and_the_same_for_everyone_else() {
    let db = TestDb::new().await;
    let smtp = SmtpSink::start().await;
    let sms = SmsSink::start().await;
    let mut env: HashMap<String, String> = fast_env();
    env.insert("GATEHOUSE_SMTP_URL".into(), smtp.url());
    env.insert("GATEHOUSE_SMS_WEBHOOK_URL".into(), sms.url.clone());
    env.insert("GATEHOUSE_CODE_RESEND_SECONDS".into(), "1".into());
    env.insert("GATEHOUSE_DELIVERY_MAX_ATTEMPTS".into(), "1".into());
    let server = Server::start(Some(&db.url), &env).await;
    let email = "mail.never.came@example.com";
    let phone = "+447400900177";
    let (status, body) = server
        .post(
            "/v1/accounts",
            json!({"email": email, "phone": phone, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let code = smtp
        .wait_for(email, "email verification code", 1)
        .await
        .code();
    let (status, _) = server
        .post(
            "/v1/verify",
            json!({"flow_id": body["verification_flow_id"], "code": code}),
        )
        .await;
    assert_eq!(status, 204);
    let code = first_code(&sms.wait_for(phone, 1).await).unwrap();
    let (status, _) = server
        .post(
            "/v1/verify",
            json!({"flow_id": body["phone_verification_flow_id"], "code": code}),
        )
        .await;
    assert_eq!(status, 204);
    let signed_in = login_as(&server, email, "owner-phone", "phone-1").await;
    let device_token = signed_in["device_token"].as_str().unwrap().to_string();
    let session = signed_in["session_token"].as_str().unwrap().to_string();
    server.kill().await;

    // Now the email provider refuses every message.
    let (port, _refusing) = refusing_smtp().await;
    env.insert(
        "GATEHOUSE_SMTP_URL".into(),
        format!("smtp://127.0.0.1:{port}"),
    );
    let server = Server::start(Some(&db.url), &env).await;
    let (status, started) = server
        .post("/v1/password/forgot", json!({"identifier": email}))
        .await;
    assert_eq!(status, 202, "{started}");
    let flow = started["flow_id"].as_str().unwrap().to_string();
    let owner = [("x-device-token", device_token.as_str())];
    // The owner's device sees the refusal, where it went and when.
    let mut seen = Value::Null;
    for _ in 0..200 {
        seen = delivery(&server, &flow, None, &owner).await;
        if seen["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen["status"], "failed", "{seen}");
    assert_eq!(seen["channel"], "email");
    assert_eq!(seen["destination"], "m*************e@example.com");
    assert!(seen["at"].is_string());
    // So does a session of the account.
    let by_session = delivery(&server, &flow, Some(&session), &[]).await;
    assert_eq!(by_session["status"], "failed", "{by_session}");
    // Anyone else sees "sent" and what was typed, masked.
    let public = delivery(&server, &flow, None, &[]).await;
    assert_eq!(public["status"], "sent", "{public}");
    assert_eq!(public["channel"], "email");
    assert_eq!(public["destination"], "m*************e@example.com");
    // A forged device token is no token.
    let forged = delivery(
        &server,
        &flow,
        None,
        &[("x-device-token", "dv1.forged.token")],
    )
    .await;
    assert_eq!(forged["status"], "sent");

    // The owner switches to SMS: sent, to the phone, masked.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = server
        .post(
            &format!("/v1/flows/{flow}/resend"),
            json!({"channel": "sms"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    eventually("the SMS is sent", || async {
        delivery(&server, &flow, None, &owner).await["status"] == "sent"
    })
    .await;
    let seen = delivery(&server, &flow, None, &owner).await;
    assert_eq!(seen["channel"], "sms");
    assert_eq!(seen["destination"], "+44*******177");
    sms.wait_for(phone, 2).await;
    // Others: the channel as answered, but not the phone (it was not typed).
    let public = delivery(&server, &flow, None, &[]).await;
    assert_eq!(public["channel"], "sms");
    assert_eq!(public["destination"], "***");
    assert_eq!(public["status"], "sent");

    // An unknown identifier's flow has the same shape and the same answers, whoever asks.
    let (status, unknown) = server
        .post(
            "/v1/password/forgot",
            json!({"identifier": "nobody.here@example.com"}),
        )
        .await;
    assert_eq!(status, 202);
    let unknown_flow = unknown["flow_id"].as_str().unwrap();
    let a = delivery(&server, unknown_flow, None, &[]).await;
    let b = delivery(&server, unknown_flow, Some(&session), &owner).await;
    assert_eq!(a, b);
    assert_eq!(shape(&a), shape(&public));
    assert_eq!(
        (&a["channel"], &a["status"], &a["destination"]),
        (
            &json!("email"),
            &json!("sent"),
            &json!("n*********e@example.com")
        )
    );
    // The owner's activity shows the refusal and the SMS.
    let entries = all_entries(&server, &session, 100, None).await;
    let failed = entries
        .iter()
        .find(|e| e["kind"] == "code_delivery_failed")
        .unwrap();
    assert_eq!(
        failed["detail"],
        "One-time code could not be sent by email to m*************e@example.com"
    );
    assert!(entries.iter().any(|e| e["kind"] == "code_delivered"
        && e["detail"] == "One-time code sent by sms to +44*******177"));
}

#[tokio::test]
async fn test_devices_are_listed_renamed_and_forgotten() {
    let w: World = world(&[]).await;
    let email = "two.devices@example.com";
    w.verified_email_account(email).await;
    let laptop = login_as(&w.server, email, "Laptop Browser/1.0", "laptop").await;
    let phone = login_as(&w.server, email, "Phone App/2.0", "phone").await;
    let token = laptop["session_token"].as_str().unwrap();
    let phone_session = phone["session_token"].as_str().unwrap();
    let phone_device = phone["device_token"].as_str().unwrap();

    let (status, list) = get_with(&w.server, "/v1/me/devices", Some(token), &[]).await;
    assert_eq!(status, 200, "{list}");
    let devices = list["devices"].as_array().unwrap();
    // The sign-up's first sign-in (verified_email_account) is a third device.
    assert_eq!(devices.len(), 3, "{list}");
    let phone_entry = devices
        .iter()
        .find(|d| d["user_agent"] == "Phone App/2.0")
        .unwrap()
        .clone();
    let laptop_entry = devices
        .iter()
        .find(|d| d["user_agent"] == "Laptop Browser/1.0")
        .unwrap()
        .clone();
    assert_eq!(laptop_entry["current"], true);
    assert_eq!(phone_entry["current"], false);
    for d in [&phone_entry, &laptop_entry] {
        assert_eq!(d["has_device_token"], true);
        assert_eq!(d["ip"], "127.0.0.1");
        assert!(
            d["first_seen"].is_string() && d["last_seen"].is_string(),
            "{d}"
        );
        assert!(d.get("name").is_none() || d["name"].is_null(), "{d}");
    }
    let phone_id = phone_entry["device_id"].as_str().unwrap().to_string();

    // Renamed with a session alone; bad names refused in the one error shape.
    let rename = |name: Value, id: String| {
        let server = &w.server;
        async move {
            read(
                server
                    .http
                    .patch(format!("{}/v1/me/devices/{id}", server.base))
                    .bearer_auth(token)
                    .json(&json!({ "name": name }))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let (status, body) = rename(json!("Ann's phone"), phone_id.clone()).await;
    assert_eq!(status, 204, "{body}");
    for bad in [
        json!(""),
        json!("x".repeat(65)),
        json!("bell\u{7}name"),
        json!(7),
    ] {
        let (status, body) = rename(bad.clone(), phone_id.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_error_shape(&body, "invalid_request");
    }
    let (status, body) = rename(json!("ghost"), uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(status, 404, "{body}");
    let (_, list) = get_with(&w.server, "/v1/me/devices", Some(token), &[]).await;
    let named = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == phone_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(named["name"], "Ann's phone");
    let renamed = all_entries(&w.server, token, 100, Some("device_renamed")).await;
    assert_eq!(renamed[0]["detail"], "Device renamed to \"Ann's phone\"");

    // Forgetting it needs a stepped-up session (the proof policy), then its token and its
    // sessions stop working.
    let forget = || async {
        read(
            w.server
                .http
                .delete(format!("{}/v1/me/devices/{phone_id}", w.server.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    let (status, body) = forget().await;
    assert_eq!(status, 403, "{body}");
    assert_error_shape(&body, "step_up_required");
    let (status, body) = w
        .server
        .post_authed(
            "/v1/me/step-up",
            token,
            json!({"proof": {"password": PASSWORD}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = forget().await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = w.server.authed(Method::GET, "/v1/me", phone_session).await;
    assert_eq!(status, 401, "the forgotten device's session ended");
    // Its token is no token: a sign-in presenting it goes through the untrusted door.
    let r = w
        .server
        .post(
            "/v1/login",
            json!({"identifier": email, "password": PASSWORD, "device_token": phone_device}),
        )
        .await;
    assert_eq!(r.0, 200, "{}", r.1);
    let (_, history) = get_with(&w.server, "/v1/me/login-history?limit=1", Some(token), &[]).await;
    assert_eq!(history["entries"][0]["door"], "untrusted", "{history}");
    let (_, list) = get_with(&w.server, "/v1/me/devices", Some(token), &[]).await;
    assert!(
        !list["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["device_id"] == phone_id.as_str()),
        "{list}"
    );
    assert_eq!(
        all_entries(&w.server, token, 100, Some("device_forgotten")).await[0]["detail"],
        "Device forgotten"
    );
}

#[tokio::test]
async fn test_a_sign_up_flow_shows_strangers_the_same_delivery_whether_the_address_is_taken() {
    let w = world(&[]).await;
    let email = "taken.address@example.com";
    let mut views = Vec::new();
    // The first sign-up is real; the second, with the same address, gets a decoy flow.
    for _ in 0..2 {
        let (status, body) = w
            .server
            .post(
                "/v1/accounts",
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let flow = body["verification_flow_id"].as_str().unwrap().to_string();
        let mut view = delivery(&w.server, &flow, None, &[]).await;
        view["at"] = json!("<issued>");
        views.push(view);
    }
    assert_eq!(views[0], views[1]);
    assert_eq!(
        views[0],
        json!({"channel": "email", "destination": "t***********s@example.com", "status": "sent", "at": "<issued>"})
    );
}
