//! Schema evolution: `tests/fixtures/events-v1.jsonl` holds one event of every type in its first
//! stored version (1.0), exactly as the store keeps it. It must replay forever: decode through the
//! upcasters, fold into the aggregate, verify as a hash chain, feed every read model, and go
//! through the replay tool from a real store. Never edit the fixture; add new versions beside it.
use cqrs_es::Aggregate;
use gatehouse_domain::account::AccountStatus;
use gatehouse_domain::chain;
use gatehouse_domain::upcast::decode_account_event;
use gatehouse_domain::Account;
use gatehouse_projections::{lockout_state, login_history, sessions};
use gatehouse_store::{StoredEvent, StreamPosition};
use serde_json::Value;

/// The fixture, one stored event a line.
pub const FIXTURE: &str = include_str!("../fixtures/events-v1.jsonl");

/// The fixture's account id.
pub const FIXTURE_ACCOUNT: &str = "0f6b7c1e-3a52-4b8e-9d61-2f1e5a7c9b30";

/// The fixture's rows as JSON.
pub fn fixture_rows() -> Vec<Value> {
    FIXTURE
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Inserts the fixture's rows into a store's `events` table as they were stored.
pub async fn load_fixture(pool: &sqlx::PgPool) {
    for row in fixture_rows() {
        sqlx::query(
            "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             values ($1, $2, $3, $4, $5, $6::json, $7::json)",
        )
        .bind(row["aggregate_type"].as_str().unwrap())
        .bind(row["aggregate_id"].as_str().unwrap())
        .bind(row["sequence"].as_i64().unwrap())
        .bind(row["event_type"].as_str().unwrap())
        .bind(row["event_version"].as_str().unwrap())
        .bind(row["payload"].to_string())
        .bind(row["metadata"].to_string())
        .execute(pool)
        .await
        .unwrap();
    }
}

#[test]
fn test_fixture_v1_covers_every_event_type_and_replays() {
    let rows = fixture_rows();
    let mut types: Vec<&str> = rows
        .iter()
        .map(|r| r["event_type"].as_str().unwrap())
        .collect();
    types.sort_unstable();
    types.dedup();
    assert_eq!(
        types,
        vec![
            "AccountLocked",
            "AccountRegistered",
            "DuplicateRegistrationAttempted",
            "LoginFailed",
            "LoginRejectedWhileLocked",
            "LoginSucceeded",
            "PasswordRehashed",
            "SessionEnded",
            "SessionExtended",
            "SessionStarted",
        ]
    );

    let mut account = Account::default();
    let mut payloads = Vec::new();
    for row in &rows {
        let event_type = row["event_type"].as_str().unwrap();
        let event = decode_account_event(
            event_type,
            row["event_version"].as_str().unwrap(),
            row["payload"].clone(),
        )
        .unwrap_or_else(|e| panic!("{event_type} no longer decodes: {e}"));
        assert_eq!(event.fact.name(), event_type);
        account.apply(event);
        payloads.push(row["payload"].clone());

        // Every read model's fold accepts it.
        let stored = StoredEvent {
            position: StreamPosition {
                tx: 1,
                pos: row["sequence"].as_i64().unwrap(),
            },
            aggregate_type: "Account".into(),
            aggregate_id: FIXTURE_ACCOUNT.into(),
            sequence: row["sequence"].as_i64().unwrap(),
            event_type: event_type.into(),
            event_version: row["event_version"].as_str().unwrap().into(),
            payload: row["payload"].clone(),
            metadata: row["metadata"].clone(),
            recorded_at: None,
            decoded: Default::default(),
        };
        (lockout_state::projection().changes)(&stored).unwrap();
        (login_history::projection().changes)(&stored).unwrap();
        (sessions::projection().changes)(&stored).unwrap();
    }
    // The stored chain verifies, and the aggregate's own head agrees with it.
    let head = chain::verify(&payloads).unwrap();
    assert_eq!(account.chain_head(), &head);
    assert_eq!(account.status(), AccountStatus::Active);
    let during_lock = chrono::DateTime::parse_from_rfc3339("2026-01-06T08:10:00Z")
        .unwrap()
        .to_utc();
    assert!(account.lock_at(during_lock).is_some());
    assert!(account.live_sessions(during_lock).is_empty());
}
