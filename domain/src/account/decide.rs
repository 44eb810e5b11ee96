//! Business rules: from the current state and a command, the facts to record.
//!
//! A refused sign-in is not an error: it is recorded (`LoginFailed`, `LoginRejectedWhileLocked`),
//! because an `Err` would commit nothing and auditors need every attempt.
use chrono::{DateTime, Utc};

use crate::contact::ContactKind;
use crate::policy::codes::{Channel, FlowKind};

use super::commands::{AccountCommand, AttemptLogin, RegisterAccount};
use super::error::AccountError;
use super::events::{AccountFact, LoginFailureReason, SessionEndReason};
use super::second_factor::NewSecurityKey;
use super::services::AccountServices;
use super::state::{Account, AccountStatus};

impl Account {
    /// Decides the facts a command produces, with the time they happened.
    pub async fn decide(
        &self,
        command: AccountCommand,
        services: &AccountServices,
    ) -> Result<(DateTime<Utc>, Vec<AccountFact>), AccountError> {
        match command {
            AccountCommand::RegisterAccount(cmd) => {
                let at = cmd.at;
                Ok((at, self.register(cmd, services).await?))
            }
            AccountCommand::RecordDuplicateRegistration { at, context } => {
                self.require_active()?;
                Ok((
                    at,
                    vec![AccountFact::DuplicateRegistrationAttempted { context }],
                ))
            }
            AccountCommand::RecordIdentifierClaimAttempt { at, context } => {
                self.require_active()?;
                // Once a day at most: a stranger with an account must not flood the owner.
                let told_recently = self
                    .identifier_claim_noticed_at
                    .is_some_and(|last| at < last + chrono::Duration::days(1));
                Ok((
                    at,
                    if told_recently {
                        Vec::new()
                    } else {
                        vec![AccountFact::IdentifierClaimAttempted { context }]
                    },
                ))
            }
            AccountCommand::AttemptLogin(cmd) => {
                let at = cmd.at;
                Ok((at, self.attempt_login(cmd, services).await?))
            }
            AccountCommand::ReleaseUnverifiedContact {
                lookup,
                claimed_at,
                at,
                context,
            } => Ok((
                at,
                self.release_unverified_contact(&lookup, claimed_at, at, context, services)?,
            )),
            AccountCommand::ExtendSession { session_id, at } => {
                Ok((at, self.extend_session(session_id, at, services)?))
            }
            AccountCommand::EndSession {
                session_id,
                by_session,
                at,
                context,
            } => {
                self.require_active()?;
                if !self
                    .sessions
                    .get(&session_id)
                    .is_some_and(|s| s.is_live(at))
                {
                    return Err(AccountError::SessionNotFound);
                }
                let reason = if session_id == by_session {
                    SessionEndReason::LoggedOut
                } else {
                    SessionEndReason::Revoked { by_session }
                };
                Ok((
                    at,
                    vec![AccountFact::SessionEnded {
                        session_id,
                        reason,
                        context,
                    }],
                ))
            }
            AccountCommand::StartFlow(cmd) => {
                let at = cmd.at;
                Ok((at, self.start_flow(cmd, services)?))
            }
            AccountCommand::ResendCode {
                flow_id,
                channel,
                code,
                at,
                context,
            } => Ok((
                at,
                self.resend_code(flow_id, channel, code, at, context, services)?,
            )),
            AccountCommand::RedeemCode(cmd) => {
                let at = cmd.at;
                Ok((at, self.redeem_code(cmd, services).await?))
            }
            AccountCommand::ChangeContact(cmd) => {
                let at = cmd.at;
                Ok((at, self.change_contact(cmd, services).await?))
            }
            AccountCommand::StartTotpEnrolment {
                sealed_secret,
                at,
                context,
            } => Ok((at, self.start_totp_enrolment(sealed_secret, context)?)),
            AccountCommand::ConfirmTotpEnrolment {
                matched_step,
                backup_verifiers,
                proof,
                at,
                context,
            } => Ok((
                at,
                self.confirm_totp_enrolment(
                    matched_step,
                    backup_verifiers,
                    &proof,
                    at,
                    context,
                    services,
                )
                .await?,
            )),
            AccountCommand::CompleteMfa(cmd) => {
                let at = cmd.at;
                Ok((at, self.complete_mfa(cmd, services)?))
            }
            AccountCommand::RegenerateBackupCodes {
                proof,
                verifiers,
                at,
                context,
            } => Ok((
                at,
                self.regenerate_backup_codes(&proof, verifiers, at, context, services)
                    .await?,
            )),
            AccountCommand::RegisterSecurityKey {
                key_id,
                name,
                credential,
                proof,
                backup_verifiers,
                at,
                context,
            } => Ok((
                at,
                self.register_security_key(
                    NewSecurityKey {
                        key_id,
                        name,
                        credential,
                        backup_verifiers,
                    },
                    &proof,
                    at,
                    context,
                    services,
                )
                .await?,
            )),
            AccountCommand::RenameSecurityKey { key_id, name, at } => {
                Ok((at, self.rename_security_key(key_id, name)?))
            }
            AccountCommand::RemoveSecurityKey {
                key_id,
                proof,
                at,
                context,
            } => Ok((
                at,
                self.remove_security_key(key_id, &proof, at, context, services)
                    .await?,
            )),
            AccountCommand::RemoveSecondFactor { proof, at, context } => Ok((
                at,
                self.remove_second_factor(&proof, at, context, services)
                    .await?,
            )),
            AccountCommand::SubmitRecoveryEvidence {
                flow_id,
                sealed_evidence,
                at,
                context,
            } => Ok((
                at,
                self.submit_recovery_evidence(flow_id, sealed_evidence, context)?,
            )),
            AccountCommand::ReviewRecovery {
                flow_id,
                approve,
                reviewer,
                reason,
                at,
            } => Ok((
                at,
                self.review_recovery(flow_id, approve, reviewer, reason, at, services)?,
            )),
            AccountCommand::CancelRecovery { at, context } => {
                Ok((at, self.cancel_recovery(context)?))
            }
            AccountCommand::CompleteRecovery {
                flow_id,
                at,
                context,
            } => Ok((at, self.complete_recovery(flow_id, at, context, services)?)),
            AccountCommand::SetAntiPhishingPhrase {
                sealed_phrase,
                proof,
                at,
                context,
            } => Ok((
                at,
                self.set_anti_phishing_phrase(sealed_phrase, &proof, at, context, services)
                    .await?,
            )),
            AccountCommand::RecordNotificationOutcome { outcome, at } => {
                Ok((at, self.record_notification_outcome(outcome)?))
            }
            AccountCommand::StepUp {
                session_id,
                proof,
                at,
                context,
            } => Ok((
                at,
                self.step_up(session_id, &proof, at, context, services)
                    .await?,
            )),
            AccountCommand::ChangePassword(cmd) => {
                let at = cmd.at;
                Ok((at, self.change_password(cmd, services).await?))
            }
            AccountCommand::CreateApiKey {
                key,
                proof,
                at,
                context,
            } => Ok((
                at,
                self.create_api_key(key, &proof, at, context, services)
                    .await?,
            )),
            AccountCommand::RotateApiKey {
                key_id,
                verifier,
                grace,
                proof,
                at,
                context,
            } => Ok((
                at,
                self.rotate_api_key(key_id, verifier, grace, &proof, at, context, services)
                    .await?,
            )),
            AccountCommand::RevokeApiKeys {
                key_id,
                at,
                context,
            } => Ok((at, self.revoke_api_keys(key_id, context)?)),
            AccountCommand::ProposeWithdrawalAddress {
                address,
                at,
                context,
            } => Ok((
                at,
                self.propose_withdrawal_address(address, at, context, services)
                    .await?,
            )),
            AccountCommand::RemoveWithdrawalAddress {
                address_id,
                at,
                context,
            } => Ok((at, self.remove_withdrawal_address(address_id, context)?)),
            AccountCommand::SetWhitelistMode {
                enabled,
                proof,
                at,
                context,
            } => Ok((
                at,
                self.set_whitelist_mode(enabled, &proof, at, context, services)
                    .await?,
            )),
            AccountCommand::RevokeDevice {
                device_id,
                session_id,
                at,
                context,
            } => Ok((
                at,
                self.revoke_device(device_id, session_id, at, context, services)?,
            )),
            AccountCommand::EndOtherSessions { keep, at, context } => {
                self.require_active()?;
                let facts = self
                    .live_sessions(at)
                    .into_iter()
                    .filter(|(id, _)| *id != keep)
                    .map(|(session_id, _)| AccountFact::SessionEnded {
                        session_id,
                        reason: SessionEndReason::Revoked { by_session: keep },
                        context: context.clone(),
                    })
                    .collect();
                Ok((at, facts))
            }
        }
    }

