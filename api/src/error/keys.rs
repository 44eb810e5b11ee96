//! Key and sealing failures: never the caller's fault, and never shown (500, logged).
use crate::keys::KeyError;

use super::ApiError;

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::MalformedMasterKey | KeyError::Random | KeyError::Unseal => {
                ApiError::internal(e)
            }
        }
    }
}
