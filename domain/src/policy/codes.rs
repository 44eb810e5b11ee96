//! One-time codes: what they are for, where they go, and the limits on issuing and trying them.
//!
//! A code is issued for a *flow* (forgot password, unlock, contact verification). The aggregate
//! stores only a verifier keyed with a server secret (an HMAC computed at the edge), because a
//! plain hash of a 6-digit code is a million guesses away from the code itself.
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::contact::ContactKind;

/// Where a code or notice is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// To the account's email address.
    Email,
    /// By text message to the account's phone.
    Sms,
}

impl Channel {
    /// The contact kind this channel delivers to.
    pub fn contact_kind(self) -> ContactKind {
        match self {
            Self::Email => ContactKind::Email,
            Self::Sms => ContactKind::Phone,
        }
    }

    /// The channel that delivers to a contact kind.
    pub fn for_contact(kind: ContactKind) -> Self {
        match kind {
            ContactKind::Email => Self::Email,
            ContactKind::Phone => Self::Sms,
        }
    }

    /// The other channel.
    pub fn other(self) -> Self {
        match self {
            Self::Email => Self::Sms,
            Self::Sms => Self::Email,
        }
    }

    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }
}

/// What a flow achieves once its code is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    /// Confirm the account's email address.
    VerifyEmail,
    /// Confirm the account's phone number.
    VerifyPhone,
    /// Set a new password without the old one.
    ResetPassword,
    /// End a lockout early.
    Unlock,
    /// Recover from a lost second factor: email code, phone code (when verified), identity
    /// evidence, then manual review and a hold.
    LostSecondFactor,
    /// Confirm a new withdrawal address for the whitelist (code to the verified email).
    WhitelistAddress,
    /// Unfreeze a frozen account: a code to a verified contact, then a current second factor.
    Unfreeze,
}

impl FlowKind {
    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::VerifyPhone => "verify_phone",
            Self::ResetPassword => "reset_password",
            Self::Unlock => "unlock",
            Self::LostSecondFactor => "lost_second_factor",
            Self::WhitelistAddress => "whitelist_address",
            Self::Unfreeze => "unfreeze",
        }
    }

    /// The verification flow of a contact kind.
    pub fn verify(kind: ContactKind) -> Self {
        match kind {
            ContactKind::Email => Self::VerifyEmail,
            ContactKind::Phone => Self::VerifyPhone,
        }
    }

    /// The contact a verification flow confirms; `None` for recovery flows.
    pub fn verifies(self) -> Option<ContactKind> {
        match self {
            Self::VerifyEmail => Some(ContactKind::Email),
            Self::VerifyPhone => Some(ContactKind::Phone),
            Self::ResetPassword
            | Self::Unlock
            | Self::LostSecondFactor
            | Self::WhitelistAddress
            | Self::Unfreeze => None,
        }
    }

    /// The channel the flow's (first) code must go by, when its step proves a contact: a
    /// verification its contact, a whitelist confirmation the verified email, a lost-second-
    /// factor recovery the email (then the phone; see `Account::bound_channel`). `None` when the
    /// owner may choose (forgot password, unlock). A resend on another channel is refused.
    pub fn bound_channel(self) -> Option<Channel> {
        match self {
            Self::VerifyEmail | Self::WhitelistAddress | Self::LostSecondFactor => {
                Some(Channel::Email)
            }
            Self::VerifyPhone => Some(Channel::Sms),
            Self::ResetPassword | Self::Unlock | Self::Unfreeze => None,
        }
    }

    /// Steps a person sees: identifying themselves counts as the first step of a recovery.
    pub fn steps_total(self) -> u32 {
        match self {
            Self::VerifyEmail | Self::VerifyPhone => 1,
            Self::ResetPassword | Self::Unlock | Self::WhitelistAddress | Self::Unfreeze => 2,
            Self::LostSecondFactor => 4,
        }
    }

    /// What the frontend should ask for while a code is awaited.
    pub fn next_action(self) -> &'static str {
        match self {
            Self::VerifyEmail | Self::VerifyPhone => "enter_code",
            Self::ResetPassword => "enter_code_and_new_password",
            Self::Unlock | Self::LostSecondFactor | Self::WhitelistAddress => "enter_code",
            Self::Unfreeze => "enter_code_and_second_factor",
        }
    }
}

/// Limits on codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodePolicy {
    /// A code expires this long after it is issued.
    pub ttl: Duration,
    /// Wrong tries that exhaust a code.
    pub max_attempts: u32,
    /// Least time between two codes of one flow (resend).
    pub resend_cooldown: Duration,
    /// Most codes issued within an hour to one account for one requester (a trusted device,
    /// or the client network of untrusted requests), all flows together.
    pub max_per_hour: u32,
    /// Most codes issued within an hour to one account for untrusted requesters together (the
    /// hard ceiling; higher than `max_per_hour`). Trusted devices' requests are exempt.
    pub account_ceiling_per_hour: u32,
}

impl Default for CodePolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::minutes(10),
            max_attempts: 5,
            resend_cooldown: Duration::seconds(60),
            max_per_hour: 10,
            account_ceiling_per_hour: 30,
        }
    }
}

/// Why a code may not be issued now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueRefusal {
    /// Too soon after the previous code of this flow.
    Cooldown {
        /// When a new code may be issued.
        until: DateTime<Utc>,
    },
    /// The hourly cap is reached (the requester's budget, or the account's ceiling).
    HourlyCap {
        /// When the oldest counted code leaves the window.
        until: DateTime<Utc>,
    },
}

