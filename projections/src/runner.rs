//! The projections runner: feeds every read model from the persisted global stream.
//!
//! Crash safety: each batch of a projection is applied in one transaction that also moves that
//! projection's checkpoint, so a kill at any point leaves the read model and its checkpoint
//! consistent, and a restart resumes exactly after the last applied event. The same code serves
//! live operation and rebuilds (replay).
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sqlx::{Any, AnyConnection, AnyPool, Transaction};
use tokio::sync::{watch, Notify};

use gatehouse_store::{Store, StoreError, StoredEvent, StreamPosition};

/// The first statement of a projection's transaction on PostgreSQL, in one round trip: the
/// per-projection lock, and `enable_seqscan = off` until the transaction ends. Every statement a
/// read model issues is a key lookup or a keyed write; without table statistics (autovacuum off,
/// or tables a rebuild is filling) PostgreSQL estimates an `in (…)` list of a few hundred keys to
/// match a third of the table and scans it whole, every batch, ever longer.
pub const BEGIN_PROJECTION_PG: &str =
    "select pg_advisory_xact_lock(hashtext($1)::bigint), set_config('enable_seqscan', 'off', true)";

/// A boxed future, so projections can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A read model folded from the event stream.
pub trait Projection: Send + Sync {
    /// Checkpoint key; includes the read model's version (e.g. `lockout_state_v1`).
    fn name(&self) -> &'static str;
    /// Tables this projection owns (emptied by a rebuild).
    fn tables(&self) -> &'static [&'static str];
    /// Indexes of its tables that a rebuild into fresh tables builds after the fold, one sort each,
    /// instead of an index insert per row: those that serve readers only (the API, analysts),
    /// never the projection's own statements, and unique keys of tables the projection only
    /// inserts into with [`crate::batch::insert_new_rows`] (such a key only refuses an event
    /// applied twice; the fold applies each once, and the key built afterwards still refuses a
    /// duplicate).
    fn deferred_indexes(&self) -> &'static [&'static str] {
        &[]
    }
    /// Applies one event inside the batch transaction. Must be idempotent per event.
    fn apply<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        event: &'a StoredEvent,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Writes what the projection kept in memory only, once the last batch of a rebuild into
    /// fresh tables is applied (see [`crate::rebuild_projections`]). Nothing by default.
    fn finish<'a>(&'a self, conn: &'a mut AnyConnection) -> BoxFuture<'a, Result<(), StoreError>> {
        let _ = conn;
        Box::pin(async { Ok(()) })
    }

    /// Applies a batch of events, in order, inside the batch transaction. The result must equal
    /// applying them one by one (the default); a projection overrides it to write set-based.
    ///
    /// `after` is where the read model's tables stand before these events (its checkpoint). A
    /// projection may keep state in memory from one batch to the next, but may trust it only if
    /// it was left at exactly `after` (another process, a failed transaction or a rebuild moves
    /// the tables without it).
    fn apply_batch<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        events: &'a [&'a StoredEvent],
        after: StreamPosition,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let _ = after;
        Box::pin(async move {
            for event in events {
                self.apply(&mut *conn, event).await?;
            }
            Ok(())
        })
    }
}

/// Writes a batch of changes, in order, with as few statements as it can.
pub type WriteMany<C> =
    for<'a> fn(&'a mut AnyConnection, &'a [C]) -> BoxFuture<'a, Result<(), StoreError>>;

/// A read model given as two functions: the changes an event implies (pure, unit-tested on its
/// own) and how one change is written.
pub struct ChangeProjection<C> {
    /// Checkpoint key, with the read model's version.
    pub name: &'static str,
    /// Tables it owns.
    pub tables: &'static [&'static str],
    /// Indexes a rebuild builds after the fold (see [`Projection::deferred_indexes`]).
    pub deferred_indexes: &'static [&'static str],
    /// The pure fold: what an event changes (nothing for events it ignores).
    pub changes: fn(&StoredEvent) -> Result<Vec<C>, StoreError>,
    /// Writes one change; must be idempotent.
    pub write: for<'a> fn(&'a mut AnyConnection, &'a C) -> BoxFuture<'a, Result<(), StoreError>>,
    /// Writes a batch's changes at once (same result as `write` on each, in order), when the
    /// read model has a set-based form.
    pub write_many: Option<WriteMany<C>>,
}

