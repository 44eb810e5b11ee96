//! What the pages need to know from configuration (`GATEHOUSE_UI`, `GATEHOUSE_PUBLIC_URL`): kept
//! apart from [`crate::ui`] so the application state can hold it without depending on the pages.

/// The console's idle timeout unless configured (15 minutes).
pub const DEFAULT_CONSOLE_IDLE_SECONDS: u64 = 900;

/// Whether the pages are served, and what the cookies need to know about where.
#[derive(Debug, Clone)]
pub struct UiSettings {
    /// `GATEHOUSE_UI`: serve `/` and `/console`.
    pub enabled: bool,
    /// The origin people reach the server at (`scheme://host[:port]` of `GATEHOUSE_PUBLIC_URL`).
    pub public_origin: String,
    /// `GATEHOUSE_PUBLIC_URL` is https: cookies are `Secure` and named with the `__Host-`
    /// prefix. Decided from configuration only, never from a request's `Host` header.
    pub secure_cookies: bool,
    /// `GATEHOUSE_CONSOLE_IDLE_SECONDS`: the console session ends after this long without a
    /// request.
    pub console_idle_seconds: u64,
}

impl Default for UiSettings {
    fn default() -> Self {
        Self::new(true, "http://localhost:8080")
    }
}

impl UiSettings {
    /// Settings from `GATEHOUSE_UI` and `GATEHOUSE_PUBLIC_URL`.
    pub fn new(enabled: bool, public_url: &str) -> Self {
        let public_url = public_url.trim().trim_end_matches('/');
        let secure_cookies = public_url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
        // The origin: scheme and authority, without any path.
        let origin = match public_url.split_once("://") {
            Some((scheme, rest)) => {
                let authority = rest.split('/').next().unwrap_or_default();
                format!(
                    "{}://{}",
                    scheme.to_ascii_lowercase(),
                    authority.to_ascii_lowercase()
                )
            }
            None => public_url.to_string(),
        };
        Self {
            enabled,
            public_origin: origin,
            secure_cookies,
            console_idle_seconds: DEFAULT_CONSOLE_IDLE_SECONDS,
        }
    }

    /// The same settings with the console's idle timeout set.
    pub fn with_console_idle(mut self, seconds: u64) -> Self {
        self.console_idle_seconds = seconds;
        self
    }
}
