//! What staff may see of an account's events. Which fields hold secrets (password hashes, keyed
//! verifiers, token hashes) or sealed personal data (contacts, phrases, TOTP secrets, evidence,
//! withdrawal addresses) is decided here, per variant, by an exhaustive match: a new event type
//! does not compile until it says which of its fields are secret. Nothing depends on how a field
//! is named.
use serde_json::Value;

use super::events::{AccountEvent, AccountFact};

/// What a secret value is replaced with.
pub const REDACTED: &str = "[redacted]";

impl AccountFact {
    /// The fields of this fact never shown, even to staff.
    pub fn secret_fields(&self) -> &'static [&'static str] {
        match self {
            Self::AccountRegistered { .. } => &["email", "phone", "password_hash"],
            Self::DuplicateRegistrationAttempted { .. }
            | Self::IdentifierClaimAttempted { .. }
            | Self::LoginSucceeded { .. }
            | Self::LoginFailed { .. }
            | Self::LoginRejectedWhileLocked { .. }
            | Self::AccountLocked { .. }
            | Self::SessionExtended { .. }
            | Self::SessionEnded { .. }
            | Self::FlowStarted { .. }
            | Self::CodeCeilingReached { .. }
            | Self::DeviceRevoked { .. }
            | Self::DeviceRenamed { .. }
            | Self::CodeAttemptFailed { .. }
            | Self::CodeExhausted { .. }
            | Self::CodeExpired { .. }
            | Self::CodeUsed { .. }
            | Self::ContactVerified { .. }
            | Self::UnverifiedContactReleased { .. }
            | Self::PasswordConfirmationFailed { .. }
            | Self::ResetFactorAsked { .. }
            | Self::SmsWithheld { .. }
            | Self::AccountUnlocked { .. }
            | Self::HighRiskCooldownStarted { .. }
            | Self::AntiPhishingPhraseRemoved { .. }
            | Self::TotpEnrolled { .. }
            | Self::MfaChallengeIssued { .. }
            | Self::SecondFactorVerified { .. }
            | Self::SecondFactorFailed { .. }
            | Self::SecondFactorRemoved { .. }
            | Self::SecurityKeyRegistered { .. }
            | Self::SecurityKeyRenamed { .. }
            | Self::SecurityKeyRemoved { .. }
            | Self::SecurityKeyUsed { .. }
            | Self::SecurityKeyCounterRegressed { .. }
            | Self::PasskeyRegistered { .. }
            | Self::PasskeyRemoved { .. }
            | Self::PasskeyUsed { .. }
            | Self::PasskeySignInFailed { .. }
            | Self::PasskeysRevoked { .. }
            | Self::SessionSteppedUp { .. }
            | Self::ApiKeyRevoked { .. }
            | Self::WithdrawalAddressAdded { .. }
            | Self::WithdrawalAddressRemoved { .. }
            | Self::WhitelistModeChanged { .. }
            | Self::RecoveryStepPassed { .. }
            | Self::RecoveryReviewed { .. }
            | Self::RecoveryCancelled { .. }
            | Self::RecoveryCompleted { .. }
            | Self::RecoveryRequestSetAside { .. }
            | Self::NotificationDelivered { .. }
            | Self::NotificationFailed { .. }
            | Self::LoginRefusedWhileFrozen { .. }
            | Self::AccountFrozen { .. }
            | Self::AccountUnfrozen { .. }
            | Self::StaffActionTaken { .. } => &[],
            Self::PasswordRehashed { .. }
            | Self::PasswordReset { .. }
            | Self::PasswordChanged { .. } => &["password_hash"],
            Self::SessionStarted { .. } | Self::DeviceTrusted { .. } => &["token_hash"],
            Self::CodeIssued { .. } | Self::ApiKeyCreated { .. } | Self::ApiKeyRotated { .. } => {
                &["verifier"]
            }
            Self::ContactChanged { .. } | Self::ContactChangeRequested { .. } => {
                &["contact", "previous"]
            }
            Self::AntiPhishingPhraseSet { .. } => &["sealed_phrase"],
            Self::TotpEnrolmentStarted { .. } => &["sealed_secret"],
            Self::BackupCodesGenerated { .. } => &["verifiers"],
            Self::WithdrawalAddressProposed { .. } => &["sealed_address", "sealed_label"],
            Self::RecoveryEvidenceSubmitted { .. } => &["sealed_evidence"],
        }
    }
}

impl AccountEvent {
    /// The event as JSON (its stored shape), with every [secret field](AccountFact::secret_fields)
    /// of its fact that holds a value replaced by [`REDACTED`].
    pub fn redacted(&self) -> Value {
        let Ok(mut value) = serde_json::to_value(self) else {
            return Value::String(REDACTED.into());
        };
        redact_fact(&mut value, self.fact.secret_fields());
        value
    }
}

