//! Facts recorded on an account. Past tense, immutable, versioned: the type strings and payload
//! shapes below are a frozen contract (tested in `tests`), changed only through upcasters.
use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::chain::ChainLink;
use crate::contact::{ContactKind, SealedContact};
use crate::context::RequestContext;
use crate::password::PasswordHash;

/// Payload version of every `AccountEvent` written by this code.
pub const EVENT_VERSION: &str = "1.0";

/// The stored envelope of one fact: when it happened and the link to its predecessor, so that
/// every event is timestamped and tamper-evident whatever its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountEvent {
    /// When the fact happened (the command's time, stamped at the edge).
    pub at: DateTime<Utc>,
    /// Hash chain link to the previous event of this aggregate (see [`crate::chain`]).
    pub prev: ChainLink,
    /// What happened.
    pub fact: AccountFact,
}

/// What happened to an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountFact {
    /// An account was opened.
    AccountRegistered {
        /// Sealed email.
        email: Option<SealedContact>,
        /// Sealed phone.
        phone: Option<SealedContact>,
        /// Argon2id PHC string.
        password_hash: PasswordHash,
        /// Request context.
        context: RequestContext,
    },
    /// Someone tried to sign up with an identifier this account holds (the caller saw the same
    /// answer as a fresh sign-up).
    DuplicateRegistrationAttempted {
        /// Request context.
        context: RequestContext,
    },
    /// A password sign-in succeeded and opened `session_id`.
    LoginSucceeded {
        /// The session opened.
        session_id: Uuid,
        /// Request context.
        context: RequestContext,
    },
    /// A sign-in failed after the password was checked.
    LoginFailed {
        /// Why.
        reason: LoginFailureReason,
        /// Consecutive failures including this one (the policy's count at decision time).
        consecutive_failures: u32,
        /// Request context.
        context: RequestContext,
    },
    /// A sign-in was refused without checking the password, because of a lock.
    LoginRejectedWhileLocked {
        /// The lock's end.
        locked_until: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// The account was locked after too many failures.
    AccountLocked {
        /// End of the lock.
        until: DateTime<Utc>,
        /// Ordinal of this lock since the last successful sign-in (1 for the first).
        level: u32,
        /// Consecutive failures that triggered it.
        failed_attempts: u32,
    },
    /// The password verifier was re-made at current hashing parameters.
    PasswordRehashed {
        /// New argon2id PHC string.
        password_hash: PasswordHash,
    },
    /// A session was opened.
    SessionStarted {
        /// Random session id.
        session_id: Uuid,
        /// SHA-256 (hex) of the token's secret part.
        token_hash: String,
        /// Where the session was opened from (IP, user agent, device id).
        context: RequestContext,
        /// Hard end of the session.
        expires_at: DateTime<Utc>,
        /// End of the session if it is not used again.
        idle_expires_at: DateTime<Utc>,
    },
    /// Use pushed back a session's idle expiry.
    SessionExtended {
        /// The session.
        session_id: Uuid,
        /// New idle expiry.
        idle_expires_at: DateTime<Utc>,
    },
    /// A session ended before expiring.
    SessionEnded {
        /// The session.
        session_id: Uuid,
        /// Why.
        reason: SessionEndReason,
        /// Who asked, from where (for an eviction: the sign-in that caused it).
        context: RequestContext,
    },
}

/// Why a checked sign-in failed. Stored in events; the wire always says `invalid_credentials`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginFailureReason {
    /// The password did not match.
    WrongPassword,
    /// The identifier matches no account (recorded on its stand-in aggregate).
    UnknownIdentifier,
}

/// Why a session ended early.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEndReason {
    /// Its holder logged out.
    LoggedOut,
    /// Another session of the same account revoked it.
    Revoked {
        /// The revoking session.
        by_session: Uuid,
    },
    /// Too many sessions were open; the oldest was closed.
    Evicted,
}

