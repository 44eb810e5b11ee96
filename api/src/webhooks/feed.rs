//! The feed: turns events and alert changes into outbox rows for the subscriptions they match.
//!
//! A checkpointed consumer of the global stream and of the alerts read model's changes (the
//! `webhook_feed` row, with a lease as for the NATS publisher: one process at a time). Rows are
//! written first (`on conflict do nothing`, keyed by the message id), the checkpoint after: a
//! crash in between reads the tail again and writes nothing twice.
//!
//! The feed starts at the stream's head the first time it runs (a new install does not send
//! its history), and an event is sent to subscriptions created at or before it was recorded.
//! With no subscription enabled it moves its checkpoint to the head without reading.
use std::time::Duration;

use gatehouse_store::{Store, StoreError, StoredEvent, StreamPosition};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::table::{self, Subscription};
use super::{kinds, sign, Webhooks};
use crate::nats::checkpoint::{self, Checkpoint, WEBHOOK_FEED};
use crate::nats::{payload, subjects, Quiet};

/// The checkpoint row's name.
pub const NAME: &str = "webhooks";

/// Events read per batch.
const BATCH: i64 = 500;

/// Alert changes read per batch.
const ALERT_BATCH: i64 = 200;

/// How often an idle feed looks for new events, and a standby for a lapsed lease.
const POLL: Duration = Duration::from_millis(250);

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The JSON body of a message: `{type, timestamp, data}`.
fn body(kind: &str, timestamp: chrono::DateTime<chrono::Utc>, data: Value) -> String {
    json!({"type": kind, "timestamp": timestamp, "data": data}).to_string()
}

/// A subscription with its patterns parsed.
struct Target {
    id: String,
    created_ms: i64,
    patterns: Vec<String>,
}

impl From<Subscription> for Target {
    fn from(s: Subscription) -> Self {
        Self {
            patterns: s.patterns(),
            id: s.id,
            created_ms: s.created_ms,
        }
    }
}