impl<C: Send + Sync> Projection for ChangeProjection<C> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn tables(&self) -> &'static [&'static str] {
        self.tables
    }

    fn deferred_indexes(&self) -> &'static [&'static str] {
        self.deferred_indexes
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        event: &'a StoredEvent,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            for change in (self.changes)(event)? {
                (self.write)(&mut *conn, &change).await?;
            }
            Ok(())
        })
    }

    fn apply_batch<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        events: &'a [&'a StoredEvent],
        _after: StreamPosition,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut changes = Vec::new();
            for event in events {
                changes.extend((self.changes)(event)?);
            }
            match self.write_many {
                Some(write_many) => write_many(&mut *conn, &changes).await,
                None => {
                    for change in &changes {
                        (self.write)(&mut *conn, change).await?;
                    }
                    Ok(())
                }
            }
        })
    }
}

/// Feeds projections from a store.
#[derive(Clone)]
pub struct ProjectionRunner {
    store: Store,
    projections: Vec<Arc<dyn Projection>>,
    batch: i64,
    poll: Duration,
    coalesce: Duration,
    wake: Arc<Notify>,
    progress: Arc<watch::Sender<StreamPosition>>,
    /// Events applied by this process, per projection (same order as `projections`).
    applied: Arc<Vec<AtomicU64>>,
}

impl ProjectionRunner {
    /// A runner over `store` for `projections`.
    pub fn new(store: Store, projections: Vec<Arc<dyn Projection>>) -> Self {
        let (progress, _) = watch::channel(StreamPosition::default());
        let applied = Arc::new(projections.iter().map(|_| AtomicU64::new(0)).collect());
        Self {
            applied,
            store,
            projections,
            batch: 500,
            poll: Duration::from_millis(500),
            coalesce: Duration::from_millis(50),
            wake: Arc::new(Notify::new()),
            progress: Arc::new(progress),
        }
    }

    /// Gatehouse's standard read models.
    pub fn standard(store: Store) -> Self {
        Self::new(store, crate::standard_projections())
    }

    /// Events per transaction.
    pub fn with_batch(mut self, batch: i64) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// How often to look for new events when not woken.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// How long to gather events after a wake-up before applying them: one transaction per
    /// projection then covers many commands instead of one each, which keeps the read side's
    /// share of CPU and database work small under load, at the price of this much extra lag.
    pub fn with_coalesce(mut self, coalesce: Duration) -> Self {
        self.coalesce = coalesce;
        self
    }

