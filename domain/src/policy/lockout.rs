//! Lockout after consecutive failed sign-ins.
//!
//! ```text
//!            failure (count < threshold)
//!          ┌───────────────┐
//!          ▼               │
//!   ┌────────────┐  failure #threshold   ┌───────────────────────────┐
//!   │  Unlocked  │ ────────────────────▶ │ Locked until now + d(level)│
//!   └────────────┘                       └───────────────────────────┘
//!      ▲     ▲   success: count = 0,           │ attempts while locked are refused
//!      │     └── level = 0                     │ without checking the password
//!      └──────────── time passes `until` ──────┘ (count restarts at 0, level kept)
//!
//!   d(level) = base × 2^(level-1), capped at max (15 min, 30 min, 1 h, … 24 h)
//! ```
//!
//! The aggregate records every decision (`LoginFailed { consecutive_failures }`,
//! `AccountLocked { until, level }`), so a replay after a policy change reproduces what was decided.
use chrono::{DateTime, Duration, Utc};

/// Lockout thresholds and durations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock the account.
    pub threshold: u32,
    /// Duration of the first lock.
    pub base: Duration,
    /// Longest lock, however often it repeats.
    pub max: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            base: Duration::minutes(15),
            max: Duration::hours(24),
        }
    }
}

/// What a failure leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Still below the threshold.
    Counted {
        /// Consecutive failures including this one.
        consecutive: u32,
    },
    /// The threshold is reached: lock.
    Lock {
        /// Consecutive failures including this one.
        consecutive: u32,
        /// The lock's ordinal since the last success (1 for the first).
        level: u32,
        /// When the lock ends.
        until: DateTime<Utc>,
    },
}

impl LockoutPolicy {
    /// Duration of the `level`-th consecutive lock (1-based): doubling from `base`, capped.
    pub fn duration(&self, level: u32) -> Duration {
        let doublings = level.saturating_sub(1).min(30);
        let factor = 1i32 << doublings;
        self.base
            .checked_mul(factor)
            .map_or(self.max, |d| d.min(self.max))
    }

    /// Decides what one more failure means, given the failures and lock level so far.
    pub fn after_failure(
        &self,
        failures_so_far: u32,
        lock_level: u32,
        now: DateTime<Utc>,
    ) -> FailureOutcome {
        let consecutive = failures_so_far.saturating_add(1);
        if consecutive >= self.threshold.max(1) {
            let level = lock_level.saturating_add(1);
            FailureOutcome::Lock {
                consecutive,
                level,
                until: now + self.duration(level),
            }
        } else {
            FailureOutcome::Counted { consecutive }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn test_lockout_policy_counts_below_threshold() {
        let p = LockoutPolicy::default();
        assert_eq!(
            p.after_failure(0, 0, t0()),
            FailureOutcome::Counted { consecutive: 1 }
        );
        assert_eq!(
            p.after_failure(3, 0, t0()),
            FailureOutcome::Counted { consecutive: 4 }
        );
    }

    #[test]
    fn test_lockout_policy_locks_at_threshold() {
        let p = LockoutPolicy::default();
        assert_eq!(
            p.after_failure(4, 0, t0()),
            FailureOutcome::Lock {
                consecutive: 5,
                level: 1,
                until: t0() + Duration::minutes(15)
            }
        );
    }

    #[test]
    fn test_lockout_policy_escalates_delay_and_caps() {
        let p = LockoutPolicy::default();
        let minutes: Vec<i64> = (1..=9).map(|l| p.duration(l).num_minutes()).collect();
        assert_eq!(minutes, vec![15, 30, 60, 120, 240, 480, 960, 1440, 1440]);
        assert_eq!(p.duration(u32::MAX), Duration::hours(24));
    }
}
