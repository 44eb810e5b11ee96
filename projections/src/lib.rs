//! Gatehouse's read side. The event store, the executor and the global stream it reads are the
//! write side, in `gatehouse-store`; this crate depends on that one, never the reverse.
//!
//! - [`runner`]: feeds every projection from the persisted stream, with a checkpoint written in
//!   the same transaction as each read-model change;
//! - one module per read model: [`lockout_state`], [`login_history`], [`sessions`],
//!   [`notifications`] (the outbox the delivery worker drains), [`alerts`] (anomaly alerts),
//!   [`activity`] (every security event of an account, in plain words).
#![forbid(unsafe_code)]
#![deny(clippy::all)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod activity;
pub mod alerts;
pub mod batch;
pub mod bulk;
pub mod cell;
pub mod csv;
pub mod lockout_state;
pub mod login_history;
pub mod notice;
pub mod notifications;
pub mod rebuild;
pub mod recovery_cases;
pub mod runner;
pub mod sessions;
mod time;

pub use runner::{ChangeProjection, Projection, ProjectionRunner};

use std::sync::Arc;

use gatehouse_domain::AccountEvent;
use gatehouse_store::{StoreError, StoredEvent};

/// The read models Gatehouse maintains (alerts under the default policy).
pub fn standard_projections() -> Vec<Arc<dyn Projection>> {
    standard_projections_with(alerts::AlertPolicy::default())
}

/// The read models Gatehouse maintains, with alerts under `policy`.
pub fn standard_projections_with(policy: alerts::AlertPolicy) -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(lockout_state::projection()),
        Arc::new(login_history::projection()),
        Arc::new(sessions::projection()),
        Arc::new(notifications::projection()),
        Arc::new(recovery_cases::projection()),
        Arc::new(activity::projection()),
        Arc::new(alerts::AlertsProjection::new(policy)),
    ]
}

/// The standard read models as a rebuild into fresh tables runs them: the alerts keep their
/// signal windows in memory throughout and write them at the end ([`Projection::finish`], to be
/// called after the last batch). Not for live tables: a crash between batches would leave the
/// signals behind their checkpoint.
pub fn rebuild_projections() -> Vec<Arc<dyn Projection>> {
    let mut projections = standard_projections();
    for p in projections.iter_mut() {
        if p.name() == alerts::NAME {
            *p = Arc::new(alerts::AlertsProjection::for_rebuild(
                alerts::AlertPolicy::default(),
            ));
        }
    }
    projections
}

/// Decodes an `Account` event from the stream; `None` for other aggregates. The first read model
/// to ask decodes it and keeps it beside the event; every read model borrows that one (a copy
/// each cost six allocations per event for every read model, most of which ignore the event).
pub fn account_event(event: &StoredEvent) -> Result<Option<&AccountEvent>, StoreError> {
    if event.aggregate_type != "Account" {
        return Ok(None);
    }
    if event.decoded.get().is_none() {
        // Old payload versions are upcast to the current shape on every read (never rewritten).
        let decoded = gatehouse_domain::upcast::decode_account_event_ref(
            &event.event_type,
            &event.event_version,
            &event.payload,
        )
        .map_err(|e| {
            StoreError::Corrupt(format!("{} #{}: {e}", event.aggregate_id, event.sequence))
        })?;
        event.decoded.keep(decoded);
    }
    Ok(event.decoded.get())
}

#[cfg(test)]
mod test_support {
    use gatehouse_domain::chain::ChainLink;
    use gatehouse_domain::{AccountEvent, AccountFact};

    use gatehouse_store::{StoredEvent, StreamPosition};

    /// A stored `Account` event for fold tests.
    pub fn stored(account: &str, sequence: i64, at_ms: i64, fact: AccountFact) -> StoredEvent {
        let event = AccountEvent {
            at: chrono::DateTime::from_timestamp_millis(at_ms).unwrap(),
            prev: ChainLink::default(),
            fact,
        };
        StoredEvent {
            position: StreamPosition {
                tx: 1,
                pos: sequence,
            },
            aggregate_type: "Account".into(),
            aggregate_id: account.into(),
            sequence,
            event_type: cqrs_es::DomainEvent::event_type(&event),
            event_version: "1.0".into(),
            payload: serde_json::to_value(&event).unwrap(),
            metadata: serde_json::json!({}),
            recorded_at: None,
            decoded: Default::default(),
        }
    }
}
