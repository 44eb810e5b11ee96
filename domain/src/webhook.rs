//! Webhook subscriptions and their deliveries, recorded as facts: one `Webhook` aggregate per
//! subscription.
//!
//! Its events are the subscription's life (subscribed by an admin, secret rotated, enabled,
//! disabled, deleted) and the outcome of every delivery attempt. The signing secret is never in
//! an event: a fact names the secret by an id, and the secret itself is sealed in a side table.
//! Delivery facts are never deliverable themselves (no webhook kind names this aggregate), so
//! deliveries cannot feed themselves.
//!
//! A subscription whose endpoint keeps failing is disabled by the aggregate itself, in the same
//! commit as the failure that reaches the threshold (`WebhookDisabled` without an author), so
//! several server processes record it once.
use chrono::{DateTime, Duration, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::chain::ChainLink;

/// Aggregate type name.
pub const WEBHOOK_AGGREGATE: &str = "Webhook";

/// Longest error text kept in a delivery fact.
pub const MAX_ERROR_TEXT: usize = 300;

/// The stored envelope of one webhook fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// When it happened (stamped at the edge).
    pub at: DateTime<Utc>,
    /// Hash chain link to the previous event of this aggregate.
    pub prev: ChainLink,
    /// What happened.
    pub fact: WebhookFact,
}

/// What happened to a subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WebhookFact {
    /// An admin subscribed `url` to the kinds matching `kinds`.
    WebhookSubscribed {
        /// Endpoint (validated at the edge: https, or http to a listed host).
        url: String,
        /// Kind patterns (`alert.*`, `account.password_reset`).
        kinds: Vec<String>,
        /// Id of the signing secret (the secret is sealed elsewhere).
        secret_id: Uuid,
        /// The admin's staff id.
        by: String,
    },
    /// An admin rotated the signing secret; the previous one keeps signing until `previous_until`.
    WebhookSecretRotated {
        /// Id of the new secret.
        secret_id: Uuid,
        /// Id of the secret it replaces.
        previous_secret_id: Uuid,
        /// End of the grace period of the previous secret.
        previous_until: DateTime<Utc>,
        /// The admin's staff id.
        by: String,
    },
    /// An admin turned deliveries back on (the failure count starts over).
    WebhookEnabled {
        /// The admin's staff id.
        by: String,
    },
    /// Deliveries were turned off: by an admin, or (`by: None`) because the endpoint kept
    /// failing.
    WebhookDisabled {
        /// The admin's staff id; `None` when disabled after failures.
        by: Option<String>,
        /// Consecutive failed attempts when it was disabled.
        failures: u32,
    },
    /// An admin deleted the subscription: nothing more is sent.
    WebhookDeleted {
        /// The admin's staff id.
        by: String,
    },
    /// The endpoint accepted a message (a 2xx answer).
    WebhookDelivered {
        /// Message id (the `webhook-id` header, stable across retries).
        message_id: String,
        /// The message's kind.
        kind: String,
        /// Which attempt (from 1).
        attempt: u32,
        /// HTTP status.
        status: u16,
    },
    /// An attempt failed.
    WebhookDeliveryFailed {
        /// Message id.
        message_id: String,
        /// The message's kind.
        kind: String,
        /// Which attempt (from 1).
        attempt: u32,
        /// HTTP status, when one came back.
        status: Option<u16>,
        /// What went wrong (bounded, no response body).
        error: String,
        /// When it is tried again; `None`: given up.
        retry_at: Option<DateTime<Utc>>,
    },
}

