//! Staff members (analysts, auditors, reviewers, admins) and what they do.
//!
//! One `Staff` aggregate per member. Its events are the member's creation (name, roles, the
//! SHA-256 of the API token's secret, never the secret) and every action the member takes through
//! the admin API: what they looked at, and the alert status changes they made. The alerts read
//! model folds `AlertStatusChanged` from this stream, so an alert's status is a fact with an
//! author. Events carry the same hash-chain link as account events.
use chrono::{DateTime, Duration, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use uuid::Uuid;

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
        /// Id of the token issued with the member (absent in events written before tokens
        /// expired: such a token is listed without an id).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_id: Option<Uuid>,
        /// When that token stops working (absent in events written before tokens expired:
        /// such a token expires the configured token lifetime after the member's creation).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_expires_at: Option<DateTime<Utc>>,
    },
    /// A new token was issued to the member; every earlier token of theirs stopped working.
    StaffTokenIssued {
        /// The token's id (listed, never secret).
        token_id: Uuid,
        /// SHA-256 (hex) of the token's secret part.
        token_hash: String,
        /// When it stops working.
        expires_at: DateTime<Utc>,
        /// The admin who issued it; `None` from the command line.
        issued_by: Option<String>,
    },
    /// Every token of the member was revoked: none works until a new one is issued.
    StaffTokensRevoked {
        /// The token that was live, if any (`None` also for a token issued without an id).
        token_id: Option<Uuid>,
        /// The admin who revoked them; `None` from the command line.
        revoked_by: Option<String>,
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
            Self::StaffTokenIssued { .. } => "StaffTokenIssued",
            Self::StaffTokensRevoked { .. } => "StaffTokensRevoked",
            Self::StaffActionRecorded { .. } => "StaffActionRecorded",
            Self::AlertStatusChanged { .. } => "AlertStatusChanged",
        }
    }
}

impl StaffFact {
    /// The fields of this fact never published (the hash of a token's secret), decided per
    /// variant by an exhaustive match as for [`crate::AccountFact::secret_fields`].
    pub fn secret_fields(&self) -> &'static [&'static str] {
        match self {
            Self::StaffCreated { .. } | Self::StaffTokenIssued { .. } => &["token_hash"],
            Self::StaffTokensRevoked { .. }
            | Self::StaffActionRecorded { .. }
            | Self::AlertStatusChanged { .. } => &[],
        }
    }
}

