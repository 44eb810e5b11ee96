//! Facts recorded on an account. Past tense, immutable, versioned: the type strings and payload
//! shapes below are a frozen contract (tested in `tests`), changed only through upcasters.
use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::chain::ChainLink;
use crate::contact::{ContactKind, SealedContact};
use crate::context::RequestContext;
use crate::password::PasswordHash;
use crate::policy::codes::{Channel, FlowKind};

/// Payload version of every `AccountEvent` written by this code.
pub const EVENT_VERSION: &str = "1.0";

/// The stored envelope of one fact: when it happened and the link to its predecessor, so that
/// every event is timestamped and tamper-evident whatever its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountEvent {
    /// When the fact happened (the command's time, stamped at the edge).
    pub at: DateTime<Utc>,
    /// Hash chain link to the previous event of this aggregate (see [`crate::chain`]).
    pub prev: ChainLink,
    /// What happened.
    pub fact: AccountFact,
}

/// What happened to an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountFact {
    /// An account was opened.
    AccountRegistered {
        /// Sealed email.
        email: Option<SealedContact>,
        /// Sealed phone.
        phone: Option<SealedContact>,
        /// Argon2id PHC string.
        password_hash: PasswordHash,
        /// Request context.
        context: RequestContext,
    },
    /// Someone tried to sign up with an identifier this account holds (the caller saw the same
    /// answer as a fresh sign-up).
    DuplicateRegistrationAttempted {
        /// Request context.
        context: RequestContext,
    },
    /// Another signed-in account tried to change its contact to one this account holds; nothing
    /// changed. Recorded at most once a day, so that it cannot flood the owner's inbox.
    IdentifierClaimAttempted {
        /// Request context (the other account's request).
        context: RequestContext,
    },
    /// A sign-in succeeded and opened `session_id`.
    LoginSucceeded {
        /// The session opened.
        session_id: Uuid,
        /// Request context.
        context: RequestContext,
        /// The door signed in through (after a password, its failure count restarts; other doors
        /// keep theirs; a passkey sign-in restarts none).
        #[serde(default, skip_serializing_if = "Door::is_untrusted")]
        door: Door,
        /// How the person proved themselves (absent in the stored JSON: the password, with a
        /// second factor when one is enrolled).
        #[serde(default, skip_serializing_if = "SignInMethod::is_password")]
        method: SignInMethod,
        /// The account signed in before from this network (/24, /64) with this device (its
        /// device token, or the same user agent family): no new-sign-in notice. Absent (false)
        /// in events written before the rule, which each had their notice.
        #[serde(default, skip_serializing_if = "is_false")]
        familiar: bool,
    },
    /// The password was right, but the account is frozen: no session, no challenge. The caller
    /// is told `account_frozen` and how to unfreeze (a wrong password still answers like one).
    LoginRefusedWhileFrozen {
        /// Request context.
        context: RequestContext,
        /// The door the attempt came through.
        #[serde(default, skip_serializing_if = "Door::is_untrusted")]
        door: Door,
    },
    /// The account was frozen: every session ended, every API key and device token revoked
    /// (the facts that follow), sign-in and withdrawals refused until it is unfrozen.
    AccountFrozen {
        /// Who froze it.
        by: FreezeActor,
        /// Why, when given (staff give one; the owner may).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Request context.
        context: RequestContext,
    },
    /// The account was unfrozen: at once after the owner's recovery (codes and a current second
    /// factor), or at `hold_until` after a staff member's decision (the owner, told on every
    /// channel with a freeze link, can freeze it again meanwhile).
    AccountUnfrozen {
        /// Who unfroze it.
        by: FreezeActor,
        /// Why, when given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The account stays frozen until then (a staff unfreeze's recovery hold).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hold_until: Option<DateTime<Utc>>,
        /// Request context.
        context: RequestContext,
    },
    /// A staff member acted on the account (freeze, unfreeze, sign-out, unlock); the effects
    /// follow as their own facts. Also recorded on the member's `Staff` aggregate.
    StaffActionTaken {
        /// The staff member (aggregate id).
        staff_id: String,
        /// What they did.
        action: StaffAccountAction,
        /// Why (1 to 1000 characters).
        reason: String,
        /// Request context (the staff member's request).
        context: RequestContext,
    },
    /// A sign-in failed after the password was checked.
    LoginFailed {
        /// Why.
        reason: LoginFailureReason,
        /// Consecutive failures including this one (the policy's count at decision time).
        consecutive_failures: u32,
        /// Request context.
        context: RequestContext,
        /// Which door it counted on (absent in the stored JSON: the untrusted door).
        #[serde(default, skip_serializing_if = "Door::is_untrusted")]
        door: Door,
    },
    /// A sign-in was refused without checking the password, because of a lock.
    LoginRejectedWhileLocked {
        /// The lock's end.
        locked_until: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
        /// The locked door the request came through.
        #[serde(default, skip_serializing_if = "Door::is_untrusted")]
        door: Door,
    },
    /// A door of the account was locked after too many failures through it.
    AccountLocked {
        /// End of the lock.
        until: DateTime<Utc>,
        /// Ordinal of this lock since the last successful sign-in (1 for the first).
        level: u32,
        /// Consecutive failures that triggered it.
        failed_attempts: u32,
        /// The door locked (absent in the stored JSON: the untrusted door).
        #[serde(default, skip_serializing_if = "Door::is_untrusted")]
        door: Door,
    },
    /// The password verifier was re-made at current hashing parameters.
    PasswordRehashed {
        /// New argon2id PHC string.
        password_hash: PasswordHash,
    },
    /// A session was opened.
    SessionStarted {
        /// Random session id.
        session_id: Uuid,
        /// SHA-256 (hex) of the token's secret part.
        token_hash: String,
        /// Where the session was opened from (IP, user agent, device id).
        context: RequestContext,
        /// Hard end of the session.
        expires_at: DateTime<Utc>,
        /// End of the session if it is not used again.
        idle_expires_at: DateTime<Utc>,
        /// The trusted device the sign-in went through (or trusted): wrong proofs on this
        /// session count on that device's door. Absent for sessions opened before devices.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device_id: Option<Uuid>,
    },
    /// Use pushed back a session's idle expiry.
    SessionExtended {
        /// The session.
        session_id: Uuid,
        /// New idle expiry.
        idle_expires_at: DateTime<Utc>,
    },
    /// A session ended before expiring.
    SessionEnded {
        /// The session.
        session_id: Uuid,
        /// Why.
        reason: SessionEndReason,
        /// Who asked, from where (for an eviction: the sign-in that caused it).
        context: RequestContext,
    },
    /// A self-service flow began (contact verification, forgot password, unlock).
    FlowStarted {
        /// Random flow id.
        flow_id: Uuid,
        /// What the flow achieves.
        kind: FlowKind,
        /// Request context.
        context: RequestContext,
    },
    /// A one-time code was issued for a flow. Holds a verifier keyed with a server secret, never
    /// the code; any earlier code of the same flow kind stops working (of the same flow only, for
    /// lost-second-factor flows, which run side by side).
    CodeIssued {
        /// The flow.
        flow_id: Uuid,
        /// Random id of this code (names its delivery).
        code_id: Uuid,
        /// Where it is sent.
        channel: Channel,
        /// HMAC of the code under the server's code key (hex).
        verifier: String,
        /// When it stops working.
        expires_at: DateTime<Utc>,
        /// Whether it is sent at all: false when the channel is not a (verified, for recovery)
        /// contact of the account, or for an identifier that matches no account. The caller's
        /// answer is the same either way.
        deliverable: bool,
        /// Request context.
        context: RequestContext,
        /// Whose budget it counts on: a trusted device's own, or the requesting network's
        /// (which also counts toward the account's ceiling). Absent before requesters were
        /// recorded: such codes count toward the ceiling only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requester: Option<Requester>,
    },
    /// Untrusted requesters together reached the account's hourly ceiling of codes: until
    /// `until`, only requests from a trusted device get codes (recorded once per ceiling reached;
    /// raises the `code_ceiling` alert).
    CodeCeilingReached {
        /// Codes counted in the hour, this one included.
        issued: u32,
        /// When the oldest of them leaves the window.
        until: DateTime<Utc>,
    },
    /// A sign-in (after its second factor, where one is enrolled) trusted the device it came
    /// from, or renewed that trust: the device's token is the only copy of the secret, and
    /// requests that present it go through the device's own door.
    DeviceTrusted {
        /// The device (the same id when a trusted device signs in again).
        device_id: Uuid,
        /// SHA-256 (hex) of the device token's secret; a renewal replaces the previous one.
        token_hash: String,
        /// When the trust ends unless renewed.
        expires_at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// A device is no longer trusted; its token is refused from now on.
    DeviceRevoked {
        /// The device.
        device_id: Uuid,
        /// Why.
        reason: DeviceRevokeReason,
        /// Request context.
        context: RequestContext,
    },
    /// The owner named a device (`PATCH /v1/me/devices/{id}`); the name is the owner's own words,
    /// shown in the device list and the security activity.
    DeviceRenamed {
        /// The device.
        device_id: Uuid,
        /// New name (trimmed, 1 to 64 characters, no control characters).
        name: String,
        /// Request context.
        context: RequestContext,
    },
    /// A wrong code was typed.
    CodeAttemptFailed {
        /// The flow.
        flow_id: Uuid,
        /// The code tried against.
        code_id: Uuid,
        /// Wrong tries of this code so far, including this one.
        attempts: u32,
        /// Request context.
        context: RequestContext,
    },
    /// A code reached its limit of wrong tries and no longer works.
    CodeExhausted {
        /// The flow.
        flow_id: Uuid,
        /// The code.
        code_id: Uuid,
    },
    /// A code was presented after it expired.
    CodeExpired {
        /// The flow.
        flow_id: Uuid,
        /// The code.
        code_id: Uuid,
    },
    /// The right code was typed; it cannot be used again.
    CodeUsed {
        /// The flow.
        flow_id: Uuid,
        /// The code.
        code_id: Uuid,
        /// Request context.
        context: RequestContext,
    },
    /// The owner replaced (or added) a contact; the new one is unverified until its code is
    /// confirmed.
    ContactChanged {
        /// Which contact.
        kind: ContactKind,
        /// The new contact, sealed.
        contact: SealedContact,
        /// The contact it replaces, sealed (told about the change); `None` when added.
        previous: Option<SealedContact>,
        /// Request context.
        context: RequestContext,
    },
    /// The owner asked to replace (or add) a contact: the new one waits, unverified, until its
    /// code comes back; until then the current contact stays the sign-in identifier and the
    /// recovery channel, and it is told of the request. (Older histories replaced the contact at
    /// once with `ContactChanged`; now `ContactChanged` is recorded when the new one is verified.)
    ContactChangeRequested {
        /// Which contact.
        kind: ContactKind,
        /// The new contact, sealed.
        contact: SealedContact,
        /// The contact it would replace, sealed (told of the request); `None` when added.
        previous: Option<SealedContact>,
        /// The new contact's verification flow.
        flow_id: Uuid,
        /// The contact belongs to another account: its codes are never sent (a resend neither),
        /// so the request can never be verified. Auditors see it; the requester does not.
        #[serde(default)]
        unavailable: bool,
        /// Request context.
        context: RequestContext,
    },
    /// The owner proved they receive messages at a contact.
    ContactVerified {
        /// Which contact.
        kind: ContactKind,
        /// The verification flow.
        flow_id: Uuid,
    },
    /// A contact this account never verified was given up: someone signed up with the same
    /// identifier after the unverified claim had expired. The account no longer holds it.
    UnverifiedContactReleased {
        /// Which contact.
        kind: ContactKind,
        /// When this account claimed the identifier.
        claimed_at: DateTime<Utc>,
        /// Context of the sign-up that took it over.
        context: RequestContext,
    },
    /// The password was replaced through a reset flow.
    PasswordReset {
        /// New argon2id PHC string.
        password_hash: PasswordHash,
        /// The reset flow.
        flow_id: Uuid,
        /// Request context.
        context: RequestContext,
    },
    /// The owner set a new password while signed in (the old one and, when enrolled, a current
    /// second factor proved it).
    PasswordChanged {
        /// New argon2id PHC string.
        password_hash: PasswordHash,
        /// The session that changed it (kept open; every other one ends).
        session_id: Uuid,
        /// Request context.
        context: RequestContext,
    },
    /// The password typed to prove a sensitive action was wrong; counts toward the lockout like
    /// a wrong password at sign-in.
    PasswordConfirmationFailed {
        /// The action it was to prove (`SensitiveAction::as_str`).
        action: String,
        /// Consecutive failures including this one.
        consecutive_failures: u32,
        /// Request context.
        context: RequestContext,
        /// Which door it counted on (absent in the stored JSON: the untrusted door).
        #[serde(default, skip_serializing_if = "Door::is_untrusted")]
        door: Door,
    },
    /// A reset code was right, but the account has a second factor and none came with it: the
    /// code stays usable, and the flow may ask for a security-key challenge.
    ResetFactorAsked {
        /// The reset flow.
        flow_id: Uuid,
    },
    /// A text message was not sent because an hourly SMS budget was spent (the pumping guard):
    /// at sign-up (the flow stays open and a resend within a later budget sends a code), or by
    /// the delivery worker (recorded beside the message's `NotificationFailed`).
    SmsWithheld {
        /// The flow whose code it was; `None` for a notice.
        flow_id: Option<Uuid>,
        /// The budget that was spent: `global`, or a country calling code such as `+44`.
        scope: String,
    },
    /// Every lock (and every door's failure count) was lifted before its time.
    AccountUnlocked {
        /// Why.
        reason: UnlockReason,
        /// Request context.
        context: RequestContext,
    },
    /// High-risk actions (withdrawals, whitelist changes, second-factor removal) are refused
    /// until `until`.
    HighRiskCooldownStarted {
        /// End of the cooldown.
        until: DateTime<Utc>,
        /// What caused it.
        reason: CooldownReason,
    },
    /// The owner set or changed the phrase shown in every email, so that they can tell a real
    /// message from a phishing one.
    AntiPhishingPhraseSet {
        /// The phrase sealed under the account's data key.
        sealed_phrase: String,
        /// Request context.
        context: RequestContext,
    },
    /// The owner removed the anti-phishing phrase.
    AntiPhishingPhraseRemoved {
        /// Request context.
        context: RequestContext,
    },
    /// TOTP enrolment began: the secret, sealed under the account's data key, awaits a first
    /// code from the person's app.
    TotpEnrolmentStarted {
        /// Sealed secret.
        sealed_secret: String,
        /// Request context.
        context: RequestContext,
    },
    /// A first code confirmed the TOTP app: it is now a second factor.
    TotpEnrolled {
        /// The time step of the confirming code (accepted once only).
        step: u64,
        /// Request context.
        context: RequestContext,
    },
    /// A new set of backup codes replaced any earlier one.
    BackupCodesGenerated {
        /// Keyed verifiers of the codes (HMAC under a server key), never the codes.
        verifiers: Vec<String>,
        /// Request context.
        context: RequestContext,
    },
    /// The password was right on an account with a second factor: a challenge awaits it.
    MfaChallengeIssued {
        /// Random challenge id.
        challenge_id: Uuid,
        /// Methods that can answer (`totp`, `backup_code`).
        methods: Vec<String>,
        /// When the challenge stops working.
        expires_at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
        /// The door the password step came through: the factor step counts on it too.
        #[serde(default, skip_serializing_if = "Door::is_untrusted")]
        door: Door,
    },
    /// A second factor was proven.
    SecondFactorVerified {
        /// The challenge answered, if it was a sign-in.
        challenge_id: Option<Uuid>,
        /// `totp` or `backup_code`.
        method: String,
        /// TOTP time step used (never accepted again).
        step: Option<u64>,
        /// Backup code spent (its index in the set).
        backup_code: Option<u32>,
        /// Request context.
        context: RequestContext,
    },
    /// A wrong second factor was presented; it counts toward the lockout like a wrong password.
    SecondFactorFailed {
        /// The challenge.
        challenge_id: Option<Uuid>,
        /// Method tried.
        method: String,
        /// Consecutive failures including this one.
        consecutive_failures: u32,
        /// Request context.
        context: RequestContext,
        /// Which door it counted on (absent in the stored JSON: the untrusted door).
        #[serde(default, skip_serializing_if = "Door::is_untrusted")]
        door: Door,
    },
    /// Every second factor (TOTP and backup codes) was removed.
    SecondFactorRemoved {
        /// Request context.
        context: RequestContext,
    },
    /// A security key (WebAuthn) was registered as a second factor.
    SecurityKeyRegistered {
        /// Credential id (base64url).
        key_id: String,
        /// The owner's name for it.
        name: String,
        /// The credential as the WebAuthn library stores it: public key and counter, no secret.
        credential: serde_json::Value,
        /// Request context.
        context: RequestContext,
    },
    /// A security key was renamed.
    SecurityKeyRenamed {
        /// Credential id.
        key_id: String,
        /// New name.
        name: String,
    },
    /// A security key was removed.
    SecurityKeyRemoved {
        /// Credential id.
        key_id: String,
        /// Request context.
        context: RequestContext,
    },
    /// A security key signed a challenge; its counter (and stored credential) moved on.
    SecurityKeyUsed {
        /// Credential id.
        key_id: String,
        /// Signature counter reported.
        counter: u32,
        /// The credential after the update.
        credential: serde_json::Value,
    },
    /// A security key (or a passkey: `key_id` names one or the other, never both) presented a
    /// signature counter at or below the stored one: the key may have been cloned. The sign-in
    /// is refused.
    SecurityKeyCounterRegressed {
        /// Credential id.
        key_id: String,
        /// Request context.
        context: RequestContext,
    },
    /// A passkey (a discoverable WebAuthn credential that verifies its user) was registered: it
    /// signs in by itself, as password and second factor together.
    PasskeyRegistered {
        /// Credential id (base64url).
        key_id: String,
        /// The owner's name for it.
        name: String,
        /// The credential as the WebAuthn library stores it: public key and counter, no secret.
        credential: serde_json::Value,
        /// Request context.
        context: RequestContext,
    },
    /// A passkey was removed by its owner.
    PasskeyRemoved {
        /// Credential id.
        key_id: String,
        /// Request context.
        context: RequestContext,
    },
    /// A passkey signed a sign-in challenge with user verification; its counter (and stored
    /// credential) moved on. Recorded with the sign-in's `LoginSucceeded`.
    PasskeyUsed {
        /// Credential id.
        key_id: String,
        /// Signature counter reported (0: the authenticator keeps none).
        counter: u32,
        /// The credential after the update.
        credential: serde_json::Value,
    },
    /// A passkey sign-in was refused. Not counted toward any lockout: nothing guessable was
    /// tried (a signature cannot be guessed), and counting would let strangers lock doors.
    PasskeySignInFailed {
        /// Credential id presented.
        key_id: String,
        /// Why.
        reason: PasskeyFailureReason,
        /// Request context.
        context: RequestContext,
    },
    /// Every passkey of the account was revoked: a password reset, a lost-factor recovery or a
    /// freeze takes the account back, and a thief's passkey must not outlive that.
    PasskeysRevoked {
        /// Credential ids revoked.
        key_ids: Vec<String>,
        /// Request context.
        context: RequestContext,
    },
    /// A session proved a second factor: high-risk routes accept it for a while.
    SessionSteppedUp {
        /// The session.
        session_id: Uuid,
        /// `totp`, `backup_code` or `security_key`.
        method: String,
    },
    /// An API key was created. Only a keyed verifier of its secret is kept.
    ApiKeyCreated {
        /// Key id (public part of the key).
        key_id: Uuid,
        /// The owner's name for it.
        name: String,
        /// What it may do.
        scopes: Vec<ApiScope>,
        /// Client addresses or networks (CIDR) it may be used from; empty: anywhere.
        allowed_ips: Vec<String>,
        /// When it stops working, if ever.
        expires_at: Option<DateTime<Utc>>,
        /// Keyed verifier of the secret.
        verifier: String,
        /// Request context.
        context: RequestContext,
    },
    /// An API key got a new secret; the previous one keeps working until
    /// `previous_valid_until`.
    ApiKeyRotated {
        /// Key id.
        key_id: Uuid,
        /// Keyed verifier of the new secret.
        verifier: String,
        /// End of the grace period of the previous secret.
        previous_valid_until: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// An API key was revoked.
    ApiKeyRevoked {
        /// Key id.
        key_id: Uuid,
        /// Request context.
        context: RequestContext,
    },
    /// A withdrawal address was proposed for the whitelist; a code went to the verified email.
    WithdrawalAddressProposed {
        /// The confirming flow (also the address id once added).
        flow_id: Uuid,
        /// Asset (e.g. `BTC`).
        asset: String,
        /// Network (e.g. `bitcoin`).
        network: String,
        /// The address sealed under the account's data key.
        sealed_address: String,
        /// Keyed lookup of asset, network and address, to match withdrawals.
        lookup: String,
        /// The owner's label, sealed.
        sealed_label: String,
        /// Request context.
        context: RequestContext,
    },
    /// A proposed address was confirmed by code; withdrawals to it are allowed from
    /// `usable_from`.
    WithdrawalAddressAdded {
        /// The address id (its proposing flow).
        address_id: Uuid,
        /// End of its cooldown.
        usable_from: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// An address left the whitelist.
    WithdrawalAddressRemoved {
        /// The address id.
        address_id: Uuid,
        /// Request context.
        context: RequestContext,
    },
    /// Whitelist-only withdrawals were turned on or off.
    WhitelistModeChanged {
        /// Whether withdrawals may only go to whitelisted addresses.
        enabled: bool,
        /// Request context.
        context: RequestContext,
    },
    /// A step of a lost-second-factor recovery was passed (`email`, `phone`).
    RecoveryStepPassed {
        /// The flow.
        flow_id: Uuid,
        /// Which step.
        step: RecoveryStep,
    },
    /// Identity evidence was submitted for manual review.
    RecoveryEvidenceSubmitted {
        /// The flow.
        flow_id: Uuid,
        /// KYC reference and statement, sealed under the account's data key.
        sealed_evidence: String,
        /// Request context.
        context: RequestContext,
    },
    /// A reviewer approved or denied a recovery.
    RecoveryReviewed {
        /// The flow.
        flow_id: Uuid,
        /// Approved or denied.
        approved: bool,
        /// The reviewing staff member.
        reviewer: String,
        /// Why.
        reason: String,
        /// End of the hold before the factors are removed (approvals only).
        hold_until: Option<DateTime<Utc>>,
    },
    /// The owner cancelled a recovery from an existing session.
    RecoveryCancelled {
        /// The flow.
        flow_id: Uuid,
        /// Request context.
        context: RequestContext,
    },
    /// The hold ended: the second factors are removed (with `SecondFactorRemoved`).
    RecoveryCompleted {
        /// The flow.
        flow_id: Uuid,
        /// Request context.
        context: RequestContext,
    },
    /// A lost-second-factor request came while a case was under review or approved: the case
    /// was left as it was, and the new flow (`FlowStarted` just before) got a code that is sent
    /// nowhere, so it never progresses. The requester's answer was the same as anyone's.
    RecoveryRequestSetAside {
        /// The new flow.
        flow_id: Uuid,
        /// The case in progress, untouched.
        case_flow_id: Uuid,
        /// Whether the owner is told (at most once a day per account).
        owner_notified: bool,
    },
    /// A message reached the provider (SMTP server accepted it, SMS gateway answered 2xx).
    NotificationDelivered {
        /// Stable id of the message (source event and channel).
        notification_id: String,
        /// What it said.
        topic: String,
        /// Channel used.
        channel: Channel,
        /// The destination, masked (`a***@example.com`, `+14*****0100`).
        destination: String,
        /// Tries it took.
        attempts: u32,
    },
    /// A message could not be delivered (this try, or for good).
    NotificationFailed {
        /// Stable id of the message.
        notification_id: String,
        /// What it said.
        topic: String,
        /// Channel used.
        channel: Channel,
        /// The destination, masked; empty when there was none.
        destination: String,
        /// Why (provider's answer, without secrets).
        reason: String,
        /// Tries so far.
        attempts: u32,
        /// No more tries will be made.
        permanent: bool,
    },
}

/// Why a checked sign-in failed. Stored in events; the wire always says `invalid_credentials`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginFailureReason {
    /// The password did not match.
    WrongPassword,
    /// The identifier matches no account (recorded on its stand-in aggregate).
    UnknownIdentifier,
    /// The password was right but the account has no verified contact yet, and sign-in requires
    /// one (the caller saw the wrong-password answer; it counts toward the lockout like one).
    ContactUnverified,
}

/// How a sign-in was proven.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInMethod {
    /// The password (and the second factor when one is enrolled); every sign-in recorded before
    /// passkeys.
    #[default]
    Password,
    /// A passkey with user verification, standing for both.
    Passkey,
}

