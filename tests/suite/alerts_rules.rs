//! Alert rules over scripted attack streams: events appended to a real PostgreSQL store, folded
//! by the real projections runner, then the exact alerts and their evidence checked, and the
//! read model compared with a rebuild from zero.
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use gatehouse_domain::account::{LoginFailureReason, UnlockReason};
use gatehouse_domain::chain::ChainLink;
use gatehouse_domain::context::RequestContext;
use gatehouse_domain::policy::FlowKind;
use gatehouse_domain::{AccountEvent, AccountFact};
use gatehouse_projections::alerts::{AlertPolicy, AlertsProjection};
use gatehouse_projections::ProjectionRunner;
use gatehouse_store::{Store, StreamPosition};
use sqlx::PgPool;
use uuid::Uuid;

use super::support::TestDb;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000, 0).unwrap()
}

fn ctx(ip: &str, device: Option<&str>) -> RequestContext {
    RequestContext::new(
        Some(ip.to_string()),
        Some("Mozilla/5.0".into()),
        device.map(str::to_string),
    )
}

fn failed(ip: &str, reason: LoginFailureReason) -> AccountFact {
    AccountFact::LoginFailed {
        door: Default::default(),
        reason,
        consecutive_failures: 1,
        context: ctx(ip, None),
    }
}

fn succeeded(ip: &str, device: &str) -> AccountFact {
    AccountFact::LoginSucceeded {
        door: Default::default(),
        method: Default::default(),
        session_id: Uuid::new_v4(),
        context: ctx(ip, Some(device)),
        familiar: false,
    }
}

/// Appends scripted events in order; keeps each aggregate's next sequence.
struct Script {
    pool: PgPool,
    sequences: std::collections::HashMap<String, i64>,
}

impl Script {
    async fn new(db: &TestDb) -> Self {
        Self {
            pool: db.pool().await,
            sequences: Default::default(),
        }
    }

    /// Appends one fact; returns its (aggregate, sequence).
    async fn append(
        &mut self,
        aggregate: &str,
        at: DateTime<Utc>,
        fact: AccountFact,
    ) -> (String, i64) {
        let seq = self.sequences.entry(aggregate.to_string()).or_insert(0);
        *seq += 1;
        let event = AccountEvent {
            at,
            prev: ChainLink::default(),
            fact,
        };
        sqlx::query(
            "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             values ('Account', $1, $2, $3, '1.0', $4::json, '{}'::json)",
        )
        .bind(aggregate)
        .bind(*seq)
        .bind(event.fact.name())
        .bind(serde_json::to_string(&event).unwrap())
        .execute(&self.pool)
        .await
        .unwrap();
        (aggregate.to_string(), *seq)
    }
}

fn runner(store: &Store, policy: AlertPolicy) -> ProjectionRunner {
    ProjectionRunner::new(store.clone(), vec![Arc::new(AlertsProjection::new(policy))])
        .with_batch(97)
}

