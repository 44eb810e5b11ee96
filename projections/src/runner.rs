//! The projections runner: feeds every read model from the persisted global stream.
//!
//! Crash safety: each batch of a projection is applied in one transaction that also moves that
//! projection's checkpoint, so a kill at any point leaves the read model and its checkpoint
//! consistent, and a restart resumes exactly after the last applied event. The same code serves
//! live operation and rebuilds (replay).
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use sqlx::{Any, AnyConnection, AnyPool, Transaction};
use tokio::sync::watch;

use gatehouse_store::{CommitSignal, Store, StoreError, StoredEvent, StreamPosition};

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

/// Commits of this process a batch waits for (at most the coalescing time) before it reads the
/// stream: under load a batch then holds tens of commands rather than the few that committed
/// while the last one was written, and it comes sooner than the coalescing time would let it.
const GATHER_COMMITS: u64 = 32;

/// What one round of the runner did.
#[derive(Debug, Default, Clone, Copy)]
struct Batch {
    /// Events applied, summed over projections.
    applied: usize,
    /// The stream read filled the batch: more is waiting, read again at once.
    full: bool,
}

/// Feeds projections from a store.
#[derive(Clone)]
pub struct ProjectionRunner {
    store: Store,
    projections: Vec<Arc<dyn Projection>>,
    batch: i64,
    poll: Duration,
    coalesce: Duration,
    wake: Arc<CommitSignal>,
    progress: Arc<watch::Sender<StreamPosition>>,
    /// Events applied by this process, per projection (same order as `projections`).
    applied: Arc<Vec<AtomicU64>>,
    /// Where the slowest projection stood after the last batch (`None`: read the checkpoints).
    resume: Arc<Mutex<Option<StreamPosition>>>,
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
            wake: Arc::new(CommitSignal::new()),
            progress: Arc::new(progress),
            resume: Arc::new(Mutex::new(None)),
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

    /// The longest the runner gathers events before applying them ([`GATHER_COMMITS`] commits
    /// of this process end the gathering sooner): one transaction then covers many commands
    /// instead of one each, which keeps the read side's share of CPU and database work small
    /// under load, at the price of this much extra lag at most.
    pub fn with_coalesce(mut self, coalesce: Duration) -> Self {
        self.coalesce = coalesce;
        self
    }

    /// Ends the runner's wait now: a reader waits for its own writes, or another process wrote.
    pub fn nudge(&self) {
        self.wake.nudge();
    }

