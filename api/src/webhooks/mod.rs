//! Webhooks: signed HTTP deliveries of events and alert changes to the endpoints admins
//! subscribe (`/v1/admin/webhooks`).
//!
//! - **Subscriptions** are `Webhook` aggregates (`gatehouse_domain::webhook`): every change is
//!   a fact with its author, and also recorded on the admin's staff record. Their signing
//!   secrets are sealed in `webhook_secrets`, never in an event ([`sign`]).
//! - **The feed** ([`feed`]) is a checkpointed consumer of the global stream and of the alerts
//!   read model's changes, like the NATS publisher, under a lease (one process at a time): it
//!   writes one outbox row per matching (subscription, event or alert change), keyed by a
//!   stable message id, then moves its checkpoint. After a crash it reads the tail again and the
//!   rows already written are left as they are: nothing is lost, nothing is queued twice.
//! - **The worker** ([`worker`]) runs in every process: it leases due rows, signs and sends
//!   them (Standard Webhooks headers), records every outcome as an event on the subscription,
//!   and retries failures with exponential backoff and jitter. A message whose send is never
//!   recorded (the process died) is sent again when its lease lapses, with the same
//!   `webhook-id`, so the receiver can deduplicate.
//! - **The SSRF guard** ([`guard`]) checks a URL when it is subscribed and the resolved address
//!   of every connection.
pub mod feed;
pub mod guard;
pub mod kinds;
pub mod sign;
pub mod table;
pub mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_domain::webhook::{DisablePolicy, Webhook};
use gatehouse_store::{AggregateStore, CommandExecutor, Store, StoreError};

use guard::AllowList;

/// How webhooks are delivered (`GATEHOUSE_WEBHOOK_*`).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Hosts that may use http and any address.
    pub allow_http_hosts: AllowList,
    /// How long a rotated secret keeps signing.
    pub rotation_grace: chrono::Duration,
    /// When a failing endpoint is disabled.
    pub disable: DisablePolicy,
    /// Attempts per message before it is given up.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled at each further one (up to an hour), with jitter.
    pub retry_base: Duration,
    /// Longest a request may take.
    pub timeout: Duration,
    /// Lease of the feed.
    pub feed_lease: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_http_hosts: AllowList::default(),
            rotation_grace: chrono::Duration::hours(24),
            disable: DisablePolicy {
                attempts: 20,
                duration: chrono::Duration::hours(24),
            },
            max_attempts: 12,
            retry_base: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            feed_lease: Duration::from_secs(15),
        }
    }
}

impl WebhookSettings {
    /// How long a worker holds a message: longer than any request may take.
    pub fn message_lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(5)
    }
}

/// Counters read by `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    gave_up: AtomicU64,
    dropped: AtomicU64,
    refused: AtomicU64,
}

/// The webhooks of one server process: settings, the subscriptions' command executor, the
/// HTTP client and the counters. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    settings: Arc<WebhookSettings>,
    executor: Arc<CommandExecutor<Webhook>>,
    client: Arc<std::sync::OnceLock<reqwest::Client>>,
    counters: Arc<Counters>,
    wake: Arc<tokio::sync::Notify>,
}

