//! `activity_v1`: every security event of an account, one row each, in plain words: sign-ins and
//! refusals, codes issued and where they were delivered (destination masked), factors, contacts,
//! password, phrase, API keys, whitelist, devices, sessions ended, recovery. The owner reads it
//! with `GET /v1/me/activity` and exports it.
//!
//! What each fact becomes is one exhaustive match ([`describe`]): a new fact does not compile
//! until it is either given an [`ActivityKind`] or named as not shown. No row holds a secret:
//! codes, tokens, verifiers and sealed contacts never leave their events; destinations come
//! masked from the delivery outcome events.
use chrono::{DateTime, Utc};
use gatehouse_domain::account::{
    CooldownReason, DeviceRevokeReason, FreezeActor, LoginFailureReason, PasskeyFailureReason,
    RecoveryStep, SessionEndReason, SignInMethod, UnlockReason,
};
use gatehouse_domain::contact::ContactKind;
use gatehouse_domain::context::RequestContext;
use gatehouse_domain::AccountFact;
use gatehouse_store::{StoreError, StoredEvent};
use sqlx::{AnyConnection, AnyPool};

use crate::cell::Cell;
use crate::runner::ChangeProjection;
use crate::time::to_ms;

/// The projection's name (checkpoint key) and table.
pub const NAME: &str = "activity_v1";

macro_rules! kinds {
    ($($variant:ident => $name:literal,)*) => {
        /// What an activity entry is about: a closed list, the `kind` of the API and exports.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ActivityKind {
            $(#[doc = $name] $variant,)*
        }

        impl ActivityKind {
            /// Every kind, in the order the documentation lists them.
            pub const ALL: &'static [ActivityKind] = &[$(ActivityKind::$variant,)*];

            /// The stored and wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ActivityKind::$variant => $name,)*
                }
            }

            /// The kind of a wire name.
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(ActivityKind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

kinds! {
    AccountCreated => "account_created",
    SignUpWithYourIdentifier => "sign_up_with_your_identifier",
    ContactClaimAttempted => "contact_claim_attempted",
    SignIn => "sign_in",
    SignInFailed => "sign_in_failed",
    SignInRefusedLocked => "sign_in_refused_locked",
    SignInRefusedFrozen => "sign_in_refused_frozen",
    AccountFrozen => "account_frozen",
    AccountUnfrozen => "account_unfrozen",
    StaffAction => "staff_action",
    AccountLocked => "account_locked",
    AccountUnlocked => "account_unlocked",
    SecondFactorRequested => "second_factor_requested",
    SecondFactorVerified => "second_factor_verified",
    SecondFactorFailed => "second_factor_failed",
    PasswordConfirmationFailed => "password_confirmation_failed",
    SessionSteppedUp => "session_stepped_up",
    SessionEnded => "session_ended",
    DeviceTrusted => "device_trusted",
    DeviceRenamed => "device_renamed",
    DeviceForgotten => "device_forgotten",
    CodeIssued => "code_issued",
    CodeDelivered => "code_delivered",
    CodeDeliveryFailed => "code_delivery_failed",
    CodeRejected => "code_rejected",
    CodeExhausted => "code_exhausted",
    CodeUsed => "code_used",
    CodeCeilingReached => "code_ceiling_reached",
    SmsWithheld => "sms_withheld",
    NoticeDelivered => "notice_delivered",
    NoticeDeliveryFailed => "notice_delivery_failed",
    ContactChangeRequested => "contact_change_requested",
    ContactChanged => "contact_changed",
    ContactVerified => "contact_verified",
    ContactReleased => "contact_released",
    PasswordReset => "password_reset",
    PasswordChanged => "password_changed",
    PhraseSet => "phrase_set",
    PhraseRemoved => "phrase_removed",
    TotpEnrolled => "totp_enrolled",
    BackupCodesGenerated => "backup_codes_generated",
    SecondFactorRemoved => "second_factor_removed",
    SecurityKeyRegistered => "security_key_registered",
    SecurityKeyRenamed => "security_key_renamed",
    SecurityKeyRemoved => "security_key_removed",
    SecurityKeyCounterRegressed => "security_key_counter_regressed",
    PasskeyRegistered => "passkey_registered",
    PasskeyRemoved => "passkey_removed",
    PasskeySignInFailed => "passkey_sign_in_failed",
    PasskeysRevoked => "passkeys_revoked",
    CooldownStarted => "cooldown_started",
    ApiKeyCreated => "api_key_created",
    ApiKeyRotated => "api_key_rotated",
    ApiKeyRevoked => "api_key_revoked",
    WhitelistAddressProposed => "whitelist_address_proposed",
    WhitelistAddressAdded => "whitelist_address_added",
    WhitelistAddressRemoved => "whitelist_address_removed",
    WhitelistModeChanged => "whitelist_mode_changed",
    RecoveryStepPassed => "recovery_step_passed",
    RecoveryEvidenceSubmitted => "recovery_evidence_submitted",
    RecoveryReviewed => "recovery_reviewed",
    RecoveryCancelled => "recovery_cancelled",
    RecoveryCompleted => "recovery_completed",
    RecoveryRequestSetAside => "recovery_request_set_aside",
}

/// How an entry ended: a closed list.
pub const OUTCOMES: &[&str] = &["succeeded", "failed", "refused", "recorded"];

/// What one fact shows in the activity: its kind, outcome, request context and plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described<'a> {
    /// What it is about.
    pub kind: ActivityKind,
    /// One of [`OUTCOMES`].
    pub outcome: &'static str,
    /// Where the request came from, when the fact records it.
    pub context: Option<&'a RequestContext>,
    /// Plain words, without secrets.
    pub detail: String,
}

/// One row of the read model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRecord {
    /// Account (or stand-in aggregate of an unknown identifier).
    pub account_id: String,
    /// Event sequence (unique per account; the paging cursor).
    pub sequence: i64,
    /// When, in milliseconds since the epoch.
    pub at_ms: i64,
    /// What it is about.
    pub kind: ActivityKind,
    /// How it ended.
    pub outcome: &'static str,
    /// Client IP.
    pub ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// Device id the frontend supplied.
    pub device: Option<String>,
    /// Plain words.
    pub detail: String,
}

