//! `lockout_state_v1`: per account, the untrusted door's consecutive failures, lock level and
//! lock's end. A trusted device's own door is not here (`GET /v1/me/devices` shows it from the
//! aggregate): its failures, locks and successes leave this row alone, and an early unlock lifts
//! every door, this one included.
use gatehouse_domain::AccountFact;
use gatehouse_store::{StoreError, StoredEvent};
use sqlx::{AnyConnection, AnyPool};

use crate::cell::Cell;
use crate::runner::ChangeProjection;
use crate::time::to_ms;

/// A change to one account's lockout row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockoutChange {
    /// A checked attempt failed; `consecutive` is the count the aggregate decided.
    Failed {
        account_id: String,
        consecutive: i64,
        at_ms: i64,
    },
    /// The account was locked.
    Locked {
        account_id: String,
        until_ms: i64,
        level: i64,
        at_ms: i64,
    },
    /// A sign-in succeeded: counters reset, lock lifted.
    Succeeded { account_id: String, at_ms: i64 },
    /// The lock was lifted early (unlock code, password reset): counters reset.
    Unlocked { account_id: String, at_ms: i64 },
}

/// The pure fold: which changes an event makes.
pub fn changes(event: &StoredEvent) -> Result<Vec<LockoutChange>, StoreError> {
    let Some(e) = crate::account_event(event)? else {
        return Ok(Vec::new());
    };
    let account_id = || event.aggregate_id.clone();
    let at_ms = to_ms(e.at);
    let untrusted = match &e.fact {
        AccountFact::LoginFailed { door, .. }
        | AccountFact::AccountLocked { door, .. }
        | AccountFact::LoginSucceeded { door, .. }
        | AccountFact::SecondFactorFailed { door, .. }
        | AccountFact::PasswordConfirmationFailed { door, .. } => door.is_untrusted(),
        _ => true,
    };
    if !untrusted {
        return Ok(Vec::new());
    }
    Ok(match &e.fact {
        AccountFact::LoginFailed {
            consecutive_failures,
            ..
        } => {
            vec![LockoutChange::Failed {
                account_id: account_id(),
                consecutive: i64::from(*consecutive_failures),
                at_ms,
            }]
        }
        AccountFact::AccountLocked { until, level, .. } => {
            vec![LockoutChange::Locked {
                account_id: account_id(),
                until_ms: to_ms(until),
                level: i64::from(*level),
                at_ms,
            }]
        }
        AccountFact::LoginSucceeded { .. } => vec![LockoutChange::Succeeded {
            account_id: account_id(),
            at_ms,
        }],
        AccountFact::AccountUnlocked { .. } => vec![LockoutChange::Unlocked {
            account_id: account_id(),
            at_ms,
        }],
        _ => Vec::new(),
    })
}

