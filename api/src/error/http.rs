//! Errors of the HTTP layer itself: body rejections, unknown paths and methods.
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;

use super::ApiError;

/// The answer to a path that does not exist (also given by routes that must not reveal
/// themselves, such as `/metrics` without its token).
pub fn no_such_endpoint() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// The answer to a method a route does not take.
pub fn method_not_allowed_error() -> ApiError {
    ApiError::other(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}

/// JSON bodies that fail to parse get the documented shape instead of axum's plain text.
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        use JsonRejection as R;
        match rejection {
            R::MissingJsonContentType(_) => Self::other(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ),
            R::BytesRejection(_) => Self::other(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large",
            ),
            R::JsonDataError(e) => {
                Self::bad_request(format!("invalid request body: {}", e.body_text()))
            }
            R::JsonSyntaxError(_) => Self::bad_request("the request body is not valid JSON"),
            _ => Self::bad_request("invalid request body"),
        }
    }
}
