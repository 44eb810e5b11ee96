//! Self-service flows: issuing one-time codes, resending them, and redeeming them to verify a
//! contact, lift a lock or reset the password.
//!
//! An identifier that matches no account runs the same decisions on its stand-in aggregate: the
//! flow and its code are recorded (undeliverable), tries are counted, and a right code can never
//! succeed there, so nothing outside can tell the two apart.
use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::context::RequestContext;
use crate::policy::codes::{Channel, FlowKind, IssueRefusal};

use super::commands::{CodeAction, CodeGrant, RedeemCode, StartFlow};
use super::error::AccountError;
use super::events::{
    AccountFact, CooldownReason, DeviceRevokeReason, Door, Requester, SessionEndReason,
    UnlockReason,
};
use super::proof::{Proof, Proved, SensitiveAction};
use super::services::AccountServices;
use super::state::{Account, AccountStatus, CodeStatus};

impl Account {
    /// `StartFlow`: the flow and its first code.
    pub(super) fn start_flow(
        &self,
        cmd: StartFlow,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        let requester = self.requester(self.door_for(cmd.device.as_ref(), cmd.at), &cmd.context);
        let ceiling = self.check_code_budget(cmd.at, None, &requester, services)?;
        // A lost-second-factor request while a case is under review or approved leaves that case
        // alone: the new flow looks like any other, but its code goes nowhere, so it never
        // progresses. The owner hears of it, at most once a day.
        let set_aside = match cmd.kind {
            FlowKind::LostSecondFactor => {
                self.recovery_in_progress()
                    .map(|case| AccountFact::RecoveryRequestSetAside {
                        flow_id: cmd.grant.flow_id,
                        case_flow_id: case.flow_id,
                        owner_notified: self
                            .recovery_notice_at
                            .is_none_or(|last| cmd.at - last >= RECOVERY_NOTICE_INTERVAL),
                    })
            }
            _ => None,
        };
        let (channel, deliverable) = match (cmd.kind.verifies(), cmd.kind.bound_channel()) {
            (Some(kind), _) => {
                let channel = Channel::for_contact(kind);
                (channel, self.has_contact(channel))
            }
            // Bound to a channel: only ever that one, and only when verified.
            (None, Some(channel)) => (channel, self.usable_for_recovery(channel)),
            (None, None) => self.recovery_channel(cmd.channel, cmd.typed),
        };
        // An unfreeze code goes out only while the account is frozen (the answer is the same).
        let deliverable = deliverable && (cmd.kind != FlowKind::Unfreeze || self.is_frozen(cmd.at));
        let mut facts = vec![
            AccountFact::FlowStarted {
                flow_id: cmd.grant.flow_id,
                kind: cmd.kind,
                context: cmd.context.clone(),
            },
            self.code_issued(
                cmd.grant.flow_id,
                cmd.grant.code,
                channel,
                deliverable && set_aside.is_none(),
                cmd.at,
                (cmd.context, requester),
                services,
            ),
        ];
        facts.extend(set_aside);
        facts.extend(ceiling);
        Ok(facts)
    }

