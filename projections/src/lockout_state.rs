//! `lockout_state_v1`: per account, the consecutive failures, the lock level and the lock's end.
use gatehouse_domain::AccountFact;
use sqlx::AnyConnection;

use crate::runner::ChangeProjection;
use crate::store::{StoreError, StoredEvent};
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
    let account_id = event.aggregate_id.clone();
    let at_ms = to_ms(e.at);
    Ok(match e.fact {
        AccountFact::LoginFailed {
            consecutive_failures,
            ..
        } => {
            vec![LockoutChange::Failed {
                account_id,
                consecutive: i64::from(consecutive_failures),
                at_ms,
            }]
        }
        AccountFact::AccountLocked { until, level, .. } => {
            vec![LockoutChange::Locked {
                account_id,
                until_ms: to_ms(until),
                level: i64::from(level),
                at_ms,
            }]
        }
        AccountFact::LoginSucceeded { .. } => vec![LockoutChange::Succeeded { account_id, at_ms }],
        AccountFact::AccountUnlocked { .. } => vec![LockoutChange::Unlocked { account_id, at_ms }],
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

    fn kind(&self) -> u8 {
        match self {
            Self::Failed { .. } => 0,
            Self::Locked { .. } => 1,
            Self::Succeeded { .. } => 2,
            Self::Unlocked { .. } => 3,
        }
    }
}

/// A batch's changes: each run of one kind of change sets the same columns, so it collapses to
/// the last change per account and goes in one multi-row upsert; runs stay in order.
async fn write_many(conn: &mut AnyConnection, changes: &[LockoutChange]) -> Result<(), StoreError> {
    use crate::batch::{insert_rows, last_per_key, runs};
    for run in runs(changes, LockoutChange::kind) {
        let rows = last_per_key(run, |c| c.account_id().to_string());
        let (head, tail) = match rows.first() {
            Some(LockoutChange::Failed { .. }) => (
                "insert into lockout_state_v1 (account_id, consecutive_failures, lock_level, last_failure_ms, updated_ms)",
                "on conflict (account_id) do update
                    set consecutive_failures = excluded.consecutive_failures,
                        last_failure_ms = excluded.last_failure_ms, updated_ms = excluded.updated_ms",
            ),
            Some(LockoutChange::Locked { .. }) => (
                "insert into lockout_state_v1 (account_id, consecutive_failures, lock_level, locked_until_ms, updated_ms)",
                "on conflict (account_id) do update
                    set consecutive_failures = 0, lock_level = excluded.lock_level,
                        locked_until_ms = excluded.locked_until_ms, updated_ms = excluded.updated_ms",
            ),
            Some(LockoutChange::Succeeded { .. }) => (
                "insert into lockout_state_v1 (account_id, consecutive_failures, lock_level, last_success_ms, updated_ms)",
                "on conflict (account_id) do update
                    set consecutive_failures = 0, lock_level = 0, locked_until_ms = null,
                        last_success_ms = excluded.last_success_ms, updated_ms = excluded.updated_ms",
            ),
            Some(LockoutChange::Unlocked { .. }) => (
                "insert into lockout_state_v1 (account_id, consecutive_failures, lock_level, last_success_ms, updated_ms)",
                // The fourth value is only a placeholder here: unlocking sets no success time.
                "on conflict (account_id) do update
                    set consecutive_failures = 0, lock_level = 0, locked_until_ms = null,
                        updated_ms = excluded.updated_ms",
            ),
            None => continue,
        };
        insert_rows(conn, head, 5, tail, &rows, |q, c| match c {
            LockoutChange::Failed {
                account_id,
                consecutive,
                at_ms,
            } => q
                .bind(account_id)
                .bind(*consecutive)
                .bind(0i64)
                .bind(*at_ms)
                .bind(*at_ms),
            LockoutChange::Locked {
                account_id,
                until_ms,
                level,
                at_ms,
            } => q
                .bind(account_id)
                .bind(0i64)
                .bind(*level)
                .bind(*until_ms)
                .bind(*at_ms),
            LockoutChange::Succeeded { account_id, at_ms } => q
                .bind(account_id)
                .bind(0i64)
                .bind(0i64)
                .bind(*at_ms)
                .bind(*at_ms),
            LockoutChange::Unlocked { account_id, at_ms } => q
                .bind(account_id)
                .bind(0i64)
                .bind(0i64)
                .bind(None::<i64>)
                .bind(*at_ms),
        })
        .await?;
    }
    Ok(())
}

/// The `lockout_state_v1` projection.
pub fn projection() -> ChangeProjection<LockoutChange> {
    ChangeProjection {
        name: "lockout_state_v1",
        tables: &["lockout_state_v1"],
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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
pub async fn get(store: &crate::Store, account_id: &str) -> Result<Option<LockoutRow>, StoreError> {
    use sqlx::Row;
    let row = sqlx::query(
        "select consecutive_failures, lock_level, locked_until_ms, last_failure_ms, last_success_ms
           from lockout_state_v1 where account_id = $1",
    )
    .bind(account_id)
    .fetch_optional(store.any())
    .await?;
    row.map(|r| {
        Ok(LockoutRow {
            consecutive_failures: r.try_get("consecutive_failures")?,
            lock_level: r.try_get("lock_level")?,
            locked_until_ms: r.try_get("locked_until_ms")?,
            last_failure_ms: r.try_get("last_failure_ms")?,
            last_success_ms: r.try_get("last_success_ms")?,
        })
    })
    .transpose()
    .map_err(|e: sqlx::Error| e.into())
}