/// One row as read back for the owner.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ActivityRow {
    /// Event sequence (the paging cursor).
    pub sequence: i64,
    /// When, in milliseconds since the epoch.
    pub at_ms: i64,
    /// One of [`ActivityKind::ALL`]'s names.
    pub kind: String,
    /// One of [`OUTCOMES`].
    pub outcome: String,
    /// Client IP.
    pub ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// Device id.
    pub device: Option<String>,
    /// Plain words.
    pub detail: String,
}

/// Which rows to read.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    /// Only this kind.
    pub kind: Option<ActivityKind>,
    /// Strictly before this sequence (the cursor).
    pub before: Option<i64>,
    /// At or after this instant (ms).
    pub from_ms: Option<i64>,
    /// At or before this instant (ms).
    pub to_ms: Option<i64>,
}

/// Newest-first page of an account's activity.
pub async fn page(
    pool: &AnyPool,
    account_id: &str,
    filter: &ActivityFilter,
    limit: i64,
) -> Result<Vec<ActivityRow>, StoreError> {
    Ok(sqlx::query_as(
        "select sequence, at_ms, kind, outcome, ip, user_agent, device, detail
           from activity_v1
          where account_id = $1 and sequence < $2 and at_ms >= $3 and at_ms <= $4
            and ($5 = '' or kind = $5)
          order by sequence desc limit $6",
    )
    .bind(account_id)
    .bind(filter.before.unwrap_or(i64::MAX))
    .bind(filter.from_ms.unwrap_or(i64::MIN))
    .bind(filter.to_ms.unwrap_or(i64::MAX))
    .bind(filter.kind.map_or("", ActivityKind::as_str))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

fn door_words(door: &gatehouse_domain::Door) -> &'static str {
    if door.device_id().is_some() {
        " from a trusted device"
    } else {
        ""
    }
}

fn session_end_words(reason: &SessionEndReason) -> &'static str {
    match reason {
        SessionEndReason::LoggedOut => "signed out",
        SessionEndReason::Revoked { .. } => "ended from another session",
        SessionEndReason::Evicted => "ended: too many sessions were open",
        SessionEndReason::PasswordReset => "ended by a password reset",
        SessionEndReason::PasswordChanged => "ended by a password change",
        SessionEndReason::Recovery => "ended by a lost-second-factor recovery",
        SessionEndReason::Frozen => "ended: the account was frozen",
        SessionEndReason::Staff => "ended by staff (every session signed out)",
    }
}

