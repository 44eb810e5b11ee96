//! The SMS pumping guard (issue #18 item 5), end to end: two server processes on one PostgreSQL
//! and a real SMS webhook receiver. A flood of sign-ups with phone numbers gets no more text
//! messages than the hourly budgets allow (global, and per country calling code), the accounts
//! beyond them are created with `phone_verification_deferred: true`, a resend by SMS answers
//! `429 sms_budget_exhausted`, an alert is raised, and invalid or denied numbers are refused.
use std::collections::HashMap;

use serde_json::{json, Value};

use super::mail::SmsSink;
use super::support::{
    assert_error_shape, event_types, eventually, fast_env, Server, TestDb, PASSWORD,
};

const PER_HOUR: usize = 10;
const PER_PREFIX: usize = 6;

fn us(i: usize) -> String {
    format!("+1415555{:04}", 100 + i)
}

fn uk(i: usize) -> String {
    format!("+447400900{:03}", 100 + i)
}

/// The budgets are clock hours: a run that straddles one could see two budgets.
async fn clear_of_the_hour_boundary() {
    let now = chrono::Utc::now().timestamp();
    let left = 3600 - now.rem_euclid(3600);
    if left < 60 {
        tokio::time::sleep(std::time::Duration::from_secs(left as u64 + 1)).await;
    }
}

async fn sign_up(server: &Server, phone: &str) -> (u16, Value) {
    server
        .post(
            "/v1/accounts",
            json!({"phone": phone, "password": PASSWORD}),
        )
        .await
}

#[tokio::test]
async fn test_a_sign_up_flood_sends_no_more_sms_than_the_budgets_across_processes() {
    clear_of_the_hour_boundary().await;
    let db = TestDb::new().await;
    let sms = SmsSink::start().await;
    let mut env: HashMap<String, String> = fast_env();
    env.insert("GATEHOUSE_SMS_WEBHOOK_URL".into(), sms.url.clone());
    env.insert("GATEHOUSE_SMS_MAX_PER_HOUR".into(), PER_HOUR.to_string());
    env.insert(
        "GATEHOUSE_SMS_MAX_PER_PREFIX_PER_HOUR".into(),
        PER_PREFIX.to_string(),
    );
    env.insert("GATEHOUSE_SMS_DENY_PREFIXES".into(), "+1900,+44909".into());
    let servers = [
        Server::start(Some(&db.url), &env).await,
        Server::start(Some(&db.url), &env).await,
    ];

    // 40 sign-ups on the two processes: 8 US numbers one after another (the +1 budget runs
    // out after 6), then 32 US and UK numbers all at once (the global budget runs out).
    let mut numbers: Vec<String> = (0..8).map(us).collect();
    for i in 0..16 {
        numbers.push(uk(i));
        numbers.push(us(8 + i));
    }
    assert_eq!(numbers.len(), 40);
    let mut answers = Vec::new();
    for (i, phone) in numbers[..8].iter().enumerate() {
        answers.push((phone.clone(), sign_up(&servers[i % 2], phone).await));
    }
    let on = &servers;
    let burst = numbers[8..]
        .iter()
        .enumerate()
        .map(|(i, phone)| async move { (phone.clone(), sign_up(&on[i % 2], phone).await) });
    answers.extend(futures::future::join_all(burst).await);
    let mut admitted = Vec::new();
    let mut deferred = Vec::new();
    for (phone, (status, body)) in &answers {
        assert_eq!(*status, 201, "{phone}: {body}");
        assert!(body["verification_flow_id"].is_string(), "{body}");
        match body["phone_verification_deferred"].as_bool() {
            Some(false) => admitted.push(phone.clone()),
            Some(true) => deferred.push((
                phone.clone(),
                body["account_id"].as_str().unwrap().to_string(),
                body["verification_flow_id"].as_str().unwrap().to_string(),
            )),
            None => panic!("no phone_verification_deferred in {body}"),
        }
    }
    // The +1 budget: 6 of the first 8.
    assert_eq!(
        answers[..8]
            .iter()
            .filter(|(_, (_, b))| b["phone_verification_deferred"] == false)
            .count(),
        PER_PREFIX
    );
    assert_eq!(admitted.len(), PER_HOUR, "{admitted:?}");
    assert_eq!(
        admitted.iter().filter(|p| p.starts_with("+1")).count(),
        PER_PREFIX
    );
    assert_eq!(
        admitted.iter().filter(|p| p.starts_with("+44")).count(),
        PER_HOUR - PER_PREFIX
    );

    // Every admitted number gets its code at the webhook; nothing else leaves.
    for phone in &admitted {
        sms.wait_for(phone, 1).await;
    }
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    eventually("the outbox to drain", || async {
        let pending: i64 = sqlx::query_scalar(
            "select count(*) from notification_outbox_v1 where status = 'pending'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pending == 0
    })
    .await;
    for phone in &numbers {
        let expected = usize::from(admitted.contains(phone));
        assert_eq!(sms.messages_to(phone).len(), expected, "{phone}");
    }

    // A deferred account records why its code was withheld.
    let (phone, account, flow) = &deferred[0];
    let types = event_types(&pool, account).await;
    assert!(types.iter().any(|t| t == "SmsWithheld"), "{types:?}");

    // Resending by SMS within the spent hour: a clear refusal, on either process.
    for server in &servers {
        let (status, body) = server
            .post(&format!("/v1/flows/{flow}/resend"), json!({}))
            .await;
        assert_eq!(status, 429, "{body}");
        assert_error_shape(&body, "sms_budget_exhausted");
        assert!(body["error"]["retry_after"].as_i64().unwrap() > 0, "{body}");
    }
    assert!(sms.messages_to(phone).is_empty());

    // The alert is raised.
    eventually("an sms_budget_reached alert", || async {
        servers[0]
            .metrics()
            .await
            .contains("gatehouse_alerts_raised_total{rule=\"sms_budget_reached\"} 1")
    })
    .await;
}

#[tokio::test]
async fn test_invalid_and_denied_numbers_are_refused_at_sign_up_and_contact_change() {
    let db = TestDb::new().await;
    let mut env = fast_env();
    env.insert("GATEHOUSE_SMS_DENY_PREFIXES".into(), "+1900, +44909".into());
    let server = Server::start(Some(&db.url), &env).await;

    // E.164 in form, but no such area code (libphonenumber's metadata): invalid.
    for (phone, code) in [
        ("+15551234567", "invalid_phone"),
        ("4155550100", "invalid_phone"),
        ("+1 900 555 0100", "phone_not_allowed"),
        ("+449098790123", "phone_not_allowed"),
    ] {
        let (status, body) = sign_up(&server, phone).await;
        assert_eq!(status, 422, "{phone}: {body}");
        assert_error_shape(&body, code);
        assert_eq!(body["error"]["field"], "phone", "{body}");
    }

    let email = "changes.phone@example.com";
    server.register(email, PASSWORD).await;
    let token = server.token(email, PASSWORD).await;
    for (phone, code) in [
        ("+15551234567", "invalid_phone"),
        ("+19005550100", "phone_not_allowed"),
    ] {
        let r = server
            .http
            .put(format!("{}/v1/me/phone", server.base))
            .bearer_auth(&token)
            .json(&json!({"phone": phone, "proof": {"password": PASSWORD}}))
            .send()
            .await
            .unwrap();
        let (status, body) = super::support::read(r).await;
        assert_eq!(status, 422, "{phone}: {body}");
        assert_error_shape(&body, code);
        assert_eq!(body["error"]["field"], "phone", "{body}");
    }
}

#[tokio::test]
async fn test_a_bad_deny_list_stops_the_server_at_start() {
    let db = TestDb::new().await;
    let mut env = fast_env();
    env.insert("GATEHOUSE_SMS_DENY_PREFIXES".into(), "1900".into());
    let err = Server::try_start(Some(&db.url), &env).await.err();
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("GATEHOUSE_SMS_DENY_PREFIXES")),
        "{err:?}"
    );
}

