//! The account page's timeline chart: the account's events per day over the last
//! [`DAYS`] days as stacked bars (sign-in failures, successful sign-ins, security changes,
//! everything else), computed here and drawn by the template as inline SVG (no script, no
//! `style=""`: the CSP allows neither; the colours are classes of the style sheet). The same
//! counts are listed in a table, the chart's text alternative.
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// Days the chart covers, today (UTC) included.
pub const DAYS: usize = 30;
/// The SVG's drawing box: one slot per day.
pub const WIDTH: u32 = 600;
pub const HEIGHT: u32 = 160;
const SLOT: u32 = WIDTH / DAYS as u32;
const BAR: u32 = SLOT - 6;

/// What an event counts as in the chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A refused sign-in or proof (wrong password, locked, wrong second factor, …).
    Failure,
    /// A successful sign-in.
    Success,
    /// A change to what protects the account (password, factors, contacts, keys, freezes, …).
    Change,
    /// Anything else (sessions, codes issued, notifications, …).
    Other,
}

impl Kind {
    /// The kind of an event type (the stored name of an `AccountFact`). Types not named here
    /// (including ones added later) count as [`Kind::Other`]: the chart never hides an event.
    pub fn of(event_type: &str) -> Self {
        match event_type {
            "LoginFailed"
            | "LoginRejectedWhileLocked"
            | "LoginRefusedWhileFrozen"
            | "AccountLocked"
            | "SecondFactorFailed"
            | "PasskeySignInFailed"
            | "PasswordConfirmationFailed"
            | "CodeAttemptFailed"
            | "SecurityKeyCounterRegressed" => Self::Failure,
            "LoginSucceeded" => Self::Success,
            "AccountRegistered"
            | "AccountFrozen"
            | "AccountUnfrozen"
            | "AccountUnlocked"
            | "StaffActionTaken"
            | "DeviceRevoked"
            | "ContactChanged"
            | "ContactVerified"
            | "PasswordReset"
            | "PasswordChanged"
            | "AntiPhishingPhraseSet"
            | "AntiPhishingPhraseRemoved"
            | "TotpEnrolled"
            | "BackupCodesGenerated"
            | "SecondFactorRemoved"
            | "SecurityKeyRegistered"
            | "SecurityKeyRemoved"
            | "PasskeyRegistered"
            | "PasskeyRemoved"
            | "PasskeysRevoked"
            | "ApiKeyCreated"
            | "ApiKeyRotated"
            | "ApiKeyRevoked"
            | "WithdrawalAddressAdded"
            | "WithdrawalAddressRemoved"
            | "WhitelistModeChanged"
            | "RecoveryCompleted" => Self::Change,
            _ => Self::Other,
        }
    }

    /// The style sheet's class (and the table's column) of the kind.
    pub fn class(self) -> &'static str {
        match self {
            Self::Failure => "failure",
            Self::Success => "success",
            Self::Change => "change",
            Self::Other => "other",
        }
    }

    /// In words, for the legend and the table.
    pub fn label(self) -> &'static str {
        match self {
            Self::Failure => "Sign-in failures",
            Self::Success => "Sign-ins",
            Self::Change => "Security changes",
            Self::Other => "Other events",
        }
    }

    /// Bottom to top in a bar, and the legend's order.
    pub const ALL: [Kind; 4] = [Self::Failure, Self::Success, Self::Change, Self::Other];
}

/// One kind's part of a day's bar, in SVG units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub kind: Kind,
    pub count: usize,
    pub y: u32,
    pub height: u32,
}

/// One day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    pub date: NaiveDate,
    /// Count per kind, in [`Kind::ALL`] order.
    pub counts: [usize; 4],
    pub x: u32,
    /// The non-empty segments, bottom first.
    pub segments: Vec<Segment>,
}

impl Day {
    pub fn date(&self) -> String {
        self.date.format("%Y-%m-%d").to_string()
    }

    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    /// The bar's tooltip and accessible name.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = Kind::ALL
            .iter()
            .zip(self.counts)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{n} {}", k.label().to_lowercase()))
            .collect();
        if parts.is_empty() {
            format!("{}: no events", self.date())
        } else {
            format!("{}: {}", self.date(), parts.join(", "))
        }
    }
}

/// One kind in the legend, with its count over the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Legend {
    pub class: &'static str,
    pub label: &'static str,
    pub count: usize,
}

/// The chart of the days ending today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    pub days: Vec<Day>,
    /// Count per kind over the whole chart, in [`Kind::ALL`] order.
    pub totals: [usize; 4],
    /// The busiest day's total (the bars' scale).
    pub peak: usize,
    /// Whether events of the period may be missing (more than the page read).
    pub partial: bool,
    pub bar_width: u32,
}

