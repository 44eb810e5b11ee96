//! The answers to the `Webhook` aggregate's refusals.
use gatehouse_domain::webhook::WebhookError;

use super::ApiError;

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::NotFound => webhook_not_found(),
            // Fresh random ids collide only by a fault: retryable. `Unchanged` is answered by
            // the route (the state asked for is the state there is).
            WebhookError::AlreadyExists | WebhookError::Unchanged => ApiError::unavailable(),
        }
    }
}

/// 404 for a webhook that does not exist or was deleted.
pub fn webhook_not_found() -> ApiError {
    ApiError::not_found("no such webhook")
}