    /// `ResendCode`: a new code for a flow, after the cooldown, possibly on the other channel.
    pub(super) fn resend_code(
        &self,
        flow_id: Uuid,
        wanted: Option<Channel>,
        code: CodeGrant,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        let flow = self.flows.get(&flow_id).ok_or(AccountError::FlowNotFound)?;
        let current = flow.code.as_ref().ok_or(AccountError::FlowNotFound)?;
        if current.status == CodeStatus::Used {
            return Err(AccountError::CodeUnusable(CodeStatus::Used));
        }
        // A step bound to a channel stays on it, whoever holds the flow (stand-ins of unknown
        // identifiers are bound the same way, so the refusal tells nothing).
        let bound = self.bound_channel(flow_id);
        if let (Some(bound), Some(wanted)) = (bound, wanted) {
            if wanted != bound {
                return Err(AccountError::ChannelNotAllowed);
            }
        }
        // A resend counts on the budget of the request that started the flow.
        let requester = current
            .requester
            .clone()
            .unwrap_or_else(|| self.requester(Door::Untrusted, &context));
        let ceiling = self.check_code_budget(at, Some(current.issued_at), &requester, services)?;
        let set_aside = self
            .recovery_flows
            .get(&flow_id)
            .is_some_and(|c| c.set_aside);
        let (channel, deliverable) = match (flow.kind.verifies(), bound) {
            (Some(kind), _) => {
                let channel = Channel::for_contact(kind);
                // A requested contact's code goes to it (the current contact may be absent), and
                // a request for another account's contact stays unsendable on resend too.
                let deliverable = match self.pending_contact(kind).filter(|p| p.flow_id == flow_id)
                {
                    Some(pending) => self.status == AccountStatus::Active && !pending.unavailable,
                    None => self.has_contact(channel),
                };
                (channel, deliverable)
            }
            (None, Some(channel)) => (channel, self.usable_for_recovery(channel) && !set_aside),
            (None, None) => {
                let channel = wanted.unwrap_or(current.channel);
                (channel, self.usable_for_recovery(channel))
            }
        };
        let deliverable = deliverable && (flow.kind != FlowKind::Unfreeze || self.is_frozen(at));
        let mut facts = vec![self.code_issued(
            flow_id,
            code,
            channel,
            deliverable,
            at,
            (context, requester),
            services,
        )];
        facts.extend(ceiling);
        Ok(facts)
    }

