//! Folding facts into the aggregate's state: `fold` routes each fact to the feature that owns
//! it, and each feature's fold changes only its own part of the state. Total and infallible; no
//! policy here.
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::policy::codes::{Channel, FlowKind};

use super::events::{AccountEvent, AccountFact, Door, RecoveryStep, Requester};
use super::state::{
    Account, AccountStatus, ApiKey, BackupCode, CodeStatus, Flow, IssuedCode, Lock, MfaChallenge,
    PendingContact, RecoveryCase, RecoveryStage, SecurityKeyFactor, Session, TotpFactor,
    TrustedDevice, WithdrawalAddress, MAX_TRUSTED_DEVICES, PASSWORD_HISTORY,
};

/// Flows older than this are forgotten (their codes expired long before).
const FLOW_RETENTION_HOURS: i64 = 24;

impl Account {
    /// Folds one event into the state. Every fact is routed to one feature's fold (a new fact
    /// does not compile until it is), then the chain moves on.
    pub(super) fn fold(&mut self, event: &AccountEvent) {
        self.forget_expired(event.at);
        let (fact, at) = (&event.fact, event.at);
        match fact {
            AccountFact::AccountRegistered { .. }
            | AccountFact::DuplicateRegistrationAttempted { .. }
            | AccountFact::IdentifierClaimAttempted { .. }
            | AccountFact::LoginSucceeded { .. }
            | AccountFact::LoginFailed { .. }
            | AccountFact::LoginRejectedWhileLocked { .. }
            | AccountFact::AccountLocked { .. }
            | AccountFact::PasswordRehashed { .. }
            | AccountFact::PasswordReset { .. }
            | AccountFact::PasswordChanged { .. }
            | AccountFact::AccountUnlocked { .. }
            | AccountFact::SecondFactorFailed { .. }
            | AccountFact::PasswordConfirmationFailed { .. } => self.fold_sign_in(fact, at),
            AccountFact::DeviceTrusted { .. }
            | AccountFact::DeviceRevoked { .. }
            | AccountFact::DeviceRenamed { .. }
            | AccountFact::SessionStarted { .. }
            | AccountFact::SessionExtended { .. }
            | AccountFact::SessionEnded { .. }
            | AccountFact::SessionSteppedUp { .. } => self.fold_sessions(fact, at),
            AccountFact::FlowStarted { .. }
            | AccountFact::CodeIssued { .. }
            | AccountFact::CodeAttemptFailed { .. }
            | AccountFact::CodeExhausted { .. }
            | AccountFact::CodeExpired { .. }
            | AccountFact::CodeUsed { .. }
            | AccountFact::SmsWithheld { .. }
            | AccountFact::ResetFactorAsked { .. }
            | AccountFact::CodeCeilingReached { .. } => self.fold_codes(fact, at),
            AccountFact::ContactChanged { .. }
            | AccountFact::ContactChangeRequested { .. }
            | AccountFact::ContactVerified { .. }
            | AccountFact::UnverifiedContactReleased { .. } => self.fold_contacts(fact),
            AccountFact::TotpEnrolmentStarted { .. }
            | AccountFact::TotpEnrolled { .. }
            | AccountFact::BackupCodesGenerated { .. }
            | AccountFact::MfaChallengeIssued { .. }
            | AccountFact::SecondFactorVerified { .. }
            | AccountFact::SecondFactorRemoved { .. }
            | AccountFact::SecurityKeyRegistered { .. }
            | AccountFact::SecurityKeyRenamed { .. }
            | AccountFact::SecurityKeyRemoved { .. }
            | AccountFact::SecurityKeyUsed { .. }
            | AccountFact::SecurityKeyCounterRegressed { .. } => self.fold_second_factor(fact, at),
            AccountFact::PasskeyRegistered { .. }
            | AccountFact::PasskeyRemoved { .. }
            | AccountFact::PasskeyUsed { .. }
            | AccountFact::PasskeySignInFailed { .. }
            | AccountFact::PasskeysRevoked { .. } => self.fold_passkeys(fact, at),
            AccountFact::HighRiskCooldownStarted { .. }
            | AccountFact::AntiPhishingPhraseSet { .. }
            | AccountFact::AntiPhishingPhraseRemoved { .. }
            | AccountFact::ApiKeyCreated { .. }
            | AccountFact::ApiKeyRotated { .. }
            | AccountFact::ApiKeyRevoked { .. }
            | AccountFact::WithdrawalAddressProposed { .. }
            | AccountFact::WithdrawalAddressAdded { .. }
            | AccountFact::WithdrawalAddressRemoved { .. }
            | AccountFact::WhitelistModeChanged { .. } => self.fold_controls(fact, at),
            AccountFact::RecoveryStepPassed { .. }
            | AccountFact::RecoveryRequestSetAside { .. }
            | AccountFact::RecoveryEvidenceSubmitted { .. }
            | AccountFact::RecoveryReviewed { .. }
            | AccountFact::RecoveryCancelled { .. }
            | AccountFact::RecoveryCompleted { .. } => self.fold_recovery(fact, at),
            AccountFact::AccountFrozen { .. }
            | AccountFact::AccountUnfrozen { .. }
            | AccountFact::LoginRefusedWhileFrozen { .. }
            | AccountFact::StaffActionTaken { .. } => self.fold_freeze(fact, at),
            // Delivery outcomes are for auditors; no decision reads them.
            AccountFact::NotificationDelivered { .. } | AccountFact::NotificationFailed { .. } => {}
        }
        if let Ok(value) = serde_json::to_value(event) {
            self.chain = self.chain.next(&value);
        }
    }

