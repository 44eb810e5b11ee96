//! Runs commands: load, decide, commit, and on an optimistic-concurrency conflict reload and
//! decide again (never drop the command). Within one process, commands on one aggregate queue
//! behind a per-aggregate lock, so parallel sign-in attempts do not each burn a password hash
//! only to conflict; across processes the store's unique key still decides.
//!
//! The executor keeps the latest state it has seen of recently used aggregates. A cached state is
//! always one that followed committed events in order, so reading the events after its sequence
//! gives exactly the current state; a stale entry costs a conflict and a retry, never a wrong
//! decision.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::EventStoreAggregateContext;
use cqrs_es::{Aggregate, AggregateError, EventEnvelope, EventStore};
use thiserror::Error;

use super::aggregate_store::AggregateStore;
use super::commit_signal::CommitSignal;

/// Attempts before a conflict is reported to the caller.
const MAX_ATTEMPTS: u32 = 12;
/// Aggregates whose state is kept in memory by default; beyond it the cache starts over. An
/// account's state is a few KB (sessions, flows, factors), so this bounds the cache to a few MB
/// (issue #23's memory target); a miss costs a snapshot read, never a wrong decision.
pub const DEFAULT_CACHE_CAPACITY: usize = 1024;

/// Why a command did not complete.
#[derive(Debug, Error)]
pub enum ExecuteError<E: std::error::Error> {
    /// The aggregate refused the command; nothing was written.
    #[error("refused: {0}")]
    Refused(E),
    /// Conflicts persisted through every retry (extreme contention across processes).
    #[error("too much contention on one aggregate")]
    Contention,
    /// The store failed; the detail (the database's or the decoder's error) is for logs only.
    #[error("store failure: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// The outcome of a command: the events committed and the aggregate's state after them.
pub struct Executed<A: Aggregate> {
    /// Events written (empty when the command decided nothing).
    pub events: Vec<EventEnvelope<A>>,
    /// State after the events.
    pub aggregate: A,
}

/// A cached state.
#[derive(Clone)]
struct Cached<A> {
    state: Arc<A>,
    sequence: usize,
    /// The last look at the store found no event this process had not seen (and none came in
    /// a conflict since): a command may decide on this state before reading the store. False
    /// after a cold load, a tail read that found another process's events, or a conflict, until
    /// a tail read finds nothing new; so where processes take turns on an aggregate, every
    /// command reads first and an expensive decision (a password hash) is never taken twice.
    sole: bool,
}

/// Executes commands for aggregate type `A`.
pub struct CommandExecutor<A: Aggregate + Clone> {
    store: AggregateStore<A>,
    services: A::Services,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Behind `Arc`: the map's slots stay small (an account's state is about 1 KB inline), and
    /// a reader takes its copy outside the lock. With each state, its sequence and whether this
    /// process looks like the aggregate's only writer ([`Cached::sole`]).
    states: Mutex<HashMap<String, Cached<A>>>,
    capacity: usize,
    committed: Option<Arc<CommitSignal>>,
}

impl<A: Aggregate + Clone> CommandExecutor<A> {
    /// An executor over `store` with the given services.
    pub fn new(store: AggregateStore<A>, services: A::Services) -> Self {
        Self {
            store,
            services,
            locks: Mutex::new(HashMap::new()),
            states: Mutex::new(HashMap::new()),
            capacity: DEFAULT_CACHE_CAPACITY,
            committed: None,
        }
    }

    /// Keeps at most `capacity` aggregate states in memory (0: none, every command loads its
    /// aggregate from the store).
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Counts every commit that wrote events on `committed` (the projections runner's signal,
    /// `ProjectionRunner::commit_signal`), so callers never nudge the read side themselves.
    pub fn with_commit_signal(mut self, committed: Arc<CommitSignal>) -> Self {
        self.committed = Some(committed);
        self
    }

    /// The injected services.
    pub fn services(&self) -> &A::Services {
        &self.services
    }

    /// Loads an aggregate's current state.
    pub async fn load(&self, aggregate_id: &str) -> Result<A, ExecuteError<A::Error>> {
        Ok(self.load_context(aggregate_id).await?.aggregate)
    }

    async fn load_context(
        &self,
        aggregate_id: &str,
    ) -> Result<EventStoreAggregateContext<A>, ExecuteError<A::Error>> {
        let cached = self
            .states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(aggregate_id)
            .cloned();
        let (context, sole) = match cached {
            Some(cached) => {
                let context = self
                    .store
                    .load_from(aggregate_id, A::clone(&cached.state), cached.sequence)
                    .await
                    .map_err(store_error)?;
                let nothing_new = context.current_sequence == cached.sequence;
                (context, nothing_new)
            }
            None => (
                self.store
                    .load_aggregate(aggregate_id)
                    .await
                    .map_err(store_error)?,
                false,
            ),
        };
        self.remember(&context, sole);
        Ok(context)
    }

    fn remember(&self, context: &EventStoreAggregateContext<A>, sole: bool) {
        if context.current_sequence == 0 || self.capacity == 0 {
            return;
        }
        let state = Arc::new(context.aggregate.clone());
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        if states.len() >= self.capacity && !states.contains_key(&context.aggregate_id) {
            states.clear();
        }
        let newer = states
            .get(&context.aggregate_id)
            .is_none_or(|cached| cached.sequence <= context.current_sequence);
        // Never replace a newer state with an older one.
        if newer {
            states.insert(
                context.aggregate_id.clone(),
                Cached {
                    state,
                    sequence: context.current_sequence,
                    sole,
                },
            );
        }
    }

    fn distrust(&self, aggregate_id: &str) {
        if let Some(cached) = self
            .states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(aggregate_id)
        {
            cached.sole = false;
        }
    }

    /// All events of one aggregate, in order.
    pub async fn events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, ExecuteError<A::Error>> {
        self.store
            .load_events(aggregate_id)
            .await
            .map_err(store_error)
    }

    /// Runs `command()` against the aggregate, retrying on conflicts. `command` is called once per
    /// attempt, so it must build the same command each time.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: impl Fn() -> A::Command,
        metadata: HashMap<String, String>,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        let lock = self.lock_for(aggregate_id);
        let result = {
            let _guard = lock.lock().await;
            self.execute_unserialized(aggregate_id, command, metadata)
                .await
        };
        drop(lock);
        self.release(aggregate_id);
        result
    }