    /// `RedeemCode`: checks the code and, when it is right, does what the flow is for.
    pub(super) async fn redeem_code(
        &self,
        cmd: RedeemCode,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        let flow = self
            .flows
            .get(&cmd.flow_id)
            .filter(|f| cmd.action.fits(f.kind))
            .ok_or(AccountError::FlowNotFound)?;
        let code = flow.code.as_ref().ok_or(AccountError::FlowNotFound)?;
        match code.status {
            CodeStatus::Active => {}
            status @ (CodeStatus::Used
            | CodeStatus::Exhausted
            | CodeStatus::Expired
            | CodeStatus::Superseded) => return Err(AccountError::CodeUnusable(status)),
        }
        let (flow_id, code_id) = (cmd.flow_id, code.code_id);
        if cmd.at >= code.expires_at {
            return Ok(vec![AccountFact::CodeExpired { flow_id, code_id }]);
        }
        // A code that came by another channel than the step is bound to proves nothing about
        // that channel: it counts as a wrong code (only histories from before the binding hold
        // such codes).
        let on_bound_channel = self
            .bound_channel(flow_id)
            .is_none_or(|bound| bound == code.channel);
        let matches: bool = code
            .verifier
            .as_bytes()
            .ct_eq(cmd.verifier.as_bytes())
            .into();
        let matches = matches && on_bound_channel;
        // A stand-in aggregate never succeeds, whatever is typed.
        if !matches || self.status != AccountStatus::Active {
            let attempts = code.attempts + 1;
            let mut facts = vec![AccountFact::CodeAttemptFailed {
                flow_id,
                code_id,
                attempts,
                context: cmd.context,
            }];
            if attempts >= services.codes.max_attempts {
                facts.push(AccountFact::CodeExhausted { flow_id, code_id });
            }
            return Ok(facts);
        }
        let used = AccountFact::CodeUsed {
            flow_id,
            code_id,
            context: cmd.context.clone(),
        };
        match (cmd.action, flow.kind.verifies()) {
            (CodeAction::Verify, Some(kind)) => {
                let mut facts = vec![used];
                // A requested contact takes the current one's place only now.
                if let Some(pending) = self.pending_contact(kind).filter(|p| p.flow_id == flow_id) {
                    facts.push(AccountFact::ContactChanged {
                        kind,
                        contact: pending.contact.clone(),
                        previous: match kind {
                            crate::contact::ContactKind::Email => self.email.clone(),
                            crate::contact::ContactKind::Phone => self.phone.clone(),
                        },
                        context: cmd.context.clone(),
                    });
                }
                facts.push(AccountFact::ContactVerified { kind, flow_id });
                Ok(facts)
            }
            (CodeAction::Unlock, _) => Ok(vec![
                used,
                AccountFact::AccountUnlocked {
                    reason: UnlockReason::UnlockCode,
                    context: cmd.context,
                },
            ]),
            (CodeAction::ResetPassword(password), _) => {
                // The code proves the inbox (or the phone); a second factor, when enrolled, must
                // come with it. Missing: refused and the code kept for the owner's next try.
                // Wrong: the failure counts toward the lockout and spends one of the code's
                // tries, so one code cannot carry unlimited factor guesses.
                let proved = self
                    .prove(
                        SensitiveAction::ResetPassword,
                        &cmd.proof,
                        cmd.at,
                        &cmd.context,
                        services,
                    )
                    .await;
                let proved = match proved {
                    // Recorded (not an `Err`), so that the flow may ask for a key challenge.
                    Err(AccountError::SecondFactorRequired) => {
                        return Ok(vec![AccountFact::ResetFactorAsked { flow_id }])
                    }
                    other => other?,
                };
                match proved {
                    Proved::Refused(mut refusal) => {
                        let attempts = code.attempts + 1;
                        refusal.push(AccountFact::CodeAttemptFailed {
                            flow_id,
                            code_id,
                            attempts,
                            context: cmd.context,
                        });
                        if attempts >= services.codes.max_attempts {
                            refusal.push(AccountFact::CodeExhausted { flow_id, code_id });
                        }
                        Ok(refusal)
                    }
                    Proved::Accepted(mut facts) => {
                        facts.extend(
                            self.reset_password(
                                flow_id,
                                used,
                                password,
                                cmd.at,
                                cmd.context,
                                services,
                            )
                            .await?,
                        );
                        Ok(facts)
                    }
                }
            }
            (CodeAction::RecoveryStep, _) => {
                self.recovery_code_step(flow_id, used, cmd.next_code, cmd.at, cmd.context, services)
            }
            (CodeAction::Unfreeze, _) => {
                // The first code proves a verified contact; a current second factor, when
                // enrolled, must come with it. Missing: refused, the code kept (the lost-2FA
                // review is the way on). Wrong: counted, and one of the code's tries spent.
                // With a verified email and phone, a code by the other channel follows (a second
                // step bound to it); only its code unfreezes. The factor is checked at the first
                // step, so nobody without it learns whether a second contact exists or makes the
                // server send to it.
                if !self.is_frozen(cmd.at) {
                    return Err(AccountError::NotFrozen);
                }
                if !flow.proven.is_empty() {
                    let mut facts = vec![used];
                    facts.extend(self.unfreeze_by_owner(flow_id, cmd.at, cmd.context, services)?);
                    return Ok(facts);
                }
                let proved = self
                    .prove(
                        SensitiveAction::Unfreeze,
                        &cmd.proof,
                        cmd.at,
                        &cmd.context,
                        services,
                    )
                    .await?;
                match proved {
                    Proved::Refused(mut refusal) => {
                        let attempts = code.attempts + 1;
                        refusal.push(AccountFact::CodeAttemptFailed {
                            flow_id,
                            code_id,
                            attempts,
                            context: cmd.context,
                        });
                        if attempts >= services.codes.max_attempts {
                            refusal.push(AccountFact::CodeExhausted { flow_id, code_id });
                        }
                        Ok(refusal)
                    }
                    Proved::Accepted(mut facts) => {
                        facts.push(used);
                        let second = code.channel.other();
                        if self.is_verified(second) {
                            facts.push(self.next_step_code(
                                flow_id,
                                second,
                                cmd.next_code,
                                true,
                                (cmd.at, cmd.context),
                                services,
                            )?);
                            return Ok(facts);
                        }
                        facts.extend(self.unfreeze_by_owner(
                            flow_id,
                            cmd.at,
                            cmd.context,
                            services,
                        )?);
                        Ok(facts)
                    }
                }
            }
            (CodeAction::ConfirmWithdrawalAddress, _) => {
                self.confirm_withdrawal_address(flow_id, used, cmd.at, cmd.context, services)
            }
            (CodeAction::Verify, None) => Err(AccountError::FlowNotFound),
        }
    }

