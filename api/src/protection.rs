//! Alerts feeding back into protection: sign-ins from an IP (or its /24 or /64 network) with an
//! unresolved `credential_stuffing` alert seen recently are limited to a few a minute, and the
//! decision is recorded once per alert as a `NetworkThrottled` fact on a `Protection` aggregate.
//!
//! The flagged subjects are read from the alerts read model at most every few seconds, so the
//! sign-in path costs no extra query. This stricter limiter is per process (with N processes a
//! flagged network gets up to N times `GATEHOUSE_FLAGGED_LOGINS_PER_MINUTE`); the route limits
//! of [`crate::throttle`], which apply first, are shared by every process on PostgreSQL or Redis.
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use chrono::Utc;
use gatehouse_domain::protection::{Protection as ProtectionAggregate, ProtectionCommand};
use gatehouse_projections::alerts::{network, query, Rule};
use gatehouse_store::Store;
use gatehouse_store::{AggregateStore, CommandExecutor, ExecuteError};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::error::ApiError;

/// How often the flagged subjects are re-read.
const REFRESH: Duration = Duration::from_secs(2);

/// Settings of the feedback.
#[derive(Debug, Clone, Copy)]
pub struct ProtectionSettings {
    /// Sign-ins per minute from a flagged subject (0 turns the feedback off).
    pub per_minute: u32,
    /// How long after its last evidence an alert keeps its subject flagged.
    pub flag_for: chrono::Duration,
}

struct Flagged {
    read_at: Option<Instant>,
    /// Subject → alert id.
    subjects: HashMap<String, String>,
}

/// The stricter sign-in limiter for flagged networks.
pub struct Protection {
    settings: ProtectionSettings,
    flagged: tokio::sync::Mutex<Flagged>,
    limiter: RateLimiter<String, HashMapStateStore<String>, DefaultClock>,
    clock: DefaultClock,
    decisions: CommandExecutor<ProtectionAggregate>,
    recorded: std::sync::Mutex<HashSet<String>>,
}

impl Protection {
    /// The feedback over `store`.
    pub fn new(
        store: &Store,
        committed: std::sync::Arc<gatehouse_store::CommitSignal>,
        settings: ProtectionSettings,
    ) -> Self {
        let quota = NonZeroU32::new(settings.per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            settings,
            flagged: tokio::sync::Mutex::new(Flagged {
                read_at: None,
                subjects: HashMap::new(),
            }),
            limiter: RateLimiter::hashmap(Quota::per_minute(quota)),
            clock: DefaultClock::default(),
            decisions: CommandExecutor::new(AggregateStore::new(store, Vec::new()), ())
                .with_commit_signal(committed),
            recorded: Default::default(),
        }
    }

    async fn flagged_subject(
        &self,
        store: &Store,
        ip: IpAddr,
    ) -> Result<Option<(String, String)>, ApiError> {
        let mut flagged = self.flagged.lock().await;
        if flagged.read_at.is_none_or(|t| t.elapsed() >= REFRESH) {
            let since = (Utc::now() - self.settings.flag_for).timestamp_millis();
            let rows =
                query::unresolved_subjects(store.any(), Rule::CredentialStuffing, since).await?;
            flagged.subjects = rows.into_iter().map(|a| (a.subject, a.id)).collect();
            flagged.read_at = Some(Instant::now());
        }
        let ip = ip.to_string();
        let candidates = [
            Some(format!("ip:{ip}")),
            network(&ip).map(|n| format!("net:{n}")),
        ];
        Ok(candidates.into_iter().flatten().find_map(|s| {
            flagged
                .subjects
                .get(&s)
                .map(|alert| (s.clone(), alert.clone()))
        }))
    }

    /// Admits a sign-in attempt from `ip`, or refuses it with `429 rate_limited` when its IP or
    /// network is flagged and over the stricter limit.
    pub async fn admit_login(&self, store: &Store, ip: Option<IpAddr>) -> Result<(), ApiError> {
        if self.settings.per_minute == 0 {
            return Ok(());
        }
        let Some(ip) = ip else {
            return Ok(());
        };
        let Some((subject, alert_id)) = self.flagged_subject(store, ip).await? else {
            return Ok(());
        };
        self.record(&subject, &alert_id).await;
        if let Err(not_until) = self.limiter.check_key(&subject) {
            let wait = not_until.wait_time_from(self.clock.now());
            let seconds = i64::try_from(wait.as_secs())
                .unwrap_or(i64::MAX)
                .saturating_add(1);
            return Err(ApiError::rate_limited(
                "rate_limited",
                "too many requests; wait before trying again",
                seconds,
            ));
        }
        Ok(())
    }

    /// Records the decision once per alert (and per process; the aggregate dedupes across).
    async fn record(&self, subject: &str, alert_id: &str) {
        let first = self
            .recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(alert_id.to_string());
        if !first {
            return;
        }
        let at = Utc::now();
        let until = at + self.settings.flag_for;
        let result = self
            .decisions
            .execute(
                &format!("protection:{subject}"),
                || ProtectionCommand::ThrottleNetwork {
                    subject: subject.to_string(),
                    alert_id: alert_id.to_string(),
                    per_minute: self.settings.per_minute,
                    until,
                    at,
                },
                crate::metadata::metadata(),
            )
            .await;
        match result {
            Ok(_) | Err(ExecuteError::Refused(_)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not record a throttling decision");
                self.recorded
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(alert_id);
            }
        }
    }

    /// Records the refusal windows the rate limiter closed (one fact per source, route and
    /// window of this process).
    pub async fn record_refusals(&self, closed: Vec<crate::throttle::ClosedWindow>) {
        for window in closed {
            let at = Utc::now();
            let result = self
                .decisions
                .execute(
                    &format!("protection:ip:{}", window.source),
                    || ProtectionCommand::CloseThrottleWindow {
                        source: window.source.clone(),
                        route: window.route.label().to_string(),
                        window_start: window.window_start,
                        refused: window.refused,
                        identifiers: window.identifiers.clone(),
                        at,
                    },
                    crate::metadata::metadata(),
                )
                .await;
            match result {
                Ok(_) | Err(ExecuteError::Refused(_)) => {}
                Err(e) => tracing::warn!(error = %e, "could not record a rate limit window"),
            }
        }
    }

    /// Drops limiter state of subjects back to full allowance.
    pub fn housekeep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}
