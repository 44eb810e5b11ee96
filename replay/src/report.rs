//! The reports `gatehouse-replay` prints with `--json` (and writes as export manifests), as typed
//! structs: the tool builds them, and readers (the benchmark, the tests, scripts) parse them back
//! with the same types instead of looking keys up by name.
//!
//! Fields are declared in alphabetical order: that is the order the reports were printed in when
//! they were built as `serde_json::Value` maps, so the printed JSON keeps its keys and their order
//! (only a rebuild difference's `kind` tag now comes first in its object).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A position in the event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Position within the store.
    pub pos: i64,
    /// Transaction id (always 0 on SQLite).
    pub tx: i64,
}

/// `gatehouse-replay rebuild --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebuildReport {
    /// Differences found, all read models together (a checkpoint behind counts as one).
    pub differences: u64,
    /// One entry per rebuilt read model.
    pub projections: Vec<ProjectionReport>,
    /// How long the phases took.
    pub seconds: RebuildSeconds,
    /// The schema of the shadow tables (PostgreSQL), if any.
    pub shadow: Option<String>,
    /// Whether the rebuilt rows were swapped into the live tables.
    pub swapped: bool,
    /// The report as terminal lines.
    pub text: Vec<String>,
}

/// Durations of a rebuild, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RebuildSeconds {
    /// Folding the events into the shadow tables.
    pub fold: f64,
    /// The fold plus the deferred indexes.
    pub rebuild: f64,
    /// Everything, the comparison included.
    pub total: f64,
}

/// One read model's rebuild.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectionReport {
    /// Differences found in its tables (plus one if its live checkpoint is behind).
    pub differences: u64,
    /// Events it applied.
    pub events_applied: u64,
    /// Where the rebuild stopped.
    pub position: Position,
    /// The read model's name.
    pub projection: String,
    /// Its tables compared.
    pub tables: Vec<TableReport>,
}

/// One table compared with its rebuilt shadow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableReport {
    /// Rows that differ.
    pub differences: Vec<Difference>,
    /// Rows in the live table.
    pub rows_live: i64,
    /// Rows in the rebuilt table.
    pub rows_rebuilt: i64,
    /// The table.
    pub table: String,
}

/// A row that differs between the live table and its rebuild.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// A rebuilt row missing from the live table.
    MissingFromLive {
        /// The row's key.
        key: Value,
        /// The rebuilt row.
        rebuilt: Value,
        /// The table.
        table: String,
    },
    /// A live row the rebuild did not produce.
    ExtraInLive {
        /// The row's key.
        key: Value,
        /// The live row.
        live: Value,
        /// The table.
        table: String,
    },
    /// The same key with different values.
    Changed {
        /// The columns that differ.
        columns: Vec<ChangedColumn>,
        /// The row's key.
        key: Value,
        /// The table.
        table: String,
    },
}

/// A column whose live and rebuilt values differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangedColumn {
    /// The column.
    pub column: String,
    /// Its live value.
    pub live: Value,
    /// Its rebuilt value.
    pub rebuilt: Value,
}

/// `gatehouse-replay export`'s manifest (printed, and written beside the export).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportManifest {
    /// Bytes written.
    pub bytes: u64,
    /// Events written per event type.
    pub counts_by_type: BTreeMap<String, u64>,
    /// When the export was made (RFC 3339).
    pub created_at: String,
    /// Erased accounts whose personal data was left out.
    pub erased_accounts_redacted: u64,
    /// Events written.
    pub events: u64,
    /// The file written, if any (else stdout).
    pub file: Option<String>,
    /// The filters applied.
    pub filters: ExportFilters,
    /// The first event's position.
    pub first_position: Option<Position>,
    /// `jsonl` or `csv`.
    pub format: String,
    /// The last event's position.
    pub last_position: Option<Position>,
    /// The exporter's peak resident memory (Linux), in KiB.
    pub peak_rss_kib: Option<u64>,
    /// SHA-256 of the file exactly as written (hex).
    pub sha256: String,
    /// `postgres` or `embedded`.
    pub store: String,
    /// The tool and its version.
    pub tool: String,
}

