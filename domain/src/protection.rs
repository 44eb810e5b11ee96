//! Protection decisions taken because of alerts, recorded as facts: one `Protection` aggregate
//! per flagged subject (`protection:ip:203.0.113.7`, `protection:net:203.0.113.0/24`).
//!
//! Today's only decision: sign-ins from an IP or network flagged for credential stuffing are
//! throttled harder until a time. The aggregate refuses a second decision while one is in force,
//! so several API processes record it once.
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
}

impl DomainEvent for ProtectionEvent {
    fn event_type(&self) -> String {
        match self.fact {
            ProtectionFact::NetworkThrottled { .. } => "NetworkThrottled".to_string(),
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
}

/// Why a protection command changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtectionError {
    /// A decision is already in force.
    #[error("PR0001 already throttled")]
    AlreadyThrottled,
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
        }
    }
}

impl Protection {
    fn fold(&mut self, event: &ProtectionEvent) {
        let ProtectionFact::NetworkThrottled { until, .. } = &event.fact;
        self.throttled_until = Some(*until);
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
}
