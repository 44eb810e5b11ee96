//! How executors tell the projections runner that events were committed, and how the runner
//! waits for enough of them to make a batch worth its fixed cost.
//!
//! A batch costs the same few statements whatever it holds (its transaction, the checkpoints,
//! the feeds that follow the runner), so under load the runner waits for a number of commits
//! rather than a fixed time: a short wait when commits come fast, the coalescing time at most
//! when they come slowly. Only the commit that reaches the count wakes the waiter, so a flood of
//! commits does not wake the runner's task once per command.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Commits counted by every executor of a process, and one waiter (the projections runner).
#[derive(Debug)]
pub struct CommitSignal {
    commits: AtomicU64,
    /// The count at which a commit wakes the waiter.
    wake_at: AtomicU64,
    nudged: AtomicBool,
    notify: Notify,
}

impl Default for CommitSignal {
    fn default() -> Self {
        Self {
            commits: AtomicU64::new(0),
            wake_at: AtomicU64::new(1),
            nudged: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }
}

impl CommitSignal {
    /// A signal with no commit counted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Commits counted so far.
    pub fn count(&self) -> u64 {
        self.commits.load(Ordering::Acquire)
    }

    /// Counts one commit that wrote events (called by [`crate::CommandExecutor`]).
    pub fn committed(&self) {
        let count = self.commits.fetch_add(1, Ordering::AcqRel) + 1;
        if count >= self.wake_at.load(Ordering::Acquire) {
            self.notify.notify_one();
        }
    }

    /// Ends the waiter's current wait: something it cannot count is waiting to be read (events
    /// another process wrote, a reader waiting for its own writes).
    pub fn nudge(&self) {
        self.nudged.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Waits until the count reaches `target`, a nudge comes, or `at_most` has passed. Returns
    /// `false` only when the time ran out.
    pub async fn reach(&self, target: u64, at_most: Duration) -> bool {
        self.wake_at.store(target, Ordering::Release);
        let deadline = tokio::time::Instant::now() + at_most;
        loop {
            // Looked at after `wake_at` is stored: a commit in between is seen here, or its wake
            // is kept by the `Notify` for the `notified` below.
            if self.count() >= target || self.nudged.swap(false, Ordering::AcqRel) {
                return true;
            }
            tokio::select! {
                // Also a wake kept from a commit before this call: look again.
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn test_waits_for_the_count_not_for_each_commit() {
        let signal = Arc::new(CommitSignal::new());
        signal.committed();
        let target = signal.count() + 3;
        let waiter = {
            let signal = Arc::clone(&signal);
            tokio::spawn(async move { signal.reach(target, Duration::from_secs(60)).await })
        };
        for _ in 0..2 {
            signal.committed();
            settle().await;
            assert!(!waiter.is_finished(), "woke before the count");
        }
        signal.committed();
        let reached = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the third commit did not wake the waiter")
            .unwrap();
        assert!(reached);
    }

    #[tokio::test]
    async fn test_time_runs_out_and_a_nudge_ends_the_wait() {
        let signal = CommitSignal::new();
        // A wake kept from earlier commits does not end the wait.
        signal.committed();
        signal.committed();
        assert!(!signal.reach(10, Duration::from_millis(20)).await);
        signal.nudge();
        assert!(signal.reach(10, Duration::from_secs(60)).await);
        // The nudge is spent by the wait it ended.
        assert!(!signal.reach(10, Duration::from_millis(20)).await);
        // A commit counted before the wait began counts.
        let target = signal.count() + 1;
        signal.committed();
        assert!(signal.reach(target, Duration::from_secs(60)).await);
    }
}
