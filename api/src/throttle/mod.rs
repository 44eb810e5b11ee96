//! Rate limits of the unauthenticated routes (and the signed-in routes that check a secret), per
//! client IP, per network (/24 IPv4, /64 IPv6) and per identifier (an identifier's lookup hash,
//! or the flow or challenge id where a route has none), on top of the per-code limits the
//! aggregate enforces.
//!
//! One API ([`Throttle::admit`]) over one [`LimitBackend`] trait, GCRA everywhere (a burst of the
//! per-minute limit, then an even rate):
//! - PostgreSQL: one shared budget for all server processes, a row per key in
//!   `rate_limit_buckets`, every key of a request checked in one statement ([`postgres`]); if
//!   the database cannot answer the request answers `503 unavailable` (the command would need
//!   the same database);
//! - Redis when `GATEHOUSE_REDIS_URL` is set: the same, one Lua script call ([`redis`]); if Redis
//!   cannot be reached the request is admitted (fail open), logged and counted;
//! - the embedded store: per process (`governor`), as a single process is the point of it
//!   ([`local`]).
//!
//! Each key is checked on its own: a request refused by one key has still used its allowance
//! at the keys that admitted it (so a refused burst keeps counting against its IP).
pub mod local;
pub mod postgres;
pub mod redis;
pub mod table;
mod windows;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::error::ApiError;

pub use table::{LimitTable, Route, KEY_KINDS, ROUTES};
pub use windows::ClosedWindow;

/// What a limit counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// The client address.
    Ip,
    /// The client's /24 (IPv4) or /64 (IPv6).
    Network,
    /// The identifier's lookup hash, or the flow or challenge id.
    Identifier,
}

impl KeyKind {
    /// `IP`, `NETWORK`, `IDENTIFIER` (setting names).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ip => "IP",
            Self::Network => "NETWORK",
            Self::Identifier => "IDENTIFIER",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Network => "network",
            Self::Identifier => "identifier",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Ip => 0,
            Self::Network => 1,
            Self::Identifier => 2,
        }
    }
}

/// One limited key of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitKey {
    /// `<route>:<kind>:<value>`, e.g. `login:ip:203.0.113.7`.
    pub name: String,
    /// Requests allowed per minute (at least 1).
    pub per_minute: u32,
}

impl LimitKey {
    /// GCRA emission interval in microseconds.
    pub fn interval_us(&self) -> i64 {
        60_000_000 / i64::from(self.per_minute.max(1))
    }
}

/// The backend could not decide (the request is then admitted).
#[derive(Debug, thiserror::Error)]
#[error("rate limit backend unavailable: {0}")]
pub struct BackendError(pub String);

/// Where the limit state lives.
pub trait LimitBackend: Send + Sync {
    /// Spends one request at each key; answers, per key, `None` (admitted) or the wait before
    /// that key admits again.
    fn check<'a>(
        &'a self,
        keys: &'a [LimitKey],
    ) -> BoxFuture<'a, Result<Vec<Option<Duration>>, BackendError>>;

    /// Drops the state of keys back to full allowance (called periodically).
    fn housekeep(&self) -> BoxFuture<'_, Result<(), BackendError>>;

    /// `postgres`, `redis` or `local` (logs).
    fn name(&self) -> &'static str;
}

/// Counters for `/metrics`.
#[derive(Default)]
struct Stats {
    /// Refusals by route and key kind.
    refused: [[AtomicU64; 3]; ROUTES.len()],
    /// Requests admitted because the backend failed.
    failed_open: AtomicU64,
    /// When a backend failure was last logged (ms since the epoch).
    last_failure_log_ms: AtomicU64,
}

/// The limiter every rate-limited route goes through.
pub struct Throttle {
    table: LimitTable,
    backend: Box<dyn LimitBackend>,
    stats: Stats,
    windows: windows::Windows,
}

/// Backend failures are logged at most this often.
const FAILURE_LOG_EVERY_MS: u64 = 10_000;

impl Throttle {
    /// The limiter with `table`'s limits over `backend`.
    pub fn new(table: LimitTable, backend: Box<dyn LimitBackend>) -> Self {
        Self {
            table,
            backend,
            stats: Stats::default(),
            windows: windows::Windows::default(),
        }
    }

    /// Per-process limits (`governor`) with `table`'s limits.
    pub fn local(table: LimitTable) -> Self {
        Self::new(table, Box::new(local::LocalBackend::default()))
    }

    /// The limits in force.
    pub fn table(&self) -> &LimitTable {
        &self.table
    }