impl AccountFact {
    /// The stable type string of this fact.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AccountRegistered { .. } => "AccountRegistered",
            Self::DuplicateRegistrationAttempted { .. } => "DuplicateRegistrationAttempted",
            Self::LoginSucceeded { .. } => "LoginSucceeded",
            Self::LoginFailed { .. } => "LoginFailed",
            Self::LoginRejectedWhileLocked { .. } => "LoginRejectedWhileLocked",
            Self::AccountLocked { .. } => "AccountLocked",
            Self::PasswordRehashed { .. } => "PasswordRehashed",
            Self::SessionStarted { .. } => "SessionStarted",
            Self::SessionExtended { .. } => "SessionExtended",
            Self::SessionEnded { .. } => "SessionEnded",
        }
    }
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        self.fact.name().to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}

/// Contact kind of a registration, for read models that must not unseal.
impl AccountFact {
    /// Which identifier kinds an `AccountRegistered` carries.
    pub fn registered_kinds(&self) -> Vec<ContactKind> {
        match self {
            Self::AccountRegistered { email, phone, .. } => {
                let mut kinds = Vec::new();
                if email.is_some() {
                    kinds.push(ContactKind::Email);
                }
                if phone.is_some() {
                    kinds.push(ContactKind::Phone);
                }
                kinds
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }

    fn sid() -> Uuid {
        Uuid::from_u128(7)
    }

    fn every_fact() -> Vec<AccountFact> {
        let ctx = RequestContext::new(Some("203.0.113.9".into()), Some("ua".into()), None);
        vec![
            AccountFact::AccountRegistered {
                email: Some(SealedContact {
                    sealed: "c".into(),
                    lookup: "l".into(),
                }),
                phone: None,
                password_hash: PasswordHash("$argon2id$x".into()),
                context: ctx.clone(),
            },
            AccountFact::DuplicateRegistrationAttempted {
                context: ctx.clone(),
            },
            AccountFact::LoginSucceeded {
                session_id: sid(),
                context: ctx.clone(),
            },
            AccountFact::LoginFailed {
                reason: LoginFailureReason::WrongPassword,
                consecutive_failures: 2,
                context: ctx.clone(),
            },
            AccountFact::LoginRejectedWhileLocked {
                locked_until: at(),
                context: ctx,
            },
            AccountFact::AccountLocked {
                until: at(),
                level: 1,
                failed_attempts: 5,
            },
            AccountFact::PasswordRehashed {
                password_hash: PasswordHash("$argon2id$y".into()),
            },
            AccountFact::SessionStarted {
                session_id: sid(),
                token_hash: "h".into(),
                context: RequestContext::new(None, None, Some("d".into())),
                expires_at: at(),
                idle_expires_at: at(),
            },
            AccountFact::SessionExtended {
                session_id: sid(),
                idle_expires_at: at(),
            },
            AccountFact::SessionEnded {
                session_id: sid(),
                reason: SessionEndReason::Evicted,
                context: Default::default(),
            },
        ]
    }

    #[test]
    fn test_event_types_and_versions_are_frozen() {
        let names: Vec<&str> = every_fact().iter().map(AccountFact::name).collect();
        assert_eq!(
            names,
            vec![
                "AccountRegistered",
                "DuplicateRegistrationAttempted",
                "LoginSucceeded",
                "LoginFailed",
                "LoginRejectedWhileLocked",
                "AccountLocked",
                "PasswordRehashed",
                "SessionStarted",
                "SessionExtended",
                "SessionEnded",
            ]
        );
        for fact in every_fact() {
            let event = AccountEvent {
                at: at(),
                prev: ChainLink::default(),
                fact,
            };
            assert_eq!(event.event_version(), "1.0");
            let value = serde_json::to_value(&event).unwrap();
            // The serialized tag equals the event type string.
            assert!(value["fact"].get(event.event_type()).is_some(), "{value}");
            let back: AccountEvent = serde_json::from_value(value).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn test_event_payload_shape_is_stable() {
        let event = AccountEvent {
            at: at(),
            prev: ChainLink::default(),
            fact: AccountFact::LoginFailed {
                reason: LoginFailureReason::UnknownIdentifier,
                consecutive_failures: 3,
                context: RequestContext::new(Some("198.51.100.1".into()), None, Some("dev".into())),
            },
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({
                "at": "2026-01-02T03:04:05Z",
                "prev": crate::chain::GENESIS,
                "fact": {"LoginFailed": {
                    "reason": "unknown_identifier",
                    "consecutive_failures": 3,
                    "context": {"ip": "198.51.100.1", "user_agent": null, "device_id": "dev"}
                }}
            })
        );
    }
}
