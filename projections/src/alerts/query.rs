//! Reads for the analysts' API: alerts (filtered, keyset-paged), their evidence, the alerts that
//! changed after a stream position (live feed), login history across accounts, and one
//! aggregate's raw event timeline.
use gatehouse_store::{Store, StoreError, StreamPosition};
use serde::Serialize;
use sqlx::AnyPool;

use super::Rule;

/// One alert as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertRow {
    /// Alert id.
    pub id: String,
    /// Rule name.
    pub rule: String,
    /// `low`, `medium`, `high`, `critical`.
    pub severity: String,
    /// `account:<id>`, `identifier:<lookup>`, `ip:<addr>`, `net:<cidr>` or `global`.
    pub subject: String,
    /// Time of the earliest evidence (ms since the epoch).
    pub first_seen_ms: i64,
    /// Time of the latest evidence.
    pub last_seen_ms: i64,
    /// Evidence events.
    pub count: i64,
    /// `open`, `acknowledged`, `resolved`.
    pub status: String,
    /// Note of the last status change.
    pub status_note: Option<String>,
    /// Staff id of the last status change.
    pub status_by: Option<String>,
    /// Thresholds that produced it.
    pub policy_version: String,
    /// Stream position of its last change.
    #[serde(skip)]
    pub updated: StreamPosition,
}

/// Filters of [`list_alerts`]; all optional.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Rule name.
    pub rule: Option<String>,
    /// Severity.
    pub severity: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Exact subject.
    pub subject: Option<String>,
    /// Alerts whose last evidence is at or after this (ms).
    pub from_ms: Option<i64>,
    /// Alerts whose first evidence is at or before this (ms).
    pub to_ms: Option<i64>,
    /// Keyset cursor: strictly after this `(first_seen_ms, id)` in newest-first order.
    pub before: Option<(i64, String)>,
}

const ALERT_COLUMNS: &str =
    "id, rule, severity, subject, first_seen_ms, last_seen_ms, count, status,
    status_note, status_by, policy_version, updated_tx, updated_pos";

/// A row of `alerts_v1` as [`ALERT_COLUMNS`] selects it.
#[derive(sqlx::FromRow)]
struct AlertRecord {
    id: String,
    rule: String,
    severity: String,
    subject: String,
    first_seen_ms: i64,
    last_seen_ms: i64,
    count: i64,
    status: String,
    status_note: Option<String>,
    status_by: Option<String>,
    policy_version: String,
    updated_tx: i64,
    updated_pos: i64,
}

impl From<AlertRecord> for AlertRow {
    fn from(r: AlertRecord) -> Self {
        Self {
            id: r.id,
            rule: r.rule,
            severity: r.severity,
            subject: r.subject,
            first_seen_ms: r.first_seen_ms,
            last_seen_ms: r.last_seen_ms,
            count: r.count,
            status: r.status,
            status_note: r.status_note,
            status_by: r.status_by,
            policy_version: r.policy_version,
            updated: StreamPosition {
                tx: r.updated_tx,
                pos: r.updated_pos,
            },
        }
    }
}

enum Bind {
    Text(String),
    Int(i64),
}

/// Newest first (by first evidence, then id), at most `limit`.
pub async fn list_alerts(
    pool: &AnyPool,
    filter: &AlertFilter,
    limit: i64,
) -> Result<Vec<AlertRow>, StoreError> {
    let mut conditions: Vec<String> = Vec::new();
    let mut binds: Vec<Bind> = Vec::new();
    for (column, value) in [
        ("rule", &filter.rule),
        ("severity", &filter.severity),
        ("status", &filter.status),
        ("subject", &filter.subject),
    ] {
        if let Some(v) = value {
            binds.push(Bind::Text(v.clone()));
            conditions.push(format!("{column} = ${}", binds.len()));
        }
    }
    if let Some(from) = filter.from_ms {
        binds.push(Bind::Int(from));
        conditions.push(format!("last_seen_ms >= ${}", binds.len()));
    }
    if let Some(to) = filter.to_ms {
        binds.push(Bind::Int(to));
        conditions.push(format!("first_seen_ms <= ${}", binds.len()));
    }
    if let Some((ms, id)) = &filter.before {
        binds.push(Bind::Int(*ms));
        binds.push(Bind::Text(id.clone()));
        let (m, i) = (binds.len() - 1, binds.len());
        conditions.push(format!(
            "(first_seen_ms < ${m} or (first_seen_ms = ${m} and id < ${i}))"
        ));
    }
    let mut sql = format!("select {ALERT_COLUMNS} from alerts_v1");
    if !conditions.is_empty() {
        sql.push_str(" where ");
        sql.push_str(&conditions.join(" and "));
    }
    sql.push_str(&format!(
        " order by first_seen_ms desc, id desc limit ${}",
        binds.len() + 1
    ));
    let mut query = sqlx::query_as::<_, AlertRecord>(&sql);
    for b in binds {
        query = match b {
            Bind::Text(s) => query.bind(s),
            Bind::Int(i) => query.bind(i),
        };
    }
    let rows = query.bind(limit).fetch_all(pool).await?;
    Ok(rows.into_iter().map(AlertRow::from).collect())
}

