//! SMS providers: a JSON webhook (`POST {"id", "to", "body"}`), and a directory of files for
//! development. Other providers implement the same trait.
use std::path::PathBuf;
use std::time::Duration;

use super::{write_dev_file, BoxFuture, DeliveryError, SmsMessage, SmsProvider};

/// Posts each message as JSON to a webhook; a 2xx answer means accepted.
pub struct WebhookSms {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl WebhookSms {
    /// Builds the client; fails on a malformed URL.
    pub fn new(url: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(url)
            .map_err(|e| format!("GATEHOUSE_SMS_WEBHOOK_URL is not a valid URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("GATEHOUSE_SMS_WEBHOOK_URL must be an http or https URL".into());
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { client, url })
    }
}

impl SmsProvider for WebhookSms {
    fn send<'a>(&'a self, message: &'a SmsMessage) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let body = serde_json::json!({
                "id": message.id,
                "to": message.to,
                "body": message.body,
            });
            let response = self
                .client
                .post(self.url.clone())
                .json(&body)
                .send()
                .await
                .map_err(|e| {
                    DeliveryError::transient(format!(
                        "the SMS webhook could not be reached: {}",
                        e.without_url()
                    ))
                })?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408 {
                Err(DeliveryError::permanent(format!(
                    "the SMS webhook refused the message ({status})"
                )))
            } else {
                Err(DeliveryError::transient(format!(
                    "the SMS webhook answered {status}"
                )))
            }
        })
    }

    fn describe(&self) -> String {
        format!(
            "SMS webhook {}://{}",
            self.url.scheme(),
            self.url.host_str().unwrap_or("?")
        )
    }
}

/// Development sink: each text message becomes a file under a directory.
pub struct FileSms {
    dir: PathBuf,
}

impl FileSms {
    /// Writes into `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
}

impl SmsProvider for FileSms {
    fn send<'a>(&'a self, message: &'a SmsMessage) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let contents = format!("To: {}\n\n{}\n", message.to, message.body);
            write_dev_file(&self.dir, &message.id, "sms.txt", contents).await
        })
    }

    fn describe(&self) -> String {
        format!("development files in {}", self.dir.display())
    }
}
