//! Loads aggregates (snapshot + the events after it) and commits new events, for any aggregate.
//!
//! Implements cqrs-es's `EventStore`. Unlike cqrs-es's `PersistedEventStore` in snapshot mode, it
//! snapshots the context's aggregate as it stands after `handle` (cqrs-es 0.5 applies events in
//! `EventSink::write`, and its snapshot path applies them a second time), and only after the
//! events have committed.
use std::collections::HashMap;
use std::marker::PhantomData;

use cqrs_es::persist::{
    EventStoreAggregateContext, EventUpcaster, PersistedEventRepository, SerializedEvent,
};
use cqrs_es::{Aggregate, AggregateError, EventEnvelope, EventStore};

use super::repo::EventRepo;
use super::{Backend, Store};

/// A snapshot is written each time an aggregate's sequence crosses a multiple of this.
pub const SNAPSHOT_EVERY: usize = 20;

/// Event store for aggregate type `A`.
pub struct AggregateStore<A> {
    repo: EventRepo,
    store: Store,
    upcasters: Vec<Box<dyn EventUpcaster>>,
    _aggregate: PhantomData<fn() -> A>,
}

/// Same text on both backends; only the payload's type differs (json on PostgreSQL, text on
/// SQLite). Never moves a snapshot backwards.
const SNAPSHOT_UPSERT: &str = "
insert into snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload)
values ($1, $2, $3, $4, $5)
on conflict (aggregate_type, aggregate_id) do update
   set last_sequence = excluded.last_sequence, current_snapshot = excluded.current_snapshot,
       payload = excluded.payload
 where snapshots.last_sequence < excluded.last_sequence";

impl<A: Aggregate> AggregateStore<A> {
    /// A store for `A` over `store`, with the upcasters that bring old payloads to current form.
    pub fn new(store: &Store, upcasters: Vec<Box<dyn EventUpcaster>>) -> Self {
        Self {
            repo: EventRepo::for_store(store),
            store: store.clone(),
            upcasters,
            _aggregate: PhantomData,
        }
    }

    fn envelopes(
        &self,
        events: Vec<SerializedEvent>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        events
            .into_iter()
            .map(|event| {
                let event = self.upcasters.iter().fold(event, |e, up| {
                    if up.can_upcast(&e.event_type, &e.event_version) {
                        up.upcast(e)
                    } else {
                        e
                    }
                });
                EventEnvelope::<A>::try_from(event).map_err(AggregateError::from)
            })
            .collect()
    }

    /// Brings a known state (`aggregate` after `sequence` events) up to date with the events
    /// committed since: one small query instead of a snapshot and the events after it.
    pub async fn load_from(
        &self,
        aggregate_id: &str,
        mut aggregate: A,
        sequence: usize,
    ) -> Result<EventStoreAggregateContext<A>, AggregateError<A::Error>> {
        let newer = self.envelopes(
            self.repo
                .get_last_events::<A>(aggregate_id, sequence)
                .await?,
        )?;
        let current_sequence = sequence + newer.len();
        for envelope in newer {
            aggregate.apply(envelope.payload);
        }
        Ok(EventStoreAggregateContext {
            aggregate_id: aggregate_id.to_string(),
            aggregate,
            current_sequence,
            current_snapshot: None,
        })
    }

    /// Commits `events` after `context` (whose aggregate has already applied them, as `handle`
    /// does) and advances `context` past them; snapshots when a multiple of [`SNAPSHOT_EVERY`] is
    /// crossed.
    pub async fn append(
        &self,
        events: Vec<A::Event>,
        context: &mut EventStoreAggregateContext<A>,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let first = context.current_sequence + 1;
        let envelopes: Vec<EventEnvelope<A>> = events
            .into_iter()
            .enumerate()
            .map(|(i, payload)| EventEnvelope {
                aggregate_id: context.aggregate_id.clone(),
                sequence: first + i,
                payload,
                metadata: metadata.clone(),
            })
            .collect();
        let serialized = envelopes
            .iter()
            .map(SerializedEvent::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        self.repo.persist::<A>(&serialized, None).await?;
        let previous = context.current_sequence;
        context.current_sequence = previous + envelopes.len();
        if context.current_sequence / SNAPSHOT_EVERY > previous / SNAPSHOT_EVERY {
            // A cache: failing to write it costs only a longer load next time.
            if let Err(e) = self.write_snapshot(context).await {
                tracing::warn!(error = %e, aggregate = A::TYPE, "snapshot write failed");
            }
        }
        Ok(envelopes)
    }

    async fn write_snapshot(
        &self,
        context: &EventStoreAggregateContext<A>,
    ) -> Result<(), sqlx::Error> {
        let payload = serde_json::to_value(&context.aggregate)
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let sequence = i64::try_from(context.current_sequence).unwrap_or(i64::MAX);
        let snapshot_number = sequence / SNAPSHOT_EVERY as i64;
        match self.store.backend() {
            Backend::Postgres(pool) => {
                sqlx::query(SNAPSHOT_UPSERT)
                    .bind(A::TYPE)
                    .bind(&context.aggregate_id)
                    .bind(sequence)
                    .bind(snapshot_number)
                    .bind(&payload)
                    .execute(pool)
                    .await?;
            }
            Backend::Sqlite(pool) => {
                sqlx::query(SNAPSHOT_UPSERT)
                    .bind(A::TYPE)
                    .bind(&context.aggregate_id)
                    .bind(sequence)
                    .bind(snapshot_number)
                    .bind(payload.to_string())
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }
}

impl<A: Aggregate> EventStore<A> for AggregateStore<A> {
    type AC = EventStoreAggregateContext<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let events = self.repo.get_events::<A>(aggregate_id).await?;
        self.envelopes(events)
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<Self::AC, AggregateError<A::Error>> {
        let mut context = EventStoreAggregateContext {
            aggregate_id: aggregate_id.to_string(),
            aggregate: A::default(),
            current_sequence: 0,
            current_snapshot: None,
        };
        if let Some(snapshot) = self.repo.get_snapshot::<A>(aggregate_id).await? {
            // A snapshot that no longer deserializes (state shape changed) is ignored: the events
            // are the truth and a full load rebuilds the state.
            if let Ok(aggregate) = serde_json::from_value::<A>(snapshot.aggregate) {
                context.aggregate = aggregate;
                context.current_sequence = snapshot.current_sequence;
                context.current_snapshot = Some(snapshot.current_snapshot);
            }
        }
        let events = self
            .repo
            .get_last_events::<A>(aggregate_id, context.current_sequence)
            .await?;
        for envelope in self.envelopes(events)? {
            context.current_sequence = envelope.sequence;
            context.aggregate.apply(envelope.payload);
        }
        Ok(context)
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        mut context: Self::AC,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        self.append(events, &mut context, metadata).await
    }
}
