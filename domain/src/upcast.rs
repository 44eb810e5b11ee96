//! Schema evolution: stored payloads of older versions are brought to the current shape
//! ("upcast") whenever they are read, never rewritten in the store.
//!
//! Every stored event carries `event_version`. [`UPCASTERS`] is an ordered list of steps, each
//! turning one version of one event type (or of every type, `"*"`) into the next version. Reading
//! applies steps until the payload reaches [`EVENT_VERSION`]; a version with no path to it (for
//! example one written by newer code) is an error, never a silent guess.
//!
//! Invariants:
//! - a step is a pure function of the payload (no clock, no I/O), so replays are deterministic;
//! - steps never remove information needed to verify the hash chain: verification works on the
//!   payload *as stored* (see [`crate::chain`]), not on the upcast form. When a step first changes
//!   a payload's shape, the aggregate must take its chain head from the stored payload rather than
//!   from re-serialising the upcast event (today both are identical because no step exists).
//!
//! Where it is applied: `gatehouse_projections::account_event` (every read model and the replay
//! tool), and [`AccountUpcaster`] for cqrs-es's `EventUpcaster` hook when aggregates are loaded.
use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use serde_json::Value;
use thiserror::Error;

use crate::account::{AccountEvent, EVENT_VERSION};

/// One upcasting step.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    /// Event type it applies to, or `"*"` for every type.
    pub event_type: &'static str,
    /// The version it reads.
    pub from: &'static str,
    /// The version it produces.
    pub to: &'static str,
    /// The transformation.
    pub apply: fn(Value) -> Value,
}

/// Gatehouse's upcasting steps, oldest first. Empty while `1.0` is the only version ever written;
/// add a step here (with a fixture line in `tests/fixtures/`) whenever a payload shape changes.
pub const UPCASTERS: &[Upcaster] = &[];

/// Why a stored payload cannot be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UpcastError {
    /// No chain of steps leads from this version to the current one.
    #[error("no upcaster from {event_type} version {version} to version {current}")]
    UnknownVersion {
        /// The stored event type.
        event_type: String,
        /// The stored version.
        version: String,
        /// The version this code reads.
        current: &'static str,
    },
    /// The (upcast) payload does not match the current event shape.
    #[error("{event_type} payload does not decode: {message}")]
    Shape {
        /// The stored event type.
        event_type: String,
        /// The decoder's message.
        message: String,
    },
}

/// Brings `payload` of `event_type` at `version` to [`EVENT_VERSION`] with `steps`.
pub fn upcast_with(
    steps: &[Upcaster],
    event_type: &str,
    version: &str,
    mut payload: Value,
) -> Result<Value, UpcastError> {
    let mut version = version.to_string();
    // Each step moves to another version; a bound on the steps guards against a cyclic table.
    for _ in 0..=steps.len() {
        if version == EVENT_VERSION {
            return Ok(payload);
        }
        let Some(step) = steps
            .iter()
            .find(|s| (s.event_type == "*" || s.event_type == event_type) && s.from == version)
        else {
            break;
        };
        payload = (step.apply)(payload);
        version = step.to.to_string();
    }
    Err(UpcastError::UnknownVersion {
        event_type: event_type.to_string(),
        version,
        current: EVENT_VERSION,
    })
}

/// Brings a stored payload to the current version with Gatehouse's [`UPCASTERS`].
pub fn upcast(event_type: &str, version: &str, payload: Value) -> Result<Value, UpcastError> {
    upcast_with(UPCASTERS, event_type, version, payload)
}

/// Decodes a stored `Account` event of any known version.
pub fn decode_account_event(
    event_type: &str,
    version: &str,
    payload: Value,
) -> Result<AccountEvent, UpcastError> {
    let current = upcast(event_type, version, payload)?;
    serde_json::from_value(current).map_err(|e| UpcastError::Shape {
        event_type: event_type.to_string(),
        message: e.to_string(),
    })
}

/// [`decode_account_event`] from a borrowed payload: a current one is read in place (no copy),
/// an older one is copied and upcast.
pub fn decode_account_event_ref(
    event_type: &str,
    version: &str,
    payload: &Value,
) -> Result<AccountEvent, UpcastError> {
    if version != EVENT_VERSION {
        return decode_account_event(event_type, version, payload.clone());
    }
    serde::Deserialize::deserialize(payload).map_err(|e: serde_json::Error| UpcastError::Shape {
        event_type: event_type.to_string(),
        message: e.to_string(),
    })
}

/// [`UPCASTERS`] as a cqrs-es `EventUpcaster`, for stores that load aggregates.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountUpcaster;

impl EventUpcaster for AccountUpcaster {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        event_version != EVENT_VERSION && upcast(event_type, event_version, Value::Null).is_ok()
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        let payload = std::mem::take(&mut event.payload);
        match upcast(&event.event_type, &event.event_version, payload.clone()) {
            Ok(current) => {
                event.payload = current;
                event.event_version = EVENT_VERSION.to_string();
            }
            // Left as it was: decoding then reports the unknown version.
            Err(_) => event.payload = payload,
        }
        event
    }
}

/// The upcasters to hand to `AggregateStore::new` for `Account`.
pub fn account_upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![Box::new(AccountUpcaster)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rename_ip(mut v: Value) -> Value {
        if let Some(ctx) = v.pointer_mut("/fact/LoginFailed/context") {
            if let Some(ip) = ctx.as_object_mut().and_then(|o| o.remove("addr")) {
                ctx["ip"] = ip;
            }
        }
        v
    }

    fn add_context(mut v: Value) -> Value {
        if let Some(f) = v.pointer_mut("/fact/LoginFailed") {
            if f.get("context").is_none() {
                f["context"] = json!({"addr": null, "user_agent": null, "device_id": null});
            }
        }
        v
    }

    const STEPS: &[Upcaster] = &[
        Upcaster {
            event_type: "LoginFailed",
            from: "0.8",
            to: "0.9",
            apply: add_context,
        },
        Upcaster {
            event_type: "*",
            from: "0.9",
            to: "1.0",
            apply: rename_ip,
        },
    ];

    #[test]
    fn test_upcast_current_version_is_identity() {
        let v = json!({"a": 1});
        assert_eq!(upcast("LoginFailed", EVENT_VERSION, v.clone()).unwrap(), v);
    }

    #[test]
    fn test_upcast_chains_steps_to_the_current_version() {
        let old = json!({"at": "2026-01-02T03:04:05Z", "prev": crate::chain::GENESIS,
            "fact": {"LoginFailed": {"reason": "wrong_password", "consecutive_failures": 1}}});
        let current = upcast_with(STEPS, "LoginFailed", "0.8", old).unwrap();
        assert_eq!(
            current["fact"]["LoginFailed"]["context"],
            json!({"ip": null, "user_agent": null, "device_id": null})
        );
        let event: AccountEvent = serde_json::from_value(current).unwrap();
        assert_eq!(event.fact.name(), "LoginFailed");
    }

    #[test]
    fn test_upcast_refuses_unknown_versions() {
        let err = upcast_with(STEPS, "LoginFailed", "7.0", json!({})).unwrap_err();
        assert!(matches!(err, UpcastError::UnknownVersion { .. }));
        assert!(decode_account_event("LoginFailed", "0.1", json!({})).is_err());
        assert!(!AccountUpcaster.can_upcast("LoginFailed", EVENT_VERSION));
        assert!(!AccountUpcaster.can_upcast("LoginFailed", "0.1"));
    }
}
