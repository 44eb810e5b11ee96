//! The delivery worker: leases due outbox rows, signs and sends them, records each outcome as an
//! event on the subscription, and retries failures with exponential backoff and jitter.
//!
//! Order of a delivery: lease the row → send → record the outcome (an event) → settle the row.
//! A process that dies after sending and before recording leaves the row leased and pending:
//! when the lease lapses any process sends it again, with the same `webhook-id`.
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gatehouse_domain::webhook::{AttemptOutcome, Webhook, WebhookCommand};
use gatehouse_store::{Store, StoreError};
use tokio::sync::watch;

use super::table::{self, Message};
use super::{guard, sign, Webhooks};
use crate::keys::Keys;
use crate::nats::Quiet;
use crate::state::AppState;

/// Messages taken per round.
const BATCH: i64 = 16;

/// Longest wait between two tries of one message.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How often the worker looks for due messages without being woken.
const POLL: Duration = Duration::from_millis(250);

/// The wait before attempt `attempt + 1`: `base · 2^(attempt-1)`, at most an hour, of which a
/// random half is taken off (jitter, so that many failing messages do not retry together).
pub fn backoff(base: Duration, attempt: u32, jitter: u64) -> Duration {
    let doubled = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let full = doubled.min(MAX_BACKOFF);
    let half = full / 2;
    let half_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(if half_ms == 0 {
        0
    } else {
        jitter % (half_ms + 1)
    })
}

