//! Second factors: TOTP enrolment, backup codes, the sign-in challenge, and removal.
//!
//! The aggregate never sees a TOTP secret in clear or a backup code: the edge unseals the secret,
//! reports which time step a code matched, and sends keyed verifiers of backup codes. The rules
//! are here: a step is accepted once, a backup code once, a challenge once and for 5 minutes,
//! wrong factors count toward the same lockout as wrong passwords, and removal is a high-risk
//! action (password and a current factor, refused during a cooldown, starting one).
use chrono::{DateTime, Duration, Utc};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::context::RequestContext;
use crate::policy::lockout::FailureOutcome;

use super::commands::{CompleteMfa, SessionGrant};
use super::error::AccountError;
use super::events::{AccountFact, CooldownReason, Door};
use super::evidence::{KeyCheck, MfaProof};
use super::proof::{Proof, Proved, SensitiveAction};
use super::services::AccountServices;
use super::state::Account;

/// How long a sign-in challenge waits for its second factor.
pub const MFA_CHALLENGE_TTL: Duration = Duration::minutes(5);

/// Most security keys per account.
pub const MAX_SECURITY_KEYS: usize = 10;

/// What a valid proof spends.
pub(super) struct Proven {
    method: &'static str,
    step: Option<u64>,
    backup_code: Option<u32>,
    /// A security key's new counter and credential.
    key_used: Option<(String, u32, serde_json::Value)>,
}

/// A security key to register, as checked at the edge.
pub(super) struct NewSecurityKey {
    pub(super) key_id: String,
    pub(super) name: String,
    pub(super) credential: serde_json::Value,
    pub(super) backup_verifiers: Vec<String>,
}

impl Account {
    /// The sign-in challenge issued instead of a session when a second factor is enrolled.
    pub(super) fn mfa_challenge(
        &self,
        challenge_id: Uuid,
        at: DateTime<Utc>,
        context: RequestContext,
        door: Door,
    ) -> AccountFact {
        let mut methods = Vec::with_capacity(3);
        if self.has_totp() {
            methods.push("totp".to_string());
        }
        if !self.security_keys.is_empty() {
            methods.push("security_key".to_string());
        }
        if self.backup_codes_left() > 0 {
            methods.push("backup_code".to_string());
        }
        AccountFact::MfaChallengeIssued {
            challenge_id,
            methods,
            expires_at: at + MFA_CHALLENGE_TTL,
            context,
            door,
        }
    }

    /// `StartTotpEnrolment`.
    pub(super) fn start_totp_enrolment(
        &self,
        sealed_secret: String,
        context: RequestContext,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        if self.has_totp() {
            return Err(AccountError::AlreadyEnrolled);
        }
        Ok(vec![AccountFact::TotpEnrolmentStarted {
            sealed_secret,
            context,
        }])
    }

