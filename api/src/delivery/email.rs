//! Email senders: SMTP through `lettre`, and a directory of `.eml` files for development.
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{write_dev_file, BoxFuture, DeliveryError, EmailMessage, EmailSender};

/// SMTP, configured by a lettre URL (`smtp://host:port`, `smtps://user:pass@host`, …).
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    server: String,
}

impl SmtpSender {
    /// Builds the client; fails on a malformed URL or sender address.
    pub fn new(url: &str, from: &str) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("GATEHOUSE_SMTP_URL is not a valid SMTP URL: {e}"))?
            .timeout(Some(Duration::from_secs(15)))
            .build();
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("GATEHOUSE_SMTP_FROM is not a valid address: {e}"))?;
        // For the log: scheme, host and port, never credentials.
        let server = url
            .split_once("://")
            .map(|(scheme, rest)| {
                let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
                format!(
                    "{scheme}://{}",
                    host.split(['/', '?']).next().unwrap_or(host)
                )
            })
            .unwrap_or_else(|| "smtp".into());
        Ok(Self {
            transport,
            from,
            server,
        })
    }
}

impl EmailSender for SmtpSender {
    fn send<'a>(&'a self, message: &'a EmailMessage) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let to: Mailbox = message
                .to
                .parse()
                .map_err(|_| DeliveryError::permanent("the recipient address is not valid"))?;
            let email = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(message.subject.clone())
                .message_id(Some(format!(
                    "<{}@gatehouse>",
                    message.id.replace(['/', '<', '>', '@'], ".")
                )))
                .header(ContentType::TEXT_PLAIN)
                .body(message.body.clone())
                .map_err(|e| DeliveryError::permanent(format!("cannot build the message: {e}")))?;
            // The reason is recorded in an event and logged: only the SMTP status code and the
            // kind of failure, never the server's text, which often quotes the recipient.
            match self.transport.send(email).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    let kind = if e.is_timeout() {
                        "timed out"
                    } else if e.is_permanent() {
                        "refused the message"
                    } else if e.is_transient() {
                        "deferred the message"
                    } else {
                        "could not be reached"
                    };
                    let reason = match e.status() {
                        Some(code) => format!("the SMTP server {kind} ({code})"),
                        None => format!("the SMTP server {kind}"),
                    };
                    if e.is_permanent() {
                        Err(DeliveryError::permanent(reason))
                    } else {
                        Err(DeliveryError::transient(reason))
                    }
                }
            }
        })
    }

    fn describe(&self) -> String {
        format!("SMTP {}", self.server)
    }
}

/// Development sink: each email becomes a file under a directory.
pub struct FileEmailSender {
    dir: PathBuf,
}

impl FileEmailSender {
    /// Writes into `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
}

impl EmailSender for FileEmailSender {
    fn send<'a>(&'a self, message: &'a EmailMessage) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let contents = format!(
                "To: {}\nSubject: {}\n\n{}\n",
                message.to, message.subject, message.body
            );
            write_dev_file(&self.dir, &message.id, "eml", contents).await
        })
    }

    fn describe(&self) -> String {
        format!("development files in {}", self.dir.display())
    }
}
