//! The detectors: what each account fact feeds into, and which rules it may meet. They work in
//! memory only (the signal windows and the segment's [`Work`]); no query per event.
use std::sync::Arc;

use gatehouse_domain::account::UnlockReason;
use gatehouse_domain::context::RequestContext;
use gatehouse_domain::policy::FlowKind;
use gatehouse_domain::{AccountEvent, AccountFact};

use super::windows::{Filter, Signal, Window, Windows};
use super::work::{Needs, Work};
use super::{account_subject, network, AccountSubject, AlertPolicy, Evidence, Rule};
use gatehouse_store::StoredEvent;

use crate::time::to_ms;

/// Failed or refused sign-ins.
const FAIL: &str = "fail";
/// Accounts locked.
const LOCK: &str = "lock";
/// Recovery flows (reset, unlock) started.
const FLOW: &str = "flow";
/// One-time codes exhausted.
const EXHAUSTED: &str = "exhausted";
/// Rate limit windows that saw refusals (`ThrottleWindowClosed`).
const THROTTLED: &str = "throttled";
/// Identifiers of sign-ins a rate limit refused (named by `ThrottleWindowClosed`), one signal per
/// identifier and window, its aggregate `refused:<lookup hash>`: counted beside the failed
/// sign-ins by the credential-stuffing rule, never evidence themselves.
const REFUSED: &str = "refused";

/// The signal kind stored as `name`.
pub(crate) fn signal_kind(name: &str) -> Option<&'static str> {
    [FAIL, LOCK, FLOW, EXHAUSTED, THROTTLED, REFUSED]
        .into_iter()
        .find(|k| *k == name)
}

/// The rules and the state they read and change.
pub(crate) struct Detector<'a> {
    pub policy: &'a AlertPolicy,
    pub windows: &'a mut Windows,
    pub work: &'a mut Work,
}

/// A client address and its network, shared by the signal and the windows that count it.
fn addresses(ip: Option<&str>) -> (Option<Arc<str>>, Option<Arc<str>>) {
    let net = ip.and_then(network).map(Arc::from);
    (ip.map(Arc::from), net)
}

/// What an event may need loaded before the rules run on it.
pub(crate) fn needs(needs: &mut Needs, event: &StoredEvent, e: &AccountEvent) {
    let at = to_ms(e.at);
    needs.earliest_ms = Some(needs.earliest_ms.map_or(at, |x| x.min(at)));
    needs.subject(format_args!("{}", AccountSubject(&event.aggregate_id)));
    match &e.fact {
        AccountFact::LoginFailed { context, .. }
        | AccountFact::LoginRejectedWhileLocked { context, .. } => {
            needs.subject(format_args!("global"));
            if let Some(ip) = &context.ip {
                needs.subject(format_args!("ip:{ip}"));
                if let Some(net) = network(ip) {
                    needs.subject(format_args!("net:{net}"));
                }
            }
        }
        AccountFact::LoginSucceeded { context, .. } => {
            needs.account(&event.aggregate_id);
            for value in [&context.device_id, &context.ip].into_iter().flatten() {
                needs.value(value);
            }
        }
        AccountFact::PasswordReset { .. } | AccountFact::AccountUnlocked { .. } => {
            needs.account(&event.aggregate_id);
        }
        AccountFact::AccountLocked { .. } | AccountFact::SmsWithheld { .. } => {
            needs.subject(format_args!("global"));
        }
        _ => {}
    }
}

/// The SMS budgets are hourly: an alert gathers the withheld messages of one hour.
const SMS_BUDGET_WINDOW_MS: i64 = 3_600_000;