/// The filters of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportFilters {
    /// Only these accounts (empty: all).
    pub accounts: Vec<String>,
    /// Only these event types (empty: all).
    pub event_types: Vec<String>,
    /// Only events at or after this instant.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Only events before this instant.
    pub to: Option<chrono::DateTime<chrono::Utc>>,
}

/// `gatehouse-replay erase --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EraseReport {
    /// The account.
    pub account: String,
    /// Identifier claims removed.
    pub identifier_claims_removed: u64,
    /// When the data key was destroyed (milliseconds since the epoch; the first erasure's).
    pub key_destroyed_ms: i64,
    /// Rows of side tables (API key usage, ceremonies, key claims) removed.
    pub side_rows_removed: u64,
}

/// `gatehouse-replay backtest --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestReport {
    /// Accounts that were actually locked at least once.
    pub accounts_locked_actually: u64,
    /// Accounts the candidate policy would have locked at least once.
    pub accounts_locked_under_policy: u64,
    /// Accounts with at least one recorded sign-in attempt.
    pub accounts_seen: u64,
    /// Sign-in attempts replayed.
    pub attempts: u64,
    /// Locked either way, at other events or for another time.
    pub locked_differently: Vec<BacktestAccount>,
    /// The candidate settings.
    pub policy: BacktestPolicy,
    /// Never locked, but would have been.
    pub would_have_been_locked: Vec<BacktestAccount>,
    /// Locked, but would not have been.
    pub would_not_have_been_locked: Vec<BacktestAccount>,
}

/// The lockout settings a backtest tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BacktestPolicy {
    /// First lock duration, seconds.
    pub lock_seconds: i64,
    /// Longest lock, seconds.
    pub max_lock_seconds: i64,
    /// Consecutive failures that lock.
    pub threshold: u32,
}

/// One account whose fate would have differed under the candidate policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BacktestAccount {
    /// The account.
    pub account: String,
    /// The locks recorded.
    pub actual_locks: Vec<BacktestLock>,
    /// Sequences of failures the candidate would have refused as locked.
    pub failures_that_would_have_been_refused: Vec<i64>,
    /// Sequences of attempts refused while locked whose outcome is unknown under the candidate.
    pub refused_attempts_with_unknown_outcome: Vec<i64>,
    /// The locks the candidate would have set.
    pub simulated_locks: Vec<BacktestLock>,
    /// Sequences of successful sign-ins the candidate would have refused.
    pub successes_that_would_have_been_refused: Vec<i64>,
}

/// A lock, actual or simulated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BacktestLock {
    /// When it was set (RFC 3339).
    pub at: String,
    /// Sequences of the failures that led to it.
    pub failure_sequences: Vec<i64>,
    /// Its lock level.
    pub level: u32,
    /// The sequence it stands at (the failure that caused it).
    pub sequence: i64,
    /// Until when it holds (RFC 3339).
    pub until: String,
}

/// `gatehouse-replay verify --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Aggregates seen.
    pub aggregates: u64,
    /// Aggregates whose chain is broken.
    pub broken_aggregates: u64,
    /// Each checkpoint's verdict.
    pub checkpoints: Vec<CheckpointVerdict>,
    /// Events verified.
    pub events: i64,
    /// Each tampered event, named.
    pub findings: Vec<TamperFinding>,
    /// Whether everything checked out.
    pub ok: bool,
    /// The trusted public key (hex), if one was configured.
    pub trusted_key: Option<String>,
}

/// A tampered event found by `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TamperFinding {
    /// The aggregate's id.
    pub aggregate_id: String,
    /// The aggregate's type.
    pub aggregate_type: String,
    /// Why the tool says so.
    pub detail: String,
    /// `altered`, `deleted`, `reordered` or `inserted`.
    pub kind: String,
    /// The event's sequence in its aggregate.
    pub sequence: i64,
}

/// One signed checkpoint checked by `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointVerdict {
    /// Whether the number of events up to it matches.
    pub count_ok: bool,
    /// Whether the running digest up to it matches.
    pub digest_ok: bool,
    /// Whether its recorded chain heads are unchanged.
    pub heads_ok: bool,
    /// The checkpoint's id.
    pub id: i64,
    /// Whether everything about it checked out.
    pub ok: bool,
    /// The position it signed.
    pub position: Position,
    /// What failed, in words.
    pub problems: Vec<String>,
    /// Whether its signature is good and by a trusted key.
    pub signature_ok: bool,
    /// The verdict as a terminal line.
    pub text: String,
}