impl SignInMethod {
    /// Whether this is the password (left out of stored events: the default).
    pub fn is_password(&self) -> bool {
        *self == SignInMethod::Password
    }

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Passkey => "passkey",
        }
    }
}

/// Why a passkey sign-in was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasskeyFailureReason {
    /// The credential is not one of this account's passkeys (removed, revoked, or never).
    UnknownPasskey,
    /// The authenticator did not verify its user (no UV flag).
    UserNotVerified,
    /// The assertion does not check out (signature, challenge, origin, RP id).
    InvalidAssertion,
    /// The signature counter did not move forward: the passkey may have been cloned (recorded
    /// with `SecurityKeyCounterRegressed` too, which the alerts watch).
    CounterRegressed,
    /// The account has no verified contact, and sign-in requires one.
    ContactUnverified,
}

/// Why a session ended early.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEndReason {
    /// Its holder logged out.
    LoggedOut,
    /// Another session of the same account revoked it.
    Revoked {
        /// The revoking session.
        by_session: Uuid,
    },
    /// Too many sessions were open; the oldest was closed.
    Evicted,
    /// The password was reset: every session ends.
    PasswordReset,
    /// The password was changed from another session: every other session ends.
    PasswordChanged,
    /// A lost-second-factor recovery completed: every session ends.
    Recovery,
    /// The account was frozen: every session ends.
    Frozen,
    /// A staff member signed every session out.
    Staff,
}