impl WebhookFact {
    /// Stable type string.
    pub fn name(&self) -> &'static str {
        match self {
            Self::WebhookSubscribed { .. } => "WebhookSubscribed",
            Self::WebhookSecretRotated { .. } => "WebhookSecretRotated",
            Self::WebhookEnabled { .. } => "WebhookEnabled",
            Self::WebhookDisabled { .. } => "WebhookDisabled",
            Self::WebhookDeleted { .. } => "WebhookDeleted",
            Self::WebhookDelivered { .. } => "WebhookDelivered",
            Self::WebhookDeliveryFailed { .. } => "WebhookDeliveryFailed",
        }
    }

    /// The fields of this fact never published, decided per variant so that a new fact must
    /// say. Signing secrets are never in these facts (they are named by id); the endpoint URL is
    /// kept out of every published view because receivers often carry a token in it (chat and
    /// incident tools' incoming-webhook URLs are bearer secrets).
    pub fn secret_fields(&self) -> &'static [&'static str] {
        match self {
            Self::WebhookSubscribed { .. } => &["url"],
            Self::WebhookSecretRotated { .. }
            | Self::WebhookEnabled { .. }
            | Self::WebhookDisabled { .. }
            | Self::WebhookDeleted { .. }
            | Self::WebhookDelivered { .. }
            | Self::WebhookDeliveryFailed { .. } => &[],
        }
    }
}

impl WebhookEvent {
    /// The event as JSON with every [secret field](WebhookFact::secret_fields) redacted.
    pub fn redacted(&self) -> serde_json::Value {
        let Ok(mut value) = serde_json::to_value(self) else {
            return serde_json::Value::String(crate::account::REDACTED.into());
        };
        crate::account::redact_fact(&mut value, self.fact.secret_fields());
        value
    }
}

