//! A command that did not complete: the aggregate's refusal answers as its own error does;
//! contention and store failures are retryable 503s, their detail logged only.
use gatehouse_store::ExecuteError;

use super::ApiError;

impl<E> From<ExecuteError<E>> for ApiError
where
    E: std::error::Error + Into<ApiError>,
{
    fn from(e: ExecuteError<E>) -> Self {
        match e {
            ExecuteError::Refused(refusal) => refusal.into(),
            ExecuteError::Contention => ApiError::unavailable(),
            ExecuteError::Store(detail) => {
                tracing::error!(error = %detail, "store failure");
                ApiError::unavailable()
            }
        }
    }
}
