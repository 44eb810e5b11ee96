//! Refusals that change nothing and need no audit trail (an `Err` commits no event).
use thiserror::Error;

use super::CodeStatus;
use crate::password::HashError;

/// Why a command was refused. Codes are stable and greppable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AccountError {
    /// `RegisterAccount` on an aggregate that already has history.
    #[error("AC0001 account already exists")]
    AlreadyRegistered,
    /// Neither an email nor a phone was given.
    #[error("AC0002 an email or a phone is required")]
    NoIdentifier,
    /// The account is not registered (session commands on a stand-in aggregate).
    #[error("AC0003 account not registered")]
    NotRegistered,
    /// No such open session.
    #[error("AC0004 session not found")]
    SessionNotFound,
    /// No such flow on this account (or one of another kind).
    #[error("AC0006 flow not found")]
    FlowNotFound,
    /// The flow's code was already used, exhausted, expired or replaced: ask for a new one.
    #[error("AC0007 the code no longer works ({0:?})")]
    CodeUnusable(CodeStatus),
    /// Too soon for another code.
    #[error("AC0008 too many codes requested")]
    CodeRateLimited {
        /// When another code may be requested.
        retry_at: chrono::DateTime<chrono::Utc>,
    },
    /// The new password equals the current one or one of the previous ones.
    #[error("AC0009 the new password was used before")]
    PasswordReused,
    /// The channel cannot be used for this flow.
    #[error("AC0010 this flow cannot switch to that channel")]
    ChannelNotAllowed,
    /// An outcome command carried something other than a notification outcome.
    #[error("AC0011 not a notification outcome")]
    NotAnOutcome,
    /// The password typed to confirm a change is wrong.
    #[error("AC0012 wrong password")]
    WrongPassword,
    /// The new contact equals the current one.
    #[error("AC0013 the contact is unchanged")]
    ContactUnchanged,
    /// The identifier no longer belongs to this account.
    #[error("AC0014 identifier moved")]
    IdentifierMoved,
    /// TOTP is already enrolled.
    #[error("AC0015 a second factor is already enrolled")]
    AlreadyEnrolled,
    /// No TOTP enrolment awaits confirmation.
    #[error("AC0016 no enrolment to confirm")]
    NoPendingEnrolment,
    /// The code does not match (enrolment confirmation).
    #[error("AC0017 invalid second factor")]
    InvalidSecondFactor,
    /// Unknown, used or expired sign-in challenge.
    #[error("AC0018 challenge invalid")]
    ChallengeInvalid,
    /// A high-risk action during the cooldown.
    #[error("AC0019 high-risk actions are paused")]
    HighRiskCooldown {
        /// End of the cooldown.
        until: chrono::DateTime<chrono::Utc>,
    },
    /// No second factor to use or remove.
    #[error("AC0020 no second factor enrolled")]
    NoSecondFactor,
    /// The recovery is not at a stage that accepts this.
    #[error("AC0021 the recovery is not at that step")]
    RecoveryStage,
    /// The hold has not ended yet.
    #[error("AC0022 the recovery hold has not ended")]
    RecoveryHold {
        /// When it ends.
        until: chrono::DateTime<chrono::Utc>,
    },
    /// No such security key, or already registered.
    #[error("AC0023 security key not found or already registered")]
    SecurityKeyUnknown,
    /// Too many security keys.
    #[error("AC0024 too many security keys")]
    TooManySecurityKeys,
    /// No such API key (or revoked, or expired).
    #[error("AC0025 no such API key")]
    ApiKeyUnknown,
    /// As many live API keys as allowed.
    #[error("AC0026 too many API keys")]
    TooManyApiKeys,
    /// Needs a verified email first.
    #[error("AC0027 the email address is not verified")]
    EmailNotVerified,
    /// As many withdrawal addresses as allowed.
    #[error("AC0028 too many withdrawal addresses")]
    TooManyAddresses,
    /// The address is already on the whitelist.
    #[error("AC0029 the address is already on the whitelist")]
    AddressAlreadyListed,
    /// No such withdrawal address.
    #[error("AC0030 no such withdrawal address")]
    AddressUnknown,
    /// The action needs a second factor and none was given (or none is enrolled, for the
    /// actions that need one enrolled).
    #[error("AC0031 a second factor is required")]
    SecondFactorRequired,
    /// The action needs a session stepped up within the step-up window.
    #[error("AC0032 step up the session first")]
    StepUpRequired,
    /// The identifier is verified, not this account's, or its claim is too recent to release.
    /// No such trusted device on this account.
    #[error("AC0051 device not found")]
    DeviceNotFound,
    /// A device name that is empty, too long, padded or holds control characters.
    #[error("AC0052 invalid device name")]
    DeviceNameInvalid,
    #[error("AC0050 the contact cannot be released")]
    ContactNotReleasable,
    /// No such passkey on this account, or the credential is already one of its keys.
    #[error("AC0140 passkey not found or already registered")]
    PasskeyUnknown,
    /// The account has as many passkeys as allowed.
    #[error("AC0141 too many passkeys")]
    TooManyPasskeys,
    /// The account is frozen already (and no staff unfreeze is pending).
    #[error("AC0060 the account is already frozen")]
    AlreadyFrozen,
    /// The account is not frozen.
    #[error("AC0061 the account is not frozen")]
    NotFrozen,
    /// The freeze link was used before.
    #[error("AC0062 the freeze link was used already")]
    FreezeLinkUsed,
    /// The freeze link is past its lifetime.
    #[error("AC0063 the freeze link has expired")]
    FreezeLinkExpired,
    /// The account is frozen: nothing but reading what is left, unfreezing and the recovery
    /// flows.
    #[error("AC0064 the account is frozen")]
    Frozen,
    /// The password hasher failed (never the password's fault).
    #[error("AC0005 password hashing failed")]
    Hashing(String),
}

impl From<HashError> for AccountError {
    fn from(e: HashError) -> Self {
        Self::Hashing(e.0)
    }
}
