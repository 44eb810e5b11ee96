//! `backtest --policy FILE`: replays recorded sign-in attempts through the domain's lockout policy
//! with other settings, and reports the accounts whose fate would have differed.
//!
//! The recorded history is taken as the attempts people made: each checked failure
//! (`LoginFailed`) and success (`LoginSucceeded`) is fed, in order, to
//! `LockoutPolicy::after_failure` with the candidate settings. Where the candidate would have held
//! a lock, the attempt counts as refused instead (a success refused is a legitimate user locked
//! out). An attempt that was actually refused while locked (`LoginRejectedWhileLocked`) had its
//! password never checked, so where the candidate would not have been locked its outcome is
//! unknown; such attempts are counted, not guessed.
use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use gatehouse_domain::policy::lockout::{FailureOutcome, LockoutPolicy};
use gatehouse_domain::AccountFact;
use gatehouse_store::{Store, StreamPosition};
use serde::Deserialize;

use crate::source::{self, Error, Result, Stream};
use gatehouse_replay::report::{BacktestAccount, BacktestLock, BacktestPolicy, BacktestReport};

/// The candidate settings (TOML or JSON); missing fields take the built-in defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Consecutive failures that lock.
    pub threshold: Option<u32>,
    /// First lock duration, seconds.
    pub lock_seconds: Option<i64>,
    /// Longest lock, seconds.
    pub max_lock_seconds: Option<i64>,
}

impl PolicyFile {
    /// Reads a policy file (`.json` as JSON, anything else as TOML).
    pub fn read(path: &Path) -> Result<LockoutPolicy> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
        let file: PolicyFile = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text)
                .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?
        } else {
            toml::from_str(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?
        };
        let d = LockoutPolicy::default();
        let policy = LockoutPolicy {
            threshold: file.threshold.unwrap_or(d.threshold),
            base: file.lock_seconds.map_or(d.base, Duration::seconds),
            max: file.max_lock_seconds.map_or(d.max, Duration::seconds),
        };
        if policy.threshold == 0 || policy.base <= Duration::zero() || policy.max < policy.base {
            return Err(Error::Usage(
                "the policy needs threshold >= 1 and 0 < lock_seconds <= max_lock_seconds".into(),
            ));
        }
        Ok(policy)
    }
}

/// A lock, actual or simulated.
#[derive(Debug, Clone)]
struct LockRecord {
    sequence: i64,
    at: DateTime<Utc>,
    until: DateTime<Utc>,
    level: u32,
    /// Sequences of the failures that led to it.
    failures: Vec<i64>,
}

impl LockRecord {
    fn report(&self) -> BacktestLock {
        BacktestLock {
            sequence: self.sequence,
            at: self.at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            until: self.until.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            level: self.level,
            failure_sequences: self.failures.clone(),
        }
    }
}

#[derive(Debug, Default)]
struct Sim {
    failures: u32,
    level: u32,
    until: Option<DateTime<Utc>>,
    window: Vec<i64>,
    actual_window: Vec<i64>,
    actual: Vec<LockRecord>,
    simulated: Vec<LockRecord>,
    successes_refused: Vec<i64>,
    failures_refused: Vec<i64>,
    unknown_outcome: Vec<i64>,
}

impl Sim {
    fn locked(&self, t: DateTime<Utc>) -> bool {
        self.until.is_some_and(|u| t < u)
    }

    fn differs(&self) -> bool {
        self.actual.len() != self.simulated.len()
            || self
                .actual
                .iter()
                .zip(&self.simulated)
                .any(|(a, s)| a.sequence != s.sequence || a.until != s.until)
            || !self.successes_refused.is_empty()
    }
}

