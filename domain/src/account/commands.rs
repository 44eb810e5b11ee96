//! What callers ask an account to do. Commands carry validated input only; time and randomness
//! (session ids, token hashes) are generated at the edge and passed in.
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use uuid::Uuid;

use crate::contact::SealedContact;
use crate::context::RequestContext;
use crate::password::CandidatePassword;

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
    /// Sign in with a password (also sent to the stand-in aggregate of an unknown identifier).
    AttemptLogin(AttemptLogin),
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
    /// End every session but the caller's.
    EndOtherSessions {
        /// The caller's session, kept open.
        keep: Uuid,
        /// Now.
        at: DateTime<Utc>,
        /// Request context.
        context: RequestContext,
    },
}

/// Input of `RegisterAccount`.
#[derive(Debug)]
pub struct RegisterAccount {
    /// Sealed email, if given.
    pub email: Option<SealedContact>,
    /// Sealed phone, if given.
    pub phone: Option<SealedContact>,
    /// A password that passed the policy.
    pub password: CandidatePassword,
    /// Now.
    pub at: DateTime<Utc>,
    /// Request context.
    pub context: RequestContext,
}

/// Input of `AttemptLogin`.
#[derive(Debug)]
pub struct AttemptLogin {
    /// The typed password, normalised; never stored.
    pub password: SecretString,
    /// The session to open if the attempt succeeds.
    pub grant: SessionGrant,
    /// Now.
    pub at: DateTime<Utc>,
    /// Request context.
    pub context: RequestContext,
}

/// A session prepared at the edge: a random id and the hash of a random token. The token itself is
/// returned to the client and never reaches the aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionGrant {
    /// Random session id.
    pub session_id: Uuid,
    /// SHA-256 (hex) of the token's secret part.
    pub token_hash: String,
}
