//! The signals the windowed rules count, held in memory: per signal kind and filter (all, one
//! aggregate, one IP, one network), the signals in event-time order, with running counts for the
//! windows that end at the newest signal.
//!
//! The state is a function of the set of signals alone (the rows of `alert_signals_v1`), so a
//! process that reloads it from the table answers exactly as one that kept it: that is what keeps
//! a rebuild equal to the live read model, whatever the batch boundaries. A window that ends at
//! the newest signal (the normal case: events arrive in time order) is answered from running
//! counts in constant time; any other window (a clock that went backwards) is counted from the
//! stored signals.
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// One signal: an event that a windowed rule counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// Event time.
    pub at_ms: i64,
    /// Aggregate of the event.
    pub aggregate_id: Arc<str>,
    /// Its sequence in the aggregate.
    pub sequence: i64,
    /// Client IP, when known.
    pub ip: Option<Arc<str>>,
    /// The IP's network (`/24`, `/64`), when known.
    pub net: Option<Arc<str>>,
}

/// Which signals of a kind a window counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Filter {
    /// All of them.
    All,
    /// Those of one aggregate.
    Aggregate(Arc<str>),
    /// Those from one IP.
    Ip(Arc<str>),
    /// Those from one network.
    Net(Arc<str>),
}

/// Signals of one kind and filter with `from_ms < at_ms <= to_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Signal kind.
    pub signal: &'static str,
    /// Filter.
    pub filter: Filter,
    /// Exclusive start.
    pub from_ms: i64,
    /// Inclusive end.
    pub to_ms: i64,
}

impl Window {
    /// The window of `length_s` seconds ending at `to_ms`.
    pub fn ending(signal: &'static str, filter: Filter, to_ms: i64, length_s: i64) -> Self {
        Self {
            signal,
            filter,
            from_ms: to_ms.saturating_sub(length_s.saturating_mul(1000)),
            to_ms,
        }
    }
}

/// What a window holds: signals, distinct aggregates, distinct IPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Signals.
    pub signals: i64,
    /// Distinct aggregates.
    pub aggregates: i64,
    /// Distinct IPs (signals without one are not counted).
    pub ips: i64,
}

/// Running counts of the window `(hi - length, hi]` of a log.
#[derive(Debug)]
struct Tracker {
    length_ms: i64,
    /// Index of the first counted signal in the log.
    start: usize,
    signals: i64,
    aggregates: HashMap<Arc<str>, u32>,
    ips: HashMap<Arc<str>, u32>,
}

impl Tracker {
    fn add(&mut self, s: &Signal) {
        self.signals += 1;
        *self.aggregates.entry(s.aggregate_id.clone()).or_default() += 1;
        if let Some(ip) = &s.ip {
            *self.ips.entry(ip.clone()).or_default() += 1;
        }
    }

    fn remove(&mut self, s: &Signal) {
        self.signals -= 1;
        decrement(&mut self.aggregates, &s.aggregate_id);
        if let Some(ip) = &s.ip {
            decrement(&mut self.ips, ip);
        }
    }

    fn stats(&self) -> Stats {
        Stats {
            signals: self.signals,
            aggregates: self.aggregates.len() as i64,
            ips: self.ips.len() as i64,
        }
    }
}

fn decrement(counts: &mut HashMap<Arc<str>, u32>, key: &Arc<str>) {
    if let Some(n) = counts.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(key);
        }
    }
}

/// The signals of one kind and filter, oldest first.
#[derive(Debug, Default)]
struct Log {
    signals: VecDeque<Signal>,
    /// The newest event time ever added (running counts end here).
    hi: i64,
    trackers: Vec<Tracker>,
}

