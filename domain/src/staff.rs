//! Staff members (analysts, auditors, reviewers, admins) and what they do.
//!
//! One `Staff` aggregate per member. Its events are the member's creation (name, roles, the
//! SHA-256 of the API token's secret, never the secret) and every action the member takes through
//! the admin API: what they looked at, and the alert status changes they made. The alerts read
//! model folds `AlertStatusChanged` from this stream, so an alert's status is a fact with an
//! author. Events carry the same hash-chain link as account events.
use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::chain::ChainLink;

/// Payload version of every `StaffEvent` written by this code.
pub const STAFF_EVENT_VERSION: &str = "1.0";

/// What a staff member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum StaffRole {
    /// Reads alerts and login history, acknowledges and resolves alerts.
    Analyst,
    /// Reads raw event timelines and login history.
    Auditor,
    /// Reviews recovery requests (no admin route yet).
    Reviewer,
    /// Creates staff; may use every admin route.
    Admin,
    /// The platform's own backend: verifies API keys and asks whether a withdrawal may go.
    Platform,
}

impl StaffRole {
    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Analyst => "analyst",
            Self::Auditor => "auditor",
            Self::Reviewer => "reviewer",
            Self::Admin => "admin",
            Self::Platform => "platform",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "analyst" => Some(Self::Analyst),
            "auditor" => Some(Self::Auditor),
            "reviewer" => Some(Self::Reviewer),
            "admin" => Some(Self::Admin),
            "platform" => Some(Self::Platform),
            _ => None,
        }
    }
}

/// Lifecycle of an alert as staff move it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Raised, nobody has looked yet.
    Open,
    /// Someone is on it.
    Acknowledged,
    /// Closed; new evidence opens a new alert.
    Resolved,
}

impl AlertStatus {
    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
        }
    }
}

/// The stored envelope of one staff fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffEvent {
    /// When it happened (stamped at the edge).
    pub at: DateTime<Utc>,
    /// Hash chain link to the previous event of this aggregate.
    pub prev: ChainLink,
    /// What happened.
    pub fact: StaffFact,
}

/// What a staff member did or had done to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StaffFact {
    /// The member was created.
    StaffCreated {
        /// Display name.
        name: String,
        /// Roles granted.
        roles: Vec<StaffRole>,
        /// SHA-256 (hex) of the API token's secret part.
        token_hash: String,
        /// The admin who created them; `None` when bootstrapped from the command line.
        created_by: Option<String>,
    },
    /// The member used an admin route: what they looked at or changed.
    StaffActionRecorded {
        /// Action name (`alerts.list`, `account.events`, `staff.create`, …).
        action: String,
        /// What it was about (an account id, an alert id, a query), never a secret.
        target: String,
        /// Client IP.
        ip: Option<String>,
    },
    /// The member moved an alert to a new status.
    AlertStatusChanged {
        /// The alert.
        alert_id: String,
        /// New status.
        status: AlertStatus,
        /// Why (free text, bounded).
        note: String,
    },
}

impl StaffFact {
    /// Stable type string.
    pub fn name(&self) -> &'static str {
        match self {
            Self::StaffCreated { .. } => "StaffCreated",
            Self::StaffActionRecorded { .. } => "StaffActionRecorded",
            Self::AlertStatusChanged { .. } => "AlertStatusChanged",
        }
    }
}

impl DomainEvent for StaffEvent {
    fn event_type(&self) -> String {
        self.fact.name().to_string()
    }

    fn event_version(&self) -> String {
        STAFF_EVENT_VERSION.to_string()
    }
}

/// Commands on a staff member.
#[derive(Debug, Clone)]
pub enum StaffCommand {
    /// Creates the member.
    CreateStaff {
        /// Display name.
        name: String,
        /// Roles.
        roles: Vec<StaffRole>,
        /// SHA-256 (hex) of the token's secret.
        token_hash: String,
        /// Creating admin.
        created_by: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Records a use of an admin route.
    RecordAction {
        /// Action name.
        action: String,
        /// Target.
        target: String,
        /// Client IP.
        ip: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Moves an alert.
    ChangeAlertStatus {
        /// Alert.
        alert_id: String,
        /// New status.
        status: AlertStatus,
        /// Note.
        note: String,
        /// When.
        at: DateTime<Utc>,
    },
}

/// Why a staff command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaffError {
    /// `CreateStaff` on an existing member.
    #[error("ST0001 staff member already exists")]
    AlreadyExists,
    /// Any other command on a member that does not exist.
    #[error("ST0002 no such staff member")]
    NotFound,
    /// No roles, or a name that is empty or too long.
    #[error("ST0003 invalid staff definition")]
    Invalid,
}

/// Longest name or note kept.
pub const MAX_STAFF_TEXT: usize = 500;

/// A staff member's state: what the token check and role checks need.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Staff {
    /// Created yet.
    pub exists: bool,
    /// Display name.
    pub name: String,
    /// Roles.
    pub roles: Vec<StaffRole>,
    /// SHA-256 (hex) of the token's secret.
    pub token_hash: String,
    chain: ChainLink,
}

