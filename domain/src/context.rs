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
    fn test_context_bounds_long_fields_on_char_boundary() {
        let ua = "é".repeat(300);
        let ctx = RequestContext::new(None, Some(ua), Some("d".into()));
        let kept = ctx.user_agent.unwrap();
        assert!(kept.len() <= MAX_CONTEXT_FIELD);
        assert!(kept.chars().all(|c| c == 'é'));
        assert_eq!(ctx.device_id.as_deref(), Some("d"));
    }
}
