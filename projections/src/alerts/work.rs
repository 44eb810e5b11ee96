//! A segment of a batch (consecutive `Account` events) worked in memory: what the rules need from
//! the tables is read in a few queries first, every rule runs on that, and everything the segment
//! changed is written at the end in multi-row statements.
//!
//! Loaded up front, for the subjects, accounts and values the segment's events name: the alerts
//! an event could extend or collide with, the devices and IPs already known, the recovery marks.
//! Nothing else can be touched by these events, so the answers equal those of reading each row
//! when it is needed, which the previous, row-at-a-time version did.
use std::collections::{HashMap, HashSet};

use sqlx::AnyConnection;

use super::windows::Signal;
use super::{alert_id, Evidence, Rule};
use gatehouse_store::{StoreError, StreamPosition};

use crate::batch::{insert_new_rows, insert_rows, list};
use crate::cell::Cell;

/// An alert as the batch reads it back (`alerts_v1`).
#[derive(sqlx::FromRow)]
struct StoredAlert {
    id: String,
    rule: String,
    subject: String,
    status: String,
    first_seen_ms: i64,
    last_seen_ms: i64,
}

/// A device or IP an account is known by (`alert_known_v1`).
#[derive(sqlx::FromRow)]
struct KnownRow {
    account_id: String,
    kind: String,
    value: String,
}

/// An account's last recovery (`alert_recovery_marks_v1`).
#[derive(sqlx::FromRow)]
struct MarkRow {
    account_id: String,
    sequence: i64,
    at_ms: i64,
}

/// Evidence rows new to an alert: counted per alert on PostgreSQL (`n`), one row each on SQLite
/// (no `n` column).
#[derive(sqlx::FromRow)]
struct InsertedEvidence {
    alert_id: String,
    #[sqlx(default)]
    n: Option<i64>,
}

/// Placeholders per `in (…)` list (well below every bind limit).
const IN_LIST: usize = 500;

/// An alert row as this segment sees it.
#[derive(Debug, Clone)]
struct AlertRow {
    id: String,
    rule: &'static str,
    subject: String,
    resolved: bool,
    first_seen_ms: i64,
    last_seen_ms: i64,
    /// Created in this segment (inserted at the end, with its final values).
    new: bool,
    /// Evidence added in this segment (counted exactly for new alerts; for existing ones the
    /// database says which rows were new).
    added: i64,
    /// Position of the last event that touched it in this segment.
    touched: Option<StreamPosition>,
    severity: &'static str,
}

/// An evidence row waiting to be written: alert id, event.
type EvidenceRow = (String, Evidence);

/// A signal row waiting to be written.
pub(crate) struct SignalRow {
    pub kind: &'static str,
    pub signal: Signal,
}

/// The segment's view of the alerts tables and what it will write.
pub(crate) struct Work {
    alerts: HashMap<String, AlertRow>,
    by_key: HashMap<(&'static str, String), Vec<String>>,
    evidence: Vec<EvidenceRow>,
    evidence_seen: HashSet<(String, String, i64)>,
    /// Per account, the `(kind, value)` pairs it is known by (a handful each).
    known: HashMap<String, Vec<(String, String)>>,
    new_known: Vec<(String, String, String)>,
    marks: HashMap<String, Option<Evidence>>,
    marks_changed: Vec<String>,
    signals: Vec<SignalRow>,
    prune_before: Option<i64>,
}

/// What the segment's events name, for the loads.
#[derive(Default)]
pub(crate) struct Needs {
    /// Alert subjects an event could raise on.
    pub subjects: HashSet<String>,
    /// Accounts that sign in (known devices and IPs) or recover (marks).
    pub accounts: HashSet<String>,
    /// Device ids and IPs the sign-ins present.
    pub values: HashSet<String>,
    /// The earliest event time (alerts first seen before what any window reaches cannot collide).
    pub earliest_ms: Option<i64>,
    /// Where a key is formatted before it is looked up: most events name subjects and accounts
    /// that earlier events of the batch named already, and are then spared an allocation.
    scratch: String,
}

impl Needs {
    /// Adds the subject `key` formats to.
    pub(crate) fn subject(&mut self, key: std::fmt::Arguments<'_>) {
        add_formatted(&mut self.subjects, &mut self.scratch, key);
    }

