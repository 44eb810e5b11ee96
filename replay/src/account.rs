//! One account seen by an auditor: `state --at T` (the domain's own fold of its events up to T,
//! with the events that explain each part of the answer) and `timeline` (text, or a self-contained
//! HTML page with an SVG chart of sign-ins and failures per day).
use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use cqrs_es::Aggregate;
use gatehouse_domain::account::{AccountStatus, LoginFailureReason, SessionEndReason};
use gatehouse_domain::text::escape_control;
use gatehouse_domain::{Account, AccountEvent, AccountFact, Door};
use gatehouse_replay::report::{
    AddressState, ApiKeyState, ContactsState, CooldownState, Evidence, FreezeState, LockoutState,
    RecoveryState, SecondFactorsState, SecurityKeyState, SessionState, StateReport, WhitelistState,
};
use gatehouse_store::{Store, StoredEvent};
use serde_json::Value;

use crate::source::{self, Error, Result, ERASED};

/// A decoded event of the account.
pub struct Entry {
    /// Sequence within the account.
    pub sequence: i64,
    /// The decoded (upcast) event.
    pub event: AccountEvent,
}

/// The account's events, decoded, in order.
pub async fn load(store: &Store, account: &str) -> Result<Vec<Entry>> {
    let stored = source::aggregate_events(store, "Account", account).await?;
    if stored.is_empty() {
        return Err(Error::Usage(format!("no events for account {account}")));
    }
    stored.iter().map(decode).collect()
}

