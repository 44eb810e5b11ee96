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
use crate::policy::codes::{Channel, FlowKind};
use crate::policy::SessionPolicy;

use super::events::{Door, Requester};
use super::evidence::DeviceClaim;

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
    /// When it last stepped up.
    #[serde(default)]
    pub stepped_up_at: Option<DateTime<Utc>>,
    /// That step-up was proven with the password (the account had no second factor then): it
    /// stops counting once a factor is enrolled.
    #[serde(default)]
    pub stepped_up_with_password: bool,
    /// The trusted device it signed in through (its door counts this session's wrong proofs).
    #[serde(default)]
    pub device_id: Option<Uuid>,
}

/// A device trusted by a sign-in, with its own door (failure count and lock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedDevice {
    /// SHA-256 (hex) of its token's secret.
    pub token_hash: String,
    /// When it was first trusted (`None` in states kept before this was recorded).
    #[serde(default)]
    pub first_trusted_at: Option<DateTime<Utc>>,
    /// The owner's name for it (`DeviceRenamed`).
    #[serde(default)]
    pub name: Option<String>,
    /// When it was (last) trusted.
    pub trusted_at: DateTime<Utc>,
    /// When the trust ends unless renewed.
    pub expires_at: DateTime<Utc>,
    /// Where it signed in from when (last) trusted.
    pub context: RequestContext,
    /// Consecutive failures through its door.
    pub failures: u32,
    /// Ordinal of its door's last lock since its last success.
    pub lock_level: u32,
    /// Its door's lock.
    pub lock: Option<Lock>,
}

/// Most devices trusted at once; trusting one more forgets the longest-unrenewed one.
pub const MAX_TRUSTED_DEVICES: usize = 10;

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

/// Where a flow's current code stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeStatus {
    /// Awaiting the right code.
    Active,
    /// Redeemed.
    Used,
    /// Too many wrong tries.
    Exhausted,
    /// Presented after its expiry.
    Expired,
    /// Replaced by a newer code of the same kind of flow.
    Superseded,
}

/// The latest code of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCode {
    /// Its id.
    pub code_id: Uuid,
    /// Where it went.
    pub channel: Channel,
    /// Keyed verifier (hex HMAC).
    pub verifier: String,
    /// Issue time.
    pub issued_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Wrong tries so far.
    pub attempts: u32,
    /// Status.
    pub status: CodeStatus,
    /// Whose budget it counted on (a resend counts on the same).
    #[serde(default)]
    pub requester: Option<Requester>,
    /// It was sent nowhere (`CodeIssued` with `deliverable: false`): told only to the owner
    /// (`GET /v1/flows/{id}`'s delivery status), never to anyone else.
    #[serde(default)]
    pub undeliverable: bool,
}

/// A contact the owner asked for, waiting for its verification code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingContact {
    /// The new contact, sealed.
    pub contact: SealedContact,
    /// Its verification flow.
    pub flow_id: Uuid,
    /// Another account's contact: no code of this flow is ever sent.
    #[serde(default)]
    pub unavailable: bool,
}

/// A self-service flow in progress or finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// What it achieves.
    pub kind: FlowKind,
    /// When it began.
    pub started_at: DateTime<Utc>,
    /// Its latest code.
    pub code: Option<IssuedCode>,
    /// A reset flow whose code proved right but came without the account's second factor: it
    /// may now ask for a security-key challenge (the code stays usable).
    #[serde(default)]
    pub factor_asked: bool,
    /// The channels whose codes this flow accepted, in order (an unfreeze of an account with a
    /// verified email and phone needs a code by each).
    #[serde(default)]
    pub proven: Vec<Channel>,
}

impl Flow {
    /// The step (from 1) and steps of an unfreeze flow, for "step 1 of 2". Until its first code
    /// is accepted every unfreeze counts 2 steps, whatever the identifier: the count must not
    /// tell a stranger (who never gets past the first code) whether the account has a second
    /// verified contact. After it, 2 when a code by the other channel follows, else 1 (done).
    pub fn unfreeze_step(&self) -> (u32, u32) {
        let done = self
            .code
            .as_ref()
            .is_some_and(|c| c.status == CodeStatus::Used);
        match self.proven.len() {
            0 => (1, 2),
            1 if done => (1, 1),
            _ => (2, 2),
        }
    }

