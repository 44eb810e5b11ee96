//! Delivering messages to account owners: the senders (SMTP, SMS webhook, development files), the
//! message texts, and the worker that drains the outbox read model with retries and backoff and
//! records every outcome as an event.
pub mod email;
pub mod geoip;
pub mod render;
pub mod sms;
pub mod worker;

use std::future::Future;
use std::pin::Pin;

/// A boxed future, so senders can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An email to send.
#[derive(Debug, Clone)]
pub struct EmailMessage {
    /// Stable message id (also the idempotency key for providers that accept one).
    pub id: String,
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// A text message to send.
#[derive(Debug, Clone)]
pub struct SmsMessage {
    /// Stable message id.
    pub id: String,
    /// Recipient number (E.164).
    pub to: String,
    /// Text.
    pub body: String,
}

/// Why a send failed; `permanent` failures are not retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DeliveryError {
    /// Explanation without secrets (recorded in `NotificationFailed`).
    pub reason: String,
    /// Retrying cannot help (e.g. the address was refused).
    pub permanent: bool,
}

impl DeliveryError {
    /// A failure worth retrying.
    pub fn transient(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            permanent: false,
        }
    }

    /// A failure not worth retrying.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            permanent: true,
        }
    }
}

/// Sends email. Implemented by the SMTP client and the development file sink.
pub trait EmailSender: Send + Sync {
    /// Hands one message to the provider.
    fn send<'a>(&'a self, message: &'a EmailMessage) -> BoxFuture<'a, Result<(), DeliveryError>>;
    /// What it is, for the startup log (no credentials).
    fn describe(&self) -> String;
}

/// Sends text messages. Implemented by the webhook provider and the development file sink.
pub trait SmsProvider: Send + Sync {
    /// Hands one message to the provider.
    fn send<'a>(&'a self, message: &'a SmsMessage) -> BoxFuture<'a, Result<(), DeliveryError>>;
    /// What it is, for the startup log (no credentials).
    fn describe(&self) -> String;
}

/// Writes a development message under `dir` as `<id>.<ext>`, replacing path separators.
async fn write_dev_file(
    dir: &std::path::Path,
    id: &str,
    ext: &str,
    contents: String,
) -> Result<(), DeliveryError> {
    let name: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    tokio::fs::create_dir_all(dir).await.map_err(|e| {
        DeliveryError::transient(format!("cannot create the outbox directory: {e}"))
    })?;
    tokio::fs::write(dir.join(format!("{name}.{ext}")), contents)
        .await
        .map_err(|e| DeliveryError::transient(format!("cannot write the message file: {e}")))
}
