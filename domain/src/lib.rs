//! Gatehouse's pure core: the `Account` aggregate, its commands and events, and the policies that
//! decide (lockout, passwords, sessions).
//!
//! Invariants: nothing in this crate performs I/O, reads the clock or draws randomness. Time arrives
//! in commands (`RequestContext::at`), randomness arrives as values generated at the edge (session
//! ids, token hashes, salts through the injected [`password::PasswordHasher`]).
#![forbid(unsafe_code)]
#![deny(clippy::all)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]

pub mod account;
pub mod chain;
pub mod contact;
pub mod context;
pub mod password;
pub mod policy;
pub mod protection;
pub mod staff;
pub mod team;
pub mod text;
pub mod upcast;
pub mod webhook;

pub use account::{
    ip_allowed, parse_network, ApiKey, ApiKeyRefusal, ApiScope, NewApiKey, NewWithdrawalAddress,
    WithdrawalAddress, WithdrawalRefusal,
};
pub use account::{
    Account, AccountCommand, AccountError, AccountEvent, AccountFact, AccountServices,
    AttemptLogin, ChangeContact, ChangePassword, CodeAction, CodeGrant, CompleteMfa, DeviceClaim,
    DeviceGrant, Door, FlowGrant, FreezeActor, FreezeRequest, KeyCheck, MfaProof, RedeemCode,
    RegisterAccount, Requester, SessionGrant, StaffAccountAction, StartFlow,
};
pub use account::{FactorNeed, PasswordNeed, Proof, ProofRule, SensitiveAction, PROOF_POLICY};
pub use account::{
    PasskeyFailureReason, RegisterPasskey, SignInMethod, SignInWithPasskey, MAX_PASSKEYS,
};