/// Who froze or unfroze an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FreezeActor {
    /// The owner, from a signed-in session (`POST /v1/me/freeze`).
    Owner {
        /// The session.
        session_id: Uuid,
    },
    /// Whoever followed a freeze link from a security notice (`POST /v1/freeze`).
    Link {
        /// The link's id (single use).
        link_id: Uuid,
    },
    /// The owner's unfreeze recovery: codes to the verified contacts and a current factor.
    Recovery {
        /// The unfreeze flow.
        flow_id: Uuid,
    },
    /// A staff member.
    Staff {
        /// The staff member (aggregate id).
        staff_id: String,
    },
}

/// What a staff member did to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaffAccountAction {
    /// Froze it.
    Freeze,
    /// Unfroze it (after the recovery hold).
    Unfreeze,
    /// Ended every session.
    SignOut,
    /// Lifted every lock.
    Unlock,
}

impl StaffAccountAction {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Freeze => "freeze",
            Self::Unfreeze => "unfreeze",
            Self::SignOut => "sign_out",
            Self::Unlock => "unlock",
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The door a sign-in attempt (or a proof) goes through. Failures count on, and locks close,
/// one door only: a stranger's guesses lock the untrusted door, while a device that signed in
/// before (and presents its device token) has a door of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Door {
    /// Requests without a valid device token (and every event recorded before doors).
    #[default]
    Untrusted,
    /// Requests presenting the valid token of this trusted device.
    Device(Uuid),
}

