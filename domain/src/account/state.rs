//! The aggregate's state: only what decisions need, changed only by `apply`.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::chain::ChainLink;
use crate::contact::SealedContact;
use crate::context::RequestContext;
use crate::password::PasswordHash;
use crate::policy::SessionPolicy;

use super::events::{AccountEvent, AccountFact};

/// Lifecycle of an aggregate id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// No history yet.
    #[default]
    New,
    /// Stand-in for an identifier that matches no account: it only records failed attempts and
    /// locks exactly like a real account, so the two cannot be told apart from outside.
    Unregistered,
    /// A registered account.
    Active,
}

/// An active lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// End of the lock.
    pub until: DateTime<Utc>,
}

/// An open session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// SHA-256 (hex) of the token's secret part.
    pub token_hash: String,
    /// Sign-in time.
    pub started_at: DateTime<Utc>,
    /// Hard end.
    pub expires_at: DateTime<Utc>,
    /// End if unused.
    pub idle_expires_at: DateTime<Utc>,
    /// Where it was opened from.
    pub context: RequestContext,
}

impl Session {
    /// Whether the session is still usable at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at && now < self.idle_expires_at
    }

    /// The new idle expiry if use at `now` should extend this session under `policy`, `None`
    /// when it is too soon since the last extension or the absolute limit is already reached.
    /// The one rule for both the decision and the edge's "is a write needed" check.
    pub fn extension_at(
        &self,
        now: DateTime<Utc>,
        policy: &SessionPolicy,
    ) -> Option<DateTime<Utc>> {
        let last_extended = self.idle_expires_at - policy.idle;
        let target = (now + policy.idle).min(self.expires_at);
        (now - last_extended >= policy.extend_after && target > self.idle_expires_at)
            .then_some(target)
    }
}

/// Why a presented session token is refused (all map to one 401 on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRejection {
    /// Unknown, ended or expired session, or a token that does not match.
    Invalid,
}

/// The `Account` aggregate state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub(super) status: AccountStatus,
    pub(super) password_hash: Option<PasswordHash>,
    pub(super) consecutive_failures: u32,
    pub(super) lock_level: u32,
    pub(super) lock: Option<Lock>,
    pub(super) sessions: BTreeMap<Uuid, Session>,
    pub(super) chain: ChainLink,
    /// Sealed contacts, as registered (opaque here; only the edge holds the keys).
    #[serde(default)]
    pub(super) email: Option<SealedContact>,
    #[serde(default)]
    pub(super) phone: Option<SealedContact>,
}

impl Account {
    /// Lifecycle status.
    pub fn status(&self) -> AccountStatus {
        self.status
    }

    /// The lock in force at `now`, if any.
    pub fn lock_at(&self, now: DateTime<Utc>) -> Option<Lock> {
        self.lock.filter(|l| now < l.until)
    }

    /// Consecutive failures counted toward the next lock.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// The sealed email, if one was registered.
    pub fn email(&self) -> Option<&SealedContact> {
        self.email.as_ref()
    }

    /// The sealed phone, if one was registered.
    pub fn phone(&self) -> Option<&SealedContact> {
        self.phone.as_ref()
    }

    /// Head of this aggregate's hash chain.
    pub fn chain_head(&self) -> &ChainLink {
        &self.chain
    }

    /// Sessions usable at `now`, oldest first.
    pub fn live_sessions(&self, now: DateTime<Utc>) -> Vec<(Uuid, &Session)> {
        let mut live: Vec<(Uuid, &Session)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.is_live(now))
            .map(|(id, s)| (*id, s))
            .collect();
        live.sort_by_key(|(id, s)| (s.started_at, *id));
        live
    }

    /// Checks a presented session token (its id and the hash of its secret) at `now`.
    pub fn authenticate(
        &self,
        session_id: Uuid,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<&Session, SessionRejection> {
        let session = self
            .sessions
            .get(&session_id)
            .ok_or(SessionRejection::Invalid)?;
        let matches: bool = session
            .token_hash
            .as_bytes()
            .ct_eq(token_hash.as_bytes())
            .into();
        if matches && session.is_live(now) && self.status == AccountStatus::Active {
            Ok(session)
        } else {
            Err(SessionRejection::Invalid)
        }
    }

    /// Folds one event into the state. Total and infallible; no policy here.
    pub(super) fn fold(&mut self, event: &AccountEvent) {
        // Sessions that expired before this event are dropped, so state stays bounded. Using the
        // event's own time keeps replays deterministic.
        self.sessions.retain(|_, s| s.is_live(event.at));
        match &event.fact {
            AccountFact::AccountRegistered {
                password_hash,
                email,
                phone,
                ..
            } => {
                self.status = AccountStatus::Active;
                self.password_hash = Some(password_hash.clone());
                self.email = email.clone();
                self.phone = phone.clone();
            }
            AccountFact::DuplicateRegistrationAttempted { .. } => {}
            AccountFact::LoginSucceeded { .. } => {
                self.consecutive_failures = 0;
                self.lock_level = 0;
                self.lock = None;
            }
            AccountFact::LoginFailed {
                consecutive_failures,
                ..
            } => {
                if self.status == AccountStatus::New {
                    self.status = AccountStatus::Unregistered;
                }
                self.consecutive_failures = *consecutive_failures;
            }
            AccountFact::LoginRejectedWhileLocked { .. } => {}
            AccountFact::AccountLocked { until, level, .. } => {
                self.lock = Some(Lock { until: *until });
                self.lock_level = *level;
                // The count restarts once the lock ends; the level remembers repeated locks.
                self.consecutive_failures = 0;
            }
            AccountFact::PasswordRehashed { password_hash } => {
                self.password_hash = Some(password_hash.clone());
            }
            AccountFact::SessionStarted {
                session_id,
                token_hash,
                context,
                expires_at,
                idle_expires_at,
            } => {
                self.sessions.insert(
                    *session_id,
                    Session {
                        token_hash: token_hash.clone(),
                        started_at: event.at,
                        expires_at: *expires_at,
                        idle_expires_at: *idle_expires_at,
                        context: context.clone(),
                    },
                );
            }
            AccountFact::SessionExtended {
                session_id,
                idle_expires_at,
            } => {
                if let Some(s) = self.sessions.get_mut(session_id) {
                    s.idle_expires_at = *idle_expires_at;
                }
            }
            AccountFact::SessionEnded { session_id, .. } => {
                self.sessions.remove(session_id);
            }
        }
        if let Ok(value) = serde_json::to_value(event) {
            self.chain = self.chain.next(&value);
        }
    }
}
