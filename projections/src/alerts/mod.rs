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

use std::net::IpAddr;

use gatehouse_domain::staff::{StaffEvent, StaffFact};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use crate::runner::{BoxFuture, Projection};
use crate::store::{StoreError, StoredEvent};
pub use policy::{AlertPolicy, Rule};

/// The alerts projection.
pub struct AlertsProjection {
    policy: AlertPolicy,
    version: String,
}

/// Signals older than every window are pruned at stream positions that are multiples of this.
const PRUNE_EVERY: i64 = 1024;

/// The projection's checkpoint name.
pub const NAME: &str = "alerts_v1";

impl AlertsProjection {
    /// The projection under `policy`.
    pub fn new(policy: AlertPolicy) -> Self {
        let version = policy.version();
        Self { policy, version }
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

    fn apply<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        event: &'a StoredEvent,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            match event.aggregate_type.as_str() {
                "Account" => {
                    if let Some(e) = crate::account_event(event)? {
                        detect::account_event(self, conn, event, &e).await?;
                        // Every so often (a function of the stream alone, so rebuilds prune at the
                        // same points), forget signals older than any window looks back.
                        if event.position.pos % PRUNE_EVERY == 0 {
                            detect::prune(
                                conn,
                                crate::time::to_ms(e.at) - self.policy.horizon_ms(),
                            )
                            .await?;
                        }
                    }
                }
                "Staff" => apply_staff(conn, event).await?,
                _ => {}
            }
            Ok(())
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
    match aggregate_id.strip_prefix("unknown-") {
        Some(lookup) => format!("identifier:{lookup}"),
        None => format!("account:{aggregate_id}"),
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

/// Raises or extends the alert of `rule` on `subject`. `current` is the event that met the rule;
/// `window` selects the evidence of a new alert (everything in the rule's window).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn raise(
    this: &AlertsProjection,
    conn: &mut AnyConnection,
    event: &StoredEvent,
    rule: Rule,
    subject: &str,
    current: Vec<Evidence>,
    window: Option<&detect::Window>,
    dedupe_ms: i64,
) -> Result<(), StoreError> {
    let Some(now) = current.iter().map(|e| e.at_ms).max() else {
        return Ok(());
    };
    let open = sqlx::query(
        "select id, last_seen_ms from alerts_v1
          where rule = $1 and subject = $2 and status <> 'resolved'
          order by first_seen_ms desc, id desc limit 1",
    )
    .bind(rule.name())
    .bind(subject)
    .fetch_optional(&mut *conn)
    .await?;
    let open = match open {
        Some(row) => {
            let id: String = row.try_get("id")?;
            let last: i64 = row.try_get("last_seen_ms")?;
            (now - last <= dedupe_ms).then_some(id)
        }
        None => None,
    };
    let (id, evidence) = match open {
        Some(id) => (id, current),
        None => {
            let mut evidence = match window {
                Some(w) => detect::window_evidence(conn, w).await?,
                None => Vec::new(),
            };
            for e in current {
                if !evidence.contains(&e) {
                    evidence.push(e);
                }
            }
            evidence.sort_by_key(|e| e.at_ms);
            let Some(first) = evidence.first() else {
                return Ok(());
            };
            let id = alert_id(rule, subject, first);
            sqlx::query(
                "insert into alerts_v1 (id, rule, severity, subject, first_seen_ms, last_seen_ms,
                        count, status, policy_version, updated_tx, updated_pos)
                 values ($1, $2, $3, $4, $5, $5, 0, 'open', $6, $7, $8)
                 on conflict (id) do nothing",
            )
            .bind(&id)
            .bind(rule.name())
            .bind(rule.severity())
            .bind(subject)
            .bind(first.at_ms)
            .bind(&this.version)
            .bind(event.position.tx)
            .bind(event.position.pos)
            .execute(&mut *conn)
            .await?;
            (id, evidence)
        }
    };
    // The count moves by the evidence actually added (a repeat is ignored), so a long-running
    // alert costs the same per event as a new one (recounting would grow with its evidence).
    let mut added: i64 = 0;
    for e in &evidence {
        let inserted = sqlx::query(
            "insert into alert_evidence_v1 (alert_id, aggregate_id, sequence, at_ms)
             values ($1, $2, $3, $4) on conflict do nothing",
        )
        .bind(&id)
        .bind(&e.aggregate_id)
        .bind(e.sequence)
        .bind(e.at_ms)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        added += i64::try_from(inserted).unwrap_or(0);
    }
    sqlx::query(
        "update alerts_v1
            set count = count + $5,
                last_seen_ms = case when last_seen_ms < $2 then $2 else last_seen_ms end,
                updated_tx = $3, updated_pos = $4
          where id = $1",
    )
    .bind(&id)
    .bind(now)
    .bind(event.position.tx)
    .bind(event.position.pos)
    .bind(added)
    .execute(&mut *conn)
    .await?;
    Ok(())
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