/// Runs the backtest; returns the report.
pub async fn backtest(store: &Store, policy: &LockoutPolicy) -> Result<BacktestReport> {
    let mut accounts: BTreeMap<String, Sim> = BTreeMap::new();
    let total = store.count_after(StreamPosition::default()).await?;
    let bar = source::progress(u64::try_from(total).unwrap_or(0), "backtest");
    let mut stream = Stream::new(store, StreamPosition::default());
    let mut attempts = 0u64;
    while let Some(batch) = stream.next_batch().await? {
        bar.inc(batch.len() as u64);
        for stored in batch {
            let Some(event) = gatehouse_projections::account_event(&stored)? else {
                continue;
            };
            let seq = stored.sequence;
            let t = event.at;
            let relevant = matches!(
                event.fact,
                AccountFact::LoginFailed { .. }
                    | AccountFact::LoginSucceeded { .. }
                    | AccountFact::LoginRejectedWhileLocked { .. }
                    | AccountFact::AccountLocked { .. }
                    | AccountFact::AccountUnlocked { .. }
            );
            if !relevant {
                continue;
            }
            let sim = accounts.entry(stored.aggregate_id.clone()).or_default();
            match event.fact {
                AccountFact::LoginFailed { .. } => {
                    attempts += 1;
                    sim.actual_window.push(seq);
                    if sim.locked(t) {
                        sim.failures_refused.push(seq);
                        continue;
                    }
                    sim.window.push(seq);
                    match policy.after_failure(sim.failures, sim.level, t) {
                        FailureOutcome::Counted { consecutive } => sim.failures = consecutive,
                        FailureOutcome::Lock { level, until, .. } => {
                            sim.simulated.push(LockRecord {
                                sequence: seq,
                                at: t,
                                until,
                                level,
                                failures: std::mem::take(&mut sim.window),
                            });
                            sim.failures = 0;
                            sim.level = level;
                            sim.until = Some(until);
                        }
                    }
                }
                AccountFact::LoginSucceeded { .. } => {
                    attempts += 1;
                    sim.actual_window.clear();
                    if sim.locked(t) {
                        sim.successes_refused.push(seq);
                        continue;
                    }
                    sim.failures = 0;
                    sim.level = 0;
                    sim.until = None;
                    sim.window.clear();
                }
                AccountFact::LoginRejectedWhileLocked { .. } => {
                    attempts += 1;
                    if !sim.locked(t) {
                        sim.unknown_outcome.push(seq);
                    }
                }
                AccountFact::AccountUnlocked { .. } => {
                    // The owner unlocked themselves (after proving who they are): they would have
                    // lifted a simulated lock the same way.
                    sim.failures = 0;
                    sim.level = 0;
                    sim.until = None;
                    sim.window.clear();
                    sim.actual_window.clear();
                }
                AccountFact::AccountLocked { until, level, .. } => {
                    sim.actual.push(LockRecord {
                        // The lock is recorded right after the failure that caused it.
                        sequence: seq - 1,
                        at: t,
                        until,
                        level,
                        failures: std::mem::take(&mut sim.actual_window),
                    });
                }
                _ => {}
            }
        }
    }
    bar.finish_and_clear();
    let mut would_lock = Vec::new();
    let mut would_not_lock = Vec::new();
    let mut changed = Vec::new();
    for (account, sim) in &accounts {
        if !sim.differs() {
            continue;
        }
        let entry = BacktestAccount {
            account: account.clone(),
            actual_locks: sim.actual.iter().map(LockRecord::report).collect(),
            simulated_locks: sim.simulated.iter().map(LockRecord::report).collect(),
            successes_that_would_have_been_refused: sim.successes_refused.clone(),
            failures_that_would_have_been_refused: sim.failures_refused.clone(),
            refused_attempts_with_unknown_outcome: sim.unknown_outcome.clone(),
        };
        if sim.actual.is_empty() {
            would_lock.push(entry);
        } else if sim.simulated.is_empty() {
            would_not_lock.push(entry);
        } else {
            changed.push(entry);
        }
    }
    let count = |f: fn(&Sim) -> bool| accounts.values().filter(|s| f(s)).count() as u64;
    Ok(BacktestReport {
        policy: BacktestPolicy {
            threshold: policy.threshold,
            lock_seconds: policy.base.num_seconds(),
            max_lock_seconds: policy.max.num_seconds(),
        },
        accounts_seen: accounts.len() as u64,
        attempts,
        accounts_locked_actually: count(|s| !s.actual.is_empty()),
        accounts_locked_under_policy: count(|s| !s.simulated.is_empty()),
        would_have_been_locked: would_lock,
        would_not_have_been_locked: would_not_lock,
        locked_differently: changed,
    })
}

/// Renders a backtest report as text.
pub fn text(report: &BacktestReport) -> String {
    let p = &report.policy;
    let mut out = format!(
        "policy: threshold {}, first lock {} s, longest {} s\n{} accounts, {} attempts; locked: {} actually, {} under this policy\n",
        p.threshold,
        p.lock_seconds,
        p.max_lock_seconds,
        report.accounts_seen,
        report.attempts,
        report.accounts_locked_actually,
        report.accounts_locked_under_policy,
    );
    let seqs = |v: &[i64]| -> String { v.iter().map(i64::to_string).collect::<Vec<_>>().join(",") };
    for (section, title) in [
        (&report.would_have_been_locked, "WOULD LOCK"),
        (&report.would_not_have_been_locked, "WOULD NOT LOCK"),
        (&report.locked_differently, "LOCKED DIFFERENTLY"),
    ] {
        for a in section {
            out.push_str(&format!(
                "{title} {}\n",
                gatehouse_domain::text::escape_control(&a.account)
            ));
            for l in &a.actual_locks {
                out.push_str(&format!(
                    "  actual lock at #{} until {} after failures #{}\n",
                    l.sequence,
                    l.until,
                    seqs(&l.failure_sequences)
                ));
            }
            for l in &a.simulated_locks {
                out.push_str(&format!(
                    "  would lock at #{} until {} after failures #{}\n",
                    l.sequence,
                    l.until,
                    seqs(&l.failure_sequences)
                ));
            }
            let refused = seqs(&a.successes_that_would_have_been_refused);
            if !refused.is_empty() {
                out.push_str(&format!(
                    "  successful sign-ins that would have been refused: #{refused}\n"
                ));
            }
        }
    }
    out
}