/// (rule, subject, status, count) of every alert, sorted.
async fn alerts(pool: &PgPool) -> Vec<(String, String, String, i64)> {
    sqlx::query_as("select rule, subject, status, count from alerts_v1 order by rule, subject")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Evidence of the alert of `rule` on `subject`, oldest first.
async fn evidence(pool: &PgPool, rule: &str, subject: &str) -> Vec<(String, i64)> {
    sqlx::query_as(
        "select e.aggregate_id, e.sequence from alert_evidence_v1 e join alerts_v1 a on a.id = e.alert_id
          where a.rule = $1 and a.subject = $2 order by e.at_ms, e.aggregate_id, e.sequence",
    )
    .bind(rule)
    .bind(subject)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Every row of every alerts table.
pub async fn dump(pool: &PgPool) -> Vec<String> {
    super::support::table_rows(pool, &super::support::ALERT_TABLES).await
}

/// The last event appended, whether or not readers may see it yet.
pub async fn last_event(pool: &PgPool) -> StreamPosition {
    let (tx, pos): (i64, i64) = sqlx::query_as(
        "select tx_id::text::bigint, global_position from events
          order by tx_id desc, global_position desc limit 1",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    StreamPosition { tx, pos }
}

/// Runs `runner` until `projection` has applied every event appended so far. The stream shows
/// an event only once every older transaction of the cluster has ended, and other tests run
/// transactions at the same time, so one pass may stop short.
pub async fn settle(runner: &ProjectionRunner, pool: &PgPool, projection: &str) {
    let target = last_event(pool).await;
    for _ in 0..800 {
        runner.catch_up().await.unwrap();
        if runner.checkpoint(projection).await.unwrap() >= target {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{projection} did not reach {target:?}");
}

/// Runs `runner` until every one of its read models has applied every event appended so far
/// (see [`settle`]: a test running beside this one can hold the stream back for a moment, so a
/// single rebuild or catch-up may stop short).
pub async fn settle_every(runner: &ProjectionRunner, pool: &PgPool) {
    let names: Vec<&str> = runner
        .lag()
        .await
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for name in names {
        settle(runner, pool, name).await;
    }
}

async fn fold(store: &Store, pool: &PgPool, policy: &AlertPolicy) {
    settle(&runner(store, policy.clone()), pool, "alerts_v1").await;
}

async fn assert_rebuild_equals_live(store: &Store, pool: &PgPool, policy: AlertPolicy) {
    let live = dump(pool).await;
    assert!(!live.is_empty());
    let runner = runner(store, policy);
    runner.rebuild().await.unwrap();
    settle(&runner, pool, "alerts_v1").await;
    assert_eq!(live, dump(pool).await);
}

#[tokio::test]
async fn test_stuffing_from_one_ip_over_200_identifiers() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let mut s = Script::new(&db).await;
    let mut attempts = Vec::new();
    for i in 0..200 {
        attempts.push(
            s.append(
                &format!("unknown-stuffed{i:03}"),
                t0() + Duration::seconds(i),
                failed("203.0.113.7", LoginFailureReason::UnknownIdentifier),
            )
            .await,
        );
    }
    let policy = AlertPolicy::default();
    fold(&store, &s.pool, &policy).await;

    assert_eq!(
        alerts(&s.pool).await,
        vec![
            (
                "credential_stuffing".into(),
                "ip:203.0.113.7".into(),
                "open".into(),
                200
            ),
            (
                "credential_stuffing".into(),
                "net:203.0.113.0/24".into(),
                "open".into(),
                200
            ),
        ]
    );
    assert_eq!(
        evidence(&s.pool, "credential_stuffing", "ip:203.0.113.7").await,
        attempts
    );
    assert_eq!(
        evidence(&s.pool, "credential_stuffing", "net:203.0.113.0/24").await,
        attempts
    );
    let (first, last, version): (i64, i64, String) = sqlx::query_as(
        "select first_seen_ms, last_seen_ms, policy_version from alerts_v1 where subject = 'ip:203.0.113.7'",
    )
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert_eq!(first, t0().timestamp_millis());
    assert_eq!(last, (t0() + Duration::seconds(199)).timestamp_millis());
    assert_eq!(version, policy.version());
    assert_rebuild_equals_live(&store, &s.pool, policy).await;
}

#[tokio::test]
async fn test_spray_from_50_ips_against_its_baseline() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let mut s = Script::new(&db).await;
    let accounts: Vec<String> = (0..100).map(|_| Uuid::new_v4().to_string()).collect();
    // Ordinary traffic over the two hours before: a few mistyped passwords.
    for (k, minutes) in [110, 95, 70, 52, 31].iter().enumerate() {
        s.append(
            &accounts[k],
            t0() - Duration::minutes(*minutes),
            failed(
                &format!("192.0.2.{}", k + 1),
                LoginFailureReason::WrongPassword,
            ),
        )
        .await;
    }
    let mut spray = Vec::new();
    for k in 0..100i64 {
        let ip = format!("198.18.{}.10", k / 2);
        spray.push(
            s.append(
                &accounts[k as usize],
                t0() + Duration::seconds(3 * k),
                failed(&ip, LoginFailureReason::WrongPassword),
            )
            .await,
        );
    }
    let policy = AlertPolicy::default();
    fold(&store, &s.pool, &policy).await;

    assert_eq!(
        alerts(&s.pool).await,
        vec![(
            "password_spraying".into(),
            "global".into(),
            "open".into(),
            100
        )]
    );
    assert_eq!(
        evidence(&s.pool, "password_spraying", "global").await,
        spray
    );
    assert_rebuild_equals_live(&store, &s.pool, policy).await;
}

#[tokio::test]
async fn test_new_device_sign_in_and_a_person_mistyping_twice() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let mut s = Script::new(&db).await;
    let ann = Uuid::new_v4().to_string();
    let bob = Uuid::new_v4().to_string();
    let day = Duration::days(1);
    // Bob signs in, later mistypes twice and gets it right: nothing to report.
    s.append(&bob, t0(), succeeded("192.0.2.20", "bob-laptop"))
        .await;
    s.append(
        &bob,
        t0() + day,
        failed("192.0.2.20", LoginFailureReason::WrongPassword),
    )
    .await;
    s.append(
        &bob,
        t0() + day + Duration::seconds(5),
        failed("192.0.2.20", LoginFailureReason::WrongPassword),
    )
    .await;
    s.append(
        &bob,
        t0() + day + Duration::seconds(12),
        succeeded("192.0.2.20", "bob-laptop"),
    )
    .await;
    let policy = AlertPolicy::default();
    fold(&store, &s.pool, &policy).await;
    assert_eq!(alerts(&s.pool).await, vec![]);

    // Ann signs in from her laptop twice, then from a device never seen.
    s.append(&ann, t0(), succeeded("192.0.2.30", "ann-laptop"))
        .await;
    s.append(&ann, t0() + day, succeeded("192.0.2.30", "ann-laptop"))
        .await;
    let new_device = s
        .append(
            &ann,
            t0() + day * 2,
            succeeded("192.0.2.30", "unknown-phone"),
        )
        .await;
    fold(&store, &s.pool, &policy).await;
    assert_eq!(
        alerts(&s.pool).await,
        vec![(
            "new_device_sign_in".into(),
            format!("account:{ann}"),
            "open".into(),
            1
        )]
    );
    assert_eq!(
        evidence(&s.pool, "new_device_sign_in", &format!("account:{ann}")).await,
        vec![new_device]
    );
    assert_rebuild_equals_live(&store, &s.pool, policy).await;
}

#[tokio::test]
async fn test_brute_force_recovery_code_guessing_lockout_storm_and_key_counter() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let mut s = Script::new(&db).await;
    let policy = AlertPolicy {
        brute_force_failures: 4,
        recovery_flows: 3,
        lockout_storm_accounts: 3,
        ..AlertPolicy::default()
    };
    let victim = Uuid::new_v4().to_string();
    s.append(&victim, t0(), succeeded("192.0.2.40", "v-laptop"))
        .await;
    let mut brute = Vec::new();
    for i in 1..=4 {
        brute.push(
            s.append(
                &victim,
                t0() + Duration::seconds(i),
                failed("192.0.2.41", LoginFailureReason::WrongPassword),
            )
            .await,
        );
    }
    let mut flows = Vec::new();
    for i in 0..3 {
        flows.push(
            s.append(
                &victim,
                t0() + Duration::minutes(1 + i),
                AccountFact::FlowStarted {
                    flow_id: Uuid::new_v4(),
                    kind: FlowKind::ResetPassword,
                    context: ctx("192.0.2.41", None),
                },
            )
            .await,
        );
    }
    let exhausted = s
        .append(
            &victim,
            t0() + Duration::minutes(5),
            AccountFact::CodeExhausted {
                flow_id: Uuid::new_v4(),
                code_id: Uuid::new_v4(),
            },
        )
        .await;
    let unlocked = s
        .append(
            &victim,
            t0() + Duration::minutes(6),
            AccountFact::AccountUnlocked {
                reason: UnlockReason::UnlockCode,
                context: ctx("192.0.2.41", None),
            },
        )
        .await;
    let signed_in = s
        .append(
            &victim,
            t0() + Duration::minutes(7),
            succeeded("192.0.2.40", "v-laptop"),
        )
        .await;
    let mut locks = Vec::new();
    for i in 0..3 {
        locks.push(
            s.append(
                &Uuid::new_v4().to_string(),
                t0() + Duration::minutes(8) + Duration::seconds(i),
                AccountFact::AccountLocked {
                    door: Default::default(),
                    until: t0() + Duration::hours(1),
                    level: 1,
                    failed_attempts: 5,
                },
            )
            .await,
        );
    }
    let regressed = s
        .append(
            &victim,
            t0() + Duration::minutes(9),
            AccountFact::SecurityKeyCounterRegressed {
                key_id: "key-1".into(),
                context: ctx("192.0.2.40", None),
            },
        )
        .await;
    let ceiling = s
        .append(
            &victim,
            t0() + Duration::minutes(9) + Duration::seconds(1),
            AccountFact::CodeCeilingReached {
                issued: 30,
                until: t0() + Duration::hours(1),
            },
        )
        .await;
    fold(&store, &s.pool, &policy).await;
    let subject = format!("account:{victim}");
    assert_eq!(
        alerts(&s.pool).await,
        vec![
            ("brute_force".into(), subject.clone(), "open".into(), 4),
            ("code_ceiling".into(), subject.clone(), "open".into(), 1),
            ("code_guessing".into(), subject.clone(), "open".into(), 1),
            ("lockout_storm".into(), "global".into(), "open".into(), 3),
            ("recovery_burst".into(), subject.clone(), "open".into(), 3),
            (
                "sign_in_after_recovery".into(),
                subject.clone(),
                "open".into(),
                2
            ),
            (
                "webauthn_counter_regression".into(),
                subject.clone(),
                "open".into(),
                1
            ),
        ]
    );
    assert_eq!(
        evidence(&s.pool, "webauthn_counter_regression", &subject).await,
        vec![regressed]
    );
    assert_eq!(
        evidence(&s.pool, "code_ceiling", &subject).await,
        vec![ceiling]
    );
    assert_eq!(evidence(&s.pool, "brute_force", &subject).await, brute);
    assert_eq!(evidence(&s.pool, "recovery_burst", &subject).await, flows);
    assert_eq!(
        evidence(&s.pool, "code_guessing", &subject).await,
        vec![exhausted]
    );
    assert_eq!(
        evidence(&s.pool, "sign_in_after_recovery", &subject).await,
        vec![unlocked, signed_in]
    );
    let mut storm = evidence(&s.pool, "lockout_storm", "global").await;
    storm.sort();
    locks.sort();
    assert_eq!(storm, locks);
    assert_rebuild_equals_live(&store, &s.pool, policy).await;
}

/// Appends a `ThrottleWindowClosed` fact on the source's `Protection` aggregate.
async fn throttled(pool: &PgPool, source: &str, seq: i64, route: &str, start: DateTime<Utc>) {
    throttled_naming(pool, source, seq, route, start, &[]).await
}

/// The same, naming the identifiers of the refused requests.
async fn throttled_naming(
    pool: &PgPool,
    source: &str,
    seq: i64,
    route: &str,
    start: DateTime<Utc>,
    identifiers: &[String],
) {
    use gatehouse_domain::protection::{ProtectionEvent, ProtectionFact};
    let event = ProtectionEvent {
        at: start + Duration::seconds(61),
        prev: ChainLink::default(),
        fact: ProtectionFact::ThrottleWindowClosed {
            source: source.to_string(),
            route: route.to_string(),
            window_start: start,
            refused: 40,
            identifiers: identifiers.to_vec(),
        },
    };
    sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         values ('Protection', $1, $2, 'ThrottleWindowClosed', '1.0', $3::json, '{}'::json)",
    )
    .bind(format!("protection:ip:{source}"))
    .bind(seq)
    .bind(serde_json::to_string(&event).unwrap())
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn test_an_ip_refused_in_several_windows_raises_rate_limit_abuse() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let pool = db.pool().await;
    let policy = AlertPolicy::default();
    // Two windows: below the threshold (3). Another IP's one window counts for that IP only.
    throttled(&pool, "198.51.100.7", 1, "login", t0()).await;
    throttled(&pool, "198.51.100.7", 2, "signup", t0()).await;
    throttled(&pool, "198.51.100.8", 1, "login", t0()).await;
    fold(&store, &pool, &policy).await;
    assert!(alerts(&pool).await.is_empty(), "{:?}", alerts(&pool).await);
    // The third window of the same IP within the hour raises it, with the three as evidence.
    throttled(
        &pool,
        "198.51.100.7",
        3,
        "login",
        t0() + Duration::minutes(5),
    )
    .await;
    fold(&store, &pool, &policy).await;
    let got = alerts(&pool).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].0.as_str(), got[0].1.as_str(), got[0].2.as_str()),
        ("rate_limit_abuse", "ip:198.51.100.7", "open")
    );
    let proof = evidence(&pool, "rate_limit_abuse", "ip:198.51.100.7").await;
    assert_eq!(
        proof,
        (1..=3)
            .map(|s| ("protection:ip:198.51.100.7".to_string(), s))
            .collect::<Vec<_>>()
    );
    assert_rebuild_equals_live(&store, &pool, policy).await;
}

