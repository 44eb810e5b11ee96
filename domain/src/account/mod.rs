//! The `Account` aggregate: registration, password sign-in, lockout and sessions.
mod aggregate;
mod commands;
mod decide;
mod error;
mod events;
mod recovery;
mod services;
mod state;

pub use aggregate::Account;
pub use commands::{
    AccountCommand, AttemptLogin, ChangeContact, CodeAction, CodeGrant, FlowGrant, RedeemCode,
    RegisterAccount, SessionGrant, StartFlow,
};
pub use error::AccountError;
pub use events::{
    AccountEvent, AccountFact, CooldownReason, LoginFailureReason, SessionEndReason, UnlockReason,
    EVENT_VERSION,
};
pub use services::AccountServices;
pub use state::{
    AccountStatus, CodeStatus, Flow, IssuedCode, Lock, Session, SessionRejection, PASSWORD_HISTORY,
};

#[cfg(test)]
mod tests;
