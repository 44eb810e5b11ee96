//! The shared given/when/then of the aggregate's tests: a fixed clock, a fake hasher, facts
//! for the `given` history, commands for the `when`, and `run`, which yields the `then` (the new
//! facts or the error).
use super::*;

pub(super) type AccountTestFramework = TestFramework<Account>;

/// Deterministic stand-in for argon2: `fake$<password>`; hashes starting `old$` need a rehash.
pub(super) struct FakeHasher;

impl PasswordHasher for FakeHasher {
    fn hash<'a>(
        &'a self,
        password: &'a SecretString,
    ) -> BoxFuture<'a, Result<PasswordHash, HashError>> {
        Box::pin(async move { Ok(PasswordHash(format!("fake${}", password.expose_secret()))) })
    }
    fn verify<'a>(
        &'a self,
        password: &'a SecretString,
        hash: Option<&'a PasswordHash>,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            hash.is_some_and(|h| {
                h.0.split_once('$').map(|(_, p)| p) == Some(password.expose_secret())
            })
        })
    }
    fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        hash.0.starts_with("old$")
    }
}

pub(super) const PASSWORD: &str = "correct horse battery";

pub(super) fn services() -> AccountServices {
    AccountServices {
        devices: Default::default(),
        hasher: Arc::new(FakeHasher),
        lockout: LockoutPolicy::default(),
        sessions: SessionPolicy::default(),
        codes: crate::policy::CodePolicy::default(),
        cooldowns: crate::policy::CooldownPolicy::default(),
        // Most behaviours here start from a registered account whose email is not verified;
        // the sign-in rule for verified contacts has its own tests (`tests/contacts.rs`).
        contacts: crate::policy::ContactPolicy {
            require_verified_for_sign_in: false,
            ..Default::default()
        },
    }
}

pub(super) fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + Duration::minutes(minutes)
}

pub(super) fn ctx() -> RequestContext {
    RequestContext::new(Some("192.0.2.1".into()), Some("test-agent".into()), None)
}

pub(super) fn sid(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// Wraps facts into a correctly chained history.
pub(super) fn history(facts: Vec<(DateTime<Utc>, AccountFact)>) -> Vec<AccountEvent> {
    let mut state = Account::default();
    facts
        .into_iter()
        .map(|(at, fact)| {
            let event = AccountEvent {
                at,
                prev: state.chain_head().clone(),
                fact,
            };
            state.apply(event.clone());
            event
        })
        .collect()
}

pub(super) fn registered_with(hash: &str) -> (DateTime<Utc>, AccountFact) {
    (
        t(0),
        AccountFact::AccountRegistered {
            email: Some(SealedContact {
                sealed: "sealed".into(),
                lookup: "lookup".into(),
            }),
            phone: None,
            password_hash: PasswordHash(hash.into()),
            context: ctx(),
        },
    )
}

pub(super) fn registered() -> (DateTime<Utc>, AccountFact) {
    registered_with(&format!("fake${PASSWORD}"))
}

pub(super) fn failed(at: DateTime<Utc>, n: u32) -> (DateTime<Utc>, AccountFact) {
    (
        at,
        AccountFact::LoginFailed {
            door: Default::default(),
            reason: LoginFailureReason::WrongPassword,
            consecutive_failures: n,
            context: ctx(),
        },
    )
}

pub(super) fn locked(
    at: DateTime<Utc>,
    until: DateTime<Utc>,
    level: u32,
) -> (DateTime<Utc>, AccountFact) {
    (
        at,
        AccountFact::AccountLocked {
            door: Default::default(),
            until,
            level,
            failed_attempts: 5,
        },
    )
}

pub(super) fn started(at: DateTime<Utc>, id: Uuid) -> (DateTime<Utc>, AccountFact) {
    started_on(at, id, None)
}

/// A session opened at `at` through the trusted device `device_id` (`None`: before devices).
pub(super) fn started_on(
    at: DateTime<Utc>,
    id: Uuid,
    device_id: Option<Uuid>,
) -> (DateTime<Utc>, AccountFact) {
    (
        at,
        AccountFact::SessionStarted {
            session_id: id,
            token_hash: format!("hash-{id}"),
            context: ctx(),
            expires_at: at + Duration::hours(12),
            idle_expires_at: at + Duration::minutes(30),
            device_id,
        },
    )
}

/// What a sign-in through the untrusted door opens: the device trusted, then the session.
pub(super) fn signed_in(at: DateTime<Utc>, id: Uuid) -> Vec<AccountFact> {
    vec![
        AccountFact::DeviceTrusted {
            device_id: Uuid::nil(),
            token_hash: "device-hash".into(),
            expires_at: at + Duration::days(180),
            context: ctx(),
        },
        started_on(at, id, Some(Uuid::nil())).1,
    ]
}

pub(super) fn login(password: &str, at: DateTime<Utc>, session: Uuid) -> AccountCommand {
    AccountCommand::AttemptLogin(AttemptLogin {
        device: None,
        lookup: None,
        password: SecretString::from(password.to_string()),
        grant: SessionGrant {
            device: crate::account::DeviceGrant {
                device_id: Uuid::nil(),
                token_hash: "device-hash".into(),
            },
            session_id: session,
            token_hash: format!("hash-{session}"),
        },
        at,
        context: ctx(),
    })
}

/// A proof with the password only.
pub(super) fn by_password(password: &str) -> Proof {
    Proof {
        password: Some(SecretString::from(password.to_string())),
        ..Proof::default()
    }
}

/// A proof with the password and a second factor.
pub(super) fn by_password_and(password: &str, factor: MfaProof) -> Proof {
    Proof {
        factor: Some(factor),
        ..by_password(password)
    }
}

/// A proof with a second factor only.
pub(super) fn by_factor(factor: MfaProof) -> Proof {
    Proof {
        factor: Some(factor),
        ..Proof::default()
    }
}

/// A proof with the requesting session only.
pub(super) fn by_session(session_id: Uuid) -> Proof {
    Proof {
        session_id: Some(session_id),
        ..Proof::default()
    }
}

/// Fact names, to compare shapes.
pub(super) fn names(facts: &[AccountFact]) -> Vec<&'static str> {
    facts.iter().map(|f| f.name()).collect()
}

pub(super) fn facts_of(events: Vec<AccountEvent>) -> Vec<AccountFact> {
    events.into_iter().map(|e| e.fact).collect()
}

pub(super) fn run(
    given: Vec<(DateTime<Utc>, AccountFact)>,
    when: AccountCommand,
) -> Result<Vec<AccountFact>, AccountError> {
    AccountTestFramework::with(services())
        .given(history(given))
        .when(when)
        .inspect_result()
        .map(facts_of)
}
