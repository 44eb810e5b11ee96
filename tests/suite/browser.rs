//! The browser harness of the page tests (`ui_*`): Debian's Chromium driven over WebDriver by
//! fantoccini, against the real binary.
//!
//! Each test starts its own chromedriver on a free port and one headless browser session
//! ([`Browser::start`]). Without a chromedriver (`TEST_CHROMEDRIVER`, else `chromedriver` on
//! `PATH`) the browser tests skip, saying so, unless `CI=true`, where they fail. Screenshots go
//! to `target/screenshots/<name>-{desktop,phone}.png`; the accessibility check injects axe-core
//! from `TEST_AXE_JS` (`scripts/test` installs it with npm under `target/test-tools/`).
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

/// Desktop and phone window sizes of the screenshots.
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

/// The chromedriver to use, or `None` (the caller skips, or fails under CI).
fn chromedriver() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TEST_CHROMEDRIVER") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromedriver"))
        .find(|p| p.is_file())
}

/// The Chromium binary (`TEST_CHROMIUM`, else Debian's `/usr/bin/chromium`).
fn chromium() -> String {
    std::env::var("TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string())
}

/// Where screenshots go: `target/screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("screenshots")
}

/// A headless Chromium session and the chromedriver behind it. When dropped (also when the
/// test fails) the chromedriver this test started and every process under it (Chromium and its
/// helpers) are killed, by their own ids and process group, and nothing else.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    driver: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let Some(pid) = self.driver.id() else {
            return;
        };
        // Found before anything is killed: once the driver is gone, its children are
        // reparented and no longer traceable to it.
        let started = descendants(pid);
        // The driver was started as the leader of its own process group, which Chromium and
        // its helpers inherit: the group is this test's processes only.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        // Any that left the group: each by its id.
        for child in started {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &child.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.driver.start_kill();
    }
}

/// The ids of every process below `root` (read from `/proc`).
fn descendants(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // `pid (comm) state ppid …`: the command may hold spaces and parentheses.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, _) in parents.iter().filter(|(_, pp)| *pp == parent) {
            found.push(*pid);
            frontier.push(*pid);
        }
    }
    found
}

/// A free local port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// A browser for a test, or `None` when there is no chromedriver here (said on stderr);
    /// with `CI=true` a missing browser fails the test instead.
    pub async fn start(test: &str) -> Option<Self> {
        let Some(driver_bin) = chromedriver() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: no chromedriver (set TEST_CHROMEDRIVER or install chromium-driver); CI=true needs the browser tests"
            );
            eprintln!("{test}: skipped: no chromedriver (install chromium and chromium-driver, or set TEST_CHROMEDRIVER)");
            return None;
        };
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            // Its own process group, so that Drop can end it with everything it started.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", driver_bin.display()));
        let url = format!("http://127.0.0.1:{port}");
        let mut args = vec![
            "--headless=new".to_string(),
            "--disable-gpu".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--no-first-run".to_string(),
            "--disable-extensions".to_string(),
            "--lang=en-US".to_string(),
            format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
        ];
        // Chromium refuses to run as root without it (CI and this machine run as root).
        if is_root() {
            args.push("--no-sandbox".to_string());
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_string(),
            json!({"binary": chromium(), "args": args}),
        );
        let mut last = None;
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    let browser = Self { client, driver };
                    browser.desktop().await;
                    return Some(browser);
                }
                Err(e) => last = Some(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{test}: chromedriver did not start a session: {last:?}");
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// The current path (and query).
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Types `text` into the field `#id` (cleared first).
    pub async fn fill(&self, id: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Css(&format!("#{id}")))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks the element `css`.
    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Waits (up to 10 s) until the page's main text contains `needle`; the text.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let mut text = String::new();
        for _ in 0..100 {
            if let Ok(main) = self.client.find(Locator::Css("main")).await {
                text = main.text().await.unwrap_or_default();
                if text.contains(needle) {
                    return text;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page never said {needle:?}; it says: {text}");
    }

    /// Runs `script` in the page; its result.
    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    async fn desktop(&self) {
        self.client
            .set_window_size(DESKTOP.0, DESKTOP.1)
            .await
            .unwrap();
    }

    /// Screenshots of the current page at desktop and phone width:
    /// `target/screenshots/<name>-desktop.png` and `-phone.png`. At phone width the page must
    /// not scroll sideways (no layout that breaks on a phone).
    pub async fn screenshots(&self, name: &str) {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}-desktop.png")), png).unwrap();
        self.client.set_window_size(PHONE.0, PHONE.1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let overflow = self
            .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
            .await;
        assert!(
            overflow.as_i64().unwrap_or(0) <= 1,
            "{name}: the page scrolls sideways at phone width ({overflow} px)"
        );
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}-phone.png")), png).unwrap();
        self.desktop().await;
    }

    /// Runs axe-core on the current page and fails on any serious or critical violation. Skipped
    /// (said on stderr) when `TEST_AXE_JS` is not set, except with `CI=true`.
    pub async fn assert_accessible(&self, name: &str) {
        let Some(path) = std::env::var_os("TEST_AXE_JS") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{name}: TEST_AXE_JS is not set; CI=true needs the accessibility check"
            );
            eprintln!("{name}: accessibility check skipped: TEST_AXE_JS is not set (scripts/test installs axe-core)");
            return;
        };
        let axe = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("TEST_AXE_JS {}: {e}", PathBuf::from(&path).display()));
        // Injected through WebDriver (not a <script> tag): the page's CSP stays as served.
        self.client.execute(&axe, vec![]).await.unwrap();
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']})
                   .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))))
                   .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));",
                vec![],
            )
            .await
            .unwrap();
        let bad: Vec<&Value> = result
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
            .collect();
        assert!(bad.is_empty(), "{name}: accessibility violations: {bad:#?}");
    }

    /// The page at its desktop and phone widths, checked: screenshots and axe-core.
    pub async fn check_page(&self, name: &str) {
        self.assert_accessible(name).await;
        self.screenshots(name).await;
    }

    /// Adds a virtual authenticator (the W3C WebAuthn WebDriver extension): CTAP2 over USB,
    /// resident keys and user verification as asked, presence and verification given
    /// automatically. Its id.
    pub async fn add_virtual_authenticator(
        &self,
        resident_key: bool,
        user_verification: bool,
    ) -> String {
        let answer = self
            .client
            .issue_cmd(WebAuthn {
                path: "webauthn/authenticator",
                body: Some(json!({
                    "protocol": "ctap2",
                    "transport": "usb",
                    "hasResidentKey": resident_key,
                    "hasUserVerification": user_verification,
                    "isUserConsenting": true,
                    "isUserVerified": user_verification,
                })),
            })
            .await
            .unwrap();
        answer.as_str().unwrap_or_default().to_string()
    }

    /// Ends the session (the driver is killed on drop).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A command of the WebAuthn WebDriver extension (`/session/{id}/webauthn/…`).
#[derive(Debug)]
struct WebAuthn {
    path: &'static str,
    body: Option<Value>,
}

impl WebDriverCompatibleCommand for WebAuthn {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            self.body.as_ref().map(|b| b.to_string()),
        )
    }
}