impl Door {
    /// Whether this is the untrusted door (left out of stored events: the default).
    pub fn is_untrusted(&self) -> bool {
        *self == Door::Untrusted
    }

    /// The device, for a device's door.
    pub fn device_id(&self) -> Option<Uuid> {
        match self {
            Door::Untrusted => None,
            Door::Device(id) => Some(*id),
        }
    }
}

/// Whose budget a self-service code counts on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Requester {
    /// A trusted device (valid device token): its own budget, exempt from the account ceiling.
    Device(Uuid),
    /// The client network (`/24` IPv4, `/64` IPv6, or `unknown`) of an untrusted request.
    Network(String),
}

/// Why a device stopped being trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceRevokeReason {
    /// The owner revoked it (`DELETE /v1/me/devices/{id}`).
    Owner,
    /// The password was reset.
    PasswordReset,
    /// The password was changed.
    PasswordChanged,
    /// The account was frozen: revoked, not suspended (a thief's device does not come back).
    Frozen,
}

/// Why a lock was lifted early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnlockReason {
    /// The owner confirmed an unlock code.
    UnlockCode,
    /// The owner reset the password.
    PasswordReset,
    /// A staff member lifted it (`StaffActionTaken` just before says who and why).
    Staff,
}

/// A code step of a lost-second-factor recovery. Stored as `"email"` / `"phone"` (the strings
/// the field held when it was a `String`; events already written keep deserializing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryStep {
    /// The code sent to the verified email was right.
    Email,
    /// The code sent to the verified phone was right.
    Phone,
}

