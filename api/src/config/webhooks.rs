//! Webhook deliveries (`GATEHOUSE_WEBHOOK_*`). Subscriptions themselves are made by admins over
//! the API (`/v1/admin/webhooks`).
use clap::Args;

use super::parse::{count, count_u32, duration, seconds};
use crate::webhooks::guard::AllowList;
use crate::webhooks::WebhookSettings;
use gatehouse_domain::webhook::DisablePolicy;

/// Webhook settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Webhooks")]
pub struct WebhookArgs {
    /// Hosts (names or IP addresses, comma-separated) webhooks may reach over plain http and at
    /// private, loopback or link-local addresses. Every other URL must be https to a public
    /// address, checked on the resolved address of every connection.
    #[arg(
        long,
        env = "GATEHOUSE_WEBHOOK_ALLOW_HTTP_HOSTS",
        value_delimiter = ','
    )]
    pub webhook_allow_http_hosts: Vec<String>,
    /// How long a rotated secret keeps signing beside the new one, in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_WEBHOOK_ROTATION_GRACE_SECONDS",
        default_value_t = 86_400,
        value_parser = seconds(0)
    )]
    pub webhook_rotation_grace_seconds: u64,
    /// Consecutive failed attempts after which a subscription is disabled (alert
    /// `webhook_disabled`).
    #[arg(
        long,
        env = "GATEHOUSE_WEBHOOK_DISABLE_AFTER",
        default_value_t = 20,
        value_parser = count_u32(1)
    )]
    pub webhook_disable_after: u32,
    /// Seconds of uninterrupted failures after which a subscription is disabled, whatever the
    /// number of attempts.
    #[arg(
        long,
        env = "GATEHOUSE_WEBHOOK_DISABLE_AFTER_SECONDS",
        default_value_t = 86_400,
        value_parser = seconds(1)
    )]
    pub webhook_disable_after_seconds: u64,
    /// Attempts per message before it is given up.
    #[arg(
        long,
        env = "GATEHOUSE_WEBHOOK_MAX_ATTEMPTS",
        default_value_t = 12,
        value_parser = count_u32(1)
    )]
    pub webhook_max_attempts: u32,
    /// Wait before the first retry, in milliseconds; doubled at each further retry (at most an
    /// hour), of which a random part up to half is taken off (jitter).
    #[arg(
        long,
        env = "GATEHOUSE_WEBHOOK_RETRY_BASE_MS",
        default_value_t = 5_000,
        value_parser = count(1)
    )]
    pub webhook_retry_base_ms: u64,
    /// Longest a delivery request may take, in seconds (connection included).
    #[arg(
        long,
        env = "GATEHOUSE_WEBHOOK_TIMEOUT_SECONDS",
        default_value_t = 10,
        value_parser = seconds(1)
    )]
    pub webhook_timeout_seconds: u64,
}

impl From<&WebhookArgs> for WebhookSettings {
    fn from(args: &WebhookArgs) -> Self {
        Self {
            allow_http_hosts: AllowList::new(&args.webhook_allow_http_hosts),
            rotation_grace: duration(args.webhook_rotation_grace_seconds),
            disable: DisablePolicy {
                attempts: args.webhook_disable_after,
                duration: duration(args.webhook_disable_after_seconds),
            },
            max_attempts: args.webhook_max_attempts,
            retry_base: std::time::Duration::from_millis(args.webhook_retry_base_ms),
            timeout: std::time::Duration::from_secs(args.webhook_timeout_seconds.min(3600)),
            ..WebhookSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        webhooks: WebhookArgs,
    }

    #[test]
    fn test_webhook_defaults_and_allow_list() {
        let probe = Probe::try_parse_from(["probe"]).unwrap();
        let s = WebhookSettings::from(&probe.webhooks);
        assert_eq!(s.disable.attempts, 20);
        assert_eq!(s.rotation_grace, chrono::Duration::hours(24));
        assert!(s.allow_http_hosts.hosts().is_empty());
        let probe = Probe::try_parse_from([
            "probe",
            "--webhook-allow-http-hosts",
            "127.0.0.1,Hooks.Local",
        ])
        .unwrap();
        let s = WebhookSettings::from(&probe.webhooks);
        assert!(s.allow_http_hosts.contains("hooks.local"));
        assert!(s.allow_http_hosts.contains("127.0.0.1"));
        assert!(Probe::try_parse_from(["probe", "--webhook-disable-after", "0"]).is_err());
    }
}
