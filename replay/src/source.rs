//! Reading the store for the replay tool: the global stream in batches (constant memory), one
//! aggregate's events, erased accounts, progress bars, and small shared helpers.
use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use gatehouse_store::Backend;
use gatehouse_store::{Store, StoreError, StoredEvent, StreamPosition};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use sqlx::Row;
use thiserror::Error;

/// Events per read of the global stream.
pub const BATCH: i64 = 1000;

/// Events per read and per transaction of a rebuild: larger batches mean fewer statements and
/// transactions per event. A rebuild of 1 M events into fresh tables took 12.0-12.3 s at 5,000
/// and 10.9-11.1 s at 10,000, at a peak of 76 and 140 MiB; 20,000 was no faster. Memory follows
/// the batch, never the stream's length.
pub const REBUILD_BATCH: i64 = 10000;

/// Events per query when a rebuild reads its batches: the stream reader reads fastest at about
/// this size (a plain scan of 1 M events: 241-259 k events/s at 5,000 rows per query, 202-217 k
/// at 10,000, same machine and hour), and it is what `gatehouse-bench replay` scans with.
pub const REBUILD_READ: i64 = 5000;

/// What a subcommand can fail with (exit status 2).
#[derive(Debug, Error)]
pub enum Error {
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Writing output failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A bad argument or input file.
    #[error("{0}")]
    Usage(String),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}

/// Result of the replay tool's operations.
pub type Result<T> = std::result::Result<T, Error>;

/// A cursor over the global stream, one batch at a time.
pub struct Stream<'a> {
    store: &'a Store,
    position: StreamPosition,
    batch: i64,
}

impl<'a> Stream<'a> {
    /// A cursor after `from` (the default position is the stream's start).
    pub fn new(store: &'a Store, from: StreamPosition) -> Self {
        Self {
            store,
            position: from,
            batch: BATCH,
        }
    }

    /// The next batch, `None` at the end of what is visible now.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<StoredEvent>>> {
        let batch = self.store.read_stream(self.position, self.batch).await?;
        match batch.last() {
            None => Ok(None),
            Some(last) => {
                self.position = last.position;
                Ok(Some(batch))
            }
        }
    }
}

/// A progress bar on stderr for `total` items; hidden when stderr is not a terminal.
pub fn progress(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}

/// Every event of one aggregate, by sequence, whatever the visibility of its transaction (for
/// diagnosis and per-account views).
pub async fn aggregate_events(
    store: &Store,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Vec<StoredEvent>> {
    match store.backend() {
        Backend::Postgres(pool) => {
            let rows = sqlx::query(
                "select aggregate_type, aggregate_id, sequence, event_type, event_version, payload,
                        metadata, global_position, tx_id::text::bigint as tx, recorded_at
                   from events where aggregate_type = $1 and aggregate_id = $2 order by sequence",
            )
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(StoredEvent {
                        position: StreamPosition {
                            tx: row.try_get("tx")?,
                            pos: row.try_get("global_position")?,
                        },
                        aggregate_type: row.try_get("aggregate_type")?,
                        aggregate_id: row.try_get("aggregate_id")?,
                        sequence: row.try_get("sequence")?,
                        event_type: row.try_get("event_type")?,
                        event_version: row.try_get("event_version")?,
                        payload: row.try_get("payload")?,
                        metadata: row.try_get("metadata")?,
                        recorded_at: row.try_get("recorded_at")?,
                        decoded: Default::default(),
                    })
                })
                .collect::<std::result::Result<_, sqlx::Error>>()
                .map_err(Error::from)
        }
        Backend::Sqlite(pool) => {
            let rows = sqlx::query(
                "select aggregate_type, aggregate_id, sequence, event_type, event_version, payload,
                        metadata, position, recorded_at
                   from events where aggregate_type = $1 and aggregate_id = $2 order by sequence",
            )
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let payload: String = row.try_get("payload")?;
                    let metadata: String = row.try_get("metadata")?;
                    let recorded: String = row.try_get("recorded_at")?;
                    let parse = |s: &str| {
                        serde_json::from_str::<Value>(s)
                            .map_err(|e| sqlx::Error::Decode(Box::new(e)))
                    };
                    Ok(StoredEvent {
                        position: StreamPosition {
                            tx: 0,
                            pos: row.try_get::<Option<i64>, _>("position")?.unwrap_or(0),
                        },
                        aggregate_type: row.try_get("aggregate_type")?,
                        aggregate_id: row.try_get("aggregate_id")?,
                        sequence: row.try_get("sequence")?,
                        event_type: row.try_get("event_type")?,
                        event_version: row.try_get("event_version")?,
                        payload: parse(&payload)?,
                        metadata: parse(&metadata)?,
                        recorded_at: DateTime::parse_from_rfc3339(&recorded)
                            .ok()
                            .map(|t| t.with_timezone(&Utc)),
                        decoded: Default::default(),
                    })
                })
                .collect::<std::result::Result<_, sqlx::Error>>()
                .map_err(Error::from)
        }
    }
}

