//! Limits shared by every server process on one PostgreSQL database: a GCRA row per key in
//! `rate_limit_buckets`, all keys of a request spent in one `insert … on conflict do update …
//! returning` statement, on the database clock (so the processes' clocks do not matter).
//!
//! GCRA with a burst of `n` and an interval `T = 60 s / n`: a key's theoretical arrival time
//! `tat` advances by `T` per admitted request; a request at `now` is admitted while
//! `max(tat, now) + T - now <= 60 s`. Rows are locked in key order within the statement, so two
//! requests never wait on each other in a cycle.
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::{PgPool, Row};

use super::{BackendError, LimitBackend, LimitKey};

/// The whole decision. `$1` keys, `$2` their intervals (µs). On conflict, `excluded.seen_us`
/// is now and `excluded.interval_us` is `T`; every `set` expression reads the row as it was.
///
/// The statement commits without waiting for its WAL flush (`synchronous_commit` off for this
/// transaction only, set by the `now` row, which the planner keeps because `set_config` is
/// volatile). Every request from one address or for one identifier updates the same rows, and
/// a row stays locked until its transaction commits: with a flush per commit, concurrent
/// requests queued behind each other's flush (0.60 ms of each refused sign-in's 1.35 ms of
/// database time, BENCHMARKS.md). Visibility is unchanged, so the limits stay exact across
/// processes; what a crash of PostgreSQL can lose is the last fraction of a second of counts,
/// which a limiter can afford.
const SPEND: &str = "
with now as (select (extract(epoch from clock_timestamp()) * 1000000)::bigint as us,
                    set_config('synchronous_commit', 'off', true) as unflushed)
insert into rate_limit_buckets as b (key, tat_us, interval_us, seen_us, admitted)
select k.key, now.us + k.interval_us, k.interval_us, now.us, true
  from unnest($1::text[], $2::bigint[]) as k(key, interval_us), now
 order by k.key
on conflict (key) do update set
    tat_us = case
        when greatest(b.tat_us, excluded.seen_us) + excluded.interval_us - excluded.seen_us <= 60000000
        then greatest(b.tat_us, excluded.seen_us) + excluded.interval_us
        else b.tat_us end,
    admitted = greatest(b.tat_us, excluded.seen_us) + excluded.interval_us - excluded.seen_us <= 60000000,
    interval_us = excluded.interval_us,
    seen_us = excluded.seen_us
returning key, admitted, tat_us, interval_us, seen_us";

/// The shared backend.
pub struct PostgresBackend {
    pool: PgPool,
}

impl PostgresBackend {
    /// Over `pool` (the store's).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl LimitBackend for PostgresBackend {
    fn check<'a>(
        &'a self,
        keys: &'a [LimitKey],
    ) -> BoxFuture<'a, Result<Vec<Option<Duration>>, BackendError>> {
        Box::pin(async move {
            let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
            let intervals: Vec<i64> = keys.iter().map(LimitKey::interval_us).collect();
            let rows = sqlx::query(SPEND)
                .bind(&names)
                .bind(&intervals)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| BackendError(e.to_string()))?;
            let mut answers = vec![None; keys.len()];
            for row in rows {
                let read = |row: &sqlx::postgres::PgRow| -> Result<_, sqlx::Error> {
                    Ok((
                        row.try_get::<String, _>("key")?,
                        row.try_get::<bool, _>("admitted")?,
                        row.try_get::<i64, _>("tat_us")?,
                        row.try_get::<i64, _>("interval_us")?,
                        row.try_get::<i64, _>("seen_us")?,
                    ))
                };
                let (key, admitted, tat, interval, now) =
                    read(&row).map_err(|e| BackendError(e.to_string()))?;
                if admitted {
                    continue;
                }
                // Admitted again once max(tat, now) + T - now <= 60 s.
                let wait_us = (tat + interval - 60_000_000 - now).max(1);
                if let Some(i) = keys.iter().position(|k| k.name == key) {
                    answers[i] = Some(Duration::from_micros(wait_us.unsigned_abs()));
                }
            }
            Ok(answers)
        })
    }

    fn housekeep(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            // A key whose arrival time has passed is at full allowance: its row changes nothing.
            sqlx::query(
                "delete from rate_limit_buckets
                  where tat_us < (extract(epoch from clock_timestamp()) * 1000000)::bigint",
            )
            .execute(&self.pool)
            .await
            .map_err(|e| BackendError(e.to_string()))?;
            Ok(())
        })
    }

    fn name(&self) -> &'static str {
        "postgres"
    }
}
