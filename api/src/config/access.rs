//! Staff token lifetime and access to `/metrics`.
use std::net::SocketAddr;

use clap::Args;

use super::parse::{duration, seconds};
use super::ConfigError;
use crate::state::AccessSettings;

/// Access settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Access")]
pub struct AccessArgs {
    /// How long a staff token works after it is issued, in seconds (a token issued before
    /// tokens expired counts from the member's creation).
    #[arg(
        long,
        env = "GATEHOUSE_STAFF_TOKEN_SECONDS",
        default_value_t = 2_592_000,
        value_parser = seconds(1)
    )]
    pub staff_token_seconds: u64,
    /// Bearer token that `/metrics` needs on the public address (compared in constant time).
    /// Unset, and without GATEHOUSE_METRICS_LISTEN, metrics are not served.
    #[arg(long, env = "GATEHOUSE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// A separate address serving only `/metrics`, without a token (e.g. `127.0.0.1:9100`,
    /// reachable by the scraper only).
    #[arg(long, env = "GATEHOUSE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

impl TryFrom<&AccessArgs> for AccessSettings {
    type Error = ConfigError;

    fn try_from(args: &AccessArgs) -> Result<Self, ConfigError> {
        let metrics_token = match args.metrics_token.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(t) if t.len() < 16 => return Err(ConfigError::MetricsTokenTooShort),
            Some(t) => Some(secrecy::SecretString::from(t.to_string())),
        };
        Ok(AccessSettings {
            staff_token_lifetime: duration(args.staff_token_seconds),
            metrics_token,
        })
    }
}