    async fn reset_password(
        &self,
        flow_id: Uuid,
        used: AccountFact,
        password: crate::password::CandidatePassword,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        // The current password and the remembered ones may not come back.
        for old in self
            .password_hash
            .iter()
            .chain(self.previous_passwords.iter())
        {
            if services.hasher.verify(password.secret(), Some(old)).await {
                return Err(AccountError::PasswordReused);
            }
        }
        let password_hash = services.hasher.hash(password.secret()).await?;
        let mut facts = vec![
            used,
            AccountFact::PasswordReset {
                password_hash,
                flow_id,
                context: context.clone(),
            },
        ];
        // Revocation is immediate: every session ends with the old password, and every API key
        // (a thief's key must not outlive the owner taking the account back).
        facts.extend(self.live_sessions(at).into_iter().map(|(session_id, _)| {
            AccountFact::SessionEnded {
                session_id,
                reason: SessionEndReason::PasswordReset,
                context: context.clone(),
            }
        }));
        facts.extend(self.revoke_every_api_key(&context));
        facts.extend(self.revoke_every_passkey(&context));
        facts.extend(self.revoke_devices(DeviceRevokeReason::PasswordReset, None, &context));
        if self.any_door_failing(at) {
            facts.push(AccountFact::AccountUnlocked {
                reason: UnlockReason::PasswordReset,
                context,
            });
        }
        facts.push(AccountFact::HighRiskCooldownStarted {
            until: at + services.cooldowns.after_password_reset,
            reason: CooldownReason::PasswordReset,
        });
        Ok(facts)
    }

