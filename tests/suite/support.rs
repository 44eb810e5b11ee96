//! Test fixtures: a database per test cloned from a migrated template, and the real server
//! binary started on a free port.
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use gatehouse_store::Store;
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

/// Master key used by servers under test (never a production key).
pub const TEST_MASTER_KEY: &str =
    "5d6a9f1c2b3e4d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7";
const TEMPLATE: &str = "gatehouse_test_template";

/// Where the tests find PostgreSQL.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn url_for(db: &str) -> String {
    let base = admin_url();
    match base.rfind('/') {
        Some(i) if !base[..i].ends_with('/') => format!("{}/{db}", &base[..i]),
        _ => format!("{base}/{db}"),
    }
}

static TEMPLATE_READY: OnceCell<()> = OnceCell::const_new();

async fn admin() -> PgConnection {
    PgConnection::connect(&admin_url())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach PostgreSQL at {} ({e}); run the suite through scripts/test",
                admin_url()
            )
        })
}

/// Builds the migrated template once per test run (and drops databases left by earlier runs).
async fn ensure_template() {
    TEMPLATE_READY
        .get_or_init(|| async {
            let mut conn = admin().await;
            sqlx::query("select pg_advisory_lock(4242)")
                .execute(&mut conn)
                .await
                .unwrap();
            let stale: Vec<String> = sqlx::query_scalar(
                "select datname from pg_database where datname like 'gh_test_%' or datname = $1",
            )
            .bind(TEMPLATE)
            .fetch_all(&mut conn)
            .await
            .unwrap();
            for db in stale {
                sqlx::query(&format!("drop database if exists {db} with (force)"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            sqlx::query(&format!("create database {TEMPLATE}"))
                .execute(&mut conn)
                .await
                .unwrap();
            let store = Store::connect_postgres(&url_for(TEMPLATE), 2)
                .await
                .unwrap();
            store.migrate().await.unwrap();
            store.close().await;
            sqlx::query("select pg_advisory_unlock(4242)")
                .execute(&mut conn)
                .await
                .unwrap();
        })
        .await;
}

/// A fresh, migrated database for one test.
pub struct TestDb {
    /// Its URL.
    pub url: String,
}

impl TestDb {
    /// Clones the template into a new database.
    pub async fn new() -> Self {
        ensure_template().await;
        let name = format!("gh_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin().await;
        sqlx::query(&format!("create database {name} template {TEMPLATE}"))
            .execute(&mut conn)
            .await
            .unwrap();
        Self {
            url: url_for(&name),
        }
    }

    /// A connected store on this database.
    pub async fn store(&self) -> Store {
        Store::connect_postgres(&self.url, 8).await.unwrap()
    }

    /// A plain pool for assertions.
    pub async fn pool(&self) -> sqlx::PgPool {
        PgPoolOptions::new()
            .max_connections(4)
            .connect(&self.url)
            .await
            .unwrap()
    }
}

/// The `gatehouse` binary next to the test executable.
pub fn binary() -> PathBuf {
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

/// The metrics token of servers under test (`/metrics` answers 404 without it).
pub const METRICS_TOKEN: &str = "test-metrics-token-0123456789abcdef";

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
    for route in ["SIGNUP", "LOGIN", "LOGIN_MFA"] {
        for key in ["IP", "NETWORK", "IDENTIFIER"] {
            env.insert(
                format!("GATEHOUSE_RATE_LIMIT_{route}_PER_{key}_PER_MINUTE"),
                "1000000".to_string(),
            );
        }
    }
    env
}

/// A running server.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Client with a 30 s timeout.
    pub http: reqwest::Client,
    /// Everything the server wrote to stderr so far (drained, so the pipe never fills).
    logs: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// Starts `gatehouse serve` against `database_url` with extra environment.
    pub async fn start(database_url: Option<&str>, env: &HashMap<String, String>) -> Self {
        Self::try_start(database_url, env)
            .await
            .unwrap_or_else(|stderr| panic!("server did not start: {stderr}"))
    }

    /// Starts the server; `Err(stderr)` when it exits before listening.
    pub async fn try_start(
        database_url: Option<&str>,
        env: &HashMap<String, String>,
    ) -> Result<Self, String> {
        let mut cmd = Command::new(binary());
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
            .env("GATEHOUSE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Messages of tests that bring no SMTP server or SMS webhook go to a scratch directory.
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
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
        let addr = match line {
            Ok(Ok(Some(line))) if line.starts_with("gatehouse listening on ") => line
                .trim_start_matches("gatehouse listening on ")
                .split(' ')
                .next()
                .unwrap()
                .to_string(),
            _ => {
                let _ = child.kill().await;
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use tokio::io::AsyncReadExt;
                    let _ = e.read_to_string(&mut stderr).await;
                }
                return Err(stderr);
            }
        };
        // Keep draining stdout and stderr so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let logs = logs.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut all = logs.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            });
        }
        gatehouse_api::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Ok(Self {
            child,
            base: format!("http://{addr}"),
            http,
            logs,
        })
    }

    /// What the server has logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Sends SIGKILL and waits for the process to go.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
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

/// Status and JSON body (`Null` when the body is empty).
pub async fn read(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Every error body has exactly the documented shape.
pub fn assert_error_shape(body: &Value, code: &str) {
    let err = body
        .get("error")
        .unwrap_or_else(|| panic!("no error object in {body}"));
    assert_eq!(err["code"], code, "{body}");
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
}

/// Every row of each `(table, order by)` as `table: {json}`, in that order: read models compared
/// whole (live against rebuilt, one batch against one event per batch).
pub async fn table_rows(pool: &sqlx::PgPool, tables: &[(&str, &str)]) -> Vec<String> {
    let mut rows = Vec::new();
    for (table, order) in tables {
        let dump: Vec<String> = sqlx::query_scalar(&format!(
            "select row_to_json(t)::text from (select * from {table} order by {order}) t"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        rows.extend(dump.into_iter().map(|r| format!("{table}: {r}")));
    }
    rows
}

/// The alerts read model's tables and their keys (for [`table_rows`]).
pub const ALERT_TABLES: [(&str, &str); 5] = [
    ("alerts_v1", "id"),
    ("alert_evidence_v1", "alert_id, aggregate_id, sequence"),
    ("alert_signals_v1", "signal, aggregate_id, sequence"),
    ("alert_known_v1", "account_id, kind, value"),
    ("alert_recovery_marks_v1", "account_id"),
];

/// Event types of one aggregate, in order.
pub async fn event_types(pool: &sqlx::PgPool, aggregate_id: &str) -> Vec<String> {
    sqlx::query_scalar("select event_type from events where aggregate_id = $1 order by sequence")
        .bind(aggregate_id)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Polls `check` until it returns true (up to 10 s).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A strong password no test account's identifiers appear in.
pub const PASSWORD: &str = "violet-anchor-tundra-58-quietly";

/// Asserts that no row of any table holds any of `needles` (case-insensitive); returns the
/// tables scanned.
pub async fn assert_nowhere_in_database(pool: &sqlx::PgPool, needles: &[String]) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for table in &tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!("select t::text from {table} t"))
            .fetch_all(pool)
            .await
            .unwrap();
        for row in rows {
            let lower = row.to_lowercase();
            for needle in needles {
                assert!(
                    !lower.contains(&needle.to_lowercase()),
                    "{table} holds a secret in clear ({needle}): {row}"
                );
            }
        }
    }
    tables
}