impl Log {
    fn add(&mut self, s: Signal) {
        if self.signals.is_empty() || s.at_ms >= self.hi {
            self.hi = s.at_ms;
            for t in &mut self.trackers {
                t.add(&s);
            }
            self.signals.push_back(s);
            // The window's start moves with its end.
            for t in &mut self.trackers {
                while let Some(old) = self.signals.get(t.start) {
                    if old.at_ms > self.hi.saturating_sub(t.length_ms) {
                        break;
                    }
                    t.remove(old);
                    t.start += 1;
                }
            }
        } else {
            // Older than the newest: into its place in time order (after equal times).
            let at = self.signals.partition_point(|o| o.at_ms <= s.at_ms);
            for t in &mut self.trackers {
                if s.at_ms > self.hi.saturating_sub(t.length_ms) {
                    t.add(&s);
                } else {
                    t.start += 1;
                }
            }
            self.signals.insert(at, s);
        }
    }

    /// Forgets signals before `before_ms`.
    fn prune(&mut self, before_ms: i64) {
        while let Some(front) = self.signals.front() {
            if front.at_ms >= before_ms {
                break;
            }
            for t in &mut self.trackers {
                if t.start > 0 {
                    t.start -= 1;
                } else {
                    t.remove(front);
                }
            }
            self.signals.pop_front();
        }
    }

    fn range(&self, from_ms: i64, to_ms: i64) -> impl Iterator<Item = &Signal> {
        let first = self.signals.partition_point(|s| s.at_ms <= from_ms);
        self.signals
            .range(first..)
            .take_while(move |s| s.at_ms <= to_ms)
    }

    fn stats(&mut self, from_ms: i64, to_ms: i64) -> Stats {
        let length_ms = to_ms.saturating_sub(from_ms);
        if let Some(t) = self.trackers.iter().find(|t| t.length_ms == length_ms) {
            if to_ms == self.hi {
                return t.stats();
            }
            // A window near the newest signal (a late event, or another kind's newer event):
            // the running counts corrected by the slivers where the two windows differ.
            if (to_ms - self.hi).abs() < length_ms {
                return self.shifted(t, from_ms, to_ms);
            }
        } else if to_ms == self.hi {
            // First use of this length on this log: count once, then keep it running.
            let mut t = Tracker {
                length_ms,
                start: self.signals.partition_point(|s| s.at_ms <= from_ms),
                signals: 0,
                aggregates: HashMap::new(),
                ips: HashMap::new(),
            };
            for s in self.signals.range(t.start..) {
                t.add(s);
            }
            let stats = t.stats();
            self.trackers.push(t);
            return stats;
        }
        self.counted(from_ms, to_ms)
    }

    /// `(from, to]` counted signal by signal.
    fn counted(&self, from_ms: i64, to_ms: i64) -> Stats {
        let (mut signals, mut aggregates, mut ips) = (0, HashSet::new(), HashSet::new());
        for s in self.range(from_ms, to_ms) {
            signals += 1;
            aggregates.insert(&s.aggregate_id);
            if let Some(ip) = &s.ip {
                ips.insert(ip);
            }
        }
        Stats {
            signals,
            aggregates: aggregates.len() as i64,
            ips: ips.len() as i64,
        }
    }

    /// `(from, to]` from the running counts of `t`, whose window `(a, hi]` has the same length:
    /// less the signals in `t` but not in the window, `(a, min(from, hi)]` and
    /// `(max(to, a), hi]`, plus those in the window but not in `t`, `(from, min(to, a)]` (no
    /// signal is newer than `hi`). Exact, at the cost of those slivers rather than the window:
    /// under load, events reach the read model a few milliseconds out of time order, and
    /// recounting a whole window of a flood for each of them was a fifth of the server's CPU
    /// (BENCHMARKS.md, issue #23).
    fn shifted(&self, t: &Tracker, from_ms: i64, to_ms: i64) -> Stats {
        let a = self.hi.saturating_sub(t.length_ms);
        // Signals in `(x, y]`, as a range of positions (the log is in time order).
        let between = |x: i64, y: i64| {
            let first = self.signals.partition_point(|s| s.at_ms <= x);
            let end = self.signals.partition_point(|s| s.at_ms <= y);
            self.signals.range(first..end.max(first))
        };
        let mut signals = t.signals;
        let mut aggregates: HashMap<&Arc<str>, i64> = HashMap::new();
        let mut ips: HashMap<&Arc<str>, i64> = HashMap::new();
        let removed = between(a, from_ms.min(self.hi)).chain(between(to_ms.max(a), self.hi));
        let added = between(from_ms, to_ms.min(a));
        for (s, d) in removed.map(|s| (s, -1)).chain(added.map(|s| (s, 1))) {
            signals += d;
            *aggregates.entry(&s.aggregate_id).or_default() += d;
            if let Some(ip) = &s.ip {
                *ips.entry(ip).or_default() += d;
            }
        }
        Stats {
            signals,
            aggregates: corrected(&t.aggregates, &aggregates),
            ips: corrected(&t.ips, &ips),
        }
    }
}