    /// The channel the second step of an unfreeze is bound to: the other one than the first
    /// code's. `None` before the first code is accepted (the owner may choose).
    pub fn unfreeze_bound_channel(&self) -> Option<Channel> {
        self.proven.first().map(|c| c.other())
    }
}

/// The TOTP app of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpFactor {
    /// Secret sealed under the account's data key.
    pub sealed_secret: String,
    /// Whether a first code confirmed it.
    pub confirmed: bool,
    /// The last time step accepted: codes of this step or earlier are refused (no replay).
    pub last_step: u64,
}

/// A registered security key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityKeyFactor {
    /// The owner's name for it.
    pub name: String,
    /// The stored credential (public key, counter).
    pub credential: serde_json::Value,
    /// Last counter seen.
    pub counter: u32,
    /// When it was registered.
    pub registered_at: DateTime<Utc>,
    /// When it last signed in.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// One backup code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupCode {
    /// Keyed verifier.
    pub verifier: String,
    /// Spent.
    pub used: bool,
}

/// A sign-in waiting for its second factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaChallenge {
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// Answered already.
    pub used: bool,
    /// The door the password step came through.
    #[serde(default)]
    pub door: Door,
}

/// Where a lost-second-factor recovery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryStage {
    /// Awaiting the code sent to the verified email.
    EmailCode,
    /// Awaiting the code sent to the verified phone.
    PhoneCode,
    /// Awaiting identity evidence.
    Evidence,
    /// Awaiting a reviewer.
    Review,
    /// Approved; the factors are removed when the hold ends unless the owner cancels.
    Hold,
}

/// A lost-second-factor recovery in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryCase {
    /// Its flow.
    pub flow_id: Uuid,
    /// Current stage.
    pub stage: RecoveryStage,
    /// Whether a phone step is part of it (a verified phone when it began).
    pub needs_phone: bool,
    /// End of the hold, once approved.
    pub hold_until: Option<DateTime<Utc>>,
    /// Requested while another case was under review or approved: its code went nowhere and it
    /// never progresses (the requester's answer was the same as anyone's).
    #[serde(default)]
    pub set_aside: bool,
}

impl RecoveryCase {
    /// Step number (from 1) and steps in this case, for "step 2 of 4". Until the email code is
    /// accepted every case counts 4 steps, whether or not a phone step follows: the count must
    /// not tell a stranger (who never gets past the email step) whether the identifier has an
    /// account with a verified phone. Past the email step, a case without a phone counts 3.
    pub fn step_of(&self) -> (u32, u32) {
        if self.stage == RecoveryStage::EmailCode {
            return (1, 4);
        }
        let total = if self.needs_phone { 4 } else { 3 };
        let step = match self.stage {
            RecoveryStage::EmailCode => 1,
            RecoveryStage::PhoneCode => 2,
            RecoveryStage::Evidence => total - 1,
            RecoveryStage::Review | RecoveryStage::Hold => total,
        };
        (step, total)
    }

    /// Under review or approved (on hold): a case in progress, which a new request for the
    /// account leaves untouched. Only the owner or a reviewer ends it.
    pub fn is_in_progress(&self) -> bool {
        matches!(self.stage, RecoveryStage::Review | RecoveryStage::Hold)
    }

    /// The channel the current step's code must come by, for the code steps: the email step
    /// proves the inbox, the phone step the phone, so each accepts only a code sent there.
    pub fn bound_channel(&self) -> Option<Channel> {
        match self.stage {
            RecoveryStage::EmailCode => Some(Channel::Email),
            RecoveryStage::PhoneCode => Some(Channel::Sms),
            RecoveryStage::Evidence | RecoveryStage::Review | RecoveryStage::Hold => None,
        }
    }
}