    /// Which backend holds the state.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Admits a request to `route` from `ip` about `identifier`, or refuses it with
    /// `429 rate_limited`, `retry_after` and `Retry-After`. `identifier` is an identifier's lookup
    /// hash or a flow or challenge id; pass `None` to skip the per-identifier limit (a caller
    /// that is exempt from it, e.g. a holder of a valid device token). Without a client address
    /// only the per-identifier limit applies.
    pub async fn admit(
        &self,
        route: Route,
        ip: Option<IpAddr>,
        identifier: Option<&str>,
    ) -> Result<(), ApiError> {
        let keys = self.keys(route, ip, identifier);
        if keys.is_empty() {
            return Ok(());
        }
        let answers = match self.backend.check(&keys).await {
            Ok(answers) => answers,
            // On PostgreSQL the limits live in the server's own database: when it cannot
            // answer, the command cannot run either, so the request answers `unavailable` now
            // instead of being admitted to wait for a connection a second time (issue #23,
            // item 3). Redis fails open.
            Err(e) if self.backend.name() == "postgres" => {
                tracing::debug!(error = %e, "rate limits' database unavailable");
                return Err(ApiError::unavailable());
            }
            Err(e) => {
                self.failed_open(&e);
                return Ok(());
            }
        };
        let mut wait: Option<Duration> = None;
        for ((kind, _), answer) in self.kinds(route, ip, identifier).zip(&answers) {
            if let Some(w) = answer {
                self.stats.refused[route.index()][kind.index()].fetch_add(1, Ordering::Relaxed);
                wait = Some(wait.map_or(*w, |current| current.max(*w)));
            }
        }
        match wait {
            None => Ok(()),
            Some(wait) => {
                if let Some(ip) = ip {
                    self.windows.refused(ip, route, identifier);
                }
                Err(refusal(wait))
            }
        }
    }

    /// The kinds that apply to a request, with their key values.
    fn kinds<'a>(
        &'a self,
        route: Route,
        ip: Option<IpAddr>,
        identifier: Option<&'a str>,
    ) -> impl Iterator<Item = (KeyKind, String)> + 'a {
        let ip_keys = ip.into_iter().flat_map(|ip| {
            [
                (KeyKind::Ip, ip.to_string()),
                (KeyKind::Network, network_of(ip)),
            ]
        });
        let id_keys = identifier
            .into_iter()
            .map(|id| (KeyKind::Identifier, id.to_string()));
        ip_keys
            .chain(id_keys)
            .filter(move |(kind, _)| self.table.per_minute(route, *kind) > 0)
    }

    fn keys(&self, route: Route, ip: Option<IpAddr>, identifier: Option<&str>) -> Vec<LimitKey> {
        self.kinds(route, ip, identifier)
            .map(|(kind, value)| LimitKey {
                name: format!("{}:{}:{value}", route.label(), kind.label()),
                per_minute: self.table.per_minute(route, kind),
            })
            .collect()
    }

    fn failed_open(&self, e: &BackendError) {
        self.stats.failed_open.fetch_add(1, Ordering::Relaxed);
        let now = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        let last = self.stats.last_failure_log_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= FAILURE_LOG_EVERY_MS
            && self
                .stats
                .last_failure_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(error = %e, backend = self.backend.name(), failed_open = self.stats.failed_open.load(Ordering::Relaxed),
                "rate limiter unavailable: admitting requests unlimited (logged at most every 10 s)");
        }
    }

    /// Prunes the backend's state and hands over the refusal windows that have closed.
    pub async fn housekeep(&self) -> Vec<ClosedWindow> {
        if let Err(e) = self.backend.housekeep().await {
            tracing::warn!(error = %e, "could not prune rate limit state");
        }
        self.windows.close(chrono::Utc::now())
    }

    /// Prometheus text for `/metrics`.
    pub fn render_metrics(&self, text: &mut String) {
        use std::fmt::Write as _;
        text.push_str(
            "# HELP gatehouse_rate_limited_total Requests refused by a rate limit since this process started, by route and key (a request refused by two keys counts at both).\n\
             # TYPE gatehouse_rate_limited_total counter\n",
        );
        for route in ROUTES {
            for kind in KEY_KINDS {
                let n = self.stats.refused[route.index()][kind.index()].load(Ordering::Relaxed);
                let _ = writeln!(
                    text,
                    "gatehouse_rate_limited_total{{route=\"{}\",key=\"{}\"}} {n}",
                    route.label(),
                    kind.label()
                );
            }
        }
        let _ = writeln!(
            text,
            "# HELP gatehouse_rate_limit_failed_open_total Requests admitted without a limit because the rate limit backend could not be reached.\n\
             # TYPE gatehouse_rate_limit_failed_open_total counter\n\
             gatehouse_rate_limit_failed_open_total{{backend=\"{}\"}} {}",
            self.backend.name(),
            self.stats.failed_open.load(Ordering::Relaxed)
        );
    }
}

/// The one refusal: `429 rate_limited` with the wait, rounded up to whole seconds.
fn refusal(wait: Duration) -> ApiError {
    let seconds = i64::try_from(wait.as_secs())
        .unwrap_or(i64::MAX)
        .saturating_add(i64::from(wait.subsec_nanos() > 0));
    ApiError::rate_limited(
        "rate_limited",
        "too many requests; wait before trying again",
        seconds,
    )
}