    /// `ChangeContact`: the proof of `ChangeContact` (the password and, when enrolled, a current
    /// factor); the new contact starts unverified with a code on its way, the old one is told,
    /// and high-risk actions pause.
    pub(super) async fn change_contact(
        &self,
        cmd: super::commands::ChangeContact,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        let previous = match cmd.kind {
            crate::contact::ContactKind::Email => self.email.clone(),
            crate::contact::ContactKind::Phone => self.phone.clone(),
        };
        if previous
            .as_ref()
            .is_some_and(|p| p.lookup == cmd.contact.lookup)
        {
            return Err(AccountError::ContactUnchanged);
        }
        let mut facts = match self
            .prove(
                SensitiveAction::ChangeContact,
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
        let channel = Channel::for_contact(cmd.kind);
        // The same facts whether the contact is free or someone else's (`unavailable`): only
        // whether its code is sent differs, which the requester cannot see. The current contact
        // stays until the new one is verified, so nothing visible changes before then either.
        facts.extend(self.cooldown(CooldownReason::ContactChanged, cmd.at, services));
        facts.extend([
            AccountFact::ContactChangeRequested {
                kind: cmd.kind,
                contact: cmd.contact,
                previous,
                flow_id: cmd.grant.flow_id,
                unavailable: cmd.unavailable,
                context: cmd.context.clone(),
            },
            AccountFact::FlowStarted {
                flow_id: cmd.grant.flow_id,
                kind: crate::policy::codes::FlowKind::verify(cmd.kind),
                context: cmd.context.clone(),
            },
            self.code_issued(
                cmd.grant.flow_id,
                cmd.grant.code,
                channel,
                !cmd.unavailable,
                cmd.at,
                (
                    cmd.context.clone(),
                    self.requester(Door::Untrusted, &cmd.context),
                ),
                services,
            ),
        ]);
        Ok(facts)
    }

    /// `ChangePassword`: the proof of `ChangePassword`; every other session ends, high-risk
    /// actions pause, and the owner is told.
    pub(super) async fn change_password(
        &self,
        cmd: super::commands::ChangePassword,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        self.live_session(cmd.session_id, cmd.at)?;
        let mut facts = match self
            .prove(
                SensitiveAction::ChangePassword,
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
        for old in self
            .password_hash
            .iter()
            .chain(self.previous_passwords.iter())
        {
            if services
                .hasher
                .verify(cmd.new_password.secret(), Some(old))
                .await
            {
                return Err(AccountError::PasswordReused);
            }
        }
        let password_hash = services.hasher.hash(cmd.new_password.secret()).await?;
        facts.push(AccountFact::PasswordChanged {
            password_hash,
            session_id: cmd.session_id,
            context: cmd.context.clone(),
        });
        facts.extend(
            self.live_sessions(cmd.at)
                .into_iter()
                .filter(|(id, _)| *id != cmd.session_id)
                .map(|(session_id, _)| AccountFact::SessionEnded {
                    session_id,
                    reason: SessionEndReason::PasswordChanged,
                    context: cmd.context.clone(),
                }),
        );
        // The device that changed it stays trusted; every other one ends, like the sessions.
        let keep = self.sessions.get(&cmd.session_id).and_then(|s| s.device_id);
        facts.extend(self.revoke_devices(DeviceRevokeReason::PasswordChanged, keep, &cmd.context));
        facts.extend(self.cooldown(CooldownReason::PasswordChanged, cmd.at, services));
        Ok(facts)
    }

    /// `SetAntiPhishingPhrase`: the proof of `AntiPhishingPhrase` (the password, or a stepped-up
    /// session).
    pub(super) async fn set_anti_phishing_phrase(
        &self,
        sealed_phrase: Option<String>,
        proof: &Proof,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        if sealed_phrase.is_none() && self.anti_phishing_phrase.is_none() {
            return Ok(Vec::new());
        }
        let mut facts = match self
            .prove(
                SensitiveAction::AntiPhishingPhrase,
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
        facts.push(match sealed_phrase {
            Some(sealed_phrase) => AccountFact::AntiPhishingPhraseSet {
                sealed_phrase,
                context,
            },
            None => AccountFact::AntiPhishingPhraseRemoved { context },
        });
        Ok(facts)
    }

    /// Every API key not yet revoked, revoked (a reset or a recovery takes the account back).
    pub(super) fn revoke_every_api_key(&self, context: &RequestContext) -> Vec<AccountFact> {
        self.api_keys
            .iter()
            .filter(|(_, k)| k.revoked_at.is_none())
            .map(|(key_id, _)| AccountFact::ApiKeyRevoked {
                key_id: *key_id,
                context: context.clone(),
            })
            .collect()
    }

    /// `RecordNotificationOutcome`.
    pub(super) fn record_notification_outcome(
        &self,
        outcome: AccountFact,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        match outcome {
            AccountFact::NotificationDelivered { .. }
            | AccountFact::NotificationFailed { .. }
            | AccountFact::SmsWithheld { .. } => Ok(vec![outcome]),
            _ => Err(AccountError::NotAnOutcome),
        }
    }

    /// Whether the account has a contact for the channel (verified or not).
    fn has_contact(&self, channel: Channel) -> bool {
        self.status == AccountStatus::Active
            && match channel {
                Channel::Email => self.email.is_some(),
                Channel::Sms => self.phone.is_some(),
            }
    }

    /// Whether a recovery code may be sent on a channel: to a verified contact of an account.
    fn usable_for_recovery(&self, channel: Channel) -> bool {
        self.status == AccountStatus::Active && self.is_verified(channel)
    }

    /// The channel of a forgot-password or unlock code: the one asked for, else the one the
    /// typed identifier is (email for an address, sms for a number), for every identifier alike,
    /// so the answer's `channel` says nothing about the account. The code goes there only when
    /// that contact is verified; otherwise it is recorded and sent nowhere (never to the other
    /// contact: which one is verified is not the stranger's business).
    fn recovery_channel(&self, asked: Option<Channel>, typed: Channel) -> (Channel, bool) {
        let channel = asked.unwrap_or(typed);
        (channel, self.usable_for_recovery(channel))
    }

    #[allow(clippy::too_many_arguments)]
    fn code_issued(
        &self,
        flow_id: Uuid,
        code: CodeGrant,
        channel: Channel,
        deliverable: bool,
        at: DateTime<Utc>,
        (context, requester): (RequestContext, Requester),
        services: &AccountServices,
    ) -> AccountFact {
        AccountFact::CodeIssued {
            flow_id,
            code_id: code.code_id,
            channel,
            verifier: code.verifier,
            expires_at: at + services.codes.ttl,
            deliverable,
            context,
            requester: Some(requester),
        }
    }

    /// Every trusted device but `keep` stops being trusted.
    pub(super) fn revoke_devices(
        &self,
        reason: DeviceRevokeReason,
        keep: Option<Uuid>,
        context: &RequestContext,
    ) -> Vec<AccountFact> {
        self.devices
            .keys()
            .filter(|id| Some(**id) != keep)
            .map(|device_id| AccountFact::DeviceRevoked {
                device_id: *device_id,
                reason,
                context: context.clone(),
            })
            .collect()
    }

    /// Whose code budget a request through `door` counts on: a trusted device's own, or the
    /// client network's.
    pub(super) fn requester(&self, door: Door, context: &RequestContext) -> Requester {
        match door {
            Door::Device(id) => Requester::Device(id),
            Door::Untrusted => Requester::Network(network_of(context.ip.as_deref())),
        }
    }

    /// Checks the requester's hourly budget and, for an untrusted requester, the account's
    /// ceiling. `Ok` carries `CodeCeilingReached` when this code reaches the ceiling.
    pub(super) fn check_code_budget(
        &self,
        at: DateTime<Utc>,
        flow_last_issued: Option<DateTime<Utc>>,
        requester: &Requester,
        services: &AccountServices,
    ) -> Result<Option<AccountFact>, AccountError> {
        let mine: Vec<DateTime<Utc>> = self
            .recent_codes_by_requester
            .iter()
            .filter(|(_, r)| r == requester)
            .map(|(t, _)| *t)
            .collect();
        services
            .codes
            .may_issue(at, flow_last_issued, &mine)
            .map_err(refused)?;
        if matches!(requester, Requester::Device(_)) {
            return Ok(None);
        }
        let reached = services
            .codes
            .within_ceiling(at, &self.recent_code_issues)
            .map_err(refused)?;
        Ok(reached.then(|| {
            let hour_ago = at - chrono::Duration::hours(1);
            let counted: Vec<DateTime<Utc>> = self
                .recent_code_issues
                .iter()
                .copied()
                .filter(|t| *t > hour_ago)
                .collect();
            AccountFact::CodeCeilingReached {
                issued: u32::try_from(counted.len() + 1).unwrap_or(u32::MAX),
                until: counted.iter().min().copied().unwrap_or(at) + chrono::Duration::hours(1),
            }
        }))
    }
}

/// The network a client address belongs to, as a requester key: `/24` for IPv4, `/64` for
/// IPv6, `unknown` without a (parsable) address.
pub fn network_of(ip: Option<&str>) -> String {
    match ip.and_then(|ip| ip.parse::<std::net::IpAddr>().ok()) {
        Some(std::net::IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Some(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => "unknown".to_string(),
    }
}

/// Least time between two notices to the owner of recovery requests set aside.
pub const RECOVERY_NOTICE_INTERVAL: chrono::Duration = chrono::Duration::hours(24);

fn refused(refusal: IssueRefusal) -> AccountError {
    match refusal {
        IssueRefusal::Cooldown { until } | IssueRefusal::HourlyCap { until } => {
            AccountError::CodeRateLimited { retry_at: until }
        }
    }
}
