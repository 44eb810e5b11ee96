//! What a notification is about: one [`Notice`] per outbox topic, with the details it carries.
//! The outbox read model builds them from events and stores each as two columns, `topic` (text)
//! and `details` (JSON text); the delivery worker reads them back into the same type and words
//! them with an exhaustive match. The stored form is the one rows were written in before the type
//! existed: the topic names, and the details' keys in alphabetical order (a rebuild compares the
//! text, and old rows must still read).
use chrono::{DateTime, Utc};
use gatehouse_domain::account::UnlockReason;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A message owed to an account's owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "topic", content = "details", rename_all = "snake_case")]
pub enum Notice {
    /// A one-time code (the digits are looked up by the worker, never stored here).
    Code {
        /// The flow the code belongs to.
        flow_id: Uuid,
    },
    /// A contact change was asked for; sent to the current contact.
    ContactChangeRequested {
        /// The current contact, sealed.
        previous_sealed: String,
    },
    /// A contact was replaced; sent to the old one.
    ContactChanged {
        /// The replaced contact, sealed.
        previous_sealed: String,
    },
    /// The password was reset by code.
    PasswordReset {
        /// The requester's address.
        #[serde(default)]
        ip: Option<String>,
    },
    /// The password was changed from a session.
    PasswordChanged {
        /// The requester's address.
        #[serde(default)]
        ip: Option<String>,
    },
    /// Another account tried to take this account's contact.
    IdentifierClaimAttempted {},
    /// The anti-phishing phrase was removed.
    AntiPhishingPhraseRemoved {},
    /// The account was locked.
    AccountLocked {
        /// Until when.
        until: DateTime<Utc>,
    },
    /// The account was unlocked.
    AccountUnlocked {
        /// How.
        reason: UnlockReason,
    },
    /// A sign-in succeeded.
    NewSignIn {
        /// The device id the client sent.
        #[serde(default)]
        device_id: Option<String>,
        /// The client's address.
        #[serde(default)]
        ip: Option<String>,
        /// The client's user agent.
        #[serde(default)]
        user_agent: Option<String>,
    },
    /// Someone tried to register with this account's identifier.
    DuplicateRegistration {
        /// The requester's address.
        #[serde(default)]
        ip: Option<String>,
    },
    /// An authenticator app was enrolled.
    SecondFactorAdded {
        /// The requester's address.
        #[serde(default)]
        ip: Option<String>,
    },
    /// A withdrawal address joined the whitelist.
    WithdrawalAddressAdded {
        /// When it becomes usable (RFC 3339, as written).
        usable_from: String,
    },
    /// Whitelist-only withdrawals were turned off.
    WhitelistDisabled {},
    /// An API key with the withdraw scope was created.
    WithdrawKeyCreated {
        /// The key's name.
        name: String,
    },
    /// A security key was registered.
    SecurityKeyAdded {
        /// The requester's address.
        #[serde(default)]
        ip: Option<String>,
        /// The key's name.
        name: String,
    },
    /// A security key was removed.
    SecurityKeyRemoved {
        /// The requester's address.
        #[serde(default)]
        ip: Option<String>,
    },
    /// The second factor was removed.
    SecondFactorRemoved {
        /// The requester's address.
        #[serde(default)]
        ip: Option<String>,
    },
    /// A lost-second-factor recovery reached review.
    RecoveryStarted {},
    /// A reviewer approved the recovery.
    RecoveryApproved {
        /// When the factors will be removed.
        #[serde(default)]
        hold_until: Option<DateTime<Utc>>,
    },
    /// A reviewer denied the recovery.
    RecoveryDenied {
        /// Recorded with the review (none when denied).
        #[serde(default)]
        hold_until: Option<DateTime<Utc>>,
    },
    /// The recovery was cancelled.
    RecoveryCancelled {},
    /// Another recovery request was set aside while a case is in progress.
    RecoveryRequestSetAside {},
    /// The anti-phishing phrase was set or changed.
    AntiPhishingPhraseSet {},
    /// The account was frozen.
    AccountFrozen {
        /// Who froze it: `owner`, `link` or `staff`.
        by: String,
        /// The requester's address.
        #[serde(default)]
        ip: Option<String>,
    },
    /// The account was unfrozen (at once, or at the end of a staff unfreeze's hold).
    AccountUnfrozen {
        /// Who unfroze it: `recovery` (the owner) or `staff`.
        by: String,
        /// When it takes effect, for a staff unfreeze.
        #[serde(default)]
        hold_until: Option<DateTime<Utc>>,
    },
    /// A staff member signed every session out.
    SignedOutByStaff {},
}