    /// Drops what has expired by `at`, so state stays bounded. Using the event's own time keeps
    /// replays deterministic.
    fn forget_expired(&mut self, at: DateTime<Utc>) {
        self.sessions.retain(|_, s| s.is_live(at));
        let flow_horizon = at - chrono::Duration::hours(FLOW_RETENTION_HOURS);
        self.flows.retain(|_, f| f.started_at > flow_horizon);
        let flows = &self.flows;
        self.recovery_flows.retain(|id, _| flows.contains_key(id));
        let hour_ago = at - chrono::Duration::hours(1);
        self.recent_code_issues.retain(|t| *t > hour_ago);
        self.recent_codes_by_requester
            .retain(|(t, _)| *t > hour_ago);
        self.devices.retain(|_, d| at < d.expires_at);
        self.challenges.retain(|_, c| c.expires_at > at && !c.used);
    }

    /// Freezes: the freeze in force, the freeze links used.
    fn fold_freeze(&mut self, fact: &AccountFact, at: DateTime<Utc>) {
        match fact {
            AccountFact::AccountFrozen { by, .. } => {
                if let super::events::FreezeActor::Link { link_id } = by {
                    self.used_freeze_links.insert(*link_id, at);
                }
                self.frozen = Some(super::state::Freeze {
                    since: at,
                    by: by.clone(),
                    release_at: None,
                });
            }
            AccountFact::AccountUnfrozen { hold_until, .. } => match hold_until {
                Some(until) => {
                    if let Some(f) = self.frozen.as_mut() {
                        f.release_at = Some(*until);
                    }
                }
                None => self.frozen = None,
            },
            _ => {}
        }
        // A link is refused past its lifetime anyway: used ones are forgotten after it (kept
        // from their use, which is after they were minted).
        self.used_freeze_links
            .retain(|_, used| at - *used < super::state::FREEZE_LINK_TTL);
    }