    /// Adds an account.
    pub(crate) fn account(&mut self, id: &str) {
        if !self.accounts.contains(id) {
            self.accounts.insert(id.to_string());
        }
    }

    /// Adds a device id or IP.
    pub(crate) fn value(&mut self, value: &str) {
        if !self.values.contains(value) {
            self.values.insert(value.to_string());
        }
    }
}

/// Inserts what `key` formats to, allocating only when it is new.
fn add_formatted(set: &mut HashSet<String>, scratch: &mut String, key: std::fmt::Arguments<'_>) {
    use std::fmt::Write;
    scratch.clear();
    // Writing to a `String` cannot fail.
    let _ = scratch.write_fmt(key);
    if !set.contains(scratch.as_str()) {
        set.insert(scratch.clone());
    }
}

impl Work {
    /// Reads what the segment needs. `reach_ms`: how far before an event any alert's first
    /// evidence can lie.
    pub(crate) async fn load(
        conn: &mut AnyConnection,
        needs: &Needs,
        reach_ms: i64,
    ) -> Result<Self, StoreError> {
        let mut work = Work {
            alerts: HashMap::new(),
            by_key: HashMap::new(),
            evidence: Vec::new(),
            evidence_seen: HashSet::new(),
            known: HashMap::new(),
            new_known: Vec::new(),
            marks: HashMap::new(),
            marks_changed: Vec::new(),
            signals: Vec::new(),
            prune_before: None,
        };
        // Open alerts (the ones an event may extend), and recent resolved ones (a new alert's
        // deterministic id may equal theirs).
        let since = needs
            .earliest_ms
            .unwrap_or(i64::MAX)
            .saturating_sub(reach_ms);
        let subjects: Vec<&String> = needs.subjects.iter().collect();
        for chunk in subjects.chunks(IN_LIST) {
            let sql = format!(
                "select id, rule, subject, status, first_seen_ms, last_seen_ms from alerts_v1
                  where subject in ({}) and (status <> 'resolved' or first_seen_ms >= $1)",
                list(2, chunk.len())
            );
            // Planned for these values each time: a plan cached while the table was small would
            // keep scanning it whole once it has grown (`in` lists are the reads of a batch).
            let mut q = sqlx::query_as::<_, StoredAlert>(&sql)
                .persistent(false)
                .bind(since);
            for s in chunk {
                q = q.bind(s.as_str());
            }
            for row in q.fetch_all(&mut *conn).await? {
                let Some(rule) = Rule::ALL.into_iter().find(|r| r.name() == row.rule) else {
                    continue;
                };
                work.insert_alert(AlertRow {
                    id: row.id,
                    rule: rule.name(),
                    subject: row.subject,
                    resolved: row.status == "resolved",
                    first_seen_ms: row.first_seen_ms,
                    last_seen_ms: row.last_seen_ms,
                    new: false,
                    added: 0,
                    touched: None,
                    severity: rule.severity(),
                });
            }
        }
        let accounts: Vec<&String> = needs.accounts.iter().collect();
        for chunk in accounts.chunks(IN_LIST) {
            // By account alone (the primary key's lead): an account knows a handful of devices
            // and IPs. Adding `value in (…)` let the planner prefer a whole-table scan once
            // common values (a shared IP) matched much of the table.
            let sql = format!(
                "select account_id, kind, value from alert_known_v1 where account_id in ({})",
                list(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, KnownRow>(&sql).persistent(false);
            for a in chunk {
                q = q.bind(a.as_str());
            }
            for row in q.fetch_all(&mut *conn).await? {
                if row.value.is_empty() || needs.values.contains(&row.value) {
                    work.known
                        .entry(row.account_id)
                        .or_default()
                        .push((row.kind, row.value));
                }
            }
            let sql = format!(
                "select account_id, sequence, at_ms from alert_recovery_marks_v1
                  where account_id in ({})",
                list(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, MarkRow>(&sql).persistent(false);
            for a in chunk {
                q = q.bind(a.as_str());
            }
            for row in q.fetch_all(&mut *conn).await? {
                work.marks.insert(
                    row.account_id.clone(),
                    Some(Evidence {
                        aggregate_id: row.account_id,
                        sequence: row.sequence,
                        at_ms: row.at_ms,
                    }),
                );
            }
        }
        Ok(work)
    }

    fn insert_alert(&mut self, row: AlertRow) {
        self.by_key
            .entry((row.rule, row.subject.clone()))
            .or_default()
            .push(row.id.clone());
        self.alerts.insert(row.id.clone(), row);
    }

    /// The alert of `rule` on `subject` that is not resolved and was first seen last (as
    /// `order by first_seen_ms desc, id desc limit 1` would pick): its id and last sighting.
    pub(crate) fn open_alert(&self, rule: Rule, subject: &str) -> Option<(String, i64)> {
        let ids = self.by_key.get(&(rule.name(), subject.to_string()))?;
        ids.iter()
            .filter_map(|id| self.alerts.get(id))
            .filter(|a| !a.resolved)
            .max_by(|a, b| (a.first_seen_ms, &a.id).cmp(&(b.first_seen_ms, &b.id)))
            .map(|a| (a.id.clone(), a.last_seen_ms))
    }

    /// Adds `evidence` to the alert of `rule` on `subject` found or opened by the caller: `open`
    /// is the id of the alert to extend, or `None` to open one whose evidence is `evidence`.
    pub(crate) fn raise(
        &mut self,
        rule: Rule,
        subject: &str,
        open: Option<String>,
        mut evidence: Vec<Evidence>,
        now_ms: i64,
        at: StreamPosition,
    ) {
        let id = match open {
            Some(id) => id,
            None => {
                evidence.sort_by_key(|e| e.at_ms);
                let Some(first) = evidence.first() else {
                    return;
                };
                let id = alert_id(rule, subject, first);
                // An id already taken (the same rule, subject and first evidence as an alert
                // that exists, resolved or not) is that alert, as the insert's `on conflict do
                // nothing` made it before.
                if !self.alerts.contains_key(&id) {
                    self.insert_alert(AlertRow {
                        id: id.clone(),
                        rule: rule.name(),
                        subject: subject.to_string(),
                        resolved: false,
                        first_seen_ms: first.at_ms,
                        last_seen_ms: first.at_ms,
                        new: true,
                        added: 0,
                        touched: None,
                        severity: rule.severity(),
                    });
                }
                id
            }
        };
        let mut added = 0;
        for e in evidence {
            if self
                .evidence_seen
                .insert((id.clone(), e.aggregate_id.clone(), e.sequence))
            {
                added += 1;
                self.evidence.push((id.clone(), e));
            }
        }
        if let Some(alert) = self.alerts.get_mut(&id) {
            alert.added += added;
            alert.last_seen_ms = alert.last_seen_ms.max(now_ms);
            alert.touched = Some(at);
        }
    }

    /// Whether the account already signed in (`login`), or from this device or IP.
    pub(crate) fn knows(&self, account: &str, kind: &str, value: &str) -> bool {
        self.known
            .get(account)
            .is_some_and(|pairs| pairs.iter().any(|(k, v)| k == kind && v == value))
    }

    /// Records that the account signed in from this device or IP (or at all).
    pub(crate) fn remember(&mut self, account: &str, kind: &str, value: &str) {
        if self.knows(account, kind, value) {
            return;
        }
        self.known
            .entry(account.to_string())
            .or_default()
            .push((kind.to_string(), value.to_string()));
        self.new_known
            .push((account.to_string(), kind.to_string(), value.to_string()));
    }

    /// Sets (or with `None`, consumes) the account's recovery mark; returns the one it had.
    pub(crate) fn set_mark(&mut self, account: &str, mark: Option<Evidence>) -> Option<Evidence> {
        let had = self.marks.get(account).cloned().flatten();
        if had.is_none() && mark.is_none() {
            return None;
        }
        self.marks_changed.push(account.to_string());
        self.marks.insert(account.to_string(), mark);
        had
    }

    /// A signal to write.
    pub(crate) fn signal(&mut self, kind: &'static str, signal: Signal) {
        self.signals.push(SignalRow { kind, signal });
    }

    /// Signals before `before_ms` are forgotten: the ones written before this segment at the end,
    /// the segment's own now.
    pub(crate) fn prune(&mut self, before_ms: i64) {
        self.signals.retain(|s| s.signal.at_ms >= before_ms);
        self.prune_before = Some(self.prune_before.map_or(before_ms, |b| b.max(before_ms)));
    }

    /// Writes everything the segment changed.
    /// `signals`: whether to write the signal rows (see [`super::AlertsProjection::for_rebuild`]).
    pub(crate) async fn flush(
        self,
        conn: &mut AnyConnection,
        policy_version: &str,
        signals: bool,
    ) -> Result<(), StoreError> {
        if signals {
            if let Some(before) = self.prune_before {
                sqlx::query("delete from alert_signals_v1 where at_ms < $1")
                    .bind(before)
                    .execute(&mut *conn)
                    .await?;
            }
            write_signals(conn, &self.signals).await?;
        }
        // Only what the segment read as unknown (it reads every known row of its accounts).
        insert_new_rows(
            conn,
            "alert_known_v1",
            &["account_id", "kind", "value"],
            &self.new_known,
            |k, c| c.extend([Cell::from(&k.0), Cell::from(&k.1), Cell::from(&k.2)]),
        )
        .await?;
        let mut done = HashSet::new();
        for account in &self.marks_changed {
            if !done.insert(account) {
                continue;
            }
            match self.marks.get(account).cloned().flatten() {
                Some(mark) => {
                    sqlx::query(
                        "insert into alert_recovery_marks_v1 (account_id, sequence, at_ms) values ($1, $2, $3)
                         on conflict (account_id) do update set sequence = excluded.sequence, at_ms = excluded.at_ms",
                    )
                    .bind(account)
                    .bind(mark.sequence)
                    .bind(mark.at_ms)
                    .execute(&mut *conn)
                    .await?;
                }
                None => {
                    sqlx::query("delete from alert_recovery_marks_v1 where account_id = $1")
                        .bind(account)
                        .execute(&mut *conn)
                        .await?;
                }
            }
        }
        let version = policy_version.to_string();
        let new: Vec<(AlertRow, String)> = self
            .alerts
            .values()
            .filter(|a| a.new)
            .map(|a| (a.clone(), version.clone()))
            .collect();
        insert_new_rows(
            conn,
            "alerts_v1",
            &[
                "id",
                "rule",
                "severity",
                "subject",
                "first_seen_ms",
                "last_seen_ms",
                "count",
                "status",
                "policy_version",
                "updated_tx",
                "updated_pos",
            ],
            &new,
            alert_cells,
        )
        .await?;
        // Evidence of the new alerts is new too (their count is what the segment added).
        let (fresh, existing): (Vec<&EvidenceRow>, Vec<&EvidenceRow>) = self
            .evidence
            .iter()
            .partition(|(id, _)| self.alerts.get(id).is_some_and(|a| a.new));
        insert_new_rows(
            conn,
            "alert_evidence_v1",
            &["alert_id", "aggregate_id", "sequence", "at_ms"],
            &fresh,
            |(id, e), c| {
                c.extend([
                    Cell::from(id),
                    Cell::from(&e.aggregate_id),
                    Cell::from(e.sequence),
                    Cell::from(e.at_ms),
                ])
            },
        )
        .await?;
        // Evidence of alerts that existed before: the database says which rows are new to them.
        // PostgreSQL counts them per alert (a row back per alert, not per evidence row); SQLite
        // has no `insert` inside `with`, and gets a row back per evidence row.
        let counted = conn.backend_name() == "PostgreSQL";
        let mut added: HashMap<String, i64> = HashMap::new();
        for chunk in existing.chunks(crate::batch::ROWS_PER_STATEMENT) {
            let insert = format!(
                "insert into alert_evidence_v1 (alert_id, aggregate_id, sequence, at_ms) values {}
                 on conflict do nothing returning alert_id",
                crate::batch::placeholders(chunk.len(), 4)
            );
            let sql = if counted {
                format!(
                    "with inserted as ({insert})
                     select alert_id, count(*) as n from inserted group by alert_id"
                )
            } else {
                insert
            };
            let mut q = sqlx::query_as::<_, InsertedEvidence>(&sql);
            for (id, e) in chunk {
                q = q
                    .bind(id.as_str())
                    .bind(e.aggregate_id.as_str())
                    .bind(e.sequence)
                    .bind(e.at_ms);
            }
            for row in q.fetch_all(&mut *conn).await? {
                let n = if counted { row.n.unwrap_or(0) } else { 1 };
                *added.entry(row.alert_id).or_default() += n;
            }
        }
        // Alerts that existed before and gathered evidence: one multi-row update.
        let touched: Vec<(&str, i64, StreamPosition, i64)> = self
            .alerts
            .values()
            .filter(|a| !a.new)
            .filter_map(|a| {
                let at = a.touched?;
                let added = added.get(&a.id).copied().unwrap_or(0);
                Some((a.id.as_str(), a.last_seen_ms, at, added))
            })
            .collect();
        crate::batch::update_rows(
            conn,
            "alerts_v1",
            "count = count + v.column5,
             last_seen_ms = case when last_seen_ms < v.column2 then v.column2 else last_seen_ms end,
             updated_tx = v.column3, updated_pos = v.column4",
            "id",
            &["text", "bigint", "bigint", "bigint", "bigint"],
            &touched,
            |(id, last_seen, at, added), c| {
                c.extend([
                    Cell::from(*id),
                    Cell::from(*last_seen),
                    Cell::from(at.tx),
                    Cell::from(at.pos),
                    Cell::from(*added),
                ])
            },
        )
        .await?;
        Ok(())
    }
}

/// Inserts signal rows (ignoring any already there).
pub(crate) async fn write_signals(
    conn: &mut AnyConnection,
    signals: &[SignalRow],
) -> Result<(), StoreError> {
    insert_rows(
        conn,
        "insert into alert_signals_v1 (signal, aggregate_id, sequence, at_ms, ip, net)",
        "on conflict do nothing",
        signals,
        |s, c| {
            c.extend([
                Cell::from(s.kind),
                Cell::from(&*s.signal.aggregate_id),
                Cell::from(s.signal.sequence),
                Cell::from(s.signal.at_ms),
                Cell::from(s.signal.ip.as_deref()),
                Cell::from(s.signal.net.as_deref()),
            ])
        },
    )
    .await
}

fn alert_cells<'a>((a, version): &'a (AlertRow, String), c: &mut Vec<Cell<'a>>) {
    let at = a.touched.unwrap_or_default();
    c.extend([
        Cell::from(&a.id),
        Cell::from(a.rule),
        Cell::from(a.severity),
        Cell::from(&a.subject),
        Cell::from(a.first_seen_ms),
        Cell::from(a.last_seen_ms),
        Cell::from(a.added),
        Cell::from("open"),
        Cell::from(version),
        Cell::from(at.tx),
        Cell::from(at.pos),
    ]);
}
