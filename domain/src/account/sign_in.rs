//! Deciding sign-up and password sign-in: registration, the answers to a taken identifier, a
//! sign-in through its door (lock, password, verified contact, second factor, rehash), and the
//! release of a contact that was never verified.
//!
//! A refused sign-in is not an error: it is recorded (`LoginFailed`, `LoginRejectedWhileLocked`),
//! because an `Err` would commit nothing and auditors need every attempt.
use chrono::{DateTime, Utc};

use crate::contact::ContactKind;
use crate::context::RequestContext;
use crate::policy::codes::{Channel, FlowKind};

use super::commands::{AttemptLogin, RegisterAccount};
use super::error::AccountError;
use super::events::{AccountFact, LoginFailureReason};
use super::services::AccountServices;
use super::state::{Account, AccountStatus};

impl Account {
    /// `RecordDuplicateRegistration`: someone signed up with this account's identifier.
    pub(super) fn record_duplicate_registration(
        &self,
        context: RequestContext,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        Ok(vec![AccountFact::DuplicateRegistrationAttempted {
            context,
        }])
    }

    /// `RecordIdentifierClaimAttempt`: once a day at most, so a stranger with an account must
    /// not flood the owner.
    pub(super) fn record_identifier_claim_attempt(
        &self,
        at: DateTime<Utc>,
        context: RequestContext,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        let told_recently = self
            .identifier_claim_noticed_at
            .is_some_and(|last| at < last + chrono::Duration::days(1));
        Ok(if told_recently {
            Vec::new()
        } else {
            vec![AccountFact::IdentifierClaimAttempted { context }]
        })
    }

    pub(super) async fn register(
        &self,
        cmd: RegisterAccount,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        if self.status != AccountStatus::New {
            return Err(AccountError::AlreadyRegistered);
        }
        if cmd.email.is_none() && cmd.phone.is_none() {
            return Err(AccountError::NoIdentifier);
        }
        let password_hash = services.hasher.hash(cmd.password.secret()).await?;
        let mut facts = vec![AccountFact::AccountRegistered {
            email: cmd.email.clone(),
            phone: cmd.phone.clone(),
            password_hash,
            context: cmd.context.clone(),
        }];
        // Every contact starts unverified, with a code on its way.
        for (kind, grant) in cmd.verifications {
            let present = match kind {
                ContactKind::Email => cmd.email.is_some(),
                ContactKind::Phone => cmd.phone.is_some(),
            };
            if !present {
                continue;
            }
            facts.push(AccountFact::FlowStarted {
                flow_id: grant.flow_id,
                kind: FlowKind::verify(kind),
                context: cmd.context.clone(),
            });
            let withheld = match (kind, &cmd.sms_withheld) {
                (ContactKind::Phone, Some(scope)) => Some(scope.clone()),
                _ => None,
            };
            facts.push(AccountFact::CodeIssued {
                flow_id: grant.flow_id,
                code_id: grant.code.code_id,
                channel: Channel::for_contact(kind),
                verifier: grant.code.verifier,
                expires_at: cmd.at + services.codes.ttl,
                deliverable: withheld.is_none(),
                context: cmd.context.clone(),
                requester: Some(self.requester(super::events::Door::Untrusted, &cmd.context)),
            });
            if let Some(scope) = withheld {
                facts.push(AccountFact::SmsWithheld {
                    flow_id: Some(grant.flow_id),
                    scope,
                });
            }
        }
        Ok(facts)
    }

    pub(super) async fn attempt_login(
        &self,
        cmd: AttemptLogin,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        let now = cmd.at;
        if let Some(lookup) = &cmd.lookup {
            if self.status == AccountStatus::Active && !self.holds_lookup(lookup) {
                return Err(AccountError::IdentifierMoved);
            }
        }
        // Two doors: a valid device token goes through its device's own door, anything else
        // through the untrusted one. A lock refuses without checking the password (no guess is
        // evaluated while locked), and only the door it closes.
        let door = self.door_for(cmd.device.as_ref(), now);
        if let Some(lock) = self.door_lock_at(door, now) {
            return Ok(vec![AccountFact::LoginRejectedWhileLocked {
                locked_until: lock.until,
                context: cmd.context,
                door,
            }]);
        }
        let (verified, reason) = match (&self.status, &self.password_hash) {
            (AccountStatus::Active, Some(hash)) => (
                services.hasher.verify(&cmd.password, Some(hash)).await,
                LoginFailureReason::WrongPassword,
            ),
            // Unknown identifier: the same work (a dummy verification), always false.
            _ => {
                let _ = services.hasher.verify(&cmd.password, None).await;
                (false, LoginFailureReason::UnknownIdentifier)
            }
        };
        // A right password on an account that never verified a contact is refused like a wrong
        // one, after the same hash work, and counted like one: were it not counted, repeated
        // sign-ins would tell an unverified account of one's own (never locks) from someone
        // else's account reached through the sign-up decoy (locks).
        let reason = if verified
            && services.contacts.require_verified_for_sign_in
            && !self.has_verified_contact()
        {
            LoginFailureReason::ContactUnverified
        } else {
            reason
        };
        if !verified || reason == LoginFailureReason::ContactUnverified {
            let context = cmd.context;
            return Ok(
                self.count_failure(now, services, door, |consecutive_failures| {
                    AccountFact::LoginFailed {
                        reason,
                        consecutive_failures,
                        context,
                        door,
                    }
                }),
            );
        }
        // Frozen: the right password learns only that, and what to do (a wrong one was answered
        // above like any wrong password, so freezing tells a stranger nothing).
        if self.is_frozen(now) {
            return Ok(vec![AccountFact::LoginRefusedWhileFrozen {
                context: cmd.context,
                door,
            }]);
        }
        let rehash = match &self.password_hash {
            Some(hash) if services.hasher.needs_rehash(hash) => {
                Some(AccountFact::PasswordRehashed {
                    password_hash: services.hasher.hash(&cmd.password).await?,
                })
            }
            _ => None,
        };
        if self.has_second_factor() {
            // The password was right; the session waits for the second factor. The challenge
            // takes the id drawn for the session (a new one is drawn for the session itself).
            let mut facts: Vec<AccountFact> = rehash.into_iter().collect();
            facts.push(self.mfa_challenge(cmd.grant.session_id, now, cmd.context, door));
            return Ok(facts);
        }
        let mut facts = self.open_session(cmd.grant, cmd.context, now, door, services);
        if let Some(rehash) = rehash {
            // Before the session starts, as recorded since the first version.
            let at = facts
                .iter()
                .position(|f| matches!(f, AccountFact::SessionStarted { .. }))
                .unwrap_or(facts.len());
            facts.insert(at, rehash);
        }
        Ok(facts)
    }

    /// `ReleaseUnverifiedContact`: only an unverified contact of this account, claimed at least
    /// the policy's time ago, is given up.
    pub(super) fn release_unverified_contact(
        &self,
        lookup: &str,
        claimed_at: DateTime<Utc>,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        match self.contact_by_lookup(lookup) {
            Some((kind, false)) if at - claimed_at >= services.contacts.unverified_claim_ttl => {
                Ok(vec![AccountFact::UnverifiedContactReleased {
                    kind,
                    claimed_at,
                    context,
                }])
            }
            _ => Err(AccountError::ContactNotReleasable),
        }
    }
}
