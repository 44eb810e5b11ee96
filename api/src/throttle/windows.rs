//! Refusals gathered per source and route and one-minute window, handed over once the window
//! has closed, so that an audit fact is recorded per (source, route, window) that saw refusals
//! rather than per refused request (which would let an attacker amplify their flood into writes).
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use gatehouse_domain::protection::MAX_REFUSED_IDENTIFIERS;

use super::Route;

/// Sources tracked at once; refusals of further sources in a window count under `*`.
const MAX_SOURCES: usize = 10_000;
/// Window length in milliseconds.
const WINDOW_MS: i64 = 60_000;

/// Refusals of one source on one route in one closed window (of this process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedWindow {
    /// The client IP, or `*` for sources beyond the tracked number.
    pub source: String,
    /// The route.
    pub route: Route,
    /// Start of the window.
    pub window_start: DateTime<Utc>,
    /// Requests refused in it.
    pub refused: u32,
    /// The distinct identifiers (lookup hashes) of the refused sign-ins, at most
    /// [`MAX_REFUSED_IDENTIFIERS`]: the credential-stuffing rule counts them.
    pub identifiers: Vec<String>,
}

/// Refusals of one source on one route in one window.
#[derive(Default)]
struct Tally {
    refused: u32,
    identifiers: BTreeSet<String>,
}

#[derive(Default)]
pub(super) struct Windows {
    /// (source, route, window start ms) → refusals.
    open: Mutex<HashMap<(String, Route, i64), Tally>>,
}

fn window_of(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis().div_euclid(WINDOW_MS) * WINDOW_MS
}

impl Windows {
    /// Counts a refusal; `identifier` is kept for sign-ins only (the other routes' keys are
    /// flows, or feed no rule).
    pub(super) fn refused(&self, ip: IpAddr, route: Route, identifier: Option<&str>) {
        self.refused_at(ip, route, identifier, Utc::now());
    }

    fn refused_at(&self, ip: IpAddr, route: Route, identifier: Option<&str>, at: DateTime<Utc>) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = (ip.to_string(), route, window_of(at));
        if !open.contains_key(&key) && open.len() >= MAX_SOURCES {
            key.0 = "*".to_string();
        }
        let tally = open.entry(key).or_default();
        tally.refused = tally.refused.saturating_add(1);
        if let Some(identifier) = identifier.filter(|_| route == Route::Login) {
            if tally.identifiers.len() < MAX_REFUSED_IDENTIFIERS {
                tally.identifiers.insert(identifier.to_string());
            }
        }
    }

    /// Takes the windows that ended before `now`.
    pub(super) fn close(&self, now: DateTime<Utc>) -> Vec<ClosedWindow> {
        let current = window_of(now);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let closed: Vec<_> = open
            .keys()
            .filter(|(_, _, start)| *start < current)
            .cloned()
            .collect();
        closed
            .into_iter()
            .filter_map(|key| {
                let tally = open.remove(&key)?;
                Some(ClosedWindow {
                    window_start: DateTime::from_timestamp_millis(key.2)?,
                    source: key.0,
                    route: key.1,
                    refused: tally.refused,
                    identifiers: tally.identifiers.into_iter().collect(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_a_window_is_handed_over_once_after_it_closes() {
        let w = Windows::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = DateTime::from_timestamp_millis(1_700_000_040_000).unwrap();
        for i in 0..5 {
            w.refused_at(ip, Route::Login, Some(["a", "b"][i % 2]), t0);
        }
        w.refused_at(ip, Route::Signup, Some("c"), t0);
        assert!(w.close(t0).is_empty(), "still open");
        let mut closed = w.close(t0 + chrono::Duration::seconds(60));
        closed.sort_by_key(|c| c.refused);
        assert_eq!(closed.len(), 2);
        assert_eq!(closed[1].refused, 5);
        assert_eq!(closed[1].route, Route::Login);
        assert_eq!(closed[1].source, "192.0.2.1");
        // The sign-ins name their distinct identifiers; other routes none.
        assert_eq!(
            closed[1].identifiers,
            vec!["a".to_string(), "b".to_string()]
        );
        assert!(closed[0].identifiers.is_empty());
        assert_eq!(closed[1].window_start.timestamp_millis() % WINDOW_MS, 0);
        assert!(w.close(t0 + chrono::Duration::seconds(120)).is_empty());
    }
}
