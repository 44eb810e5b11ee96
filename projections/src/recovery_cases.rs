//! `recovery_cases_v1`: lost-second-factor recoveries that reached review, with their decision,
//! for the reviewers' queue. Statuses: `pending`, `approved`, `denied`, `cancelled`, `completed`.
use gatehouse_domain::AccountFact;
use gatehouse_store::{StoreError, StoredEvent};
use sqlx::{AnyConnection, AnyPool};

use crate::runner::ChangeProjection;
use crate::time::to_ms;

/// A change to the cases table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseChange {
    /// Evidence submitted: the case waits for a reviewer.
    Submitted {
        flow_id: String,
        account_id: String,
        at_ms: i64,
    },
    /// A decision, cancellation or completion.
    Moved {
        flow_id: String,
        status: &'static str,
        at_ms: i64,
        reviewer: Option<String>,
        reason: Option<String>,
        hold_until_ms: Option<i64>,
    },
}

/// The pure fold.
pub fn changes(event: &StoredEvent) -> Result<Vec<CaseChange>, StoreError> {
    let Some(e) = crate::account_event(event)? else {
        return Ok(Vec::new());
    };
    let at_ms = to_ms(e.at);
    let moved = |flow_id: uuid::Uuid, status, reviewer, reason, hold_until_ms| CaseChange::Moved {
        flow_id: flow_id.to_string(),
        status,
        at_ms,
        reviewer,
        reason,
        hold_until_ms,
    };
    Ok(match &e.fact {
        AccountFact::RecoveryEvidenceSubmitted { flow_id, .. } => vec![CaseChange::Submitted {
            flow_id: flow_id.to_string(),
            account_id: event.aggregate_id.clone(),
            at_ms,
        }],
        AccountFact::RecoveryReviewed {
            flow_id,
            approved,
            reviewer,
            reason,
            hold_until,
        } => vec![moved(
            *flow_id,
            if *approved { "approved" } else { "denied" },
            Some(reviewer.clone()),
            Some(reason.clone()),
            hold_until.map(to_ms),
        )],
        AccountFact::RecoveryCancelled { flow_id, .. } => {
            vec![moved(*flow_id, "cancelled", None, None, None)]
        }
        AccountFact::RecoveryCompleted { flow_id, .. } => {
            vec![moved(*flow_id, "completed", None, None, None)]
        }
        _ => Vec::new(),
    })
}

async fn write(conn: &mut AnyConnection, change: &CaseChange) -> Result<(), StoreError> {
    match change {
        CaseChange::Submitted {
            flow_id,
            account_id,
            at_ms,
        } => {
            sqlx::query(
                "insert into recovery_cases_v1 (flow_id, account_id, status, submitted_ms)
                 values ($1, $2, 'pending', $3) on conflict (flow_id) do nothing",
            )
            .bind(flow_id)
            .bind(account_id)
            .bind(at_ms)
            .execute(conn)
            .await?;
        }
        CaseChange::Moved {
            flow_id,
            status,
            at_ms,
            reviewer,
            reason,
            hold_until_ms,
        } => {
            // A decision keeps its reviewer and reason when the case later completes or is
            // cancelled.
            sqlx::query(
                "update recovery_cases_v1 set status = $2, decided_ms = coalesce($3, decided_ms),
                        reviewer = coalesce($4, reviewer), reason = coalesce($5, reason),
                        hold_until_ms = coalesce($6, hold_until_ms)
                  where flow_id = $1",
            )
            .bind(flow_id)
            .bind(*status)
            .bind(reviewer.as_ref().map(|_| *at_ms))
            .bind(reviewer)
            .bind(reason)
            .bind(hold_until_ms)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// The `recovery_cases_v1` projection.
pub fn projection() -> ChangeProjection<CaseChange> {
    ChangeProjection {
        name: "recovery_cases_v1",
        tables: &["recovery_cases_v1"],
        deferred_indexes: &["recovery_cases_v1_by_status"],
        changes,
        write: |conn, change| Box::pin(write(conn, change)),
        write_many: None,
    }
}

/// One case as reviewers list it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CaseRow {
    /// Flow id.
    pub flow_id: String,
    /// Account.
    pub account_id: String,
    /// Status.
    pub status: String,
    /// Evidence submitted at (epoch ms).
    pub submitted_ms: i64,
    /// Reviewer, once decided.
    pub reviewer: Option<String>,
}

/// Cases with `status`, oldest first.
pub async fn by_status(
    pool: &AnyPool,
    status: &str,
    limit: i64,
) -> Result<Vec<CaseRow>, StoreError> {
    Ok(sqlx::query_as(
        "select flow_id, account_id, status, submitted_ms, reviewer from recovery_cases_v1
          where status = $1 order by submitted_ms, flow_id limit $2",
    )
    .bind(status)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The account of a case.
pub async fn account_of(pool: &AnyPool, flow_id: &str) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("select account_id from recovery_cases_v1 where flow_id = $1")
            .bind(flow_id)
            .fetch_optional(pool)
            .await?,
    )
}