/// Distinct keys of `counts` once `delta` is applied to their counts.
fn corrected(counts: &HashMap<Arc<str>, u32>, delta: &HashMap<&Arc<str>, i64>) -> i64 {
    let mut distinct = counts.len() as i64;
    for (key, d) in delta {
        let before = counts.get(*key).map_or(0, |n| i64::from(*n));
        match (before > 0, before + d > 0) {
            (true, false) => distinct -= 1,
            (false, true) => distinct += 1,
            _ => {}
        }
    }
    distinct
}

/// Every signal within the rules' horizon, by kind and filter.
#[derive(Debug, Default)]
pub struct Windows {
    logs: HashMap<(&'static str, Filter), Log>,
}

impl Windows {
    /// Adds a signal of kind `signal` to every filter it belongs to.
    pub fn add(&mut self, signal: &'static str, s: Signal) {
        let filters = [
            Some(Filter::All),
            Some(Filter::Aggregate(s.aggregate_id.clone())),
            s.ip.clone().map(Filter::Ip),
            s.net.clone().map(Filter::Net),
        ];
        for filter in filters.into_iter().flatten() {
            self.logs
                .entry((signal, filter))
                .or_default()
                .add(s.clone());
        }
    }

    /// What `w` holds.
    pub fn stats(&mut self, w: &Window) -> Stats {
        match self.logs.get_mut(&(w.signal, w.filter.clone())) {
            Some(log) => log.stats(w.from_ms, w.to_ms),
            None => Stats::default(),
        }
    }

    /// The signals in `w`, ordered by time, aggregate and sequence.
    pub fn signals(&self, w: &Window) -> Vec<Signal> {
        let mut out: Vec<Signal> = match self.logs.get(&(w.signal, w.filter.clone())) {
            Some(log) => log.range(w.from_ms, w.to_ms).cloned().collect(),
            None => Vec::new(),
        };
        out.sort_by(|a, b| {
            (a.at_ms, &a.aggregate_id, a.sequence).cmp(&(b.at_ms, &b.aggregate_id, b.sequence))
        });
        out
    }

    /// Every signal held, with its kind (each once: the log of all signals of a kind holds
    /// every signal of that kind).
    pub fn all(&self) -> impl Iterator<Item = (&'static str, &Signal)> {
        self.logs
            .iter()
            .filter(|((_, filter), _)| *filter == Filter::All)
            .flat_map(|((kind, _), log)| log.signals.iter().map(move |s| (*kind, s)))
    }