/// `gatehouse-replay state --json`: one account as it stood at an instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateReport {
    /// The account.
    pub account: String,
    /// Its API keys.
    pub api_keys: Vec<ApiKeyState>,
    /// The instant (RFC 3339).
    pub at: String,
    /// The chain head after the last event applied.
    pub chain_head: String,
    /// Its contacts (`sealed`, `erased` or null; never opened).
    pub contacts: ContactsState,
    /// Events folded.
    pub events_applied: u64,
    /// A high-risk cooldown in force.
    pub high_risk_cooldown: CooldownState,
    /// The last event folded.
    pub last_sequence: Option<i64>,
    /// Lockout.
    pub lockout: LockoutState,
    /// A lost-factor recovery in progress.
    pub recovery: Option<RecoveryState>,
    /// The freeze in force at the instant, if any (absent when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze: Option<FreezeState>,
    /// Second factors enrolled.
    pub second_factors: SecondFactorsState,
    /// The sessions open at the instant.
    pub sessions: Vec<SessionState>,
    /// How many sessions were open.
    pub sessions_open: u64,
    /// `new`, `unregistered` or `active`.
    pub status: gatehouse_domain::account::AccountStatus,
    /// The events that explain the status.
    pub status_evidence: Vec<Evidence>,
    /// Verified contact channels.
    pub verified_channels: Vec<String>,
    /// The withdrawal whitelist.
    pub withdrawal_whitelist: WhitelistState,
}

/// A freeze in a `state` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeState {
    /// Since when (RFC 3339).
    pub since: String,
    /// Who froze the account.
    pub by: String,
    /// When a staff unfreeze takes effect (RFC 3339), if one is pending.
    pub release_at: Option<String>,
    /// The events that made it so.
    pub evidence: Vec<Evidence>,
}

/// An event that explains part of a `state` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// When it happened (RFC 3339).
    pub at: String,
    /// Its type.
    pub event_type: String,
    /// Its sequence in the account.
    pub sequence: i64,
    /// One line describing it.
    pub what: String,
}

/// An API key in a `state` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyState {
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// Its id.
    pub key_id: String,
    /// Its name.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<gatehouse_domain::account::ApiScope>,
    /// `active`, `expired` or `revoked`.
    pub status: String,
}

/// Contacts in a `state` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactsState {
    /// `sealed`, `erased`, or null when none.
    pub email: Option<String>,
    /// `sealed`, `erased`, or null when none.
    pub phone: Option<String>,
}

/// A high-risk cooldown in a `state` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CooldownState {
    /// The events that started it.
    pub evidence: Vec<Evidence>,
    /// Why it holds.
    pub reasons: Vec<String>,
    /// Until when (RFC 3339), null when none is in force.
    pub until: Option<String>,
}

/// Lockout in a `state` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockoutState {
    /// Consecutive failures counted.
    pub consecutive_failures: u32,
    /// The last success or unlock and every failure, lock and refusal since.
    pub evidence: Vec<Evidence>,
    /// The lock level reached.
    pub lock_level: u32,
    /// Whether it was locked at the instant.
    pub locked: bool,
    /// Until when (RFC 3339).
    pub locked_until: Option<String>,
}

/// A lost-factor recovery in a `state` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryState {
    /// The recovery flow.
    pub flow_id: String,
    /// The end of its hold (RFC 3339), if any.
    pub hold_until: Option<String>,
    /// Its stage, in words.
    pub stage: String,
    /// The step reached.
    pub step: u32,
    /// Steps in all.
    pub steps_total: u32,
}

/// Second factors in a `state` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondFactorsState {
    /// Backup codes left.
    pub backup_codes_left: u64,
    /// The events that added or removed factors.
    pub evidence: Vec<Evidence>,
    /// Security keys registered.
    pub security_keys: Vec<SecurityKeyState>,
    /// Whether TOTP is enrolled.
    pub totp: bool,
}

/// A security key in a `state` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityKeyState {
    /// Its credential id.
    pub key_id: String,
    /// Last used (RFC 3339), if ever.
    pub last_used_at: Option<String>,
    /// Its name.
    pub name: String,
    /// When it was registered (RFC 3339).
    pub registered_at: String,
}