impl StaffEvent {
    /// The event as JSON (its stored shape), with every [secret field](StaffFact::secret_fields)
    /// that holds a value replaced by [`crate::account::REDACTED`].
    pub fn redacted(&self) -> serde_json::Value {
        let Ok(mut value) = serde_json::to_value(self) else {
            return serde_json::Value::String(crate::account::REDACTED.into());
        };
        crate::account::redact_fact(&mut value, self.fact.secret_fields());
        value
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
        /// The token's id.
        token_id: Uuid,
        /// When the token stops working.
        token_expires_at: DateTime<Utc>,
        /// Creating admin.
        created_by: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Issues a new token, replacing the member's current one.
    IssueToken {
        /// The token's id.
        token_id: Uuid,
        /// SHA-256 (hex) of the token's secret.
        token_hash: String,
        /// When it stops working.
        expires_at: DateTime<Utc>,
        /// Issuing admin; `None` from the command line.
        issued_by: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Revokes every token of the member.
    RevokeTokens {
        /// Revoking admin; `None` from the command line.
        revoked_by: Option<String>,
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
    /// The current token. Deliberately without a serde default: a snapshot written before
    /// tokens expired does not deserialize, so it is ignored and the state is rebuilt from the
    /// events (which know when each token was issued).
    pub token: StaffToken,
    chain: ChainLink,
}

/// A member's current token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StaffToken {
    /// Its id (`None` for a token issued with a member created before tokens had ids).
    pub id: Option<Uuid>,
    /// SHA-256 (hex) of its secret; empty when there is none (revoked).
    pub hash: String,
    /// When it was issued.
    pub issued_at: Option<DateTime<Utc>>,
    /// When it stops working; `None` for a token from before tokens expired, which stops
    /// working the configured lifetime after it was issued.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Where a member's token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    /// It works until the given instant.
    Live(DateTime<Utc>),
    /// It stopped working at the given instant.
    Expired(DateTime<Utc>),
    /// It was revoked (or the member has none).
    Revoked,
}

impl Staff {
    /// Whether `token_hash` (hex) is this member's current token, compared in constant time, and
    /// still works at `now`. `lifetime` applies to a token issued before tokens carried their
    /// expiry (it expires that long after it was issued).
    pub fn token_valid(&self, token_hash: &str, now: DateTime<Utc>, lifetime: Duration) -> bool {
        let matches = self.exists
            && !self.token.hash.is_empty()
            && bool::from(self.token.hash.as_bytes().ct_eq(token_hash.as_bytes()));
        matches && matches!(self.token_status(now, lifetime), TokenStatus::Live(_))
    }

    /// When the current token stops working (`None` when there is none).
    pub fn token_expiry(&self, lifetime: Duration) -> Option<DateTime<Utc>> {
        if !self.exists || self.token.hash.is_empty() {
            return None;
        }
        self.token
            .expires_at
            .or_else(|| self.token.issued_at.map(|issued| issued + lifetime))
    }

    /// The current token's status at `now`.
    pub fn token_status(&self, now: DateTime<Utc>, lifetime: Duration) -> TokenStatus {
        match self.token_expiry(lifetime) {
            None => TokenStatus::Revoked,
            Some(until) if now < until => TokenStatus::Live(until),
            Some(until) => TokenStatus::Expired(until),
        }
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
                token_id,
                token_expires_at,
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
                    || name.chars().any(char::is_control)
                    || token_hash.len() != 64
                    || token_expires_at <= at
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
                        token_id: Some(token_id),
                        token_expires_at: Some(token_expires_at),
                    },
                ))
            }
            StaffCommand::IssueToken {
                token_id,
                token_hash,
                expires_at,
                issued_by,
                at,
            } => {
                if !self.exists {
                    return Err(StaffError::NotFound);
                }
                if token_hash.len() != 64 || expires_at <= at {
                    return Err(StaffError::Invalid);
                }
                Ok((
                    at,
                    StaffFact::StaffTokenIssued {
                        token_id,
                        token_hash,
                        expires_at,
                        issued_by,
                    },
                ))
            }
            StaffCommand::RevokeTokens { revoked_by, at } => {
                if !self.exists {
                    return Err(StaffError::NotFound);
                }
                let token_id = if self.token.hash.is_empty() {
                    None
                } else {
                    self.token.id
                };
                Ok((
                    at,
                    StaffFact::StaffTokensRevoked {
                        token_id,
                        revoked_by,
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
        match &event.fact {
            StaffFact::StaffCreated {
                name,
                roles,
                token_hash,
                token_id,
                token_expires_at,
                ..
            } => {
                self.exists = true;
                self.name = name.clone();
                self.roles = roles.clone();
                self.token = StaffToken {
                    id: *token_id,
                    hash: token_hash.clone(),
                    issued_at: Some(event.at),
                    expires_at: *token_expires_at,
                };
            }
            StaffFact::StaffTokenIssued {
                token_id,
                token_hash,
                expires_at,
                ..
            } => {
                self.token = StaffToken {
                    id: Some(*token_id),
                    hash: token_hash.clone(),
                    issued_at: Some(event.at),
                    expires_at: Some(*expires_at),
                };
            }
            StaffFact::StaffTokensRevoked { .. } => {
                self.token = StaffToken::default();
            }
            StaffFact::StaffActionRecorded { .. } | StaffFact::AlertStatusChanged { .. } => {}
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

    fn lifetime() -> Duration {
        Duration::days(30)
    }

    #[test]
    fn test_redacted_hides_token_hashes_and_keeps_the_rest() {
        let secret = "c".repeat(64);
        for fact in [
            StaffFact::StaffCreated {
                name: "ana".into(),
                roles: vec![StaffRole::Admin],
                token_hash: secret.clone(),
                created_by: None,
                token_id: Some(Uuid::from_u128(1)),
                token_expires_at: Some(at()),
            },
            StaffFact::StaffTokenIssued {
                token_id: Uuid::from_u128(2),
                token_hash: secret.clone(),
                expires_at: at(),
                issued_by: None,
            },
        ] {
            let shown = StaffEvent {
                at: at(),
                prev: Default::default(),
                fact,
            }
            .redacted();
            let text = shown.to_string();
            assert!(!text.contains(&secret), "{text}");
            assert!(text.contains(crate::account::REDACTED), "{text}");
            assert!(text.contains("token_id"), "{text}");
        }
        let note = StaffEvent {
            at: at(),
            prev: Default::default(),
            fact: StaffFact::AlertStatusChanged {
                alert_id: "a1".into(),
                status: AlertStatus::Resolved,
                note: "done".into(),
            },
        };
        assert_eq!(note.redacted(), serde_json::to_value(&note).unwrap());
    }

    fn given(history: Vec<(DateTime<Utc>, StaffFact)>) -> Staff {
        let mut s = Staff::default();
        for (at, fact) in history {
            s.fold(&StaffEvent {
                at,
                prev: ChainLink::default(),
                fact,
            });
        }
        s
    }

    fn create(token_hash: &str) -> StaffCommand {
        StaffCommand::CreateStaff {
            name: " alice ".into(),
            roles: vec![StaffRole::Admin, StaffRole::Analyst, StaffRole::Admin],
            token_hash: token_hash.into(),
            token_id: Uuid::from_u128(1),
            token_expires_at: at() + lifetime(),
            created_by: None,
            at: at(),
        }
    }

    fn created() -> Staff {
        let (at, fact) = Staff::default().decide(create(&"a".repeat(64))).unwrap();
        given(vec![(at, fact)])
    }

    /// A `StaffCreated` as written before tokens expired (no token id, no expiry).
    fn legacy_created() -> (DateTime<Utc>, StaffFact) {
        let fact: StaffFact = serde_json::from_value(serde_json::json!({"StaffCreated": {
            "name": "old", "roles": ["admin"], "token_hash": "a".repeat(64), "created_by": null
        }}))
        .unwrap();
        (at(), fact)
    }

    #[test]
    fn test_create_staff_normalises_and_refuses_twice() {
        let s = created();
        assert_eq!(s.name, "alice");
        assert_eq!(s.roles, vec![StaffRole::Analyst, StaffRole::Admin]);
        assert!(s.token_valid(&"a".repeat(64), at(), lifetime()));
        assert!(!s.token_valid(&"b".repeat(64), at(), lifetime()));
        let again = s.decide(create(&"c".repeat(64)));
        assert_eq!(again.unwrap_err(), StaffError::AlreadyExists);
    }

    #[test]
    fn test_staff_without_roles_or_with_control_characters_is_invalid() {
        let s = Staff::default();
        let mut bad = create(&"c".repeat(64));
        if let StaffCommand::CreateStaff { roles, .. } = &mut bad {
            roles.clear();
        }
        assert_eq!(s.decide(bad).unwrap_err(), StaffError::Invalid);
        let mut bad = create(&"c".repeat(64));
        if let StaffCommand::CreateStaff { name, .. } = &mut bad {
            *name = "eve\u{1b}]0;pwned\u{7}".into();
        }
        assert_eq!(s.decide(bad).unwrap_err(), StaffError::Invalid);
        let act = s.decide(StaffCommand::RecordAction {
            action: "alerts.list".into(),
            target: String::new(),
            ip: None,
            at: at(),
        });
        assert_eq!(act.unwrap_err(), StaffError::NotFound);
        assert!(!s.token_valid("", at(), lifetime()));
    }

    #[test]
    fn test_a_token_stops_working_when_it_expires() {
        // Given a member whose token was issued for 30 days, when it is presented a second
        // before and at the expiry, then it works and then it does not.
        let s = created();
        let end = at() + lifetime();
        assert!(s.token_valid(&"a".repeat(64), end - Duration::seconds(1), lifetime()));
        assert!(!s.token_valid(&"a".repeat(64), end, lifetime()));
        assert_eq!(s.token_status(end, lifetime()), TokenStatus::Expired(end));
    }

    #[test]
    fn test_a_token_from_before_expiry_expires_the_lifetime_after_creation() {
        // Given a member created before tokens carried an expiry, then the token expires the
        // configured lifetime after the creation.
        let s = given(vec![legacy_created()]);
        assert_eq!(s.token.id, None);
        assert_eq!(s.token_expiry(lifetime()), Some(at() + lifetime()));
        assert!(s.token_valid(&"a".repeat(64), at() + Duration::days(29), lifetime()));
        assert!(!s.token_valid(&"a".repeat(64), at() + Duration::days(30), lifetime()));
    }

    #[test]
    fn test_reissue_replaces_the_token() {
        // Given a member, when a new token is issued, then only the new one works, until its
        // own expiry.
        let s = created();
        let later = at() + Duration::days(40);
        let (when, fact) = s
            .decide(StaffCommand::IssueToken {
                token_id: Uuid::from_u128(2),
                token_hash: "b".repeat(64),
                expires_at: later + lifetime(),
                issued_by: Some("admin-1".into()),
                at: later,
            })
            .unwrap();
        assert_eq!(
            fact,
            StaffFact::StaffTokenIssued {
                token_id: Uuid::from_u128(2),
                token_hash: "b".repeat(64),
                expires_at: later + lifetime(),
                issued_by: Some("admin-1".into()),
            }
        );
        let s = given(vec![(at(), created_fact()), (when, fact)]);
        assert!(!s.token_valid(&"a".repeat(64), later, lifetime()));
        assert!(s.token_valid(&"b".repeat(64), later, lifetime()));
        assert_eq!(s.token.id, Some(Uuid::from_u128(2)));
    }

    fn created_fact() -> StaffFact {
        Staff::default().decide(create(&"a".repeat(64))).unwrap().1
    }

    #[test]
    fn test_revoke_ends_every_token_until_a_new_one_is_issued() {
        let s = created();
        let (when, fact) = s
            .decide(StaffCommand::RevokeTokens {
                revoked_by: None,
                at: at() + Duration::hours(1),
            })
            .unwrap();
        assert_eq!(
            fact,
            StaffFact::StaffTokensRevoked {
                token_id: Some(Uuid::from_u128(1)),
                revoked_by: None,
            }
        );
        let s = given(vec![(at(), created_fact()), (when, fact)]);
        assert!(!s.token_valid(&"a".repeat(64), when, lifetime()));
        assert_eq!(s.token_status(when, lifetime()), TokenStatus::Revoked);
        // Unknown members can be neither reissued nor revoked.
        let none = Staff::default().decide(StaffCommand::RevokeTokens {
            revoked_by: None,
            at: at(),
        });
        assert_eq!(none.unwrap_err(), StaffError::NotFound);
    }

    #[test]
    fn test_a_snapshot_from_before_token_expiry_is_not_trusted() {
        // Old snapshots knew only the hash: they must fail to load (the store then replays
        // the events), rather than yield a token of unknown age.
        let old = serde_json::json!({
            "exists": true, "name": "old", "roles": ["admin"], "token_hash": "a".repeat(64),
            "chain": crate::chain::GENESIS
        });
        assert!(serde_json::from_value::<Staff>(old).is_err());
        let current = serde_json::to_value(created()).unwrap();
        assert_eq!(serde_json::from_value::<Staff>(current).unwrap(), created());
    }

    #[test]
    fn test_staff_event_type_strings_are_frozen() {
        let facts = vec![
            legacy_created().1,
            created_fact(),
            StaffFact::StaffActionRecorded {
                action: "a".into(),
                target: "t".into(),
                ip: None,
            },
            StaffFact::AlertStatusChanged {
                alert_id: "x".into(),
                status: AlertStatus::Acknowledged,
                note: "n".into(),
            },
            StaffFact::StaffTokenIssued {
                token_id: Uuid::from_u128(2),
                token_hash: "b".repeat(64),
                expires_at: at(),
                issued_by: None,
            },
            StaffFact::StaffTokensRevoked {
                token_id: None,
                revoked_by: Some("admin".into()),
            },
        ];
        let names: Vec<&str> = facts.iter().map(StaffFact::name).collect();
        assert_eq!(
            names,
            vec![
                "StaffCreated",
                "StaffCreated",
                "StaffActionRecorded",
                "AlertStatusChanged",
                "StaffTokenIssued",
                "StaffTokensRevoked"
            ]
        );
        for fact in facts {
            let e = StaffEvent {
                at: at(),
                prev: ChainLink::default(),
                fact,
            };
            assert_eq!(e.event_version(), "1.0");
            let value = serde_json::to_value(&e).unwrap();
            assert!(value["fact"].get(e.event_type()).is_some(), "{value}");
            let back: StaffEvent = serde_json::from_value(value).unwrap();
            assert_eq!(back, e);
        }
        // A creation written before tokens expired keeps its exact shape.
        assert_eq!(
            serde_json::to_value(legacy_created().1).unwrap(),
            serde_json::json!({"StaffCreated": {
                "name": "old", "roles": ["admin"], "token_hash": "a".repeat(64), "created_by": null
            }})
        );
    }
}
