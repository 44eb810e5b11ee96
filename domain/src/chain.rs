//! Tamper evidence: every event of an aggregate carries the hash of its predecessor.
//!
//! `link(n) = SHA-256(link(n-1) || canonical_json(event n))`, starting from [`GENESIS`]. The hash is
//! taken over the canonical JSON of the event exactly as stored (sealed fields are ciphertext), so a
//! verifier needs only the stored rows: editing, deleting, inserting or reordering any event breaks
//! the link recorded in its successor.
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The hash of an event's predecessor, lower-case hex of SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChainLink(pub String);

/// Implements `cqrs_es::Aggregate` for an aggregate whose commands each decide one fact: the
/// aggregate has `fn decide(&self, Command) -> Result<(DateTime<Utc>, Fact), Error>`,
/// `fn fold(&mut self, &Event)` and a `chain: ChainLink` field; its event type has the fields
/// `at`, `prev` and `fact`. The shim stamps the chain link on each new event and moves the link
/// on as events are applied.
#[macro_export]
macro_rules! single_fact_aggregate {
    ($aggregate:ty, $type_name:literal, $command:ty, $event:ident, $error:ty) => {
        impl cqrs_es::Aggregate for $aggregate {
            const TYPE: &'static str = $type_name;
            type Command = $command;
            type Event = $event;
            type Error = $error;
            type Services = ();

            async fn handle(
                &mut self,
                command: Self::Command,
                _services: &Self::Services,
                sink: &cqrs_es::event_sink::EventSink<Self>,
            ) -> Result<(), Self::Error> {
                let (at, fact) = self.decide(command)?;
                let event = $event {
                    at,
                    prev: self.chain.clone(),
                    fact,
                };
                sink.write(event, self).await;
                Ok(())
            }

            fn apply(&mut self, event: Self::Event) {
                self.fold(&event);
                if let Ok(value) = serde_json::to_value(&event) {
                    self.chain = self.chain.next(&value);
                }
            }
        }
    };
}

/// The link an aggregate's first event points back to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl Default for ChainLink {
    fn default() -> Self {
        Self(GENESIS.to_string())
    }
}

impl ChainLink {
    /// The link that follows `self` once `event` (its stored JSON form) is appended.
    pub fn next(&self, event: &Value) -> ChainLink {
        let mut hasher = Sha256::new();
        hasher.update(self.0.as_bytes());
        let mut canonical = Vec::with_capacity(256);
        write_canonical(event, &mut canonical);
        hasher.update(&canonical);
        ChainLink(hex::encode(hasher.finalize()))
    }
}

/// JSON with object keys sorted and no insignificant white space, so the hash does not depend on
/// how a database or a serializer orders keys.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(&Value::String((*key).clone()), out);
                out.push(b':');
                if let Some(v) = map.get(*key) {
                    write_canonical(v, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

/// Where a stored chain stops verifying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// Index (0-based, in the order given) of the first event whose recorded link is wrong.
    pub index: usize,
    /// The link the event should have recorded.
    pub expected: String,
    /// The link it did record (`None` when the payload has no `prev` field).
    pub found: Option<String>,
}

/// Verifies stored payloads (in sequence order) of one aggregate. Each payload must carry its
/// predecessor's link in a top-level `prev` field.
pub fn verify(payloads: &[Value]) -> Result<ChainLink, ChainBreak> {
    let mut head = ChainLink::default();
    for (index, payload) in payloads.iter().enumerate() {
        let found = payload.get("prev").and_then(Value::as_str);
        if found != Some(head.0.as_str()) {
            return Err(ChainBreak {
                index,
                expected: head.0,
                found: found.map(str::to_string),
            });
        }
        head = head.next(payload);
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn test_chain_canonical_form_ignores_key_order() {
        let a = json!({"b": 1, "a": {"y": [1, "x"], "x": null}});
        let b: Value = serde_json::from_str(r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#).unwrap();
        assert_eq!(ChainLink::default().next(&a), ChainLink::default().next(&b));
        let mut out = Vec::new();
        write_canonical(&a, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#
        );
    }

    fn chain_of(n: usize) -> Vec<Value> {
        let mut head = ChainLink::default();
        (0..n)
            .map(|i| {
                let v = json!({"prev": head.0, "n": i});
                head = head.next(&v);
                v
            })
            .collect()
    }

    #[test]
    fn test_chain_verify_accepts_intact_chain() {
        assert!(verify(&chain_of(5)).is_ok());
    }

    #[test]
    fn test_chain_verify_pins_altered_deleted_and_reordered_events() {
        let mut altered = chain_of(5);
        altered[2]["n"] = json!(99);
        assert_eq!(verify(&altered).unwrap_err().index, 3);

        let mut deleted = chain_of(5);
        deleted.remove(1);
        assert_eq!(verify(&deleted).unwrap_err().index, 1);

        let mut reordered = chain_of(5);
        reordered.swap(1, 2);
        assert_eq!(verify(&reordered).unwrap_err().index, 1);
    }
}