impl Chart {
    /// The chart of `events` (time, type: any order) for the [`DAYS`] days ending on `now`'s
    /// day; `partial` when the caller read fewer events than the period holds.
    pub fn new<'a>(
        events: impl IntoIterator<Item = (DateTime<Utc>, &'a str)>,
        now: DateTime<Utc>,
        partial: bool,
    ) -> Self {
        let today = now.date_naive();
        let first = today - Duration::days(DAYS as i64 - 1);
        let mut counts = [[0usize; 4]; DAYS];
        for (at, event_type) in events {
            let day = at.date_naive();
            if day < first || day > today {
                continue;
            }
            let index = (day - first).num_days() as usize;
            let kind = Kind::ALL
                .iter()
                .position(|k| *k == Kind::of(event_type))
                .unwrap_or(3);
            counts[index][kind] += 1;
        }
        let peak = counts
            .iter()
            .map(|c| c.iter().sum::<usize>())
            .max()
            .unwrap_or(0);
        let mut totals = [0usize; 4];
        let days = counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                for (t, n) in totals.iter_mut().zip(c) {
                    *t += n;
                }
                Day {
                    date: first + Duration::days(i as i64),
                    counts: *c,
                    x: i as u32 * SLOT + (SLOT - BAR) / 2,
                    segments: segments(c, peak),
                }
            })
            .collect();
        Self {
            days,
            totals,
            peak,
            partial,
            bar_width: BAR,
        }
    }

    /// The legend: each kind with its count over the period.
    pub fn legend(&self) -> Vec<Legend> {
        Kind::ALL
            .iter()
            .zip(self.totals)
            .map(|(k, n)| Legend {
                class: k.class(),
                label: k.label(),
                count: n,
            })
            .collect()
    }

    pub fn total(&self) -> usize {
        self.totals.iter().sum()
    }

    pub fn first_day(&self) -> String {
        self.days.first().map(Day::date).unwrap_or_default()
    }

    pub fn last_day(&self) -> String {
        self.days.last().map(Day::date).unwrap_or_default()
    }
}

/// A day's stacked segments scaled to `peak` (the bars' full height), bottom first. Heights are
/// rounded per segment, at least one unit so a single event stays visible.
fn segments(counts: &[usize; 4], peak: usize) -> Vec<Segment> {
    let mut top = HEIGHT;
    Kind::ALL
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| {
            let height = ((*n as u64 * u64::from(HEIGHT)) / peak.max(1) as u64).max(1) as u32;
            let height = height.min(top);
            top -= height;
            Segment {
                kind: *kind,
                count: *n,
                y: top,
                height,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn test_chart_counts_each_day_by_kind_and_drops_days_outside_the_period() {
        let now = at("2026-12-05T10:00:00Z");
        let events = [
            (at("2026-12-05T09:00:00Z"), "LoginFailed"),
            (at("2026-12-05T09:01:00Z"), "LoginFailed"),
            (at("2026-12-05T09:02:00Z"), "LoginSucceeded"),
            (at("2026-12-05T09:03:00Z"), "PasswordChanged"),
            (at("2026-12-04T23:59:59Z"), "SessionStarted"),
            (at("2026-11-06T00:00:00Z"), "LoginFailed"),
            // The day before the first day, and a clock ahead of ours: not drawn.
            (at("2026-11-05T23:59:59Z"), "LoginFailed"),
            (at("2026-12-06T00:00:00Z"), "LoginFailed"),
        ];
        let chart = Chart::new(events.iter().map(|(t, e)| (*t, *e)), now, false);
        assert_eq!(chart.days.len(), DAYS);
        assert_eq!(chart.first_day(), "2026-11-06");
        assert_eq!(chart.last_day(), "2026-12-05");
        let today = chart.days.last().unwrap();
        assert_eq!(today.counts, [2, 1, 1, 0]);
        assert_eq!(chart.days[DAYS - 2].counts, [0, 0, 0, 1]);
        assert_eq!(chart.days[0].counts, [1, 0, 0, 0]);
        assert_eq!(chart.totals, [3, 1, 1, 1]);
        assert_eq!(chart.peak, 4);
        // The busiest day fills the height; its segments stack without overlapping.
        let heights: u32 = today.segments.iter().map(|s| s.height).sum();
        assert_eq!(heights, HEIGHT);
        assert_eq!(today.segments[0].y + today.segments[0].height, HEIGHT);
        for pair in today.segments.windows(2) {
            assert_eq!(pair[1].y + pair[1].height, pair[0].y);
        }
        assert_eq!(
            today.summary(),
            "2026-12-05: 2 sign-in failures, 1 sign-ins, 1 security changes"
        );
        assert!(chart.days[5].segments.is_empty());
        // Bars stay inside the box.
        assert!(chart.days.iter().all(|d| d.x + BAR <= WIDTH));
    }

    #[test]
    fn test_unknown_event_types_count_as_other() {
        assert_eq!(Kind::of("SomethingNew"), Kind::Other);
        assert_eq!(Kind::of("LoginRejectedWhileLocked"), Kind::Failure);
        assert_eq!(Kind::of("SecurityKeyRemoved"), Kind::Change);
        let chart = Chart::new(std::iter::empty(), Utc::now(), false);
        assert_eq!(chart.peak, 0);
        assert!(chart.days.iter().all(|d| d.segments.is_empty()));
    }
}