impl Detector<'_> {
    /// Feeds one account fact to the rules.
    pub(crate) fn account_event(&mut self, event: &StoredEvent, e: &AccountEvent) {
        // Made for the facts the rules read only (most events are not among them).
        let evidence = || Evidence {
            aggregate_id: event.aggregate_id.clone(),
            sequence: event.sequence,
            at_ms: to_ms(e.at),
        };
        let p = self.policy;
        match &e.fact {
            AccountFact::LoginFailed { context, .. }
            | AccountFact::LoginRejectedWhileLocked { context, .. } => {
                self.failure(event, &evidence(), context);
            }
            AccountFact::LoginSucceeded { context, .. } => {
                self.success(event, &evidence(), context)
            }
            AccountFact::PasswordReset { .. }
            | AccountFact::AccountUnlocked {
                reason: UnlockReason::UnlockCode,
                ..
            } => {
                let me = evidence();
                self.work.set_mark(&me.aggregate_id, Some(me.clone()));
            }
            AccountFact::FlowStarted {
                kind: FlowKind::ResetPassword | FlowKind::Unlock,
                context,
                ..
            } => {
                let me = evidence();
                let (ip, net) = addresses(context.ip.as_deref());
                let w = self.signal(FLOW, &me, ip, net, p.recovery_window_s);
                if self.windows.stats(&w).signals >= p.recovery_flows {
                    let subject = account_subject(&me.aggregate_id);
                    let window_ms = p.recovery_window_s * 1000;
                    self.raise(
                        event,
                        Rule::RecoveryBurst,
                        &subject,
                        vec![me],
                        Some(&w),
                        window_ms,
                    );
                }
            }
            AccountFact::CodeExhausted { .. } => {
                let me = evidence();
                let w = self.signal(EXHAUSTED, &me, None, None, p.recovery_window_s);
                if self.windows.stats(&w).signals >= p.code_exhausted {
                    let subject = account_subject(&me.aggregate_id);
                    self.raise(
                        event,
                        Rule::CodeGuessing,
                        &subject,
                        vec![me],
                        Some(&w),
                        p.repeat_window_s * 1000,
                    );
                }
            }
            AccountFact::SecurityKeyCounterRegressed { .. } => {
                let me = evidence();
                let subject = account_subject(&me.aggregate_id);
                self.raise(
                    event,
                    Rule::WebauthnCounterRegression,
                    &subject,
                    vec![me],
                    None,
                    p.repeat_window_s.saturating_mul(1000),
                );
            }
            AccountFact::CodeCeilingReached { .. } => {
                let me = evidence();
                let subject = account_subject(&me.aggregate_id);
                self.raise(
                    event,
                    Rule::CodeCeiling,
                    &subject,
                    vec![me],
                    None,
                    p.repeat_window_s.saturating_mul(1000),
                );
            }
            AccountFact::SmsWithheld { .. } => {
                // One open alert per hour of spent budget gathers every withheld message.
                self.raise(
                    event,
                    Rule::SmsBudgetReached,
                    "global",
                    vec![evidence()],
                    None,
                    SMS_BUDGET_WINDOW_MS,
                );
            }
            AccountFact::AccountLocked { .. } => {
                let me = evidence();
                self.signal(LOCK, &me, None, None, p.lockout_storm_window_s);
                let w = Window::ending(LOCK, Filter::All, me.at_ms, p.lockout_storm_window_s);
                if self.windows.stats(&w).aggregates >= p.lockout_storm_accounts {
                    self.raise(
                        event,
                        Rule::LockoutStorm,
                        "global",
                        vec![me],
                        Some(&w),
                        p.lockout_storm_window_s * 1000,
                    );
                }
            }
            _ => {}
        }
    }

    /// Forgets signals before `before_ms` (no window reaches them any more).
    pub(crate) fn prune(&mut self, before_ms: i64) {
        self.windows.prune(before_ms);
        self.work.prune(before_ms);
    }

    /// Records `me` as a signal of `kind` (from `ip`, in `net`); returns the window of `length_s`
    /// on its aggregate.
    fn signal(
        &mut self,
        kind: &'static str,
        me: &Evidence,
        ip: Option<Arc<str>>,
        net: Option<Arc<str>>,
        length_s: i64,
    ) -> Window {
        let aggregate: Arc<str> = me.aggregate_id.as_str().into();
        let signal = Signal {
            at_ms: me.at_ms,
            aggregate_id: aggregate.clone(),
            sequence: me.sequence,
            ip,
            net,
        };
        self.windows.add(kind, signal.clone());
        self.work.signal(kind, signal);
        Window::ending(kind, Filter::Aggregate(aggregate), me.at_ms, length_s)
    }

    /// Raises or extends the alert of `rule` on `subject`. `current` is the event(s) that met the
    /// rule; `window` selects the evidence of a new alert (everything in the rule's window).
    fn raise(
        &mut self,
        event: &StoredEvent,
        rule: Rule,
        subject: &str,
        current: Vec<Evidence>,
        window: Option<&Window>,
        dedupe_ms: i64,
    ) {
        let Some(now) = current.iter().map(|e| e.at_ms).max() else {
            return;
        };
        let open = self
            .work
            .open_alert(rule, subject)
            .and_then(|(id, last)| (now - last <= dedupe_ms).then_some(id));
        let evidence = match (&open, window) {
            (Some(_), _) | (None, None) => current,
            (None, Some(w)) => {
                let mut evidence: Vec<Evidence> = self
                    .windows
                    .signals(w)
                    .into_iter()
                    .map(|s| Evidence {
                        aggregate_id: s.aggregate_id.to_string(),
                        sequence: s.sequence,
                        at_ms: s.at_ms,
                    })
                    .collect();
                for e in current {
                    if !evidence.contains(&e) {
                        evidence.push(e);
                    }
                }
                evidence
            }
        };
        self.work
            .raise(rule, subject, open, evidence, now, event.position);
    }

    /// A webhook subscription was disabled after failures: one alert per disabling.
    pub(crate) fn webhook_disabled(&mut self, event: &StoredEvent, subject: &str, at_ms: i64) {
        let me = Evidence {
            aggregate_id: event.aggregate_id.clone(),
            sequence: event.sequence,
            at_ms,
        };
        self.raise(event, Rule::WebhookDisabled, subject, vec![me], None, 0);
    }

    /// A rate limit window of `source` closed with refusals: several of them in the rule's
    /// window raise `rate_limit_abuse` on `ip:<source>`. The refused sign-ins' identifiers count
    /// for credential stuffing like failed sign-ins (else the limiter would blind the rule).
    pub(crate) fn throttle_window(
        &mut self,
        event: &StoredEvent,
        source: &str,
        at_ms: i64,
        identifiers: &[String],
    ) {
        let p = self.policy;
        let me = Evidence {
            aggregate_id: event.aggregate_id.clone(),
            sequence: event.sequence,
            at_ms,
        };
        let (ip, net) = addresses(Some(source));
        if !identifiers.is_empty() {
            for identifier in identifiers {
                let refused = Evidence {
                    aggregate_id: format!("refused:{identifier}"),
                    // The stream position keeps the stored row unique across sources.
                    sequence: event.position.pos,
                    at_ms,
                };
                self.signal(
                    REFUSED,
                    &refused,
                    ip.clone(),
                    net.clone(),
                    p.stuffing_window_s,
                );
            }
            self.stuffing(event, &me, ip.clone(), net.clone());
        }
        let w = self.signal(THROTTLED, &me, ip, net, p.rate_limit_window_s);
        if self.windows.stats(&w).signals >= p.rate_limit_windows {
            self.raise(
                event,
                Rule::RateLimitAbuse,
                &format!("ip:{source}"),
                vec![me],
                Some(&w),
                p.rate_limit_window_s.saturating_mul(1000),
            );
        }
    }

    /// Credential stuffing: one IP, and its network, against many identifiers: the accounts of
    /// failed sign-ins and the identifiers of sign-ins a rate limit refused (one identifier seen
    /// both ways counts at most twice). Evidence: `me` and the failed sign-ins in the window.
    fn stuffing(
        &mut self,
        event: &StoredEvent,
        me: &Evidence,
        ip: Option<Arc<str>>,
        net: Option<Arc<str>>,
    ) {
        let p = self.policy;
        let Some(ip) = ip else {
            return;
        };
        let mut scopes = vec![(
            Filter::Ip(ip.clone()),
            format!("ip:{ip}"),
            p.stuffing_ip_identifiers,
        )];
        if let Some(net) = net {
            scopes.push((
                Filter::Net(net.clone()),
                format!("net:{net}"),
                p.stuffing_net_identifiers,
            ));
        }
        for (filter, subject, threshold) in scopes {
            let failed = Window::ending(FAIL, filter.clone(), me.at_ms, p.stuffing_window_s);
            let refused = Window::ending(REFUSED, filter, me.at_ms, p.stuffing_window_s);
            let identifiers =
                self.windows.stats(&failed).aggregates + self.windows.stats(&refused).aggregates;
            if identifiers >= threshold {
                self.raise(
                    event,
                    Rule::CredentialStuffing,
                    &subject,
                    vec![me.clone()],
                    Some(&failed),
                    p.stuffing_window_s * 1000,
                );
            }
        }
    }

    fn failure(&mut self, event: &StoredEvent, me: &Evidence, context: &RequestContext) {
        let p = self.policy;
        let (ip, net) = addresses(context.ip.as_deref());

        // Brute force: one account (or unknown identifier).
        let w = self.signal(FAIL, me, ip.clone(), net.clone(), p.brute_force_window_s);
        if self.windows.stats(&w).signals >= p.brute_force_failures {
            let subject = account_subject(&me.aggregate_id);
            self.raise(
                event,
                Rule::BruteForce,
                &subject,
                vec![me.clone()],
                Some(&w),
                p.brute_force_window_s * 1000,
            );
        }

        self.stuffing(event, me, ip, net);

        // Password spraying: failures over many accounts from many IPs, against the baseline.
        let current = Window::ending(FAIL, Filter::All, me.at_ms, p.spray_window_s);
        let now = self.windows.stats(&current);
        if now.signals >= p.spray_min_failures
            && now.aggregates >= p.spray_min_accounts
            && now.ips >= p.spray_min_ips
        {
            let window_ms = p.spray_window_s.saturating_mul(1000);
            // The baseline windows precede the current one: counted as the whole span up to now
            // minus the current window (one running count each).
            let span = Window {
                signal: FAIL,
                filter: Filter::All,
                from_ms: current
                    .from_ms
                    .saturating_sub(window_ms.saturating_mul(p.spray_baseline_windows)),
                to_ms: current.to_ms,
            };
            let baseline_total = self.windows.stats(&span).signals - now.signals;
            // failures / (baseline_total / windows) >= factor, without division.
            if now.signals.saturating_mul(p.spray_baseline_windows)
                >= p.spray_factor.saturating_mul(baseline_total)
            {
                self.raise(
                    event,
                    Rule::PasswordSpraying,
                    "global",
                    vec![me.clone()],
                    Some(&current),
                    window_ms,
                );
            }
        }
    }

    fn success(&mut self, event: &StoredEvent, me: &Evidence, context: &RequestContext) {
        let p = self.policy;
        let account = me.aggregate_id.as_str();
        let subject = account_subject(account);
        let prior = self.work.knows(account, "login", "");
        let repeat_ms = p.repeat_window_s.saturating_mul(1000);
        for (kind, value, rule) in [
            (
                "device",
                context.device_id.as_deref(),
                Rule::NewDeviceSignIn,
            ),
            ("ip", context.ip.as_deref(), Rule::NewIpSignIn),
        ] {
            let Some(value) = value else { continue };
            if self.work.knows(account, kind, value) {
                continue;
            }
            if prior {
                self.raise(event, rule, &subject, vec![me.clone()], None, repeat_ms);
            }
            self.work.remember(account, kind, value);
        }
        if !prior {
            self.work.remember(account, "login", "");
        }

        // A sign-in consumes the mark of the last reset or unlock.
        if let Some(mark) = self.work.set_mark(account, None) {
            if me.at_ms - mark.at_ms <= p.after_recovery_window_s.saturating_mul(1000) {
                self.raise(
                    event,
                    Rule::SignInAfterRecovery,
                    &subject,
                    vec![mark, me.clone()],
                    None,
                    repeat_ms,
                );
            }
        }
    }
}
