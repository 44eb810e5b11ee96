//! Who asked, from where: the request facts auditors and risk rules need, stamped at the HTTP edge.
use serde::{Deserialize, Serialize};

/// Longest user agent or device id kept in an event; longer values are cut (on a char boundary).
pub const MAX_CONTEXT_FIELD: usize = 256;

/// The request context recorded in every attempt event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    /// Client IP as seen by the server (socket, or a trusted proxy's `X-Forwarded-For`).
    pub ip: Option<String>,
    /// Raw `User-Agent`, bounded in length.
    pub user_agent: Option<String>,
    /// Device id the frontend supplied, if any.
    pub device_id: Option<String>,
}

impl RequestContext {
    /// Builds a context, bounding free-text fields so an attacker cannot bloat the event store.
    pub fn new(ip: Option<String>, user_agent: Option<String>, device_id: Option<String>) -> Self {
        Self {
            ip,
            user_agent: user_agent.map(|s| bounded(&s)),
            device_id: device_id.map(|s| bounded(&s)),
        }
    }
}

/// The family of a user agent, for "has this account signed in with this kind of device here
/// before": the browser or client name (`Firefox`, `Chrome`, `Safari`, `curl`, …) and the
/// platform when one is named, without versions, so an update is not a new device.
pub fn user_agent_family(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent.map(str::trim).filter(|s| !s.is_empty()) else {
        return "unknown".to_string();
    };
    // Most specific first: Edge and Opera also say Chrome and Safari, Chrome also says Safari.
    const BROWSERS: [(&str, &str); 6] = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("CriOS/", "Chrome"),
        ("Safari/", "Safari"),
    ];
    const PLATFORMS: [(&str, &str); 6] = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ];
    let browser = BROWSERS
        .iter()
        .find(|(token, _)| ua.contains(token))
        .map(|(_, name)| (*name).to_string())
        .unwrap_or_else(|| {
            // A client of its own (`curl/8.5`, `okhttp/4`): its product name.
            ua.split(['/', ' '])
                .next()
                .unwrap_or("unknown")
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .take(32)
                .collect()
        });
    match PLATFORMS.iter().find(|(token, _)| ua.contains(token)) {
        Some((_, platform)) => format!("{browser} on {platform}"),
        None => browser,
    }
}

fn bounded(s: &str) -> String {
    if s.len() <= MAX_CONTEXT_FIELD {
        return s.to_string();
    }
    let mut end = MAX_CONTEXT_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_user_agent_family_ignores_versions() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
        let newer = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
        assert_eq!(user_agent_family(Some(firefox)), "Firefox on Linux");
        assert_eq!(
            user_agent_family(Some(firefox)),
            user_agent_family(Some(newer))
        );
        let edge =
            "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/120 Safari/537.36 Edg/120";
        assert_eq!(user_agent_family(Some(edge)), "Edge on Windows");
        assert_eq!(user_agent_family(Some("curl/8.5.0")), "curl");
        assert_eq!(user_agent_family(None), "unknown");
        assert_eq!(user_agent_family(Some("  ")), "unknown");
    }

    #[test]
    fn test_context_bounds_long_fields_on_char_boundary() {
        let ua = "é".repeat(300);
        let ctx = RequestContext::new(None, Some(ua), Some("d".into()));
        let kept = ctx.user_agent.unwrap();
        assert!(kept.len() <= MAX_CONTEXT_FIELD);
        assert!(kept.chars().all(|c| c == 'é'));
        assert_eq!(ctx.device_id.as_deref(), Some("d"));
    }
}
