//! Read models keep instants as epoch milliseconds: one integer type both backends share.
use chrono::{DateTime, Utc};

/// Milliseconds since the epoch.
pub fn to_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}