/// Passwords remembered besides the current one, so a reset cannot reuse them.
pub const PASSWORD_HISTORY: usize = 4;

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
    #[serde(default)]
    pub(super) email_verified: bool,
    #[serde(default)]
    pub(super) phone_verified: bool,
    /// Earlier password verifiers, newest first (at most [`PASSWORD_HISTORY`]).
    #[serde(default)]
    pub(super) previous_passwords: Vec<PasswordHash>,
    #[serde(default)]
    pub(super) flows: BTreeMap<Uuid, Flow>,
    /// Issue times of the codes counted toward the hourly cap (past hour only).
    #[serde(default)]
    pub(super) recent_code_issues: Vec<DateTime<Utc>>,
    /// High-risk cooldowns in force: end and cause.
    #[serde(default)]
    pub(super) cooldowns: Vec<(DateTime<Utc>, super::events::CooldownReason)>,
    /// Sealed anti-phishing phrase.
    #[serde(default)]
    pub(super) anti_phishing_phrase: Option<String>,
    #[serde(default)]
    pub(super) totp: Option<TotpFactor>,
    #[serde(default)]
    pub(super) backup_codes: Vec<BackupCode>,
    #[serde(default)]
    pub(super) challenges: BTreeMap<Uuid, MfaChallenge>,
    /// The lost-second-factor case past the code steps (evidence, review, hold). (Snapshots
    /// written before `recovery_flows` existed may hold a case at a code step here.)
    #[serde(default)]
    pub(super) recovery: Option<RecoveryCase>,
    /// Lost-second-factor flows still at their code steps, side by side: a new request never
    /// closes another.
    #[serde(default)]
    pub(super) recovery_flows: BTreeMap<Uuid, RecoveryCase>,
    /// When the owner was last told of a recovery request set aside because a case was in
    /// progress (at most once a day, so strangers cannot flood the owner).
    #[serde(default)]
    pub(super) recovery_notice_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(super) security_keys: BTreeMap<String, SecurityKeyFactor>,
    /// Passkeys by credential id (same shape as a security key; they sign in by themselves).
    #[serde(default)]
    pub(super) passkeys: BTreeMap<String, SecurityKeyFactor>,
    #[serde(default)]
    pub(super) api_keys: BTreeMap<Uuid, ApiKey>,
    /// Whitelisted withdrawal addresses by id (proposed ones wait for their code).
    #[serde(default)]
    pub(super) withdrawal_addresses: BTreeMap<Uuid, WithdrawalAddress>,
    #[serde(default)]
    pub(super) whitelist_only: bool,
    /// A requested email, waiting for its code (the current one stays until then).
    #[serde(default)]
    pub(super) pending_email: Option<PendingContact>,
    /// A requested phone, waiting for its code.
    #[serde(default)]
    pub(super) pending_phone: Option<PendingContact>,
    /// When the owner was last told that another account tried to take an identifier.
    #[serde(default)]
    pub(super) identifier_claim_noticed_at: Option<DateTime<Utc>>,
    /// Devices trusted by a sign-in, each with its own door.
    #[serde(default)]
    pub(super) devices: BTreeMap<Uuid, TrustedDevice>,
    /// Issue times and requesters of the codes of the past hour (each requester's budget).
    #[serde(default)]
    pub(super) recent_codes_by_requester: Vec<(DateTime<Utc>, Requester)>,
    /// The freeze in force (or ending at a staff unfreeze's hold).
    #[serde(default)]
    pub(super) frozen: Option<Freeze>,
    /// Freeze links used, with when each was minted (forgotten once past their lifetime).
    #[serde(default)]
    pub(super) used_freeze_links: BTreeMap<Uuid, DateTime<Utc>>,
    /// Networks (/24, /64) the account signed in from, most recent last (at most
    /// [`MAX_SIGN_IN_PLACES`]).
    #[serde(default)]
    pub(super) sign_in_networks: Vec<String>,
    /// Network and user agent family pairs the account signed in with, most recent last.
    #[serde(default)]
    pub(super) sign_in_places: Vec<String>,
}

/// Most networks (and network and browser pairs) remembered for the new-sign-in rule.
pub const MAX_SIGN_IN_PLACES: usize = 32;

/// How long a freeze link works after it is minted.
pub const FREEZE_LINK_TTL: chrono::Duration = chrono::Duration::days(7);

