//! The event stream published to NATS JetStream (`GATEHOUSE_NATS_URL`).
//!
//! A checkpointed consumer of the global stream, like the projections, that publishes every event
//! to `<prefix>.events.<aggregate>.<event_type>` and every change of the alerts read model to
//! `<prefix>.alerts.<rule>` ([`subjects`]), with personal data sealed ([`payload`]).
//!
//! - **Exactly once after deduplication.** Each message's `Nats-Msg-Id` is the event's id (or the
//!   alert change's), and the checkpoint moves only past messages JetStream acknowledged, in
//!   stream order: after a crash, at most the unacknowledged tail is sent again, and JetStream
//!   drops what it already stored within the stream's duplicate window.
//! - **Order per aggregate.** Messages are sent in stream order in waves: a wave holds at most one
//!   event of each aggregate, and the next wave is sent only once every message of the current
//!   one is acknowledged. A failed message stops the batch; what follows it is sent again (as a
//!   duplicate where it was stored), so an aggregate's next event is never stored before it.
//! - **One publisher at a time.** Processes share the checkpoint row and its lease
//!   ([`checkpoint`]); the others stand by and take over when the lease lapses (at once when
//!   the publisher shuts down cleanly).
//! - **NATS down.** Nothing waits on NATS but this task: commands go on, the lag grows, the
//!   publisher retries with backoff (1 s doubling to 30 s) and logs at most every 10 s.
pub mod checkpoint;
pub mod payload;
pub mod subjects;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage as Publish};
use gatehouse_store::{Store, StoreError, StoredEvent, StreamPosition};
use tokio::sync::watch;

use checkpoint::Checkpoint;

/// Events read from the stream per batch (one checkpoint write each). A wave's acknowledgements
/// are awaited together, so this stays below the 5,000 that async-nats lets be pending at once.
const BATCH: i64 = 500;

/// Alert changes read per batch.
const ALERT_BATCH: i64 = 200;

/// How often an idle publisher looks for new events, and a standby for a lapsed lease.
const POLL: Duration = Duration::from_millis(500);

/// Longest pause between two tries while NATS cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Least time between two log lines about NATS being unreachable.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// How the stream is published.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// NATS server URL (may carry credentials: never logged).
    pub url: String,
    /// JetStream stream name.
    pub stream: String,
    /// First subject token(s).
    pub prefix: String,
    /// Duplicate window of a stream Gatehouse creates.
    pub duplicate_window: Duration,
    /// Publisher lease.
    pub lease: Duration,
}

impl NatsSettings {
    /// The checkpoint row's name: one per stream.
    pub fn checkpoint_name(&self) -> String {
        format!("nats:{}", self.stream)
    }
}

/// The publisher's counters, read by `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    events: AtomicU64,
    alerts: AtomicU64,
    failures: AtomicU64,
    active: AtomicBool,
}

/// The NATS publisher of one server process: its settings and counters. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NatsPublisher {
    settings: Arc<NatsSettings>,
    counters: Arc<Counters>,
}

/// Why a round of publishing stopped.
#[derive(Debug, thiserror::Error)]
enum PublishFailure {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("NATS: {0}")]
    Nats(String),
    #[error("another process holds the publisher lease")]
    LeaseLost,
}

/// A connection to NATS with the stream known to exist.
struct Connected {
    js: jetstream::Context,
}

/// Logs a repeated failure at most every [`LOG_EVERY`], saying how many were not logged.
#[derive(Default)]
pub(crate) struct Quiet {
    last: Option<Instant>,
    skipped: u64,
}