/// Sign-ins a rate limit refused still count for credential stuffing (issue #18: the limiter
/// must not blind the detector): the identifiers a refusal window names count like the accounts
/// of failed sign-ins, distinct over the rule's window; other routes' refusals do not count.
#[tokio::test]
async fn test_refused_sign_ins_count_as_credential_stuffing_evidence() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let pool = db.pool().await;
    let policy = AlertPolicy::default();
    let ids = |range: std::ops::Range<usize>| -> Vec<String> {
        range.map(|i| format!("lookup-{i:02}")).collect()
    };
    // 15 identifiers refused from one IP: below the threshold (20). Sign-ups refused for 30
    // identifiers from another IP of the same network count for nothing.
    throttled_naming(&pool, "198.51.100.7", 1, "login", t0(), &ids(0..15)).await;
    throttled_naming(&pool, "198.51.100.9", 1, "signup", t0(), &ids(30..60)).await;
    fold(&store, &pool, &policy).await;
    assert!(alerts(&pool).await.is_empty(), "{:?}", alerts(&pool).await);
    // A later window names 10 more, 5 of them seen before: 20 distinct identifiers.
    throttled_naming(
        &pool,
        "198.51.100.7",
        2,
        "login",
        t0() + Duration::minutes(2),
        &ids(10..20),
    )
    .await;
    fold(&store, &pool, &policy).await;
    let got = alerts(&pool).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].0.as_str(), got[0].1.as_str(), got[0].2.as_str()),
        ("credential_stuffing", "ip:198.51.100.7", "open")
    );
    assert_eq!(
        evidence(&pool, "credential_stuffing", "ip:198.51.100.7").await,
        vec![("protection:ip:198.51.100.7".to_string(), 2)]
    );
    assert_rebuild_equals_live(&store, &pool, policy).await;
}
