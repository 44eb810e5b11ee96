//! The real `gatehouse` binary, started with `serve` on a free port: by the tests (a clean
//! environment, fast settings, every log line kept) and by the benchmarks (the caller's
//! `GATEHOUSE_*` settings passed on, the server's own log on the terminal).
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::checks::read;

/// Master key used by servers under test (never a production key).
pub const TEST_MASTER_KEY: &str =
    "5d6a9f1c2b3e4d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7";

/// The metrics token of servers under test (`/metrics` answers 404 without it).
pub const METRICS_TOKEN: &str = "test-metrics-token-0123456789abcdef";

/// A strong password no test account's identifiers appear in.
pub const PASSWORD: &str = "violet-anchor-tundra-58-quietly";

/// Lines of the server's output kept for [`Server::state`].
const TAIL_LINES: usize = 20;

/// The `gatehouse` binary next to the test executable, or the one `TEST_GATEHOUSE_BIN` names.
pub fn binary() -> PathBuf {
    // Measurements run the tests against a release build (BENCHMARKS.md, page answer times).
    if let Some(bin) = std::env::var_os("TEST_GATEHOUSE_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|p| p.parent()).unwrap().to_path_buf();
    let bin = dir.join("gatehouse");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p gatehouse-api`, or run scripts/test)",
        bin.display()
    );
    bin
}

/// The sign-up and sign-in rate limits (the self-service ones have generic settings).
const SIGN_IN_LIMITS: [&str; 9] = [
    "GATEHOUSE_RATE_LIMIT_SIGNUP_PER_IP_PER_MINUTE",
    "GATEHOUSE_RATE_LIMIT_SIGNUP_PER_NETWORK_PER_MINUTE",
    "GATEHOUSE_RATE_LIMIT_SIGNUP_PER_IDENTIFIER_PER_MINUTE",
    "GATEHOUSE_RATE_LIMIT_LOGIN_PER_IP_PER_MINUTE",
    "GATEHOUSE_RATE_LIMIT_LOGIN_PER_NETWORK_PER_MINUTE",
    "GATEHOUSE_RATE_LIMIT_LOGIN_PER_IDENTIFIER_PER_MINUTE",
    "GATEHOUSE_RATE_LIMIT_LOGIN_MFA_PER_IP_PER_MINUTE",
    "GATEHOUSE_RATE_LIMIT_LOGIN_MFA_PER_NETWORK_PER_MINUTE",
    "GATEHOUSE_RATE_LIMIT_LOGIN_MFA_PER_IDENTIFIER_PER_MINUTE",
];

/// Every client of a test or benchmark is 127.0.0.1: the sign-up and sign-in limits set
/// explicitly to `per_minute` (`"1000000"`: limits on, far above the offered load, so every
/// request pays for the limiter; `"0"`: no limits, so no limiter work at all).
pub fn sign_in_limits(per_minute: &str) -> Vec<(&'static str, String)> {
    SIGN_IN_LIMITS
        .iter()
        .map(|name| (*name, per_minute.to_string()))
        .collect()
}

/// Settings that keep tests fast: cheap Argon2 (the rehash test and the benchmark use real ones).
pub fn fast_env() -> HashMap<String, String> {
    let mut env = HashMap::from([
        (
            "GATEHOUSE_ARGON2_MEMORY_KIB".to_string(),
            "1024".to_string(),
        ),
        ("GATEHOUSE_ARGON2_ITERATIONS".to_string(), "1".to_string()),
        // Two tests run at once on a server that may allow only 100 connections.
        ("GATEHOUSE_DB_MAX_CONNECTIONS".to_string(), "6".to_string()),
        // Tests enrol a factor and go on to high-risk steps at once; the cooldown that adding a
        // factor starts has its own test (e2e_controls) with the default duration.
        (
            "GATEHOUSE_COOLDOWN_AFTER_FACTOR_ADDED_SECONDS".to_string(),
            "0".to_string(),
        ),
        // Sign-in requires a verified contact by default; most tests sign in right after
        // signing up without reading the verification code. The rule has its own tests
        // (e2e_verified_contact), which set it back to true.
        (
            "GATEHOUSE_REQUIRE_VERIFIED_CONTACT".to_string(),
            "false".to_string(),
        ),
        // Tests that scrape /metrics present it (METRICS_TOKEN).
        (
            "GATEHOUSE_METRICS_TOKEN".to_string(),
            METRICS_TOKEN.to_string(),
        ),
    ]);
    // Tests sign up and sign in in bursts from 127.0.0.1; the tests of these limits
    // (e2e_rate_limits) set them explicitly. The self-service limits keep their defaults.
    for (name, value) in sign_in_limits("1000000") {
        env.insert(name.to_string(), value);
    }
    env
}

/// A running server, killed when dropped.
pub struct Server {
    child: Child,
    /// Its process id (for `/proc` figures).
    pub pid: u32,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Client with a 30 s timeout.
    pub http: reqwest::Client,
    /// What the server wrote after it said where it listens (drained, so no pipe ever fills).
    output: Arc<Mutex<Output>>,
}

/// The captured output: all of it, and its last lines.
#[derive(Default)]
struct Output {
    all: String,
    tail: VecDeque<String>,
}

impl Server {
    /// Starts `gatehouse serve` against `database_url` with extra environment.
    pub async fn start(database_url: Option<&str>, env: &HashMap<String, String>) -> Self {
        Self::try_start(database_url, env)
            .await
            .unwrap_or_else(|stderr| panic!("server did not start: {stderr}"))
    }

    /// Starts the test binary ([`binary`]) in a clean environment: only `PATH`, `env`, the test
    /// master key with a database, and a scratch outbox for messages of tests that bring no SMTP
    /// server or SMS webhook. `Err(stderr)` when it exits before listening.
    pub async fn try_start(
        database_url: Option<&str>,
        env: &HashMap<String, String>,
    ) -> Result<Self, String> {
        let mut cmd = serve(&binary());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
            .env("GATEHOUSE_LOG", "warn")
            .stderr(Stdio::piped());
        static OUTBOXES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let outbox = std::env::temp_dir().join(format!(
            "gatehouse-test-outbox-{}-{}",
            std::process::id(),
            OUTBOXES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        cmd.env("GATEHOUSE_DEV_OUTBOX_DIR", &outbox);
        if let Some(url) = database_url {
            cmd.env("DATABASE_URL", url)
                .env("GATEHOUSE_MASTER_KEY", TEST_MASTER_KEY);
        }
        cmd.envs(env);
        Self::spawn(cmd, Duration::from_secs(60)).await
    }

    /// Starts `bin` for a benchmark on `database_url`: the caller's `GATEHOUSE_*` settings, then
    /// `env`, on top of a throwaway master key and sign-in without a verified contact (the
    /// benchmarks sign in to accounts they have just created without reading the codes). The
    /// server logs to this process's stderr.
    pub async fn start_bench(
        bin: &Path,
        database_url: &str,
        env: &[(&str, String)],
    ) -> Result<Self, String> {
        let mut cmd = serve(bin);
        cmd.env("DATABASE_URL", database_url)
            .env("GATEHOUSE_MASTER_KEY", "0".repeat(64))
            .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
            .env("GATEHOUSE_LOG", "warn")
            .env("GATEHOUSE_REQUIRE_VERIFIED_CONTACT", "false")
            .envs(std::env::vars().filter(|(k, _)| k.starts_with("GATEHOUSE_")))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        Self::spawn(cmd, Duration::from_secs(120))
            .await
            .map_err(|e| format!("start {}: {e}", bin.display()))
    }

    /// Spawns `cmd`, waits up to `wait` for the line that says where it listens, and keeps
    /// draining its output. `Err` holds what it wrote to a piped stderr, or why it failed.
    async fn spawn(mut cmd: Command, wait: Duration) -> Result<Self, String> {
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let pid = child.id().ok_or("the server exited at once")?;
        let stdout = child.stdout.take().ok_or("no stdout from the server")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(wait, lines.next_line()).await;
        let addr = match line {
            Ok(Ok(Some(line))) if line.starts_with("gatehouse listening on ") => line
                .trim_start_matches("gatehouse listening on ")
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_string(),
            other => {
                let _ = child.kill().await;
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use tokio::io::AsyncReadExt;
                    let _ = e.read_to_string(&mut stderr).await;
                }
                if stderr.is_empty() {
                    stderr = match other {
                        Err(_) => format!("it did not say where it listens within {wait:?}"),
                        _ => "it exited before listening".to_string(),
                    };
                }
                return Err(stderr);
            }
        };
        let output = Arc::new(Mutex::new(Output::default()));
        drain(lines.into_inner(), output.clone());
        if let Some(stderr) = child.stderr.take() {
            drain(stderr, output.clone());
        }
        rustls::crypto::ring::default_provider()
            .install_default()
            .ok();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            child,
            pid,
            base: format!("http://{addr}"),
            http,
            output,
        })
    }

    /// What the server has written so far (its log, when stderr is captured).
    pub fn logs(&self) -> String {
        self.output
            .lock()
            .map(|o| o.all.clone())
            .unwrap_or_default()
    }

    /// Whether the server still runs, and its last lines, for an error message.
    pub fn state(&mut self) -> String {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => format!("the server exited ({status})"),
            Ok(None) => "the server is still running".to_string(),
            Err(e) => format!("the server's state is unknown ({e})"),
        };
        let lines: Vec<String> = self
            .output
            .lock()
            .map(|o| o.tail.iter().cloned().collect())
            .unwrap_or_default();
        format!("{status}; its last lines:\n{}", lines.join("\n"))
    }

    /// Peak and current resident memory in MiB (`VmHWM`, `VmRSS`; 0 off Linux).
    pub fn memory_mib(&self) -> (f64, f64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .map_or(0.0, |kib| kib / 1024.0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    /// Sends SIGKILL and waits for the process to go.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// POSTs JSON; returns status and body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        read(r).await
    }

    /// POSTs JSON with a bearer token.
    pub async fn post_authed(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        read(r).await
    }

    /// Sends a request with a bearer token.
    pub async fn authed(&self, method: reqwest::Method, path: &str, token: &str) -> (u16, Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        read(r).await
    }

    /// The `/metrics` text (with the test metrics token).
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Registers an account; returns its id.
    pub async fn register(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .post(
                "/v1/accounts",
                serde_json::json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["account_id"].as_str().unwrap().to_string()
    }

    /// Logs in; returns status and body.
    pub async fn login(&self, identifier: &str, password: &str) -> (u16, Value) {
        self.post(
            "/v1/login",
            serde_json::json!({"identifier": identifier, "password": password}),
        )
        .await
    }

    /// Logs in, expecting success; returns the token.
    pub async fn token(&self, identifier: &str, password: &str) -> String {
        let (status, body) = self.login(identifier, password).await;
        assert_eq!(status, 200, "{body}");
        body["session_token"].as_str().unwrap().to_string()
    }
}

/// `bin serve` with stdout piped, killed on drop.
fn serve(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("serve").stdout(Stdio::piped()).kill_on_drop(true);
    cmd
}

/// Reads `pipe` line by line into `output` until it closes, so the child never blocks on it.
fn drain(pipe: impl AsyncRead + Unpin + Send + 'static, output: Arc<Mutex<Output>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut out) = output.lock() {
                out.all.push_str(&line);
                out.all.push('\n');
                if out.tail.len() >= TAIL_LINES {
                    out.tail.pop_front();
                }
                out.tail.push_back(line);
            }
        }
    });
}