    /// Sign-up, sign-in and lockout: the status, the password and its history, each door's
    /// failures and lock.
    fn fold_sign_in(&mut self, fact: &AccountFact, at: DateTime<Utc>) {
        match fact {
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
            AccountFact::IdentifierClaimAttempted { .. } => {
                self.identifier_claim_noticed_at = Some(at);
            }
            AccountFact::LoginSucceeded {
                door,
                context,
                method,
                ..
            } => {
                // A passkey sign-in proves no password: it leaves every door's count and lock
                // as they are (a stranger's guesses stay locked out while the owner signs in).
                if method.is_password() {
                    self.reset_door(*door);
                }
                // Where it signed in from, for the new-sign-in rule (most recent last).
                let network = super::recovery::network_of(context.ip.as_deref());
                remember(&mut self.sign_in_networks, network);
                remember(&mut self.sign_in_places, super::freeze::place_key(context));
            }
            AccountFact::LoginFailed {
                consecutive_failures,
                door,
                ..
            } => {
                if self.status == AccountStatus::New {
                    self.status = AccountStatus::Unregistered;
                }
                self.set_door_failures(*door, *consecutive_failures);
            }
            AccountFact::LoginRejectedWhileLocked { .. } => {}
            AccountFact::AccountLocked {
                until, level, door, ..
            } => {
                let lock = Some(Lock { until: *until });
                // The count restarts once the lock ends; the level remembers repeated locks.
                match door {
                    Door::Untrusted => {
                        self.lock = lock;
                        self.lock_level = *level;
                        self.consecutive_failures = 0;
                    }
                    Door::Device(id) => {
                        if let Some(d) = self.devices.get_mut(id) {
                            d.lock = lock;
                            d.lock_level = *level;
                            d.failures = 0;
                        }
                    }
                }
            }
            AccountFact::PasswordRehashed { password_hash } => {
                self.password_hash = Some(password_hash.clone());
            }
            AccountFact::PasswordReset { password_hash, .. }
            | AccountFact::PasswordChanged { password_hash, .. } => {
                if let Some(old) = self.password_hash.replace(password_hash.clone()) {
                    self.previous_passwords.insert(0, old);
                    self.previous_passwords.truncate(PASSWORD_HISTORY);
                }
            }
            AccountFact::AccountUnlocked { .. } => {
                self.reset_door(Door::Untrusted);
                for device in self.devices.values_mut() {
                    device.failures = 0;
                    device.lock_level = 0;
                    device.lock = None;
                }
            }
            AccountFact::SecondFactorFailed {
                consecutive_failures,
                door,
                ..
            }
            | AccountFact::PasswordConfirmationFailed {
                consecutive_failures,
                door,
                ..
            } => self.set_door_failures(*door, *consecutive_failures),
            // Facts of other features: `fold` routes them elsewhere.
            _ => {}
        }
    }