impl Webhooks {
    /// Runs the feed until `stop` turns true (every process runs it; one holds the lease).
    pub async fn run_feed(
        self,
        store: Store,
        mut progress: watch::Receiver<StreamPosition>,
        mut stop: watch::Receiver<bool>,
    ) {
        let holder = uuid::Uuid::new_v4().to_string();
        let mut quiet = Quiet::default();
        loop {
            if *stop.borrow() {
                break;
            }
            let busy = match self.feed_round(&store, &holder).await {
                Ok(n) => n > 0,
                Err(e) => {
                    quiet.warn("webhook feed failed; retrying", &e);
                    false
                }
            };
            if busy {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                changed = progress.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(POLL).await;
                    }
                }
                _ = stop.changed() => {}
            }
        }
        if let Err(e) = checkpoint::release(&store, WEBHOOK_FEED, NAME, &holder).await {
            tracing::warn!(error = %e, "could not release the webhook feed lease");
        }
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.settings.feed_lease.as_millis()).unwrap_or(i64::MAX / 2)
    }

    /// One round: take or renew the lease, then one batch of events and one of alert changes.
    /// Answers how many sources were read (0: idle or standing by).
    pub async fn feed_round(&self, store: &Store, holder: &str) -> Result<usize, StoreError> {
        let now = now_ms();
        let Some(mut at) = checkpoint::acquire(
            store,
            WEBHOOK_FEED,
            NAME,
            holder,
            now,
            now + self.lease_ms(),
        )
        .await?
        else {
            return Ok(0);
        };
        // The head before the subscriptions: an event recorded after a subscription is listed
        // lies beyond it.
        let head = store.stream_head().await?.unwrap_or_default();
        let targets: Vec<Target> = table::list(store, true)
            .await?
            .into_iter()
            .map(Target::from)
            .collect();
        if !at.saved || targets.is_empty() {
            // First run, or nobody listens: start from the head. A first run saves even at the
            // head of an empty stream: judged by its positions alone, a feed that started on an
            // empty stream would look like a first run again later and skip every event
            // recorded since (a subscription's first messages lost).
            if !at.saved || head != at.events || at.alerts.0 < head {
                at = Checkpoint {
                    events: head,
                    alerts: (head.max(at.alerts.0), String::new()),
                    saved: true,
                };
                self.save(store, holder, &at).await?;
            }
            return Ok(0);
        }
        let events = store.read_stream(at.events, BATCH).await?;
        let mut queued = false;
        for event in &events {
            queued |= self.queue_event(store, &targets, event).await?;
        }
        if let Some(last) = events.last() {
            at.events = last.position;
        }
        let changes = checkpoint::alert_changes_after(store, &at.alerts, ALERT_BATCH).await?;
        for row in &changes {
            let kind = kinds::alert_kind(&row.rule);
            let source = subjects::alert_change_id(&row.id, row.updated.tx, row.updated.pos);
            let timestamp = chrono::DateTime::from_timestamp_millis(row.last_seen_ms)
                .unwrap_or_else(chrono::Utc::now);
            let text = body(&kind, timestamp, payload::alert_body(row));
            for t in targets
                .iter()
                .filter(|t| kinds::matches(&t.patterns, &kind))
            {
                let id = sign::message_id(&t.id, &source);
                table::enqueue(store, &id, &t.id, &kind, &text, now_ms()).await?;
                queued = true;
            }
            at.alerts = (row.updated, row.id.clone());
        }
        let read = events.len() + changes.len();
        if read > 0 {
            self.save(store, holder, &at).await?;
        }
        if queued {
            self.wake();
        }
        Ok(read)
    }

    async fn queue_event(
        &self,
        store: &Store,
        targets: &[Target],
        event: &StoredEvent,
    ) -> Result<bool, StoreError> {
        let Some(kind) = kinds::event_kind(&event.aggregate_type, &event.event_type) else {
            return Ok(false);
        };
        let recorded_ms = event.recorded_at.map(|t| t.timestamp_millis());
        let mut text = None;
        let mut queued = false;
        for t in targets.iter().filter(|t| {
            kinds::matches(&t.patterns, &kind) && recorded_ms.is_none_or(|ms| ms >= t.created_ms)
        }) {
            let text = text.get_or_insert_with(|| {
                body(
                    &kind,
                    event.recorded_at.unwrap_or_else(chrono::Utc::now),
                    payload::event_body(event),
                )
            });
            let source =
                subjects::event_id(&event.aggregate_type, &event.aggregate_id, event.sequence);
            let id = sign::message_id(&t.id, &source);
            table::enqueue(store, &id, &t.id, &kind, text.as_str(), now_ms()).await?;
            queued = true;
        }
        Ok(queued)
    }

    async fn save(&self, store: &Store, holder: &str, at: &Checkpoint) -> Result<(), StoreError> {
        let now = now_ms();
        // A lost lease is no error: the next round stands by.
        checkpoint::save(
            store,
            WEBHOOK_FEED,
            NAME,
            holder,
            at,
            now,
            now + self.lease_ms(),
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::webhooks::WebhookSettings;

    /// The embedded-store defect of issue #22: a feed whose first round met an empty stream
    /// saved nothing, so a later round, with a subscription and its first event already
    /// recorded, took itself for a first run and skipped to the head past that event.
    #[tokio::test]
    async fn test_a_feed_started_on_an_empty_stream_remembers_it_started() {
        let dir =
            std::env::temp_dir().join(format!("gatehouse-feed-{}", uuid::Uuid::new_v4().simple()));
        let store = Store::open_embedded(&dir).await.unwrap();
        store.migrate().await.unwrap();
        let hooks = Webhooks::new(
            &store,
            Arc::new(gatehouse_store::CommitSignal::new()),
            WebhookSettings::default(),
        );
        assert_eq!(hooks.feed_round(&store, "holder").await.unwrap(), 0);
        let at = checkpoint::read(&store, WEBHOOK_FEED, NAME)
            .await
            .unwrap()
            .expect("the feed's row exists after its first round");
        assert!(at.saved, "the first round is remembered: {at:?}");
        assert_eq!(at.events, StreamPosition::default());
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
