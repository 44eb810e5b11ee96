//! Protection decisions taken because of alerts, recorded as facts: one `Protection` aggregate
//! per flagged subject (`protection:ip:203.0.113.7`, `protection:net:203.0.113.0/24`).
//!
//! Decisions: sign-ins from an IP or network flagged for credential stuffing are throttled
//! harder until a time (the aggregate refuses a second decision while one is in force, so
//! several API processes record it once); and the audit of the rate limits: requests refused
//! from one source (`protection:ip:<address>`) are recorded once per route and one-minute window
//! that saw refusals, by each server process that refused some, never once per request.
use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::chain::ChainLink;

/// The stored envelope of one protection fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtectionEvent {
    /// When it was decided.
    pub at: DateTime<Utc>,
    /// Hash chain link to the previous event of this aggregate.
    pub prev: ChainLink,
    /// What was decided.
    pub fact: ProtectionFact,
}

/// A protection decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProtectionFact {
    /// Sign-ins from `subject` are limited to `per_minute` until `until`.
    NetworkThrottled {
        /// `ip:<address>` or `net:<cidr>`.
        subject: String,
        /// The alert that flagged it.
        alert_id: String,
        /// Sign-in attempts allowed per minute.
        per_minute: u32,
        /// End of the decision.
        until: DateTime<Utc>,
    },
    /// A rate limit refused `refused` requests from `source` to `route` in the one-minute
    /// window starting at `window_start` (as counted by one server process).
    ThrottleWindowClosed {
        /// The client address (`*`: sources beyond what a process tracks at once).
        source: String,
        /// The limited route (`signup`, `login`, `forgot`, …).
        route: String,
        /// Start of the window.
        window_start: DateTime<Utc>,
        /// Requests refused in it.
        refused: u32,
        /// The distinct identifiers (keyed lookup hashes, at most
        /// [`MAX_REFUSED_IDENTIFIERS`]) of the refused sign-ins: evidence for the
        /// credential-stuffing rule, which the limiter would otherwise blind. Empty on other
        /// routes.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        identifiers: Vec<String>,
    },
}

/// Most identifiers one `ThrottleWindowClosed` names (above every stuffing threshold in use).
pub const MAX_REFUSED_IDENTIFIERS: usize = 100;

impl ProtectionFact {
    /// The fields of this fact never published; none today (addresses, routes and keyed lookup
    /// hashes), decided per variant so that a new fact must say.
    pub fn secret_fields(&self) -> &'static [&'static str] {
        match self {
            Self::NetworkThrottled { .. } | Self::ThrottleWindowClosed { .. } => &[],
        }
    }
}

impl ProtectionEvent {
    /// The event as JSON (its stored shape), with every
    /// [secret field](ProtectionFact::secret_fields) that holds a value replaced by
    /// [`crate::account::REDACTED`].
    pub fn redacted(&self) -> serde_json::Value {
        let Ok(mut value) = serde_json::to_value(self) else {
            return serde_json::Value::String(crate::account::REDACTED.into());
        };
        crate::account::redact_fact(&mut value, self.fact.secret_fields());
        value
    }
}

