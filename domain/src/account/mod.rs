//! The `Account` aggregate: registration, password sign-in, lockout and sessions.
mod aggregate;
mod commands;
mod decide;
mod error;
mod events;
mod services;
mod state;

pub use aggregate::Account;
pub use commands::{AccountCommand, AttemptLogin, RegisterAccount, SessionGrant};
pub use error::AccountError;
pub use events::{AccountEvent, AccountFact, LoginFailureReason, SessionEndReason, EVENT_VERSION};
pub use services::AccountServices;
pub use state::{AccountStatus, Lock, Session, SessionRejection};

#[cfg(test)]
mod tests;