/// A freeze in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freeze {
    /// When it began.
    pub since: DateTime<Utc>,
    /// Who froze the account.
    pub by: super::events::FreezeActor,
    /// A staff unfreeze ends it at this time (the recovery hold), unless frozen again.
    pub release_at: Option<DateTime<Utc>>,
}

/// An API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The owner's name for it.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<super::events::ApiScope>,
    /// Addresses or CIDR networks it may be used from; empty: anywhere.
    pub allowed_ips: Vec<String>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// Keyed verifier of the current secret.
    pub verifier: String,
    /// The previous secret's verifier and the end of its grace period, after a rotation.
    pub previous: Option<(String, DateTime<Utc>)>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last rotated.
    pub rotated_at: Option<DateTime<Utc>>,
    /// Revoked keys stay listed, refused.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A withdrawal address on (or proposed for) the whitelist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawalAddress {
    /// Asset.
    pub asset: String,
    /// Network.
    pub network: String,
    /// The address, sealed.
    pub sealed_address: String,
    /// Keyed lookup of asset, network and address.
    pub lookup: String,
    /// Label, sealed.
    pub sealed_label: String,
    /// When it was proposed.
    pub proposed_at: DateTime<Utc>,
    /// From when withdrawals to it are allowed; `None` while unconfirmed.
    pub usable_from: Option<DateTime<Utc>>,
}

impl Account {
    /// Lifecycle status.
    pub fn status(&self) -> AccountStatus {
        self.status
    }

    /// Whether the account is frozen at `now` (a staff unfreeze's hold still counts as frozen).
    pub fn is_frozen(&self, now: DateTime<Utc>) -> bool {
        self.frozen
            .as_ref()
            .is_some_and(|f| f.release_at.is_none_or(|r| now < r))
    }

    /// The freeze in force at `now`, if any.
    pub fn freeze_at(&self, now: DateTime<Utc>) -> Option<&Freeze> {
        self.frozen.as_ref().filter(|_| self.is_frozen(now))
    }

    /// The lock of the untrusted door in force at `now`, if any.
    pub fn lock_at(&self, now: DateTime<Utc>) -> Option<Lock> {
        self.door_lock_at(Door::Untrusted, now)
    }

    /// The lock of `door` in force at `now`, if any.
    pub fn door_lock_at(&self, door: Door, now: DateTime<Utc>) -> Option<Lock> {
        self.door_state(door).2.filter(|l| now < l.until)
    }

    /// Consecutive failures counted toward the untrusted door's next lock.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// A door's failures so far, its lock level and its lock (a door of a device no longer
    /// trusted has none).
    pub(super) fn door_state(&self, door: Door) -> (u32, u32, Option<Lock>) {
        match door {
            Door::Untrusted => (self.consecutive_failures, self.lock_level, self.lock),
            Door::Device(id) => self
                .devices
                .get(&id)
                .map_or((0, 0, None), |d| (d.failures, d.lock_level, d.lock)),
        }
    }

    /// Whether any door counts failures or is (or was, since its last success) locked.
    pub(super) fn any_door_failing(&self, now: DateTime<Utc>) -> bool {
        let failing = |(failures, level, lock): (u32, u32, Option<Lock>)| {
            failures > 0 || level > 0 || lock.is_some_and(|l| now < l.until)
        };
        failing(self.door_state(Door::Untrusted))
            || self
                .devices
                .values()
                .any(|d| failing((d.failures, d.lock_level, d.lock)))
    }

    /// The door a request presenting `claim` goes through: the device's own door when the
    /// claim names a device this account trusts at `now` with the matching token, otherwise the
    /// untrusted door (a revoked, expired or foreign token is no token at all).
    pub fn door_for(&self, claim: Option<&DeviceClaim>, now: DateTime<Utc>) -> Door {
        claim
            .and_then(|c| {
                self.devices
                    .get(&c.device_id)
                    .filter(|d| now < d.expires_at)
                    .filter(|d| bool::from(d.token_hash.as_bytes().ct_eq(c.token_hash.as_bytes())))
                    .map(|_| Door::Device(c.device_id))
            })
            .unwrap_or(Door::Untrusted)
    }