/// Why high-risk actions are paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CooldownReason {
    /// The password was reset by code.
    PasswordReset,
    /// A second factor was removed.
    SecondFactorRemoved,
    /// A lost second factor was recovered through review.
    LostFactorRecovery,
    /// A second factor was added (a thief with a session would add their own).
    SecondFactorAdded,
    /// An API key that may withdraw was created.
    WithdrawKeyCreated,
    /// Whitelist-only withdrawals were turned off.
    WhitelistDisabled,
    /// The email or the phone was replaced or added.
    ContactChanged,
    /// The password was changed while signed in.
    PasswordChanged,
    /// The account was unfrozen.
    Unfrozen,
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiScope {
    /// Read balances, orders, history.
    Read,
    /// Place and cancel orders.
    Trade,
    /// Withdraw funds (a high-risk scope).
    Withdraw,
}

impl ApiScope {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Trade => "trade",
            Self::Withdraw => "withdraw",
        }
    }
}

impl AccountFact {
    /// The stable type string of this fact.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AccountRegistered { .. } => "AccountRegistered",
            Self::DuplicateRegistrationAttempted { .. } => "DuplicateRegistrationAttempted",
            Self::IdentifierClaimAttempted { .. } => "IdentifierClaimAttempted",
            Self::LoginSucceeded { .. } => "LoginSucceeded",
            Self::LoginFailed { .. } => "LoginFailed",
            Self::LoginRefusedWhileFrozen { .. } => "LoginRefusedWhileFrozen",
            Self::AccountFrozen { .. } => "AccountFrozen",
            Self::AccountUnfrozen { .. } => "AccountUnfrozen",
            Self::StaffActionTaken { .. } => "StaffActionTaken",
            Self::LoginRejectedWhileLocked { .. } => "LoginRejectedWhileLocked",
            Self::AccountLocked { .. } => "AccountLocked",
            Self::PasswordRehashed { .. } => "PasswordRehashed",
            Self::SessionStarted { .. } => "SessionStarted",
            Self::SessionExtended { .. } => "SessionExtended",
            Self::SessionEnded { .. } => "SessionEnded",
            Self::FlowStarted { .. } => "FlowStarted",
            Self::CodeIssued { .. } => "CodeIssued",
            Self::CodeCeilingReached { .. } => "CodeCeilingReached",
            Self::DeviceTrusted { .. } => "DeviceTrusted",
            Self::DeviceRevoked { .. } => "DeviceRevoked",
            Self::DeviceRenamed { .. } => "DeviceRenamed",
            Self::CodeAttemptFailed { .. } => "CodeAttemptFailed",
            Self::CodeExhausted { .. } => "CodeExhausted",
            Self::CodeExpired { .. } => "CodeExpired",
            Self::CodeUsed { .. } => "CodeUsed",
            Self::ContactChanged { .. } => "ContactChanged",
            Self::ContactChangeRequested { .. } => "ContactChangeRequested",
            Self::ContactVerified { .. } => "ContactVerified",
            Self::UnverifiedContactReleased { .. } => "UnverifiedContactReleased",
            Self::PasswordReset { .. } => "PasswordReset",
            Self::PasswordChanged { .. } => "PasswordChanged",
            Self::ResetFactorAsked { .. } => "ResetFactorAsked",
            Self::SmsWithheld { .. } => "SmsWithheld",
            Self::PasswordConfirmationFailed { .. } => "PasswordConfirmationFailed",
            Self::AccountUnlocked { .. } => "AccountUnlocked",
            Self::HighRiskCooldownStarted { .. } => "HighRiskCooldownStarted",
            Self::AntiPhishingPhraseSet { .. } => "AntiPhishingPhraseSet",
            Self::AntiPhishingPhraseRemoved { .. } => "AntiPhishingPhraseRemoved",
            Self::TotpEnrolmentStarted { .. } => "TotpEnrolmentStarted",
            Self::TotpEnrolled { .. } => "TotpEnrolled",
            Self::BackupCodesGenerated { .. } => "BackupCodesGenerated",
            Self::MfaChallengeIssued { .. } => "MfaChallengeIssued",
            Self::SecondFactorVerified { .. } => "SecondFactorVerified",
            Self::SecondFactorFailed { .. } => "SecondFactorFailed",
            Self::SecondFactorRemoved { .. } => "SecondFactorRemoved",
            Self::SecurityKeyRegistered { .. } => "SecurityKeyRegistered",
            Self::SecurityKeyRenamed { .. } => "SecurityKeyRenamed",
            Self::SecurityKeyRemoved { .. } => "SecurityKeyRemoved",
            Self::SecurityKeyUsed { .. } => "SecurityKeyUsed",
            Self::SecurityKeyCounterRegressed { .. } => "SecurityKeyCounterRegressed",
            Self::PasskeyRegistered { .. } => "PasskeyRegistered",
            Self::PasskeyRemoved { .. } => "PasskeyRemoved",
            Self::PasskeyUsed { .. } => "PasskeyUsed",
            Self::PasskeySignInFailed { .. } => "PasskeySignInFailed",
            Self::PasskeysRevoked { .. } => "PasskeysRevoked",
            Self::SessionSteppedUp { .. } => "SessionSteppedUp",
            Self::ApiKeyCreated { .. } => "ApiKeyCreated",
            Self::ApiKeyRotated { .. } => "ApiKeyRotated",
            Self::ApiKeyRevoked { .. } => "ApiKeyRevoked",
            Self::WithdrawalAddressProposed { .. } => "WithdrawalAddressProposed",
            Self::WithdrawalAddressAdded { .. } => "WithdrawalAddressAdded",
            Self::WithdrawalAddressRemoved { .. } => "WithdrawalAddressRemoved",
            Self::WhitelistModeChanged { .. } => "WhitelistModeChanged",
            Self::RecoveryStepPassed { .. } => "RecoveryStepPassed",
            Self::RecoveryEvidenceSubmitted { .. } => "RecoveryEvidenceSubmitted",
            Self::RecoveryReviewed { .. } => "RecoveryReviewed",
            Self::RecoveryCancelled { .. } => "RecoveryCancelled",
            Self::RecoveryCompleted { .. } => "RecoveryCompleted",
            Self::RecoveryRequestSetAside { .. } => "RecoveryRequestSetAside",
            Self::NotificationDelivered { .. } => "NotificationDelivered",
            Self::NotificationFailed { .. } => "NotificationFailed",
        }
    }
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        self.fact.name().to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}

