//! How long high-risk actions pause after a security change, and the recovery hold.
use clap::Args;
use gatehouse_domain::policy::CooldownPolicy;

use super::parse::{duration, seconds};

/// Cooldown settings (0 turns a cooldown off).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Cooldowns")]
pub struct CooldownArgs {
    /// Seconds high-risk actions stay blocked after a password reset.
    #[arg(
        long,
        env = "GATEHOUSE_HIGH_RISK_COOLDOWN_SECONDS",
        default_value_t = 86_400,
        value_parser = seconds(0)
    )]
    pub high_risk_cooldown_seconds: u64,
    /// Seconds between the approval of a lost-second-factor recovery and the removal of the
    /// factors, during which the owner can cancel from any session.
    #[arg(
        long,
        env = "GATEHOUSE_RECOVERY_HOLD_SECONDS",
        default_value_t = 172_800,
        value_parser = seconds(0)
    )]
    pub recovery_hold_seconds: u64,
    /// High-risk actions pause this long after a second factor is added, in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_COOLDOWN_AFTER_FACTOR_ADDED_SECONDS",
        default_value_t = 86_400,
        value_parser = seconds(0)
    )]
    pub cooldown_after_factor_added_seconds: u64,
    /// High-risk actions pause this long after the email or the phone is replaced or added, or
    /// the password is changed while signed in.
    #[arg(
        long,
        env = "GATEHOUSE_COOLDOWN_AFTER_CONTACT_CHANGED_SECONDS",
        default_value_t = 86_400,
        value_parser = seconds(0)
    )]
    pub cooldown_after_contact_changed_seconds: u64,
    /// High-risk actions pause this long after an API key with the `withdraw` scope is created.
    #[arg(
        long,
        env = "GATEHOUSE_COOLDOWN_AFTER_WITHDRAW_KEY_SECONDS",
        default_value_t = 86_400,
        value_parser = seconds(0)
    )]
    pub cooldown_after_withdraw_key_seconds: u64,
    /// High-risk actions pause this long after whitelist-only withdrawals are turned off.
    #[arg(
        long,
        env = "GATEHOUSE_COOLDOWN_AFTER_WHITELIST_OFF_SECONDS",
        default_value_t = 86_400,
        value_parser = seconds(0)
    )]
    pub cooldown_after_whitelist_off_seconds: u64,
    /// A newly whitelisted withdrawal address is usable after this long, in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_WHITELIST_ADDRESS_COOLDOWN_SECONDS",
        default_value_t = 86_400,
        value_parser = seconds(0)
    )]
    pub whitelist_address_cooldown_seconds: u64,
}

impl From<&CooldownArgs> for CooldownPolicy {
    fn from(args: &CooldownArgs) -> Self {
        CooldownPolicy {
            after_password_reset: duration(args.high_risk_cooldown_seconds),
            recovery_hold: duration(args.recovery_hold_seconds),
            after_factor_added: duration(args.cooldown_after_factor_added_seconds),
            after_withdraw_key: duration(args.cooldown_after_withdraw_key_seconds),
            after_contact_changed: duration(args.cooldown_after_contact_changed_seconds),
            after_whitelist_disabled: duration(args.cooldown_after_whitelist_off_seconds),
            new_address: duration(args.whitelist_address_cooldown_seconds),
        }
    }
}