    /// The door a session's proofs go through: the device it signed in through, while trusted.
    pub fn session_door(&self, session_id: Option<Uuid>, now: DateTime<Utc>) -> Door {
        session_id
            .and_then(|s| self.sessions.get(&s))
            .and_then(|s| s.device_id)
            .filter(|id| self.devices.get(id).is_some_and(|d| now < d.expires_at))
            .map_or(Door::Untrusted, Door::Device)
    }

    /// Every device the account remembers: trusted ones and those whose trust expired (until
    /// revoked or pushed out by newer ones), in id order.
    pub fn known_devices(&self) -> Vec<(Uuid, &TrustedDevice)> {
        self.devices.iter().map(|(id, d)| (*id, d)).collect()
    }

    /// Devices trusted at `now`.
    pub fn trusted_devices(&self, now: DateTime<Utc>) -> Vec<(Uuid, &TrustedDevice)> {
        self.devices
            .iter()
            .filter(|(_, d)| now < d.expires_at)
            .map(|(id, d)| (*id, d))
            .collect()
    }

    /// Whether a reset flow proved its code but lacked the second factor, and its code still
    /// works: only then may it ask for a security-key challenge (before that, a stranger
    /// holding the flow id would learn which keys the account has).
    pub fn reset_factor_asked(&self, flow_id: Uuid, now: DateTime<Utc>) -> bool {
        self.status == AccountStatus::Active
            && self.flows.get(&flow_id).is_some_and(|f| {
                f.kind == FlowKind::ResetPassword
                    && f.factor_asked
                    && f.code
                        .as_ref()
                        .is_some_and(|c| c.status == CodeStatus::Active && now < c.expires_at)
            })
    }

    /// A requested contact of `kind` still waiting for its code.
    pub fn pending_contact(&self, kind: crate::contact::ContactKind) -> Option<&PendingContact> {
        match kind {
            crate::contact::ContactKind::Email => self.pending_email.as_ref(),
            crate::contact::ContactKind::Phone => self.pending_phone.as_ref(),
        }
    }

    /// The sealed email, if one was registered.
    pub fn email(&self) -> Option<&SealedContact> {
        self.email.as_ref()
    }

    /// The sealed phone, if one was registered.
    pub fn phone(&self) -> Option<&SealedContact> {
        self.phone.as_ref()
    }

    /// Whether the owner proved they receive messages on a channel.
    pub fn is_verified(&self, channel: Channel) -> bool {
        match channel {
            Channel::Email => self.email.is_some() && self.email_verified,
            Channel::Sms => self.phone.is_some() && self.phone_verified,
        }
    }

    /// Whether any contact (email or phone) is verified.
    pub fn has_verified_contact(&self) -> bool {
        self.is_verified(Channel::Email) || self.is_verified(Channel::Sms)
    }

    /// The kind of contact a lookup hash names, if it is one of this account's contacts, and
    /// whether it is verified.
    pub fn contact_by_lookup(&self, lookup: &str) -> Option<(crate::contact::ContactKind, bool)> {
        use crate::contact::ContactKind;
        match (&self.email, &self.phone) {
            (Some(c), _) if c.lookup == lookup => Some((ContactKind::Email, self.email_verified)),
            (_, Some(c)) if c.lookup == lookup => Some((ContactKind::Phone, self.phone_verified)),
            _ => None,
        }
    }

    /// Verified channels, email first.
    pub fn verified_channels(&self) -> Vec<Channel> {
        [Channel::Email, Channel::Sms]
            .into_iter()
            .filter(|c| self.is_verified(*c))
            .collect()
    }

    /// A flow by id.
    pub fn flow(&self, flow_id: Uuid) -> Option<&Flow> {
        self.flows.get(&flow_id)
    }