fn freeze_actor_words(by: &FreezeActor) -> &'static str {
    match by {
        FreezeActor::Owner { .. } => "by you, from a signed-in session",
        FreezeActor::Link { .. } => "with the link of a security notice",
        FreezeActor::Recovery { .. } => "by you, with codes and a second factor",
        FreezeActor::Staff { .. } => "by staff",
    }
}

fn contact_words(kind: ContactKind) -> &'static str {
    match kind {
        ContactKind::Email => "email",
        ContactKind::Phone => "phone",
    }
}

fn cooldown_words(reason: CooldownReason) -> &'static str {
    match reason {
        CooldownReason::PasswordReset => "the password was reset",
        CooldownReason::SecondFactorRemoved => "a second factor was removed",
        CooldownReason::LostFactorRecovery => "a lost second factor was recovered",
        CooldownReason::SecondFactorAdded => "a second factor was added",
        CooldownReason::WithdrawKeyCreated => "an API key that may withdraw was created",
        CooldownReason::WhitelistDisabled => "whitelist-only withdrawals were turned off",
        CooldownReason::ContactChanged => "a contact was changed",
        CooldownReason::PasswordChanged => "the password was changed",
        CooldownReason::Unfrozen => "the account was unfrozen",
    }
}

fn instant(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What a fact shows in the activity; `None` for facts that are bookkeeping rather than
/// something the owner did or should know (a rehash, a session's idle extension, a flow's start,
/// which its code shows, a key's signature counter moving on).
pub fn describe(fact: &AccountFact) -> Option<Described<'_>> {
    use ActivityKind as K;
    let d = |kind, outcome, context, detail: String| {
        Some(Described {
            kind,
            outcome,
            context,
            detail,
        })
    };
    match fact {
        AccountFact::AccountRegistered { context, .. } => d(
            K::AccountCreated,
            "succeeded",
            Some(context),
            "Account created".into(),
        ),
        AccountFact::DuplicateRegistrationAttempted { context } => d(
            K::SignUpWithYourIdentifier,
            "refused",
            Some(context),
            "Someone tried to sign up with your email or phone; nothing changed".into(),
        ),
        AccountFact::IdentifierClaimAttempted { context } => d(
            K::ContactClaimAttempted,
            "refused",
            Some(context),
            "Another account tried to take your email or phone; nothing changed".into(),
        ),
        AccountFact::LoginSucceeded {
            context,
            door,
            method,
            ..
        } => d(
            K::SignIn,
            "succeeded",
            Some(context),
            match method {
                SignInMethod::Password => format!("Signed in{}", door_words(door)),
                SignInMethod::Passkey => format!("Signed in with a passkey{}", door_words(door)),
            },
        ),
        AccountFact::LoginFailed {
            reason,
            context,
            door,
            ..
        } => {
            let why = match reason {
                LoginFailureReason::WrongPassword => "wrong password",
                LoginFailureReason::UnknownIdentifier => "unknown identifier",
                LoginFailureReason::ContactUnverified => "no verified contact yet",
            };
            d(
                K::SignInFailed,
                "failed",
                Some(context),
                format!("Sign-in failed{}: {why}", door_words(door)),
            )
        }
        AccountFact::LoginRejectedWhileLocked {
            locked_until,
            context,
            door,
        } => d(
            K::SignInRefusedLocked,
            "refused",
            Some(context),
            format!(
                "Sign-in refused{}: locked until {}",
                door_words(door),
                instant(locked_until)
            ),
        ),
        AccountFact::LoginRefusedWhileFrozen { context, door } => d(
            K::SignInRefusedFrozen,
            "refused",
            Some(context),
            format!(
                "Sign-in refused{}: the account is frozen",
                door_words(door)
            ),
        ),
        AccountFact::AccountFrozen { by, context, .. } => d(
            K::AccountFrozen,
            "succeeded",
            Some(context),
            format!("Account frozen {}", freeze_actor_words(by)),
        ),
        AccountFact::AccountUnfrozen {
            by,
            hold_until,
            context,
            ..
        } => d(
            K::AccountUnfrozen,
            "succeeded",
            Some(context),
            match hold_until {
                Some(until) => format!(
                    "Account unfrozen {}; it stays frozen until {}",
                    freeze_actor_words(by),
                    instant(until)
                ),
                None => format!("Account unfrozen {}", freeze_actor_words(by)),
            },
        ),
        AccountFact::StaffActionTaken {
            action, context, ..
        } => d(
            K::StaffAction,
            "recorded",
            Some(context),
            format!(
                "Staff acted on the account: {}",
                action.as_str().replace('_', " ")
            ),
        ),
        AccountFact::AccountLocked {
            until,
            failed_attempts,
            door,
            ..
        } => d(
            K::AccountLocked,
            "recorded",
            None,
            format!(
                "Sign-in locked{} until {} after {failed_attempts} failed attempts",
                if door.device_id().is_some() {
                    " for one trusted device"
                } else {
                    " for untrusted devices"
                },
                instant(until)
            ),
        ),
        AccountFact::AccountUnlocked { reason, context } => d(
            K::AccountUnlocked,
            "succeeded",
            Some(context),
            match reason {
                UnlockReason::UnlockCode => "Unlocked with an unlock code".into(),
                UnlockReason::PasswordReset => "Unlocked by a password reset".into(),
                UnlockReason::Staff => "Unlocked by staff".into(),
            },
        ),
        AccountFact::MfaChallengeIssued { context, .. } => d(
            K::SecondFactorRequested,
            "recorded",
            Some(context),
            "Password accepted; second factor requested".into(),
        ),
        AccountFact::SecondFactorVerified {
            method, context, ..
        } => d(
            K::SecondFactorVerified,
            "succeeded",
            Some(context),
            format!("Second factor accepted ({method})"),
        ),
        AccountFact::SecondFactorFailed {
            method, context, ..
        } => d(
            K::SecondFactorFailed,
            "failed",
            Some(context),
            format!("Wrong second factor ({method})"),
        ),
        AccountFact::PasswordConfirmationFailed {
            action, context, ..
        } => d(
            K::PasswordConfirmationFailed,
            "failed",
            Some(context),
            format!("Wrong password to confirm {}", action.replace('_', " ")),
        ),
        AccountFact::SessionSteppedUp { method, .. } => d(
            K::SessionSteppedUp,
            "succeeded",
            None,
            format!("Session confirmed for sensitive changes ({method})"),
        ),
        AccountFact::SessionEnded {
            reason, context, ..
        } => d(
            K::SessionEnded,
            "recorded",
            Some(context),
            format!("Session {}", session_end_words(reason)),
        ),
        AccountFact::DeviceTrusted { context, .. } => d(
            K::DeviceTrusted,
            "recorded",
            Some(context),
            "This device is remembered for sign-in".into(),
        ),
        AccountFact::DeviceRenamed { name, context, .. } => d(
            K::DeviceRenamed,
            "succeeded",
            Some(context),
            format!("Device renamed to \"{name}\""),
        ),
        AccountFact::DeviceRevoked {
            reason, context, ..
        } => d(
            K::DeviceForgotten,
            "recorded",
            Some(context),
            match reason {
                DeviceRevokeReason::Owner => "Device forgotten".into(),
                DeviceRevokeReason::PasswordReset => {
                    "Device forgotten: the password was reset".into()
                }
                DeviceRevokeReason::PasswordChanged => {
                    "Device forgotten: the password was changed".into()
                }
                DeviceRevokeReason::Frozen => "Device forgotten: the account was frozen".into(),
            },
        ),
        AccountFact::CodeIssued {
            channel,
            deliverable,
            context,
            ..
        } => d(
            K::CodeIssued,
            "recorded",
            Some(context),
            if *deliverable {
                format!("One-time code issued, to be sent by {}", channel.as_str())
            } else {
                format!(
                    "One-time code issued but not sent: {} is not a contact it may go to",
                    channel.as_str()
                )
            },
        ),
        AccountFact::CodeAttemptFailed {
            attempts, context, ..
        } => d(
            K::CodeRejected,
            "failed",
            Some(context),
            format!("Wrong one-time code ({attempts} so far)"),
        ),
        AccountFact::CodeExhausted { .. } => d(
            K::CodeExhausted,
            "recorded",
            None,
            "One-time code stopped working after too many wrong tries".into(),
        ),
        AccountFact::CodeUsed { context, .. } => d(
            K::CodeUsed,
            "succeeded",
            Some(context),
            "One-time code accepted".into(),
        ),
        AccountFact::CodeCeilingReached { until, .. } => d(
            K::CodeCeilingReached,
            "recorded",
            None,
            format!(
                "Too many codes were asked for from unknown devices; only trusted devices get codes until {}",
                instant(until)
            ),
        ),
        AccountFact::SmsWithheld { .. } => d(
            K::SmsWithheld,
            "refused",
            None,
            "A text message was not sent: the hourly SMS budget was spent".into(),
        ),
        AccountFact::NotificationDelivered {
            topic,
            channel,
            destination,
            ..
        } => {
            let (kind, what) = if topic == "code" {
                (K::CodeDelivered, "One-time code".to_string())
            } else {
                (
                    K::NoticeDelivered,
                    format!("Security notice ({})", topic.replace('_', " ")),
                )
            };
            d(
                kind,
                "succeeded",
                None,
                format!("{what} sent by {} to {destination}", channel.as_str()),
            )
        }
        AccountFact::NotificationFailed {
            topic,
            channel,
            destination,
            permanent,
            ..
        } => {
            let (kind, what) = if topic == "code" {
                (K::CodeDeliveryFailed, "One-time code".to_string())
            } else {
                (
                    K::NoticeDeliveryFailed,
                    format!("Security notice ({})", topic.replace('_', " ")),
                )
            };
            let to = if destination.is_empty() {
                String::new()
            } else {
                format!(" to {destination}")
            };
            d(
                kind,
                "failed",
                None,
                format!(
                    "{what} could not be sent by {}{to}{}",
                    channel.as_str(),
                    if *permanent { "" } else { "; will retry" }
                ),
            )
        }
        AccountFact::ContactChangeRequested {
            kind,
            previous,
            context,
            ..
        } => d(
            K::ContactChangeRequested,
            "recorded",
            Some(context),
            format!(
                "{} {} requested; waiting for its code",
                if previous.is_some() {
                    "New"
                } else {
                    "Additional"
                },
                contact_words(*kind)
            ),
        ),
        AccountFact::ContactChanged { kind, context, .. } => d(
            K::ContactChanged,
            "succeeded",
            Some(context),
            format!("The {} was changed", contact_words(*kind)),
        ),
        AccountFact::ContactVerified { kind, .. } => d(
            K::ContactVerified,
            "succeeded",
            None,
            format!("The {} was verified", contact_words(*kind)),
        ),
        AccountFact::UnverifiedContactReleased { kind, context, .. } => d(
            K::ContactReleased,
            "recorded",
            Some(context),
            format!(
                "An unverified {} was given up to a newer sign-up",
                contact_words(*kind)
            ),
        ),
        AccountFact::PasswordReset { context, .. } => d(
            K::PasswordReset,
            "succeeded",
            Some(context),
            "Password reset with a code".into(),
        ),
        AccountFact::PasswordChanged { context, .. } => d(
            K::PasswordChanged,
            "succeeded",
            Some(context),
            "Password changed while signed in".into(),
        ),
        AccountFact::AntiPhishingPhraseSet { context, .. } => d(
            K::PhraseSet,
            "succeeded",
            Some(context),
            "Anti-phishing phrase set".into(),
        ),
        AccountFact::AntiPhishingPhraseRemoved { context } => d(
            K::PhraseRemoved,
            "succeeded",
            Some(context),
            "Anti-phishing phrase removed".into(),
        ),
        AccountFact::TotpEnrolled { context, .. } => d(
            K::TotpEnrolled,
            "succeeded",
            Some(context),
            "Authenticator app added as a second factor".into(),
        ),
        AccountFact::BackupCodesGenerated { verifiers, context } => d(
            K::BackupCodesGenerated,
            "succeeded",
            Some(context),
            format!(
                "{} new backup codes made; earlier ones stopped working",
                verifiers.len()
            ),
        ),
        AccountFact::SecondFactorRemoved { context } => d(
            K::SecondFactorRemoved,
            "succeeded",
            Some(context),
            "Second factors removed".into(),
        ),
        AccountFact::SecurityKeyRegistered { name, context, .. } => d(
            K::SecurityKeyRegistered,
            "succeeded",
            Some(context),
            format!("Security key \"{name}\" added"),
        ),
        AccountFact::SecurityKeyRenamed { name, .. } => d(
            K::SecurityKeyRenamed,
            "succeeded",
            None,
            format!("Security key renamed to \"{name}\""),
        ),
        AccountFact::SecurityKeyRemoved { context, .. } => d(
            K::SecurityKeyRemoved,
            "succeeded",
            Some(context),
            "Security key removed".into(),
        ),
        AccountFact::SecurityKeyCounterRegressed { context, .. } => d(
            K::SecurityKeyCounterRegressed,
            "refused",
            Some(context),
            "A security key answered with an old counter (it may be cloned); refused".into(),
        ),
        AccountFact::HighRiskCooldownStarted { until, reason } => d(
            K::CooldownStarted,
            "recorded",
            None,
            format!(
                "Withdrawals and other high-risk changes paused until {}: {}",
                instant(until),
                cooldown_words(*reason)
            ),
        ),
        AccountFact::ApiKeyCreated {
            name,
            scopes,
            context,
            ..
        } => d(
            K::ApiKeyCreated,
            "succeeded",
            Some(context),
            format!(
                "API key \"{name}\" created ({})",
                scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        AccountFact::ApiKeyRotated { context, .. } => d(
            K::ApiKeyRotated,
            "succeeded",
            Some(context),
            "API key given a new secret".into(),
        ),
        AccountFact::ApiKeyRevoked { context, .. } => d(
            K::ApiKeyRevoked,
            "succeeded",
            Some(context),
            "API key revoked".into(),
        ),
        AccountFact::WithdrawalAddressProposed {
            asset,
            network,
            context,
            ..
        } => d(
            K::WhitelistAddressProposed,
            "recorded",
            Some(context),
            format!("Withdrawal address for {asset} on {network} proposed; waiting for its code"),
        ),
        AccountFact::WithdrawalAddressAdded {
            usable_from,
            context,
            ..
        } => d(
            K::WhitelistAddressAdded,
            "succeeded",
            Some(context),
            format!(
                "Withdrawal address whitelisted, usable from {}",
                instant(usable_from)
            ),
        ),
        AccountFact::WithdrawalAddressRemoved { context, .. } => d(
            K::WhitelistAddressRemoved,
            "succeeded",
            Some(context),
            "Withdrawal address removed from the whitelist".into(),
        ),
        AccountFact::WhitelistModeChanged { enabled, context } => d(
            K::WhitelistModeChanged,
            "succeeded",
            Some(context),
            if *enabled {
                "Withdrawals only to whitelisted addresses: on".into()
            } else {
                "Withdrawals only to whitelisted addresses: off".into()
            },
        ),
        AccountFact::RecoveryStepPassed { step, .. } => d(
            K::RecoveryStepPassed,
            "succeeded",
            None,
            match step {
                RecoveryStep::Email => "Lost-second-factor recovery: email code accepted".into(),
                RecoveryStep::Phone => "Lost-second-factor recovery: phone code accepted".into(),
            },
        ),
        AccountFact::RecoveryEvidenceSubmitted { context, .. } => d(
            K::RecoveryEvidenceSubmitted,
            "recorded",
            Some(context),
            "Lost-second-factor recovery: identity evidence submitted for review".into(),
        ),
        AccountFact::RecoveryReviewed {
            approved,
            hold_until,
            ..
        } => d(
            K::RecoveryReviewed,
            if *approved { "succeeded" } else { "refused" },
            None,
            match (approved, hold_until) {
                (true, Some(until)) => format!(
                    "Lost-second-factor recovery approved; factors removed after {}",
                    instant(until)
                ),
                (true, None) => "Lost-second-factor recovery approved".into(),
                (false, _) => "Lost-second-factor recovery denied".into(),
            },
        ),
        AccountFact::RecoveryCancelled { context, .. } => d(
            K::RecoveryCancelled,
            "succeeded",
            Some(context),
            "Lost-second-factor recovery cancelled".into(),
        ),
        AccountFact::RecoveryCompleted { context, .. } => d(
            K::RecoveryCompleted,
            "succeeded",
            Some(context),
            "Lost-second-factor recovery completed; second factors removed".into(),
        ),
        AccountFact::RecoveryRequestSetAside { .. } => d(
            K::RecoveryRequestSetAside,
            "refused",
            None,
            "A new lost-second-factor request was set aside: a recovery is already in progress"
                .into(),
        ),
        AccountFact::PasskeyRegistered { name, context, .. } => d(
            K::PasskeyRegistered,
            "succeeded",
            Some(context),
            format!("Passkey \"{name}\" added"),
        ),
        AccountFact::PasskeyRemoved { context, .. } => d(
            K::PasskeyRemoved,
            "succeeded",
            Some(context),
            "Passkey removed".into(),
        ),
        AccountFact::PasskeySignInFailed {
            reason, context, ..
        } => d(
            K::PasskeySignInFailed,
            "failed",
            Some(context),
            format!(
                "Passkey sign-in refused ({})",
                match reason {
                    PasskeyFailureReason::UnknownPasskey => "unknown passkey",
                    PasskeyFailureReason::UserNotVerified => "user not verified",
                    PasskeyFailureReason::InvalidAssertion => "invalid answer",
                    PasskeyFailureReason::CounterRegressed => "counter went back: possible clone",
                    PasskeyFailureReason::ContactUnverified => "no verified contact yet",
                }
            ),
        ),
        AccountFact::PasskeysRevoked { key_ids, context } => d(
            K::PasskeysRevoked,
            "recorded",
            Some(context),
            format!("{} passkey(s) revoked", key_ids.len()),
        ),
        // Bookkeeping, not shown.
        AccountFact::PasswordRehashed { .. }
        | AccountFact::PasskeyUsed { .. }
        | AccountFact::SessionStarted { .. }
        | AccountFact::SessionExtended { .. }
        | AccountFact::FlowStarted { .. }
        | AccountFact::CodeExpired { .. }
        | AccountFact::ResetFactorAsked { .. }
        | AccountFact::TotpEnrolmentStarted { .. }
        | AccountFact::SecurityKeyUsed { .. } => None,
    }
}

/// The pure fold: the row an event makes, if any.
pub fn record(event: &StoredEvent) -> Result<Option<ActivityRecord>, StoreError> {
    let Some(e) = crate::account_event(event)? else {
        return Ok(None);
    };
    Ok(describe(&e.fact).map(|d| ActivityRecord {
        account_id: event.aggregate_id.clone(),
        sequence: event.sequence,
        at_ms: to_ms(e.at),
        kind: d.kind,
        outcome: d.outcome,
        ip: d.context.and_then(|c| c.ip.clone()),
        user_agent: d.context.and_then(|c| c.user_agent.clone()),
        device: d.context.and_then(|c| c.device_id.clone()),
        detail: d.detail,
    }))
}

/// The `activity_v1` projection.
pub fn projection() -> ChangeProjection<ActivityRecord> {
    ChangeProjection {
        name: NAME,
        tables: &["activity_v1"],
        // Only inserted into, with `insert_new_rows`: the key too.
        deferred_indexes: &["activity_v1_pkey", "activity_v1_by_kind"],
        changes: |event| Ok(record(event)?.into_iter().collect()),
        write: |conn, r| Box::pin(write_many(conn, std::slice::from_ref(r))),
        write_many: Some(|conn, rows| Box::pin(write_many(conn, rows))),
    }
}

async fn write_many(conn: &mut AnyConnection, rows: &[ActivityRecord]) -> Result<(), StoreError> {
    crate::batch::insert_new_rows(
        conn,
        "activity_v1",
        &[
            "account_id",
            "sequence",
            "at_ms",
            "kind",
            "outcome",
            "ip",
            "user_agent",
            "device",
            "detail",
        ],
        rows,
        |r, c| {
            c.extend([
                Cell::from(&r.account_id),
                Cell::from(r.sequence),
                Cell::from(r.at_ms),
                Cell::from(r.kind.as_str()),
                Cell::from(r.outcome),
                Cell::from(&r.ip),
                Cell::from(&r.user_agent),
                Cell::from(&r.device),
                Cell::from(&r.detail),
            ])
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::stored;
    use gatehouse_domain::policy::Channel;
    use gatehouse_domain::ApiScope;
    use uuid::Uuid;

    fn ctx() -> RequestContext {
        RequestContext::new(
            Some("203.0.113.5".into()),
            Some("=cmd|' /C calc'!A0".into()),
            Some("dev-1".into()),
        )
    }

    #[test]
    fn test_kind_names_are_unique_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for kind in ActivityKind::ALL {
            assert!(seen.insert(kind.as_str()), "{}", kind.as_str());
            assert_eq!(ActivityKind::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(ActivityKind::parse("no_such_kind"), None);
    }

    #[test]
    fn test_sign_ins_map_to_their_kinds_with_context() {
        let fact = AccountFact::LoginSucceeded {
            session_id: Uuid::nil(),
            context: ctx(),
            door: Default::default(),
            familiar: false,
            method: SignInMethod::Password,
        };
        let ok = describe(&fact).unwrap();
        assert_eq!((ok.kind, ok.outcome), (ActivityKind::SignIn, "succeeded"));
        assert_eq!(ok.context, Some(&ctx()));
        let passkey = AccountFact::LoginSucceeded {
            session_id: Uuid::nil(),
            context: ctx(),
            door: Default::default(),
            familiar: false,
            method: SignInMethod::Passkey,
        };
        let described = describe(&passkey).unwrap();
        assert_eq!(described.kind, ActivityKind::SignIn);
        assert!(described.detail.contains("passkey"), "{}", described.detail);
        let fact = AccountFact::LoginFailed {
            reason: LoginFailureReason::WrongPassword,
            consecutive_failures: 2,
            context: ctx(),
            door: Default::default(),
        };
        let failed = describe(&fact).unwrap();
        assert_eq!(
            (failed.kind, failed.outcome, failed.detail.as_str()),
            (
                ActivityKind::SignInFailed,
                "failed",
                "Sign-in failed: wrong password"
            )
        );
    }

    #[test]
    fn test_deliveries_name_the_masked_destination_and_tell_codes_from_notices() {
        let fact = AccountFact::NotificationDelivered {
            notification_id: "a/3/email".into(),
            topic: "code".into(),
            channel: Channel::Email,
            destination: "a***@example.com".into(),
            attempts: 1,
        };
        let code = describe(&fact).unwrap();
        assert_eq!(code.kind, ActivityKind::CodeDelivered);
        assert_eq!(
            code.detail,
            "One-time code sent by email to a***@example.com"
        );
        let fact = AccountFact::NotificationFailed {
            notification_id: "a/4/sms".into(),
            topic: "new_sign_in".into(),
            channel: Channel::Sms,
            destination: "+14*****0100".into(),
            reason: "550 refused".into(),
            attempts: 6,
            permanent: true,
        };
        let notice = describe(&fact).unwrap();
        assert_eq!(
            (notice.kind, notice.outcome),
            (ActivityKind::NoticeDeliveryFailed, "failed")
        );
        assert!(notice.detail.contains("+14*****0100"), "{}", notice.detail);
        assert!(!notice.detail.contains("550"), "provider text stays out");
    }

    #[test]
    fn test_no_row_holds_a_secret() {
        let verifier = "f00dfeedverifier";
        let facts = [
            AccountFact::CodeIssued {
                flow_id: Uuid::nil(),
                code_id: Uuid::nil(),
                channel: Channel::Email,
                verifier: verifier.into(),
                expires_at: DateTime::from_timestamp_millis(0).unwrap(),
                deliverable: true,
                context: ctx(),
                requester: None,
            },
            AccountFact::ApiKeyCreated {
                key_id: Uuid::nil(),
                name: "bot".into(),
                scopes: vec![ApiScope::Read, ApiScope::Trade],
                allowed_ips: vec![],
                expires_at: None,
                verifier: verifier.into(),
                context: ctx(),
            },
            AccountFact::BackupCodesGenerated {
                verifiers: vec![verifier.into()],
                context: ctx(),
            },
            AccountFact::ContactChangeRequested {
                kind: ContactKind::Email,
                contact: gatehouse_domain::contact::SealedContact {
                    sealed: verifier.into(),
                    lookup: verifier.into(),
                },
                previous: None,
                flow_id: Uuid::nil(),
                unavailable: false,
                context: ctx(),
            },
            AccountFact::AntiPhishingPhraseSet {
                sealed_phrase: verifier.into(),
                context: ctx(),
            },
        ];
        for fact in &facts {
            let d = describe(fact).unwrap();
            assert!(
                !d.detail.contains(verifier),
                "{}: {}",
                fact.name(),
                d.detail
            );
        }
        let key = describe(&facts[1]).unwrap();
        assert_eq!(key.detail, "API key \"bot\" created (read, trade)");
    }

    #[test]
    fn test_bookkeeping_facts_make_no_row_and_rows_keep_the_sequence() {
        assert!(describe(&AccountFact::SessionExtended {
            session_id: Uuid::nil(),
            idle_expires_at: DateTime::from_timestamp_millis(0).unwrap(),
        })
        .is_none());
        let event = stored(
            "acct",
            7,
            1_000,
            AccountFact::DeviceRenamed {
                device_id: Uuid::nil(),
                name: "Work laptop".into(),
                context: ctx(),
            },
        );
        let r = record(&event).unwrap().unwrap();
        assert_eq!(
            (r.sequence, r.at_ms, r.kind, r.detail.as_str()),
            (
                7,
                1_000,
                ActivityKind::DeviceRenamed,
                "Device renamed to \"Work laptop\""
            )
        );
        assert_eq!(r.device.as_deref(), Some("dev-1"));
    }
}
