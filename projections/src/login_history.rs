//! `login_history_v1`: every sign-in attempt of an account, with time, IP, user agent, device,
//! outcome and reason.
use gatehouse_domain::account::{Door, LoginFailureReason, PasskeyFailureReason};
use gatehouse_domain::context::RequestContext;
use gatehouse_domain::AccountFact;
use gatehouse_store::{StoreError, StoredEvent};
use sqlx::{AnyConnection, AnyPool};

use crate::cell::Cell;
use crate::runner::ChangeProjection;
use crate::time::to_ms;

/// One row of login history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRecord {
    /// Account (or stand-in aggregate of an unknown identifier).
    pub account_id: String,
    /// Event sequence (unique per account, makes the insert idempotent).
    pub sequence: i64,
    /// When.
    pub at_ms: i64,
    /// `succeeded`, `failed` or `locked`.
    pub outcome: &'static str,
    /// Failure reason, for failures.
    pub reason: Option<&'static str>,
    /// Request context.
    pub context: RequestContext,
    /// Session opened, for successes.
    pub session_id: Option<String>,
    /// The trusted device whose door the attempt went through; `None`: the untrusted door.
    pub trusted_device_id: Option<String>,
}

/// One row as read back for the account's owner.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LoginHistoryRow {
    /// Event sequence (the paging cursor).
    pub sequence: i64,
    /// When, in milliseconds since the epoch.
    pub at_ms: i64,
    /// `succeeded`, `failed` or `locked`.
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

/// Newest-first page of an account's history, strictly before `before` (a sequence) when given.
pub async fn page(
    pool: &AnyPool,
    account_id: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<LoginHistoryRow>, StoreError> {
    Ok(sqlx::query_as(
        "select sequence, at_ms, outcome, reason, ip, user_agent, device_id, trusted_device_id
           from login_history_v1
          where account_id = $1 and sequence < $2
          order by sequence desc limit $3",
    )
    .bind(account_id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The pure fold.
pub fn record(event: &StoredEvent) -> Result<Option<LoginRecord>, StoreError> {
    let Some(e) = crate::account_event(event)? else {
        return Ok(None);
    };
    let (outcome, reason, context, session_id, door) = match &e.fact {
        // A passkey sign-in says so in `reason`; a password one leaves it empty (as always).
        AccountFact::LoginSucceeded {
            session_id,
            context,
            door,
            method,
            ..
        } => (
            "succeeded",
            (!method.is_password()).then_some(method.as_str()),
            context,
            Some(session_id.to_string()),
            door,
        ),
        AccountFact::PasskeySignInFailed {
            reason, context, ..
        } => {
            let reason = match reason {
                PasskeyFailureReason::UnknownPasskey => "passkey_unknown",
                PasskeyFailureReason::UserNotVerified => "passkey_user_not_verified",
                PasskeyFailureReason::InvalidAssertion => "passkey_invalid",
                PasskeyFailureReason::CounterRegressed => "passkey_counter_regressed",
                PasskeyFailureReason::ContactUnverified => "contact_unverified",
            };
            ("failed", Some(reason), context, None, &Door::Untrusted)
        }
        AccountFact::LoginFailed {
            reason,
            context,
            door,
            ..
        } => {
            let reason = match reason {
                LoginFailureReason::WrongPassword => "wrong_password",
                LoginFailureReason::UnknownIdentifier => "unknown_identifier",
                LoginFailureReason::ContactUnverified => "contact_unverified",
            };
            ("failed", Some(reason), context, None, door)
        }
        AccountFact::LoginRejectedWhileLocked { context, door, .. } => {
            ("locked", Some("account_locked"), context, None, door)
        }
        AccountFact::LoginRefusedWhileFrozen { context, door } => {
            ("frozen", Some("account_frozen"), context, None, door)
        }
        _ => return Ok(None),
    };
    Ok(Some(LoginRecord {
        account_id: event.aggregate_id.clone(),
        sequence: event.sequence,
        at_ms: to_ms(e.at),
        outcome,
        reason,
        context: context.clone(),
        session_id,
        trusted_device_id: door.device_id().map(|id| id.to_string()),
    }))
}

/// The `login_history_v1` projection.
pub fn projection() -> ChangeProjection<LoginRecord> {
    ChangeProjection {
        name: "login_history_v1",
        tables: &["login_history_v1"],
        // The key too: the table is only inserted into, with `insert_new_rows`.
        deferred_indexes: &[
            "login_history_v1_pkey",
            "login_history_v1_by_time",
            "login_history_v1_by_ip",
            "login_history_v1_by_at",
        ],
        changes: |event| Ok(record(event)?.into_iter().collect()),
        write: |conn, r| Box::pin(write_many(conn, std::slice::from_ref(r))),
        write_many: Some(|conn, rows| Box::pin(write_many(conn, rows))),
    }
}

/// Every record of a batch in multi-row inserts (each row is new, or a repeat left alone).
async fn write_many(conn: &mut AnyConnection, rows: &[LoginRecord]) -> Result<(), StoreError> {
    crate::batch::insert_new_rows(
        conn,
        "login_history_v1",
        &[
            "account_id",
            "sequence",
            "at_ms",
            "outcome",
            "reason",
            "ip",
            "user_agent",
            "device_id",
            "session_id",
            "trusted_device_id",
        ],
        rows,
        |r, c| {
            c.extend([
                Cell::from(&r.account_id),
                Cell::from(r.sequence),
                Cell::from(r.at_ms),
                Cell::from(r.outcome),
                Cell::from(r.reason),
                Cell::from(&r.context.ip),
                Cell::from(&r.context.user_agent),
                Cell::from(&r.context.device_id),
                Cell::from(&r.session_id),
                Cell::from(&r.trusted_device_id),
            ])
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::stored;

    #[test]
    fn test_login_history_records_each_outcome() {
        let ctx = RequestContext::new(
            Some("203.0.113.5".into()),
            Some("UA".into()),
            Some("dev".into()),
        );
        let ok = stored(
            "a",
            2,
            5,
            AccountFact::LoginSucceeded {
                door: Default::default(),
                session_id: uuid::Uuid::nil(),
                context: ctx.clone(),
                method: Default::default(),
                familiar: false,
            },
        );
        let r = record(&ok).unwrap().unwrap();
        assert_eq!(
            (r.outcome, r.reason, r.sequence, r.at_ms),
            ("succeeded", None, 2, 5)
        );
        assert_eq!(r.context, ctx);

        let failed = stored(
            "a",
            3,
            6,
            AccountFact::LoginFailed {
                door: Default::default(),
                reason: LoginFailureReason::UnknownIdentifier,
                consecutive_failures: 1,
                context: ctx.clone(),
            },
        );
        let r = record(&failed).unwrap().unwrap();
        assert_eq!(
            (r.outcome, r.reason),
            ("failed", Some("unknown_identifier"))
        );

        let until = chrono::DateTime::from_timestamp_millis(10).unwrap();
        let locked = stored(
            "a",
            4,
            7,
            AccountFact::LoginRejectedWhileLocked {
                door: Default::default(),
                locked_until: until,
                context: ctx,
            },
        );
        assert_eq!(record(&locked).unwrap().unwrap().outcome, "locked");
    }
}
