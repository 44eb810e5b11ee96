//! `alerts_v1`: anomaly alerts folded from the stream, each with the events that are its evidence.
//!
//! The rules (see [`policy::Rule`]) keep their state in tables of this projection
//! (`alert_signals_v1`, `alert_known_v1`, `alert_recovery_marks_v1`), read and written inside the
//! runner's batch transaction, and use only event times, never the clock: a rebuild from zero
//! therefore equals the live read model. Alert status changes are `AlertStatusChanged` facts on
//! the `Staff` aggregate of whoever made them.
//!
//! An alert gathers more evidence while it is not resolved and its last evidence is within the
//! rule's window; otherwise the next detection opens a new alert.
mod detect;
pub mod policy;
pub mod query;
mod windows;
mod work;

use std::net::IpAddr;
use std::sync::Mutex;

use gatehouse_domain::staff::{StaffEvent, StaffFact};
use gatehouse_store::{StoreError, StoredEvent, StreamPosition};
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use crate::runner::{BoxFuture, Projection};
pub use policy::{AlertPolicy, Rule};
use windows::{Signal, Windows};

/// A signal kept in `alert_signals_v1` (the windows of a rebuild, or of a restart).
#[derive(sqlx::FromRow)]
struct StoredSignal {
    signal: String,
    aggregate_id: String,
    sequence: i64,
    at_ms: i64,
    ip: Option<String>,
    net: Option<String>,
}

/// The alerts projection.
pub struct AlertsProjection {
    policy: AlertPolicy,
    version: String,
    /// The signal windows as they stood after the last batch this process applied, and where
    /// that was; reloaded from `alert_signals_v1` whenever the tables stand elsewhere.
    kept: Mutex<Option<(StreamPosition, Windows)>>,
    /// Signal rows are written once, by [`Projection::finish`], instead of with every batch.
    signals_at_end: bool,
}

/// Signals older than every window are pruned at stream positions that are multiples of this.
const PRUNE_EVERY: i64 = 1024;

/// The projection's checkpoint name.
pub const NAME: &str = "alerts_v1";

impl AlertsProjection {
    /// The projection under `policy`.
    pub fn new(policy: AlertPolicy) -> Self {
        let version = policy.version();
        Self {
            policy,
            version,
            kept: Mutex::new(None),
            signals_at_end: false,
        }
    }

    /// The projection for a rebuild into fresh tables: the signal windows live in memory from
    /// the first batch to the last, and their rows are written once at the end
    /// ([`Projection::finish`]). Most signals written batch by batch are deleted by a later
    /// prune (1.6 s of 11.9 for a million events); fresh tables need no crash point between
    /// batches, since a crashed rebuild starts again from zero.
    pub fn for_rebuild(policy: AlertPolicy) -> Self {
        Self {
            signals_at_end: true,
            ..Self::new(policy)
        }
    }

    /// The windows left at `after`, or read from the table.
    async fn windows(
        &self,
        conn: &mut AnyConnection,
        after: Option<StreamPosition>,
    ) -> Result<Windows, StoreError> {
        let kept = match self.kept.lock() {
            Ok(mut kept) => kept.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let (Some((at, windows)), Some(after)) = (kept, after) {
            if at == after {
                return Ok(windows);
            }
        }
        if self.signals_at_end {
            // The table holds no signals yet: only the windows kept in memory can be trusted.
            return match after {
                Some(after) if after == StreamPosition::default() => Ok(Windows::default()),
                _ => Err(StoreError::Corrupt(
                    "alerts rebuild: signal windows lost between batches".into(),
                )),
            };
        }
        let mut windows = Windows::default();
        let rows: Vec<StoredSignal> = sqlx::query_as(
            "select signal, aggregate_id, sequence, at_ms, ip, net from alert_signals_v1
              order by at_ms",
        )
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let Some(kind) = detect::signal_kind(&row.signal) else {
                continue;
            };
            windows.add(
                kind,
                Signal {
                    at_ms: row.at_ms,
                    aggregate_id: row.aggregate_id.into(),
                    sequence: row.sequence,
                    ip: row.ip.map(Into::into),
                    net: row.net.map(Into::into),
                },
            );
        }
        Ok(windows)
    }

