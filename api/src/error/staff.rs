//! The answers to the `Staff` aggregate's refusals, for commands on the caller's own member
//! (a command on a member named in the path answers 404 instead; see `staff::revoke`).
use axum::http::StatusCode;
use gatehouse_domain::staff::StaffError;

use super::ApiError;

impl From<StaffError> for ApiError {
    fn from(e: StaffError) -> Self {
        match e {
            // The caller's own member is gone: their token no longer names anyone.
            StaffError::NotFound => staff_unauthenticated(),
            StaffError::Invalid => ApiError::validation(
                "invalid_staff",
                "give a name (without control characters) and at least one role",
            ),
            // Fresh random ids collide only by a fault: retryable.
            StaffError::AlreadyExists => ApiError::unavailable(),
        }
    }
}

/// 401: no valid staff token (unknown, expired, revoked, or its member is gone).
pub fn staff_unauthenticated() -> ApiError {
    ApiError::other(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "a valid staff token is required",
    )
}