/// Contact kind of a registration, for read models that must not unseal.
impl AccountFact {
    /// Which identifier kinds an `AccountRegistered` carries.
    pub fn registered_kinds(&self) -> Vec<ContactKind> {
        match self {
            Self::AccountRegistered { email, phone, .. } => {
                let mut kinds = Vec::new();
                if email.is_some() {
                    kinds.push(ContactKind::Email);
                }
                if phone.is_some() {
                    kinds.push(ContactKind::Phone);
                }
                kinds
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }

    fn sid() -> Uuid {
        Uuid::from_u128(7)
    }

    /// One sample of every fact (also used by the redaction tests).
    pub(in crate::account) fn every_fact() -> Vec<AccountFact> {
        let ctx = RequestContext::new(Some("203.0.113.9".into()), Some("ua".into()), None);
        vec![
            AccountFact::AccountRegistered {
                email: Some(SealedContact {
                    sealed: "c".into(),
                    lookup: "l".into(),
                }),
                phone: None,
                password_hash: PasswordHash("$argon2id$x".into()),
                context: ctx.clone(),
            },
            AccountFact::DuplicateRegistrationAttempted {
                context: ctx.clone(),
            },
            AccountFact::IdentifierClaimAttempted {
                context: ctx.clone(),
            },
            AccountFact::LoginSucceeded {
                door: Default::default(),
                session_id: sid(),
                context: ctx.clone(),
                method: SignInMethod::Password,
                familiar: false,
            },
            AccountFact::LoginFailed {
                door: Default::default(),
                reason: LoginFailureReason::WrongPassword,
                consecutive_failures: 2,
                context: ctx.clone(),
            },
            AccountFact::LoginRejectedWhileLocked {
                door: Default::default(),
                locked_until: at(),
                context: ctx,
            },
            AccountFact::AccountLocked {
                door: Default::default(),
                until: at(),
                level: 1,
                failed_attempts: 5,
            },
            AccountFact::PasswordRehashed {
                password_hash: PasswordHash("$argon2id$y".into()),
            },
            AccountFact::SessionStarted {
                device_id: None,
                session_id: sid(),
                token_hash: "h".into(),
                context: RequestContext::new(None, None, Some("d".into())),
                expires_at: at(),
                idle_expires_at: at(),
            },
            AccountFact::SessionExtended {
                session_id: sid(),
                idle_expires_at: at(),
            },
            AccountFact::SessionEnded {
                session_id: sid(),
                reason: SessionEndReason::Evicted,
                context: Default::default(),
            },
            AccountFact::FlowStarted {
                flow_id: sid(),
                kind: FlowKind::ResetPassword,
                context: RequestContext::default(),
            },
            AccountFact::CodeIssued {
                requester: None,
                flow_id: sid(),
                code_id: sid(),
                channel: Channel::Email,
                verifier: "v".into(),
                expires_at: at(),
                deliverable: true,
                context: RequestContext::default(),
            },
            AccountFact::CodeAttemptFailed {
                flow_id: sid(),
                code_id: sid(),
                attempts: 1,
                context: RequestContext::default(),
            },
            AccountFact::CodeExhausted {
                flow_id: sid(),
                code_id: sid(),
            },
            AccountFact::CodeExpired {
                flow_id: sid(),
                code_id: sid(),
            },
            AccountFact::CodeUsed {
                flow_id: sid(),
                code_id: sid(),
                context: RequestContext::default(),
            },
            AccountFact::ContactChanged {
                kind: ContactKind::Phone,
                contact: SealedContact {
                    sealed: "n".into(),
                    lookup: "ln".into(),
                },
                previous: None,
                context: RequestContext::default(),
            },
            AccountFact::ContactChangeRequested {
                kind: ContactKind::Email,
                contact: SealedContact {
                    sealed: "n".into(),
                    lookup: "m".into(),
                },
                previous: None,
                flow_id: sid(),
                unavailable: false,
                context: RequestContext::default(),
            },
            AccountFact::ContactVerified {
                kind: ContactKind::Email,
                flow_id: sid(),
            },
            AccountFact::UnverifiedContactReleased {
                kind: ContactKind::Email,
                claimed_at: at(),
                context: RequestContext::default(),
            },
            AccountFact::PasswordReset {
                password_hash: PasswordHash("$argon2id$z".into()),
                flow_id: sid(),
                context: RequestContext::default(),
            },
            AccountFact::PasswordChanged {
                password_hash: PasswordHash("$argon2id$w".into()),
                session_id: sid(),
                context: RequestContext::default(),
            },
            AccountFact::PasswordConfirmationFailed {
                door: Default::default(),
                action: "change_contact".into(),
                consecutive_failures: 1,
                context: RequestContext::default(),
            },
            AccountFact::ResetFactorAsked { flow_id: sid() },
            AccountFact::SmsWithheld {
                flow_id: Some(sid()),
                scope: "+44".into(),
            },
            AccountFact::AccountUnlocked {
                reason: UnlockReason::UnlockCode,
                context: RequestContext::default(),
            },
            AccountFact::HighRiskCooldownStarted {
                until: at(),
                reason: CooldownReason::PasswordReset,
            },
            AccountFact::AntiPhishingPhraseSet {
                sealed_phrase: "v1.x".into(),
                context: RequestContext::default(),
            },
            AccountFact::AntiPhishingPhraseRemoved {
                context: RequestContext::default(),
            },
            AccountFact::TotpEnrolmentStarted {
                sealed_secret: "v1.s".into(),
                context: RequestContext::default(),
            },
            AccountFact::TotpEnrolled {
                step: 7,
                context: RequestContext::default(),
            },
            AccountFact::BackupCodesGenerated {
                verifiers: vec!["a".into()],
                context: RequestContext::default(),
            },
            AccountFact::MfaChallengeIssued {
                door: Default::default(),
                challenge_id: sid(),
                methods: vec!["totp".into()],
                expires_at: at(),
                context: RequestContext::default(),
            },
            AccountFact::SecondFactorVerified {
                challenge_id: Some(sid()),
                method: "totp".into(),
                step: Some(7),
                backup_code: None,
                context: RequestContext::default(),
            },
            AccountFact::SecondFactorFailed {
                door: Default::default(),
                challenge_id: None,
                method: "backup_code".into(),
                consecutive_failures: 1,
                context: RequestContext::default(),
            },
            AccountFact::SecondFactorRemoved {
                context: RequestContext::default(),
            },
            AccountFact::SecurityKeyRegistered {
                key_id: "k".into(),
                name: "blue key".into(),
                credential: serde_json::json!({"cred": {}}),
                context: RequestContext::default(),
            },
            AccountFact::SecurityKeyRenamed {
                key_id: "k".into(),
                name: "red key".into(),
            },
            AccountFact::SecurityKeyRemoved {
                key_id: "k".into(),
                context: RequestContext::default(),
            },
            AccountFact::SecurityKeyUsed {
                key_id: "k".into(),
                counter: 3,
                credential: serde_json::json!({"cred": {}}),
            },
            AccountFact::SecurityKeyCounterRegressed {
                key_id: "k".into(),
                context: RequestContext::default(),
            },
            AccountFact::PasskeyRegistered {
                key_id: "p".into(),
                name: "Phone".into(),
                credential: json!({"cred": {}}),
                context: RequestContext::default(),
            },
            AccountFact::PasskeyRemoved {
                key_id: "p".into(),
                context: RequestContext::default(),
            },
            AccountFact::PasskeyUsed {
                key_id: "p".into(),
                counter: 4,
                credential: json!({"cred": {}}),
            },
            AccountFact::PasskeySignInFailed {
                key_id: "p".into(),
                reason: PasskeyFailureReason::UserNotVerified,
                context: RequestContext::default(),
            },
            AccountFact::PasskeysRevoked {
                key_ids: vec!["p".into()],
                context: RequestContext::default(),
            },
            AccountFact::SessionSteppedUp {
                session_id: sid(),
                method: "totp".into(),
            },
            AccountFact::ApiKeyCreated {
                key_id: sid(),
                name: "bot".into(),
                scopes: vec![ApiScope::Read, ApiScope::Withdraw],
                allowed_ips: vec!["192.0.2.0/24".into()],
                expires_at: Some(at()),
                verifier: "v".into(),
                context: RequestContext::default(),
            },
            AccountFact::ApiKeyRotated {
                key_id: sid(),
                verifier: "w".into(),
                previous_valid_until: at(),
                context: RequestContext::default(),
            },
            AccountFact::ApiKeyRevoked {
                key_id: sid(),
                context: RequestContext::default(),
            },
            AccountFact::WithdrawalAddressProposed {
                flow_id: sid(),
                asset: "BTC".into(),
                network: "bitcoin".into(),
                sealed_address: "v1.a".into(),
                lookup: "l".into(),
                sealed_label: "v1.b".into(),
                context: RequestContext::default(),
            },
            AccountFact::WithdrawalAddressAdded {
                address_id: sid(),
                usable_from: at(),
                context: RequestContext::default(),
            },
            AccountFact::WithdrawalAddressRemoved {
                address_id: sid(),
                context: RequestContext::default(),
            },
            AccountFact::WhitelistModeChanged {
                enabled: true,
                context: RequestContext::default(),
            },
            AccountFact::RecoveryStepPassed {
                flow_id: sid(),
                step: RecoveryStep::Email,
            },
            AccountFact::RecoveryEvidenceSubmitted {
                flow_id: sid(),
                sealed_evidence: "v1.e".into(),
                context: RequestContext::default(),
            },
            AccountFact::RecoveryReviewed {
                flow_id: sid(),
                approved: true,
                reviewer: "staff-1".into(),
                reason: "documents match".into(),
                hold_until: Some(at()),
            },
            AccountFact::RecoveryCancelled {
                flow_id: sid(),
                context: RequestContext::default(),
            },
            AccountFact::RecoveryCompleted {
                flow_id: sid(),
                context: RequestContext::default(),
            },
            AccountFact::RecoveryRequestSetAside {
                flow_id: sid(),
                case_flow_id: Uuid::from_u128(8),
                owner_notified: true,
            },
            AccountFact::NotificationDelivered {
                notification_id: "n".into(),
                topic: "code".into(),
                channel: Channel::Sms,
                destination: "+1*****0100".into(),
                attempts: 1,
            },
            AccountFact::NotificationFailed {
                notification_id: "n".into(),
                topic: "code".into(),
                channel: Channel::Email,
                destination: "a***@example.com".into(),
                reason: "timeout".into(),
                attempts: 2,
                permanent: false,
            },
            AccountFact::LoginRefusedWhileFrozen {
                context: RequestContext::default(),
                door: Default::default(),
            },
            AccountFact::AccountFrozen {
                by: FreezeActor::Link { link_id: sid() },
                reason: None,
                context: RequestContext::default(),
            },
            AccountFact::AccountUnfrozen {
                by: FreezeActor::Staff {
                    staff_id: "staff-1".into(),
                },
                reason: Some("verified by phone".into()),
                hold_until: Some(at()),
                context: RequestContext::default(),
            },
            AccountFact::StaffActionTaken {
                staff_id: "staff-1".into(),
                action: StaffAccountAction::SignOut,
                reason: "owner called".into(),
                context: RequestContext::default(),
            },
        ]
    }

    #[test]
    fn test_event_types_and_versions_are_frozen() {
        let names: Vec<&str> = every_fact().iter().map(AccountFact::name).collect();
        assert_eq!(
            names,
            vec![
                "AccountRegistered",
                "DuplicateRegistrationAttempted",
                "IdentifierClaimAttempted",
                "LoginSucceeded",
                "LoginFailed",
                "LoginRejectedWhileLocked",
                "AccountLocked",
                "PasswordRehashed",
                "SessionStarted",
                "SessionExtended",
                "SessionEnded",
                "FlowStarted",
                "CodeIssued",
                "CodeAttemptFailed",
                "CodeExhausted",
                "CodeExpired",
                "CodeUsed",
                "ContactChanged",
                "ContactChangeRequested",
                "ContactVerified",
                "UnverifiedContactReleased",
                "PasswordReset",
                "PasswordChanged",
                "PasswordConfirmationFailed",
                "ResetFactorAsked",
                "SmsWithheld",
                "AccountUnlocked",
                "HighRiskCooldownStarted",
                "AntiPhishingPhraseSet",
                "AntiPhishingPhraseRemoved",
                "TotpEnrolmentStarted",
                "TotpEnrolled",
                "BackupCodesGenerated",
                "MfaChallengeIssued",
                "SecondFactorVerified",
                "SecondFactorFailed",
                "SecondFactorRemoved",
                "SecurityKeyRegistered",
                "SecurityKeyRenamed",
                "SecurityKeyRemoved",
                "SecurityKeyUsed",
                "SecurityKeyCounterRegressed",
                "PasskeyRegistered",
                "PasskeyRemoved",
                "PasskeyUsed",
                "PasskeySignInFailed",
                "PasskeysRevoked",
                "SessionSteppedUp",
                "ApiKeyCreated",
                "ApiKeyRotated",
                "ApiKeyRevoked",
                "WithdrawalAddressProposed",
                "WithdrawalAddressAdded",
                "WithdrawalAddressRemoved",
                "WhitelistModeChanged",
                "RecoveryStepPassed",
                "RecoveryEvidenceSubmitted",
                "RecoveryReviewed",
                "RecoveryCancelled",
                "RecoveryCompleted",
                "RecoveryRequestSetAside",
                "NotificationDelivered",
                "NotificationFailed",
                "LoginRefusedWhileFrozen",
                "AccountFrozen",
                "AccountUnfrozen",
                "StaffActionTaken",
            ]
        );
        for fact in every_fact() {
            let event = AccountEvent {
                at: at(),
                prev: ChainLink::default(),
                fact,
            };
            assert_eq!(event.event_version(), "1.0");
            let value = serde_json::to_value(&event).unwrap();
            // The serialized tag equals the event type string.
            assert!(value["fact"].get(event.event_type()).is_some(), "{value}");
            let back: AccountEvent = serde_json::from_value(value).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn test_login_failure_reasons_keep_their_stored_names() {
        for (reason, name) in [
            (LoginFailureReason::WrongPassword, "wrong_password"),
            (LoginFailureReason::UnknownIdentifier, "unknown_identifier"),
            (LoginFailureReason::ContactUnverified, "contact_unverified"),
        ] {
            assert_eq!(serde_json::to_value(reason).unwrap(), json!(name));
            let back: LoginFailureReason = serde_json::from_value(json!(name)).unwrap();
            assert_eq!(back, reason);
        }
    }

    #[test]
    fn test_recovery_steps_keep_their_stored_names() {
        // The only strings `RecoveryStepPassed.step` was ever written with (it was a `String`).
        for (step, name) in [
            (RecoveryStep::Email, "email"),
            (RecoveryStep::Phone, "phone"),
        ] {
            assert_eq!(serde_json::to_value(step).unwrap(), json!(name));
            let back: RecoveryStep = serde_json::from_value(json!(name)).unwrap();
            assert_eq!(back, step);
        }
        let stored = json!({"RecoveryStepPassed": {
            "flow_id": "00000000-0000-0000-0000-000000000007",
            "step": "phone"
        }});
        let fact: AccountFact = serde_json::from_value(stored.clone()).unwrap();
        assert!(matches!(
            fact,
            AccountFact::RecoveryStepPassed {
                step: RecoveryStep::Phone,
                ..
            }
        ));
        assert_eq!(serde_json::to_value(&fact).unwrap(), stored);
        assert!(serde_json::from_value::<RecoveryStep>(json!("evidence")).is_err());
    }

    #[test]
    fn test_cooldown_reasons_keep_their_stored_names() {
        for (reason, name) in [
            (CooldownReason::PasswordReset, "password_reset"),
            (CooldownReason::SecondFactorRemoved, "second_factor_removed"),
            (CooldownReason::LostFactorRecovery, "lost_factor_recovery"),
            (CooldownReason::SecondFactorAdded, "second_factor_added"),
            (CooldownReason::WithdrawKeyCreated, "withdraw_key_created"),
            (CooldownReason::WhitelistDisabled, "whitelist_disabled"),
            (CooldownReason::ContactChanged, "contact_changed"),
            (CooldownReason::PasswordChanged, "password_changed"),
            (CooldownReason::Unfrozen, "unfrozen"),
        ] {
            assert_eq!(serde_json::to_value(reason).unwrap(), json!(name));
            let back: CooldownReason = serde_json::from_value(json!(name)).unwrap();
            assert_eq!(back, reason);
        }
    }

    #[test]
    fn test_event_payload_shape_is_stable() {
        let event = AccountEvent {
            at: at(),
            prev: ChainLink::default(),
            fact: AccountFact::LoginFailed {
                door: Default::default(),
                reason: LoginFailureReason::UnknownIdentifier,
                consecutive_failures: 3,
                context: RequestContext::new(Some("198.51.100.1".into()), None, Some("dev".into())),
            },
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({
                "at": "2026-01-02T03:04:05Z",
                "prev": crate::chain::GENESIS,
                "fact": {"LoginFailed": {
                    "reason": "unknown_identifier",
                    "consecutive_failures": 3,
                    "context": {"ip": "198.51.100.1", "user_agent": null, "device_id": "dev"}
                }}
            })
        );
    }
}