    /// Forgets every signal before `before_ms`.
    pub fn prune(&mut self, before_ms: i64) {
        self.logs.retain(|_, log| {
            log.prune(before_ms);
            !log.signals.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(at_ms: i64, aggregate: &str, sequence: i64, ip: Option<&str>) -> Signal {
        Signal {
            at_ms,
            aggregate_id: aggregate.into(),
            sequence,
            ip: ip.map(Into::into),
            net: ip.map(|_| "net".into()),
        }
    }

    /// The reference: count the window from a plain list, as the SQL of the table would.
    fn reference(all: &[Signal], filter: &Filter, from: i64, to: i64) -> Stats {
        let inside: Vec<&Signal> = all
            .iter()
            .filter(|s| s.at_ms > from && s.at_ms <= to)
            .filter(|s| match filter {
                Filter::All => true,
                Filter::Aggregate(a) => &s.aggregate_id == a,
                Filter::Ip(ip) => s.ip.as_ref() == Some(ip),
                Filter::Net(n) => s.net.as_ref() == Some(n),
            })
            .collect();
        Stats {
            signals: inside.len() as i64,
            aggregates: inside
                .iter()
                .map(|s| &s.aggregate_id)
                .collect::<HashSet<_>>()
                .len() as i64,
            ips: inside
                .iter()
                .filter_map(|s| s.ip.as_ref())
                .collect::<HashSet<_>>()
                .len() as i64,
        }
    }

    #[test]
    fn test_running_counts_equal_a_recount_in_and_out_of_order_with_pruning() {
        // Given signals mostly in time order, some late (a clock behind), and prunes between.
        let mut windows = Windows::default();
        let mut all: Vec<Signal> = Vec::new();
        let mut seed: u64 = 7;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        let mut clock = 0i64;
        for i in 0..3000i64 {
            clock += (next() % 2000) as i64;
            let late = next() % 10 == 0;
            let at = if late {
                clock - (next() % 30_000) as i64
            } else {
                clock
            };
            let agg = format!("a{}", next() % 40);
            let ip = (next() % 5 != 0).then(|| format!("ip{}", next() % 25));
            let s = sig(at, &agg, i, ip.as_deref());
            windows.add("fail", s.clone());
            all.push(s);
            if i % 500 == 499 {
                let before = at - 100_000;
                windows.prune(before);
                all.retain(|s| s.at_ms >= before);
            }
            // When: windows of several lengths end at this signal's time, and a little after
            // it (another kind's newer event asks this log about a window ending later).
            let after = at + (next() % 5_000) as i64;
            for (length_s, end) in [(5, at), (60, at), (900, at), (5, after), (60, after)] {
                for filter in [
                    Filter::All,
                    Filter::Aggregate(agg.as_str().into()),
                    Filter::Ip("ip3".into()),
                ] {
                    let w = Window::ending("fail", filter.clone(), end, length_s);
                    // Then: the answer equals a recount of the plain list.
                    assert_eq!(
                        windows.stats(&w),
                        reference(&all, &filter, w.from_ms, w.to_ms),
                        "signal {i}, {filter:?}, {length_s} s"
                    );
                }
            }
        }
    }

    #[test]
    fn test_window_signals_are_ordered_and_bounded() {
        let mut windows = Windows::default();
        windows.add("fail", sig(10, "b", 1, None));
        windows.add("fail", sig(10, "a", 2, None));
        windows.add("fail", sig(5, "a", 1, None));
        windows.add("lock", sig(7, "a", 3, None));
        let w = Window {
            signal: "fail",
            filter: Filter::All,
            from_ms: 5,
            to_ms: 10,
        };
        let got: Vec<(i64, String)> = windows
            .signals(&w)
            .iter()
            .map(|s| (s.at_ms, s.aggregate_id.to_string()))
            .collect();
        assert_eq!(got, vec![(10, "a".into()), (10, "b".into())]);
        windows.prune(11);
        assert_eq!(windows.stats(&w), Stats::default());
        assert!(windows.logs.is_empty());
    }

    #[test]
    fn test_all_lists_each_signal_once_with_its_kind_after_pruning() {
        let mut windows = Windows::default();
        windows.add("fail", sig(5, "a", 1, Some("203.0.113.1")));
        windows.add("fail", sig(9, "b", 1, Some("203.0.113.2")));
        windows.add("lock", sig(9, "b", 2, None));
        windows.prune(6);
        let mut got: Vec<(&str, String, i64)> = windows
            .all()
            .map(|(kind, s)| (kind, s.aggregate_id.to_string(), s.sequence))
            .collect();
        got.sort();
        assert_eq!(got, vec![("fail", "b".into(), 1), ("lock", "b".into(), 2)]);
    }
}
