//! One-time codes: lifetime, tries, resends and hourly budgets.
use clap::Args;
use gatehouse_domain::policy::CodePolicy;

use super::parse::{count_u32, duration, seconds};

/// One-time code settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "One-time codes")]
pub struct CodeArgs {
    /// One-time code lifetime in seconds.
    #[arg(long, env = "GATEHOUSE_CODE_TTL_SECONDS", default_value_t = 600, value_parser = seconds(1))]
    pub code_ttl_seconds: u64,
    /// Wrong tries that exhaust a one-time code.
    #[arg(long, env = "GATEHOUSE_CODE_MAX_ATTEMPTS", default_value_t = 5, value_parser = count_u32(1))]
    pub code_max_attempts: u32,
    /// Seconds before a flow's code may be resent.
    #[arg(long, env = "GATEHOUSE_CODE_RESEND_SECONDS", default_value_t = 60, value_parser = seconds(0))]
    pub code_resend_seconds: u64,
    /// Most codes issued to one account per hour for one requester: a trusted device (valid
    /// device token), or the client network (/24 IPv4, /64 IPv6) of an untrusted request.
    #[arg(long, env = "GATEHOUSE_CODE_MAX_PER_HOUR", default_value_t = 10, value_parser = count_u32(1))]
    pub code_max_per_hour: u32,
    /// Most codes issued to one account per hour for untrusted requesters together (the hard
    /// ceiling; raised to GATEHOUSE_CODE_MAX_PER_HOUR when set lower). Trusted devices are
    /// exempt. Reaching it
    /// raises the `code_ceiling` alert.
    #[arg(
        long,
        env = "GATEHOUSE_CODE_ACCOUNT_CEILING_PER_HOUR",
        default_value_t = 30
    )]
    pub code_account_ceiling_per_hour: u32,
}

impl From<&CodeArgs> for CodePolicy {
    fn from(args: &CodeArgs) -> Self {
        CodePolicy {
            ttl: duration(args.code_ttl_seconds),
            max_attempts: args.code_max_attempts,
            resend_cooldown: duration(args.code_resend_seconds),
            max_per_hour: args.code_max_per_hour,
            // Never below one requester's budget (the policy applies the same floor).
            account_ceiling_per_hour: args
                .code_account_ceiling_per_hour
                .max(args.code_max_per_hour),
        }
    }
}
