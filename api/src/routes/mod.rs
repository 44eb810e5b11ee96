//! HTTP handlers, one module per area.
pub mod accounts;
pub mod health;
pub mod login;
pub mod me;

use axum::extract::{FromRequest, Request};
use gatehouse_domain::AccountError;
use gatehouse_projections::store::ExecuteError;
use gatehouse_projections::StoreError;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `Json<T>` whose rejections use the documented error shape.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// Maps a command failure to the API's answer; store detail goes to the log only.
pub fn execute_error(e: ExecuteError<AccountError>) -> ApiError {
    match e {
        ExecuteError::Refused(AccountError::SessionNotFound) => {
            ApiError::not_found("no such open session")
        }
        ExecuteError::Refused(AccountError::NotRegistered) => ApiError::unauthenticated(),
        ExecuteError::Refused(other) => ApiError::internal(other),
        ExecuteError::Contention => ApiError::unavailable(),
        ExecuteError::Store(detail) => {
            tracing::error!(error = %detail, "store failure");
            ApiError::unavailable()
        }
    }
}

/// Maps a store failure (side tables, read models): logged, then 503.
pub fn store_error(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "store failure");
    ApiError::unavailable()
}

/// Metadata stored beside every event: which software wrote it, so an auditor replaying the
/// stream knows which rules were in force. Never secrets.
pub fn metadata() -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([(
        "recorded_by".to_string(),
        concat!("gatehouse/", env!("CARGO_PKG_VERSION")).to_string(),
    )])
}