impl DomainEvent for WebhookEvent {
    fn event_type(&self) -> String {
        self.fact.name().to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

/// When a failing endpoint is disabled: after `attempts` consecutive failed attempts, or when
/// its failures have lasted `duration` (whichever comes first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisablePolicy {
    /// Consecutive failed attempts.
    pub attempts: u32,
    /// Time since the first of the consecutive failures.
    pub duration: Duration,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx answer.
    Accepted {
        /// Its status.
        status: u16,
    },
    /// Anything else.
    Failed {
        /// Status, if an answer came.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// Next try; `None`: given up.
        retry_at: Option<DateTime<Utc>>,
    },
}

/// Commands on a subscription.
#[derive(Debug, Clone)]
pub enum WebhookCommand {
    /// Creates the subscription.
    Subscribe {
        /// Endpoint.
        url: String,
        /// Kind patterns (validated at the edge).
        kinds: Vec<String>,
        /// Secret id.
        secret_id: Uuid,
        /// Admin.
        by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Rotates the secret.
    RotateSecret {
        /// New secret id.
        secret_id: Uuid,
        /// How long the previous secret keeps signing.
        grace: Duration,
        /// Admin.
        by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Turns deliveries on or off.
    SetEnabled {
        /// On or off.
        enabled: bool,
        /// Admin.
        by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Deletes the subscription.
    Delete {
        /// Admin.
        by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Records the outcome of one delivery attempt.
    RecordAttempt {
        /// Message id.
        message_id: String,
        /// Kind.
        kind: String,
        /// Attempt number (from 1).
        attempt: u32,
        /// Outcome.
        outcome: AttemptOutcome,
        /// When a failing endpoint is disabled.
        policy: DisablePolicy,
        /// When.
        at: DateTime<Utc>,
    },
}

/// Why a webhook command changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// `Subscribe` on an existing subscription.
    #[error("WH0001 webhook already exists")]
    AlreadyExists,
    /// Any other command on a subscription that does not exist or was deleted.
    #[error("WH0002 no such webhook")]
    NotFound,
    /// Enabling an enabled subscription, disabling a disabled one.
    #[error("WH0003 webhook already in that state")]
    Unchanged,
}

/// A subscription's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// Subscribed yet.
    pub exists: bool,
    /// Deleted.
    pub deleted: bool,
    /// Deliveries on.
    pub enabled: bool,
    /// Endpoint.
    pub url: String,
    /// Kind patterns.
    pub kinds: Vec<String>,
    /// When it was subscribed.
    pub created_at: Option<DateTime<Utc>>,
    /// Current secret id.
    pub secret_id: Option<Uuid>,
    /// Previous secret id and the end of its grace period.
    pub previous_secret: Option<(Uuid, DateTime<Utc>)>,
    /// Consecutive failed attempts (since the last success or enabling).
    pub consecutive_failures: u32,
    /// When the first of them happened.
    pub failing_since: Option<DateTime<Utc>>,
    chain: ChainLink,
}

impl Webhook {
    fn live(&self) -> Result<(), WebhookError> {
        if !self.exists || self.deleted {
            return Err(WebhookError::NotFound);
        }
        Ok(())
    }

    /// The pure decision: the facts a command records, in order.
    pub fn decide(
        &self,
        command: WebhookCommand,
    ) -> Result<Vec<(DateTime<Utc>, WebhookFact)>, WebhookError> {
        match command {
            WebhookCommand::Subscribe {
                url,
                kinds,
                secret_id,
                by,
                at,
            } => {
                if self.exists {
                    return Err(WebhookError::AlreadyExists);
                }
                Ok(vec![(
                    at,
                    WebhookFact::WebhookSubscribed {
                        url,
                        kinds,
                        secret_id,
                        by,
                    },
                )])
            }
            WebhookCommand::RotateSecret {
                secret_id,
                grace,
                by,
                at,
            } => {
                self.live()?;
                let previous_secret_id = self.secret_id.ok_or(WebhookError::NotFound)?;
                Ok(vec![(
                    at,
                    WebhookFact::WebhookSecretRotated {
                        secret_id,
                        previous_secret_id,
                        previous_until: at + grace,
                        by,
                    },
                )])
            }
            WebhookCommand::SetEnabled { enabled, by, at } => {
                self.live()?;
                if enabled == self.enabled {
                    return Err(WebhookError::Unchanged);
                }
                let fact = if enabled {
                    WebhookFact::WebhookEnabled { by }
                } else {
                    WebhookFact::WebhookDisabled {
                        by: Some(by),
                        failures: self.consecutive_failures,
                    }
                };
                Ok(vec![(at, fact)])
            }
            WebhookCommand::Delete { by, at } => {
                self.live()?;
                Ok(vec![(at, WebhookFact::WebhookDeleted { by })])
            }
            WebhookCommand::RecordAttempt {
                message_id,
                kind,
                attempt,
                outcome,
                policy,
                at,
            } => {
                // An attempt in flight when the subscription was deleted is still a fact.
                if !self.exists {
                    return Err(WebhookError::NotFound);
                }
                match outcome {
                    AttemptOutcome::Accepted { status } => Ok(vec![(
                        at,
                        WebhookFact::WebhookDelivered {
                            message_id,
                            kind,
                            attempt,
                            status,
                        },
                    )]),
                    AttemptOutcome::Failed {
                        status,
                        error,
                        retry_at,
                    } => {
                        let mut facts = vec![(
                            at,
                            WebhookFact::WebhookDeliveryFailed {
                                message_id,
                                kind,
                                attempt,
                                status,
                                error: error.chars().take(MAX_ERROR_TEXT).collect(),
                                retry_at,
                            },
                        )];
                        let failures = self.consecutive_failures.saturating_add(1);
                        let since = self.failing_since.unwrap_or(at);
                        let exhausted =
                            failures >= policy.attempts.max(1) || at - since >= policy.duration;
                        if self.enabled && !self.deleted && exhausted {
                            facts.push((at, WebhookFact::WebhookDisabled { by: None, failures }));
                        }
                        Ok(facts)
                    }
                }
            }
        }
    }

    /// The secrets that sign at `now`: the current one, and the previous one during its grace.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self.secret_id.into_iter().collect();
        if let Some((previous, until)) = self.previous_secret {
            if now < until {
                ids.push(previous);
            }
        }
        ids
    }

    fn fold(&mut self, event: &WebhookEvent) {
        match &event.fact {
            WebhookFact::WebhookSubscribed {
                url,
                kinds,
                secret_id,
                ..
            } => {
                self.exists = true;
                self.enabled = true;
                self.url = url.clone();
                self.kinds = kinds.clone();
                self.secret_id = Some(*secret_id);
                self.created_at = Some(event.at);
            }
            WebhookFact::WebhookSecretRotated {
                secret_id,
                previous_secret_id,
                previous_until,
                ..
            } => {
                self.secret_id = Some(*secret_id);
                self.previous_secret = Some((*previous_secret_id, *previous_until));
            }
            WebhookFact::WebhookEnabled { .. } => {
                self.enabled = true;
                self.consecutive_failures = 0;
                self.failing_since = None;
            }
            WebhookFact::WebhookDisabled { .. } => self.enabled = false,
            WebhookFact::WebhookDeleted { .. } => {
                self.deleted = true;
                self.enabled = false;
            }
            WebhookFact::WebhookDelivered { .. } => {
                self.consecutive_failures = 0;
                self.failing_since = None;
            }
            WebhookFact::WebhookDeliveryFailed { .. } => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.failing_since.get_or_insert(event.at);
            }
        }
    }
}

impl cqrs_es::Aggregate for Webhook {
    const TYPE: &'static str = WEBHOOK_AGGREGATE;
    type Command = WebhookCommand;
    type Event = WebhookEvent;
    type Error = WebhookError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for (at, fact) in self.decide(command)? {
            let event = WebhookEvent {
                at,
                prev: self.chain.clone(),
                fact,
            };
            // Applies it at once, so the next fact links to this one.
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.fold(&event);
        if let Ok(value) = serde_json::to_value(&event) {
            self.chain = self.chain.next(&value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::Aggregate as _;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn policy() -> DisablePolicy {
        DisablePolicy {
            attempts: 3,
            duration: Duration::hours(24),
        }
    }

    fn given(commands: Vec<WebhookCommand>) -> Webhook {
        let mut w = Webhook::default();
        for c in commands {
            for (at, fact) in w.decide(c).unwrap() {
                w.apply(WebhookEvent {
                    at,
                    prev: ChainLink::default(),
                    fact,
                });
            }
        }
        w
    }

    fn subscribe() -> WebhookCommand {
        WebhookCommand::Subscribe {
            url: "https://hooks.example.com/in".into(),
            kinds: vec!["alert.*".into()],
            secret_id: Uuid::from_u128(1),
            by: "admin".into(),
            at: at(),
        }
    }

    fn failed(attempt: u32, at: DateTime<Utc>) -> WebhookCommand {
        WebhookCommand::RecordAttempt {
            message_id: format!("msg_{attempt}"),
            kind: "alert.brute_force".into(),
            attempt,
            outcome: AttemptOutcome::Failed {
                status: Some(500),
                error: "HTTP 500".into(),
                retry_at: Some(at + Duration::seconds(5)),
            },
            policy: policy(),
            at,
        }
    }

    #[test]
    fn test_subscribe_then_everything_else_needs_a_live_subscription() {
        let w = given(vec![subscribe()]);
        assert!(w.exists && w.enabled);
        assert_eq!(
            w.decide(subscribe()).unwrap_err(),
            WebhookError::AlreadyExists
        );
        let deleted = given(vec![
            subscribe(),
            WebhookCommand::Delete {
                by: "admin".into(),
                at: at(),
            },
        ]);
        assert!(deleted.deleted && !deleted.enabled);
        for c in [
            WebhookCommand::Delete {
                by: "a".into(),
                at: at(),
            },
            WebhookCommand::SetEnabled {
                enabled: true,
                by: "a".into(),
                at: at(),
            },
            WebhookCommand::RotateSecret {
                secret_id: Uuid::from_u128(2),
                grace: Duration::hours(1),
                by: "a".into(),
                at: at(),
            },
        ] {
            assert_eq!(deleted.decide(c).unwrap_err(), WebhookError::NotFound);
        }
        // An attempt in flight at the deletion is still recorded.
        assert!(deleted.decide(failed(1, at())).is_ok());
    }

    #[test]
    fn test_enabling_twice_is_unchanged() {
        let w = given(vec![subscribe()]);
        let again = w.decide(WebhookCommand::SetEnabled {
            enabled: true,
            by: "a".into(),
            at: at(),
        });
        assert_eq!(again.unwrap_err(), WebhookError::Unchanged);
    }

    #[test]
    fn test_rotation_keeps_the_previous_secret_signing_during_the_grace() {
        let w = given(vec![
            subscribe(),
            WebhookCommand::RotateSecret {
                secret_id: Uuid::from_u128(2),
                grace: Duration::hours(1),
                by: "a".into(),
                at: at(),
            },
        ]);
        assert_eq!(
            w.signing_secrets(at() + Duration::minutes(59)),
            vec![Uuid::from_u128(2), Uuid::from_u128(1)]
        );
        assert_eq!(
            w.signing_secrets(at() + Duration::hours(1)),
            vec![Uuid::from_u128(2)]
        );
    }

    #[test]
    fn test_the_third_consecutive_failure_disables_in_the_same_commit() {
        // Given two failures, a success resets the count; then three failures disable it.
        let w = given(vec![
            subscribe(),
            failed(1, at()),
            failed(2, at()),
            WebhookCommand::RecordAttempt {
                message_id: "msg_2".into(),
                kind: "alert.brute_force".into(),
                attempt: 3,
                outcome: AttemptOutcome::Accepted { status: 204 },
                policy: policy(),
                at: at(),
            },
            failed(1, at()),
            failed(2, at()),
        ]);
        assert_eq!(w.consecutive_failures, 2);
        let facts = w.decide(failed(3, at())).unwrap();
        let names: Vec<&str> = facts.iter().map(|(_, f)| f.name()).collect();
        assert_eq!(names, vec!["WebhookDeliveryFailed", "WebhookDisabled"]);
        assert_eq!(
            facts[1].1,
            WebhookFact::WebhookDisabled {
                by: None,
                failures: 3
            }
        );
        // Once disabled, further failures (messages in flight) do not disable it again.
        let disabled = given(vec![
            subscribe(),
            failed(1, at()),
            failed(2, at()),
            failed(3, at()),
        ]);
        assert!(!disabled.enabled);
        assert_eq!(disabled.decide(failed(4, at())).unwrap().len(), 1);
    }

    #[test]
    fn test_failures_lasting_the_duration_disable_too() {
        let w = given(vec![subscribe(), failed(1, at())]);
        let facts = w.decide(failed(2, at() + Duration::hours(24))).unwrap();
        assert_eq!(facts.len(), 2);
        let facts = w.decide(failed(2, at() + Duration::hours(23))).unwrap();
        assert_eq!(facts.len(), 1);
    }

    #[test]
    fn test_webhook_event_type_strings_are_frozen() {
        let facts = vec![
            WebhookFact::WebhookSubscribed {
                url: "https://x".into(),
                kinds: vec!["alert.*".into()],
                secret_id: Uuid::from_u128(1),
                by: "a".into(),
            },
            WebhookFact::WebhookSecretRotated {
                secret_id: Uuid::from_u128(2),
                previous_secret_id: Uuid::from_u128(1),
                previous_until: at(),
                by: "a".into(),
            },
            WebhookFact::WebhookEnabled { by: "a".into() },
            WebhookFact::WebhookDisabled {
                by: None,
                failures: 20,
            },
            WebhookFact::WebhookDeleted { by: "a".into() },
            WebhookFact::WebhookDelivered {
                message_id: "m".into(),
                kind: "alert.x".into(),
                attempt: 1,
                status: 200,
            },
            WebhookFact::WebhookDeliveryFailed {
                message_id: "m".into(),
                kind: "alert.x".into(),
                attempt: 1,
                status: None,
                error: "timeout".into(),
                retry_at: None,
            },
        ];
        let names: Vec<&str> = facts.iter().map(WebhookFact::name).collect();
        assert_eq!(
            names,
            vec![
                "WebhookSubscribed",
                "WebhookSecretRotated",
                "WebhookEnabled",
                "WebhookDisabled",
                "WebhookDeleted",
                "WebhookDelivered",
                "WebhookDeliveryFailed"
            ]
        );
        for fact in facts {
            let e = WebhookEvent {
                at: at(),
                prev: ChainLink::default(),
                fact,
            };
            assert_eq!(e.event_version(), "1.0");
            let value = serde_json::to_value(&e).unwrap();
            assert!(value["fact"].get(e.event_type()).is_some(), "{value}");
            let redacted = e.redacted();
            if e.event_type() == "WebhookSubscribed" {
                // The URL often carries a bearer token: published views hide it.
                assert_eq!(redacted["fact"]["WebhookSubscribed"]["url"], "[redacted]");
                assert_eq!(
                    redacted["fact"]["WebhookSubscribed"]["kinds"],
                    value["fact"]["WebhookSubscribed"]["kinds"]
                );
            } else {
                assert_eq!(redacted, value);
            }
            let back: WebhookEvent = serde_json::from_value(value).unwrap();
            assert_eq!(back, e);
        }
    }
}