fn jitter() -> u64 {
    crate::keys::random_bytes::<8>()
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// What one request came to.
enum Sent {
    Accepted(u16),
    Failed { status: Option<u16>, error: String },
    Refused(String),
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

impl Webhooks {
    /// Runs the worker until `stop` turns true.
    pub async fn run_worker(self, state: AppState, mut stop: watch::Receiver<bool>) {
        let (store, keys) = (state.background_store(), state.keys());
        let mut quiet = Quiet::default();
        loop {
            if *stop.borrow() {
                return;
            }
            match self.deliver_round(store, keys).await {
                Ok(n) if n as i64 == BATCH => continue,
                Ok(_) => {}
                Err(e) => quiet.warn("webhook delivery round failed; retrying", &e),
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// One round: every due message this process could lease, sent and recorded, at once.
    pub async fn deliver_round(&self, store: &Store, keys: &Keys) -> Result<usize, StoreError> {
        let now_ms = Utc::now().timestamp_millis();
        let lease_ms = i64::try_from(self.settings.message_lease().as_millis()).unwrap_or(60_000);
        let mut leased = Vec::new();
        for m in table::due(store, now_ms, BATCH).await? {
            if table::lease(store, &m.message_id, m.attempts, now_ms, now_ms + lease_ms).await? {
                leased.push(m);
            }
        }
        let taken = leased.len();
        let results =
            futures::future::join_all(leased.into_iter().map(|m| self.deliver_one(store, keys, m)))
                .await;
        for r in results {
            r?;
        }
        Ok(taken)
    }

    async fn deliver_one(&self, store: &Store, keys: &Keys, m: Message) -> Result<(), StoreError> {
        let now = Utc::now();
        let hook = match self.executor.load(&m.webhook_id).await {
            Ok(hook) => hook,
            Err(e) => return Err(StoreError::Corrupt(e.to_string())),
        };
        if !hook.exists || hook.deleted || !hook.enabled {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            let now_ms = now.timestamp_millis();
            return table::settle(store, &m.message_id, "dropped", m.attempts, now_ms, now_ms)
                .await;
        }
        let sent = self.send(store, keys, &hook, &m, now).await?;
        let attempt = u32::try_from(m.attempts + 1).unwrap_or(u32::MAX);
        let done = Utc::now();
        let (outcome, status) = match sent {
            Sent::Accepted(status) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                (AttemptOutcome::Accepted { status }, "delivered")
            }
            Sent::Failed { status, error } => self.failed(attempt, status, error, done),
            Sent::Refused(error) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                self.failed(attempt, None, error, done)
            }
        };
        let retry_at = match &outcome {
            AttemptOutcome::Failed { retry_at, .. } => *retry_at,
            AttemptOutcome::Accepted { .. } => None,
        };
        let policy = self.settings.disable;
        let recorded = self
            .executor
            .execute(
                &m.webhook_id,
                || WebhookCommand::RecordAttempt {
                    message_id: m.message_id.clone(),
                    kind: m.kind.clone(),
                    attempt,
                    outcome: outcome.clone(),
                    policy,
                    at: done,
                },
                crate::metadata::metadata(),
            )
            .await
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if let Some(last) = recorded.events.last() {
            table::save(
                store,
                &m.webhook_id,
                &recorded.aggregate,
                last.sequence as i64,
            )
            .await?;
            if !recorded.aggregate.enabled && hook.enabled {
                tracing::warn!(webhook = %m.webhook_id, "webhook disabled after repeated failures");
            }
        }
        let next_ms = retry_at.map_or(done.timestamp_millis(), |t| t.timestamp_millis());
        table::settle(
            store,
            &m.message_id,
            status,
            i64::from(attempt),
            next_ms,
            done.timestamp_millis(),
        )
        .await
    }

    fn failed(
        &self,
        attempt: u32,
        status: Option<u16>,
        error: String,
        now: DateTime<Utc>,
    ) -> (AttemptOutcome, &'static str) {
        let last = attempt >= self.settings.max_attempts;
        if last {
            self.counters.gave_up.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        let retry_at = (!last).then(|| {
            let wait = backoff(self.settings.retry_base, attempt, jitter());
            now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1))
        });
        (
            AttemptOutcome::Failed {
                status,
                error,
                retry_at,
            },
            if last { "failed" } else { "pending" },
        )
    }

    /// Signs and sends one message.
    async fn send(
        &self,
        store: &Store,
        keys: &Keys,
        hook: &Webhook,
        m: &Message,
        now: DateTime<Utc>,
    ) -> Result<Sent, StoreError> {
        let url = match guard::check_url(&hook.url, &self.settings.allow_http_hosts) {
            Ok(url) => url,
            Err(refused) => return Ok(Sent::Refused(refused.to_string())),
        };
        let mut secrets = Vec::new();
        for secret_id in hook.signing_secrets(now) {
            let Some(sealed) = table::secret(store, &m.webhook_id, secret_id).await? else {
                continue;
            };
            match keys.open_webhook_secret(&m.webhook_id, secret_id, &sealed) {
                Ok(bytes) => secrets.push(bytes),
                Err(e) => {
                    tracing::error!(error = %e, webhook = %m.webhook_id, "a webhook secret does not open")
                }
            }
        }
        if secrets.is_empty() {
            return Ok(Sent::Failed {
                status: None,
                error: "no signing secret".into(),
            });
        }
        let timestamp = now.timestamp();
        let signature =
            sign::signature_header(&secrets, &m.message_id, timestamp, m.body.as_bytes());
        let answer = self
            .http()
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &m.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(m.body.clone())
            .send()
            .await;
        Ok(match answer {
            Ok(r) if r.status().is_success() => Sent::Accepted(r.status().as_u16()),
            Ok(r) => {
                let status = r.status();
                let error = if status.is_redirection() {
                    format!("HTTP {} (redirects are not followed)", status.as_u16())
                } else {
                    format!("HTTP {}", status.as_u16())
                };
                Sent::Failed {
                    status: Some(status.as_u16()),
                    error,
                }
            }
            Err(e) => {
                let text = error_chain(&e);
                if text.contains("resolves to no public address") {
                    Sent::Refused(text)
                } else if e.is_timeout() {
                    Sent::Failed {
                        status: None,
                        error: format!("timed out: {text}"),
                    }
                } else {
                    Sent::Failed {
                        status: None,
                        error: text,
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_backoff_doubles_with_jitter_and_a_ceiling() {
        let base = Duration::from_secs(5);
        for attempt in 1..=4u32 {
            let full = base * (1 << (attempt - 1));
            for jitter in [0, 1, 1234, u64::MAX] {
                let wait = backoff(base, attempt, jitter);
                assert!(wait >= full / 2 && wait <= full, "{attempt} {wait:?}");
            }
        }
        assert!(backoff(base, 40, u64::MAX) <= MAX_BACKOFF);
        assert_eq!(backoff(Duration::ZERO, 3, 7), Duration::ZERO);
    }
}