impl Quiet {
    pub(crate) fn warn(&mut self, what: &str, error: &dyn std::fmt::Display) {
        if self.last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            self.skipped += 1;
            return;
        }
        tracing::warn!(error = %error, repeated = self.skipped, "{what}");
        self.last = Some(Instant::now());
        self.skipped = 0;
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl NatsPublisher {
    /// A publisher with `settings` (not running until [`NatsPublisher::run`]).
    pub fn new(settings: NatsSettings) -> Self {
        Self {
            settings: Arc::new(settings),
            counters: Arc::default(),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &NatsSettings {
        &self.settings
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX / 2)
    }

    /// Runs until `stop` turns true: stands by while another process publishes, publishes
    /// while this one holds the lease. `progress` (the projections runner's) wakes it when
    /// events were committed. Never returns an error: every failure is logged and retried.
    pub async fn run(
        self,
        store: Store,
        mut progress: watch::Receiver<StreamPosition>,
        mut stop: watch::Receiver<bool>,
    ) {
        let holder = uuid::Uuid::new_v4().to_string();
        let name = self.settings.checkpoint_name();
        let mut conn: Option<Connected> = None;
        let mut quiet = Quiet::default();
        let mut backoff = Duration::from_secs(1);
        let mut leading = false;
        loop {
            if *stop.borrow() {
                break;
            }
            let pause = match self.round(&store, &name, &holder, &mut conn).await {
                Ok(Some(published)) => {
                    if !leading {
                        tracing::info!(stream = %self.settings.stream, "publishing events to NATS JetStream");
                        leading = true;
                    }
                    backoff = Duration::from_secs(1);
                    // Idle: wait for new events; else go on at once.
                    (published == 0).then_some(POLL)
                }
                Ok(None) => {
                    // Standing by: another process publishes.
                    conn = None;
                    leading = false;
                    Some(POLL)
                }
                Err(PublishFailure::LeaseLost) => {
                    tracing::info!("NATS publisher lease taken over by another process");
                    conn = None;
                    leading = false;
                    Some(POLL)
                }
                Err(e) => {
                    if matches!(e, PublishFailure::Nats(_)) {
                        self.counters.failures.fetch_add(1, Ordering::Relaxed);
                        // A fresh connection and stream check on the next try.
                        conn = None;
                    }
                    quiet.warn("event stream publishing to NATS failed; retrying", &e);
                    let pause = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    Some(pause)
                }
            };
            self.counters.active.store(leading, Ordering::Relaxed);
            if let Some(pause) = pause {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    changed = progress.changed(), if pause == POLL => {
                        if changed.is_err() {
                            // The runner is gone (shutting down): poll on.
                            tokio::time::sleep(pause).await;
                        }
                    }
                    _ = stop.changed() => {}
                }
            }
        }
        self.counters.active.store(false, Ordering::Relaxed);
        if let Err(e) = checkpoint::release(&store, checkpoint::PUBLISHERS, &name, &holder).await {
            tracing::warn!(error = %e, "could not release the NATS publisher lease");
        }
    }

    /// One round: take or renew the lease, connect if needed, publish one batch of events and
    /// one of alert changes. `None`: another process holds the lease; else the messages
    /// published.
    async fn round(
        &self,
        store: &Store,
        name: &str,
        holder: &str,
        conn: &mut Option<Connected>,
    ) -> Result<Option<usize>, PublishFailure> {
        let now = now_ms();
        let Some(mut at) = checkpoint::acquire(
            store,
            checkpoint::PUBLISHERS,
            name,
            holder,
            now,
            now + self.lease_ms(),
        )
        .await?
        else {
            return Ok(None);
        };
        let connected = match conn {
            Some(c) => c,
            None => conn.insert(self.connect().await?),
        };
        let events = store.read_stream(at.events, BATCH).await?;
        let (sent, failure) = self.publish_events(&connected.js, &events).await;
        if let Some(last) = sent.checked_sub(1).and_then(|i| events.get(i)) {
            at.events = last.position;
            self.save(store, name, holder, &at).await?;
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
        let changes = checkpoint::alert_changes_after(store, &at.alerts, ALERT_BATCH).await?;
        let mut alerts = 0;
        for row in &changes {
            let body = serde_json::to_vec(&payload::alert_body(row)).unwrap_or_default();
            let ack = self
                .send(
                    &connected.js,
                    subjects::alert_subject(&self.settings.prefix, &row.rule),
                    subjects::alert_change_id(&row.id, row.updated.tx, row.updated.pos),
                    body,
                )
                .await;
            match ack {
                Ok(()) => {
                    alerts += 1;
                    at.alerts = (row.updated, row.id.clone());
                }
                Err(e) => {
                    if alerts > 0 {
                        self.save(store, name, holder, &at).await?;
                    }
                    self.counters
                        .alerts
                        .fetch_add(alerts as u64, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        if alerts > 0 {
            self.counters
                .alerts
                .fetch_add(alerts as u64, Ordering::Relaxed);
            self.save(store, name, holder, &at).await?;
        }
        Ok(Some(sent + alerts))
    }

    async fn save(
        &self,
        store: &Store,
        name: &str,
        holder: &str,
        at: &Checkpoint,
    ) -> Result<(), PublishFailure> {
        let now = now_ms();
        if checkpoint::save(
            store,
            checkpoint::PUBLISHERS,
            name,
            holder,
            at,
            now,
            now + self.lease_ms(),
        )
        .await?
        {
            Ok(())
        } else {
            Err(PublishFailure::LeaseLost)
        }
    }

    /// Connects and makes sure the stream exists (created with subjects `<prefix>.>` when not).
    async fn connect(&self) -> Result<Connected, PublishFailure> {
        let nats = |e: &dyn std::fmt::Display| PublishFailure::Nats(e.to_string());
        let client = async_nats::ConnectOptions::new()
            .name("gatehouse")
            .connection_timeout(Duration::from_secs(5))
            .connect(self.settings.url.as_str())
            .await
            .map_err(|e| nats(&e))?;
        let js = jetstream::new(client);
        js.get_or_create_stream(jetstream::stream::Config {
            name: self.settings.stream.clone(),
            subjects: vec![subjects::stream_subjects(&self.settings.prefix)],
            duplicate_window: self.settings.duplicate_window,
            storage: jetstream::stream::StorageType::File,
            description: Some("Gatehouse events and alert changes".into()),
            ..Default::default()
        })
        .await
        .map_err(|e| nats(&e))?;
        Ok(Connected { js })
    }

    /// Publishes `events` in order (waves of distinct aggregates, see the module docs). Answers
    /// how many of them, from the first, JetStream acknowledged, and why it stopped short.
    async fn publish_events(
        &self,
        js: &jetstream::Context,
        events: &[StoredEvent],
    ) -> (usize, Option<PublishFailure>) {
        let mut done = 0;
        while done < events.len() {
            let mut aggregates: HashSet<(&str, &str)> = HashSet::new();
            let wave: Vec<&StoredEvent> = events[done..]
                .iter()
                .take_while(|e| {
                    aggregates.insert((e.aggregate_type.as_str(), e.aggregate_id.as_str()))
                })
                .collect();
            let mut acks = Vec::with_capacity(wave.len());
            let mut failure = None;
            for event in &wave {
                let body = serde_json::to_vec(&payload::event_body(event)).unwrap_or_default();
                let publish = Publish::build()
                    .payload(body.into())
                    .message_id(subjects::event_id(
                        &event.aggregate_type,
                        &event.aggregate_id,
                        event.sequence,
                    ))
                    .expected_stream(&self.settings.stream);
                let subject = subjects::event_subject(
                    &self.settings.prefix,
                    &event.aggregate_type,
                    &event.event_type,
                );
                match js.send_publish(subject, publish).await {
                    Ok(ack) => acks.push(ack),
                    Err(e) => {
                        failure = Some(PublishFailure::Nats(e.to_string()));
                        break;
                    }
                }
            }
            let answers = futures::future::join_all(
                acks.into_iter().map(std::future::IntoFuture::into_future),
            )
            .await;
            let acked = answers.iter().take_while(|a| a.is_ok()).count();
            self.counters
                .events
                .fetch_add(acked as u64, Ordering::Relaxed);
            done += acked;
            if let Some(Err(e)) = answers.into_iter().find(Result::is_err) {
                failure = Some(PublishFailure::Nats(e.to_string()));
            }
            if failure.is_some() {
                return (done, failure);
            }
        }
        (done, None)
    }

    /// Publishes one message and waits for its acknowledgement.
    async fn send(
        &self,
        js: &jetstream::Context,
        subject: String,
        id: String,
        body: Vec<u8>,
    ) -> Result<(), PublishFailure> {
        let publish = Publish::build()
            .payload(body.into())
            .message_id(id)
            .expected_stream(&self.settings.stream);
        let ack = js
            .send_publish(subject, publish)
            .await
            .map_err(|e| PublishFailure::Nats(e.to_string()))?;
        ack.await
            .map(|_| ())
            .map_err(|e| PublishFailure::Nats(e.to_string()))
    }

    /// Appends the publisher's metrics: messages published by this process, failures, whether
    /// it is the publishing process, and how far the published stream lags the event stream
    /// (events, and the age of the oldest event not yet published), as the shared checkpoint
    /// says whichever process publishes.
    pub async fn render_metrics(&self, store: &Store, text: &mut String) -> Result<(), StoreError> {
        use std::fmt::Write as _;
        let c = &self.counters;
        let at = checkpoint::read(
            store,
            checkpoint::PUBLISHERS,
            &self.settings.checkpoint_name(),
        )
        .await?
        .unwrap_or_default();
        let lag_events = store.count_after(at.events).await?;
        let lag_seconds = match store.read_stream(at.events, 1).await?.first() {
            Some(oldest) => oldest
                .recorded_at
                .map(|t| (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0)
                .unwrap_or(0.0),
            None => 0.0,
        };
        let _ = write!(
            text,
            "# HELP gatehouse_nats_published_total Messages this process published to NATS JetStream and had acknowledged, by kind (event, alert).\n\
             # TYPE gatehouse_nats_published_total counter\n\
             gatehouse_nats_published_total{{kind=\"event\"}} {}\n\
             gatehouse_nats_published_total{{kind=\"alert\"}} {}\n\
             # HELP gatehouse_nats_publish_failures_total Rounds of publishing to NATS that failed (unreachable, no acknowledgement, stream refused).\n\
             # TYPE gatehouse_nats_publish_failures_total counter\n\
             gatehouse_nats_publish_failures_total {}\n\
             # HELP gatehouse_nats_publisher_active Whether this process is the one publishing (1) or stands by (0).\n\
             # TYPE gatehouse_nats_publisher_active gauge\n\
             gatehouse_nats_publisher_active {}\n\
             # HELP gatehouse_nats_publisher_lag_events Events in the stream not yet published to NATS.\n\
             # TYPE gatehouse_nats_publisher_lag_events gauge\n\
             gatehouse_nats_publisher_lag_events {lag_events}\n\
             # HELP gatehouse_nats_publisher_lag_seconds Age of the oldest event not yet published to NATS (0 when none).\n\
             # TYPE gatehouse_nats_publisher_lag_seconds gauge\n\
             gatehouse_nats_publisher_lag_seconds {lag_seconds:.3}\n",
            c.events.load(Ordering::Relaxed),
            c.alerts.load(Ordering::Relaxed),
            c.failures.load(Ordering::Relaxed),
            u8::from(c.active.load(Ordering::Relaxed)),
        );
        Ok(())
    }
}
