//! Capabilities and configuration the aggregate needs to decide.
use std::sync::Arc;

use crate::password::PasswordHasher;
use crate::policy::{
    CodePolicy, ContactPolicy, CooldownPolicy, DevicePolicy, LockoutPolicy, SessionPolicy,
};

/// Injected into every command: the password hasher and the policies in force.
#[derive(Clone)]
pub struct AccountServices {
    /// Argon2 in production, a fast fake in unit tests.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Lockout thresholds and durations of the untrusted door.
    pub lockout: LockoutPolicy,
    /// Trusted devices: how long they stay trusted, and their own doors' lockout.
    pub devices: DevicePolicy,
    /// Session lifetimes.
    pub sessions: SessionPolicy,
    /// One-time code limits.
    pub codes: CodePolicy,
    /// Cooldowns on high-risk actions.
    pub cooldowns: CooldownPolicy,
    /// Contact verification: sign-in needs a verified contact; unverified claims expire.
    pub contacts: ContactPolicy,
}