#[tokio::test]
async fn test_a_resend_to_a_spent_calling_code_is_withheld_by_the_delivery_worker() {
    let db = TestDb::new().await;
    let sms = SmsSink::start().await;
    let mut env: HashMap<String, String> = fast_env();
    env.insert("GATEHOUSE_SMS_WEBHOOK_URL".into(), sms.url.clone());
    env.insert("GATEHOUSE_SMS_MAX_PER_HOUR".into(), "100".into());
    env.insert("GATEHOUSE_SMS_MAX_PER_PREFIX_PER_HOUR".into(), "1".into());
    env.insert("GATEHOUSE_CODE_RESEND_SECONDS".into(), "1".into());
    clear_of_the_hour_boundary().await;
    let server = Server::start(Some(&db.url), &env).await;

    let (first, second) = (us(0), us(1));
    let (_, body) = sign_up(&server, &first).await;
    assert_eq!(body["phone_verification_deferred"], false, "{body}");
    let (_, body) = sign_up(&server, &second).await;
    assert_eq!(body["phone_verification_deferred"], true, "{body}");
    let account = body["account_id"].as_str().unwrap().to_string();
    let flow = body["verification_flow_id"].as_str().unwrap().to_string();
    sms.wait_for(&first, 1).await;

    // The global budget is not spent, so the resend is accepted (after the resend cooldown);
    // the worker withholds it, as the +1 budget is.
    let path = format!("/v1/flows/{flow}/resend");
    let mut accepted = false;
    for _ in 0..100 {
        let (status, body) = server.post(&path, json!({})).await;
        if status == 202 {
            accepted = true;
            break;
        }
        assert_error_shape(&body, "code_rate_limited");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(accepted, "the resend was never accepted");
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    eventually("the withheld resend to be recorded", || async {
        let types = event_types(&pool, &account).await;
        types.iter().filter(|t| *t == "SmsWithheld").count() == 2
            && types.iter().any(|t| t == "NotificationFailed")
    })
    .await;
    assert!(sms.messages_to(&second).is_empty());
    assert_eq!(sms.messages_to(&first).len(), 1);
}
