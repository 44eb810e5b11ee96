//! Store failures (side tables, read models): logged, then 503.
use gatehouse_store::StoreError;

use super::ApiError;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Database(_)
            | StoreError::Migration(_)
            | StoreError::Corrupt(_)
            | StoreError::ReadReplica(_) => {
                tracing::error!(error = %e, "store failure");
                ApiError::unavailable()
            }
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}
