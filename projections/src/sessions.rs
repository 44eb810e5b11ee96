//! `sessions_v1`: every session with where it was opened, its expiries and how it ended.
use gatehouse_domain::account::SessionEndReason;
use gatehouse_domain::context::RequestContext;
use gatehouse_domain::AccountFact;
use sqlx::AnyConnection;

use crate::runner::ChangeProjection;
use crate::store::{StoreError, StoredEvent};
use crate::time::to_ms;

/// A change to the sessions table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionChange {
    /// A session opened.
    Started {
        session_id: String,
        account_id: String,
        at_ms: i64,
        expires_ms: i64,
        idle_expires_ms: i64,
        context: RequestContext,
    },
    /// Its idle expiry moved.
    Extended {
        session_id: String,
        idle_expires_ms: i64,
        at_ms: i64,
    },
    /// It ended early.
    Ended {
        session_id: String,
        at_ms: i64,
        reason: &'static str,
    },
}

/// The pure fold.
pub fn changes(event: &StoredEvent) -> Result<Vec<SessionChange>, StoreError> {
    let Some(e) = crate::account_event(event)? else {
        return Ok(Vec::new());
    };
    let at_ms = to_ms(e.at);
    Ok(match e.fact {
        AccountFact::SessionStarted {
            session_id,
            context,
            expires_at,
            idle_expires_at,
            ..
        } => {
            vec![SessionChange::Started {
                session_id: session_id.to_string(),
                account_id: event.aggregate_id.clone(),
                at_ms,
                expires_ms: to_ms(expires_at),
                idle_expires_ms: to_ms(idle_expires_at),
                context,
            }]
        }
        AccountFact::SessionExtended {
            session_id,
            idle_expires_at,
        } => vec![SessionChange::Extended {
            session_id: session_id.to_string(),
            idle_expires_ms: to_ms(idle_expires_at),
            at_ms,
        }],
        AccountFact::SessionEnded {
            session_id, reason, ..
        } => vec![SessionChange::Ended {
            session_id: session_id.to_string(),
            at_ms,
            reason: match reason {
                SessionEndReason::LoggedOut => "logged_out",
                SessionEndReason::Revoked { .. } => "revoked",
                SessionEndReason::Evicted => "evicted",
                SessionEndReason::PasswordReset => "password_reset",
                SessionEndReason::Recovery => "recovery",
            },
        }],
        _ => Vec::new(),
    })
}

/// A batch's changes: each run of new sessions in one multi-row insert; extensions and ends, which
/// touch rows that may have been inserted just before, one by one in order.
async fn write_many(conn: &mut AnyConnection, changes: &[SessionChange]) -> Result<(), StoreError> {
    for run in crate::batch::runs(changes, |c| matches!(c, SessionChange::Started { .. })) {
        if matches!(run.first(), Some(SessionChange::Started { .. })) {
            crate::batch::insert_rows(
                conn,
                "insert into sessions_v1 (session_id, account_id, started_ms, expires_ms, idle_expires_ms,
                                          last_extended_ms, device_id, ip, user_agent)",
                9,
                "on conflict (session_id) do nothing",
                run,
                |q, c| match c {
                    SessionChange::Started {
                        session_id,
                        account_id,
                        at_ms,
                        expires_ms,
                        idle_expires_ms,
                        context,
                    } => q
                        .bind(session_id)
                        .bind(account_id)
                        .bind(*at_ms)
                        .bind(*expires_ms)
                        .bind(*idle_expires_ms)
                        .bind(*at_ms)
                        .bind(&context.device_id)
                        .bind(&context.ip)
                        .bind(&context.user_agent),
                    // Runs hold one kind only.
                    _ => q,
                },
            )
            .await?;
        } else {
            for change in run {
                write(&mut *conn, change).await?;
            }
        }
    }
    Ok(())
}

async fn write(conn: &mut AnyConnection, change: &SessionChange) -> Result<(), StoreError> {
    match change {
        SessionChange::Started {
            session_id,
            account_id,
            at_ms,
            expires_ms,
            idle_expires_ms,
            context,
        } => {
            sqlx::query(
                "insert into sessions_v1 (session_id, account_id, started_ms, expires_ms, idle_expires_ms,
                                          last_extended_ms, device_id, ip, user_agent)
                 values ($1, $2, $3, $4, $5, $3, $6, $7, $8)
                 on conflict (session_id) do nothing",
            )
            .bind(session_id)
            .bind(account_id)
            .bind(at_ms)
            .bind(expires_ms)
            .bind(idle_expires_ms)
            .bind(&context.device_id)
            .bind(&context.ip)
            .bind(&context.user_agent)
            .execute(conn)
            .await?;
        }
        SessionChange::Extended {
            session_id,
            idle_expires_ms,
            at_ms,
        } => {
            sqlx::query("update sessions_v1 set idle_expires_ms = $2, last_extended_ms = $3 where session_id = $1")
                .bind(session_id)
                .bind(idle_expires_ms)
                .bind(at_ms)
                .execute(conn)
                .await?;
        }
        SessionChange::Ended {
            session_id,
            at_ms,
            reason,
        } => {
            sqlx::query(
                "update sessions_v1 set ended_ms = $2, end_reason = $3 where session_id = $1",
            )
            .bind(session_id)
            .bind(at_ms)
            .bind(*reason)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// The `sessions_v1` projection.
pub fn projection() -> ChangeProjection<SessionChange> {
    ChangeProjection {
        name: "sessions_v1",
        tables: &["sessions_v1"],
        changes,
        write: |conn, change| Box::pin(write(conn, change)),
        write_many: Some(|conn, changes| Box::pin(write_many(conn, changes))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::stored;
    use uuid::Uuid;

    #[test]
    fn test_sessions_fold_start_extend_end() {
        let id = Uuid::from_u128(1);
        let t = |ms| chrono::DateTime::from_timestamp_millis(ms).unwrap();
        let start = stored(
            "acc",
            2,
            100,
            AccountFact::SessionStarted {
                session_id: id,
                token_hash: "h".into(),
                context: RequestContext::default(),
                expires_at: t(1000),
                idle_expires_at: t(500),
            },
        );
        assert!(matches!(&changes(&start).unwrap()[0],
            SessionChange::Started { account_id, expires_ms: 1000, idle_expires_ms: 500, .. } if account_id == "acc"));
        let end = stored(
            "acc",
            3,
            200,
            AccountFact::SessionEnded {
                session_id: id,
                reason: SessionEndReason::Evicted,
                context: Default::default(),
            },
        );
        assert_eq!(
            changes(&end).unwrap(),
            vec![SessionChange::Ended {
                session_id: id.to_string(),
                at_ms: 200,
                reason: "evicted"
            }]
        );
    }
}