fn decode(e: &StoredEvent) -> Result<Entry> {
    let event = gatehouse_projections::account_event(e)?
        .cloned()
        .ok_or_else(|| Error::Usage(format!("{} is not an account", e.aggregate_id)))?;
    Ok(Entry {
        sequence: e.sequence,
        event,
    })
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The stored (snake_case) name of a serialisable value, for kinds added later.
fn serde_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s.replace('_', " "),
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

fn reason_text(r: LoginFailureReason) -> String {
    match r {
        LoginFailureReason::WrongPassword => "wrong password".into(),
        other => serde_name(&other),
    }
}

/// One line describing a fact (no personal data: sealed values are never opened).
pub fn describe(fact: &AccountFact) -> String {
    let ctx = |c: &gatehouse_domain::context::RequestContext| {
        let mut parts = Vec::new();
        if let Some(ip) = &c.ip {
            parts.push(format!("ip {ip}"));
        }
        if let Some(d) = &c.device_id {
            parts.push(format!("device {d}"));
        }
        if let Some(ua) = &c.user_agent {
            parts.push(format!("agent {ua:?}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        }
    };
    // The untrusted door is the default and goes unsaid (as in the stored facts).
    let door_text = |door: &Door| match door {
        Door::Untrusted => String::new(),
        Door::Device(id) => format!(" through the door of device {id}"),
    };
    match fact {
        AccountFact::LoginSucceeded {
            session_id,
            context,
            door,
            method,
            ..
        } => format!(
            "sign-in succeeded{}{}, session {session_id}{}",
            if method.is_password() {
                ""
            } else {
                " with a passkey"
            },
            door_text(door),
            ctx(context)
        ),
        AccountFact::LoginFailed {
            reason,
            consecutive_failures,
            context,
            door,
        } => format!(
            "sign-in failed: {} ({consecutive_failures} in a row{}){}",
            reason_text(*reason),
            door_text(door),
            ctx(context)
        ),
        AccountFact::LoginRejectedWhileLocked {
            locked_until,
            context,
            door,
        } => format!(
            "sign-in refused{}: locked until {}{}",
            door_text(door),
            ts(*locked_until),
            ctx(context)
        ),
        AccountFact::AccountLocked {
            until,
            level,
            failed_attempts,
            door,
        } => format!(
            "locked{} until {} (lock #{level}, after {failed_attempts} failures)",
            door_text(door),
            ts(*until)
        ),
        AccountFact::DeviceTrusted {
            device_id,
            expires_at,
            context,
            ..
        } => format!(
            "device {device_id} trusted until {}{}",
            ts(*expires_at),
            ctx(context)
        ),
        AccountFact::DeviceRevoked {
            device_id, reason, ..
        } => format!("device {device_id} no longer trusted ({reason:?})"),
        AccountFact::DeviceRenamed {
            device_id, name, ..
        } => format!("device {device_id} renamed {}", text(name)),
        AccountFact::CodeCeilingReached { issued, until } => format!(
            "untrusted requesters reached the code ceiling ({issued} codes) until {}",
            ts(*until)
        ),
        AccountFact::SessionStarted {
            session_id,
            expires_at,
            ..
        } => format!("session {session_id} opened, ends by {}", ts(*expires_at)),
        AccountFact::SessionExtended {
            session_id,
            idle_expires_at,
        } => format!(
            "session {session_id} used, idle expiry now {}",
            ts(*idle_expires_at)
        ),
        AccountFact::SessionEnded {
            session_id, reason, ..
        } => {
            let why = match reason {
                SessionEndReason::Revoked { by_session } => format!("revoked by {by_session}"),
                SessionEndReason::Evicted => "evicted (too many sessions)".to_string(),
                other => serde_name(other),
            };
            format!("session {session_id} ended: {why}")
        }
        AccountFact::AccountUnlocked { reason, .. } => {
            format!("unlocked ({})", serde_name(reason))
        }
        AccountFact::PasswordReset { .. } => "password reset".to_string(),
        AccountFact::AccountFrozen {
            by,
            reason,
            context,
        } => format!(
            "FROZEN by {}{}{}",
            freeze_actor(by),
            reason
                .as_ref()
                .map(|r| format!(", reason {r:?}"))
                .unwrap_or_default(),
            ctx(context)
        ),
        AccountFact::AccountUnfrozen {
            by,
            reason,
            hold_until,
            context,
        } => format!(
            "{} by {}{}{}",
            match hold_until {
                Some(until) => format!("unfreeze decided, effective {}", ts(*until)),
                None => "UNFROZEN".to_string(),
            },
            freeze_actor(by),
            reason
                .as_ref()
                .map(|r| format!(", reason {r:?}"))
                .unwrap_or_default(),
            ctx(context)
        ),
        AccountFact::LoginRefusedWhileFrozen { context, door } => format!(
            "sign-in refused{}: account frozen (password right){}",
            door_text(door),
            ctx(context)
        ),
        AccountFact::StaffActionTaken {
            staff_id,
            action,
            reason,
            context,
        } => format!(
            "staff {staff_id:?} acted: {}, reason {reason:?}{}",
            action.as_str(),
            ctx(context)
        ),
        AccountFact::AccountRegistered { email, phone, .. } => {
            let mut ids = Vec::new();
            if email.is_some() {
                ids.push("email");
            }
            if phone.is_some() {
                ids.push("phone");
            }
            format!("account registered ({} sealed)", ids.join(" and "))
        }
        other => other.name().to_string(),
    }
}

fn freeze_actor(by: &gatehouse_domain::FreezeActor) -> String {
    use gatehouse_domain::FreezeActor as F;
    match by {
        F::Owner { session_id } => format!("the owner (session {session_id})"),
        F::Link { link_id } => format!("a freeze link ({link_id})"),
        F::Recovery { flow_id } => format!("the owner's recovery (flow {flow_id})"),
        F::Staff { staff_id } => format!("staff {staff_id:?}"),
    }
}

fn evidence(entry: &Entry) -> Evidence {
    Evidence {
        sequence: entry.sequence,
        at: ts(entry.event.at),
        event_type: entry.event.fact.name().to_string(),
        what: describe(&entry.event.fact),
    }
}

/// The account as it stood at `at`: the domain's fold of every event up to and including `at`.
pub async fn state(store: &Store, account: &str, at: DateTime<Utc>) -> Result<StateReport> {
    let entries = load(store, account).await?;
    let erased = source::is_erased(store, account).await?;
    let mut folded = Account::default();
    let mut applied: Vec<&Entry> = Vec::new();
    for entry in &entries {
        if entry.event.at > at {
            break;
        }
        folded.apply(entry.event.clone());
        applied.push(entry);
    }
    // The events that explain each part of the answer.
    let status_evidence: Vec<Evidence> = applied
        .iter()
        .filter(|e| {
            matches!(e.event.fact, AccountFact::AccountRegistered { .. })
                || (folded.status() == AccountStatus::Unregistered
                    && matches!(e.event.fact, AccountFact::LoginFailed { .. }))
        })
        .take(1)
        .map(|e| evidence(e))
        .collect();
    // A success or an unlock resets the failure count and the lock level.
    let since_success = applied
        .iter()
        .rposition(|e| {
            matches!(
                e.event.fact,
                AccountFact::LoginSucceeded { .. } | AccountFact::AccountUnlocked { .. }
            )
        })
        .map_or(0, |i| i + 1);
    let lock_events: Vec<&&Entry> = applied[since_success..]
        .iter()
        .filter(|e| {
            matches!(
                e.event.fact,
                AccountFact::LoginFailed { .. }
                    | AccountFact::AccountLocked { .. }
                    | AccountFact::LoginRejectedWhileLocked { .. }
            )
        })
        .collect();
    let mut lockout_evidence: Vec<Evidence> = Vec::new();
    if since_success > 0 {
        lockout_evidence.push(evidence(applied[since_success - 1]));
    }
    lockout_evidence.extend(lock_events.iter().map(|e| evidence(e)));
    let lock_level = lock_events
        .iter()
        .rev()
        .find_map(|e| match &e.event.fact {
            AccountFact::AccountLocked { level, .. } => Some(*level),
            _ => None,
        })
        .unwrap_or(0);
    let lock = folded.lock_at(at);
    let sessions: Vec<SessionState> = folded
        .live_sessions(at)
        .into_iter()
        .map(|(id, s)| {
            let made: Vec<Evidence> = applied
                .iter()
                .filter(|e| match &e.event.fact {
                    AccountFact::SessionStarted { session_id, .. }
                    | AccountFact::SessionExtended { session_id, .. }
                    | AccountFact::LoginSucceeded { session_id, .. } => *session_id == id,
                    _ => false,
                })
                .map(|e| evidence(e))
                .collect();
            SessionState {
                session_id: id.to_string(),
                started_at: ts(s.started_at),
                expires_at: ts(s.expires_at),
                idle_expires_at: ts(s.idle_expires_at),
                ip: s.context.ip.clone(),
                user_agent: s.context.user_agent.clone(),
                device_id: s.context.device_id.clone(),
                evidence: made,
            }
        })
        .collect();
    let sealed = |present: bool| -> Option<String> {
        match (present, erased) {
            (false, _) => None,
            (true, true) => Some(ERASED.into()),
            (true, false) => Some("sealed".into()),
        }
    };
    let cooldown_evidence: Vec<Evidence> = applied
        .iter()
        .filter(|e| match &e.event.fact {
            AccountFact::HighRiskCooldownStarted { until, .. } => e.event.at <= at && at < *until,
            _ => false,
        })
        .map(|e| evidence(e))
        .collect();
    let verified: Vec<String> = folded
        .verified_channels()
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    let factor_evidence: Vec<Evidence> = applied
        .iter()
        .filter(|e| {
            matches!(
                e.event.fact,
                AccountFact::TotpEnrolled { .. }
                    | AccountFact::SecurityKeyRegistered { .. }
                    | AccountFact::SecurityKeyRemoved { .. }
                    | AccountFact::SecondFactorRemoved { .. }
                    | AccountFact::BackupCodesGenerated { .. }
            )
        })
        .map(|e| evidence(e))
        .collect();
    let security_keys: Vec<SecurityKeyState> = folded
        .security_keys()
        .iter()
        .map(|(id, k)| SecurityKeyState {
            key_id: id.clone(),
            name: k.name.clone(),
            registered_at: ts(k.registered_at),
            last_used_at: k.last_used_at.map(ts),
        })
        .collect();
    let recovery = folded.recovery().map(|r| {
        let (step, of) = r.step_of();
        RecoveryState {
            flow_id: r.flow_id.to_string(),
            stage: serde_name(&r.stage),
            step,
            steps_total: of,
            hold_until: r.hold_until.map(ts),
        }
    });
    let freeze = folded.freeze_at(at).map(|f| FreezeState {
        since: ts(f.since),
        by: freeze_actor(&f.by),
        release_at: f.release_at.map(ts),
        evidence: applied
            .iter()
            .filter(|e| {
                e.event.at >= f.since
                    && matches!(
                        e.event.fact,
                        AccountFact::AccountFrozen { .. } | AccountFact::AccountUnfrozen { .. }
                    )
            })
            .map(|e| evidence(e))
            .collect(),
    });
    let api_keys: Vec<ApiKeyState> = folded
        .api_keys()
        .iter()
        .map(|(id, k)| {
            let status = if k.revoked_at.is_some() {
                "revoked"
            } else if k.expires_at.is_some_and(|e| at >= e) {
                "expired"
            } else {
                "active"
            };
            ApiKeyState {
                key_id: id.to_string(),
                name: k.name.clone(),
                scopes: k.scopes.clone(),
                status: status.to_string(),
                created_at: ts(k.created_at),
            }
        })
        .collect();
    let addresses: Vec<AddressState> = folded
        .withdrawal_addresses()
        .iter()
        .map(|(id, a)| AddressState {
            address_id: id.to_string(),
            asset: a.asset.clone(),
            network: a.network.clone(),
            address: if erased { ERASED } else { "sealed" }.to_string(),
            usable_from: a.usable_from.map(ts),
        })
        .collect();
    Ok(StateReport {
        account: account.to_string(),
        at: ts(at),
        events_applied: applied.len() as u64,
        last_sequence: applied.last().map(|e| e.sequence),
        status: folded.status(),
        status_evidence,
        contacts: ContactsState {
            email: sealed(folded.email().is_some()),
            phone: sealed(folded.phone().is_some()),
        },
        lockout: LockoutState {
            locked: lock.is_some(),
            locked_until: lock.map(|l| ts(l.until)),
            consecutive_failures: folded.consecutive_failures(),
            lock_level,
            evidence: lockout_evidence,
        },
        verified_channels: verified,
        high_risk_cooldown: CooldownState {
            until: folded.high_risk_until(at).map(ts),
            reasons: folded.high_risk_reasons(at),
            evidence: cooldown_evidence,
        },
        second_factors: SecondFactorsState {
            totp: folded.has_totp(),
            backup_codes_left: folded.backup_codes_left() as u64,
            security_keys,
            evidence: factor_evidence,
        },
        recovery,
        freeze,
        api_keys,
        withdrawal_whitelist: WhitelistState {
            whitelist_only: folded.whitelist_only(),
            addresses,
        },
        sessions_open: sessions.len() as u64,
        sessions,
        chain_head: folded.chain_head().0.clone(),
    })
}

/// A report string as text for a terminal: control characters escaped (it may hold a client's
/// device id or user agent).
fn text(v: &str) -> String {
    escape_control(v).into_owned()
}

/// An optional report string as text, absent as `-`.
fn opt(v: &Option<String>) -> String {
    v.as_deref().map_or_else(|| "-".into(), text)
}

/// A list as its JSON text (as the report prints it).
fn list<T: serde::Serialize>(v: &[T]) -> String {
    text(&serde_json::to_string(v).unwrap_or_default())
}

/// One line per evidence event: `#sequence time what`, indented.
fn evidence_lines(out: &mut String, evidence: &[Evidence], indent: &str) {
    for e in evidence {
        let _ = writeln!(
            out,
            "{indent}#{} {} {}",
            e.sequence,
            text(&e.at),
            text(&e.what)
        );
    }
}

/// Renders a `state` report as text.
pub fn state_text(v: &StateReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "account {} at {} ({} events applied, last sequence {})",
        text(&v.account),
        text(&v.at),
        v.events_applied,
        v.last_sequence
            .map_or_else(|| "-".into(), |n| n.to_string())
    );
    let _ = writeln!(out, "status: {}", serde_name(&v.status));
    evidence_lines(&mut out, &v.status_evidence, "  ");
    if let Some(f) = &v.freeze {
        let _ = writeln!(
            out,
            "FROZEN since {} by {}{}",
            text(&f.since),
            text(&f.by),
            f.release_at
                .as_ref()
                .map(|r| format!(" (staff unfreeze effective {})", text(r)))
                .unwrap_or_default()
        );
        evidence_lines(&mut out, &f.evidence, "  ");
    }
    let _ = writeln!(
        out,
        "contacts: email {}, phone {}",
        opt(&v.contacts.email),
        opt(&v.contacts.phone)
    );
    let l = &v.lockout;
    if l.locked {
        let _ = writeln!(
            out,
            "lockout: LOCKED until {} (lock level {})",
            opt(&l.locked_until),
            l.lock_level
        );
    } else {
        let _ = writeln!(
            out,
            "lockout: not locked; {} consecutive failure(s), lock level {}",
            l.consecutive_failures, l.lock_level
        );
    }
    evidence_lines(&mut out, &l.evidence, "  ");
    let channels: Vec<String> = v.verified_channels.iter().map(|c| text(c)).collect();
    let _ = writeln!(
        out,
        "verified channels: {}",
        if channels.is_empty() {
            "none".to_string()
        } else {
            channels.join(", ")
        }
    );
    let c = &v.high_risk_cooldown;
    if c.until.is_some() {
        let _ = writeln!(
            out,
            "high-risk cooldown until {} ({})",
            opt(&c.until),
            list(&c.reasons)
        );
        evidence_lines(&mut out, &c.evidence, "  ");
    }
    let f = &v.second_factors;
    let _ = writeln!(
        out,
        "second factors: totp {}, {} backup code(s) left, {} security key(s)",
        if f.totp { "on" } else { "off" },
        f.backup_codes_left,
        f.security_keys.len()
    );
    evidence_lines(&mut out, &f.evidence, "  ");
    if let Some(r) = &v.recovery {
        let _ = writeln!(
            out,
            "lost-factor recovery: {} (step {} of {}), hold until {}",
            text(&r.stage),
            r.step,
            r.steps_total,
            opt(&r.hold_until)
        );
    }
    for k in &v.api_keys {
        let _ = writeln!(
            out,
            "api key {} ({}): {} {}",
            text(&k.key_id),
            text(&k.name),
            text(&k.status),
            list(&k.scopes)
        );
    }
    let w = &v.withdrawal_whitelist;
    let _ = writeln!(
        out,
        "withdrawal whitelist: {}, {} address(es)",
        if w.whitelist_only {
            "whitelist only"
        } else {
            "off"
        },
        w.addresses.len()
    );
    let _ = writeln!(out, "sessions open: {}", v.sessions_open);
    for sess in &v.sessions {
        let _ = writeln!(
            out,
            "  session {} since {} (ends by {}, idle expiry {}) from {}",
            text(&sess.session_id),
            text(&sess.started_at),
            text(&sess.expires_at),
            text(&sess.idle_expires_at),
            opt(&sess.ip)
        );
        evidence_lines(&mut out, &sess.evidence, "    ");
    }
    out
}

/// A readable timeline of the account, one event a line. What a client chose (device id, user
/// agent) is escaped: it can neither drive the terminal nor start a line of its own.
pub fn timeline_text(account: &str, entries: &[Entry]) -> String {
    let mut out = format!(
        "timeline of account {} ({} events)\n",
        escape_control(account),
        entries.len()
    );
    let mut day: Option<NaiveDate> = None;
    for e in entries {
        let d = e.event.at.date_naive();
        if day != Some(d) {
            let _ = writeln!(out, "\n{d}");
            day = Some(d);
        }
        let _ = writeln!(
            out,
            "  {}  #{:<4} {:<26} {}",
            e.event.at.format("%H:%M:%S"),
            e.sequence,
            e.event.fact.name(),
            escape_control(&describe(&e.event.fact))
        );
    }
    out
}

/// Sign-ins, failures and refusals per day.
pub fn per_day(entries: &[Entry]) -> BTreeMap<NaiveDate, (u32, u32, u32)> {
    let mut days: BTreeMap<NaiveDate, (u32, u32, u32)> = BTreeMap::new();
    for e in entries {
        let slot = days.entry(e.event.at.date_naive()).or_default();
        match e.event.fact {
            AccountFact::LoginSucceeded { .. } => slot.0 += 1,
            AccountFact::LoginFailed { .. } => slot.1 += 1,
            AccountFact::LoginRejectedWhileLocked { .. } => slot.2 += 1,
            _ => {}
        }
    }
    days
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A self-contained HTML page: an inline SVG bar chart per day and the event table. No scripts.
pub fn timeline_html(account: &str, entries: &[Entry]) -> String {
    let days = per_day(entries);
    let max = days
        .values()
        .map(|(s, f, r)| s + f + r)
        .max()
        .unwrap_or(0)
        .max(1);
    let bar_w = 28u32;
    let gap = 10u32;
    let chart_h = 200u32;
    let left = 40u32;
    let width = left + (bar_w + gap) * u32::try_from(days.len()).unwrap_or(0).max(1) + gap;
    let height = chart_h + 70;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="sign-ins and failures per day" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#
    );
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="10" x2="{left}" y2="{y}" stroke="#555"/><line x1="{left}" y1="{y}" x2="{width}" y2="{y}" stroke="#555"/><text x="{tx}" y="18" font-size="11" text-anchor="end">{max}</text><text x="{tx}" y="{y}" font-size="11" text-anchor="end">0</text>"##,
        y = chart_h + 10,
        tx = left - 4,
    );
    for (i, (day, (ok, failed, refused))) in days.iter().enumerate() {
        let x = left + gap + (bar_w + gap) * u32::try_from(i).unwrap_or(0);
        let mut base = chart_h + 10;
        for (count, colour, label) in [
            (*ok, "#2e7d32", "sign-ins"),
            (*failed, "#c62828", "failures"),
            (*refused, "#ef6c00", "refused while locked"),
        ] {
            if count == 0 {
                continue;
            }
            let h = (count * chart_h) / max;
            base -= h;
            let _ = write!(
                svg,
                r#"<rect x="{x}" y="{base}" width="{bar_w}" height="{h}" fill="{colour}"><title>{day}: {count} {label}</title></rect>"#
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{cx}" y="{ly}" font-size="10" text-anchor="end" transform="rotate(-45 {cx} {ly})">{day}</text>"#,
            cx = x + bar_w / 2,
            ly = chart_h + 24,
        );
    }
    svg.push_str("</svg>");
    let mut rows = String::new();
    for e in entries {
        let class = match e.event.fact {
            AccountFact::LoginSucceeded { .. } => "ok",
            AccountFact::LoginFailed { .. } | AccountFact::AccountLocked { .. } => "bad",
            AccountFact::LoginRejectedWhileLocked { .. } => "refused",
            _ => "",
        };
        let _ = writeln!(
            rows,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&ts(e.event.at)),
            e.sequence,
            esc(e.event.fact.name()),
            esc(&describe(&e.event.fact))
        );
    }
    let (ok, failed, refused) = days
        .values()
        .fold((0, 0, 0), |a, d| (a.0 + d.0, a.1 + d.1, a.2 + d.2));
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Timeline of account {acc}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; }}
tr.ok td:nth-child(3) {{ color: #2e7d32; }} tr.bad td:nth-child(3) {{ color: #c62828; }}
tr.refused td:nth-child(3) {{ color: #ef6c00; }}
.legend span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; }}
</style></head><body>
<h1>Account {acc}</h1>
<p>{n} events; {ok} successful sign-ins, {failed} failed, {refused} refused while locked.</p>
<p class="legend"><span style="background:#2e7d32"></span>sign-ins<span style="background:#c62828"></span>failures<span style="background:#ef6c00"></span>refused while locked</p>
{svg}
<h2>Events</h2>
<table><thead><tr><th>time (UTC)</th><th>#</th><th>event</th><th>what happened</th></tr></thead>
<tbody>
{rows}</tbody></table>
</body></html>
"#,
        acc = esc(account),
        n = entries.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_domain::chain::ChainLink;
    use gatehouse_domain::context::RequestContext;

    const EVIL: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2J\nINJECTED 00:00:00 #1 LoginSucceeded";

    fn entries() -> Vec<Entry> {
        let ctx = RequestContext::new(
            Some("192.0.2.1".into()),
            Some(EVIL.into()),
            Some(EVIL.into()),
        );
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        vec![Entry {
            sequence: 1,
            event: AccountEvent {
                at,
                prev: ChainLink::default(),
                fact: AccountFact::LoginFailed {
                    door: Default::default(),
                    reason: LoginFailureReason::ContactUnverified,
                    consecutive_failures: 1,
                    context: ctx,
                },
            },
        }]
    }

    /// No control character but the line ends, and no line the client wrote.
    fn assert_terminal_safe(out: &str) {
        assert!(
            !out.chars().any(|c| c.is_control() && c != '\n'),
            "raw control character in {out:?}"
        );
        assert!(!out.lines().any(|l| l.starts_with("INJECTED")), "{out}");
    }

    #[test]
    fn test_timeline_text_escapes_what_clients_chose() {
        let out = timeline_text("acc\u{1b}[31m", &entries());
        assert_terminal_safe(&out);
        assert!(
            out.contains("device \\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{a}INJECTED"),
            "{out}"
        );
        assert!(out.contains("contact unverified"), "{out}");
    }

    #[test]
    fn test_state_text_escapes_report_strings() {
        let report: StateReport = serde_json::from_value(serde_json::json!({
            "account": "a", "at": "t", "events_applied": 1, "last_sequence": 1,
            "status": "active", "status_evidence": [],
            "contacts": {"email": "sealed", "phone": null},
            "lockout": {"locked": false, "locked_until": null, "consecutive_failures": 1, "lock_level": 0,
                        "evidence": [{"sequence": 1, "at": "t", "event_type": "LoginSucceeded",
                                      "what": describe(&entries()[0].event.fact)}]},
            "verified_channels": [], "high_risk_cooldown": {"until": null, "reasons": [], "evidence": []},
            "second_factors": {"totp": false, "backup_codes_left": 0, "security_keys": [], "evidence": []},
            "recovery": null,
            "api_keys": [{"key_id": "k", "name": EVIL, "status": "active", "scopes": ["read"],
                          "created_at": "t"}],
            "withdrawal_whitelist": {"whitelist_only": false, "addresses": []},
            "sessions_open": 1,
            "sessions": [{"session_id": "s", "started_at": "t", "expires_at": "t",
                          "idle_expires_at": "t", "ip": EVIL, "user_agent": null, "device_id": null,
                          "evidence": []}],
            "chain_head": "h",
        }))
        .unwrap();
        let out = state_text(&report);
        assert_terminal_safe(&out);
        assert!(out.contains("\\u{1b}]0;pwned"), "{out}");
    }

    #[test]
    fn test_html_timeline_stays_html_escaped() {
        let html = timeline_html("acc", &entries());
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains("device \u{1b}]0;pwned"),
            "HTML keeps the value, escaped as HTML"
        );
    }
}