/// One alert.
pub async fn get_alert(pool: &AnyPool, id: &str) -> Result<Option<AlertRow>, StoreError> {
    let row = sqlx::query_as::<_, AlertRecord>(&format!(
        "select {ALERT_COLUMNS} from alerts_v1 where id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(AlertRow::from))
}

/// Alerts changed after `after` in stream order (the live feed), oldest change first.
pub async fn alerts_changed_after(
    pool: &AnyPool,
    after: StreamPosition,
    limit: i64,
) -> Result<Vec<AlertRow>, StoreError> {
    let rows = sqlx::query_as::<_, AlertRecord>(&format!(
        "select {ALERT_COLUMNS} from alerts_v1
          where updated_tx > $1 or (updated_tx = $1 and updated_pos > $2)
          order by updated_tx, updated_pos, id limit $3"
    ))
    .bind(after.tx)
    .bind(after.pos)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(AlertRow::from).collect())
}

/// Alerts changed after `(after, id)` in change order (position, then id), oldest first: a
/// cursor that never skips one of several alerts changed by the same event (the event stream
/// publisher's).
pub async fn alerts_changed_after_id(
    pool: &AnyPool,
    after: StreamPosition,
    id: &str,
    limit: i64,
) -> Result<Vec<AlertRow>, StoreError> {
    let rows = sqlx::query_as::<_, AlertRecord>(&format!(
        "select {ALERT_COLUMNS} from alerts_v1
          where updated_tx > $1
             or (updated_tx = $1 and (updated_pos > $2 or (updated_pos = $2 and id > $3)))
          order by updated_tx, updated_pos, id limit $4"
    ))
    .bind(after.tx)
    .bind(after.pos)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(AlertRow::from).collect())
}

/// The latest change position over all alerts (where a new live feed starts).
pub async fn alerts_head(pool: &AnyPool) -> Result<StreamPosition, StoreError> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "select updated_tx, updated_pos from alerts_v1
          order by updated_tx desc, updated_pos desc limit 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(row
        .map(|(tx, pos)| StreamPosition { tx, pos })
        .unwrap_or_default())
}

/// An unresolved alert's subject and id.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SubjectAlert {
    /// `ip:<addr>`, `net:<cidr>`, `account:<id>`, ….
    pub subject: String,
    /// Alert id.
    pub id: String,
}

/// The subjects of unresolved alerts of `rule` whose last evidence is at or after `since_ms`
/// (the networks protection limits, for `credential_stuffing`).
pub async fn unresolved_subjects(
    pool: &AnyPool,
    rule: Rule,
    since_ms: i64,
) -> Result<Vec<SubjectAlert>, StoreError> {
    Ok(sqlx::query_as(
        "select subject, id from alerts_v1
          where rule = $1 and status <> 'resolved' and last_seen_ms >= $2",
    )
    .bind(rule.name())
    .bind(since_ms)
    .fetch_all(pool)
    .await?)
}

/// One evidence event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct EvidenceRow {
    /// Aggregate id.
    pub aggregate_id: String,
    /// Sequence in the aggregate.
    pub sequence: i64,
    /// Event time (ms).
    pub at_ms: i64,
}

/// An alert's evidence, oldest first, at most `limit`.
pub async fn evidence(
    pool: &AnyPool,
    alert_id: &str,
    limit: i64,
) -> Result<Vec<EvidenceRow>, StoreError> {
    Ok(sqlx::query_as(
        "select aggregate_id, sequence, at_ms from alert_evidence_v1 where alert_id = $1
          order by at_ms, aggregate_id, sequence limit $2",
    )
    .bind(alert_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Alerts per rule, severity and status (for `/metrics`).
pub async fn alert_counts(
    pool: &AnyPool,
) -> Result<Vec<(String, String, String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "select rule, severity, status, count(*) as n from alerts_v1
          group by rule, severity, status order by rule, severity, status",
    )
    .fetch_all(pool)
    .await?)
}

/// One login-history row across accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LoginRow {
    /// Account (or `unknown-<lookup>` stand-in).
    pub account_id: String,
    /// Event sequence.
    pub sequence: i64,
    /// When (ms).
    pub at_ms: i64,
    /// `succeeded`, `failed`, `locked`.
    pub outcome: String,
    /// Failure reason.
    pub reason: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// Device id.
    pub device_id: Option<String>,
    /// The trusted device whose door the attempt went through; `None`: the untrusted door.
    pub trusted_device_id: Option<String>,
}

