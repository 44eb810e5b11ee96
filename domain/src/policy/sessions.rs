//! Session lifetimes: an absolute limit, an idle limit, and how often use extends the idle limit.
use chrono::Duration;

/// Session expiry rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session ends this long after sign-in, however active.
    pub absolute: Duration,
    /// A session ends after this long without use.
    pub idle: Duration,
    /// Use extends the idle limit only when this much of it has elapsed, so that busy sessions
    /// write an event every few minutes rather than on every request.
    pub extend_after: Duration,
    /// Most sessions open at once; signing in beyond it ends the oldest.
    pub max_active: usize,
    /// How long an explicit step-up (`StepUp`) lets a session make the changes that need one.
    pub step_up: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            absolute: Duration::hours(12),
            idle: Duration::minutes(30),
            extend_after: Duration::minutes(5),
            max_active: 50,
            step_up: Duration::minutes(15),
        }
    }
}