    /// Applies `events`; `after` is where the tables stood, when known (the windows kept from
    /// the previous batch are used only if they were left exactly there).
    async fn apply_events(
        &self,
        conn: &mut AnyConnection,
        events: &[&StoredEvent],
        after: Option<StreamPosition>,
    ) -> Result<(), StoreError> {
        let mut windows = self.windows(conn, after).await?;
        // Segments of consecutive account events, worked in memory; a status change by staff
        // (rare) is written between two segments, so a segment never reads a stale status.
        let mut segment: Vec<(&StoredEvent, &gatehouse_domain::AccountEvent)> = Vec::new();
        for event in events {
            match event.aggregate_type.as_str() {
                "Account" => {
                    if let Some(e) = crate::account_event(event)? {
                        segment.push((event, e));
                    }
                }
                "Staff" => {
                    self.segment(conn, &mut windows, &segment).await?;
                    segment.clear();
                    apply_staff(conn, event).await?;
                }
                "Protection" if event.event_type == "ThrottleWindowClosed" => {
                    self.segment(conn, &mut windows, &segment).await?;
                    segment.clear();
                    self.throttle_window(conn, &mut windows, event).await?;
                }
                "Webhook" if event.event_type == "WebhookDisabled" => {
                    self.segment(conn, &mut windows, &segment).await?;
                    segment.clear();
                    self.webhook_disabled(conn, &mut windows, event).await?;
                }
                _ => {}
            }
        }
        self.segment(conn, &mut windows, &segment).await?;
        // Kept only after success: a failed batch leaves nothing behind to be trusted.
        if let (Some(last), Some(_)) = (events.last(), after) {
            if let Ok(mut kept) = self.kept.lock() {
                *kept = Some((last.position, windows));
            }
        }
        Ok(())
    }

    /// A `ThrottleWindowClosed` fact (rare: at most one per source, route, minute and process).
    async fn throttle_window(
        &self,
        conn: &mut AnyConnection,
        windows: &mut Windows,
        event: &StoredEvent,
    ) -> Result<(), StoreError> {
        let decoded: gatehouse_domain::protection::ProtectionEvent =
            serde_json::from_value(event.payload.clone())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let gatehouse_domain::protection::ProtectionFact::ThrottleWindowClosed {
            source,
            route,
            identifiers,
            ..
        } = &decoded.fact
        else {
            return Ok(());
        };
        if source == "*" {
            return Ok(());
        }
        let mut needs = work::Needs::default();
        needs.subject(format_args!("ip:{source}"));
        if let Some(net) = network(source) {
            needs.subject(format_args!("net:{net}"));
        }
        let at_ms = crate::time::to_ms(decoded.at);
        needs.earliest_ms = Some(at_ms);
        let mut work = work::Work::load(conn, &needs, self.policy.horizon_ms()).await?;
        let mut detector = detect::Detector {
            policy: &self.policy,
            windows,
            work: &mut work,
        };
        // Only refused sign-ins are stuffing evidence, whatever a fact names.
        let identifiers: &[String] = if route == "login" { identifiers } else { &[] };
        detector.throttle_window(event, source, at_ms, identifiers);
        work.flush(conn, &self.version, !self.signals_at_end).await
    }

    /// A `WebhookDisabled` fact (rare): disabled after failures (no author) raises
    /// `webhook_disabled` on `webhook:<id>`; an admin's choice raises nothing.
    async fn webhook_disabled(
        &self,
        conn: &mut AnyConnection,
        windows: &mut Windows,
        event: &StoredEvent,
    ) -> Result<(), StoreError> {
        use gatehouse_domain::webhook::{WebhookEvent, WebhookFact};
        let decoded: WebhookEvent = serde_json::from_value(event.payload.clone())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let WebhookFact::WebhookDisabled { by: None, .. } = &decoded.fact else {
            return Ok(());
        };
        let subject = format!("webhook:{}", event.aggregate_id);
        let mut needs = work::Needs::default();
        needs.subject(format_args!("{subject}"));
        let at_ms = crate::time::to_ms(decoded.at);
        needs.earliest_ms = Some(at_ms);
        let mut work = work::Work::load(conn, &needs, self.policy.horizon_ms()).await?;
        let mut detector = detect::Detector {
            policy: &self.policy,
            windows,
            work: &mut work,
        };
        detector.webhook_disabled(event, &subject, at_ms);
        work.flush(conn, &self.version, !self.signals_at_end).await
    }

    async fn segment(
        &self,
        conn: &mut AnyConnection,
        windows: &mut Windows,
        segment: &[(&StoredEvent, &gatehouse_domain::AccountEvent)],
    ) -> Result<(), StoreError> {
        if segment.is_empty() {
            return Ok(());
        }
        let mut needs = work::Needs::default();
        for (event, e) in segment {
            detect::needs(&mut needs, event, e);
        }
        // How far before an event the first evidence of an alert it raises can lie.
        let reach_ms = self
            .policy
            .horizon_ms()
            .max(self.policy.after_recovery_window_s.saturating_mul(1000));
        let mut work = work::Work::load(conn, &needs, reach_ms).await?;
        let mut detector = detect::Detector {
            policy: &self.policy,
            windows,
            work: &mut work,
        };
        for (event, e) in segment {
            detector.account_event(event, e);
            // Every so often (a function of the stream alone, so rebuilds prune at the same
            // points), forget signals older than any window looks back.
            if event.position.pos % PRUNE_EVERY == 0 {
                detector.prune(crate::time::to_ms(e.at) - self.policy.horizon_ms());
            }
        }
        work.flush(conn, &self.version, !self.signals_at_end).await
    }
}