    /// End of the high-risk cooldown, if one is in force at `now`.
    pub fn high_risk_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cooldowns
            .iter()
            .map(|(until, _)| *until)
            .filter(|until| now < *until)
            .max()
    }

    /// The causes of the cooldowns in force at `now` (`password_reset`, …).
    pub fn high_risk_reasons(&self, now: DateTime<Utc>) -> Vec<String> {
        let mut reasons: Vec<String> = self
            .cooldowns
            .iter()
            .filter(|(until, _)| now < *until)
            .filter_map(|(_, reason)| {
                serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
            })
            .collect();
        reasons.dedup();
        reasons
    }

    /// The sealed anti-phishing phrase, if set.
    pub fn anti_phishing_phrase(&self) -> Option<&str> {
        self.anti_phishing_phrase.as_deref()
    }

    /// Whether a lookup hash is one of this account's current contacts.
    pub fn holds_lookup(&self, lookup: &str) -> bool {
        self.email
            .iter()
            .chain(self.phone.iter())
            .any(|c| c.lookup == lookup)
    }

    /// Whether sign-in needs a second factor.
    pub fn has_second_factor(&self) -> bool {
        self.totp.as_ref().is_some_and(|t| t.confirmed) || !self.security_keys.is_empty()
    }

    /// Whether a confirmed TOTP app is enrolled.
    pub fn has_totp(&self) -> bool {
        self.totp.as_ref().is_some_and(|t| t.confirmed)
    }

    /// Registered security keys by credential id.
    pub fn security_keys(&self) -> &BTreeMap<String, SecurityKeyFactor> {
        &self.security_keys
    }

    /// Registered passkeys by credential id.
    pub fn passkeys(&self) -> &BTreeMap<String, SecurityKeyFactor> {
        &self.passkeys
    }

    /// The TOTP factor, confirmed or pending.
    pub fn totp(&self) -> Option<&TotpFactor> {
        self.totp.as_ref()
    }

    /// Unused backup codes.
    pub fn backup_codes_left(&self) -> usize {
        self.backup_codes.iter().filter(|c| !c.used).count()
    }

    /// The lost-second-factor recovery that matters most: the case past the code steps, else the
    /// newest flow still at its code steps.
    pub fn recovery(&self) -> Option<&RecoveryCase> {
        self.recovery.as_ref().or_else(|| {
            self.recovery_flows
                .values()
                .max_by_key(|c| (self.flows.get(&c.flow_id).map(|f| f.started_at), c.flow_id))
        })
    }

    /// The lost-second-factor case of one flow, whatever its stage.
    pub fn recovery_case(&self, flow_id: Uuid) -> Option<&RecoveryCase> {
        self.recovery_flows
            .get(&flow_id)
            .or_else(|| self.recovery.as_ref().filter(|c| c.flow_id == flow_id))
    }

    /// The lost-second-factor case under review or approved, if any.
    pub fn recovery_in_progress(&self) -> Option<&RecoveryCase> {
        self.recovery.as_ref().filter(|c| c.is_in_progress())
    }

    /// The channel a flow's current code must be sent on, when its step proves a contact:
    /// verification flows their contact, whitelist confirmations the email, the lost-second-
    /// factor steps the email then the phone. `None` when the owner may choose (forgot
    /// password, unlock) or for an unknown flow.
    pub fn bound_channel(&self, flow_id: Uuid) -> Option<Channel> {
        let kind = self.flows.get(&flow_id)?.kind;
        match kind {
            FlowKind::LostSecondFactor => self
                .recovery_case(flow_id)
                .map_or(Some(Channel::Email), RecoveryCase::bound_channel),
            FlowKind::Unfreeze => self.flows.get(&flow_id)?.unfreeze_bound_channel(),
            other => other.bound_channel(),
        }
    }

    /// A sign-in challenge by id.
    pub fn challenge(&self, id: Uuid) -> Option<&MfaChallenge> {
        self.challenges.get(&id)
    }

    /// A sign-in challenge that can still be answered at `now`: issued to this account, not yet
    /// answered, not expired. A route that takes a challenge id asks this before anything else.
    pub fn open_challenge(&self, id: Uuid, now: DateTime<Utc>) -> Option<&MfaChallenge> {
        self.challenges
            .get(&id)
            .filter(|c| !c.used && now < c.expires_at && self.status == AccountStatus::Active)
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
        if matches
            && session.is_live(now)
            && self.status == AccountStatus::Active
            && !self.is_frozen(now)
        {
            Ok(session)
        } else {
            Err(SessionRejection::Invalid)
        }
    }
}
