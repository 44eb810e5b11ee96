//! Real message receivers for the tests: an SMTP server (aiosmtpd from PyPI, writing a Maildir)
//! and an SMS webhook (a small HTTP server in the test process) that can be told to fail.
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

/// A received email.
#[derive(Debug, Clone)]
pub struct Mail {
    /// `To:` header.
    pub to: String,
    /// `Subject:` header.
    pub subject: String,
    /// Decoded body.
    pub body: String,
}

impl Mail {
    /// The first six-digit number in the body.
    pub fn code(&self) -> String {
        first_code(&self.body).unwrap_or_else(|| panic!("no code in {}", self.body))
    }
}

/// The first run of exactly six digits.
pub fn first_code(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i - start == 6 {
                return Some(text[start..i].to_string());
            }
        } else {
            i += 1;
        }
    }
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// aiosmtpd listening on a free port, storing every message in a Maildir.
pub struct SmtpSink {
    _child: Child,
    port: u16,
    dir: PathBuf,
}

impl SmtpSink {
    /// Starts the server and waits until it accepts connections.
    pub async fn start() -> Self {
        let python = std::env::var("TEST_SMTP_PYTHON").unwrap_or_else(|_| {
            panic!("TEST_SMTP_PYTHON must name a Python with aiosmtpd: run the suite with scripts/test")
        });
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-test-maildir-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(&python)
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start aiosmtpd with {python}: {e}"));
            for _ in 0..100 {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return Self {
                        _child: child,
                        port,
                        dir,
                    };
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("aiosmtpd did not start");
    }

    /// lettre URL for `GATEHOUSE_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<Mail> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.dir.join(sub)) {
                for e in entries.flatten() {
                    let modified = e
                        .metadata()
                        .and_then(|m| m.modified())
                        .unwrap_or(std::time::UNIX_EPOCH);
                    files.push((modified, e.path()));
                }
            }
        }
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, p)| std::fs::read_to_string(p).ok())
            .map(|raw| parse(&raw))
            .collect()
    }

    /// Messages sent to `to`.
    pub fn messages_to(&self, to: &str) -> Vec<Mail> {
        self.messages()
            .into_iter()
            .filter(|m| m.to.contains(to))
            .collect()
    }

    /// Waits (up to 15 s) until `to` has received `n` messages whose subject contains `subject`,
    /// and returns the last of them.
    pub async fn wait_for(&self, to: &str, subject: &str, n: usize) -> Mail {
        for _ in 0..300 {
            let found: Vec<Mail> = self
                .messages_to(to)
                .into_iter()
                .filter(|m| m.subject.contains(subject))
                .collect();
            if found.len() >= n {
                return found[n - 1].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no email #{n} '{subject}' to {to}; received: {:?}",
            self.messages()
        );
    }
}

fn header(headers: &str, name: &str) -> String {
    let prefix = format!("{}:", name.to_lowercase());
    headers
        .lines()
        .find(|l| l.to_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim().to_string())
        .unwrap_or_default()
}

fn parse(raw: &str) -> Mail {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    // Unfold continuation lines.
    let head = head.replace("\n ", " ").replace("\n\t", " ");
    let encoding = header(&head, "Content-Transfer-Encoding").to_lowercase();
    let body = match encoding.as_str() {
        "quoted-printable" => decode_quoted_printable(body),
        "base64" => {
            use base64::Engine as _;
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            String::from_utf8_lossy(
                &base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .unwrap_or_default(),
            )
            .into_owned()
        }
        _ => body.to_string(),
    };
    Mail {
        to: header(&head, "To"),
        subject: header(&head, "Subject"),
        body,
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An SMS provider's webhook: records every posted message; can answer 503 to the next N.
pub struct SmsSink {
    /// URL for `GATEHOUSE_SMS_WEBHOOK_URL`.
    pub url: String,
    received: Arc<Mutex<Vec<Value>>>,
    fail_next: Arc<AtomicUsize>,
    _server: tokio::task::JoinHandle<()>,
}

impl SmsSink {
    /// Starts the receiver on a free port.
    pub async fn start() -> Self {
        let received: Arc<Mutex<Vec<Value>>> = Arc::default();
        let fail_next = Arc::new(AtomicUsize::new(0));
        let (r, f) = (received.clone(), fail_next.clone());
        let app = axum::Router::new().route(
            "/sms",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let (r, f) = (r.clone(), f.clone());
                async move {
                    if f.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    r.lock().unwrap().push(body);
                    axum::http::StatusCode::ACCEPTED
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/sms"),
            received,
            fail_next,
            _server: server,
        }
    }

    /// The next `n` posts are answered 503.
    pub fn fail_next(&self, n: usize) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Messages accepted for `to`.
    pub fn messages_to(&self, to: &str) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m["to"] == to)
            .cloned()
            .collect()
    }

    /// Waits (up to 15 s) for the `n`th message to `to` whose text holds `needle` (security
    /// notices arrive between codes, in no fixed order).
    pub async fn wait_for_containing(&self, to: &str, needle: &str, n: usize) -> String {
        for _ in 0..300 {
            let found: Vec<String> = self
                .messages_to(to)
                .iter()
                .filter_map(|m| m["body"].as_str().map(str::to_string))
                .filter(|body| body.contains(needle))
                .collect();
            if found.len() >= n {
                return found[n - 1].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no SMS #{n} holding {needle:?} to {to}");
    }

    /// Waits (up to 15 s) for the `n`th message to `to` and returns its text.
    pub async fn wait_for(&self, to: &str, n: usize) -> String {
        for _ in 0..300 {
            let found = self.messages_to(to);
            if found.len() >= n {
                return found[n - 1]["body"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no SMS #{n} to {to}");
    }
}