impl CodePolicy {
    /// Checks whether a code may be issued at `now`, given when this flow's last code was issued
    /// and when the account's codes of the past hour were issued.
    pub fn may_issue(
        &self,
        now: DateTime<Utc>,
        flow_last_issued: Option<DateTime<Utc>>,
        recent_issues: &[DateTime<Utc>],
    ) -> Result<(), IssueRefusal> {
        if let Some(last) = flow_last_issued {
            let until = last + self.resend_cooldown;
            if now < until {
                return Err(IssueRefusal::Cooldown { until });
            }
        }
        within_hour(now, recent_issues, self.max_per_hour)
    }

    /// Checks the account's ceiling for an untrusted request at `now`, given the issue times of
    /// the past hour's codes that count toward it. `Ok(true)` when this code reaches it.
    pub fn within_ceiling(
        &self,
        now: DateTime<Utc>,
        ceiling_issues: &[DateTime<Utc>],
    ) -> Result<bool, IssueRefusal> {
        let cap = self.account_ceiling_per_hour.max(self.max_per_hour);
        within_hour(now, ceiling_issues, cap)?;
        let window_start = now - Duration::hours(1);
        let counted = ceiling_issues.iter().filter(|t| **t > window_start).count();
        Ok(counted + 1 == cap as usize)
    }
}

/// Refuses when `cap` codes were issued in the hour before `now`.
fn within_hour(
    now: DateTime<Utc>,
    recent_issues: &[DateTime<Utc>],
    cap: u32,
) -> Result<(), IssueRefusal> {
    let window_start = now - Duration::hours(1);
    let mut in_window: Vec<DateTime<Utc>> = recent_issues
        .iter()
        .copied()
        .filter(|t| *t > window_start)
        .collect();
    if in_window.len() >= cap as usize {
        in_window.sort();
        let oldest = in_window.first().copied().unwrap_or(now);
        return Err(IssueRefusal::HourlyCap {
            until: oldest + Duration::hours(1),
        });
    }
    Ok(())
}

/// Cooldowns on high-risk actions after security-sensitive changes: one table for every cause
/// (see [`CooldownPolicy::after`]). While any cooldown runs, every high-risk action is refused:
/// withdrawals (`POST /v1/withdrawals/check`), whitelist changes, second-factor removal and
/// withdraw-scoped API keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CooldownPolicy {
    /// After a password reset, a second-factor removal or a lost-factor recovery.
    pub after_password_reset: Duration,
    /// Between a lost-second-factor approval and the removal, during which the owner can cancel.
    pub recovery_hold: Duration,
    /// After a second factor is added.
    pub after_factor_added: Duration,
    /// After an API key with the `withdraw` scope is created.
    pub after_withdraw_key: Duration,
    /// After the email or the phone is replaced or added, or the password changed while signed
    /// in (a thief with the password would change them first).
    pub after_contact_changed: Duration,
    /// After whitelist-only withdrawals are turned off.
    pub after_whitelist_disabled: Duration,
    /// Before a newly whitelisted address may receive withdrawals.
    pub new_address: Duration,
}

impl CooldownPolicy {
    /// How long high-risk actions pause after a cause.
    pub fn after(&self, reason: crate::account::CooldownReason) -> Duration {
        use crate::account::CooldownReason as R;
        match reason {
            R::PasswordReset | R::SecondFactorRemoved | R::LostFactorRecovery | R::Unfrozen => {
                self.after_password_reset
            }
            R::SecondFactorAdded => self.after_factor_added,
            R::WithdrawKeyCreated => self.after_withdraw_key,
            R::WhitelistDisabled => self.after_whitelist_disabled,
            R::ContactChanged | R::PasswordChanged => self.after_contact_changed,
        }
    }
}

impl Default for CooldownPolicy {
    fn default() -> Self {
        Self {
            after_password_reset: Duration::hours(24),
            recovery_hold: Duration::hours(48),
            after_factor_added: Duration::hours(24),
            after_withdraw_key: Duration::hours(24),
            after_contact_changed: Duration::hours(24),
            after_whitelist_disabled: Duration::hours(24),
            new_address: Duration::hours(24),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap() + Duration::seconds(s)
    }

    #[test]
    fn test_resend_waits_for_the_cooldown() {
        let p = CodePolicy::default();
        assert_eq!(
            p.may_issue(t(30), Some(t(0)), &[t(0)]),
            Err(IssueRefusal::Cooldown { until: t(60) })
        );
        assert_eq!(p.may_issue(t(60), Some(t(0)), &[t(0)]), Ok(()));
    }

    #[test]
    fn test_hourly_cap_counts_only_the_last_hour() {
        let p = CodePolicy {
            max_per_hour: 3,
            ..CodePolicy::default()
        };
        let issued = [t(0), t(100), t(200)];
        assert_eq!(
            p.may_issue(t(300), None, &issued),
            Err(IssueRefusal::HourlyCap { until: t(3600) })
        );
        assert_eq!(p.may_issue(t(3601), None, &issued), Ok(()));
    }

    #[test]
    fn test_channel_and_contact_kind_correspond() {
        for c in [Channel::Email, Channel::Sms] {
            assert_eq!(Channel::for_contact(c.contact_kind()), c);
            assert_ne!(c.other(), c);
        }
        assert_eq!(
            FlowKind::verify(ContactKind::Phone).verifies(),
            Some(ContactKind::Phone)
        );
        assert_eq!(FlowKind::ResetPassword.verifies(), None);
    }
}
