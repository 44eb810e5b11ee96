//! Read models keep instants as epoch milliseconds: one integer type both backends share.
use chrono::{DateTime, Utc};

/// Milliseconds since the epoch.
pub fn to_ms(at: impl std::borrow::Borrow<DateTime<Utc>>) -> i64 {
    at.borrow().timestamp_millis()
}
