//! Passkeys: discoverable WebAuthn credentials that verify their user (PIN, biometrics), which
//! sign in by themselves, standing for the password and the second factor together.
//!
//! The edge runs the WebAuthn ceremony (challenge, origin, RP id, signature, counter against the
//! stored credential) and reports what it found; the rules are here:
//! - registering one is a sensitive action (`AddPasskey`: the password and, when enrolled, a
//!   current factor), because a passkey is a way in that outlives a password change; it starts
//!   the factor-added cooldown and the owner is told on every verified channel;
//! - a sign-in needs the user-verification flag: presence alone (a touch) is not a factor;
//! - a counter that does not move forward is refused and recorded as a possible clone
//!   (`SecurityKeyCounterRegressed`, which the alerts watch, and `PasskeySignInFailed`);
//! - a refused passkey sign-in counts toward no lockout: a signature cannot be guessed, and
//!   counting would let strangers close doors;
//! - **what a lock means for a passkey.** Locks exist against guessing the password. A passkey
//!   sign-in guesses nothing, so no door's lock refuses it (a stranger's wrong passwords cannot
//!   keep the owner out), and it lifts or resets no lock either (`LoginSucceeded` with
//!   `method: passkey` leaves every door's count and lock as they are): the locked door stays
//!   closed to password sign-ins, the strangers' and the owner's alike, for its whole term. The
//!   session a passkey opens goes through its own device's door, as every session does, so its
//!   proofs (password and factor for the proof policy's rows) are judged there: the owner
//!   signed in by passkey can still change the password or freeze the account while strangers
//!   hammer the password door; a lock on that device's own door refuses those proofs as usual.
//!   A lock is not a freeze: a frozen account refuses a passkey sign-in like every other
//!   (`LoginRefusedWhileFrozen`, after the passkey proved itself), and freezing revokes every
//!   passkey, as it revokes API keys, so a thief's does not come back with the unfreeze;
//! - a password reset by code, a lost-factor recovery and a freeze revoke every passkey (they take an
//!   account back; a thief's passkey must not outlive that).
use chrono::{DateTime, Utc};

use crate::context::RequestContext;

use super::commands::{RegisterPasskey, SignInWithPasskey};
use super::error::AccountError;
use super::events::{AccountFact, CooldownReason, PasskeyFailureReason, SignInMethod};
use super::evidence::KeyCheck;
use super::proof::{Proof, Proved, SensitiveAction};
use super::services::AccountServices;
use super::state::{Account, SecurityKeyFactor};

/// Most passkeys per account.
pub const MAX_PASSKEYS: usize = 10;

impl Account {
    /// `RegisterPasskey`.
    pub(super) async fn register_passkey(
        &self,
        cmd: RegisterPasskey,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        // One credential, one role: a security key of this account is not also its passkey.
        if self.passkeys.contains_key(&cmd.key_id) || self.security_keys.contains_key(&cmd.key_id) {
            return Err(AccountError::PasskeyUnknown);
        }
        if self.passkeys.len() >= MAX_PASSKEYS {
            return Err(AccountError::TooManyPasskeys);
        }
        let mut facts = match self
            .prove(
                SensitiveAction::AddPasskey,
                &cmd.proof,
                cmd.at,
                &cmd.context,
                services,
            )
            .await?
        {
            Proved::Refused(refusal) => return Ok(refusal),
            Proved::Accepted(spent) => spent,
        };
        facts.push(AccountFact::PasskeyRegistered {
            key_id: cmd.key_id,
            name: cmd.name,
            credential: cmd.credential,
            context: cmd.context,
        });
        facts.extend(self.cooldown(CooldownReason::SecondFactorAdded, cmd.at, services));
        Ok(facts)
    }

    /// `RemovePasskey`.
    pub(super) async fn remove_passkey(
        &self,
        key_id: String,
        proof: &Proof,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        if !self.passkeys.contains_key(&key_id) {
            return Err(AccountError::PasskeyUnknown);
        }
        let mut facts = match self
            .prove(
                SensitiveAction::RemovePasskey,
                proof,
                at,
                &context,
                services,
            )
            .await?
        {
            Proved::Refused(refusal) => return Ok(refusal),
            Proved::Accepted(spent) => spent,
        };
        facts.push(AccountFact::PasskeyRemoved { key_id, context });
        Ok(facts)
    }

