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
}
