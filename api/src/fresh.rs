//! Read your own writes: a read-model answer to a signed-in person reflects that person's own
//! latest event. Read models follow the event stream a moment behind (the runner gathers events
//! for up to `GATEHOUSE_PROJECTION_COALESCE_MS`), so a person who signs in and reads their history
//! at once would not find the sign-in. Every route that answers a signed-in person from a read model
//! calls [`own_writes`] first: it finds where the account's latest event stands in the global
//! stream and waits, at most `GATEHOUSE_READ_YOUR_WRITES_MS`, until the read models it names have
//! applied it. It wakes on the runner's progress signal (after each applied batch), with a short
//! re-check for a runner in another process. Past the wait, the route answers with what the read
//! model has and says `stale: true`.
//!
//! With a read replica (`GATEHOUSE_READ_DATABASE_URL`) the route reads its read model from the
//! replica, so the two sides of the comparison come from different servers on purpose: the
//! account's head from the primary (the replica may not have the event yet, and a head read there
//! would be too low and let a stale answer pass as fresh), and the checkpoints from the replica
//! (only a checkpoint the replica has replayed proves the replica shows the rows). The progress
//! signal fires when the primary commits a batch, before the replica has replayed it; the short
//! re-check is what sees the replica catch up.
use std::time::Duration;

use gatehouse_store::StreamPosition;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

/// Longest pause between two looks at the checkpoints when no progress signal comes (a runner in
/// another server process moves them without this process's signal; a replica replays a batch
/// after this process's signal has fired).
const RECHECK: Duration = Duration::from_millis(25);

/// Whether a read-model answer may miss the caller's own latest event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Freshness {
    /// `true` when the read model had not yet applied the caller's own latest event after
    /// waiting `GATEHOUSE_READ_YOUR_WRITES_MS`: the answer may miss it (ask again a moment
    /// later). Absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

/// Waits until every read model in `projections` has applied the latest event of `account_id`
/// (at most the configured wait), and says whether the answer will be stale.
pub async fn own_writes(
    state: &AppState,
    account_id: &str,
    projections: &[&str],
) -> Result<Freshness, ApiError> {
    // The head from the primary (the events' home), whatever pool the route reads from.
    let Some(target) = state.store().aggregate_head("Account", account_id).await? else {
        return Ok(Freshness::default());
    };
    let runner = state.runner();
    // Subscribed before the first look, so progress made in between is not missed.
    let mut progress = runner.progress();
    let deadline = tokio::time::Instant::now() + state.read_your_writes();
    loop {
        if reached(state, projections, target).await? {
            return Ok(Freshness::default());
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(Freshness { stale: true });
        }
        runner.nudge();
        let pause = (deadline - now).min(RECHECK);
        tokio::select! {
            _ = progress.changed() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

async fn reached(
    state: &AppState,
    projections: &[&str],
    target: StreamPosition,
) -> Result<bool, ApiError> {
    for name in projections {
        if state.runner().checkpoint_for_reads(name).await? < target {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_stale_is_said_only_when_true() {
        assert_eq!(
            serde_json::to_value(Freshness::default()).unwrap(),
            serde_json::json!({})
        );
        assert_eq!(
            serde_json::to_value(Freshness { stale: true }).unwrap(),
            serde_json::json!({"stale": true})
        );
    }
}