/// An open session in a `state` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// The client's device id, if given.
    pub device_id: Option<String>,
    /// Its sign-in, start and extensions.
    pub evidence: Vec<Evidence>,
    /// Absolute expiry (RFC 3339).
    pub expires_at: String,
    /// Idle expiry (RFC 3339).
    pub idle_expires_at: String,
    /// The client's address, if known.
    pub ip: Option<String>,
    /// The session.
    pub session_id: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// The client's user agent, if given.
    pub user_agent: Option<String>,
}

/// The withdrawal whitelist in a `state` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhitelistState {
    /// Whitelisted and proposed addresses (sealed).
    pub addresses: Vec<AddressState>,
    /// Whether withdrawals may only go to whitelisted addresses.
    pub whitelist_only: bool,
}

/// A withdrawal address in a `state` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressState {
    /// `sealed` or `erased` (never opened).
    pub address: String,
    /// Its id.
    pub address_id: String,
    /// The asset.
    pub asset: String,
    /// The network.
    pub network: String,
    /// When its cooldown ends (RFC 3339), once whitelisted.
    pub usable_from: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn test_rebuild_report_keeps_its_keys() {
        let printed = json!({
            "differences": 1,
            "projections": [{
                "differences": 1,
                "events_applied": 7,
                "position": {"pos": 9, "tx": 3},
                "projection": "lockout",
                "tables": [{
                    "differences": [
                        {"kind": "missing_from_live", "key": {"id": "a"}, "rebuilt": {"n": 1}, "table": "t"},
                        {"kind": "extra_in_live", "key": {"id": "b"}, "live": {"n": 2}, "table": "t"},
                        {"kind": "changed", "key": {"id": "c"}, "table": "t",
                         "columns": [{"column": "n", "live": 1, "rebuilt": 2}]}
                    ],
                    "rows_live": 2,
                    "rows_rebuilt": 2,
                    "table": "t"
                }]
            }],
            "seconds": {"fold": 0.5, "rebuild": 1.0, "total": 1.5},
            "shadow": "gatehouse_rebuild",
            "swapped": false,
            "text": ["line"]
        });
        let report: RebuildReport = serde_json::from_value(printed.clone()).unwrap();
        assert_eq!(report.seconds.total, 1.5);
        assert_eq!(report.projections[0].tables[0].differences.len(), 3);
        assert_eq!(serde_json::to_value(&report).unwrap(), printed);
        // Same keys in the same (alphabetical) order as the maps printed before, except that a
        // difference's `kind` tag now comes first.
        let mut without_differences = report.clone();
        without_differences.projections[0].tables[0]
            .differences
            .clear();
        let mut printed = printed;
        printed["projections"][0]["tables"][0]["differences"] = json!([]);
        assert_eq!(
            serde_json::to_string(&without_differences).unwrap(),
            serde_json::to_string(&printed).unwrap()
        );
    }

    #[test]
    fn test_export_manifest_and_erase_report_keep_their_keys() {
        let manifest = json!({
            "bytes": 10, "counts_by_type": {"LoginFailed": 2}, "created_at": "2026-01-01T00:00:00Z",
            "erased_accounts_redacted": 0, "events": 2, "file": null,
            "filters": {"accounts": [], "event_types": ["LoginFailed"], "from": null, "to": null},
            "first_position": {"pos": 1, "tx": 1}, "format": "jsonl", "last_position": null,
            "peak_rss_kib": 1024, "sha256": "ab", "store": "postgres", "tool": "gatehouse-replay 0"
        });
        let parsed: ExportManifest = serde_json::from_value(manifest.clone()).unwrap();
        assert_eq!(
            serde_json::to_string(&parsed).unwrap(),
            serde_json::to_string(&manifest).unwrap()
        );
        let erase = json!({"account": "x", "identifier_claims_removed": 2, "key_destroyed_ms": 5,
                           "side_rows_removed": 0});
        let parsed: EraseReport = serde_json::from_value(erase.clone()).unwrap();
        assert_eq!(
            serde_json::to_string(&parsed).unwrap(),
            serde_json::to_string(&erase).unwrap()
        );
    }

    /// The keys of every object in `v` (nested objects and arrays included), as `path.key`.
    fn keys(v: &Value, path: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = format!("{path}.{k}");
                    keys(v, &p, out);
                    out.push(p);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| keys(v, &format!("{path}[]"), out)),
            _ => {}
        }
    }

    /// Asserts that `printed` parses into `T` and prints back exactly, with the same keys.
    fn round_trips<T: Serialize + serde::de::DeserializeOwned>(printed: &Value) {
        let parsed: T = serde_json::from_value(printed.clone()).unwrap();
        let again = serde_json::to_value(&parsed).unwrap();
        let (mut want, mut got) = (Vec::new(), Vec::new());
        keys(printed, "", &mut want);
        keys(&again, "", &mut got);
        want.sort();
        got.sort();
        assert_eq!(got, want);
        assert_eq!(again, *printed);
    }

    #[test]
    fn test_backtest_report_keeps_its_keys() {
        let lock = json!({"at": "2026-01-01T00:00:00Z", "failure_sequences": [1, 2, 3], "level": 1,
                          "sequence": 3, "until": "2026-01-01T00:10:00Z"});
        let account = json!({
            "account": "a", "actual_locks": [lock], "simulated_locks": [lock],
            "successes_that_would_have_been_refused": [4],
            "failures_that_would_have_been_refused": [5],
            "refused_attempts_with_unknown_outcome": [6]
        });
        round_trips::<BacktestReport>(&json!({
            "policy": {"threshold": 3, "lock_seconds": 600, "max_lock_seconds": 7200},
            "accounts_seen": 2, "attempts": 9,
            "accounts_locked_actually": 1, "accounts_locked_under_policy": 1,
            "would_have_been_locked": [account], "would_not_have_been_locked": [account],
            "locked_differently": [account]
        }));
    }

    #[test]
    fn test_verify_report_keeps_its_keys() {
        round_trips::<VerifyReport>(&json!({
            "ok": false, "events": 10, "aggregates": 2, "broken_aggregates": 1,
            "findings": [{"kind": "altered", "aggregate_type": "Account", "aggregate_id": "a",
                          "sequence": 2, "detail": "d"}],
            "checkpoints": [{"id": 1, "position": {"tx": 5, "pos": 9}, "ok": false,
                             "signature_ok": true, "digest_ok": false, "count_ok": true,
                             "heads_ok": true, "problems": ["p"], "text": "CHECKPOINT #1"}],
            "trusted_key": null
        }));
    }

    #[test]
    fn test_state_report_keeps_its_keys() {
        let ev = json!({"sequence": 1, "at": "t", "event_type": "LoginFailed", "what": "w"});
        round_trips::<StateReport>(&json!({
            "account": "a", "at": "t", "events_applied": 1, "last_sequence": 1,
            "status": "active", "status_evidence": [ev],
            "contacts": {"email": "sealed", "phone": null},
            "lockout": {"locked": true, "locked_until": "t", "consecutive_failures": 3,
                        "lock_level": 1, "evidence": [ev]},
            "verified_channels": ["email"],
            "high_risk_cooldown": {"until": "t", "reasons": ["password_reset"], "evidence": [ev]},
            "second_factors": {"totp": true, "backup_codes_left": 8,
                               "security_keys": [{"key_id": "k", "name": "n", "registered_at": "t",
                                                  "last_used_at": null}],
                               "evidence": [ev]},
            "recovery": {"flow_id": "f", "stage": "waiting", "step": 1, "steps_total": 3,
                         "hold_until": null},
            "api_keys": [{"key_id": "k", "name": "n", "scopes": ["read", "withdraw"],
                          "status": "active", "created_at": "t"}],
            "withdrawal_whitelist": {"whitelist_only": true,
                                     "addresses": [{"address_id": "x", "asset": "BTC",
                                                    "network": "bitcoin", "address": "sealed",
                                                    "usable_from": null}]},
            "sessions_open": 1,
            "sessions": [{"session_id": "s", "started_at": "t", "expires_at": "t",
                          "idle_expires_at": "t", "ip": "192.0.2.1", "user_agent": null,
                          "device_id": null, "evidence": [ev]}],
            "chain_head": "h"
        }));
    }
}
