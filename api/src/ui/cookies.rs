//! The pages' cookies: names, attributes and sealed values.
//!
//! Every cookie is `HttpOnly`, `Path=/`, without `Domain`. When `GATEHOUSE_PUBLIC_URL` is https
//! it is also `Secure` and its name carries the `__Host-` prefix (browsers refuse the prefix
//! without `Secure`); otherwise the same name without the prefix. That is decided from the
//! configuration ([`super::UiSettings::secure_cookies`]), never from the request.
//!
//! Values are sealed ([`crate::keys::Keys::seal_cookie`]) with a key of their own, bound to the
//! cookie's kind: a value sealed for one cookie does not open as another, nor as any API token.
use axum::http::{header, HeaderMap, HeaderValue};

use crate::keys::Keys;

use super::UiSettings;

/// The pages' cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieKind {
    /// The self-service session (`gh_session`, `SameSite=Lax`): holds the API session token.
    Session,
    /// The staff console session (`gh_console`, `SameSite=Strict`).
    Console,
    /// The browser's CSRF secret (`gh_csrf`, `SameSite=Lax`).
    Csrf,
    /// The trusted-device token of the last sign-in on this browser (`gh_device`,
    /// `SameSite=Lax`, 180 days), sent back with later sign-ins and recovery requests so they go
    /// through this device's own lockout door.
    Device,
}

impl CookieKind {
    /// Every kind (for tests that check they are all distinct).
    pub const ALL: [CookieKind; 4] = [Self::Session, Self::Console, Self::Csrf, Self::Device];

    fn base_name(self) -> &'static str {
        match self {
            Self::Session => "gh_session",
            Self::Console => "gh_console",
            Self::Csrf => "gh_csrf",
            Self::Device => "gh_device",
        }
    }

    /// The cookie's name: `__Host-<name>` when cookies are secure, else `<name>`.
    pub fn name(self, settings: &UiSettings) -> String {
        if settings.secure_cookies {
            format!("__Host-{}", self.base_name())
        } else {
            self.base_name().to_string()
        }
    }

    fn same_site(self) -> &'static str {
        match self {
            Self::Console => "Strict",
            Self::Session | Self::Csrf | Self::Device => "Lax",
        }
    }

    /// What the value is sealed under (the kind's own associated data).
    fn aad(self) -> Vec<u8> {
        format!("gatehouse-cookie/{}", self.base_name()).into_bytes()
    }
}

/// The raw value of the cookie `name` in a request's `Cookie` headers.
fn raw<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// The opened value of a cookie of `kind`, or `None` when absent or not sealed by this server
/// for that kind.
pub fn read(
    headers: &HeaderMap,
    kind: CookieKind,
    settings: &UiSettings,
    keys: &Keys,
) -> Option<Vec<u8>> {
    let value = raw(headers, &kind.name(settings))?;
    keys.open_cookie(&kind.aad(), value)
}

/// [`read`] as text.
pub fn read_text(
    headers: &HeaderMap,
    kind: CookieKind,
    settings: &UiSettings,
    keys: &Keys,
) -> Option<String> {
    String::from_utf8(read(headers, kind, settings, keys)?).ok()
}

fn attributes(kind: CookieKind, settings: &UiSettings) -> String {
    let secure = if settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    format!("; Path=/; HttpOnly; SameSite={}{secure}", kind.same_site())
}

/// A `Set-Cookie` value setting a cookie of `kind` to `value` (sealed), for `max_age` seconds
/// (`None`: until the browser closes). `None` if sealing failed (the random source).
pub fn set(
    kind: CookieKind,
    value: &[u8],
    max_age: Option<u64>,
    settings: &UiSettings,
    keys: &Keys,
) -> Option<HeaderValue> {
    let sealed = keys.seal_cookie(&kind.aad(), value).ok()?;
    let age = max_age.map_or(String::new(), |s| format!("; Max-Age={s}"));
    HeaderValue::from_str(&format!(
        "{}={sealed}{}{age}",
        kind.name(settings),
        attributes(kind, settings)
    ))
    .ok()
}

/// A `Set-Cookie` value removing the cookie of `kind`.
pub fn clear(kind: CookieKind, settings: &UiSettings) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{}=; Max-Age=0{}",
        kind.name(settings),
        attributes(kind, settings)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("gh_cleared=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_master_hex(&"ab".repeat(32)).unwrap()
    }

    fn request_with(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(cookie).unwrap());
        h
    }

    fn value_of(set_cookie: &HeaderValue) -> String {
        let s = set_cookie.to_str().unwrap();
        s.split(';').next().unwrap().to_string()
    }

    #[test]
    fn test_https_public_url_gives_host_prefix_and_secure() {
        let https = UiSettings::new(true, "https://Accounts.Example.test/app/");
        assert!(https.secure_cookies);
        assert_eq!(https.public_origin, "https://accounts.example.test");
        let cookie = set(CookieKind::Session, b"x", None, &https, &keys()).unwrap();
        let text = cookie.to_str().unwrap();
        assert!(text.starts_with("__Host-gh_session="), "{text}");
        assert!(
            text.contains("; Secure") && text.contains("HttpOnly"),
            "{text}"
        );
        assert!(
            text.contains("SameSite=Lax") && text.contains("Path=/"),
            "{text}"
        );
        assert!(!text.contains("Domain"), "{text}");

        let http = UiSettings::new(true, "http://localhost:8080");
        let cookie = set(CookieKind::Console, b"x", None, &http, &keys()).unwrap();
        let text = cookie.to_str().unwrap();
        assert!(text.starts_with("gh_console="), "{text}");
        assert!(
            !text.contains("Secure") && text.contains("SameSite=Strict"),
            "{text}"
        );
    }

    #[test]
    fn test_a_cookie_opens_only_as_its_own_kind() {
        let settings = UiSettings::default();
        let keys = keys();
        let sealed = set(CookieKind::Session, b"ghs_token", None, &settings, &keys).unwrap();
        let value = value_of(&sealed);
        let (_, v) = value.split_once('=').unwrap();
        assert_eq!(
            read(&request_with(&value), CookieKind::Session, &settings, &keys).unwrap(),
            b"ghs_token"
        );
        for other in CookieKind::ALL {
            if other == CookieKind::Session {
                continue;
            }
            // The same sealed value under another cookie's name does not open.
            let relabelled = format!("{}={v}", other.name(&settings));
            assert!(read(&request_with(&relabelled), other, &settings, &keys).is_none());
        }
        // Another server's key does not open it either.
        let stranger = Keys::from_master_hex(&"cd".repeat(32)).unwrap();
        assert!(read(
            &request_with(&value),
            CookieKind::Session,
            &settings,
            &stranger
        )
        .is_none());
    }
}
