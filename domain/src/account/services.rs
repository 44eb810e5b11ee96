//! Capabilities and configuration the aggregate needs to decide.
use std::sync::Arc;

use crate::password::PasswordHasher;
use crate::policy::{CodePolicy, ContactPolicy, CooldownPolicy, LockoutPolicy, SessionPolicy};

/// Injected into every command: the password hasher and the policies in force.
#[derive(Clone)]
pub struct AccountServices {
    /// Argon2 in production, a fast fake in unit tests.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Lockout thresholds and durations.
    pub lockout: LockoutPolicy,
    /// Session lifetimes.
    pub sessions: SessionPolicy,
    /// One-time code limits.
    pub codes: CodePolicy,
    /// Cooldowns on high-risk actions.
    pub cooldowns: CooldownPolicy,
    /// Contact verification: sign-in needs a verified contact; unverified claims expire.
    pub contacts: ContactPolicy,
}