/// Filters of [`search_logins`].
#[derive(Debug, Clone, Default)]
pub struct LoginFilter {
    /// One account.
    pub account: Option<String>,
    /// One IP.
    pub ip: Option<String>,
    /// At or after (ms).
    pub from_ms: Option<i64>,
    /// At or before (ms).
    pub to_ms: Option<i64>,
    /// Keyset cursor: strictly before `(at_ms, account_id, sequence)` in newest-first order.
    pub before: Option<(i64, String, i64)>,
}

/// Newest first, at most `limit`.
pub async fn search_logins(
    pool: &AnyPool,
    f: &LoginFilter,
    limit: i64,
) -> Result<Vec<LoginRow>, StoreError> {
    let (before_ms, before_account, before_seq) =
        f.before
            .clone()
            .unwrap_or((i64::MAX, String::new(), i64::MAX));
    let unbounded = f.before.is_none();
    Ok(sqlx::query_as(
        "select account_id, sequence, at_ms, outcome, reason, ip, user_agent, device_id,
                trusted_device_id
           from login_history_v1
          where ($1 is null or account_id = $1)
            and ($2 is null or ip = $2)
            and at_ms >= $3 and at_ms <= $4
            and ($5 = 1 or at_ms < $6 or (at_ms = $6 and (account_id < $7
                 or (account_id = $7 and sequence < $8))))
          order by at_ms desc, account_id desc, sequence desc
          limit $9",
    )
    .bind(f.account.as_deref())
    .bind(f.ip.as_deref())
    .bind(f.from_ms.unwrap_or(i64::MIN))
    .bind(f.to_ms.unwrap_or(i64::MAX))
    .bind(i64::from(unbounded))
    .bind(before_ms)
    .bind(before_account)
    .bind(before_seq)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// One raw event of an aggregate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RawEvent {
    /// Sequence in the aggregate.
    pub sequence: i64,
    /// Event type.
    pub event_type: String,
    /// Payload version.
    pub event_version: String,
    /// Payload as stored.
    pub payload: serde_json::Value,
    /// When the store recorded it (the events table's `recorded_at`).
    pub recorded_at: chrono::DateTime<chrono::Utc>,
}

/// A row of [`aggregate_events`]: the payload and the time as text on both stores.
#[derive(sqlx::FromRow)]
struct RawEventRow {
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: String,
    recorded_at: String,
}

/// Which events of one aggregate [`aggregate_events`] reads: the sequences strictly between
/// `after` and `before` (open when `None`), in order or newest first, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRange {
    /// Lower bound, exclusive.
    pub after: i64,
    /// Upper bound, exclusive.
    pub before: Option<i64>,
    /// Newest first (the latest `limit` events) instead of oldest first.
    pub newest_first: bool,
    /// At most this many.
    pub limit: i64,
}

/// Events of one aggregate of `aggregate_type` in `range`. Both orders walk the primary key
/// `(aggregate_type, aggregate_id, sequence)` from one end of the range, so the latest events of
/// a long history cost what the first ones do.
pub async fn aggregate_events(
    store: &Store,
    aggregate_type: &str,
    aggregate_id: &str,
    range: EventRange,
) -> Result<Vec<RawEvent>, StoreError> {
    // Text on both stores: the Any driver decodes neither `json` nor `timestamptz`.
    let (payload, recorded_at) = match store.kind() {
        "postgres" => (
            "payload::text as payload",
            r#"to_char(recorded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as recorded_at"#,
        ),
        _ => ("payload", "recorded_at"),
    };
    let order = if range.newest_first { "desc" } else { "asc" };
    let rows: Vec<RawEventRow> = sqlx::query_as(&format!(
        "select sequence, event_type, event_version, {payload}, {recorded_at} from events
          where aggregate_type = $1 and aggregate_id = $2 and sequence > $3 and sequence < $4
          order by sequence {order} limit $5"
    ))
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(range.after)
    .bind(range.before.unwrap_or(i64::MAX))
    .bind(range.limit)
    .fetch_all(store.any())
    .await?;
    let decode = |e: Box<dyn std::error::Error + Send + Sync>| sqlx::Error::Decode(e);
    rows.into_iter()
        .map(|r| {
            Ok(RawEvent {
                sequence: r.sequence,
                event_type: r.event_type,
                event_version: r.event_version,
                payload: serde_json::from_str(&r.payload).map_err(|e| decode(Box::new(e)))?,
                recorded_at: chrono::DateTime::parse_from_rfc3339(&r.recorded_at)
                    .map_err(|e| decode(Box::new(e)))?
                    .with_timezone(&chrono::Utc),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}
