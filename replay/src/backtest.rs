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
use serde_json::{json, Value};

use crate::source::{self, Error, Result, Stream};

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
    fn to_json(&self) -> Value {
        json!({
            "sequence": self.sequence,
            "at": self.at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "until": self.until.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "level": self.level,
            "failure_sequences": self.failures,
        })
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
pub async fn backtest(store: &Store, policy: &LockoutPolicy) -> Result<Value> {
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
        let entry = json!({
            "account": account,
            "actual_locks": sim.actual.iter().map(LockRecord::to_json).collect::<Vec<_>>(),
            "simulated_locks": sim.simulated.iter().map(LockRecord::to_json).collect::<Vec<_>>(),
            "successes_that_would_have_been_refused": sim.successes_refused,
            "failures_that_would_have_been_refused": sim.failures_refused,
            "refused_attempts_with_unknown_outcome": sim.unknown_outcome,
        });
        if sim.actual.is_empty() {
            would_lock.push(entry);
        } else if sim.simulated.is_empty() {
            would_not_lock.push(entry);
        } else {
            changed.push(entry);
        }
    }
    Ok(json!({
        "policy": {
            "threshold": policy.threshold,
            "lock_seconds": policy.base.num_seconds(),
            "max_lock_seconds": policy.max.num_seconds(),
        },
        "accounts_seen": accounts.len(),
        "attempts": attempts,
        "accounts_locked_actually": accounts.values().filter(|s| !s.actual.is_empty()).count(),
        "accounts_locked_under_policy": accounts.values().filter(|s| !s.simulated.is_empty()).count(),
        "would_have_been_locked": would_lock,
        "would_not_have_been_locked": would_not_lock,
        "locked_differently": changed,
    }))
}

/// Renders a backtest report as text.
pub fn text(report: &Value) -> String {
    let mut out = format!(
        "policy: threshold {}, first lock {} s, longest {} s\n{} accounts, {} attempts; locked: {} actually, {} under this policy\n",
        report["policy"]["threshold"],
        report["policy"]["lock_seconds"],
        report["policy"]["max_lock_seconds"],
        report["accounts_seen"],
        report["attempts"],
        report["accounts_locked_actually"],
        report["accounts_locked_under_policy"],
    );
    let seqs = |v: &Value| -> String {
        v.as_array()
            .map(|a| a.iter().map(Value::to_string).collect::<Vec<_>>().join(","))
            .unwrap_or_default()
    };
    for (section, title) in [
        ("would_have_been_locked", "WOULD LOCK"),
        ("would_not_have_been_locked", "WOULD NOT LOCK"),
        ("locked_differently", "LOCKED DIFFERENTLY"),
    ] {
        for a in report[section].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "{title} {}\n",
                gatehouse_domain::text::escape_control(a["account"].as_str().unwrap_or("?"))
            ));
            for l in a["actual_locks"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "  actual lock at #{} until {} after failures #{}\n",
                    l["sequence"],
                    l["until"].as_str().unwrap_or("?"),
                    seqs(&l["failure_sequences"])
                ));
            }
            for l in a["simulated_locks"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "  would lock at #{} until {} after failures #{}\n",
                    l["sequence"],
                    l["until"].as_str().unwrap_or("?"),
                    seqs(&l["failure_sequences"])
                ));
            }
            let refused = seqs(&a["successes_that_would_have_been_refused"]);
            if !refused.is_empty() {
                out.push_str(&format!(
                    "  successful sign-ins that would have been refused: #{refused}\n"
                ));
            }
        }
    }
    out
}
