//! Trusted devices (OWASP's "device cookies"): a sign-in trusts the device it came from, and
//! that device's later requests go through a door of their own, so that a stranger's failures
//! (which all go through the untrusted door) cannot lock the owner's known devices out.
use chrono::Duration;

use super::LockoutPolicy;

/// How long a device stays trusted, and when its own door locks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePolicy {
    /// A device stays trusted this long after its last sign-in (each sign-in renews it).
    pub ttl: Duration,
    /// Threshold and durations of each device's own door.
    pub lockout: LockoutPolicy,
}

impl Default for DevicePolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::days(180),
            lockout: LockoutPolicy::default(),
        }
    }
}