    /// `ConfirmTotpEnrolment`: the first code, and the proof of `AddSecondFactor`. Backup
    /// codes come with the account's first factor only: an existing set is kept (a thief who
    /// adds a factor must not silently replace the owner's codes).
    pub(super) async fn confirm_totp_enrolment(
        &self,
        matched_step: Option<u64>,
        backup_verifiers: Vec<String>,
        proof: &Proof,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        match &self.totp {
            Some(t) if t.confirmed => return Err(AccountError::AlreadyEnrolled),
            None => return Err(AccountError::NoPendingEnrolment),
            Some(_) => {}
        }
        let step = matched_step.ok_or(AccountError::InvalidSecondFactor)?;
        let first_factor = !self.has_second_factor();
        let mut facts = match self
            .prove(
                SensitiveAction::AddSecondFactor,
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
        facts.push(AccountFact::TotpEnrolled {
            step,
            context: context.clone(),
        });
        if first_factor {
            facts.push(AccountFact::BackupCodesGenerated {
                verifiers: backup_verifiers,
                context,
            });
        }
        facts.extend(self.cooldown(CooldownReason::SecondFactorAdded, at, services));
        Ok(facts)
    }

    /// `CompleteMfa`: the second step of a sign-in.
    pub(super) fn complete_mfa(
        &self,
        cmd: CompleteMfa,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()
            .map_err(|_| AccountError::ChallengeInvalid)?;
        let now = cmd.at;
        let challenge = self
            .challenges
            .get(&cmd.challenge_id)
            .filter(|c| !c.used && now < c.expires_at)
            .ok_or(AccountError::ChallengeInvalid)?;
        // The factor step goes through the door of the password step (a device that was
        // revoked meanwhile leaves it on the untrusted door).
        let door = match challenge.door {
            Door::Device(id) if self.devices.contains_key(&id) => challenge.door,
            _ => Door::Untrusted,
        };
        if let Some(lock) = self.door_lock_at(door, now) {
            return Ok(vec![AccountFact::LoginRejectedWhileLocked {
                locked_until: lock.until,
                context: cmd.context,
                door,
            }]);
        }
        // Frozen after the password step: no session (the factor is not checked).
        if self.is_frozen(now) {
            return Ok(vec![AccountFact::LoginRefusedWhileFrozen {
                context: cmd.context,
                door,
            }]);
        }
        match self.check_proof(&cmd.proof) {
            None => Ok(self.proof_failed(
                Some(cmd.challenge_id),
                &cmd.proof,
                now,
                (cmd.context, door),
                services,
            )),
            Some(proven) => {
                let mut facts = self.verified(Some(cmd.challenge_id), proven, cmd.context.clone());
                facts.extend(self.open_session(cmd.grant, cmd.context, now, door, services));
                // Signing in does not step a session up: only an explicit `StepUp` does, so a
                // stolen session token is never already good for the sensitive changes.
                Ok(facts)
            }
        }
    }

    /// `RegenerateBackupCodes`.
    pub(super) async fn regenerate_backup_codes(
        &self,
        proof: &Proof,
        verifiers: Vec<String>,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        let mut facts = match self
            .prove(
                SensitiveAction::RegenerateBackupCodes,
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
        facts.push(AccountFact::BackupCodesGenerated { verifiers, context });
        Ok(facts)
    }

    /// `RemoveSecondFactor`.
    pub(super) async fn remove_second_factor(
        &self,
        proof: &Proof,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        if !self.has_second_factor() {
            return Err(AccountError::NoSecondFactor);
        }
        if let Some(until) = self.high_risk_until(at) {
            return Err(AccountError::HighRiskCooldown { until });
        }
        let mut facts = match self
            .prove(
                SensitiveAction::RemoveSecondFactor,
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
        facts.push(AccountFact::SecondFactorRemoved { context });
        facts.push(AccountFact::HighRiskCooldownStarted {
            until: at + services.cooldowns.after_password_reset,
            reason: CooldownReason::SecondFactorRemoved,
        });
        Ok(facts)
    }

    /// `RegisterSecurityKey`: the password again, then the key; the first second factor also
    /// brings backup codes.
    pub(super) async fn register_security_key(
        &self,
        key: NewSecurityKey,
        proof: &Proof,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        if self.security_keys.contains_key(&key.key_id) {
            return Err(AccountError::SecurityKeyUnknown);
        }
        if self.security_keys.len() >= MAX_SECURITY_KEYS {
            return Err(AccountError::TooManySecurityKeys);
        }
        let first_factor = !self.has_second_factor();
        let mut facts = match self
            .prove(
                SensitiveAction::AddSecondFactor,
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
        facts.push(AccountFact::SecurityKeyRegistered {
            key_id: key.key_id,
            name: key.name,
            credential: key.credential,
            context: context.clone(),
        });
        if first_factor {
            facts.push(AccountFact::BackupCodesGenerated {
                verifiers: key.backup_verifiers,
                context,
            });
        }
        facts.extend(self.cooldown(CooldownReason::SecondFactorAdded, at, services));
        Ok(facts)
    }

    /// `RenameSecurityKey`.
    pub(super) fn rename_security_key(
        &self,
        key_id: String,
        name: String,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        if !self.security_keys.contains_key(&key_id) {
            return Err(AccountError::SecurityKeyUnknown);
        }
        Ok(vec![AccountFact::SecurityKeyRenamed { key_id, name }])
    }

    /// `RemoveSecurityKey`: like removing every factor, for one key.
    pub(super) async fn remove_security_key(
        &self,
        key_id: String,
        proof: &Proof,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        if !self.security_keys.contains_key(&key_id) {
            return Err(AccountError::SecurityKeyUnknown);
        }
        if let Some(until) = self.high_risk_until(at) {
            return Err(AccountError::HighRiskCooldown { until });
        }
        let mut facts = match self
            .prove(
                SensitiveAction::RemoveSecondFactor,
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
        facts.push(AccountFact::SecurityKeyRemoved {
            key_id,
            context: context.clone(),
        });
        // The last factor gone: two-step sign-in is off, backup codes included.
        if self.security_keys.len() == 1 && !self.has_totp() {
            facts.push(AccountFact::SecondFactorRemoved { context });
        }
        facts.push(AccountFact::HighRiskCooldownStarted {
            until: at + services.cooldowns.after_password_reset,
            reason: CooldownReason::SecondFactorRemoved,
        });
        Ok(facts)
    }

    /// The facts of a proven factor: the verification, and a security key's new counter.
    pub(super) fn verified(
        &self,
        challenge_id: Option<Uuid>,
        proven: Proven,
        context: RequestContext,
    ) -> Vec<AccountFact> {
        let mut facts = vec![AccountFact::SecondFactorVerified {
            challenge_id,
            method: proven.method.to_string(),
            step: proven.step,
            backup_code: proven.backup_code,
            context,
        }];
        if let Some((key_id, counter, credential)) = proven.key_used {
            facts.push(AccountFact::SecurityKeyUsed {
                key_id,
                counter,
                credential,
            });
        }
        facts
    }

    /// A refused proof: a counter regression is recorded as such, then the failure counts.
    pub(super) fn proof_failed(
        &self,
        challenge_id: Option<Uuid>,
        proof: &MfaProof,
        at: DateTime<Utc>,
        (context, door): (RequestContext, Door),
        services: &AccountServices,
    ) -> Vec<AccountFact> {
        let mut facts = Vec::with_capacity(3);
        if let MfaProof::SecurityKey { key_id, check } = proof {
            // The library compares with the counter it saw when the challenge was made; a
            // signature made meanwhile may have moved the stored one past this one.
            let regressed = match (check, self.security_keys.get(key_id)) {
                (KeyCheck::CounterRegressed, Some(_)) => true,
                (KeyCheck::Verified { counter, .. }, Some(key)) => {
                    *counter != 0 && *counter <= key.counter
                }
                _ => false,
            };
            if regressed {
                facts.push(AccountFact::SecurityKeyCounterRegressed {
                    key_id: key_id.clone(),
                    context: context.clone(),
                });
            }
        }
        facts.extend(self.second_factor_failed(
            challenge_id,
            proof.method(),
            at,
            (context, door),
            services,
        ));
        facts
    }

    /// Whether a proof is good now: a TOTP step later than the last one accepted, or an unused
    /// backup code.
    pub(super) fn check_proof(&self, proof: &MfaProof) -> Option<Proven> {
        match proof {
            MfaProof::Totp { matched_step } => {
                let totp = self.totp.as_ref().filter(|t| t.confirmed)?;
                let step = matched_step.filter(|s| *s > totp.last_step)?;
                Some(Proven {
                    method: "totp",
                    step: Some(step),
                    backup_code: None,
                    key_used: None,
                })
            }
            MfaProof::BackupCode { verifier } => {
                let mut found = None;
                // Compare with every code, so timing does not tell which one matched.
                for (i, code) in self.backup_codes.iter().enumerate() {
                    let same: bool = code.verifier.as_bytes().ct_eq(verifier.as_bytes()).into();
                    if same && !code.used && found.is_none() {
                        found = Some(i as u32);
                    }
                }
                found.map(|i| Proven {
                    method: "backup_code",
                    step: None,
                    backup_code: Some(i),
                    key_used: None,
                })
            }
            MfaProof::SecurityKey {
                key_id,
                check:
                    KeyCheck::Verified {
                        counter,
                        credential,
                    },
            } => {
                let key = self.security_keys.get(key_id)?;
                // The library compared with the stored counter already; a zero counter means
                // the key keeps none.
                if *counter != 0 && *counter <= key.counter {
                    return None;
                }
                Some(Proven {
                    method: "security_key",
                    step: None,
                    backup_code: None,
                    key_used: Some((key_id.clone(), *counter, credential.clone())),
                })
            }
            MfaProof::SecurityKey { .. } => None,
        }
    }

    /// A wrong second factor: counted toward the lockout like a wrong password.
    fn second_factor_failed(
        &self,
        challenge_id: Option<Uuid>,
        method: &str,
        at: DateTime<Utc>,
        (context, door): (RequestContext, Door),
        services: &AccountServices,
    ) -> Vec<AccountFact> {
        self.count_failure(at, services, door, |consecutive_failures| {
            AccountFact::SecondFactorFailed {
                challenge_id,
                method: method.to_string(),
                consecutive_failures,
                context,
                door,
            }
        })
    }

    /// A failed sign-in step (password or second factor) through `door`: the failure fact built
    /// by `failed` with the count that door's lockout policy decides, and the door's lock when
    /// its threshold is reached. Other doors are untouched.
    pub(super) fn count_failure(
        &self,
        at: DateTime<Utc>,
        services: &AccountServices,
        door: Door,
        failed: impl FnOnce(u32) -> AccountFact,
    ) -> Vec<AccountFact> {
        let policy = match door {
            Door::Untrusted => &services.lockout,
            Door::Device(_) => &services.devices.lockout,
        };
        let (failures, level, _) = self.door_state(door);
        let outcome = policy.after_failure(failures, level, at);
        let consecutive = match &outcome {
            FailureOutcome::Counted { consecutive } | FailureOutcome::Lock { consecutive, .. } => {
                *consecutive
            }
        };
        let mut facts = vec![failed(consecutive)];
        if let FailureOutcome::Lock {
            consecutive,
            level,
            until,
        } = outcome
        {
            facts.push(AccountFact::AccountLocked {
                until,
                level,
                failed_attempts: consecutive,
                door,
            });
        }
        facts
    }

    /// The facts of a completed sign-in through `door`: evictions beyond the session cap, the
    /// success, the new session, and the device trusted (a trusted device keeps its id and gets
    /// a renewed token; any other sign-in trusts a new device).
    pub(super) fn open_session(
        &self,
        grant: SessionGrant,
        context: RequestContext,
        now: DateTime<Utc>,
        door: Door,
        services: &AccountServices,
    ) -> Vec<AccountFact> {
        let policy = &services.sessions;
        let mut facts = Vec::with_capacity(3);
        let live = self.live_sessions(now);
        let excess = (live.len() + 1).saturating_sub(policy.max_active.max(1));
        for (session_id, _) in live.into_iter().take(excess) {
            facts.push(AccountFact::SessionEnded {
                session_id,
                reason: super::events::SessionEndReason::Evicted,
                context: context.clone(),
            });
        }
        facts.push(AccountFact::LoginSucceeded {
            session_id: grant.session_id,
            familiar: self.familiar_place(&context, door),
            context: context.clone(),
            door,
        });
        let device_id = door.device_id().unwrap_or(grant.device.device_id);
        let expires_at = now + policy.absolute;
        facts.push(AccountFact::DeviceTrusted {
            device_id,
            token_hash: grant.device.token_hash,
            expires_at: now + services.devices.ttl,
            context: context.clone(),
        });
        facts.push(AccountFact::SessionStarted {
            session_id: grant.session_id,
            token_hash: grant.token_hash,
            context,
            expires_at,
            idle_expires_at: (now + policy.idle).min(expires_at),
            device_id: Some(device_id),
        });
        facts
    }
}
