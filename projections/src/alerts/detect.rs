//! The detectors: what each account fact feeds into, and which rules it may meet.
use gatehouse_domain::account::UnlockReason;
use gatehouse_domain::context::RequestContext;
use gatehouse_domain::policy::FlowKind;
use gatehouse_domain::{AccountEvent, AccountFact};
use sqlx::{AnyConnection, Row};

use super::{account_subject, network, raise, AlertsProjection, Evidence, Rule};
use crate::store::{StoreError, StoredEvent};
use crate::time::to_ms;

/// Failed or refused sign-ins.
const FAIL: &str = "fail";
/// Accounts locked.
const LOCK: &str = "lock";
/// Recovery flows (reset, unlock) started.
const FLOW: &str = "flow";
/// One-time codes exhausted.
const EXHAUSTED: &str = "exhausted";

/// Which signals a window counts.
#[derive(Debug, Clone)]
pub(crate) enum Filter {
    /// All of them.
    All,
    /// Those of one aggregate.
    Aggregate(String),
    /// Those from one IP.
    Ip(String),
    /// Those from one network.
    Net(String),
}

/// Signals of one kind in `(from_ms, to_ms]`.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    signal: &'static str,
    filter: Filter,
    from_ms: i64,
    to_ms: i64,
}

impl Window {
    fn new(signal: &'static str, filter: Filter, to_ms: i64, length_s: i64) -> Self {
        Self {
            signal,
            filter,
            from_ms: to_ms.saturating_sub(length_s.saturating_mul(1000)),
            to_ms,
        }
    }

    /// `where` clause and the filter value (column names are fixed strings).
    fn clause(&self) -> (&'static str, Option<&str>) {
        match &self.filter {
            Filter::All => (
                "signal = $1 and at_ms > $2 and at_ms <= $3 and $4 is null",
                None,
            ),
            Filter::Aggregate(v) => (
                "signal = $1 and at_ms > $2 and at_ms <= $3 and aggregate_id = $4",
                Some(v),
            ),
            Filter::Ip(v) => (
                "signal = $1 and at_ms > $2 and at_ms <= $3 and ip = $4",
                Some(v),
            ),
            Filter::Net(v) => (
                "signal = $1 and at_ms > $2 and at_ms <= $3 and net = $4",
                Some(v),
            ),
        }
    }
}

/// Counts in a window: events, distinct aggregates, distinct IPs.
async fn stats(conn: &mut AnyConnection, w: &Window) -> Result<(i64, i64, i64), StoreError> {
    let (clause, value) = w.clause();
    let row = sqlx::query(&format!(
        "select count(*) as n, count(distinct aggregate_id) as aggregates, count(distinct ip) as ips
           from alert_signals_v1 where {clause}"
    ))
    .bind(w.signal)
    .bind(w.from_ms)
    .bind(w.to_ms)
    .bind(value)
    .fetch_one(conn)
    .await?;
    Ok((
        row.try_get("n")?,
        row.try_get("aggregates")?,
        row.try_get("ips")?,
    ))
}