    /// Wakes the runner now (call after committing events, to keep lag low).
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    /// The runner's wake-up, for [`crate::store::CommandExecutor::with_commit_signal`]: executors
    /// given it wake the runner after every commit. Notifications coalesce: however many commits
    /// land while the runner is busy, it wakes once and reads them all.
    pub fn commit_signal(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Positions every projection has reached (the minimum), updated after each batch.
    pub fn progress(&self) -> watch::Receiver<StreamPosition> {
        self.progress.subscribe()
    }

    /// Each projection's name and the events this process has applied to it since it started.
    pub fn events_applied(&self) -> Vec<(&'static str, u64)> {
        self.projections
            .iter()
            .zip(self.applied.iter())
            .map(|(p, n)| (p.name(), n.load(Ordering::Relaxed)))
            .collect()
    }

    /// The projections fed by this runner.
    pub fn projections(&self) -> &[Arc<dyn Projection>] {
        &self.projections
    }

    /// Runs until `shutdown` turns true. Errors are logged and retried after a pause that
    /// doubles from one second up to ten while they last (the database is away: no spinning, no
    /// flood of log lines), and the runner goes on by itself once a batch succeeds again.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        const FIRST_PAUSE: Duration = Duration::from_secs(1);
        const LONGEST_PAUSE: Duration = Duration::from_secs(10);
        let mut pause = FIRST_PAUSE;
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.run_once().await {
                Ok(n) => {
                    pause = FIRST_PAUSE;
                    if n == 0 {
                        tokio::select! {
                            _ = self.wake.notified() => tokio::time::sleep(self.coalesce).await,
                            _ = tokio::time::sleep(self.poll) => {}
                            _ = shutdown.changed() => {}
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, retry_in_ms = pause.as_millis() as u64, "projection batch failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => {}
                    }
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
            }
        }
    }

    /// Applies one batch to every projection that is behind; returns the events applied.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let Some(from) = self.slowest_checkpoint().await? else {
            return Ok(0);
        };
        let events = self.store.read_stream(from, self.batch).await?;
        self.apply_all(&events).await
    }

    /// Where the projection furthest behind stands (`None` without projections).
    async fn slowest_checkpoint(&self) -> Result<Option<StreamPosition>, StoreError> {
        let known: Vec<(String, i64, i64)> =
            sqlx::query_as("select projection, tx_id, position from projection_checkpoints")
                .fetch_all(self.store.any())
                .await?;
        Ok(self
            .projections
            .iter()
            .map(|p| {
                known
                    .iter()
                    .find(|(name, _, _)| name == p.name())
                    .map(|(_, tx, pos)| StreamPosition { tx: *tx, pos: *pos })
                    .unwrap_or_default()
            })
            .min())
    }

    /// Applies `events` to every projection that has not seen them. Each projection's changes
    /// and checkpoint move in one transaction. On PostgreSQL the projections' transactions run
    /// side by side (one connection each), so the database works on one read model while this
    /// process prepares the next; on SQLite, which has one writer, they run one after another
    /// in a single transaction.
    async fn apply_all(&self, events: &[StoredEvent]) -> Result<usize, StoreError> {
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(0);
        };
        let counts: Vec<usize> = if self.store.kind() == "postgres" {
            futures::future::try_join_all(self.projections.iter().map(|projection| async move {
                let mut tx: Transaction<'_, Any> = self.store.any().begin().await?;
                let n = self
                    .apply_pending(&mut tx, projection.as_ref(), events)
                    .await?;
                tx.commit().await?;
                Ok::<usize, StoreError>(n)
            }))
            .await?
        } else {
            let mut tx: Transaction<'_, Any> = self.store.any().begin().await?;
            let mut counts = Vec::with_capacity(self.projections.len());
            for projection in &self.projections {
                counts.push(
                    self.apply_pending(&mut tx, projection.as_ref(), events)
                        .await?,
                );
            }
            tx.commit().await?;
            counts
        };
        let mut applied = 0;
        for (counter, n) in self.applied.iter().zip(counts) {
            counter.fetch_add(n as u64, Ordering::Relaxed);
            applied += n;
        }
        self.progress.send_replace(last);
        Ok(applied)
    }

    /// Applies the events a projection has not seen yet and moves its checkpoint, inside the
    /// caller's transaction. Processes that run a runner each are serialised per projection (an
    /// advisory lock on PostgreSQL, taken in the same order everywhere; the write lock on SQLite),
    /// and the checkpoint is re-read under that lock, so no event is applied twice or out of
    /// order.
    async fn apply_pending(
        &self,
        tx: &mut Transaction<'_, Any>,
        projection: &dyn Projection,
        events: &[StoredEvent],
    ) -> Result<usize, StoreError> {
        if self.store.kind() == "postgres" {
            sqlx::query(BEGIN_PROJECTION_PG)
                .bind(projection.name())
                .execute(&mut **tx)
                .await?;
        }
        // A write first: on SQLite this takes the write lock before anything is read.
        sqlx::query(
            "insert into projection_checkpoints (projection, tx_id, position, updated_ms) values ($1, 0, 0, $2)
             on conflict (projection) do nothing",
        )
        .bind(projection.name())
        .bind(Utc::now().timestamp_millis())
        .execute(&mut **tx)
        .await?;
        let (tx_id, position): (i64, i64) = sqlx::query_as(
            "select tx_id, position from projection_checkpoints where projection = $1",
        )
        .bind(projection.name())
        .fetch_one(&mut **tx)
        .await?;
        let checkpoint = StreamPosition {
            tx: tx_id,
            pos: position,
        };
        let pending: Vec<&StoredEvent> =
            events.iter().filter(|e| e.position > checkpoint).collect();
        let Some(last) = pending.last().map(|e| e.position) else {
            return Ok(0);
        };
        projection.apply_batch(tx, &pending, checkpoint).await?;
        save_checkpoint(tx, projection.name(), last).await?;
        Ok(pending.len())
    }

    /// Runs batches until every projection has reached the stream head seen at the start. The
    /// next batch is read while the current one is applied.
    pub async fn catch_up(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        let mut ahead: Option<(StreamPosition, Vec<StoredEvent>)> = None;
        loop {
            let Some(from) = self.slowest_checkpoint().await? else {
                return Ok(total);
            };
            let events = match ahead.take() {
                Some((at, events)) if at == from => events,
                _ => self.store.read_stream(from, self.batch).await?,
            };
            let Some(last) = events.last().map(|e| e.position) else {
                return Ok(total);
            };
            let (applied, next) = tokio::join!(
                self.apply_all(&events),
                self.store.read_stream(last, self.batch)
            );
            total += applied?;
            ahead = Some((last, next?));
        }
    }

    /// Where a projection stands (on the primary).
    pub async fn checkpoint(&self, name: &str) -> Result<StreamPosition, StoreError> {
        checkpoint_in(self.store.any(), name).await
    }

    /// Where a projection stands as the read pool ([`Store::reads`]) sees it: on a streaming
    /// replica, behind the primary by its replay lag. The checkpoint commits in the same
    /// transaction as the projection's rows and a replica replays commits in order, so once
    /// this reaches a position the read pool shows that projection's rows up to it too.
    pub async fn checkpoint_for_reads(&self, name: &str) -> Result<StreamPosition, StoreError> {
        checkpoint_in(self.store.reads(), name).await
    }

    /// Each projection's name and how many visible events it has yet to apply.
    pub async fn lag(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        let mut lags = Vec::with_capacity(self.projections.len());
        for p in &self.projections {
            let at = self.checkpoint(p.name()).await?;
            lags.push((p.name(), self.store.count_after(at).await?));
        }
        Ok(lags)
    }

    /// Empties every projection's tables and checkpoint, then rebuilds them from the first event.
    pub async fn rebuild(&self) -> Result<usize, StoreError> {
        {
            let mut tx = self.store.any().begin().await?;
            for p in &self.projections {
                sqlx::query("delete from projection_checkpoints where projection = $1")
                    .bind(p.name())
                    .execute(&mut *tx)
                    .await?;
                for table in p.tables() {
                    sqlx::query(&format!("delete from {table}"))
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
        }
        self.catch_up().await
    }
}

async fn checkpoint_in(pool: &AnyPool, name: &str) -> Result<StreamPosition, StoreError> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("select tx_id, position from projection_checkpoints where projection = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(row
        .map(|(tx, pos)| StreamPosition { tx, pos })
        .unwrap_or_default())
}

async fn save_checkpoint(
    conn: &mut AnyConnection,
    name: &str,
    at: StreamPosition,
) -> Result<(), StoreError> {
    sqlx::query("update projection_checkpoints set tx_id = $2, position = $3, updated_ms = $4 where projection = $1")
    .bind(name)
    .bind(at.tx)
    .bind(at.pos)
    .bind(Utc::now().timestamp_millis())
    .execute(conn)
    .await?;
    Ok(())
}
