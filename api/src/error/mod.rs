//! The one error shape: `{"error": {"code": "...", "message": "..."}}`. Messages are written for
//! the caller; internal detail goes to the log only.
//!
//! Every error a handler meets converts into [`ApiError`] with `From`, one file per source, so a
//! handler ends its calls with `?`. The domain enums are matched without a wildcard arm: a new
//! variant does not compile until it has an answer here.
mod account;
mod execute;
mod http;
mod keys;
mod staff;
mod store;
mod team;

pub use account::{
    account_frozen, code_unusable, flow_not_found, freeze_link_invalid, high_risk_cooldown,
    invalid_challenge, invalid_password, second_factor_required,
};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
pub use http::{method_not_allowed_error, no_such_endpoint};
use serde::Serialize;
pub use staff::staff_unauthenticated;
pub use team::team_not_found;
use utoipa::ToSchema;

/// Error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Error code and human-readable message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code (`invalid_credentials`, `account_locked`, …).
    pub code: &'static str,
    /// Explanation for a person.
    pub message: String,
    /// The request field at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    /// Seconds until the caller may retry (`account_locked`, `rate_limited`, `resend_too_soon`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<i64>,
    /// What the caller can do instead (`lost_2fa` when a reset needs a second factor the
    /// person no longer has).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_action: Option<&'static str>,
}

/// The `Retry-After` of every `503 unavailable`: long enough for a pool to reconnect or a
/// contended aggregate to settle, short enough that a client barely notices a blip.
pub const RETRY_UNAVAILABLE_SECONDS: i64 = 1;

/// An API failure.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<&'static str>,
    retry_after: Option<i64>,
    next_action: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            next_action: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 422: well-formed but refused by a rule (e.g. the password policy).
    pub fn validation(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// Names the request field at fault.
    pub fn with_field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    /// 401: the same answer for an unknown identifier and a wrong password.
    pub fn invalid_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the identifier or password is incorrect",
        )
    }

    /// 401: no valid session token.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a valid session token is required",
        )
    }

    /// 403: authenticated, but without a role this route needs.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "your role does not allow this",
        )
    }

    /// 429 with `retry_after`: the account is locked.
    pub fn locked(retry_after: i64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "account_locked",
            "too many failed sign-in attempts; try again later",
        );
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// 429 with `retry_after`: too many requests of this kind.
    pub fn rate_limited(code: &'static str, message: impl Into<String>, retry_after: i64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, code, message);
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// Names what the caller can do instead.
    pub fn with_next_action(mut self, next_action: &'static str) -> Self {
        self.next_action = Some(next_action);
        self
    }

    /// The same error with another status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 503 with `retry_after`: a dependency is unavailable (the database did not give a
    /// connection within `GATEHOUSE_DB_ACQUIRE_TIMEOUT_MS`, …) or contention persisted; safe to
    /// retry after [`RETRY_UNAVAILABLE_SECONDS`].
    pub fn unavailable() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service is temporarily unavailable; retry shortly",
        );
        e.retry_after = Some(RETRY_UNAVAILABLE_SECONDS);
        e
    }

    /// 500, logging the cause (which never reaches the client).
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred",
        )
    }

    /// Any status with a code and message (used by the fallback handlers).
    pub fn other(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::new(status, code, message)
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Seconds until the caller may retry, when the error says.
    pub fn retry_after(&self) -> Option<i64> {
        self.retry_after
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
                retry_after: self.retry_after,
                next_action: self.next_action,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// Whole seconds from `now` until `until`, rounded up (0 when it has passed): what
/// `retry_after` says.
pub fn seconds_until(
    until: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> i64 {
    let ms = (until - now).num_milliseconds().max(0);
    (ms + 999) / 1000
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    #[test]
    fn test_retry_after_rounds_up_and_never_goes_negative() {
        let now = Utc::now();
        assert_eq!(
            seconds_until(now + chrono::Duration::milliseconds(1500), now),
            2
        );
        assert_eq!(
            seconds_until(now + chrono::Duration::seconds(900), now),
            900
        );
        assert_eq!(seconds_until(now - chrono::Duration::seconds(5), now), 0);
    }
}
