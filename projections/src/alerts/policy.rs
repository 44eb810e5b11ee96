//! The alert rules: their names, severities and thresholds. Adding a rule means a [`Rule`]
//! variant here and a detector in `detect.rs`.
use sha2::{Digest, Sha256};

/// The rules alerts are raised by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Many failed sign-ins on one account (or one unknown identifier) in a window.
    BruteForce,
    /// One IP, or one /24 (IPv4) or /64 (IPv6) network, failing against many distinct
    /// identifiers, known or unknown.
    CredentialStuffing,
    /// Failures across many accounts from many IPs, well above the global baseline.
    PasswordSpraying,
    /// A sign-in from a device id the account never signed in from.
    NewDeviceSignIn,
    /// A sign-in from an IP the account never signed in from.
    NewIpSignIn,
    /// A sign-in shortly after a password reset or an unlock by code.
    SignInAfterRecovery,
    /// One IP refused by the rate limits in several one-minute windows (`ThrottleWindowClosed`
    /// facts on its `Protection` aggregate).
    RateLimitAbuse,
    /// One-time codes of an account exhausted by wrong guesses.
    CodeGuessing,
    /// Many recovery flows (reset, unlock) started for one account in a window.
    RecoveryBurst,
    /// Many distinct accounts locked in a window.
    LockoutStorm,
    /// A security key presented a signature counter that did not move forward (a cloned
    /// authenticator).
    WebauthnCounterRegression,
    /// Untrusted requesters together reached an account's hourly ceiling of self-service codes
    /// (`CodeCeilingReached`): someone is spending the account's code budget from many networks.
    CodeCeiling,
    /// An hourly SMS budget (global or per country calling code) was spent and a code was
    /// withheld: SMS pumping, or a budget too small for the traffic.
    SmsBudgetReached,
    /// A webhook subscription was disabled because its endpoint kept failing
    /// (`WebhookDisabled` without an author on its `Webhook` aggregate).
    WebhookDisabled,
}

impl Rule {
    /// Every rule, for documentation and filters.
    pub const ALL: [Rule; 14] = [
        Rule::BruteForce,
        Rule::CredentialStuffing,
        Rule::PasswordSpraying,
        Rule::NewDeviceSignIn,
        Rule::NewIpSignIn,
        Rule::SignInAfterRecovery,
        Rule::CodeGuessing,
        Rule::RecoveryBurst,
        Rule::LockoutStorm,
        Rule::WebauthnCounterRegression,
        Rule::RateLimitAbuse,
        Rule::CodeCeiling,
        Rule::SmsBudgetReached,
        Rule::WebhookDisabled,
    ];

    /// Stable name (stored, and the `rule` filter of the API).
    pub fn name(self) -> &'static str {
        match self {
            Rule::BruteForce => "brute_force",
            Rule::CredentialStuffing => "credential_stuffing",
            Rule::PasswordSpraying => "password_spraying",
            Rule::NewDeviceSignIn => "new_device_sign_in",
            Rule::NewIpSignIn => "new_ip_sign_in",
            Rule::SignInAfterRecovery => "sign_in_after_recovery",
            Rule::CodeGuessing => "code_guessing",
            Rule::RecoveryBurst => "recovery_burst",
            Rule::LockoutStorm => "lockout_storm",
            Rule::WebauthnCounterRegression => "webauthn_counter_regression",
            Rule::RateLimitAbuse => "rate_limit_abuse",
            Rule::CodeCeiling => "code_ceiling",
            Rule::SmsBudgetReached => "sms_budget_reached",
            Rule::WebhookDisabled => "webhook_disabled",
        }
    }

    /// `low`, `medium`, `high` or `critical`.
    pub fn severity(self) -> &'static str {
        match self {
            Rule::NewDeviceSignIn | Rule::NewIpSignIn => "low",
            Rule::SignInAfterRecovery
            | Rule::CodeGuessing
            | Rule::RecoveryBurst
            | Rule::RateLimitAbuse
            | Rule::CodeCeiling => "medium",
            Rule::BruteForce
            | Rule::CredentialStuffing
            | Rule::LockoutStorm
            | Rule::WebauthnCounterRegression
            | Rule::SmsBudgetReached
            | Rule::WebhookDisabled => "high",
            Rule::PasswordSpraying => "critical",
        }
    }
}

