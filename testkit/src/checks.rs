//! Checks the tests make of answers and databases: the JSON of a response, the error shape,
//! whole read models, the events of an aggregate, secrets nowhere in clear, and polling until
//! something holds.
use std::time::Duration;

use serde_json::Value;

/// Status and JSON body (`Null` when the body is empty).
pub async fn read(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Every error body has exactly the documented shape.
pub fn assert_error_shape(body: &Value, code: &str) {
    let err = body
        .get("error")
        .unwrap_or_else(|| panic!("no error object in {body}"));
    assert_eq!(err["code"], code, "{body}");
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
}

/// Every row of each `(table, order by)` as `table: {json}`, in that order: read models compared
/// whole (live against rebuilt, one batch against one event per batch).
pub async fn table_rows(pool: &sqlx::PgPool, tables: &[(&str, &str)]) -> Vec<String> {
    let mut rows = Vec::new();
    for (table, order) in tables {
        let dump: Vec<String> = sqlx::query_scalar(&format!(
            "select row_to_json(t)::text from (select * from {table} order by {order}) t"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        rows.extend(dump.into_iter().map(|r| format!("{table}: {r}")));
    }
    rows
}

/// The alerts read model's tables and their keys (for [`table_rows`]).
pub const ALERT_TABLES: [(&str, &str); 5] = [
    ("alerts_v1", "id"),
    ("alert_evidence_v1", "alert_id, aggregate_id, sequence"),
    ("alert_signals_v1", "signal, aggregate_id, sequence"),
    ("alert_known_v1", "account_id, kind, value"),
    ("alert_recovery_marks_v1", "account_id"),
];

/// Event types of one aggregate, in order.
pub async fn event_types(pool: &sqlx::PgPool, aggregate_id: &str) -> Vec<String> {
    sqlx::query_scalar("select event_type from events where aggregate_id = $1 order by sequence")
        .bind(aggregate_id)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Polls `check` until it returns true (up to 10 s).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Asserts that no row of any table holds any of `needles` (case-insensitive); returns the
/// tables scanned.
pub async fn assert_nowhere_in_database(pool: &sqlx::PgPool, needles: &[String]) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for table in &tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!("select t::text from {table} t"))
            .fetch_all(pool)
            .await
            .unwrap();
        for row in rows {
            let lower = row.to_lowercase();
            for needle in needles {
                assert!(
                    !lower.contains(&needle.to_lowercase()),
                    "{table} holds a secret in clear ({needle}): {row}"
                );
            }
        }
    }
    tables
}