    async fn execute_unserialized(
        &self,
        aggregate_id: &str,
        command: impl Fn() -> A::Command,
        metadata: HashMap<String, String>,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        let mut attempt = 0;
        // While this process looks like the aggregate's only writer, the first decision is
        // taken on the cached state without reading the events after it: a decision that
        // writes is checked by the append itself (another writer holds the next sequence: a
        // conflict), and one that writes nothing is checked below before it is answered. Within
        // one process the cache is current (commands on an aggregate queue behind its lock), so
        // this saves a round trip per command; a stale entry (another process wrote since)
        // costs one decision taken twice, after which commands read first until a read finds
        // nothing new.
        let mut next = self.cached(aggregate_id).map(|context| (context, true));
        loop {
            attempt += 1;
            // `unverified`: the state has not been checked against the store in this call.
            let (mut context, unverified) = match next.take() {
                Some(known) => known,
                None => (self.load_context(aggregate_id).await?, false),
            };
            // Whether the state decided on is known to hold every event (the cache entry's
            // trust after the load or as found).
            let sole = unverified || self.is_sole(aggregate_id, context.current_sequence);
            let decided_on = context.current_sequence;
            let sink = EventSink::<A>::default();
            let decision = context
                .aggregate
                .handle(command(), &self.services, &sink)
                .await;
            let events = sink.collect().await;
            if unverified && (decision.is_err() || events.is_empty()) {
                // Nothing to append, so nothing checks the state: answer only if no event
                // followed the cached one, else decide again on the state as it stands.
                let current = self.load_context(aggregate_id).await?;
                if current.current_sequence != decided_on {
                    attempt -= 1;
                    next = Some((current, false));
                    continue;
                }
            }
            decision.map_err(ExecuteError::Refused)?;
            match self
                .store
                .append(events, &mut context, metadata.clone())
                .await
            {
                Ok(events) => {
                    self.remember(&context, sole);
                    if let (Some(committed), false) = (&self.committed, events.is_empty()) {
                        committed.committed();
                    }
                    return Ok(Executed {
                        events,
                        aggregate: context.aggregate,
                    });
                }
                // The cached state was behind (another process wrote): not a race, decide again
                // on fresh state at once.
                Err(AggregateError::AggregateConflict) if unverified => self.distrust(aggregate_id),
                Err(AggregateError::AggregateConflict) if attempt < MAX_ATTEMPTS => {
                    self.distrust(aggregate_id);
                    // Another process wrote first: back off a little, then decide on fresh state.
                    let jitter = u64::from(attempt) * 3 + (std::process::id() as u64 % 5);
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                }
                Err(AggregateError::AggregateConflict) => return Err(ExecuteError::Contention),
                Err(e) => return Err(store_error(e)),
            }
        }
    }

    /// The cached state of `aggregate_id` as a context to decide on, without asking the store
    /// what followed it.
    fn cached(&self, aggregate_id: &str) -> Option<EventStoreAggregateContext<A>> {
        let cached = self
            .states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(aggregate_id)
            .filter(|cached| cached.sole)
            .cloned()?;
        Some(EventStoreAggregateContext {
            aggregate_id: aggregate_id.to_string(),
            aggregate: A::clone(&cached.state),
            current_sequence: cached.sequence,
            current_snapshot: None,
        })
    }

    /// Whether the cache holds `aggregate_id` at `sequence` as its only writer's state.
    fn is_sole(&self, aggregate_id: &str, sequence: usize) -> bool {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(aggregate_id)
            .is_some_and(|cached| cached.sole && cached.sequence == sequence)
    }

    fn lock_for(&self, aggregate_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(aggregate_id.to_string()).or_default().clone()
    }

    fn release(&self, aggregate_id: &str) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks
            .get(aggregate_id)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            locks.remove(aggregate_id);
        }
    }
}

fn store_error<E: std::error::Error>(e: AggregateError<E>) -> ExecuteError<E> {
    match e {
        AggregateError::UserError(e) => ExecuteError::Refused(e),
        AggregateError::AggregateConflict => ExecuteError::Contention,
        AggregateError::DatabaseConnectionError(e)
        | AggregateError::DeserializationError(e)
        | AggregateError::UnexpectedError(e) => ExecuteError::Store(e),
    }
}
