//! Session lifetimes, the cap on open sessions, and the step-up window.
use clap::Args;
use gatehouse_domain::policy::SessionPolicy;

use super::parse::{count_usize, duration, seconds};
use super::ConfigError;

/// Session settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Sessions")]
pub struct SessionArgs {
    /// Absolute session lifetime in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_SESSION_ABSOLUTE_SECONDS",
        default_value_t = 43_200,
        value_parser = seconds(1)
    )]
    pub session_absolute_seconds: u64,
    /// Idle session lifetime in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_SESSION_IDLE_SECONDS",
        default_value_t = 1_800,
        value_parser = seconds(1)
    )]
    pub session_idle_seconds: u64,
    /// Most open sessions per account; signing in beyond it ends the oldest.
    #[arg(
        long,
        env = "GATEHOUSE_SESSION_MAX_ACTIVE",
        default_value_t = 50,
        value_parser = count_usize(1, u32::MAX.into())
    )]
    pub session_max_active: usize,
    /// How long a session counts as stepped up after it proved a second factor (high-risk
    /// routes need that), in seconds.
    #[arg(long, env = "GATEHOUSE_STEP_UP_SECONDS", default_value_t = 900, value_parser = seconds(1))]
    pub step_up_seconds: u64,
}

impl TryFrom<&SessionArgs> for SessionPolicy {
    type Error = ConfigError;

    fn try_from(args: &SessionArgs) -> Result<Self, ConfigError> {
        if args.session_absolute_seconds < args.session_idle_seconds {
            return Err(ConfigError::SessionAbsoluteBelowIdle {
                idle: args.session_idle_seconds,
                absolute: args.session_absolute_seconds,
            });
        }
        let idle = duration(args.session_idle_seconds);
        Ok(SessionPolicy {
            absolute: duration(args.session_absolute_seconds),
            idle,
            // Extend at most every sixth of the idle window: bounded writes, bounded staleness.
            extend_after: idle / 6,
            max_active: args.session_max_active,
            step_up: duration(args.step_up_seconds),
        })
    }
}
