//! Business rules: from the current state and a command, the facts to record. `decide` only
//! routes: each command goes to the method of its feature, which returns the facts (sign-up and
//! sign-in in `sign_in`; sessions and devices in `sessions`; flows, codes, contacts and passwords
//! in `recovery`; the lost-factor case in `lost_factor`; second factors in `second_factor`;
//! controls in `controls`).
use chrono::{DateTime, Utc};

use super::commands::AccountCommand;
use super::error::AccountError;
use super::events::AccountFact;
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
        use AccountCommand as C;
        let s = services;
        Ok(match command {
            // Sign-up and sign-in.
            C::RegisterAccount(cmd) => (cmd.at, self.register(cmd, s).await?),
            C::RecordDuplicateRegistration { at, context } => {
                (at, self.record_duplicate_registration(context)?)
            }
            C::RecordIdentifierClaimAttempt { at, context } => {
                (at, self.record_identifier_claim_attempt(at, context)?)
            }
            C::AttemptLogin(cmd) => (cmd.at, self.attempt_login(cmd, s).await?),
            C::ReleaseUnverifiedContact {
                lookup,
                claimed_at,
                at,
                context,
            } => (
                at,
                self.release_unverified_contact(&lookup, claimed_at, at, context, s)?,
            ),
            // Sessions and devices.
            C::ExtendSession { session_id, at } => (at, self.extend_session(session_id, at, s)?),
            C::EndSession {
                session_id,
                by_session,
                at,
                context,
            } => (at, self.end_session(session_id, by_session, at, context)?),
            C::EndOtherSessions { keep, at, context } => {
                (at, self.end_other_sessions(keep, at, context)?)
            }
            C::RevokeDevice {
                device_id,
                session_id,
                at,
                context,
            } => (
                at,
                self.revoke_device(device_id, session_id, at, context, s)?,
            ),
            C::RenameDevice {
                device_id,
                name,
                at,
                context,
            } => (at, self.rename_device(device_id, name, context)?),
            // Flows and one-time codes, contacts.
            C::StartFlow(cmd) => (cmd.at, self.start_flow(cmd, s)?),
            C::ResendCode {
                flow_id,
                channel,
                code,
                at,
                context,
            } => (
                at,
                self.resend_code(flow_id, channel, code, at, context, s)?,
            ),
            C::RedeemCode(cmd) => (cmd.at, self.redeem_code(cmd, s).await?),
            C::ChangeContact(cmd) => (cmd.at, self.change_contact(cmd, s).await?),
            C::ChangePassword(cmd) => (cmd.at, self.change_password(cmd, s).await?),
            // Second factors.
            C::StartTotpEnrolment {
                sealed_secret,
                at,
                context,
            } => (at, self.start_totp_enrolment(sealed_secret, context)?),
            C::ConfirmTotpEnrolment {
                matched_step,
                backup_verifiers,
                proof,
                at,
                context,
            } => (
                at,
                self.confirm_totp_enrolment(matched_step, backup_verifiers, &proof, at, context, s)
                    .await?,
            ),
            C::CompleteMfa(cmd) => (cmd.at, self.complete_mfa(cmd, s)?),
            C::RegenerateBackupCodes {
                proof,
                verifiers,
                at,
                context,
            } => (
                at,
                self.regenerate_backup_codes(&proof, verifiers, at, context, s)
                    .await?,
            ),
            C::RegisterSecurityKey {
                key_id,
                name,
                credential,
                proof,
                backup_verifiers,
                at,
                context,
            } => {
                let key = NewSecurityKey {
                    key_id,
                    name,
                    credential,
                    backup_verifiers,
                };
                let facts = self.register_security_key(key, &proof, at, context, s);
                (at, facts.await?)
            }
            C::RenameSecurityKey { key_id, name, at } => {
                (at, self.rename_security_key(key_id, name)?)
            }
            C::RemoveSecurityKey {
                key_id,
                proof,
                at,
                context,
            } => (
                at,
                self.remove_security_key(key_id, &proof, at, context, s)
                    .await?,
            ),
            C::RegisterPasskey(cmd) => (cmd.at, self.register_passkey(cmd, s).await?),
            C::RemovePasskey {
                key_id,
                proof,
                at,
                context,
            } => (
                at,
                self.remove_passkey(key_id, &proof, at, context, s).await?,
            ),
            C::SignInWithPasskey(cmd) => (cmd.at, self.sign_in_with_passkey(cmd, s)?),
            C::RemoveSecondFactor { proof, at, context } => {
                (at, self.remove_second_factor(&proof, at, context, s).await?)
            }
            // Recovery of a lost second factor.
            C::SubmitRecoveryEvidence {
                flow_id,
                sealed_evidence,
                at,
                context,
            } => (
                at,
                self.submit_recovery_evidence(flow_id, sealed_evidence, context)?,
            ),
            C::ReviewRecovery {
                flow_id,
                approve,
                reviewer,
                reason,
                at,
            } => (
                at,
                self.review_recovery(flow_id, approve, reviewer, reason, at, s)?,
            ),
            C::CancelRecovery { at, context } => (at, self.cancel_recovery(context)?),
            C::CompleteRecovery {
                flow_id,
                at,
                context,
            } => (at, self.complete_recovery(flow_id, at, context, s)?),
            // Controls.
            C::SetAntiPhishingPhrase {
                sealed_phrase,
                proof,
                at,
                context,
            } => (
                at,
                self.set_anti_phishing_phrase(sealed_phrase, &proof, at, context, s)
                    .await?,
            ),
            C::StepUp {
                session_id,
                proof,
                at,
                context,
            } => (at, self.step_up(session_id, &proof, at, context, s).await?),
            C::CreateApiKey {
                key,
                proof,
                at,
                context,
            } => (at, self.create_api_key(key, &proof, at, context, s).await?),
            C::RotateApiKey {
                key_id,
                verifier,
                grace,
                proof,
                at,
                context,
            } => (
                at,
                self.rotate_api_key(key_id, verifier, grace, &proof, at, context, s)
                    .await?,
            ),
            C::RevokeApiKeys {
                key_id,
                at,
                context,
            } => (at, self.revoke_api_keys(key_id, context)?),
            C::ProposeWithdrawalAddress {
                address,
                at,
                context,
            } => (
                at,
                self.propose_withdrawal_address(address, at, context, s)
                    .await?,
            ),
            C::RemoveWithdrawalAddress {
                address_id,
                at,
                context,
            } => (at, self.remove_withdrawal_address(address_id, context)?),
            C::SetWhitelistMode {
                enabled,
                proof,
                at,
                context,
            } => (
                at,
                self.set_whitelist_mode(enabled, &proof, at, context, s)
                    .await?,
            ),
            // Freeze and staff actions.
            C::Freeze {
                by,
                reason,
                at,
                context,
            } => (at, self.freeze(by, reason, at, context)?),
            C::StaffAction {
                staff_id,
                action,
                reason,
                at,
                context,
            } => (
                at,
                self.staff_action(staff_id, action, reason, at, context, s)?,
            ),
            // Delivery outcomes.
            C::RecordNotificationOutcome { outcome, at } => {
                (at, self.record_notification_outcome(outcome)?)
            }
        })
    }

    /// Refuses every command but sign-up on an account that is not registered.
    pub(super) fn require_active(&self) -> Result<(), AccountError> {
        if self.status == AccountStatus::Active {
            Ok(())
        } else {
            Err(AccountError::NotRegistered)
        }
    }
}