impl DomainEvent for ProtectionEvent {
    fn event_type(&self) -> String {
        match self.fact {
            ProtectionFact::NetworkThrottled { .. } => "NetworkThrottled".to_string(),
            ProtectionFact::ThrottleWindowClosed { .. } => "ThrottleWindowClosed".to_string(),
        }
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

/// Commands on a protection subject.
#[derive(Debug, Clone)]
pub enum ProtectionCommand {
    /// Throttle sign-ins from the subject.
    ThrottleNetwork {
        /// `ip:<address>` or `net:<cidr>`.
        subject: String,
        /// Flagging alert.
        alert_id: String,
        /// Attempts per minute.
        per_minute: u32,
        /// End.
        until: DateTime<Utc>,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Record the refusals of a closed rate limit window.
    CloseThrottleWindow {
        /// The client address.
        source: String,
        /// The route.
        route: String,
        /// Start of the window.
        window_start: DateTime<Utc>,
        /// Requests refused in it.
        refused: u32,
        /// Distinct identifiers of the refused sign-ins (kept up to
        /// [`MAX_REFUSED_IDENTIFIERS`]).
        identifiers: Vec<String>,
        /// Now.
        at: DateTime<Utc>,
    },
}

/// Why a protection command changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtectionError {
    /// A decision is already in force.
    #[error("PR0001 already throttled")]
    AlreadyThrottled,
    /// A window is recorded once it has closed, and only if something was refused in it.
    #[error("PR0002 the window is still open or nothing was refused")]
    WindowNotClosed,
}

/// A protection subject's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Protection {
    /// End of the decision in force.
    pub throttled_until: Option<DateTime<Utc>>,
    chain: ChainLink,
}

impl Protection {
    /// The pure decision.
    pub fn decide(
        &self,
        command: ProtectionCommand,
    ) -> Result<(DateTime<Utc>, ProtectionFact), ProtectionError> {
        match command {
            ProtectionCommand::ThrottleNetwork {
                subject,
                alert_id,
                per_minute,
                until,
                at,
            } => {
                if self.throttled_until.is_some_and(|u| u > at) {
                    return Err(ProtectionError::AlreadyThrottled);
                }
                Ok((
                    at,
                    ProtectionFact::NetworkThrottled {
                        subject,
                        alert_id,
                        per_minute,
                        until,
                    },
                ))
            }
            ProtectionCommand::CloseThrottleWindow {
                source,
                route,
                window_start,
                refused,
                mut identifiers,
                at,
            } => {
                if refused == 0 || window_start + chrono::Duration::minutes(1) > at {
                    return Err(ProtectionError::WindowNotClosed);
                }
                identifiers.truncate(MAX_REFUSED_IDENTIFIERS);
                Ok((
                    at,
                    ProtectionFact::ThrottleWindowClosed {
                        source,
                        route,
                        window_start,
                        refused,
                        identifiers,
                    },
                ))
            }
        }
    }
}

impl Protection {
    fn fold(&mut self, event: &ProtectionEvent) {
        match &event.fact {
            ProtectionFact::NetworkThrottled { until, .. } => self.throttled_until = Some(*until),
            ProtectionFact::ThrottleWindowClosed { .. } => {}
        }
    }
}

crate::single_fact_aggregate!(
    Protection,
    "Protection",
    ProtectionCommand,
    ProtectionEvent,
    ProtectionError
);

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::Aggregate;

    #[test]
    fn test_throttle_is_decided_once_while_in_force() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let cmd = |at| ProtectionCommand::ThrottleNetwork {
            subject: "ip:203.0.113.7".into(),
            alert_id: "a".into(),
            per_minute: 5,
            until: DateTime::from_timestamp(1_700_003_600, 0).unwrap(),
            at,
        };
        let mut p = Protection::default();
        let (when, fact) = p.decide(cmd(at)).unwrap();
        p.apply(ProtectionEvent {
            at: when,
            prev: ChainLink::default(),
            fact,
        });
        assert_eq!(
            p.decide(cmd(at)).unwrap_err(),
            ProtectionError::AlreadyThrottled
        );
        let later = DateTime::from_timestamp(1_700_003_601, 0).unwrap();
        assert!(p.decide(cmd(later)).is_ok());
    }

    #[test]
    fn test_a_refusal_window_is_recorded_once_closed_with_its_count() {
        let start = DateTime::from_timestamp(1_700_000_040, 0).unwrap();
        let cmd = |refused, at| ProtectionCommand::CloseThrottleWindow {
            source: "203.0.113.7".into(),
            route: "login".into(),
            window_start: start,
            refused,
            identifiers: (0..150).map(|i| format!("lookup-{i}")).collect(),
            at,
        };
        let p = Protection::default();
        let open = start + chrono::Duration::seconds(59);
        let closed = start + chrono::Duration::seconds(60);
        assert_eq!(
            p.decide(cmd(7, open)).unwrap_err(),
            ProtectionError::WindowNotClosed
        );
        assert_eq!(
            p.decide(cmd(0, closed)).unwrap_err(),
            ProtectionError::WindowNotClosed
        );
        let (_, fact) = p.decide(cmd(7, closed)).unwrap();
        assert_eq!(
            fact,
            ProtectionFact::ThrottleWindowClosed {
                source: "203.0.113.7".into(),
                route: "login".into(),
                window_start: start,
                refused: 7,
                identifiers: (0..MAX_REFUSED_IDENTIFIERS)
                    .map(|i| format!("lookup-{i}"))
                    .collect(),
            }
        );
        // A fact written before identifiers were kept reads as naming none.
        let old: ProtectionFact = serde_json::from_value(serde_json::json!({
            "ThrottleWindowClosed": {"source": "203.0.113.7", "route": "login",
                "window_start": start, "refused": 3}
        }))
        .unwrap();
        assert!(
            matches!(old, ProtectionFact::ThrottleWindowClosed { identifiers, .. } if identifiers.is_empty())
        );
        // Recording it changes no throttling decision.
        let mut p = p;
        p.apply(ProtectionEvent {
            at: closed,
            prev: ChainLink::default(),
            fact,
        });
        assert_eq!(p.throttled_until, None);
    }
}
