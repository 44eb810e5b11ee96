//! Alert thresholds and windows (each at least 1).
use clap::Args;
use gatehouse_projections::alerts::AlertPolicy;

use super::parse::{count, seconds};
use super::ConfigError;

/// Alert settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Alerts")]
pub struct AlertArgs {
    /// Alerts: failed sign-ins on one account (or unknown identifier) that make brute force.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_BRUTE_FORCE_FAILURES",
        default_value_t = 10,
        value_parser = count(1)
    )]
    pub alert_brute_force_failures: u64,
    /// Alerts: brute-force window in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_BRUTE_FORCE_WINDOW_SECONDS",
        default_value_t = 900,
        value_parser = seconds(1)
    )]
    pub alert_brute_force_window_seconds: u64,
    /// Alerts: distinct identifiers one IP must fail against to be credential stuffing.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_STUFFING_IP_IDENTIFIERS",
        default_value_t = 20,
        value_parser = count(1)
    )]
    pub alert_stuffing_ip_identifiers: u64,
    /// Alerts: distinct identifiers one /24 (IPv4) or /64 (IPv6) must fail against.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_STUFFING_NET_IDENTIFIERS",
        default_value_t = 40,
        value_parser = count(1)
    )]
    pub alert_stuffing_net_identifiers: u64,
    /// Alerts: credential-stuffing window in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_STUFFING_WINDOW_SECONDS",
        default_value_t = 3600,
        value_parser = seconds(1)
    )]
    pub alert_stuffing_window_seconds: u64,
    /// Alerts: least failures in the spray window.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_SPRAY_MIN_FAILURES",
        default_value_t = 50,
        value_parser = count(1)
    )]
    pub alert_spray_min_failures: u64,
    /// Alerts: least distinct accounts among the spray failures.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_SPRAY_MIN_ACCOUNTS",
        default_value_t = 20,
        value_parser = count(1)
    )]
    pub alert_spray_min_accounts: u64,
    /// Alerts: least distinct IPs among the spray failures.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_SPRAY_MIN_IPS",
        default_value_t = 10,
        value_parser = count(1)
    )]
    pub alert_spray_min_ips: u64,
    /// Alerts: how many times its baseline the spray window's failures must reach.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_SPRAY_FACTOR",
        default_value_t = 5,
        value_parser = count(1)
    )]
    pub alert_spray_factor: u64,
    /// Alerts: spray window in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_SPRAY_WINDOW_SECONDS",
        default_value_t = 900,
        value_parser = seconds(1)
    )]
    pub alert_spray_window_seconds: u64,
    /// Alerts: preceding windows averaged into the spray baseline.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_SPRAY_BASELINE_WINDOWS",
        default_value_t = 8,
        value_parser = count(1)
    )]
    pub alert_spray_baseline_windows: u64,
    /// Alerts: seconds after a password reset or unlock in which a sign-in is reported.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_AFTER_RECOVERY_SECONDS",
        default_value_t = 3600,
        value_parser = seconds(1)
    )]
    pub alert_after_recovery_seconds: u64,
    /// Alerts: exhausted one-time codes of one account that make code guessing.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_CODE_EXHAUSTED",
        default_value_t = 1,
        value_parser = count(1)
    )]
    pub alert_code_exhausted: u64,
    /// Alerts: recovery flows started for one account that make a burst.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_RECOVERY_FLOWS",
        default_value_t = 5,
        value_parser = count(1)
    )]
    pub alert_recovery_flows: u64,
    /// Alerts: window of the code-guessing and recovery-burst counts, in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_RECOVERY_WINDOW_SECONDS",
        default_value_t = 3600,
        value_parser = seconds(1)
    )]
    pub alert_recovery_window_seconds: u64,
    /// Alerts: distinct accounts locked that make a lockout storm.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_LOCKOUT_STORM_ACCOUNTS",
        default_value_t = 10,
        value_parser = count(1)
    )]
    pub alert_lockout_storm_accounts: u64,
    /// Alerts: lockout-storm window in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_LOCKOUT_STORM_WINDOW_SECONDS",
        default_value_t = 600,
        value_parser = seconds(1)
    )]
    pub alert_lockout_storm_window_seconds: u64,
    /// Alerts: how long a single-event alert (new device, code guessing…) gathers repeats, in
    /// seconds.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_REPEAT_WINDOW_SECONDS",
        default_value_t = 86_400,
        value_parser = seconds(1)
    )]
    pub alert_repeat_window_seconds: u64,
    /// Alerts: one-minute windows in which the rate limits refused one IP (counted per route and
    /// server process) that make rate limit abuse.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_RATE_LIMIT_WINDOWS",
        default_value_t = 3,
        value_parser = count(1)
    )]
    pub alert_rate_limit_windows: u64,
    /// Alerts: rate-limit-abuse window in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_RATE_LIMIT_WINDOW_SECONDS",
        default_value_t = 3600,
        value_parser = seconds(1)
    )]
    pub alert_rate_limit_window_seconds: u64,
}

/// A setting as the policy's integer (every setting here is at most `i64::MAX` by its parser).
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl TryFrom<&AlertArgs> for AlertPolicy {
    type Error = ConfigError;

    fn try_from(args: &AlertArgs) -> Result<Self, ConfigError> {
        let policy = AlertPolicy {
            brute_force_failures: int(args.alert_brute_force_failures),
            brute_force_window_s: int(args.alert_brute_force_window_seconds),
            stuffing_ip_identifiers: int(args.alert_stuffing_ip_identifiers),
            stuffing_net_identifiers: int(args.alert_stuffing_net_identifiers),
            stuffing_window_s: int(args.alert_stuffing_window_seconds),
            spray_min_failures: int(args.alert_spray_min_failures),
            spray_min_accounts: int(args.alert_spray_min_accounts),
            spray_min_ips: int(args.alert_spray_min_ips),
            spray_factor: int(args.alert_spray_factor),
            spray_window_s: int(args.alert_spray_window_seconds),
            spray_baseline_windows: int(args.alert_spray_baseline_windows),
            after_recovery_window_s: int(args.alert_after_recovery_seconds),
            code_exhausted: int(args.alert_code_exhausted),
            recovery_flows: int(args.alert_recovery_flows),
            recovery_window_s: int(args.alert_recovery_window_seconds),
            lockout_storm_accounts: int(args.alert_lockout_storm_accounts),
            lockout_storm_window_s: int(args.alert_lockout_storm_window_seconds),
            repeat_window_s: int(args.alert_repeat_window_seconds),
            rate_limit_windows: int(args.alert_rate_limit_windows),
            rate_limit_window_s: int(args.alert_rate_limit_window_seconds),
        };
        policy.validate().map_err(ConfigError::Alerts)?;
        Ok(policy)
    }
}
