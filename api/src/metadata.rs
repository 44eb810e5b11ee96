//! Request metadata: one middleware gives every request an id, echoes it in `X-Request-Id`, and
//! makes it available to the tracing span and to the metadata stored beside every event the
//! request's commands write. Handlers never build metadata: they pass [`metadata()`], which
//! reads the id of the request it runs in.
//!
//! Metadata never holds secrets or identifiers: the software version and the request id (either
//! the caller's own id, when it is a short token of safe characters, or a random UUID).
use std::collections::HashMap;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header that carries the request id, both ways.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a caller.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// The id of one request (a request extension, for the trace span).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The caller's id when it is 1 to 64 characters of `[A-Za-z0-9._-]`, else a new UUID v4.
    pub fn from_header(value: Option<&HeaderValue>) -> Self {
        value
            .and_then(|v| v.to_str().ok())
            .filter(|v| acceptable(v))
            .map_or_else(
                || Self(uuid::Uuid::new_v4().to_string()),
                |v| Self(v.to_string()),
            )
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn acceptable(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The middleware: decides the request's id, runs the rest of the request with it, and echoes
/// it in the response.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = RequestId::from_header(request.headers().get(&REQUEST_ID_HEADER));
    request.extensions_mut().insert(id.clone());
    let mut response = CURRENT.scope(id.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Metadata stored beside every event: which software wrote it, so an auditor replaying the
/// stream knows which rules were in force, and the id of the request that wrote it (absent for
/// work outside a request, such as the delivery worker's). Never secrets.
pub fn metadata() -> HashMap<String, String> {
    let mut metadata = HashMap::from([(
        "recorded_by".to_string(),
        concat!("gatehouse/", env!("CARGO_PKG_VERSION")).to_string(),
    )]);
    if let Ok(id) = CURRENT.try_with(|id| id.as_str().to_string()) {
        metadata.insert("request_id".to_string(), id);
    }
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(raw: &str) -> String {
        RequestId::from_header(Some(&HeaderValue::from_str(raw).unwrap()))
            .as_str()
            .to_string()
    }

    #[test]
    fn test_a_safe_caller_id_is_kept() {
        assert_eq!(id_of("abc-123_X.y"), "abc-123_X.y");
        let longest = "a".repeat(64);
        assert_eq!(id_of(&longest), longest);
    }

    #[test]
    fn test_a_long_or_unsafe_caller_id_is_replaced_by_a_uuid() {
        for raw in [
            "a".repeat(65),
            "a b".into(),
            "a/b".into(),
            String::new(),
            "é".into(),
        ] {
            let Ok(value) = HeaderValue::from_str(&raw) else {
                continue;
            };
            let id = RequestId::from_header(Some(&value));
            assert_ne!(id.as_str(), raw);
            assert!(uuid::Uuid::parse_str(id.as_str()).is_ok());
        }
        assert!(uuid::Uuid::parse_str(RequestId::from_header(None).as_str()).is_ok());
    }

    #[tokio::test]
    async fn test_metadata_carries_the_request_id_only_inside_a_request() {
        assert!(!metadata().contains_key("request_id"));
        let inside = CURRENT
            .scope(RequestId("req-1".into()), async { metadata() })
            .await;
        assert_eq!(inside["request_id"], "req-1");
        assert!(inside["recorded_by"].starts_with("gatehouse/"));
    }
}
