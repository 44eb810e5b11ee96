//! What a published message carries: ids, masked or redacted personal data, never a secret.
//!
//! An event's payload is redacted exactly as the admin events view does it: decoded (and upcast)
//! by its aggregate's type, then every field its fact lists as secret
//! ([`gatehouse_domain::AccountFact::secret_fields`] and the staff, team and protection
//! counterparts) replaced by `"[redacted]"`: password and token hashes, code and key verifiers,
//! sealed contacts and other sealed data. A payload that does not decode, or an aggregate kind
//! this code does not know, is hidden whole. Request metadata is not published.
use gatehouse_domain::account::REDACTED;
use gatehouse_projections::alerts::query::AlertRow;
use gatehouse_store::StoredEvent;
use serde_json::{json, Value};

use super::subjects;

/// An event's payload as published: decoded and redacted by its aggregate's type.
pub fn redacted_payload(event: &StoredEvent) -> Value {
    let hidden = || Value::String(REDACTED.into());
    match event.aggregate_type.as_str() {
        "Account" => crate::routes::admin::accounts::redact(
            &event.event_type,
            &event.event_version,
            &event.payload,
        ),
        "Staff" => {
            serde_json::from_value::<gatehouse_domain::staff::StaffEvent>(event.payload.clone())
                .map_or_else(|_| hidden(), |e| e.redacted())
        }
        "Team" => {
            serde_json::from_value::<gatehouse_domain::team::TeamEvent>(event.payload.clone())
                .map_or_else(|_| hidden(), |e| e.redacted())
        }
        "Protection" => serde_json::from_value::<gatehouse_domain::protection::ProtectionEvent>(
            event.payload.clone(),
        )
        .map_or_else(|_| hidden(), |e| e.redacted()),
        "Webhook" => {
            serde_json::from_value::<gatehouse_domain::webhook::WebhookEvent>(event.payload.clone())
                .map_or_else(|_| hidden(), |e| e.redacted())
        }
        _ => hidden(),
    }
}

/// The JSON body of an event's message.
pub fn event_body(event: &StoredEvent) -> Value {
    json!({
        "id": subjects::event_id(&event.aggregate_type, &event.aggregate_id, event.sequence),
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "sequence": event.sequence,
        "event_type": event.event_type,
        "event_version": event.event_version,
        "recorded_at": event.recorded_at,
        "payload": redacted_payload(event),
    })
}

/// The JSON body of an alert change's message: the alert as the admin API lists it (without its
/// evidence and without the free-text note of a status change, which stays in Gatehouse).
pub fn alert_body(row: &AlertRow) -> Value {
    let time = |ms: i64| chrono::DateTime::from_timestamp_millis(ms);
    json!({
        "id": subjects::alert_change_id(&row.id, row.updated.tx, row.updated.pos),
        "alert_id": row.id,
        "rule": row.rule,
        "severity": row.severity,
        "subject": row.subject,
        "status": row.status,
        "count": row.count,
        "first_seen": time(row.first_seen_ms),
        "last_seen": time(row.last_seen_ms),
        "status_by": row.status_by,
        "policy_version": row.policy_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_store::StreamPosition;

    fn stored(aggregate_type: &str, event_type: &str, payload: Value) -> StoredEvent {
        StoredEvent {
            position: StreamPosition { tx: 1, pos: 1 },
            aggregate_type: aggregate_type.into(),
            aggregate_id: "agg-1".into(),
            sequence: 3,
            event_type: event_type.into(),
            event_version: "1.0".into(),
            payload,
            metadata: json!({"ip": "10.1.2.3"}),
            recorded_at: None,
            decoded: Default::default(),
        }
    }

    #[test]
    fn test_secrets_and_unknown_shapes_are_hidden() {
        let rehashed = stored(
            "Account",
            "PasswordRehashed",
            json!({"at": "2026-01-05T09:00:00Z", "prev": "00",
                   "fact": {"PasswordRehashed": {"password_hash": "$argon2id$v=19$secret"}}}),
        );
        let body = event_body(&rehashed).to_string();
        assert!(!body.contains("argon2"), "{body}");
        assert!(body.contains(REDACTED), "{body}");
        assert!(body.contains("\"id\":\"Account:agg-1:3\""), "{body}");
        // Metadata (addresses, request ids) is not published.
        assert!(!body.contains("10.1.2.3"), "{body}");

        let staff = stored(
            "Staff",
            "StaffTokenIssued",
            json!({"at": "2026-01-05T09:00:00Z", "prev": "00",
                   "fact": {"StaffTokenIssued": {"token_id": uuid::Uuid::nil(),
                            "token_hash": "f".repeat(64), "expires_at": "2027-01-05T09:00:00Z",
                            "issued_by": null}}}),
        );
        let body = event_body(&staff).to_string();
        assert!(!body.contains(&"f".repeat(64)), "{body}");

        for (kind, payload) in [
            ("Account", json!({"fact": {"Novel": {"x": "$argon2id$"}}})),
            ("Staff", json!({"fact": {"Novel": {"x": "$argon2id$"}}})),
            ("Unknown", json!({"anything": "$argon2id$"})),
        ] {
            assert_eq!(
                redacted_payload(&stored(kind, "Novel", payload)),
                Value::String(REDACTED.into()),
                "{kind}"
            );
        }
    }
}
