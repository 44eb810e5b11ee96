//! The analysts' and admins' API under `/v1/admin`: alerts (list, detail, acknowledge, resolve,
//! live feed), login history across accounts, raw account timelines, staff creation, and
//! webhook subscriptions.
//!
//! Every handler takes a `Staff<P>` extractor (401 without a staff token, 403 without a role
//! holding `P`) and records what the member looked at or changed as an event on their `Staff`
//! aggregate. One file per area: [`alerts`], [`accounts`] (login history and timelines) and
//! [`staff`].
pub mod accounts;
pub mod actions;
pub mod alerts;
pub mod lookup;
pub mod staff;
pub mod webhooks;

pub use accounts::*;
pub use actions::*;
pub use alerts::*;
pub use lookup::*;
pub use staff::*;
pub use webhooks::*;

/// The admin routes of every area.
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    alerts::router()
        .merge(accounts::router())
        .merge(lookup::router())
        .merge(actions::router())
        .merge(staff::router())
        .merge(webhooks::router())
}

use axum::extract::rejection::QueryRejection;
use chrono::{DateTime, Utc};

use crate::error::ApiError;

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn limit_of(limit: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(
            ApiError::bad_request(format!("limit must be between 1 and {max}")).with_field("limit"),
        );
    }
    Ok(limit)
}

fn bad_query(_: QueryRejection) -> ApiError {
    ApiError::bad_request("invalid query parameters")
}
