//! The `Account` aggregate: registration, password sign-in, lockout and sessions.
mod aggregate;
mod commands;
mod controls;
mod decide;
mod error;
mod events;
mod evidence;
mod fold;
mod freeze;
mod lost_factor;
mod passkeys;
mod proof;
mod recovery;
mod redact;
mod second_factor;
mod services;
mod sessions;
mod sign_in;
mod state;

pub use aggregate::Account;
pub use commands::{
    AccountCommand, AttemptLogin, ChangeContact, ChangePassword, CodeAction, CodeGrant,
    CompleteMfa, DeviceGrant, FlowGrant, FreezeRequest, NewApiKey, NewWithdrawalAddress,
    RedeemCode, RegisterAccount, SessionGrant, StartFlow,
};
pub use commands::{RegisterPasskey, SignInWithPasskey};
pub use controls::{
    ip_allowed, parse_network, ApiKeyRefusal, WithdrawalRefusal, MAX_API_KEYS,
    MAX_WITHDRAWAL_ADDRESSES,
};
pub use error::AccountError;
pub use events::{
    AccountEvent, AccountFact, ApiScope, CooldownReason, DeviceRevokeReason, Door, FreezeActor,
    LoginFailureReason, RecoveryStep, Requester, SessionEndReason, StaffAccountAction,
    UnlockReason, EVENT_VERSION,
};
pub use events::{PasskeyFailureReason, SignInMethod};
pub use evidence::{DeviceClaim, KeyCheck, MfaProof};
pub use passkeys::MAX_PASSKEYS;
pub use proof::{FactorNeed, PasswordNeed, Proof, ProofRule, SensitiveAction, PROOF_POLICY};
pub use recovery::network_of;
pub(crate) use redact::redact_fact;
pub use redact::REDACTED;
pub use second_factor::{MAX_SECURITY_KEYS, MFA_CHALLENGE_TTL};
pub use services::AccountServices;
pub use sessions::{device_name_is_valid, DEVICE_NAME_MAX_CHARS};
pub use state::{
    AccountStatus, ApiKey, BackupCode, CodeStatus, Flow, Freeze, IssuedCode, Lock, MfaChallenge,
    PendingContact, RecoveryCase, RecoveryStage, Session, SessionRejection, TotpFactor,
    TrustedDevice, WithdrawalAddress, FREEZE_LINK_TTL, MAX_SIGN_IN_PLACES, MAX_TRUSTED_DEVICES,
    PASSWORD_HISTORY,
};

#[cfg(test)]
mod tests;
