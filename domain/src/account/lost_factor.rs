//! Recovery from a lost second factor without a backup code: a code to the verified email, a
//! code to the verified phone (when there is one), identity evidence, then a reviewer's decision.
//! An approval starts a hold announced on every channel, during which the owner can cancel from
//! any session; when it ends, the factors are removed, every session ends and the high-risk
//! cooldown starts.
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::context::RequestContext;
use crate::policy::codes::Channel;

use super::commands::CodeGrant;
use super::error::AccountError;
use super::events::{AccountFact, CooldownReason, RecoveryStep, SessionEndReason};
use super::services::AccountServices;
use super::state::{Account, AccountStatus, RecoveryStage};

impl Account {
    fn case_at(
        &self,
        flow_id: Uuid,
        stages: &[RecoveryStage],
    ) -> Result<&super::state::RecoveryCase, AccountError> {
        self.recovery
            .as_ref()
            .filter(|c| c.flow_id == flow_id)
            .filter(|c| stages.contains(&c.stage))
            .ok_or(AccountError::RecoveryStage)
    }

    /// A right code for the email or phone step. Flows at the code steps run side by side; one
    /// set aside (requested while a case was in progress) never moves, and none moves past the
    /// code steps while another case is under review or approved: that case is not replaced.
    pub(super) fn recovery_code_step(
        &self,
        flow_id: Uuid,
        used: AccountFact,
        next_code: Option<CodeGrant>,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        let case = self
            .recovery_case(flow_id)
            .filter(|c| matches!(c.stage, RecoveryStage::EmailCode | RecoveryStage::PhoneCode))
            .filter(|c| !c.set_aside)
            .ok_or(AccountError::RecoveryStage)?;
        if self
            .recovery_in_progress()
            .is_some_and(|other| other.flow_id != flow_id)
        {
            return Err(AccountError::RecoveryStage);
        }
        let step = if case.stage == RecoveryStage::EmailCode {
            RecoveryStep::Email
        } else {
            RecoveryStep::Phone
        };
        let mut facts = vec![used, AccountFact::RecoveryStepPassed { flow_id, step }];
        if step == RecoveryStep::Email && case.needs_phone {
            facts.push(self.next_step_code(
                flow_id,
                Channel::Sms,
                next_code,
                self.is_verified(Channel::Sms),
                (at, context),
                services,
            )?);
        }
        Ok(facts)
    }

    /// The code of a flow's next step, bound to `channel` (the lost-2FA phone step, an
    /// unfreeze's second contact): drawn at the edge with the code being redeemed (`next_code`),
    /// and counted on the budget of the request that started the flow.
    pub(super) fn next_step_code(
        &self,
        flow_id: Uuid,
        channel: Channel,
        next_code: Option<CodeGrant>,
        deliverable: bool,
        (at, context): (DateTime<Utc>, RequestContext),
        services: &AccountServices,
    ) -> Result<AccountFact, AccountError> {
        let code = next_code.ok_or(AccountError::RecoveryStage)?;
        Ok(AccountFact::CodeIssued {
            flow_id,
            code_id: code.code_id,
            channel,
            verifier: code.verifier,
            expires_at: at + services.codes.ttl,
            deliverable,
            context,
            requester: self
                .flows
                .get(&flow_id)
                .and_then(|f| f.code.as_ref())
                .and_then(|c| c.requester.clone()),
        })
    }

    /// `SubmitRecoveryEvidence`.
    pub(super) fn submit_recovery_evidence(
        &self,
        flow_id: Uuid,
        sealed_evidence: String,
        context: RequestContext,
    ) -> Result<Vec<AccountFact>, AccountError> {
        if self.status != AccountStatus::Active {
            return Err(AccountError::RecoveryStage);
        }
        self.case_at(flow_id, &[RecoveryStage::Evidence])?;
        Ok(vec![AccountFact::RecoveryEvidenceSubmitted {
            flow_id,
            sealed_evidence,
            context,
        }])
    }

    /// `ReviewRecovery`.
    pub(super) fn review_recovery(
        &self,
        flow_id: Uuid,
        approve: bool,
        reviewer: String,
        reason: String,
        at: DateTime<Utc>,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.case_at(flow_id, &[RecoveryStage::Review])?;
        Ok(vec![AccountFact::RecoveryReviewed {
            flow_id,
            approved: approve,
            reviewer,
            reason,
            hold_until: approve.then(|| at + services.cooldowns.recovery_hold),
        }])
    }

    /// `CancelRecovery`: from a signed-in session, whatever the stage. Ends the case and every
    /// flow still at the code steps (one fact, one notice).
    pub(super) fn cancel_recovery(
        &self,
        context: RequestContext,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        let case = self.recovery().ok_or(AccountError::RecoveryStage)?;
        Ok(vec![AccountFact::RecoveryCancelled {
            flow_id: case.flow_id,
            context,
        }])
    }

    /// `CompleteRecovery`: after the hold, the factors go, every session ends, the cooldown
    /// starts.
    pub(super) fn complete_recovery(
        &self,
        flow_id: Uuid,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        let case = self.case_at(flow_id, &[RecoveryStage::Hold])?;
        if let Some(until) = case.hold_until.filter(|u| at < *u) {
            return Err(AccountError::RecoveryHold { until });
        }
        let mut facts = vec![
            AccountFact::RecoveryCompleted {
                flow_id,
                context: context.clone(),
            },
            AccountFact::SecondFactorRemoved {
                context: context.clone(),
            },
        ];
        facts.extend(self.live_sessions(at).into_iter().map(|(session_id, _)| {
            AccountFact::SessionEnded {
                session_id,
                reason: SessionEndReason::Recovery,
                context: context.clone(),
            }
        }));
        facts.extend(self.revoke_every_api_key(&context));
        facts.extend(self.revoke_every_passkey(&context));
        facts.push(AccountFact::HighRiskCooldownStarted {
            until: at + services.cooldowns.after_password_reset,
            reason: CooldownReason::LostFactorRecovery,
        });
        Ok(facts)
    }
}
