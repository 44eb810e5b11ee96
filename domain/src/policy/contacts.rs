//! What an account's contacts must prove before they count: sign-in waits for a verified contact,
//! and an identifier nobody verified is not held forever.
use chrono::Duration;

/// Contact verification rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactPolicy {
    /// Sign-in needs a verified email or phone. Until one is verified, a right password is
    /// refused exactly like a wrong one (and counted like one, so the lockout cannot tell the
    /// two apart either).
    pub require_verified_for_sign_in: bool,
    /// An identifier claimed by an account that never verified it is given up to a later
    /// sign-up with the same identifier once the claim is this old.
    pub unverified_claim_ttl: Duration,
}

impl Default for ContactPolicy {
    fn default() -> Self {
        Self {
            require_verified_for_sign_in: true,
            unverified_claim_ttl: Duration::hours(24),
        }
    }
}
