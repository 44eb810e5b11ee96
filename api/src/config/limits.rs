//! Abuse limits: the rate limit table and where it is kept, the feedback from stuffing alerts,
//! the SMS pumping guard and the breached-password check.
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::parse::{count, duration, seconds};
use super::ConfigError;
use crate::breach::{BreachCheck, PwnedFile, PwnedRange};
use crate::protection::ProtectionSettings;
use crate::sms_budget::SmsBudget;
use crate::throttle::LimitTable;

/// Limit settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Self-service requests (forgot password, unlock, codes) allowed per client IP per minute.
    #[arg(
        long,
        env = "GATEHOUSE_RATE_LIMIT_PER_IP_PER_MINUTE",
        default_value_t = 30
    )]
    pub rate_limit_per_ip_per_minute: u32,
    /// Self-service requests allowed per identifier (or flow) per minute.
    #[arg(
        long,
        env = "GATEHOUSE_RATE_LIMIT_PER_IDENTIFIER_PER_MINUTE",
        default_value_t = 10
    )]
    pub rate_limit_per_identifier_per_minute: u32,
    /// Redis URL (`redis://host:6379/0`) holding the rate limits shared by every server process.
    /// Unset: PostgreSQL holds them (the embedded store: each process its own).
    #[arg(long, env = "GATEHOUSE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of the rate limit keys in Redis (several deployments can share one Redis).
    #[arg(long, env = "GATEHOUSE_REDIS_PREFIX", default_value = "gatehouse:rl:")]
    pub redis_prefix: String,
    /// Sign-in attempts per minute allowed from an IP or network flagged for credential stuffing
    /// (0: no feedback from alerts).
    #[arg(long, env = "GATEHOUSE_FLAGGED_LOGINS_PER_MINUTE", default_value_t = 5)]
    pub flagged_logins_per_minute: u32,
    /// Seconds after its last evidence that a stuffing alert keeps its IP or network flagged.
    #[arg(long, env = "GATEHOUSE_FLAGGED_SECONDS", default_value_t = 3600, value_parser = seconds(0))]
    pub flagged_seconds: u64,
    /// Text messages sent per hour, all numbers together (shared by every server process on
    /// PostgreSQL). Beyond it, codes are withheld: sign-up answers
    /// `phone_verification_deferred: true`, resends `429 sms_budget_exhausted`.
    #[arg(long, env = "GATEHOUSE_SMS_MAX_PER_HOUR", default_value_t = 1000)]
    pub sms_max_per_hour: u32,
    /// Text messages sent per hour to one country calling code (`+1`, `+44`, …).
    #[arg(
        long,
        env = "GATEHOUSE_SMS_MAX_PER_PREFIX_PER_HOUR",
        default_value_t = 200
    )]
    pub sms_max_per_prefix_per_hour: u32,
    /// Comma-separated number prefixes never texted (`+1900,+44909`): refused at sign-up and
    /// contact change with `422 phone_not_allowed`, and never sent to.
    #[arg(long, env = "GATEHOUSE_SMS_DENY_PREFIXES", value_delimiter = ',')]
    pub sms_deny_prefixes: Vec<String>,
    /// Pwned Passwords k-anonymity range service (`https://api.pwnedpasswords.com/range`): new
    /// passwords are looked up by the first 5 hex digits of their SHA-1. Unset: not consulted.
    #[arg(long, env = "GATEHOUSE_PWNED_RANGE_URL")]
    pub pwned_range_url: Option<String>,
    /// Local file in the downloadable Pwned Passwords format (`SHA1HEX:COUNT` lines sorted by
    /// hash), searched in place. Unset: not consulted.
    #[arg(long, env = "GATEHOUSE_PWNED_FILE")]
    pub pwned_file: Option<PathBuf>,
    /// A new password seen this many times or more in a breach corpus is refused.
    #[arg(long, env = "GATEHOUSE_PWNED_MIN_COUNT", default_value_t = 1, value_parser = count(1))]
    pub pwned_min_count: u64,
}

/// The rate limit table: `GATEHOUSE_RATE_LIMIT_<ROUTE>_PER_<KEY>_PER_MINUTE` from the
/// environment (environment only, no flags), the generic settings as the self-service defaults.
impl TryFrom<&LimitArgs> for LimitTable {
    type Error = ConfigError;

    fn try_from(args: &LimitArgs) -> Result<Self, ConfigError> {
        LimitTable::from_vars(
            std::env::vars(),
            args.rate_limit_per_ip_per_minute,
            args.rate_limit_per_identifier_per_minute,
        )
        .map_err(ConfigError::RateLimits)
    }
}

impl From<&LimitArgs> for ProtectionSettings {
    fn from(args: &LimitArgs) -> Self {
        ProtectionSettings {
            per_minute: args.flagged_logins_per_minute,
            flag_for: duration(args.flagged_seconds.max(1)),
        }
    }
}

/// The SMS pumping guard.
impl TryFrom<&LimitArgs> for SmsBudget {
    type Error = ConfigError;

    fn try_from(args: &LimitArgs) -> Result<Self, ConfigError> {
        let mut deny_prefixes = Vec::new();
        for raw in &args.sms_deny_prefixes {
            let prefix = raw.trim();
            if prefix.is_empty() {
                continue;
            }
            let digits = prefix.strip_prefix('+').unwrap_or("");
            if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(ConfigError::SmsDenyPrefix(prefix.to_string()));
            }
            deny_prefixes.push(prefix.to_string());
        }
        Ok(SmsBudget {
            per_hour: args.sms_max_per_hour,
            per_prefix_per_hour: args.sms_max_per_prefix_per_hour,
            deny_prefixes,
        })
    }
}

/// The breached-password check (off when neither source is set).
impl TryFrom<&LimitArgs> for BreachCheck {
    type Error = ConfigError;

    fn try_from(args: &LimitArgs) -> Result<Self, ConfigError> {
        let mut sources: Vec<Arc<dyn gatehouse_domain::password::BreachedPasswords>> = Vec::new();
        if let Some(path) = &args.pwned_file {
            sources.push(Arc::new(
                PwnedFile::new(path.clone()).map_err(ConfigError::BreachCheck)?,
            ));
        }
        if let Some(url) = &args.pwned_range_url {
            sources.push(Arc::new(
                PwnedRange::new(url).map_err(ConfigError::BreachCheck)?,
            ));
        }
        Ok(BreachCheck::new(sources, args.pwned_min_count))
    }
}
