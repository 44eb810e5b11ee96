//! One contract, two stores: PostgreSQL and the embedded SQLite file must both append with
//! optimistic concurrency, load aggregates, retry conflicts, and deliver the global stream in
//! order without skipping an event that commits late.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use cqrs_es::{AggregateError, EventStore};
use gatehouse_api::hasher::Argon2Hasher;
use gatehouse_domain::chain::ChainLink;
use gatehouse_domain::context::RequestContext;
use gatehouse_domain::password::Argon2Settings;
use gatehouse_domain::policy::{LockoutPolicy, SessionPolicy};
use gatehouse_domain::{
    Account, AccountCommand, AccountEvent, AccountFact, AccountServices, AttemptLogin, SessionGrant,
};
use gatehouse_store::{AggregateStore, CommandExecutor};
use gatehouse_store::{Store, StreamPosition};
use secrecy::SecretString;
use sqlx::Connection as _;

use super::support::TestDb;

fn services() -> AccountServices {
    let settings = Argon2Settings {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
    AccountServices {
        devices: Default::default(),
        hasher: Arc::new(Argon2Hasher::new(settings, 2).unwrap()),
        // A high threshold keeps every attempt a checked failure in these tests.
        lockout: LockoutPolicy {
            threshold: 1000,
            ..LockoutPolicy::default()
        },
        sessions: SessionPolicy::default(),
        codes: Default::default(),
        cooldowns: Default::default(),
        contacts: Default::default(),
    }
}

fn executor(store: &Store) -> CommandExecutor<Account> {
    CommandExecutor::new(AggregateStore::new(store, Vec::new()), services())
}

fn failed_login() -> AccountCommand {
    AccountCommand::AttemptLogin(AttemptLogin {
        device: None,
        lookup: None,
        password: SecretString::from("not the password"),
        grant: SessionGrant {
            device: gatehouse_domain::DeviceGrant {
                device_id: uuid::Uuid::nil(),
                token_hash: "device-hash".into(),
            },
            session_id: uuid::Uuid::new_v4(),
            token_hash: "00".into(),
        },
        at: Utc::now(),
        context: RequestContext::default(),
    })
}

fn note() -> AccountEvent {
    AccountEvent {
        at: Utc::now(),
        prev: ChainLink::default(),
        fact: AccountFact::DuplicateRegistrationAttempted {
            context: RequestContext::default(),
        },
    }
}

async fn embedded() -> (Store, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-contract-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let store = Store::open_embedded(&dir).await.unwrap();
    store.migrate().await.unwrap();
    (store, dir)
}

async fn append_and_load(store: Store) {
    let accounts = executor(&store);
    let done = accounts
        .execute("acct-a", failed_login, HashMap::new())
        .await
        .unwrap();
    assert_eq!(done.events.len(), 1);
    let done = accounts
        .execute("acct-a", failed_login, HashMap::new())
        .await
        .unwrap();
    assert_eq!(done.events[0].sequence, 2);
    let loaded = accounts.load("acct-a").await.unwrap();
    assert_eq!(loaded.consecutive_failures(), 2);
    assert_eq!(accounts.events("acct-a").await.unwrap().len(), 2);
    // A fresh aggregate loads empty.
    assert_eq!(accounts.events("nobody").await.unwrap().len(), 0);
}

async fn optimistic_concurrency(store: Store) {
    let raw = AggregateStore::<Account>::new(&store, Vec::new());
    let mut first = raw.load_aggregate("acct-b").await.unwrap();
    let mut second = raw.load_aggregate("acct-b").await.unwrap();
    raw.append(vec![note()], &mut first, HashMap::new())
        .await
        .unwrap();
    let conflict = raw.append(vec![note()], &mut second, HashMap::new()).await;
    assert!(
        matches!(conflict, Err(AggregateError::AggregateConflict)),
        "second writer at the same version must conflict"
    );
    assert_eq!(raw.load_events("acct-b").await.unwrap().len(), 1);
}

/// Two executors stand for two server processes: their locks do not see each other, so only
/// the store's unique key serialises them; every command must still land exactly once.
async fn conflicts_are_retried_not_dropped(store: Store) {
    let one = Arc::new(executor(&store));
    let two = Arc::new(executor(&store));
    let mut tasks = Vec::new();
    for i in 0..30 {
        let ex = if i % 2 == 0 { one.clone() } else { two.clone() };
        tasks.push(tokio::spawn(async move {
            ex.execute("acct-c", failed_login, HashMap::new())
                .await
                .is_ok()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    let events = one.events("acct-c").await.unwrap();
    assert_eq!(events.len(), 30);
    let sequences: Vec<usize> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=30).collect::<Vec<_>>());
    assert_eq!(one.load("acct-c").await.unwrap().consecutive_failures(), 30);
}

/// Writers on many aggregates while a reader tails the stream in small batches: the reader sees
/// every event exactly once, in increasing position.
async fn stream_misses_nothing_under_concurrent_writers(store: Store) {
    let accounts = Arc::new(executor(&store));
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let accounts = accounts.clone();
            tokio::spawn(async move {
                for _ in 0..15 {
                    accounts
                        .execute(&format!("stream-{w}"), failed_login, HashMap::new())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut position = StreamPosition::default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while seen.len() < 90 {
        assert!(
            std::time::Instant::now() < deadline,
            "reader stalled at {} events",
            seen.len()
        );
        let batch = store.read_stream(position, 7).await.unwrap();
        for event in &batch {
            assert!(event.position > position, "stream went backwards");
            position = event.position;
            assert!(
                seen.insert((event.aggregate_id.clone(), event.sequence)),
                "event delivered twice"
            );
        }
        if batch.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(store.read_stream(position, 100).await.unwrap().is_empty());
    assert_eq!(seen.len(), 90);
    // Lag as /metrics reports it: everything from the start, nothing from the end.
    assert_eq!(
        store.count_after(StreamPosition::default()).await.unwrap(),
        90
    );
    assert_eq!(store.count_after(position).await.unwrap(), 0);
}

/// Two executors with almost no cache (one keeps no state, the other one state and so forgets
/// it whenever another aggregate comes) take turns on three aggregates: each command still
/// decides on the stored state, so every count and sequence is exact.
async fn small_caches_decide_on_stored_state(store: Store) {
    let none = executor(&store).with_cache_capacity(0);
    let one = executor(&store).with_cache_capacity(1);
    for round in 0..4 {
        for aggregate in ["cache-a", "cache-b", "cache-c"] {
            let ex = if round % 2 == 0 { &none } else { &one };
            ex.execute(aggregate, failed_login, HashMap::new())
                .await
                .unwrap();
        }
    }
    for aggregate in ["cache-a", "cache-b", "cache-c"] {
        for ex in [&none, &one] {
            assert_eq!(ex.load(aggregate).await.unwrap().consecutive_failures(), 4);
        }
        let sequences: Vec<usize> = none
            .events(aggregate)
            .await
            .unwrap()
            .iter()
            .map(|e| e.sequence)
            .collect();
        assert_eq!(sequences, vec![1, 2, 3, 4]);
    }
}

const PASSWORD: &str = "correct horse battery staple";

fn register() -> AccountCommand {
    let password = gatehouse_domain::password::PasswordPolicy::default()
        .check(PASSWORD, &[])
        .unwrap();
    AccountCommand::RegisterAccount(gatehouse_domain::RegisterAccount {
        email: Some(gatehouse_domain::contact::SealedContact {
            sealed: "sealed".into(),
            lookup: "lookup".into(),
        }),
        phone: None,
        verifications: Vec::new(),
        sms_withheld: None,
        password,
        at: Utc::now(),
        context: RequestContext::default(),
    })
}

/// Counts password verifications (the expensive part of a decision).
struct CountingHasher {
    inner: Argon2Hasher,
    verifications: std::sync::atomic::AtomicUsize,
}

impl gatehouse_domain::password::PasswordHasher for CountingHasher {
    fn hash<'a>(
        &'a self,
        password: &'a SecretString,
    ) -> futures::future::BoxFuture<
        'a,
        Result<gatehouse_domain::password::PasswordHash, gatehouse_domain::password::HashError>,
    > {
        self.inner.hash(password)
    }

    fn verify<'a>(
        &'a self,
        password: &'a SecretString,
        hash: Option<&'a gatehouse_domain::password::PasswordHash>,
    ) -> futures::future::BoxFuture<'a, bool> {
        self.verifications
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.verify(password, hash)
    }

    fn needs_rehash(&self, hash: &gatehouse_domain::password::PasswordHash) -> bool {
        self.inner.needs_rehash(hash)
    }
}

fn counting_hasher() -> Arc<CountingHasher> {
    Arc::new(CountingHasher {
        inner: Argon2Hasher::new(
            Argon2Settings {
                memory_kib: 256,
                iterations: 1,
                parallelism: 1,
            },
            2,
        )
        .unwrap(),
        verifications: Default::default(),
    })
}

fn sign_in_as(session_id: uuid::Uuid) -> impl Fn() -> AccountCommand {
    move || {
        let AccountCommand::AttemptLogin(mut attempt) = failed_login() else {
            unreachable!()
        };
        attempt.password = SecretString::from(PASSWORD);
        attempt.grant.session_id = session_id;
        AccountCommand::AttemptLogin(attempt)
    }
}

/// Services with sign-in open to unverified contacts and `hasher` doing the hashing.
fn open_services(hasher: Arc<CountingHasher>) -> AccountServices {
    AccountServices {
        contacts: gatehouse_domain::policy::ContactPolicy {
            require_verified_for_sign_in: false,
            ..Default::default()
        },
        hasher,
        ..services()
    }
}

/// An executor that has been an aggregate's only writer decides first on its cached state
/// without reading what followed it; another process (a second executor) moves the state on
/// behind its back. A decision that writes must then conflict and be taken again, and one that
/// writes nothing (a refusal) must be checked against the store before it is answered: a stale
/// cache never answers.
async fn stale_caches_never_answer(store: Store) {
    let hasher = counting_hasher();
    let a: CommandExecutor<Account> = CommandExecutor::new(
        AggregateStore::new(&store, Vec::new()),
        open_services(hasher.clone()),
    );
    let b: CommandExecutor<Account> = CommandExecutor::new(
        AggregateStore::new(&store, Vec::new()),
        open_services(hasher.clone()),
    );
    a.execute("stale", register, HashMap::new()).await.unwrap();
    // A second command whose read finds nothing new: `a` now trusts its cache.
    a.execute("stale", failed_login, HashMap::new())
        .await
        .unwrap();
    // `b` signs in behind `a`'s back, then trusts its own cache the same way.
    let session_id = uuid::Uuid::new_v4();
    let sign_in = sign_in_as(session_id);
    let signed_in: gatehouse_store::Executed<Account> =
        b.execute("stale", &sign_in, HashMap::new()).await.unwrap();
    assert!(signed_in
        .events
        .iter()
        .any(|e| matches!(e.payload.fact, AccountFact::SessionStarted { .. })));
    b.execute("stale", failed_login, HashMap::new())
        .await
        .unwrap();
    let end = || AccountCommand::EndSession {
        session_id,
        by_session: session_id,
        at: Utc::now(),
        context: RequestContext::default(),
    };
    // A refusal decided on a stale cache: `a` does not know the session and would refuse; it
    // must decide again on the stored state, where the session is live, and end it.
    let ended = a.execute("stale", end, HashMap::new()).await.unwrap();
    assert_eq!(ended.events.len(), 1, "refused on a stale cache");
    assert!(matches!(
        ended.events[0].payload.fact,
        AccountFact::SessionEnded { .. }
    ));
    // A write decided on a stale cache: `b` still sees the session live and would end it a
    // second time; the append conflicts and the decision on the stored state refuses.
    let again = b.execute("stale", end, HashMap::new()).await;
    assert!(
        matches!(again, Err(gatehouse_store::ExecuteError::Refused(_))),
        "a session ended twice on a stale cache"
    );
    // Writes on stale caches from both sides land once each, in order, after the events they
    // did not know of.
    for round in 0..6 {
        let ex = if round % 3 == 0 { &a } else { &b };
        ex.execute("stale", failed_login, HashMap::new())
            .await
            .unwrap();
    }
    let events = a.events("stale").await.unwrap();
    let sequences: Vec<usize> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=sequences.len()).collect::<Vec<_>>());
    let ends = events
        .iter()
        .filter(|e| matches!(e.payload.fact, AccountFact::SessionEnded { .. }))
        .count();
    assert_eq!(ends, 1);
    for ex in [&a, &b] {
        // `b`'s failure after its sign-in, then the six.
        assert_eq!(ex.load("stale").await.unwrap().consecutive_failures(), 7);
    }
}

/// Where two processes take turns on an account, each reads the store before deciding (its
/// cache is not its own alone): a sign-in hashes the password once, never once on a stale
/// state and again on the stored one.
async fn turns_between_processes_hash_once(store: Store) {
    let hasher = counting_hasher();
    let a: CommandExecutor<Account> = CommandExecutor::new(
        AggregateStore::new(&store, Vec::new()),
        open_services(hasher.clone()),
    );
    let b: CommandExecutor<Account> = CommandExecutor::new(
        AggregateStore::new(&store, Vec::new()),
        open_services(hasher.clone()),
    );
    a.execute("turns", register, HashMap::new()).await.unwrap();
    // Two in a row on `a` (it trusts its cache), then turns: A A B A B A B A B.
    let mut order = vec![&a, &a];
    for _ in 0..4 {
        order.extend([&b, &a]);
    }
    for ex in &order {
        let before = hasher
            .verifications
            .load(std::sync::atomic::Ordering::SeqCst);
        let done = ex
            .execute("turns", sign_in_as(uuid::Uuid::new_v4()), HashMap::new())
            .await
            .unwrap();
        assert!(done
            .events
            .iter()
            .any(|e| matches!(e.payload.fact, AccountFact::SessionStarted { .. })));
        let spent = hasher
            .verifications
            .load(std::sync::atomic::Ordering::SeqCst)
            - before;
        assert!(spent <= 2, "a sign-in verified the password {spent} times");
    }
    // The one place a decision is taken twice: the first command on `a` after `b` first wrote
    // (the cache was still trusted). Every later turn reads first.
    assert_eq!(
        hasher
            .verifications
            .load(std::sync::atomic::Ordering::SeqCst),
        order.len() + 1
    );
}

#[tokio::test]
async fn test_postgres_turns_between_processes_hash_once() {
    turns_between_processes_hash_once(TestDb::new().await.store().await).await;
}

#[tokio::test]
async fn test_embedded_turns_between_processes_hash_once() {
    let (store, dir) = embedded().await;
    turns_between_processes_hash_once(store).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn test_postgres_stale_caches_never_answer() {
    stale_caches_never_answer(TestDb::new().await.store().await).await;
}

#[tokio::test]
async fn test_embedded_stale_caches_never_answer() {
    let (store, dir) = embedded().await;
    stale_caches_never_answer(store).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn test_postgres_small_caches_decide_on_stored_state() {
    small_caches_decide_on_stored_state(TestDb::new().await.store().await).await;
}

#[tokio::test]
async fn test_embedded_small_caches_decide_on_stored_state() {
    let (store, dir) = embedded().await;
    small_caches_decide_on_stored_state(store).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn test_postgres_append_and_load() {
    append_and_load(TestDb::new().await.store().await).await;
}

#[tokio::test]
async fn test_embedded_append_and_load() {
    append_and_load(embedded().await.0).await;
}

#[tokio::test]
async fn test_postgres_optimistic_concurrency() {
    optimistic_concurrency(TestDb::new().await.store().await).await;
}

#[tokio::test]
async fn test_embedded_optimistic_concurrency() {
    optimistic_concurrency(embedded().await.0).await;
}

#[tokio::test]
async fn test_postgres_conflicts_are_retried_not_dropped() {
    conflicts_are_retried_not_dropped(TestDb::new().await.store().await).await;
}

#[tokio::test]
async fn test_embedded_conflicts_are_retried_not_dropped() {
    conflicts_are_retried_not_dropped(embedded().await.0).await;
}

#[tokio::test]
async fn test_postgres_stream_misses_nothing_under_concurrent_writers() {
    stream_misses_nothing_under_concurrent_writers(TestDb::new().await.store().await).await;
}

#[tokio::test]
async fn test_embedded_stream_misses_nothing_under_concurrent_writers() {
    stream_misses_nothing_under_concurrent_writers(embedded().await.0).await;
}

/// Inserts a note event as aggregate `id`'s first, by hand, in an open transaction.
async fn insert_note(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         values ('Account', $1, 1, 'DuplicateRegistrationAttempted', '1.0', $2, '{}')",
    )
    .bind(id)
    .bind(serde_json::to_value(note()).unwrap())
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// A transaction whose first write is to a side table (so it has a transaction id), left open.
async fn side_write(
    pool: &sqlx::PgPool,
    projection: &str,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "insert into projection_checkpoints (projection, tx_id, position, updated_ms)
         values ($1, 0, 0, 0)",
    )
    .bind(projection)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx
}

/// The pitfall itself: a transaction that took its position early and commits late must not be
/// skipped by a reader that has already moved past a later position. Appends commit
/// concurrently: the later one commits first, and the reader sees neither until the early one
/// ended, then both, in transaction order.
#[tokio::test]
async fn test_postgres_stream_waits_for_a_late_commit() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let pool = db.pool().await;
    let mut late = pool.begin().await.unwrap();
    insert_note(&mut late, "late").await.unwrap();
    // A later transaction commits first: appends do not wait for each other.
    executor(&store)
        .execute("early", failed_login, HashMap::new())
        .await
        .unwrap();
    let visible = store
        .read_stream(StreamPosition::default(), 100)
        .await
        .unwrap();
    assert!(
        visible.is_empty(),
        "nothing may be read past a transaction still in flight: {visible:?}"
    );
    assert_eq!(store.stream_head().await.unwrap(), None);
    assert_eq!(
        store.count_after(StreamPosition::default()).await.unwrap(),
        0
    );
    late.commit().await.unwrap();
    // Only appenders of this database hold the reader back; other tests' appends run in other
    // databases, so one read after the commit sees both.
    let visible = store
        .read_stream(StreamPosition::default(), 100)
        .await
        .unwrap();
    let ids: Vec<String> = visible.iter().map(|e| e.aggregate_id.clone()).collect();
    assert_eq!(ids, ["late", "early"]);
}

/// An account's snapshot (sessions and devices: kilobytes of JSON) is stored compressed with lz4
/// (migration 0180, the cheaper compression for the database), and a cold load starts from it
/// and ends in the same state as folding every event.
#[tokio::test]
async fn test_postgres_snapshots_are_lz4_and_load_back() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let accounts: CommandExecutor<Account> = CommandExecutor::new(
        AggregateStore::new(&store, Vec::new()),
        open_services(counting_hasher()),
    );
    accounts
        .execute("big", register, HashMap::new())
        .await
        .unwrap();
    let mut sequence = 0;
    while sequence <= gatehouse_store::SNAPSHOT_EVERY {
        let done = accounts
            .execute("big", sign_in_as(uuid::Uuid::new_v4()), HashMap::new())
            .await
            .unwrap();
        sequence = done.events.last().map_or(sequence, |e| e.sequence);
    }
    let pool = db.pool().await;
    let (last, compression): (i64, Option<String>) = sqlx::query_as(
        "select last_sequence, pg_column_compression(payload)::text from snapshots
          where aggregate_type = 'Account' and aggregate_id = 'big'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(last >= gatehouse_store::SNAPSHOT_EVERY as i64);
    assert_eq!(compression.as_deref(), Some("lz4"));

    let cold = AggregateStore::<Account>::new(&store, Vec::new());
    let loaded = cold.load_aggregate("big").await.unwrap();
    assert!(
        loaded.current_snapshot.is_some(),
        "the load started from the snapshot"
    );
    let mut folded = Account::default();
    for envelope in cold.load_events("big").await.unwrap() {
        cqrs_es::Aggregate::apply(&mut folded, envelope.payload);
    }
    assert_eq!(
        serde_json::to_value(&loaded.aggregate).unwrap(),
        serde_json::to_value(&folded).unwrap()
    );
}

/// A write that is not the first of its transaction could commit after an append that took the
/// lock later: it is refused, and nothing is stored.
#[tokio::test]
async fn test_postgres_events_are_the_first_write_of_their_transaction() {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let mut tx = side_write(&pool, "not-a-projection").await;
    let refused = insert_note(&mut tx, "second-write").await;
    assert!(
        refused.is_err(),
        "an append after another write must be refused"
    );
    drop(tx);
    let stored: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

/// Issue #23, item 4: a long transaction elsewhere in the cluster (another database, or this one
/// writing something other than events) holds no reader back. The stream used to be read below
/// the cluster-wide oldest running transaction (`pg_snapshot_xmin`), and this read came back
/// empty until those transactions ended.
#[tokio::test]
async fn test_postgres_stream_is_not_held_back_by_long_transactions_elsewhere() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let pool = db.pool().await;
    // Another database of the same cluster: a transaction with an id, left open.
    let mut elsewhere = sqlx::PgConnection::connect(&super::support::admin_url())
        .await
        .unwrap();
    sqlx::query("begin").execute(&mut elsewhere).await.unwrap();
    sqlx::query("select pg_current_xact_id()")
        .execute(&mut elsewhere)
        .await
        .unwrap();
    // This database: a transaction that wrote a side table, left open.
    let here = side_write(&pool, "long-transaction").await;

    executor(&store)
        .execute("after-them", failed_login, HashMap::new())
        .await
        .unwrap();
    // A transaction elsewhere that ends between the read's snapshot and its look at the locks
    // holds one read back (never skipped, read next time); the two long ones stay open
    // throughout, so reads that stay empty would be theirs.
    let mut visible = Vec::new();
    for _ in 0..50 {
        visible = store
            .read_stream(StreamPosition::default(), 100)
            .await
            .unwrap();
        if !visible.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let ids: Vec<String> = visible.iter().map(|e| e.aggregate_id.clone()).collect();
    assert_eq!(ids, ["after-them"]);
    assert_eq!(
        store.stream_head().await.unwrap(),
        Some(visible[0].position)
    );
    assert_eq!(
        store.count_after(StreamPosition::default()).await.unwrap(),
        1
    );

    here.rollback().await.unwrap();
    sqlx::query("rollback")
        .execute(&mut elsewhere)
        .await
        .unwrap();
}

#[tokio::test]
async fn test_events_are_append_only_on_both_stores() {
    let db = TestDb::new().await;
    let pg = db.store().await;
    executor(&pg)
        .execute("fixed", failed_login, HashMap::new())
        .await
        .unwrap();
    let pool = db.pool().await;
    assert!(sqlx::query("update events set payload = '{}'")
        .execute(&pool)
        .await
        .is_err());
    assert!(sqlx::query("delete from events")
        .execute(&pool)
        .await
        .is_err());

    let (sqlite, _dir) = embedded().await;
    executor(&sqlite)
        .execute("fixed", failed_login, HashMap::new())
        .await
        .unwrap();
    assert!(sqlx::query("update events set payload = '{}'")
        .execute(sqlite.any())
        .await
        .is_err());
    assert!(sqlx::query("delete from events")
        .execute(sqlite.any())
        .await
        .is_err());
}

#[tokio::test]
async fn test_each_aggregate_history_is_hash_chained() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let accounts = executor(&store);
    for _ in 0..25 {
        accounts
            .execute("chained", failed_login, HashMap::new())
            .await
            .unwrap();
    }
    let pool = db.pool().await;
    let payloads: Vec<serde_json::Value> = sqlx::query_scalar(
        "select payload from events where aggregate_id = 'chained' order by sequence",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(payloads.len(), 25);
    gatehouse_domain::chain::verify(&payloads).unwrap();
    // Tampering with one stored payload breaks the chain at the next event.
    let mut tampered = payloads.clone();
    tampered[10]["fact"]["LoginFailed"]["consecutive_failures"] = serde_json::json!(0);
    assert!(gatehouse_domain::chain::verify(&tampered).is_err());
}