    /// The runner's commit count, for `CommandExecutor::with_commit_signal`: executors given it
    /// count every commit, and the runner wakes once per batch's worth of them (or after the
    /// coalescing time), however many land while it is busy.
    pub fn commit_signal(&self) -> Arc<CommitSignal> {
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
            // Counted before the stream is read: a commit after this is in the next batch.
            let seen = self.wake.count();
            match self.run_batch().await {
                Ok(Batch { applied, full }) => {
                    pause = FIRST_PAUSE;
                    if full {
                        continue;
                    }
                    if applied == 0 {
                        tokio::select! {
                            woke = self.wake.reach(seen + 1, self.poll) => if !woke {
                                // Idle: read the checkpoints again next time (something else,
                                // a rebuild, may have moved them).
                                self.forget_resume();
                                continue;
                            },
                            _ = shutdown.changed() => continue,
                        }
                    }
                    // Commits are coming: gather a batch's worth, or the coalescing time.
                    tokio::select! {
                        _ = self.wake.reach(seen + GATHER_COMMITS, self.coalesce) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(e) => {
                    self.forget_resume();
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
        Ok(self.run_batch().await?.applied)
    }

    async fn run_batch(&self) -> Result<Batch, StoreError> {
        // While commits keep waking the runner, where the slowest projection stands is known
        // from the last batch's transaction: no query for it per batch. A stale figure costs
        // nothing but a read (checkpoints are re-read under the locks, and a projection behind
        // the events read is left for the next round), and an idle poll reads them again.
        loop {
            let known = *self.resume.lock().unwrap_or_else(|p| p.into_inner());
            let from = match known {
                Some(at) => at,
                None => match self.slowest_checkpoint().await? {
                    Some(at) => at,
                    None => return Ok(Batch::default()),
                },
            };
            let events = self.store.read_stream(from, self.batch).await?;
            let full = events.len() as i64 >= self.batch;
            let (applied, slowest) = self.apply_all(from, &events).await?;
            *self.resume.lock().unwrap_or_else(|p| p.into_inner()) = slowest.or(Some(from));
            match slowest {
                // A read model stood behind the events read: read again from there at once.
                Some(at) if applied == 0 && at < from => continue,
                _ => return Ok(Batch { applied, full }),
            }
        }
    }

    fn forget_resume(&self) {
        *self.resume.lock().unwrap_or_else(|p| p.into_inner()) = None;
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

    /// Applies `events` (the stream's next events after `from`) to every projection that has
    /// not seen them, in one transaction that also moves their checkpoints: each projection's
    /// rows and checkpoint still move together (a kill leaves both as they were), and the batch
    /// costs five round trips besides the read models' own statements, whatever the number of
    /// projections (it was six per projection, each in its own transaction, on PostgreSQL).
    /// Returns the events applied (summed over projections) and where the slowest projection
    /// stands afterwards.
    async fn apply_all(
        &self,
        from: StreamPosition,
        events: &[StoredEvent],
    ) -> Result<(usize, Option<StreamPosition>), StoreError> {
        if events.is_empty() {
            return Ok((0, None));
        }
        let mut tx: Transaction<'_, Any> = self.store.any().begin().await?;
        let checkpoints = self.lock_checkpoints(&mut tx).await?;
        let mut counts = Vec::with_capacity(self.projections.len());
        let mut moved = Vec::new();
        let mut slowest: Option<StreamPosition> = None;
        for (projection, checkpoint) in self.projections.iter().zip(checkpoints) {
            // Events between the checkpoint and `from` were not read (the checkpoint moved back
            // since `from` was chosen: a rebuild emptied it): leave it for the next round.
            let pending: Vec<&StoredEvent> = if checkpoint < from {
                Vec::new()
            } else {
                events.iter().filter(|e| e.position > checkpoint).collect()
            };
            let reached = match pending.last() {
                Some(last) => {
                    projection
                        .apply_batch(&mut tx, &pending, checkpoint)
                        .await?;
                    moved.push((projection.name(), last.position));
                    last.position
                }
                None => checkpoint,
            };
            slowest = Some(slowest.map_or(reached, |s| s.min(reached)));
            counts.push(pending.len());
        }
        save_checkpoints(&mut tx, &moved).await?;
        tx.commit().await?;
        let mut applied = 0;
        for (counter, n) in self.applied.iter().zip(counts) {
            counter.fetch_add(n as u64, Ordering::Relaxed);
            applied += n;
        }
        if let Some(at) = slowest {
            self.progress.send_if_modified(|now| {
                let newer = at > *now;
                if newer {
                    *now = at;
                }
                newer
            });
        }
        Ok((applied, slowest))
    }

    /// Takes every projection's lock inside `tx` and reads their checkpoints under it (in the
    /// order of `self.projections`; `0` for one never run). Processes that run a runner each are
    /// serialised per projection, and the rebuild tool takes the same locks in the same order:
    /// on PostgreSQL advisory locks, all in one statement (its select list is evaluated left to
    /// right), with `enable_seqscan` off for the transaction ([`lock_all_pg`]); on SQLite
    /// a write first, which takes the file's write lock before anything is read. The checkpoints
    /// are read by the next statement, whose snapshot is taken after the locks are held.
    async fn lock_checkpoints(
        &self,
        tx: &mut Transaction<'_, Any>,
    ) -> Result<Vec<StreamPosition>, StoreError> {
        let names: Vec<&'static str> = self.projections.iter().map(|p| p.name()).collect();
        if self.store.kind() == "postgres" {
            let sql = lock_all_pg(names.len());
            let mut query = sqlx::query(&sql);
            for name in &names {
                query = query.bind(*name);
            }
            query.execute(&mut **tx).await?;
        } else {
            let rows: Vec<String> = (0..names.len())
                .map(|i| format!("(${}, 0, 0, $1)", i + 2))
                .collect();
            let sql = format!(
                "insert into projection_checkpoints (projection, tx_id, position, updated_ms) values {}
                 on conflict (projection) do nothing",
                rows.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(Utc::now().timestamp_millis());
            for name in &names {
                query = query.bind(*name);
            }
            query.execute(&mut **tx).await?;
        }
        let sql = format!(
            "select projection, tx_id, position from projection_checkpoints where projection in ({})",
            placeholders(1, names.len())
        );
        let mut query = sqlx::query_as::<_, (String, i64, i64)>(&sql);
        for name in &names {
            query = query.bind(*name);
        }
        let known = query.fetch_all(&mut **tx).await?;
        Ok(names
            .iter()
            .map(|name| {
                known
                    .iter()
                    .find(|(n, _, _)| n == name)
                    .map(|(_, tx, pos)| StreamPosition { tx: *tx, pos: *pos })
                    .unwrap_or_default()
            })
            .collect())
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
                self.apply_all(from, &events),
                self.store.read_stream(last, self.batch)
            );
            total += applied?.0;
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

/// The PostgreSQL statement that opens a batch's transaction, in one round trip: the advisory
/// locks of `n` projections, in the order of its parameters, and `enable_seqscan = off` until
/// the transaction ends. Every statement a read model issues is a key lookup or a keyed write;
/// without table statistics (autovacuum off, or tables a rebuild is filling) PostgreSQL
/// estimates an `in (…)` list of a few hundred keys to match a third of the table and scans it
/// whole, every batch, ever longer.
pub fn lock_all_pg(n: usize) -> String {
    let locks: Vec<String> = (1..=n)
        .map(|i| format!("pg_advisory_xact_lock(hashtext(${i})::bigint)"))
        .collect();
    format!(
        "select {}, set_config('enable_seqscan', 'off', true)",
        locks.join(", ")
    )
}

/// `$first, $first+1, …` (`n` of them).
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Moves the checkpoints of the projections that applied events, in one statement.
async fn save_checkpoints(
    conn: &mut AnyConnection,
    moved: &[(&'static str, StreamPosition)],
) -> Result<(), StoreError> {
    if moved.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = (0..moved.len())
        .map(|i| format!("(${}, ${}, ${}, $1)", 3 * i + 2, 3 * i + 3, 3 * i + 4))
        .collect();
    let sql = format!(
        "insert into projection_checkpoints (projection, tx_id, position, updated_ms) values {}
         on conflict (projection) do update
            set tx_id = excluded.tx_id, position = excluded.position, updated_ms = excluded.updated_ms",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(Utc::now().timestamp_millis());
    for (name, at) in moved {
        query = query.bind(*name).bind(at.tx).bind(at.pos);
    }
    query.execute(conn).await?;
    Ok(())
}
