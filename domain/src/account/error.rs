//! Refusals that change nothing and need no audit trail (an `Err` commits no event).
use thiserror::Error;

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
    /// The password hasher failed (never the password's fault).
    #[error("AC0005 password hashing failed")]
    Hashing(String),
}

impl From<HashError> for AccountError {
    fn from(e: HashError) -> Self {
        Self::Hashing(e.0)
    }
}