    /// Trusted devices and sessions.
    fn fold_sessions(&mut self, fact: &AccountFact, at: DateTime<Utc>) {
        match fact {
            AccountFact::DeviceTrusted {
                device_id,
                token_hash,
                expires_at,
                context,
            } => {
                if !self.devices.contains_key(device_id)
                    && self.devices.len() >= MAX_TRUSTED_DEVICES
                {
                    let oldest = self
                        .devices
                        .iter()
                        .min_by_key(|(_, d)| d.trusted_at)
                        .map(|(id, _)| *id);
                    if let Some(oldest) = oldest {
                        self.devices.remove(&oldest);
                    }
                }
                let device = self.devices.entry(*device_id).or_insert(TrustedDevice {
                    token_hash: String::new(),
                    first_trusted_at: Some(at),
                    name: None,
                    trusted_at: at,
                    expires_at: *expires_at,
                    context: context.clone(),
                    failures: 0,
                    lock_level: 0,
                    lock: None,
                });
                device.token_hash = token_hash.clone();
                device.trusted_at = at;
                device.expires_at = *expires_at;
                device.context = context.clone();
            }
            AccountFact::DeviceRevoked { device_id, .. } => {
                self.devices.remove(device_id);
            }
            AccountFact::DeviceRenamed {
                device_id, name, ..
            } => {
                if let Some(device) = self.devices.get_mut(device_id) {
                    device.name = Some(name.clone());
                }
            }
            AccountFact::SessionStarted {
                session_id,
                token_hash,
                context,
                expires_at,
                idle_expires_at,
                device_id,
            } => {
                self.sessions.insert(
                    *session_id,
                    Session {
                        token_hash: token_hash.clone(),
                        started_at: at,
                        expires_at: *expires_at,
                        idle_expires_at: *idle_expires_at,
                        context: context.clone(),
                        stepped_up_at: None,
                        stepped_up_with_password: false,
                        device_id: *device_id,
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
            AccountFact::SessionSteppedUp { session_id, method } => {
                if let Some(session) = self.sessions.get_mut(session_id) {
                    session.stepped_up_at = Some(at);
                    session.stepped_up_with_password = method == "password";
                }
            }
            // Facts of other features: `fold` routes them elsewhere.
            _ => {}
        }
    }

    /// Flows and their one-time codes, and the code budgets.
    fn fold_codes(&mut self, fact: &AccountFact, at: DateTime<Utc>) {
        match fact {
            AccountFact::CodeCeilingReached { .. } => {}
            AccountFact::FlowStarted { flow_id, kind, .. } => {
                if self.status == AccountStatus::New {
                    self.status = AccountStatus::Unregistered;
                }
                // A new lost-second-factor flow runs beside the others; it closes none.
                if *kind == FlowKind::LostSecondFactor {
                    self.recovery_flows.insert(
                        *flow_id,
                        RecoveryCase {
                            flow_id: *flow_id,
                            stage: RecoveryStage::EmailCode,
                            needs_phone: self.is_verified(Channel::Sms),
                            hold_until: None,
                            set_aside: false,
                        },
                    );
                }
                self.flows.insert(
                    *flow_id,
                    Flow {
                        kind: *kind,
                        started_at: at,
                        code: None,
                        factor_asked: false,
                        proven: Vec::new(),
                    },
                );
            }
            AccountFact::CodeIssued {
                flow_id,
                code_id,
                channel,
                verifier,
                expires_at,
                requester,
                deliverable,
                ..
            } => {
                // Codes of trusted devices count on their own budget only; every other code
                // also counts toward the account's ceiling.
                if !matches!(requester, Some(Requester::Device(_))) {
                    self.recent_code_issues.push(at);
                }
                if let Some(requester) = requester {
                    self.recent_codes_by_requester.push((at, requester.clone()));
                }
                self.fold_code_issued(
                    *flow_id,
                    IssuedCode {
                        code_id: *code_id,
                        channel: *channel,
                        verifier: verifier.clone(),
                        issued_at: at,
                        expires_at: *expires_at,
                        attempts: 0,
                        status: CodeStatus::Active,
                        requester: requester.clone(),
                        undeliverable: !*deliverable,
                    },
                )
            }
            AccountFact::CodeAttemptFailed {
                flow_id, attempts, ..
            } => {
                if let Some(code) = self.code_mut(*flow_id) {
                    code.attempts = *attempts;
                }
            }
            AccountFact::CodeExhausted { flow_id, .. } => {
                self.set_code_status(*flow_id, CodeStatus::Exhausted)
            }
            AccountFact::CodeExpired { flow_id, .. } => {
                self.set_code_status(*flow_id, CodeStatus::Expired)
            }
            AccountFact::CodeUsed { flow_id, .. } => {
                self.set_code_status(*flow_id, CodeStatus::Used);
                if let Some(flow) = self.flows.get_mut(flow_id) {
                    if let Some(channel) = flow.code.as_ref().map(|c| c.channel) {
                        flow.proven.push(channel);
                    }
                }
            }
            // An audit fact: the code it concerns was issued undeliverable.
            AccountFact::SmsWithheld { .. } => {}
            AccountFact::ResetFactorAsked { flow_id } => {
                if let Some(flow) = self.flows.get_mut(flow_id) {
                    flow.factor_asked = true;
                }
            }
            // Facts of other features: `fold` routes them elsewhere.
            _ => {}
        }
    }

    /// Contacts: changed, requested, verified, released.
    fn fold_contacts(&mut self, fact: &AccountFact) {
        match fact {
            AccountFact::ContactChanged { kind, contact, .. } => match kind {
                crate::contact::ContactKind::Email => {
                    self.email = Some(contact.clone());
                    self.email_verified = false;
                    self.pending_email = None;
                }
                crate::contact::ContactKind::Phone => {
                    self.phone = Some(contact.clone());
                    self.phone_verified = false;
                    self.pending_phone = None;
                }
            },
            AccountFact::ContactChangeRequested {
                kind,
                contact,
                flow_id,
                unavailable,
                ..
            } => {
                let pending = Some(PendingContact {
                    contact: contact.clone(),
                    flow_id: *flow_id,
                    unavailable: *unavailable,
                });
                match kind {
                    crate::contact::ContactKind::Email => self.pending_email = pending,
                    crate::contact::ContactKind::Phone => self.pending_phone = pending,
                }
            }
            AccountFact::ContactVerified { kind, .. } => match kind {
                crate::contact::ContactKind::Email => self.email_verified = true,
                crate::contact::ContactKind::Phone => self.phone_verified = true,
            },
            AccountFact::UnverifiedContactReleased { kind, .. } => {
                match kind {
                    crate::contact::ContactKind::Email => {
                        self.email = None;
                        self.email_verified = false;
                    }
                    crate::contact::ContactKind::Phone => {
                        self.phone = None;
                        self.phone_verified = false;
                    }
                }
                // Its verification code went to the new owner: it can no longer verify here.
                let verify = FlowKind::verify(*kind);
                self.flows.retain(|_, f| f.kind != verify);
            }
            // Facts of other features: `fold` routes them elsewhere.
            _ => {}
        }
    }

    /// Second factors: TOTP, backup codes, challenges, security keys.
    fn fold_second_factor(&mut self, fact: &AccountFact, at: DateTime<Utc>) {
        match fact {
            AccountFact::TotpEnrolmentStarted { sealed_secret, .. } => {
                self.totp = Some(TotpFactor {
                    sealed_secret: sealed_secret.clone(),
                    confirmed: false,
                    last_step: 0,
                });
            }
            AccountFact::TotpEnrolled { step, .. } => {
                if let Some(t) = self.totp.as_mut() {
                    t.confirmed = true;
                    t.last_step = *step;
                }
            }
            AccountFact::BackupCodesGenerated { verifiers, .. } => {
                self.backup_codes = verifiers
                    .iter()
                    .map(|v| BackupCode {
                        verifier: v.clone(),
                        used: false,
                    })
                    .collect();
            }
            AccountFact::MfaChallengeIssued {
                challenge_id,
                expires_at,
                door,
                ..
            } => {
                self.challenges.insert(
                    *challenge_id,
                    MfaChallenge {
                        expires_at: *expires_at,
                        used: false,
                        door: *door,
                    },
                );
            }
            AccountFact::SecondFactorVerified {
                challenge_id,
                step,
                backup_code,
                ..
            } => {
                if let Some(c) = challenge_id.and_then(|id| self.challenges.get_mut(&id)) {
                    c.used = true;
                }
                if let (Some(step), Some(t)) = (step, self.totp.as_mut()) {
                    t.last_step = t.last_step.max(*step);
                }
                if let Some(code) = backup_code.and_then(|i| self.backup_codes.get_mut(i as usize))
                {
                    code.used = true;
                }
            }
            AccountFact::SecondFactorRemoved { .. } => {
                self.totp = None;
                self.backup_codes.clear();
                self.challenges.clear();
                self.security_keys.clear();
            }
            AccountFact::SecurityKeyRegistered {
                key_id,
                name,
                credential,
                ..
            } => {
                self.security_keys.insert(
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
            AccountFact::SecurityKeyRenamed { key_id, name } => {
                if let Some(k) = self.security_keys.get_mut(key_id) {
                    k.name = name.clone();
                }
            }
            AccountFact::SecurityKeyRemoved { key_id, .. } => {
                self.security_keys.remove(key_id);
            }
            AccountFact::SecurityKeyUsed {
                key_id,
                counter,
                credential,
            } => {
                if let Some(k) = self.security_keys.get_mut(key_id) {
                    k.counter = *counter;
                    k.credential = credential.clone();
                    k.last_used_at = Some(at);
                }
            }
            AccountFact::SecurityKeyCounterRegressed { .. } => {}
            // Facts of other features: `fold` routes them elsewhere.
            _ => {}
        }
    }

    /// Account controls: high-risk cooldowns, the anti-phishing phrase, API keys, the withdrawal
    /// whitelist.
    fn fold_controls(&mut self, fact: &AccountFact, at: DateTime<Utc>) {
        match fact {
            AccountFact::HighRiskCooldownStarted { until, reason } => {
                self.cooldowns.retain(|(end, _)| *end > at);
                self.cooldowns.push((*until, *reason));
            }
            AccountFact::AntiPhishingPhraseSet { sealed_phrase, .. } => {
                self.anti_phishing_phrase = Some(sealed_phrase.clone());
            }
            AccountFact::AntiPhishingPhraseRemoved { .. } => self.anti_phishing_phrase = None,
            AccountFact::ApiKeyCreated {
                key_id,
                name,
                scopes,
                allowed_ips,
                expires_at,
                verifier,
                ..
            } => {
                self.api_keys.insert(
                    *key_id,
                    ApiKey {
                        name: name.clone(),
                        scopes: scopes.clone(),
                        allowed_ips: allowed_ips.clone(),
                        expires_at: *expires_at,
                        verifier: verifier.clone(),
                        previous: None,
                        created_at: at,
                        rotated_at: None,
                        revoked_at: None,
                    },
                );
            }
            AccountFact::ApiKeyRotated {
                key_id,
                verifier,
                previous_valid_until,
                ..
            } => {
                if let Some(key) = self.api_keys.get_mut(key_id) {
                    let old = std::mem::replace(&mut key.verifier, verifier.clone());
                    key.previous = Some((old, *previous_valid_until));
                    key.rotated_at = Some(at);
                }
            }
            AccountFact::ApiKeyRevoked { key_id, .. } => {
                if let Some(key) = self.api_keys.get_mut(key_id) {
                    key.revoked_at = Some(at);
                    key.previous = None;
                }
            }
            AccountFact::WithdrawalAddressProposed {
                flow_id,
                asset,
                network,
                sealed_address,
                lookup,
                sealed_label,
                ..
            } => {
                self.withdrawal_addresses.insert(
                    *flow_id,
                    WithdrawalAddress {
                        asset: asset.clone(),
                        network: network.clone(),
                        sealed_address: sealed_address.clone(),
                        lookup: lookup.clone(),
                        sealed_label: sealed_label.clone(),
                        proposed_at: at,
                        usable_from: None,
                    },
                );
            }
            AccountFact::WithdrawalAddressAdded {
                address_id,
                usable_from,
                ..
            } => {
                if let Some(address) = self.withdrawal_addresses.get_mut(address_id) {
                    address.usable_from = Some(*usable_from);
                }
            }
            AccountFact::WithdrawalAddressRemoved { address_id, .. } => {
                self.withdrawal_addresses.remove(address_id);
            }
            AccountFact::WhitelistModeChanged { enabled, .. } => {
                self.whitelist_only = *enabled;
            }
            // Facts of other features: `fold` routes them elsewhere.
            _ => {}
        }
    }

    /// The lost-second-factor case: its stage through the steps, review and hold.
    fn fold_recovery(&mut self, fact: &AccountFact, at: DateTime<Utc>) {
        match fact {
            AccountFact::RecoveryStepPassed { flow_id, step } => {
                let next = |case: &RecoveryCase| match (step, case.needs_phone) {
                    (RecoveryStep::Email, true) => RecoveryStage::PhoneCode,
                    _ => RecoveryStage::Evidence,
                };
                if let Some(case) = self.recovery_flows.get_mut(flow_id) {
                    case.stage = next(case);
                    // Past the code steps, it becomes the account's case.
                    if case.stage == RecoveryStage::Evidence {
                        self.recovery = self.recovery_flows.remove(flow_id);
                    }
                } else if let Some(case) = self.recovery.as_mut().filter(|c| c.flow_id == *flow_id)
                {
                    case.stage = next(case);
                }
            }
            AccountFact::RecoveryRequestSetAside {
                flow_id,
                owner_notified,
                ..
            } => {
                if let Some(case) = self.recovery_flows.get_mut(flow_id) {
                    case.set_aside = true;
                }
                if *owner_notified {
                    self.recovery_notice_at = Some(at);
                }
            }
            AccountFact::RecoveryEvidenceSubmitted { flow_id, .. } => {
                if let Some(case) = self.recovery.as_mut().filter(|c| c.flow_id == *flow_id) {
                    case.stage = RecoveryStage::Review;
                }
            }
            AccountFact::RecoveryReviewed {
                flow_id,
                approved,
                hold_until,
                ..
            } => {
                if *approved {
                    if let Some(case) = self.recovery.as_mut().filter(|c| c.flow_id == *flow_id) {
                        case.stage = RecoveryStage::Hold;
                        case.hold_until = *hold_until;
                    }
                } else if self
                    .recovery
                    .as_ref()
                    .is_some_and(|c| c.flow_id == *flow_id)
                {
                    self.recovery = None;
                }
            }
            // The owner's cancellation ends the case and every flow at the code steps.
            AccountFact::RecoveryCancelled { .. } => {
                self.recovery = None;
                self.recovery_flows.clear();
            }
            AccountFact::RecoveryCompleted { .. } => self.recovery = None,
            // Facts of other features: `fold` routes them elsewhere.
            _ => {}
        }
    }

    fn reset_door(&mut self, door: Door) {
        match door {
            Door::Untrusted => {
                self.consecutive_failures = 0;
                self.lock_level = 0;
                self.lock = None;
            }
            Door::Device(id) => {
                if let Some(d) = self.devices.get_mut(&id) {
                    d.failures = 0;
                    d.lock_level = 0;
                    d.lock = None;
                }
            }
        }
    }

    fn set_door_failures(&mut self, door: Door, failures: u32) {
        match door {
            Door::Untrusted => self.consecutive_failures = failures,
            Door::Device(id) => {
                if let Some(d) = self.devices.get_mut(&id) {
                    d.failures = failures;
                }
            }
        }
    }

    fn fold_code_issued(&mut self, flow_id: Uuid, code: IssuedCode) {
        let Some(kind) = self.flows.get(&flow_id).map(|f| f.kind) else {
            return;
        };
        // A new code for a kind of flow retires every earlier code of that kind; lost-second-
        // factor flows run side by side, so there only the flow's own earlier code.
        let side_by_side = kind == FlowKind::LostSecondFactor;
        for (_, flow) in self
            .flows
            .iter_mut()
            .filter(|(id, f)| f.kind == kind && (!side_by_side || **id == flow_id))
        {
            if let Some(old) = flow
                .code
                .as_mut()
                .filter(|c| c.status == CodeStatus::Active)
            {
                old.status = CodeStatus::Superseded;
            }
        }
        if let Some(flow) = self.flows.get_mut(&flow_id) {
            flow.code = Some(code);
        }
    }

    fn code_mut(&mut self, flow_id: Uuid) -> Option<&mut IssuedCode> {
        self.flows.get_mut(&flow_id).and_then(|f| f.code.as_mut())
    }

    fn set_code_status(&mut self, flow_id: Uuid, status: CodeStatus) {
        if let Some(code) = self.code_mut(flow_id) {
            code.status = status;
        }
    }
}

/// Moves `item` to the end of `list` (most recent last), keeping at most
/// [`super::state::MAX_SIGN_IN_PLACES`] items.
fn remember(list: &mut Vec<String>, item: String) {
    list.retain(|i| *i != item);
    list.push(item);
    let excess = list.len().saturating_sub(super::state::MAX_SIGN_IN_PLACES);
    list.drain(..excess);
}