/// Builds the delivery client: the guarded resolver, no redirects, no proxy, timeouts.
fn client(settings: &WebhookSettings) -> reqwest::Client {
    // rustls needs the process's crypto provider (idempotent).
    crate::install_tls_provider();
    let build = reqwest::Client::builder()
        .dns_resolver(guard::GuardedResolver::new(
            settings.allow_http_hosts.clone(),
        ))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
        .pool_max_idle_per_host(2)
        .user_agent(concat!("Gatehouse-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build();
    match build {
        Ok(client) => client,
        Err(e) => {
            // Only a broken TLS setup fails here; deliveries then fail and are recorded.
            tracing::error!(error = %e, "could not build the webhook HTTP client");
            reqwest::Client::new()
        }
    }
}

impl Webhooks {
    /// Webhooks over `store`, waking the projections runner after each commit.
    pub fn new(
        store: &Store,
        committed: Arc<gatehouse_store::CommitSignal>,
        settings: WebhookSettings,
    ) -> Self {
        let executor = CommandExecutor::new(AggregateStore::new(store, Vec::new()), ())
            .with_commit_signal(committed);
        Self {
            client: Arc::default(),
            settings: Arc::new(settings),
            executor: Arc::new(executor),
            counters: Arc::default(),
            wake: Arc::default(),
        }
    }

    /// The same webhooks with other settings (and a client built for them).
    pub fn with_settings(&self, settings: WebhookSettings) -> Self {
        Self {
            client: Arc::default(),
            settings: Arc::new(settings),
            ..self.clone()
        }
    }

    /// The delivery client, built on first use.
    pub(crate) fn http(&self) -> &reqwest::Client {
        self.client.get_or_init(|| client(&self.settings))
    }

    /// Settings.
    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }

    /// Runs `Webhook` commands.
    pub fn executor(&self) -> &CommandExecutor<Webhook> {
        &self.executor
    }

    /// Wakes the worker (new outbox rows).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Appends the webhook metrics: attempts by outcome (this process), subscriptions disabled,
    /// and the lag: events not yet turned into outbox rows, messages pending, and the age of the
    /// oldest pending message.
    pub async fn render_metrics(&self, store: &Store, text: &mut String) -> Result<(), StoreError> {
        use std::fmt::Write as _;
        let c = &self.counters;
        let at =
            crate::nats::checkpoint::read(store, crate::nats::checkpoint::WEBHOOK_FEED, feed::NAME)
                .await?
                .unwrap_or_default();
        let feed_lag = store.count_after(at.events).await?;
        let (pending, oldest) = table::pending(store).await?;
        let lag_seconds = oldest
            .map(|ms| (chrono::Utc::now().timestamp_millis() - ms).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        let disabled = table::count_disabled(store).await?;
        let _ = write!(
            text,
            "# HELP gatehouse_webhook_deliveries_total Webhook delivery attempts made by this process, by outcome (delivered, failed: retried later, gave_up: last attempt failed, dropped: subscription deleted or disabled before sending, refused: address refused by the SSRF guard).\n\
             # TYPE gatehouse_webhook_deliveries_total counter\n\
             gatehouse_webhook_deliveries_total{{outcome=\"delivered\"}} {}\n\
             gatehouse_webhook_deliveries_total{{outcome=\"failed\"}} {}\n\
             gatehouse_webhook_deliveries_total{{outcome=\"gave_up\"}} {}\n\
             gatehouse_webhook_deliveries_total{{outcome=\"dropped\"}} {}\n\
             gatehouse_webhook_deliveries_total{{outcome=\"refused\"}} {}\n\
             # HELP gatehouse_webhook_subscriptions_disabled Webhook subscriptions disabled (by an admin or after failures), not deleted.\n\
             # TYPE gatehouse_webhook_subscriptions_disabled gauge\n\
             gatehouse_webhook_subscriptions_disabled {disabled}\n\
             # HELP gatehouse_webhook_feed_lag_events Events in the stream not yet matched against the webhook subscriptions.\n\
             # TYPE gatehouse_webhook_feed_lag_events gauge\n\
             gatehouse_webhook_feed_lag_events {feed_lag}\n\
             # HELP gatehouse_webhook_pending_messages Webhook messages waiting for a (first or further) attempt.\n\
             # TYPE gatehouse_webhook_pending_messages gauge\n\
             gatehouse_webhook_pending_messages {pending}\n\
             # HELP gatehouse_webhook_lag_seconds Age of the oldest webhook message not yet delivered nor given up (0 when none).\n\
             # TYPE gatehouse_webhook_lag_seconds gauge\n\
             gatehouse_webhook_lag_seconds {lag_seconds:.3}\n",
            c.delivered.load(Ordering::Relaxed),
            c.failed.load(Ordering::Relaxed),
            c.gave_up.load(Ordering::Relaxed),
            c.dropped.load(Ordering::Relaxed),
            c.refused.load(Ordering::Relaxed),
        );
        Ok(())
    }
}
