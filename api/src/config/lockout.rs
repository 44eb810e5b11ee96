//! Lockout of the untrusted door, and of each trusted device's own door.
use clap::Args;
use gatehouse_domain::policy::{DevicePolicy, LockoutPolicy};

use super::parse::{count_u32, duration, seconds};
use super::ConfigError;

/// Trusted devices stay trusted at most this many days, whatever the setting says.
const MAX_DEVICE_TOKEN_DAYS: u64 = 3650;

/// Lockout settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Lockout")]
pub struct LockoutArgs {
    /// Consecutive failed sign-ins without a valid device token that lock the account's
    /// untrusted door.
    #[arg(long, env = "GATEHOUSE_LOCKOUT_THRESHOLD", default_value_t = 5, value_parser = count_u32(1))]
    pub lockout_threshold: u32,
    /// Consecutive failures through one trusted device's own door (requests presenting its
    /// device token) that lock that door. Durations as for the untrusted door.
    #[arg(
        long,
        env = "GATEHOUSE_DEVICE_LOCKOUT_THRESHOLD",
        default_value_t = 5,
        value_parser = count_u32(1)
    )]
    pub device_lockout_threshold: u32,
    /// Days a device stays trusted after its last sign-in (each sign-in with its token renews it).
    #[arg(
        long,
        env = "GATEHOUSE_DEVICE_TOKEN_DAYS",
        default_value_t = 180,
        value_parser = super::parse::count(1)
    )]
    pub device_token_days: u64,
    /// First lock duration in seconds (doubles on each repeated lock).
    #[arg(long, env = "GATEHOUSE_LOCKOUT_SECONDS", default_value_t = 900, value_parser = seconds(1))]
    pub lockout_seconds: u64,
    /// Longest lock in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_LOCKOUT_MAX_SECONDS",
        default_value_t = 86_400,
        value_parser = seconds(1)
    )]
    pub lockout_max_seconds: u64,
}

impl TryFrom<&LockoutArgs> for LockoutPolicy {
    type Error = ConfigError;

    fn try_from(args: &LockoutArgs) -> Result<Self, ConfigError> {
        if args.lockout_max_seconds < args.lockout_seconds {
            return Err(ConfigError::LockoutMaxBelowBase {
                base: args.lockout_seconds,
                max: args.lockout_max_seconds,
            });
        }
        Ok(LockoutPolicy {
            threshold: args.lockout_threshold,
            base: duration(args.lockout_seconds),
            max: duration(args.lockout_max_seconds),
        })
    }
}

/// Trusted devices' doors lock for as long as the untrusted door's locks.
impl TryFrom<&LockoutArgs> for DevicePolicy {
    type Error = ConfigError;

    fn try_from(args: &LockoutArgs) -> Result<Self, ConfigError> {
        let days = args.device_token_days.min(MAX_DEVICE_TOKEN_DAYS);
        Ok(DevicePolicy {
            ttl: duration(days * 86_400),
            lockout: LockoutPolicy {
                threshold: args.device_lockout_threshold,
                ..LockoutPolicy::try_from(args)?
            },
        })
    }
}
