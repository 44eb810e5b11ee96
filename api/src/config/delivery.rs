//! Message delivery: SMTP, the SMS webhook, or the development outbox.
use std::path::{Path, PathBuf};

use clap::Args;

/// Delivery settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Delivery")]
pub struct DeliveryArgs {
    /// SMTP server for email, in lettre's URL form (`smtp://host:2525`, `smtps://user:pass@host`,
    /// `smtp://host:587?tls=required`). Unset: emails are written to the development outbox.
    #[arg(long, env = "GATEHOUSE_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender address of emails.
    #[arg(
        long,
        env = "GATEHOUSE_SMTP_FROM",
        default_value = "Gatehouse <no-reply@gatehouse.invalid>"
    )]
    pub smtp_from: String,
    /// URL the SMS provider webhook receives `{"to", "body", "id"}` at. Unset: text messages are
    /// written to the development outbox.
    #[arg(long, env = "GATEHOUSE_SMS_WEBHOOK_URL", hide_env_values = true)]
    pub sms_webhook_url: Option<String>,
    /// Directory of the development outbox (messages as files) when no SMTP server or SMS
    /// webhook is configured; defaults to `<data dir>/outbox`.
    #[arg(long, env = "GATEHOUSE_DEV_OUTBOX_DIR")]
    pub dev_outbox_dir: Option<PathBuf>,
    /// Tries before a message is given up.
    #[arg(long, env = "GATEHOUSE_DELIVERY_MAX_ATTEMPTS", default_value_t = 6)]
    pub delivery_max_attempts: u32,
    /// Where people reach this server: every security notice carries a "this wasn't me" link,
    /// `{public url}/freeze?t=<token>`.
    #[arg(
        long,
        env = "GATEHOUSE_PUBLIC_URL",
        default_value = "http://localhost:8080"
    )]
    pub public_url: String,
    /// A GeoIP database in the MaxMind DB format (GeoLite2-City or -Country, or compatible):
    /// new-sign-in notices name the approximate place of the address. Unset: no place.
    #[arg(long, env = "GATEHOUSE_GEOIP_DB")]
    pub geoip_db: Option<PathBuf>,
}

impl DeliveryArgs {
    /// The development outbox: the setting, else `<data dir>/outbox`.
    pub fn outbox(&self, data_dir: &Path) -> PathBuf {
        self.dev_outbox_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("outbox"))
    }

    /// The public URL without a trailing slash.
    pub fn public_url(&self) -> String {
        self.public_url.trim_end_matches('/').to_string()
    }

    /// Tries before a message is given up (at least one).
    pub fn max_attempts(&self) -> u32 {
        self.delivery_max_attempts.max(1)
    }
}