    /// `RevokeDevice`: the proof of `ManageDevices`; the device's trust and its sessions end.
    fn revoke_device(
        &self,
        device_id: uuid::Uuid,
        session_id: uuid::Uuid,
        at: DateTime<Utc>,
        context: crate::context::RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        self.check_session_proof(
            super::proof::SensitiveAction::ManageDevices,
            Some(session_id),
            at,
            &services.sessions,
        )?;
        if !self
            .trusted_devices(at)
            .iter()
            .any(|(id, _)| *id == device_id)
        {
            return Err(AccountError::DeviceNotFound);
        }
        let mut facts = vec![AccountFact::DeviceRevoked {
            device_id,
            reason: super::events::DeviceRevokeReason::Owner,
            context: context.clone(),
        }];
        facts.extend(
            self.live_sessions(at)
                .into_iter()
                .filter(|(_, s)| s.device_id == Some(device_id))
                .map(|(id, _)| AccountFact::SessionEnded {
                    session_id: id,
                    reason: if id == session_id {
                        SessionEndReason::LoggedOut
                    } else {
                        SessionEndReason::Revoked {
                            by_session: session_id,
                        }
                    },
                    context: context.clone(),
                }),
        );
        Ok(facts)
    }

    pub(super) fn require_active(&self) -> Result<(), AccountError> {
        if self.status == AccountStatus::Active {
            Ok(())
        } else {
            Err(AccountError::NotRegistered)
        }
    }

    async fn register(
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

    async fn attempt_login(
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
    fn release_unverified_contact(
        &self,
        lookup: &str,
        claimed_at: DateTime<Utc>,
        at: DateTime<Utc>,
        context: crate::context::RequestContext,
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

    fn extend_session(
        &self,
        session_id: uuid::Uuid,
        now: DateTime<Utc>,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        let session = self
            .sessions
            .get(&session_id)
            .filter(|s| s.is_live(now))
            .ok_or(AccountError::SessionNotFound)?;
        Ok(session
            .extension_at(now, &services.sessions)
            .map(|idle_expires_at| AccountFact::SessionExtended {
                session_id,
                idle_expires_at,
            })
            .into_iter()
            .collect())
    }
}