/// An outbox row whose topic and details do not make a [`Notice`].
#[derive(Debug, thiserror::Error)]
#[error("unreadable notice {topic:?}: {source}")]
pub struct UnreadableNotice {
    /// The stored topic.
    pub topic: String,
    /// Why.
    #[source]
    pub source: serde_json::Error,
}

impl Notice {
    /// The stored `topic` column.
    pub fn topic(&self) -> &'static str {
        match self {
            Self::Code { .. } => "code",
            Self::ContactChangeRequested { .. } => "contact_change_requested",
            Self::ContactChanged { .. } => "contact_changed",
            Self::PasswordReset { .. } => "password_reset",
            Self::PasswordChanged { .. } => "password_changed",
            Self::IdentifierClaimAttempted {} => "identifier_claim_attempted",
            Self::AntiPhishingPhraseRemoved {} => "anti_phishing_phrase_removed",
            Self::AccountLocked { .. } => "account_locked",
            Self::AccountUnlocked { .. } => "account_unlocked",
            Self::NewSignIn { .. } => "new_sign_in",
            Self::DuplicateRegistration { .. } => "duplicate_registration",
            Self::SecondFactorAdded { .. } => "second_factor_added",
            Self::WithdrawalAddressAdded { .. } => "withdrawal_address_added",
            Self::WhitelistDisabled {} => "whitelist_disabled",
            Self::WithdrawKeyCreated { .. } => "withdraw_key_created",
            Self::SecurityKeyAdded { .. } => "security_key_added",
            Self::SecurityKeyRemoved { .. } => "security_key_removed",
            Self::SecondFactorRemoved { .. } => "second_factor_removed",
            Self::RecoveryStarted {} => "recovery_started",
            Self::RecoveryApproved { .. } => "recovery_approved",
            Self::RecoveryDenied { .. } => "recovery_denied",
            Self::RecoveryCancelled {} => "recovery_cancelled",
            Self::RecoveryRequestSetAside {} => "recovery_request_set_aside",
            Self::AntiPhishingPhraseSet {} => "anti_phishing_phrase_set",
            Self::AccountFrozen { .. } => "account_frozen",
            Self::AccountUnfrozen { .. } => "account_unfrozen",
            Self::SignedOutByStaff {} => "signed_out_by_staff",
        }
    }

    /// The stored `details` column (a JSON object).
    pub fn details(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut tagged)) => tagged.remove("details").unwrap_or_default(),
            _ => Value::Object(Default::default()),
        }
    }

    /// Reads a stored row back.
    pub fn from_stored(topic: &str, details: &Value) -> Result<Self, UnreadableNotice> {
        serde_json::from_value(serde_json::json!({ "topic": topic, "details": details })).map_err(
            |source| UnreadableNotice {
                topic: topic.to_string(),
                source,
            },
        )
    }

    /// The flow a code or a requested contact belongs to.
    pub fn flow_id(&self) -> Option<Uuid> {
        match self {
            Self::Code { flow_id } => Some(*flow_id),
            _ => None,
        }
    }

    /// The contact a change notice goes to (the one replaced), sealed.
    pub fn previous_sealed(&self) -> Option<&str> {
        match self {
            Self::ContactChangeRequested { previous_sealed }
            | Self::ContactChanged { previous_sealed } => Some(previous_sealed),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }

    /// Every notice, with the topic and details text it was stored with before it was typed
    /// (`json!` maps print their keys in alphabetical order).
    fn stored_forms() -> Vec<(Notice, &'static str, &'static str)> {
        let ip = || Some("198.51.100.7".to_string());
        vec![
            (
                Notice::Code {
                    flow_id: Uuid::from_u128(1),
                },
                "code",
                r#"{"flow_id":"00000000-0000-0000-0000-000000000001"}"#,
            ),
            (
                Notice::ContactChangeRequested {
                    previous_sealed: "v1.a".into(),
                },
                "contact_change_requested",
                r#"{"previous_sealed":"v1.a"}"#,
            ),
            (
                Notice::ContactChanged {
                    previous_sealed: "v1.b".into(),
                },
                "contact_changed",
                r#"{"previous_sealed":"v1.b"}"#,
            ),
            (
                Notice::PasswordReset { ip: ip() },
                "password_reset",
                r#"{"ip":"198.51.100.7"}"#,
            ),
            (
                Notice::PasswordChanged { ip: None },
                "password_changed",
                r#"{"ip":null}"#,
            ),
            (
                Notice::IdentifierClaimAttempted {},
                "identifier_claim_attempted",
                "{}",
            ),
            (
                Notice::AntiPhishingPhraseRemoved {},
                "anti_phishing_phrase_removed",
                "{}",
            ),
            (
                Notice::AccountLocked { until: at() },
                "account_locked",
                r#"{"until":"2026-01-02T03:04:05Z"}"#,
            ),
            (
                Notice::AccountUnlocked {
                    reason: UnlockReason::UnlockCode,
                },
                "account_unlocked",
                r#"{"reason":"unlock_code"}"#,
            ),
            (
                Notice::NewSignIn {
                    device_id: Some("d".into()),
                    ip: ip(),
                    user_agent: None,
                },
                "new_sign_in",
                r#"{"device_id":"d","ip":"198.51.100.7","user_agent":null}"#,
            ),
            (
                Notice::DuplicateRegistration { ip: ip() },
                "duplicate_registration",
                r#"{"ip":"198.51.100.7"}"#,
            ),
            (
                Notice::SecondFactorAdded { ip: ip() },
                "second_factor_added",
                r#"{"ip":"198.51.100.7"}"#,
            ),
            (
                Notice::WithdrawalAddressAdded {
                    usable_from: at().to_rfc3339(),
                },
                "withdrawal_address_added",
                r#"{"usable_from":"2026-01-02T03:04:05+00:00"}"#,
            ),
            (Notice::WhitelistDisabled {}, "whitelist_disabled", "{}"),
            (
                Notice::WithdrawKeyCreated { name: "bot".into() },
                "withdraw_key_created",
                r#"{"name":"bot"}"#,
            ),
            (
                Notice::SecurityKeyAdded {
                    ip: ip(),
                    name: "yubi".into(),
                },
                "security_key_added",
                r#"{"ip":"198.51.100.7","name":"yubi"}"#,
            ),
            (
                Notice::SecurityKeyRemoved { ip: ip() },
                "security_key_removed",
                r#"{"ip":"198.51.100.7"}"#,
            ),
            (
                Notice::SecondFactorRemoved { ip: ip() },
                "second_factor_removed",
                r#"{"ip":"198.51.100.7"}"#,
            ),
            (Notice::RecoveryStarted {}, "recovery_started", "{}"),
            (
                Notice::RecoveryApproved {
                    hold_until: Some(at()),
                },
                "recovery_approved",
                r#"{"hold_until":"2026-01-02T03:04:05Z"}"#,
            ),
            (
                Notice::RecoveryDenied { hold_until: None },
                "recovery_denied",
                r#"{"hold_until":null}"#,
            ),
            (Notice::RecoveryCancelled {}, "recovery_cancelled", "{}"),
            (
                Notice::RecoveryRequestSetAside {},
                "recovery_request_set_aside",
                "{}",
            ),
            (
                Notice::AntiPhishingPhraseSet {},
                "anti_phishing_phrase_set",
                "{}",
            ),
            (
                Notice::AccountFrozen {
                    by: "link".into(),
                    ip: ip(),
                },
                "account_frozen",
                r#"{"by":"link","ip":"198.51.100.7"}"#,
            ),
            (
                Notice::AccountUnfrozen {
                    by: "staff".into(),
                    hold_until: Some(at()),
                },
                "account_unfrozen",
                r#"{"by":"staff","hold_until":"2026-01-02T03:04:05Z"}"#,
            ),
            (Notice::SignedOutByStaff {}, "signed_out_by_staff", "{}"),
        ]
    }

    #[test]
    fn test_every_notice_is_stored_as_before_and_reads_back() {
        for (notice, topic, details) in stored_forms() {
            assert_eq!(notice.topic(), topic);
            assert_eq!(notice.details().to_string(), details, "{topic}");
            let parsed: Value = serde_json::from_str(details).unwrap();
            assert_eq!(Notice::from_stored(topic, &parsed).unwrap(), notice);
        }
    }

    #[test]
    fn test_missing_optional_details_read_as_none_and_unknown_topics_are_refused() {
        assert_eq!(
            Notice::from_stored("password_reset", &json!({})).unwrap(),
            Notice::PasswordReset { ip: None }
        );
        assert!(Notice::from_stored("no_such_topic", &json!({})).is_err());
        assert!(Notice::from_stored("withdraw_key_created", &json!({})).is_err());
    }
}
