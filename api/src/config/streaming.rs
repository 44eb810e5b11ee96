//! The event stream published to NATS JetStream (off unless `GATEHOUSE_NATS_URL` is set).
use clap::Args;

use super::parse::seconds;
use super::ConfigError;
use crate::nats::NatsSettings;

/// Streaming settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Streaming")]
pub struct StreamingArgs {
    /// NATS server with JetStream (`nats://host:4222`, `tls://host:4222`, credentials in the URL
    /// if needed). Set: every event and every alert change is published to JetStream by one
    /// server process at a time. Unset: nothing is published.
    #[arg(long, env = "GATEHOUSE_NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,
    /// JetStream stream the messages go to; created (file storage, subjects
    /// `<prefix>.>`) when missing, used as it is when it exists. The publisher's checkpoint is
    /// kept per stream name: a new name starts again from the first event.
    #[arg(long, env = "GATEHOUSE_NATS_STREAM", default_value = "GATEHOUSE")]
    pub nats_stream: String,
    /// First subject token(s): events go to `<prefix>.events.<aggregate>.<event_type>`, alert
    /// changes to `<prefix>.alerts.<rule>`.
    #[arg(
        long,
        env = "GATEHOUSE_NATS_SUBJECT_PREFIX",
        default_value = "gatehouse"
    )]
    pub nats_subject_prefix: String,
    /// Duplicate window of a stream Gatehouse creates, in seconds: a message sent again within
    /// it (same `Nats-Msg-Id`) is stored once. JetStream keeps the ids of this window in memory.
    #[arg(
        long,
        env = "GATEHOUSE_NATS_DUPLICATE_WINDOW_SECONDS",
        default_value_t = 3600,
        value_parser = seconds(1)
    )]
    pub nats_duplicate_window_seconds: u64,
    /// How long the publishing process's lease lasts without being renewed; another process
    /// takes over this long after the publisher dies.
    #[arg(
        long,
        env = "GATEHOUSE_NATS_LEASE_SECONDS",
        default_value_t = 15,
        value_parser = seconds(2)
    )]
    pub nats_lease_seconds: u64,
    /// Webhook deliveries.
    #[command(flatten)]
    pub webhooks: super::WebhookArgs,
}

impl TryFrom<&StreamingArgs> for Option<NatsSettings> {
    type Error = ConfigError;

    fn try_from(args: &StreamingArgs) -> Result<Self, ConfigError> {
        let Some(url) = args
            .nats_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        else {
            return Ok(None);
        };
        if !crate::nats::subjects::valid_stream_name(&args.nats_stream) {
            return Err(ConfigError::Nats(format!(
                "GATEHOUSE_NATS_STREAM: {:?} is not a stream name (letters, digits, `-` and `_`)",
                args.nats_stream
            )));
        }
        if !crate::nats::subjects::valid_prefix(&args.nats_subject_prefix) {
            return Err(ConfigError::Nats(format!(
                "GATEHOUSE_NATS_SUBJECT_PREFIX: {:?} is not a subject prefix (dot-separated tokens of letters, digits, `-` and `_`)",
                args.nats_subject_prefix
            )));
        }
        Ok(Some(NatsSettings {
            url: url.to_string(),
            stream: args.nats_stream.clone(),
            prefix: args.nats_subject_prefix.clone(),
            duplicate_window: std::time::Duration::from_secs(args.nats_duplicate_window_seconds),
            lease: std::time::Duration::from_secs(args.nats_lease_seconds),
        }))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        streaming: StreamingArgs,
    }

    fn settings(args: &[&str]) -> Result<Option<NatsSettings>, ConfigError> {
        let probe = Probe::try_parse_from(std::iter::once("probe").chain(args.iter().copied()))
            .map_err(|e| ConfigError::Nats(e.to_string()))?;
        (&probe.streaming).try_into()
    }

    #[test]
    fn test_unset_url_publishes_nothing_and_names_are_checked() {
        assert!(settings(&[]).unwrap().is_none());
        let on = settings(&["--nats-url", "nats://127.0.0.1:4222"])
            .unwrap()
            .unwrap();
        assert_eq!(
            (on.stream.as_str(), on.prefix.as_str()),
            ("GATEHOUSE", "gatehouse")
        );
        assert_eq!(on.duplicate_window.as_secs(), 3600);
        for bad in [
            ["--nats-stream", "a.b"],
            ["--nats-stream", "a b"],
            ["--nats-subject-prefix", "a.*"],
            ["--nats-subject-prefix", "a..b"],
            ["--nats-subject-prefix", ""],
        ] {
            let mut args = vec!["--nats-url", "nats://x:4222"];
            args.extend(bad);
            assert!(settings(&args).is_err(), "{bad:?}");
        }
        assert!(settings(&["--nats-url", "x", "--nats-lease-seconds", "1"]).is_err());
    }
}