/// Replaces the `secret` fields of an envelope's fact (`{"fact": {"<Variant>": {fields}}}`,
/// serde's external tagging) that hold a value with [`REDACTED`]. Every aggregate's events
/// (account, staff, team, protection) have this shape.
pub(crate) fn redact_fact(envelope: &mut Value, secret: &[&str]) {
    if let Some(Value::Object(variant)) = envelope.get_mut("fact") {
        for fields in variant.values_mut() {
            if let Value::Object(fields) = fields {
                for name in secret {
                    if let Some(v) = fields.get_mut(*name).filter(|v| !v.is_null()) {
                        *v = Value::String(REDACTED.into());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::events::tests::every_fact;

    /// Every fact the events tests sample, plus those they leave out.
    fn samples() -> Vec<AccountFact> {
        let mut all = every_fact();
        all.push(AccountFact::DeviceTrusted {
            device_id: uuid::Uuid::from_u128(3),
            token_hash: "a3f1c2".into(),
            expires_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
            context: Default::default(),
        });
        all
    }

    fn event(fact: AccountFact) -> AccountEvent {
        AccountEvent {
            at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            prev: Default::default(),
            fact,
        }
    }

    /// The variant's fields as serialized.
    fn fields(value: &Value) -> serde_json::Map<String, Value> {
        value["fact"]
            .as_object()
            .and_then(|v| v.values().next())
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn test_secret_fields_exist_and_are_redacted_in_every_fact() {
        for fact in samples() {
            let plain = serde_json::to_value(event(fact.clone())).unwrap();
            let shown = event(fact.clone()).redacted();
            let (plain, shown) = (fields(&plain), fields(&shown));
            for name in fact.secret_fields() {
                // A listed field that the fact does not have would protect nothing.
                assert!(
                    plain.contains_key(*name),
                    "{name} is not a field of {fact:?}"
                );
                if !plain[*name].is_null() {
                    assert_eq!(shown[*name], Value::String(REDACTED.into()), "{name}");
                }
            }
            // Every other field is shown as stored.
            for (name, value) in &plain {
                if !fact.secret_fields().contains(&name.as_str()) {
                    assert_eq!(&shown[name], value, "{name} of {fact:?}");
                }
            }
        }
    }

    /// Every (fact, secret field) pair, each checked on its own: the secret value of the sample
    /// fact must not survive redaction anywhere in the output.
    #[test]
    fn test_each_secret_field_is_hidden() {
        let pairs: &[(&str, &str)] = &[
            ("AccountRegistered", "email"),
            ("AccountRegistered", "phone"),
            ("AccountRegistered", "password_hash"),
            ("PasswordRehashed", "password_hash"),
            ("SessionStarted", "token_hash"),
            ("CodeIssued", "verifier"),
            ("DeviceTrusted", "token_hash"),
            ("ContactChanged", "contact"),
            ("ContactChanged", "previous"),
            ("ContactChangeRequested", "contact"),
            ("ContactChangeRequested", "previous"),
            ("PasswordReset", "password_hash"),
            ("PasswordChanged", "password_hash"),
            ("AntiPhishingPhraseSet", "sealed_phrase"),
            ("TotpEnrolmentStarted", "sealed_secret"),
            ("BackupCodesGenerated", "verifiers"),
            ("ApiKeyCreated", "verifier"),
            ("ApiKeyRotated", "verifier"),
            ("WithdrawalAddressProposed", "sealed_address"),
            ("WithdrawalAddressProposed", "sealed_label"),
            ("RecoveryEvidenceSubmitted", "sealed_evidence"),
        ];
        for (variant, field) in pairs {
            let fact = samples()
                .into_iter()
                .find(|f| {
                    serde_json::to_value(f)
                        .ok()
                        .and_then(|v| v.as_object().map(|o| o.contains_key(*variant)))
                        .unwrap_or(false)
                })
                .unwrap_or_else(|| panic!("no sample of {variant}"));
            assert!(fact.secret_fields().contains(field), "{variant}.{field}");
            // Give an absent optional secret (a contact) a value, so that there is one to hide.
            let mut stored = serde_json::to_value(&fact).unwrap();
            let slot = &mut stored[*variant][*field];
            if slot.is_null() {
                *slot =
                    serde_json::json!({"sealed": "v1.sealed-sample", "lookup": "lookup-sample"});
            }
            let fact: AccountFact = serde_json::from_value(stored).unwrap();
            let plain = fields(&serde_json::to_value(event(fact.clone())).unwrap());
            assert_ne!(plain[*field], Value::Null, "{variant}.{field}");
            let shown = fields(&event(fact).redacted());
            assert_eq!(
                shown[*field],
                Value::String(REDACTED.into()),
                "{variant}.{field}"
            );
        }
    }
}