/// Accounts whose data key was destroyed (erased).
pub async fn erased_accounts(store: &Store) -> Result<HashSet<String>> {
    let ids: Vec<String> =
        sqlx::query_scalar("select account_id from account_keys where destroyed_ms is not null")
            .fetch_all(store.any())
            .await?;
    Ok(ids.into_iter().collect())
}

/// Whether one account's data key was destroyed.
pub async fn is_erased(store: &Store, account_id: &str) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "select count(*) from account_keys where account_id = $1 and destroyed_ms is not null",
    )
    .bind(account_id)
    .fetch_one(store.any())
    .await?;
    Ok(n > 0)
}

/// The text shown in place of a sealed value whose key was destroyed.
pub const ERASED: &str = "erased";

/// Replaces every sealed value in `value` by [`ERASED`]: the string value of any `sealed` or
/// `sealed_*` field (contacts, TOTP secret, anti-phishing phrase, recovery evidence) in the sealed
/// form (`v1.…`).
pub fn redact_sealed(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let sealed_key = key == "sealed" || key.starts_with("sealed_");
                if sealed_key && v.as_str().is_some_and(|s| s.starts_with("v1.")) {
                    *v = Value::String(ERASED.into());
                } else {
                    redact_sealed(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_sealed),
        _ => {}
    }
}

/// When the fact happened (the payload's `at`), else when the row was recorded.
pub fn event_time(event: &StoredEvent) -> Option<DateTime<Utc>> {
    event
        .payload
        .get("at")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .or(event.recorded_at)
}

/// Parses an instant: RFC 3339 (`2026-01-02T03:04:05Z`) or a date (`2026-01-02`, midnight UTC).
pub fn parse_instant(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            Error::Usage(format!(
                "{s:?} is not an instant: use RFC 3339 (2026-01-02T03:04:05Z) or a date (2026-01-02)"
            ))
        })
}

/// Position as JSON (`{"tx": …, "pos": …}`).
pub fn position_json(p: StreamPosition) -> Value {
    serde_json::json!({"tx": p.tx, "pos": p.pos})
}

/// A stream position as the reports print it.
pub fn position(p: StreamPosition) -> gatehouse_replay::report::Position {
    gatehouse_replay::report::Position {
        pos: p.pos,
        tx: p.tx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn test_redact_sealed_replaces_only_sealed_values() {
        let mut v = json!({"fact": {"AccountRegistered": {
            "email": {"sealed": "v1.abc", "lookup": "l"}, "phone": null,
            "context": {"ip": "203.0.113.1"}}}});
        redact_sealed(&mut v);
        assert_eq!(
            v["fact"]["AccountRegistered"]["email"],
            json!({"sealed": "erased", "lookup": "l"})
        );
        assert_eq!(
            v["fact"]["AccountRegistered"]["context"]["ip"],
            "203.0.113.1"
        );
        let mut totp = json!({"fact": {"TotpEnrolmentStarted": {"sealed_secret": "v1.s"}}});
        redact_sealed(&mut totp);
        assert_eq!(
            totp["fact"]["TotpEnrolmentStarted"]["sealed_secret"],
            "erased"
        );
    }

    #[test]
    fn test_parse_instant_accepts_rfc3339_and_dates() {
        assert_eq!(
            parse_instant("2026-01-02").unwrap(),
            parse_instant("2026-01-02T00:00:00Z").unwrap()
        );
        assert!(parse_instant("yesterday").is_err());
    }
}