impl Staff {
    /// Whether `token_hash` (hex) is this member's, compared in constant time.
    pub fn token_matches(&self, token_hash: &str) -> bool {
        self.exists
            && !self.token_hash.is_empty()
            && bool::from(self.token_hash.as_bytes().ct_eq(token_hash.as_bytes()))
    }

    /// Whether the member holds any of `roles`.
    pub fn has_any(&self, roles: &[StaffRole]) -> bool {
        self.roles.iter().any(|r| roles.contains(r))
    }

    /// The pure decision.
    pub fn decide(&self, command: StaffCommand) -> Result<(DateTime<Utc>, StaffFact), StaffError> {
        match command {
            StaffCommand::CreateStaff {
                name,
                roles,
                token_hash,
                created_by,
                at,
            } => {
                if self.exists {
                    return Err(StaffError::AlreadyExists);
                }
                let name = name.trim().to_string();
                if roles.is_empty()
                    || name.is_empty()
                    || name.chars().count() > MAX_STAFF_TEXT
                    || token_hash.len() != 64
                {
                    return Err(StaffError::Invalid);
                }
                let mut roles = roles;
                roles.sort();
                roles.dedup();
                Ok((
                    at,
                    StaffFact::StaffCreated {
                        name,
                        roles,
                        token_hash,
                        created_by,
                    },
                ))
            }
            StaffCommand::RecordAction {
                action,
                target,
                ip,
                at,
            } => {
                if !self.exists {
                    return Err(StaffError::NotFound);
                }
                Ok((
                    at,
                    StaffFact::StaffActionRecorded {
                        action,
                        target: bounded(&target),
                        ip,
                    },
                ))
            }
            StaffCommand::ChangeAlertStatus {
                alert_id,
                status,
                note,
                at,
            } => {
                if !self.exists {
                    return Err(StaffError::NotFound);
                }
                Ok((
                    at,
                    StaffFact::AlertStatusChanged {
                        alert_id,
                        status,
                        note: bounded(&note),
                    },
                ))
            }
        }
    }

    fn fold(&mut self, event: &StaffEvent) {
        if let StaffFact::StaffCreated {
            name,
            roles,
            token_hash,
            ..
        } = &event.fact
        {
            self.exists = true;
            self.name = name.clone();
            self.roles = roles.clone();
            self.token_hash = token_hash.clone();
        }
    }
}

fn bounded(s: &str) -> String {
    s.chars().take(MAX_STAFF_TEXT).collect()
}

crate::single_fact_aggregate!(Staff, "Staff", StaffCommand, StaffEvent, StaffError);

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn created() -> Staff {
        let mut s = Staff::default();
        let (at, fact) = s
            .decide(StaffCommand::CreateStaff {
                name: " alice ".into(),
                roles: vec![StaffRole::Admin, StaffRole::Analyst, StaffRole::Admin],
                token_hash: "a".repeat(64),
                created_by: None,
                at: at(),
            })
            .unwrap();
        s.fold(&StaffEvent {
            at,
            prev: ChainLink::default(),
            fact,
        });
        s
    }

    #[test]
    fn test_create_staff_normalises_and_refuses_twice() {
        let s = created();
        assert_eq!(s.name, "alice");
        assert_eq!(s.roles, vec![StaffRole::Analyst, StaffRole::Admin]);
        assert!(s.token_matches(&"a".repeat(64)));
        assert!(!s.token_matches(&"b".repeat(64)));
        let again = s.decide(StaffCommand::CreateStaff {
            name: "x".into(),
            roles: vec![StaffRole::Analyst],
            token_hash: "c".repeat(64),
            created_by: None,
            at: at(),
        });
        assert_eq!(again.unwrap_err(), StaffError::AlreadyExists);
    }

    #[test]
    fn test_staff_without_roles_is_invalid_and_unknown_staff_cannot_act() {
        let s = Staff::default();
        let bad = s.decide(StaffCommand::CreateStaff {
            name: "x".into(),
            roles: vec![],
            token_hash: "c".repeat(64),
            created_by: None,
            at: at(),
        });
        assert_eq!(bad.unwrap_err(), StaffError::Invalid);
        let act = s.decide(StaffCommand::RecordAction {
            action: "alerts.list".into(),
            target: String::new(),
            ip: None,
            at: at(),
        });
        assert_eq!(act.unwrap_err(), StaffError::NotFound);
        assert!(!s.token_matches(""));
    }

    #[test]
    fn test_staff_event_type_strings_are_frozen() {
        let e = StaffEvent {
            at: at(),
            prev: ChainLink::default(),
            fact: StaffFact::AlertStatusChanged {
                alert_id: "x".into(),
                status: AlertStatus::Acknowledged,
                note: "n".into(),
            },
        };
        assert_eq!(e.event_type(), "AlertStatusChanged");
        assert_eq!(e.event_version(), "1.0");
        let back: StaffEvent = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }
}