/// The events in a window, oldest first.
pub(crate) async fn window_evidence(
    conn: &mut AnyConnection,
    w: &Window,
) -> Result<Vec<Evidence>, StoreError> {
    let (clause, value) = w.clause();
    let rows = sqlx::query(&format!(
        "select aggregate_id, sequence, at_ms from alert_signals_v1 where {clause}
          order by at_ms, aggregate_id, sequence"
    ))
    .bind(w.signal)
    .bind(w.from_ms)
    .bind(w.to_ms)
    .bind(value)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Evidence {
                aggregate_id: r.try_get("aggregate_id")?,
                sequence: r.try_get("sequence")?,
                at_ms: r.try_get("at_ms")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

async fn signal(
    conn: &mut AnyConnection,
    signal: &'static str,
    me: &Evidence,
    ip: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into alert_signals_v1 (signal, aggregate_id, sequence, at_ms, ip, net)
         values ($1, $2, $3, $4, $5, $6) on conflict do nothing",
    )
    .bind(signal)
    .bind(&me.aggregate_id)
    .bind(me.sequence)
    .bind(me.at_ms)
    .bind(ip)
    .bind(ip.and_then(network))
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets signals before `before_ms` (no window reaches them any more).
pub(crate) async fn prune(conn: &mut AnyConnection, before_ms: i64) -> Result<(), StoreError> {
    for signal in [FAIL, LOCK, FLOW, EXHAUSTED] {
        sqlx::query("delete from alert_signals_v1 where signal = $1 and at_ms < $2")
            .bind(signal)
            .bind(before_ms)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Feeds one account fact to the rules.
pub(crate) async fn account_event(
    this: &AlertsProjection,
    conn: &mut AnyConnection,
    event: &StoredEvent,
    e: &AccountEvent,
) -> Result<(), StoreError> {
    let me = Evidence {
        aggregate_id: event.aggregate_id.clone(),
        sequence: event.sequence,
        at_ms: to_ms(e.at),
    };
    let p = &this.policy;
    match &e.fact {
        AccountFact::LoginFailed { context, .. }
        | AccountFact::LoginRejectedWhileLocked { context, .. } => {
            failure(this, conn, event, &me, context).await?;
        }
        AccountFact::LoginSucceeded { context, .. } => {
            success(this, conn, event, &me, context).await?;
        }
        AccountFact::PasswordReset { .. }
        | AccountFact::AccountUnlocked {
            reason: UnlockReason::UnlockCode,
            ..
        } => {
            sqlx::query(
                "insert into alert_recovery_marks_v1 (account_id, sequence, at_ms) values ($1, $2, $3)
                 on conflict (account_id) do update set sequence = excluded.sequence, at_ms = excluded.at_ms",
            )
            .bind(&me.aggregate_id)
            .bind(me.sequence)
            .bind(me.at_ms)
            .execute(&mut *conn)
            .await?;
        }
        AccountFact::FlowStarted {
            kind: FlowKind::ResetPassword | FlowKind::Unlock,
            context,
            ..
        } => {
            signal(conn, FLOW, &me, context.ip.as_deref()).await?;
            let w = Window::new(
                FLOW,
                Filter::Aggregate(me.aggregate_id.clone()),
                me.at_ms,
                p.recovery_window_s,
            );
            if stats(conn, &w).await?.0 >= p.recovery_flows {
                let subject = account_subject(&me.aggregate_id);
                let window_ms = p.recovery_window_s * 1000;
                raise(
                    this,
                    conn,
                    event,
                    Rule::RecoveryBurst,
                    &subject,
                    vec![me],
                    Some(&w),
                    window_ms,
                )
                .await?;
            }
        }
        AccountFact::CodeExhausted { .. } => {
            signal(conn, EXHAUSTED, &me, None).await?;
            let w = Window::new(
                EXHAUSTED,
                Filter::Aggregate(me.aggregate_id.clone()),
                me.at_ms,
                p.recovery_window_s,
            );
            if stats(conn, &w).await?.0 >= p.code_exhausted {
                let subject = account_subject(&me.aggregate_id);
                raise(
                    this,
                    conn,
                    event,
                    Rule::CodeGuessing,
                    &subject,
                    vec![me],
                    Some(&w),
                    p.repeat_window_s * 1000,
                )
                .await?;
            }
        }
        AccountFact::SecurityKeyCounterRegressed { .. } => {
            let subject = account_subject(&me.aggregate_id);
            raise(
                this,
                conn,
                event,
                Rule::WebauthnCounterRegression,
                &subject,
                vec![me],
                None,
                p.repeat_window_s.saturating_mul(1000),
            )
            .await?;
        }
        AccountFact::AccountLocked { .. } => {
            signal(conn, LOCK, &me, None).await?;
            let w = Window::new(LOCK, Filter::All, me.at_ms, p.lockout_storm_window_s);
            if stats(conn, &w).await?.1 >= p.lockout_storm_accounts {
                raise(
                    this,
                    conn,
                    event,
                    Rule::LockoutStorm,
                    "global",
                    vec![me],
                    Some(&w),
                    p.lockout_storm_window_s * 1000,
                )
                .await?;
            }
        }
        _ => {}
    }
    Ok(())
}

async fn failure(
    this: &AlertsProjection,
    conn: &mut AnyConnection,
    event: &StoredEvent,
    me: &Evidence,
    context: &RequestContext,
) -> Result<(), StoreError> {
    let p = &this.policy;
    let ip = context.ip.as_deref();
    signal(conn, FAIL, me, ip).await?;

    // Brute force: one account (or unknown identifier).
    let w = Window::new(
        FAIL,
        Filter::Aggregate(me.aggregate_id.clone()),
        me.at_ms,
        p.brute_force_window_s,
    );
    if stats(conn, &w).await?.0 >= p.brute_force_failures {
        let subject = account_subject(&me.aggregate_id);
        raise(
            this,
            conn,
            event,
            Rule::BruteForce,
            &subject,
            vec![me.clone()],
            Some(&w),
            p.brute_force_window_s * 1000,
        )
        .await?;
    }

    // Credential stuffing: one IP, and its network, against many identifiers.
    if let Some(ip) = ip {
        let by_ip = Window::new(
            FAIL,
            Filter::Ip(ip.to_string()),
            me.at_ms,
            p.stuffing_window_s,
        );
        if stats(conn, &by_ip).await?.1 >= p.stuffing_ip_identifiers {
            raise(
                this,
                conn,
                event,
                Rule::CredentialStuffing,
                &format!("ip:{ip}"),
                vec![me.clone()],
                Some(&by_ip),
                p.stuffing_window_s * 1000,
            )
            .await?;
        }
        if let Some(net) = network(ip) {
            let by_net = Window::new(
                FAIL,
                Filter::Net(net.clone()),
                me.at_ms,
                p.stuffing_window_s,
            );
            if stats(conn, &by_net).await?.1 >= p.stuffing_net_identifiers {
                raise(
                    this,
                    conn,
                    event,
                    Rule::CredentialStuffing,
                    &format!("net:{net}"),
                    vec![me.clone()],
                    Some(&by_net),
                    p.stuffing_window_s * 1000,
                )
                .await?;
            }
        }
    }

    // Password spraying: failures over many accounts from many IPs, against the baseline.
    let current = Window::new(FAIL, Filter::All, me.at_ms, p.spray_window_s);
    let (failures, accounts, ips) = stats(conn, &current).await?;
    if failures >= p.spray_min_failures
        && accounts >= p.spray_min_accounts
        && ips >= p.spray_min_ips
    {
        let window_ms = p.spray_window_s.saturating_mul(1000);
        let before = Window {
            signal: FAIL,
            filter: Filter::All,
            from_ms: current
                .from_ms
                .saturating_sub(window_ms.saturating_mul(p.spray_baseline_windows)),
            to_ms: current.from_ms,
        };
        let baseline_total = stats(conn, &before).await?.0;
        // failures / (baseline_total / windows) >= factor, without division.
        if failures.saturating_mul(p.spray_baseline_windows)
            >= p.spray_factor.saturating_mul(baseline_total)
        {
            raise(
                this,
                conn,
                event,
                Rule::PasswordSpraying,
                "global",
                vec![me.clone()],
                Some(&current),
                window_ms,
            )
            .await?;
        }
    }
    Ok(())
}

async fn success(
    this: &AlertsProjection,
    conn: &mut AnyConnection,
    event: &StoredEvent,
    me: &Evidence,
    context: &RequestContext,
) -> Result<(), StoreError> {
    let p = &this.policy;
    let account = &me.aggregate_id;
    let subject = account_subject(account);
    // One read for what this sign-in could reveal as new; writes only for what is new.
    let device = context.device_id.as_deref();
    let ip = context.ip.as_deref();
    let rows = sqlx::query(
        "select kind from alert_known_v1
          where account_id = $1
            and (kind = 'login' or (kind = 'device' and value = $2) or (kind = 'ip' and value = $3))",
    )
    .bind(account)
    .bind(device)
    .bind(ip)
    .fetch_all(&mut *conn)
    .await?;
    let mut known = Vec::with_capacity(rows.len());
    for r in &rows {
        known.push(r.try_get::<String, _>("kind")?);
    }
    let prior = known.iter().any(|k| k == "login");
    let repeat_ms = p.repeat_window_s.saturating_mul(1000);
    for (kind, value, rule) in [
        ("device", device, Rule::NewDeviceSignIn),
        ("ip", ip, Rule::NewIpSignIn),
    ] {
        let Some(value) = value else { continue };
        if known.iter().any(|k| k == kind) {
            continue;
        }
        if prior {
            raise(
                this,
                conn,
                event,
                rule,
                &subject,
                vec![me.clone()],
                None,
                repeat_ms,
            )
            .await?;
        }
        remember(conn, account, kind, value).await?;
    }
    if !prior {
        remember(conn, account, "login", "").await?;
    }

    // A sign-in consumes the mark of the last reset or unlock.
    let mark = sqlx::query(
        "delete from alert_recovery_marks_v1 where account_id = $1 returning sequence, at_ms",
    )
    .bind(account)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(mark) = mark {
        let mark = Evidence {
            aggregate_id: account.clone(),
            sequence: mark.try_get("sequence")?,
            at_ms: mark.try_get("at_ms")?,
        };
        if me.at_ms - mark.at_ms <= p.after_recovery_window_s.saturating_mul(1000) {
            raise(
                this,
                conn,
                event,
                Rule::SignInAfterRecovery,
                &subject,
                vec![mark, me.clone()],
                None,
                repeat_ms,
            )
            .await?;
        }
    }
    Ok(())
}

async fn remember(
    conn: &mut AnyConnection,
    account: &str,
    kind: &str,
    value: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into alert_known_v1 (account_id, kind, value) values ($1, $2, $3)
         on conflict do nothing",
    )
    .bind(account)
    .bind(kind)
    .bind(value)
    .execute(conn)
    .await?;
    Ok(())
}