/// Writes one change.
pub async fn write(conn: &mut AnyConnection, change: &LockoutChange) -> Result<(), StoreError> {
    match change {
        LockoutChange::Failed {
            account_id,
            consecutive,
            at_ms,
        } => {
            sqlx::query(
                "insert into lockout_state_v1 (account_id, consecutive_failures, lock_level, last_failure_ms, updated_ms)
                 values ($1, $2, 0, $3, $3)
                 on conflict (account_id) do update
                    set consecutive_failures = $2, last_failure_ms = $3, updated_ms = $3",
            )
            .bind(account_id)
            .bind(consecutive)
            .bind(at_ms)
            .execute(conn)
            .await?;
        }
        LockoutChange::Locked {
            account_id,
            until_ms,
            level,
            at_ms,
        } => {
            sqlx::query(
                "insert into lockout_state_v1 (account_id, consecutive_failures, lock_level, locked_until_ms, updated_ms)
                 values ($1, 0, $2, $3, $4)
                 on conflict (account_id) do update
                    set consecutive_failures = 0, lock_level = $2, locked_until_ms = $3, updated_ms = $4",
            )
            .bind(account_id)
            .bind(level)
            .bind(until_ms)
            .bind(at_ms)
            .execute(conn)
            .await?;
        }
        LockoutChange::Succeeded { account_id, at_ms } => {
            sqlx::query(
                "insert into lockout_state_v1 (account_id, consecutive_failures, lock_level, last_success_ms, updated_ms)
                 values ($1, 0, 0, $2, $2)
                 on conflict (account_id) do update
                    set consecutive_failures = 0, lock_level = 0, locked_until_ms = null,
                        last_success_ms = $2, updated_ms = $2",
            )
            .bind(account_id)
            .bind(at_ms)
            .execute(conn)
            .await?;
        }
        LockoutChange::Unlocked { account_id, at_ms } => {
            sqlx::query(
                "insert into lockout_state_v1 (account_id, consecutive_failures, lock_level, updated_ms)
                 values ($1, 0, 0, $2)
                 on conflict (account_id) do update
                    set consecutive_failures = 0, lock_level = 0, locked_until_ms = null, updated_ms = $2",
            )
            .bind(account_id)
            .bind(at_ms)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

impl LockoutChange {
    fn account_id(&self) -> &str {
        match self {
            Self::Failed { account_id, .. }
            | Self::Locked { account_id, .. }
            | Self::Succeeded { account_id, .. }
            | Self::Unlocked { account_id, .. } => account_id,
        }
    }
}

/// One account's row after a batch: the columns its changes set (`Some`), in order, the last
/// value winning; the others are left as they are (or take their defaults in a new row).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Folded {
    consecutive: Option<i64>,
    level: Option<i64>,
    until: Option<Option<i64>>,
    last_failure: Option<i64>,
    last_success: Option<i64>,
    updated: i64,
}

impl Folded {
    /// The columns `change` sets, as [`write`] sets them.
    fn apply(&mut self, change: &LockoutChange) {
        match change {
            LockoutChange::Failed {
                consecutive, at_ms, ..
            } => {
                self.consecutive = Some(*consecutive);
                self.last_failure = Some(*at_ms);
                self.updated = *at_ms;
            }
            LockoutChange::Locked {
                until_ms,
                level,
                at_ms,
                ..
            } => {
                self.consecutive = Some(0);
                self.level = Some(*level);
                self.until = Some(Some(*until_ms));
                self.updated = *at_ms;
            }
            LockoutChange::Succeeded { at_ms, .. } => {
                self.consecutive = Some(0);
                self.level = Some(0);
                self.until = Some(None);
                self.last_success = Some(*at_ms);
                self.updated = *at_ms;
            }
            LockoutChange::Unlocked { at_ms, .. } => {
                self.consecutive = Some(0);
                self.level = Some(0);
                self.until = Some(None);
                self.updated = *at_ms;
            }
        }
    }

    /// Which columns are set: rows with the same set go in one statement.
    fn columns(&self) -> [bool; 5] {
        [
            self.consecutive.is_some(),
            self.level.is_some(),
            self.until.is_some(),
            self.last_failure.is_some(),
            self.last_success.is_some(),
        ]
    }
}

/// An account and its folded row.
type Row = (String, Folded);

const COLUMNS: [&str; 5] = [
    "consecutive_failures",
    "lock_level",
    "locked_until_ms",
    "last_failure_ms",
    "last_success_ms",
];

/// A batch's changes folded per account (the row's final columns), then one multi-row upsert per
/// set of columns touched: a handful of statements whatever the batch holds.
async fn write_many(conn: &mut AnyConnection, changes: &[LockoutChange]) -> Result<(), StoreError> {
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut rows: Vec<Row> = Vec::new();
    for change in changes {
        let i = *index.entry(change.account_id()).or_insert_with(|| {
            rows.push((change.account_id().to_string(), Folded::default()));
            rows.len() - 1
        });
        rows[i].1.apply(change);
    }
    let mut groups: Vec<([bool; 5], Vec<Row>)> = Vec::new();
    for row in rows {
        let columns = row.1.columns();
        match groups.iter_mut().find(|(c, _)| *c == columns) {
            Some((_, group)) => group.push(row),
            None => groups.push((columns, vec![row])),
        }
    }
    for (columns, group) in groups {
        let mut set: Vec<String> = COLUMNS
            .iter()
            .zip(columns)
            .filter(|(_, on)| *on)
            .map(|(c, _)| format!("{c} = excluded.{c}"))
            .collect();
        set.push("updated_ms = excluded.updated_ms".into());
        crate::batch::insert_rows(
            conn,
            "insert into lockout_state_v1 (account_id, consecutive_failures, lock_level, locked_until_ms,
                                           last_failure_ms, last_success_ms, updated_ms)",
            &format!("on conflict (account_id) do update set {}", set.join(", ")),
            &group,
            |(account_id, f), c| {
                // A new row takes the defaults for what the batch did not set.
                c.extend([
                    Cell::from(account_id),
                    Cell::from(f.consecutive.unwrap_or(0)),
                    Cell::from(f.level.unwrap_or(0)),
                    Cell::from(f.until.flatten()),
                    Cell::from(f.last_failure),
                    Cell::from(f.last_success),
                    Cell::from(f.updated),])
            },
        )
        .await?;
    }
    Ok(())
}

/// The `lockout_state_v1` projection.
pub fn projection() -> ChangeProjection<LockoutChange> {
    ChangeProjection {
        name: "lockout_state_v1",
        tables: &["lockout_state_v1"],
        deferred_indexes: &[],
        changes,
        write: |conn, change| Box::pin(write(conn, change)),
        write_many: Some(|conn, changes| Box::pin(write_many(conn, changes))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::stored;
    use gatehouse_domain::account::LoginFailureReason;
    use gatehouse_domain::context::RequestContext;

    #[test]
    fn test_lockout_fold_failed_locked_succeeded() {
        let failed = stored(
            "acc",
            3,
            1_000,
            AccountFact::LoginFailed {
                door: Default::default(),
                reason: LoginFailureReason::WrongPassword,
                consecutive_failures: 5,
                context: RequestContext::default(),
            },
        );
        assert_eq!(
            changes(&failed).unwrap(),
            vec![LockoutChange::Failed {
                account_id: "acc".into(),
                consecutive: 5,
                at_ms: 1_000
            }]
        );
        let until = chrono::DateTime::from_timestamp_millis(901_000).unwrap();
        let locked = stored(
            "acc",
            4,
            1_000,
            AccountFact::AccountLocked {
                door: Default::default(),
                until,
                level: 1,
                failed_attempts: 5,
            },
        );
        assert_eq!(
            changes(&locked).unwrap(),
            vec![LockoutChange::Locked {
                account_id: "acc".into(),
                until_ms: 901_000,
                level: 1,
                at_ms: 1_000
            }]
        );
    }

    #[test]
    fn test_lockout_fold_ignores_other_events_and_aggregates() {
        let ended = stored(
            "acc",
            9,
            1,
            AccountFact::SessionEnded {
                session_id: uuid::Uuid::nil(),
                reason: gatehouse_domain::account::SessionEndReason::LoggedOut,
                context: Default::default(),
            },
        );
        assert!(changes(&ended).unwrap().is_empty());
        let mut other = ended.clone();
        other.aggregate_type = "Team".into();
        assert!(changes(&other).unwrap().is_empty());
    }
}

/// An account's lockout row as read back.
#[derive(Debug, Clone, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct LockoutRow {
    /// Failures since the last success or lock.
    pub consecutive_failures: i64,
    /// How many locks in a row (drives the doubling).
    pub lock_level: i64,
    /// End of the current or last lock.
    pub locked_until_ms: Option<i64>,
    /// Last failed attempt.
    pub last_failure_ms: Option<i64>,
    /// Last successful sign-in.
    pub last_success_ms: Option<i64>,
}

/// The lockout row of an account (`None` before its first attempt).
pub async fn get(pool: &AnyPool, account_id: &str) -> Result<Option<LockoutRow>, StoreError> {
    Ok(sqlx::query_as(
        "select consecutive_failures, lock_level, locked_until_ms, last_failure_ms, last_success_ms
           from lockout_state_v1 where account_id = $1",
    )
    .bind(account_id)
    .fetch_optional(pool)
    .await?)
}