impl Projection for AlertsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "alerts_v1",
            "alert_evidence_v1",
            "alert_signals_v1",
            "alert_known_v1",
            "alert_recovery_marks_v1",
        ]
    }

    fn deferred_indexes(&self) -> &'static [&'static str] {
        // `alerts_v1_by_subject_any_rule` stays: the rules read alerts by subject.
        &[
            "alerts_v1_by_time",
            "alerts_v1_by_subject",
            "alerts_v1_by_update",
        ]
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        event: &'a StoredEvent,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.apply_events(conn, &[event], None).await })
    }

    fn apply_batch<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        events: &'a [&'a StoredEvent],
        after: StreamPosition,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.apply_events(conn, events, Some(after)).await })
    }

    fn finish<'a>(&'a self, conn: &'a mut AnyConnection) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if !self.signals_at_end {
                return Ok(());
            }
            let rows: Vec<work::SignalRow> = match self.kept.lock() {
                Ok(kept) => kept
                    .as_ref()
                    .map(|(_, windows)| {
                        windows
                            .all()
                            .map(|(kind, signal)| work::SignalRow {
                                kind,
                                signal: signal.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                Err(_) => {
                    return Err(StoreError::Corrupt(
                        "alerts rebuild: signal windows unreadable".into(),
                    ))
                }
            };
            work::write_signals(conn, &rows).await
        })
    }
}

/// Evidence: one event, by aggregate and sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// Aggregate id.
    pub aggregate_id: String,
    /// Sequence in it.
    pub sequence: i64,
    /// Event time.
    pub at_ms: i64,
}

async fn apply_staff(conn: &mut AnyConnection, event: &StoredEvent) -> Result<(), StoreError> {
    let e: StaffEvent = serde_json::from_value(event.payload.clone()).map_err(|e| {
        StoreError::Corrupt(format!("{} #{}: {e}", event.aggregate_id, event.sequence))
    })?;
    if let StaffFact::AlertStatusChanged {
        alert_id,
        status,
        note,
    } = e.fact
    {
        sqlx::query(
            "update alerts_v1 set status = $2, status_note = $3, status_by = $4,
                    updated_tx = $5, updated_pos = $6
              where id = $1",
        )
        .bind(alert_id)
        .bind(status.as_str())
        .bind(note)
        .bind(&event.aggregate_id)
        .bind(event.position.tx)
        .bind(event.position.pos)
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// The network an address belongs to for the stuffing rule: `/24` for IPv4, `/64` for IPv6.
pub fn network(ip: &str) -> Option<String> {
    match ip.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            Some(format!("{a}.{b}.{c}.0/24"))
        }
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            Some(format!("{}/64", std::net::Ipv6Addr::from(segments)))
        }
    }
}

/// The subject of an account-scoped alert: `account:<id>`, or `identifier:<lookup hash>` for the
/// stand-in aggregate of an identifier that matches no account.
pub fn account_subject(aggregate_id: &str) -> String {
    AccountSubject(aggregate_id).to_string()
}

/// [`account_subject`] as it is written, for formatting into a buffer of one's own.
pub struct AccountSubject<'a>(pub &'a str);

impl std::fmt::Display for AccountSubject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.strip_prefix("unknown-") {
            Some(lookup) => write!(f, "identifier:{lookup}"),
            None => write!(f, "account:{}", self.0),
        }
    }
}

/// A deterministic alert id (a UUID-shaped digest of the rule, subject and first evidence), so a
/// rebuild gives every alert the id it had live.
pub fn alert_id(rule: Rule, subject: &str, first: &Evidence) -> String {
    let digest = Sha256::digest(
        format!(
            "{}\n{subject}\n{}\n{}",
            rule.name(),
            first.aggregate_id,
            first.sequence
        )
        .as_bytes(),
    );
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_networks_are_slash_24_and_slash_64() {
        assert_eq!(network("203.0.113.77").as_deref(), Some("203.0.113.0/24"));
        assert_eq!(
            network("2001:db8:1:2:3:4:5:6").as_deref(),
            Some("2001:db8:1:2::/64")
        );
        assert_eq!(network("not an ip"), None);
    }

    #[test]
    fn test_subjects_and_ids() {
        assert_eq!(account_subject("unknown-abc"), "identifier:abc");
        assert_eq!(account_subject("1234"), "account:1234");
        let e = Evidence {
            aggregate_id: "a".into(),
            sequence: 3,
            at_ms: 1,
        };
        let id = alert_id(Rule::BruteForce, "account:a", &e);
        assert_eq!(id, alert_id(Rule::BruteForce, "account:a", &e));
        assert_ne!(id, alert_id(Rule::BruteForce, "account:b", &e));
        assert!(uuid::Uuid::parse_str(&id).is_ok());
    }
}