/// A client's network: its /24 (IPv4) or /64 (IPv6), in CIDR form.
pub fn network_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            format!("{}/64", std::net::Ipv6Addr::from(segments))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(vars: &[(&str, &str)]) -> Throttle {
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Throttle::local(LimitTable::from_vars(vars, 30, 10).unwrap())
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[tokio::test]
    async fn test_identifier_limit_refuses_with_a_retry_hint() {
        let t = throttle(&[("GATEHOUSE_RATE_LIMIT_FORGOT_PER_IDENTIFIER_PER_MINUTE", "2")]);
        let from = ip("192.0.2.1");
        assert!(t.admit(Route::Forgot, from, Some("a")).await.is_ok());
        assert!(t.admit(Route::Forgot, from, Some("a")).await.is_ok());
        let refused = t.admit(Route::Forgot, from, Some("a")).await.unwrap_err();
        assert_eq!(refused.code(), "rate_limited");
        assert_eq!(refused.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
        // Another identifier, and another route, are unaffected.
        assert!(t.admit(Route::Forgot, from, Some("b")).await.is_ok());
        assert!(t.admit(Route::Reset, from, Some("a")).await.is_ok());
        // A caller exempt from the per-identifier limit passes.
        assert!(t.admit(Route::Forgot, from, None).await.is_ok());
    }

    #[tokio::test]
    async fn test_addresses_of_one_network_share_its_limit() {
        let t = throttle(&[
            ("GATEHOUSE_RATE_LIMIT_LOGIN_PER_IP_PER_MINUTE", "100"),
            ("GATEHOUSE_RATE_LIMIT_LOGIN_PER_NETWORK_PER_MINUTE", "1"),
        ]);
        assert!(t.admit(Route::Login, ip("2001:db8::1"), None).await.is_ok());
        assert!(t
            .admit(Route::Login, ip("2001:db8::ffff"), None)
            .await
            .is_err());
        assert!(t
            .admit(Route::Login, ip("2001:db8:0:1::1"), None)
            .await
            .is_ok());
        assert!(t
            .admit(Route::Login, ip("198.51.100.1"), None)
            .await
            .is_ok());
        assert!(t
            .admit(Route::Login, ip("198.51.100.2"), None)
            .await
            .is_err());
        assert!(t
            .admit(Route::Login, ip("198.51.101.2"), None)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn test_ip_limit_counts_refusals_in_the_metrics() {
        let t = throttle(&[("GATEHOUSE_RATE_LIMIT_SIGNUP_PER_IP_PER_MINUTE", "1")]);
        assert!(t.admit(Route::Signup, ip("192.0.2.9"), None).await.is_ok());
        assert!(t.admit(Route::Signup, ip("192.0.2.9"), None).await.is_err());
        let mut text = String::new();
        t.render_metrics(&mut text);
        assert!(
            text.contains("gatehouse_rate_limited_total{route=\"signup\",key=\"ip\"} 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn test_a_zero_limit_is_off() {
        let t = throttle(&[
            ("GATEHOUSE_RATE_LIMIT_SIGNUP_PER_IP_PER_MINUTE", "0"),
            ("GATEHOUSE_RATE_LIMIT_SIGNUP_PER_NETWORK_PER_MINUTE", "0"),
        ]);
        for _ in 0..50 {
            assert!(t.admit(Route::Signup, ip("192.0.2.9"), None).await.is_ok());
        }
    }

    struct Down;
    impl LimitBackend for Down {
        fn check<'a>(
            &'a self,
            _: &'a [LimitKey],
        ) -> BoxFuture<'a, Result<Vec<Option<Duration>>, BackendError>> {
            Box::pin(async { Err(BackendError("down".into())) })
        }
        fn housekeep(&self) -> BoxFuture<'_, Result<(), BackendError>> {
            Box::pin(async { Ok(()) })
        }
        fn name(&self) -> &'static str {
            "down"
        }
    }

    #[tokio::test]
    async fn test_an_unreachable_backend_fails_open_and_is_counted() {
        let table = LimitTable::from_vars(
            [(
                "GATEHOUSE_RATE_LIMIT_SIGNUP_PER_IP_PER_MINUTE".to_string(),
                "1".to_string(),
            )],
            30,
            10,
        )
        .unwrap();
        let t = Throttle::new(table, Box::new(Down));
        for _ in 0..3 {
            assert!(t.admit(Route::Signup, ip("192.0.2.9"), None).await.is_ok());
        }
        let mut text = String::new();
        t.render_metrics(&mut text);
        assert!(
            text.contains("gatehouse_rate_limit_failed_open_total{backend=\"down\"} 3"),
            "{text}"
        );
    }

    #[test]
    fn test_refusal_rounds_the_wait_up() {
        let e = refusal(Duration::from_millis(1500));
        assert_eq!(e.code(), "rate_limited");
        assert_eq!(refusal(Duration::from_secs(2)).retry_after(), Some(2));
        assert_eq!(e.retry_after(), Some(2));
    }
}
