//! Read models keep instants as epoch milliseconds: one integer type both backends share.
use chrono::{DateTime, Utc};

/// Milliseconds since the epoch.
pub fn to_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// Back from milliseconds (out-of-range values clamp to the epoch).
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