/// Thresholds and windows of every rule. Windows are in seconds of event time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertPolicy {
    /// Failed sign-ins on one account that make brute force.
    pub brute_force_failures: i64,
    /// Its window.
    pub brute_force_window_s: i64,
    /// Distinct identifiers one IP must fail against.
    pub stuffing_ip_identifiers: i64,
    /// Distinct identifiers one network (/24, /64) must fail against.
    pub stuffing_net_identifiers: i64,
    /// Window of both stuffing counts.
    pub stuffing_window_s: i64,
    /// Least failures in the spray window.
    pub spray_min_failures: i64,
    /// Least distinct accounts among them.
    pub spray_min_accounts: i64,
    /// Least distinct IPs among them.
    pub spray_min_ips: i64,
    /// How many times the baseline (failures per window over the preceding windows) the current
    /// window must reach.
    pub spray_factor: i64,
    /// The spray window.
    pub spray_window_s: i64,
    /// Preceding windows averaged into the baseline.
    pub spray_baseline_windows: i64,
    /// How soon after a reset or unlock a sign-in is reported.
    pub after_recovery_window_s: i64,
    /// Exhausted codes of one account that make code guessing.
    pub code_exhausted: i64,
    /// Recovery flows of one account that make a burst.
    pub recovery_flows: i64,
    /// Window of the code-guessing and recovery-burst counts.
    pub recovery_window_s: i64,
    /// Distinct accounts locked that make a storm.
    pub lockout_storm_accounts: i64,
    /// Its window.
    pub lockout_storm_window_s: i64,
    /// How long a single-event alert (new device, code guessing…) keeps gathering repeats.
    pub repeat_window_s: i64,
    /// Refusal windows of one IP (one per route, minute and server process) that make rate
    /// limit abuse.
    pub rate_limit_windows: i64,
    /// Their window.
    pub rate_limit_window_s: i64,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        Self {
            brute_force_failures: 10,
            brute_force_window_s: 900,
            stuffing_ip_identifiers: 20,
            stuffing_net_identifiers: 40,
            stuffing_window_s: 3600,
            spray_min_failures: 50,
            spray_min_accounts: 20,
            spray_min_ips: 10,
            spray_factor: 5,
            spray_window_s: 900,
            spray_baseline_windows: 8,
            after_recovery_window_s: 3600,
            code_exhausted: 1,
            recovery_flows: 5,
            recovery_window_s: 3600,
            lockout_storm_accounts: 10,
            lockout_storm_window_s: 600,
            repeat_window_s: 86_400,
            rate_limit_windows: 3,
            rate_limit_window_s: 3600,
        }
    }
}

impl AlertPolicy {
    /// A version naming these exact thresholds (`v1-` and 12 hex digits of their hash), recorded
    /// on every alert so history can later be replayed under other thresholds and compared.
    pub fn version(&self) -> String {
        let text = format!("{self:?}");
        let digest = Sha256::digest(text.as_bytes());
        format!("v1-{}", &hex_prefix(&digest)[..12])
    }

    /// How far back any windowed rule looks, in milliseconds.
    pub fn horizon_ms(&self) -> i64 {
        [
            self.brute_force_window_s,
            self.stuffing_window_s,
            self.spray_window_s
                .saturating_mul(self.spray_baseline_windows.saturating_add(1)),
            self.recovery_window_s,
            self.lockout_storm_window_s,
            self.rate_limit_window_s,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
        .saturating_mul(1000)
    }

    /// Refuses thresholds or windows below 1.
    pub fn validate(&self) -> Result<(), String> {
        let all = [
            self.brute_force_failures,
            self.brute_force_window_s,
            self.stuffing_ip_identifiers,
            self.stuffing_net_identifiers,
            self.stuffing_window_s,
            self.spray_min_failures,
            self.spray_min_accounts,
            self.spray_min_ips,
            self.spray_factor,
            self.spray_window_s,
            self.spray_baseline_windows,
            self.after_recovery_window_s,
            self.code_exhausted,
            self.recovery_flows,
            self.recovery_window_s,
            self.lockout_storm_accounts,
            self.lockout_storm_window_s,
            self.repeat_window_s,
            self.rate_limit_windows,
            self.rate_limit_window_s,
        ];
        if all.iter().any(|v| *v < 1) {
            return Err("every alert threshold and window must be at least 1".into());
        }
        Ok(())
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_policy_version_follows_thresholds() {
        let a = AlertPolicy::default();
        let mut b = a.clone();
        assert_eq!(a.version(), b.version());
        b.brute_force_failures += 1;
        assert_ne!(a.version(), b.version());
        assert!(a.version().starts_with("v1-") && a.version().len() == 15);
        assert!(a.validate().is_ok());
        b.spray_factor = 0;
        assert!(b.validate().is_err());
    }

    #[test]
    fn test_rule_names_are_distinct() {
        let mut names: Vec<_> = Rule::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Rule::ALL.len());
    }
}