    /// `SignInWithPasskey`: a verified assertion with user verification opens a session through
    /// the same facts as a password sign-in (history, device token, notices, alerts), marked
    /// `method: passkey`. No lock refuses it and it resets none (see the module's notes).
    pub(super) fn sign_in_with_passkey(
        &self,
        cmd: SignInWithPasskey,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        let now = cmd.at;
        let failed = |reason: PasskeyFailureReason, context: RequestContext| {
            AccountFact::PasskeySignInFailed {
                key_id: cmd.key_id.clone(),
                reason,
                context,
            }
        };
        let Some(stored) = self.passkeys.get(&cmd.key_id) else {
            return Ok(vec![failed(
                PasskeyFailureReason::UnknownPasskey,
                cmd.context,
            )]);
        };
        let (counter, credential) = match &cmd.check {
            KeyCheck::Verified {
                counter,
                credential,
            } => (*counter, credential.clone()),
            KeyCheck::CounterRegressed => return Ok(self.passkey_regressed(&cmd)),
            KeyCheck::UserNotVerified => {
                return Ok(vec![failed(
                    PasskeyFailureReason::UserNotVerified,
                    cmd.context,
                )])
            }
            KeyCheck::Invalid => {
                return Ok(vec![failed(
                    PasskeyFailureReason::InvalidAssertion,
                    cmd.context,
                )])
            }
        };
        // The library compared with the counter it was given; a sign-in meanwhile may have
        // moved the stored one past this one. Zero: the authenticator keeps no counter.
        if counter != 0 && counter <= stored.counter {
            return Ok(self.passkey_regressed(&cmd));
        }
        // Presence alone (a touch) is not a factor: a passkey must verify its user.
        if !cmd.user_verified {
            return Ok(vec![failed(
                PasskeyFailureReason::UserNotVerified,
                cmd.context,
            )]);
        }
        if services.contacts.require_verified_for_sign_in && !self.has_verified_contact() {
            return Ok(vec![failed(
                PasskeyFailureReason::ContactUnverified,
                cmd.context,
            )]);
        }
        let door = self.door_for(cmd.device.as_ref(), now);
        // A freeze is not a lock: it refuses every sign-in, a passkey's too (the passkey proved
        // itself, so the caller may learn that, as a right password does).
        if self.is_frozen(now) {
            return Ok(vec![AccountFact::LoginRefusedWhileFrozen {
                context: cmd.context,
                door,
            }]);
        }
        let mut facts = vec![AccountFact::PasskeyUsed {
            key_id: cmd.key_id.clone(),
            counter,
            credential,
        }];
        let mut opened = self.open_session(cmd.grant, cmd.context, now, door, services);
        for fact in &mut opened {
            if let AccountFact::LoginSucceeded { method, .. } = fact {
                *method = SignInMethod::Passkey;
            }
        }
        facts.extend(opened);
        Ok(facts)
    }

    fn passkey_regressed(&self, cmd: &SignInWithPasskey) -> Vec<AccountFact> {
        vec![
            AccountFact::SecurityKeyCounterRegressed {
                key_id: cmd.key_id.clone(),
                context: cmd.context.clone(),
            },
            AccountFact::PasskeySignInFailed {
                key_id: cmd.key_id.clone(),
                reason: PasskeyFailureReason::CounterRegressed,
                context: cmd.context.clone(),
            },
        ]
    }

    /// Every passkey revoked (a password reset, a lost-factor recovery); nothing when none.
    pub(super) fn revoke_every_passkey(&self, context: &RequestContext) -> Vec<AccountFact> {
        if self.passkeys.is_empty() {
            return Vec::new();
        }
        vec![AccountFact::PasskeysRevoked {
            key_ids: self.passkeys.keys().cloned().collect(),
            context: context.clone(),
        }]
    }

    /// Passkey facts: the set of passkeys and their counters.
    pub(super) fn fold_passkeys(&mut self, fact: &AccountFact, at: DateTime<Utc>) {
        match fact {
            AccountFact::PasskeyRegistered {
                key_id,
                name,
                credential,
                ..
            } => {
                self.passkeys.insert(
                    key_id.clone(),
                    SecurityKeyFactor {
                        name: name.clone(),
                        credential: credential.clone(),
                        counter: 0,
                        registered_at: at,
                        last_used_at: None,
                    },
                );
            }
            AccountFact::PasskeyRemoved { key_id, .. } => {
                self.passkeys.remove(key_id);
            }
            AccountFact::PasskeyUsed {
                key_id,
                counter,
                credential,
            } => {
                if let Some(k) = self.passkeys.get_mut(key_id) {
                    k.counter = *counter;
                    k.credential = credential.clone();
                    k.last_used_at = Some(at);
                }
            }
            AccountFact::PasskeysRevoked { key_ids, .. } => {
                for key_id in key_ids {
                    self.passkeys.remove(key_id);
                }
            }
            AccountFact::PasskeySignInFailed { .. } => {}
            // Facts of other features: `fold` routes them elsewhere.
            _ => {}
        }
    }
}
