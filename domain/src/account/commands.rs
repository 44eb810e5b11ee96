//! What callers ask an account to do. Commands carry validated input only; time and randomness
//! (session ids, token hashes) are generated at the edge and passed in.
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use uuid::Uuid;

use crate::contact::SealedContact;
use crate::context::RequestContext;
use crate::password::CandidatePassword;
use crate::policy::codes::{Channel, FlowKind};

use super::evidence::{DeviceClaim, KeyCheck, MfaProof};
use super::proof::Proof;

/// A command to the `Account` aggregate.
#[derive(Debug)]
pub enum AccountCommand {
    /// Open a new account.
    RegisterAccount(RegisterAccount),
    /// Someone tried to sign up with an identifier this account already holds.
    RecordDuplicateRegistration {
        /// When and from where.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Another account tried to take an identifier this account holds (the owner is told, at
    /// most once a day).
    RecordIdentifierClaimAttempt {
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Sign in with a password (also sent to the stand-in aggregate of an unknown identifier).
    AttemptLogin(AttemptLogin),
    /// Give up an identifier this account never verified, because someone else signs up with
    /// it and the claim is older than the contact policy allows.
    ReleaseUnverifiedContact {
        /// Keyed lookup hash of the identifier.
        lookup: String,
        /// When this account claimed it (from the identifier directory).
        claimed_at: DateTime<Utc>,
        /// Now.
        at: DateTime<Utc>,
        /// Context of the sign-up taking it over.
        context: RequestContext,
    },
    /// Push back a session's idle expiry after use.
    ExtendSession {
        /// Session to extend.
        session_id: Uuid,
        /// Now.
        at: DateTime<Utc>,
    },
    /// End one session (logout, or revocation from another session).
    EndSession {
        /// Session to end.
        session_id: Uuid,
        /// The session that asked (equal to `session_id` for a logout).
        by_session: Uuid,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Begin a flow and issue its first code (forgot password, unlock, or a verification flow on
    /// a decoy aggregate for a duplicate sign-up).
    StartFlow(StartFlow),
    /// Issue a new code for a flow, optionally on the other channel.
    ResendCode {
        /// The flow.
        flow_id: Uuid,
        /// Channel wanted; `None` keeps the flow's channel.
        channel: Option<Channel>,
        /// The new code's id and verifier.
        code: CodeGrant,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Present a code for a flow, and what to do when it is right.
    RedeemCode(RedeemCode),
    /// Replace or add a contact (the password confirms it is the owner); starts its verification.
    ChangeContact(ChangeContact),
    /// Begin TOTP enrolment with a secret drawn and sealed at the edge.
    StartTotpEnrolment {
        /// The secret sealed under the account's data key.
        sealed_secret: String,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Confirm TOTP enrolment with a first code; the first backup codes come with it when it is
    /// the account's first factor (existing ones are kept).
    ConfirmTotpEnrolment {
        /// The time step the typed code matched (checked at the edge, which holds the key);
        /// `None` when it matched none.
        matched_step: Option<u64>,
        /// Keyed verifiers of the new backup codes.
        backup_verifiers: Vec<String>,
        /// The proof of `SensitiveAction::AddSecondFactor`.
        proof: Proof,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Answer a sign-in challenge with a second factor.
    CompleteMfa(CompleteMfa),
    /// Replace the backup codes (proven with the password and a second factor).
    RegenerateBackupCodes {
        /// The proof of `SensitiveAction::RegenerateBackupCodes`.
        proof: Proof,
        /// Keyed verifiers of the new codes.
        verifiers: Vec<String>,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Register a security key (checked by the WebAuthn library at the edge).
    RegisterSecurityKey {
        /// Credential id.
        key_id: String,
        /// The owner's name for it.
        name: String,
        /// The credential to store.
        credential: serde_json::Value,
        /// The proof of `SensitiveAction::AddSecondFactor`: a stolen session alone must not add
        /// a factor the thief controls.
        proof: Proof,
        /// Keyed verifiers of fresh backup codes, used when this is the account's first second
        /// factor (so a lost key never leaves the owner without a way back).
        backup_verifiers: Vec<String>,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Rename a security key.
    RenameSecurityKey {
        /// Credential id.
        key_id: String,
        /// New name.
        name: String,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Remove one security key (password and a current factor required).
    RemoveSecurityKey {
        /// Credential id.
        key_id: String,
        /// The proof of `SensitiveAction::RemoveSecondFactor`.
        proof: Proof,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Register a passkey (the proof of `SensitiveAction::AddPasskey`).
    RegisterPasskey(RegisterPasskey),
    /// Remove a passkey (the proof of `SensitiveAction::RemovePasskey`).
    RemovePasskey {
        /// Credential id.
        key_id: String,
        /// The proof of `SensitiveAction::RemovePasskey`.
        proof: Proof,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Sign in with a passkey (no password, no second factor: the passkey is both).
    SignInWithPasskey(SignInWithPasskey),
    /// Remove every second factor (password and a current factor required).
    RemoveSecondFactor {
        /// The proof of `SensitiveAction::RemoveSecondFactor`.
        proof: Proof,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Submit identity evidence for a lost-second-factor recovery.
    SubmitRecoveryEvidence {
        /// The flow.
        flow_id: Uuid,
        /// KYC reference and statement, sealed at the edge.
        sealed_evidence: String,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// A reviewer's decision on a recovery.
    ReviewRecovery {
        /// The flow.
        flow_id: Uuid,
        /// Approve or deny.
        approve: bool,
        /// Staff member.
        reviewer: String,
        /// Why.
        reason: String,
        /// Now.
        at: DateTime<Utc>,
    },
    /// The owner cancels a recovery (from a session).
    CancelRecovery {
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// After the hold: remove the factors.
    CompleteRecovery {
        /// The flow.
        flow_id: Uuid,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Set (`Some`) or remove (`None`) the anti-phishing phrase, sealed at the edge.
    SetAntiPhishingPhrase {
        /// The sealed phrase.
        sealed_phrase: Option<String>,
        /// The proof of `SensitiveAction::AntiPhishingPhrase`.
        proof: Proof,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Record the outcome of a delivery (`NotificationDelivered` or `NotificationFailed`).
    RecordNotificationOutcome {
        /// The outcome fact.
        outcome: crate::account::AccountFact,
        /// Now.
        at: DateTime<Utc>,
    },
    /// Stop trusting a device (needs a stepped-up session: `SensitiveAction::ManageDevices`);
    /// the sessions it opened end.
    RevokeDevice {
        /// The device.
        device_id: Uuid,
        /// The caller's session.
        session_id: Uuid,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Name a device the account remembers (a session suffices: a name changes no access).
    RenameDevice {
        /// The device.
        device_id: Uuid,
        /// New name: trimmed, 1 to 64 characters, no control characters.
        name: String,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// End every session but the caller's.
    EndOtherSessions {
        /// The caller's session, kept open.
        keep: Uuid,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Prove a second factor again (the password when none is enrolled) within a session, for
    /// the actions that need a stepped-up session.
    StepUp {
        /// The session.
        session_id: Uuid,
        /// The proof of `SensitiveAction::StepUp`.
        proof: Proof,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Set a new password while signed in; every other session ends.
    ChangePassword(ChangePassword),
    /// Create an API key (the secret was drawn at the edge; only its verifier comes here).
    CreateApiKey {
        /// The key.
        key: NewApiKey,
        /// The session's proof (`ManageApiKeys`, and `WithdrawalControls` for a withdraw scope).
        proof: Proof,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Give an API key a new secret; the old one works for `grace` more.
    RotateApiKey {
        /// Key id.
        key_id: Uuid,
        /// Verifier of the new secret.
        verifier: String,
        /// How long the previous secret keeps working.
        grace: chrono::Duration,
        /// The session's proof (`ManageApiKeys`, and `WithdrawalControls` for a withdraw scope).
        proof: Proof,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Revoke one API key, or every live one (`None`).
    RevokeApiKeys {
        /// The key, or all.
        key_id: Option<Uuid>,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Propose a withdrawal address; a code goes to the verified email to confirm it.
    ProposeWithdrawalAddress {
        /// The address, sealed at the edge, with its flow and code.
        address: NewWithdrawalAddress,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Take an address off the whitelist.
    RemoveWithdrawalAddress {
        /// The address id.
        address_id: Uuid,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Freeze the account (a session, a freeze link or a staff member asks).
    Freeze {
        /// Who asks.
        by: FreezeRequest,
        /// Why, when given (a staff member always gives one).
        reason: Option<String>,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// A staff member's action on the account: unfreeze (after the recovery hold), sign every
    /// session out, or lift every lock. (A staff freeze is `Freeze` with `FreezeRequest::Staff`.)
    StaffAction {
        /// The staff member (aggregate id).
        staff_id: String,
        /// What they do (not `Freeze`).
        action: super::events::StaffAccountAction,
        /// Why.
        reason: String,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
    /// Turn whitelist-only withdrawals on or off.
    SetWhitelistMode {
        /// On or off.
        enabled: bool,
        /// The session's proof (`WithdrawalControls`, needed to turn it off).
        proof: Proof,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
}

/// Who asks to freeze an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FreezeRequest {
    /// A signed-in session of the account (a session alone suffices: freezing protects).
    Session {
        /// The session.
        session_id: Uuid,
    },
    /// A freeze link from a security notice: its id and when it was minted (sealed in the link,
    /// checked at the edge; the aggregate refuses it past its lifetime or used before).
    Link {
        /// The link's id.
        link_id: Uuid,
        /// When it was minted.
        issued_at: DateTime<Utc>,
    },
    /// A staff member (the route checked the role).
    Staff {
        /// The staff member (aggregate id).
        staff_id: String,
    },
}

/// Input of `RegisterAccount`.
#[derive(Debug)]
pub struct RegisterAccount {
    /// Sealed email, if given.
    pub email: Option<SealedContact>,
    /// Sealed phone, if given.
    pub phone: Option<SealedContact>,
    /// One verification flow per contact given, each with its first code.
    pub verifications: Vec<(crate::contact::ContactKind, FlowGrant)>,
    /// The phone's first code is not sent: the SMS budget named here (`global` or a calling
    /// code) is spent. The flow still starts, so a later resend can verify the phone.
    pub sms_withheld: Option<String>,
    /// A password that passed the policy.
    pub password: CandidatePassword,
    /// Now.
    pub at: DateTime<Utc>,
    /// Request context.
    pub context: RequestContext,
}

/// Input of `ChangeContact`.
#[derive(Debug, Clone)]
pub struct ChangeContact {
    /// Which contact.
    pub kind: crate::contact::ContactKind,
    /// The new contact, sealed.
    pub contact: SealedContact,
    /// The proof of `SensitiveAction::ChangeContact`.
    pub proof: Proof,
    /// The contact belongs to another account: after the proof, only a verification flow whose
    /// code is never sent is recorded, so the answer is the same and nothing is claimed.
    pub unavailable: bool,
    /// The verification flow for the new contact.
    pub grant: FlowGrant,
    /// Now.
    pub at: DateTime<Utc>,
    /// Request context.
    pub context: RequestContext,
}

/// Input of `AttemptLogin`.
#[derive(Debug)]
pub struct AttemptLogin {
    /// Lookup hash of the identifier typed: an account refuses one it no longer holds (a
    /// contact changed since the edge cached where the identifier leads).
    pub lookup: Option<String>,
    /// The typed password, normalised; never stored.
    pub password: SecretString,
    /// The session to open if the attempt succeeds.
    pub grant: SessionGrant,
    /// The device token presented, if any (the aggregate decides whether it opens a door).
    pub device: Option<DeviceClaim>,
    /// Now.
    pub at: DateTime<Utc>,
    /// Request context.
    pub context: RequestContext,
}

/// A device token prepared at the edge with a session: a fresh device id (used when the sign-in
/// came through the untrusted door) and the hash of a fresh secret (the renewed token's, when a
/// trusted device signs in again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceGrant {
    /// Random id for a newly trusted device.
    pub device_id: Uuid,
    /// SHA-256 (hex) of the token's secret part.
    pub token_hash: String,
}

/// A session prepared at the edge: a random id and the hash of a random token. The token itself is
/// returned to the client and never reaches the aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionGrant {
    /// Random session id.
    pub session_id: Uuid,
    /// SHA-256 (hex) of the token's secret part.
    pub token_hash: String,
    /// The device token that comes with the session.
    pub device: DeviceGrant,
}

/// A one-time code prepared at the edge: a random id and the keyed verifier of the code (the code
/// itself goes to the delivery queue, never to the aggregate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeGrant {
    /// Random code id.
    pub code_id: Uuid,
    /// HMAC of the code bound to its flow, under the server's code key (hex).
    pub verifier: String,
}

/// A new flow's id with its first code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowGrant {
    /// Random flow id.
    pub flow_id: Uuid,
    /// The first code.
    pub code: CodeGrant,
}

/// Input of `StartFlow`.
#[derive(Debug, Clone)]
pub struct StartFlow {
    /// The flow's id and first code.
    pub grant: FlowGrant,
    /// What the flow achieves.
    pub kind: FlowKind,
    /// Channel asked for, if any.
    pub channel: Option<Channel>,
    /// Channel of the identifier the person typed (the default).
    pub typed: Channel,
    /// The device token presented, if any: a trusted device's requests have their own code
    /// budget, exempt from the account's ceiling.
    pub device: Option<DeviceClaim>,
    /// Now.
    pub at: DateTime<Utc>,
    /// Request context.
    pub context: RequestContext,
}

/// Input of `RedeemCode`.
#[derive(Debug, Clone)]
pub struct RedeemCode {
    /// The flow.
    pub flow_id: Uuid,
    /// Keyed verifier of the code typed (computed at the edge like the issued one).
    pub verifier: String,
    /// What a right code unlocks.
    pub action: CodeAction,
    /// A code for the next step, when the flow has one (the phone step of a lost-second-factor
    /// recovery); drawn at the edge, used only if needed.
    pub next_code: Option<CodeGrant>,
    /// What else proves the action (a reset on an account with a second factor needs one).
    pub proof: Proof,
    /// Now.
    pub at: DateTime<Utc>,
    /// Request context.
    pub context: RequestContext,
}

/// What a right code does.
#[derive(Debug, Clone)]
pub enum CodeAction {
    /// Verify a contact (verification flows).
    Verify,
    /// Lift a lock (unlock flows).
    Unlock,
    /// Set a new password (reset flows); it already passed the policy.
    ResetPassword(CandidatePassword),
    /// Pass a code step of a lost-second-factor recovery.
    RecoveryStep,
    /// Put a proposed withdrawal address on the whitelist (its cooldown starts).
    ConfirmWithdrawalAddress,
    /// Unfreeze the account (with a current second factor in the proof, when enrolled).
    Unfreeze,
}

impl CodeAction {
    /// Whether this action belongs to a flow of `kind`.
    pub fn fits(&self, kind: FlowKind) -> bool {
        matches!(
            (self, kind),
            (Self::Verify, FlowKind::VerifyEmail | FlowKind::VerifyPhone)
                | (Self::Unlock, FlowKind::Unlock)
                | (Self::ResetPassword(_), FlowKind::ResetPassword)
                | (Self::RecoveryStep, FlowKind::LostSecondFactor)
                | (Self::ConfirmWithdrawalAddress, FlowKind::WhitelistAddress)
                | (Self::Unfreeze, FlowKind::Unfreeze)
        )
    }
}

/// Input of `CompleteMfa`.
#[derive(Debug, Clone)]
pub struct CompleteMfa {
    /// The challenge from the password step.
    pub challenge_id: Uuid,
    /// The second factor.
    pub proof: MfaProof,
    /// The session to open on success.
    pub grant: SessionGrant,
    /// Now.
    pub at: DateTime<Utc>,
    /// Request context.
    pub context: RequestContext,
}

/// An API key to create.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Key id.
    pub key_id: Uuid,
    /// Name.
    pub name: String,
    /// Scopes (at least one).
    pub scopes: Vec<super::events::ApiScope>,
    /// Addresses or CIDR networks; empty: anywhere.
    pub allowed_ips: Vec<String>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Keyed verifier of the secret.
    pub verifier: String,
}

/// A withdrawal address to propose.
#[derive(Debug, Clone)]
pub struct NewWithdrawalAddress {
    /// Asset.
    pub asset: String,
    /// Network.
    pub network: String,
    /// Address, sealed.
    pub sealed_address: String,
    /// Keyed lookup of asset, network and address.
    pub lookup: String,
    /// Label, sealed.
    pub sealed_label: String,
    /// The confirming flow and its code (to the verified email).
    pub grant: FlowGrant,
    /// The session's proof (`WithdrawalControls`).
    pub proof: Proof,
}

/// Input of `ChangePassword`.
#[derive(Debug, Clone)]
pub struct ChangePassword {
    /// The session asking (kept open).
    pub session_id: Uuid,
    /// The proof of `SensitiveAction::ChangePassword`.
    pub proof: Proof,
    /// A new password that passed the policy.
    pub new_password: CandidatePassword,
    /// Now.
    pub at: DateTime<Utc>,
    /// Request context.
    pub context: RequestContext,
}

/// Input of `RegisterPasskey`: a credential the edge checked against a registration ceremony
/// that required a discoverable credential and user verification.
#[derive(Debug, Clone)]
pub struct RegisterPasskey {
    /// Credential id (base64url).
    pub key_id: String,
    /// The owner's name for it.
    pub name: String,
    /// The credential to store (public key and counter).
    pub credential: serde_json::Value,
    /// The proof of `SensitiveAction::AddPasskey`.
    pub proof: Proof,
    /// Now.
    pub at: DateTime<Utc>,
    /// Request context.
    pub context: RequestContext,
}

/// Input of `SignInWithPasskey`: an assertion to a discoverable sign-in ceremony, checked at the
/// edge against this account's stored credential.
#[derive(Debug, Clone)]
pub struct SignInWithPasskey {
    /// Credential id that signed.
    pub key_id: String,
    /// What the WebAuthn check found.
    pub check: KeyCheck,
    /// Whether the verified assertion's authenticator data carried the user-verification flag
    /// (checked here too, whatever the library was told to require).
    pub user_verified: bool,
    /// The session to open.
    pub grant: SessionGrant,
    /// The device token presented, if any.
    pub device: Option<DeviceClaim>,
    /// Now.
    pub at: DateTime<Utc>,
    /// Request context.
    pub context: RequestContext,
}
