//! `sessions_v1`: every session with where it was opened, its expiries and how it ended.
use gatehouse_domain::account::SessionEndReason;
use gatehouse_domain::context::RequestContext;
use gatehouse_domain::AccountFact;
use gatehouse_store::{StoreError, StoredEvent};
use sqlx::AnyConnection;

use crate::cell::Cell;
use crate::runner::ChangeProjection;
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
    Ok(match &e.fact {
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
                context: context.clone(),
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
                SessionEndReason::PasswordChanged => "password_changed",
                SessionEndReason::Recovery => "recovery",
                SessionEndReason::Frozen => "frozen",
                SessionEndReason::Staff => "staff",
            },
        }],
        _ => Vec::new(),
    })
}

/// One session after a batch: opened in it (with everything after folded in), or only extended
/// and/or ended.
#[derive(Debug, Default)]
struct Folded<'c> {
    started: Option<&'c SessionChange>,
    idle: Option<(i64, i64)>,
    ended: Option<(i64, &'static str)>,
}

/// A batch's changes folded per session: sessions opened in the batch in one multi-row insert
/// with their final columns, the others' extensions and ends in one multi-row update per kind.
async fn write_many(conn: &mut AnyConnection, changes: &[SessionChange]) -> Result<(), StoreError> {
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut rows: Vec<(&str, Folded<'_>)> = Vec::new();
    for change in changes {
        let id = change.session_id();
        let i = *index.entry(id).or_insert_with(|| {
            rows.push((id, Folded::default()));
            rows.len() - 1
        });
        let row = &mut rows[i].1;
        match change {
            // An update before the row exists changes nothing, so a start begins afresh.
            SessionChange::Started { .. } => {
                *row = Folded {
                    started: Some(change),
                    ..Folded::default()
                }
            }
            SessionChange::Extended {
                idle_expires_ms,
                at_ms,
                ..
            } => row.idle = Some((*idle_expires_ms, *at_ms)),
            SessionChange::Ended { at_ms, reason, .. } => row.ended = Some((*at_ms, reason)),
        }
    }
    let opened: Vec<&Folded<'_>> = rows
        .iter()
        .map(|(_, f)| f)
        .filter(|f| f.started.is_some())
        .collect();
    crate::batch::insert_new_rows(
        conn,
        "sessions_v1",
        &[
            "session_id",
            "account_id",
            "started_ms",
            "expires_ms",
            "idle_expires_ms",
            "last_extended_ms",
            "device_id",
            "ip",
            "user_agent",
            "ended_ms",
            "end_reason",
        ],
        &opened,
        |f, c| {
            // Only opened sessions are in this list.
            if let Some(SessionChange::Started {
                session_id,
                account_id,
                at_ms,
                expires_ms,
                idle_expires_ms,
                context,
            }) = f.started
            {
                let (idle, extended) = f.idle.unwrap_or((*idle_expires_ms, *at_ms));
                c.extend([
                    Cell::from(session_id),
                    Cell::from(account_id),
                    Cell::from(*at_ms),
                    Cell::from(*expires_ms),
                    Cell::from(idle),
                    Cell::from(extended),
                    Cell::from(&context.device_id),
                    Cell::from(&context.ip),
                    Cell::from(&context.user_agent),
                    Cell::from(f.ended.map(|(at, _)| at)),
                    Cell::from(f.ended.map(|(_, reason)| reason)),
                ])
            }
        },
    )
    .await?;
    let extended: Vec<(&str, (i64, i64))> = rows
        .iter()
        .filter(|(_, f)| f.started.is_none())
        .filter_map(|(id, f)| f.idle.map(|i| (*id, i)))
        .collect();
    let ended: Vec<(&str, (i64, &'static str))> = rows
        .iter()
        .filter(|(_, f)| f.started.is_none())
        .filter_map(|(id, f)| f.ended.map(|e| (*id, e)))
        .collect();
    crate::batch::update_rows(
        conn,
        "sessions_v1",
        "idle_expires_ms = v.column2, last_extended_ms = v.column3",
        "session_id",
        &["text", "bigint", "bigint"],
        &extended,
        |(id, (idle, at)), c| c.extend([Cell::from(*id), Cell::from(*idle), Cell::from(*at)]),
    )
    .await?;
    crate::batch::update_rows(
        conn,
        "sessions_v1",
        "ended_ms = v.column2, end_reason = v.column3",
        "session_id",
        &["text", "bigint", "text"],
        &ended,
        |(id, (at, reason)), c| c.extend([Cell::from(*id), Cell::from(*at), Cell::from(*reason)]),
    )
    .await
}

impl SessionChange {
    fn session_id(&self) -> &str {
        match self {
            Self::Started { session_id, .. }
            | Self::Extended { session_id, .. }
            | Self::Ended { session_id, .. } => session_id,
        }
    }
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
        deferred_indexes: &["sessions_v1_by_account"],
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
                device_id: None,
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
