//! Given/when/then tests of the `Account` aggregate, one behaviour each, with a fixed clock.
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::*;
use crate::chain::{self, ChainLink};
use crate::contact::SealedContact;
use crate::context::RequestContext;
use crate::password::{BoxFuture, HashError, PasswordHash, PasswordHasher, PasswordPolicy};
use crate::policy::{LockoutPolicy, SessionPolicy};

type AccountTestFramework = TestFramework<Account>;

/// Bound channels, cases in progress, challenges.
mod cases;
/// Verified contacts, claims released.
mod contacts;
/// Two doors and code budgets per requester.
mod doors;
/// One test per row of `PROOF_POLICY`.
mod proof_policy;

/// Deterministic stand-in for argon2: `fake$<password>`; hashes starting `old$` need a rehash.
struct FakeHasher;

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

const PASSWORD: &str = "correct horse battery";

fn services() -> AccountServices {
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

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn ctx() -> RequestContext {
    RequestContext::new(Some("192.0.2.1".into()), Some("test-agent".into()), None)
}

fn sid(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// Wraps facts into a correctly chained history.
fn history(facts: Vec<(DateTime<Utc>, AccountFact)>) -> Vec<AccountEvent> {
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

fn registered_with(hash: &str) -> (DateTime<Utc>, AccountFact) {
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

fn registered() -> (DateTime<Utc>, AccountFact) {
    registered_with(&format!("fake${PASSWORD}"))
}

fn failed(at: DateTime<Utc>, n: u32) -> (DateTime<Utc>, AccountFact) {
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

fn locked(at: DateTime<Utc>, until: DateTime<Utc>, level: u32) -> (DateTime<Utc>, AccountFact) {
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

fn started(at: DateTime<Utc>, id: Uuid) -> (DateTime<Utc>, AccountFact) {
    started_on(at, id, None)
}

/// A session opened at `at` through the trusted device `device_id` (`None`: before devices).
fn started_on(
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
fn signed_in(at: DateTime<Utc>, id: Uuid) -> Vec<AccountFact> {
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

fn login(password: &str, at: DateTime<Utc>, session: Uuid) -> AccountCommand {
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
fn by_password(password: &str) -> Proof {
    Proof {
        password: Some(SecretString::from(password.to_string())),
        ..Proof::default()
    }
}

/// A proof with the password and a second factor.
fn by_password_and(password: &str, factor: MfaProof) -> Proof {
    Proof {
        factor: Some(factor),
        ..by_password(password)
    }
}

/// A proof with a second factor only.
fn by_factor(factor: MfaProof) -> Proof {
    Proof {
        factor: Some(factor),
        ..Proof::default()
    }
}

/// A proof with the requesting session only.
fn by_session(session_id: Uuid) -> Proof {
    Proof {
        session_id: Some(session_id),
        ..Proof::default()
    }
}

/// Fact names, to compare shapes.
fn names(facts: &[AccountFact]) -> Vec<&'static str> {
    facts.iter().map(|f| f.name()).collect()
}

fn facts_of(events: Vec<AccountEvent>) -> Vec<AccountFact> {
    events.into_iter().map(|e| e.fact).collect()
}

fn run(
    given: Vec<(DateTime<Utc>, AccountFact)>,
    when: AccountCommand,
) -> Result<Vec<AccountFact>, AccountError> {
    AccountTestFramework::with(services())
        .given(history(given))
        .when(when)
        .inspect_result()
        .map(facts_of)
}

#[test]
fn test_register_account_hashes_password_and_records_sealed_contact() {
    let password = PasswordPolicy::default().check(PASSWORD, &[]).unwrap();
    let facts = run(
        vec![],
        AccountCommand::RegisterAccount(RegisterAccount {
            verifications: vec![],
            sms_withheld: None,
            email: Some(SealedContact {
                sealed: "sealed".into(),
                lookup: "lookup".into(),
            }),
            phone: None,
            password,
            at: t(0),
            context: ctx(),
        }),
    )
    .unwrap();
    assert_eq!(facts, vec![registered().1]);
}

#[test]
fn test_register_account_twice_is_refused() {
    let password = PasswordPolicy::default().check(PASSWORD, &[]).unwrap();
    let result = run(
        vec![registered()],
        AccountCommand::RegisterAccount(RegisterAccount {
            verifications: vec![],
            sms_withheld: None,
            email: None,
            phone: Some(SealedContact {
                sealed: "s".into(),
                lookup: "l".into(),
            }),
            password,
            at: t(1),
            context: ctx(),
        }),
    );
    assert_eq!(result, Err(AccountError::AlreadyRegistered));
}

#[test]
fn test_register_account_without_identifier_is_refused() {
    let password = PasswordPolicy::default().check(PASSWORD, &[]).unwrap();
    let result = run(
        vec![],
        AccountCommand::RegisterAccount(RegisterAccount {
            verifications: vec![],
            sms_withheld: None,
            email: None,
            phone: None,
            password,
            at: t(0),
            context: ctx(),
        }),
    );
    assert_eq!(result, Err(AccountError::NoIdentifier));
}

#[test]
fn test_attempt_login_success_opens_session() {
    let facts = run(vec![registered()], login(PASSWORD, t(1), sid(1))).unwrap();
    assert_eq!(
        facts,
        vec![
            AccountFact::LoginSucceeded {
                door: Default::default(),
                session_id: sid(1),
                context: ctx()
            },
            signed_in(t(1), sid(1))[0].clone(),
            signed_in(t(1), sid(1))[1].clone(),
        ]
    );
}

#[test]
fn test_attempt_login_wrong_password_counts_failure() {
    let facts = run(
        vec![registered(), failed(t(1), 1)],
        login("wrong password!", t(2), sid(1)),
    )
    .unwrap();
    assert_eq!(facts, vec![failed(t(2), 2).1]);
}

#[test]
fn test_attempt_login_fifth_failure_locks_for_fifteen_minutes() {
    let given = vec![
        registered(),
        failed(t(1), 1),
        failed(t(1), 2),
        failed(t(1), 3),
        failed(t(1), 4),
    ];
    let facts = run(given, login("wrong password!", t(2), sid(1))).unwrap();
    assert_eq!(facts, vec![failed(t(2), 5).1, locked(t(2), t(17), 1).1]);
}

#[test]
fn test_attempt_login_while_locked_is_refused_without_checking_password() {
    let given = vec![registered(), failed(t(2), 5), locked(t(2), t(17), 1)];
    // Even the right password is refused while locked.
    let facts = run(given, login(PASSWORD, t(10), sid(1))).unwrap();
    assert_eq!(
        facts,
        vec![AccountFact::LoginRejectedWhileLocked {
            door: Default::default(),
            locked_until: t(17),
            context: ctx()
        }]
    );
}

#[test]
fn test_attempt_login_after_lock_expiry_succeeds() {
    let given = vec![registered(), failed(t(2), 5), locked(t(2), t(17), 1)];
    let facts = run(given, login(PASSWORD, t(17), sid(1))).unwrap();
    assert_eq!(
        facts[0],
        AccountFact::LoginSucceeded {
            door: Default::default(),
            session_id: sid(1),
            context: ctx()
        }
    );
}

#[test]
fn test_attempt_login_repeated_lock_doubles_duration() {
    let mut given = vec![registered(), failed(t(2), 5), locked(t(2), t(17), 1)];
    for n in 1..=4 {
        given.push(failed(t(20), n));
    }
    let facts = run(given, login("wrong password!", t(21), sid(1))).unwrap();
    assert_eq!(facts, vec![failed(t(21), 5).1, locked(t(21), t(51), 2).1]);
}

#[test]
fn test_attempt_login_success_resets_failures_and_level() {
    let given = vec![
        registered(),
        failed(t(2), 5),
        locked(t(2), t(17), 1),
        (
            t(20),
            AccountFact::LoginSucceeded {
                door: Default::default(),
                session_id: sid(9),
                context: ctx(),
            },
        ),
        failed(t(21), 1),
    ];
    let mut state = Account::default();
    for e in history(given) {
        state.apply(e);
    }
    assert_eq!(state.consecutive_failures(), 1);
    assert_eq!(state.lock_level, 0);
    assert!(state.lock_at(t(21)).is_none());
}

#[test]
fn test_attempt_login_unknown_identifier_fails_and_locks_identically() {
    let given = (1..=4)
        .map(|n| {
            (
                t(1),
                AccountFact::LoginFailed {
                    door: Default::default(),
                    reason: LoginFailureReason::UnknownIdentifier,
                    consecutive_failures: n,
                    context: ctx(),
                },
            )
        })
        .collect();
    let facts = run(given, login(PASSWORD, t(2), sid(1))).unwrap();
    assert_eq!(
        facts,
        vec![
            AccountFact::LoginFailed {
                door: Default::default(),
                reason: LoginFailureReason::UnknownIdentifier,
                consecutive_failures: 5,
                context: ctx()
            },
            locked(t(2), t(17), 1).1,
        ]
    );
}

#[test]
fn test_attempt_login_with_outdated_hash_rehashes() {
    let facts = run(
        vec![registered_with(&format!("old${PASSWORD}"))],
        login(PASSWORD, t(1), sid(1)),
    )
    .unwrap();
    assert!(facts.contains(&AccountFact::PasswordRehashed {
        password_hash: PasswordHash(format!("fake${PASSWORD}"))
    }));
}

#[test]
fn test_attempt_login_beyond_session_cap_evicts_oldest() {
    let mut given = vec![registered()];
    for n in 0..50 {
        given.push(started(t(1) + Duration::seconds(n as i64), sid(100 + n)));
    }
    let facts = run(given, login(PASSWORD, t(2), sid(1))).unwrap();
    assert_eq!(
        facts[0],
        AccountFact::SessionEnded {
            session_id: sid(100),
            reason: SessionEndReason::Evicted,
            context: ctx(),
        }
    );
}

#[test]
fn test_end_session_logout_and_revoke() {
    let given = vec![registered(), started(t(1), sid(1)), started(t(1), sid(2))];
    let logout = AccountCommand::EndSession {
        session_id: sid(1),
        by_session: sid(1),
        at: t(2),
        context: ctx(),
    };
    assert_eq!(
        run(given.clone(), logout).unwrap(),
        vec![AccountFact::SessionEnded {
            session_id: sid(1),
            reason: SessionEndReason::LoggedOut,
            context: ctx(),
        }]
    );
    let revoke = AccountCommand::EndSession {
        session_id: sid(2),
        by_session: sid(1),
        at: t(2),
        context: ctx(),
    };
    assert_eq!(
        run(given.clone(), revoke).unwrap(),
        vec![AccountFact::SessionEnded {
            session_id: sid(2),
            reason: SessionEndReason::Revoked { by_session: sid(1) },
            context: ctx(),
        }]
    );
    let unknown = AccountCommand::EndSession {
        session_id: sid(3),
        by_session: sid(1),
        at: t(2),
        context: ctx(),
    };
    assert_eq!(run(given, unknown), Err(AccountError::SessionNotFound));
}

#[test]
fn test_end_other_sessions_keeps_callers() {
    let given = vec![
        registered(),
        started(t(1), sid(1)),
        started(t(1), sid(2)),
        started(t(1), sid(3)),
    ];
    let facts = run(
        given,
        AccountCommand::EndOtherSessions {
            keep: sid(2),
            at: t(2),
            context: ctx(),
        },
    )
    .unwrap();
    let ended: Vec<Uuid> = facts
        .iter()
        .map(|f| match f {
            AccountFact::SessionEnded { session_id, .. } => *session_id,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(ended, vec![sid(1), sid(3)]);
}

#[test]
fn test_session_authenticate_refuses_ended_expired_and_wrong_token() {
    let id = sid(1);
    let mut state = Account::default();
    for e in history(vec![registered(), started(t(1), id), started(t(1), sid(2))]) {
        state.apply(e);
    }
    let hash = format!("hash-{id}");
    assert!(state.authenticate(id, &hash, t(2)).is_ok());
    assert!(state.authenticate(id, "hash-other", t(2)).is_err());
    assert!(
        state
            .authenticate(id, &hash, t(1) + Duration::minutes(30))
            .is_err(),
        "idle expiry"
    );
    let ended = history(vec![
        registered(),
        started(t(1), id),
        (
            t(2),
            AccountFact::SessionEnded {
                session_id: id,
                reason: SessionEndReason::LoggedOut,
                context: ctx(),
            },
        ),
    ]);
    let mut state = Account::default();
    for e in ended {
        state.apply(e);
    }
    assert!(state.authenticate(id, &hash, t(3)).is_err());
}

#[test]
fn test_extend_session_only_after_interval() {
    let given = vec![registered(), started(t(1), sid(1))];
    let early = AccountCommand::ExtendSession {
        session_id: sid(1),
        at: t(3),
    };
    assert_eq!(run(given.clone(), early).unwrap(), vec![]);
    let later = AccountCommand::ExtendSession {
        session_id: sid(1),
        at: t(10),
    };
    assert_eq!(
        run(given, later).unwrap(),
        vec![AccountFact::SessionExtended {
            session_id: sid(1),
            idle_expires_at: t(40)
        }]
    );
}

#[test]
fn test_session_commands_on_unregistered_aggregate_are_refused() {
    let cmd = AccountCommand::EndOtherSessions {
        keep: sid(1),
        at: t(1),
        context: ctx(),
    };
    assert_eq!(run(vec![], cmd), Err(AccountError::NotRegistered));
}

#[test]
fn test_handle_chains_every_written_event() {
    let given = history(vec![
        registered(),
        failed(t(1), 1),
        failed(t(1), 2),
        failed(t(1), 3),
        failed(t(1), 4),
    ]);
    let new_events = AccountTestFramework::with(services())
        .given(given.clone())
        .when(login("wrong password!", t(2), sid(1)))
        .inspect_result()
        .unwrap();
    assert_eq!(new_events.len(), 2);
    let all: Vec<serde_json::Value> = given
        .iter()
        .chain(new_events.iter())
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert!(chain::verify(&all).is_ok());
    assert_ne!(new_events[0].prev, ChainLink::default());
}

/// One-time codes and the flows that use them.
mod recovery {
    use super::*;
    use crate::contact::ContactKind;
    use crate::policy::codes::{Channel, FlowKind};

    const FLOW: u128 = 100;

    fn flow_id() -> Uuid {
        sid(FLOW)
    }

    fn grant(n: u128) -> CodeGrant {
        CodeGrant {
            code_id: sid(1000 + n),
            verifier: format!("verifier-{n}"),
        }
    }

    fn verified_email(at: DateTime<Utc>) -> (DateTime<Utc>, AccountFact) {
        (
            at,
            AccountFact::ContactVerified {
                kind: ContactKind::Email,
                flow_id: sid(99),
            },
        )
    }

    fn with_phone() -> (DateTime<Utc>, AccountFact) {
        (
            t(0),
            AccountFact::AccountRegistered {
                email: Some(SealedContact {
                    sealed: "e".into(),
                    lookup: "le".into(),
                }),
                phone: Some(SealedContact {
                    sealed: "p".into(),
                    lookup: "lp".into(),
                }),
                password_hash: PasswordHash(format!("fake${PASSWORD}")),
                context: ctx(),
            },
        )
    }

    fn start(kind: FlowKind, channel: Option<Channel>, at: DateTime<Utc>) -> AccountCommand {
        AccountCommand::StartFlow(StartFlow {
            device: None,
            grant: FlowGrant {
                flow_id: flow_id(),
                code: grant(1),
            },
            kind,
            channel,
            typed: Channel::Email,
            at,
            context: ctx(),
        })
    }

    /// History facts of a started flow with code `n`, as `start` records them.
    fn flow_started(kind: FlowKind, at: DateTime<Utc>) -> Vec<(DateTime<Utc>, AccountFact)> {
        vec![
            (
                at,
                AccountFact::FlowStarted {
                    flow_id: flow_id(),
                    kind,
                    context: ctx(),
                },
            ),
            (at, code_issued(1, Channel::Email, at)),
        ]
    }

    fn code_issued(n: u128, channel: Channel, at: DateTime<Utc>) -> AccountFact {
        AccountFact::CodeIssued {
            requester: Some(Requester::Network("192.0.2.0/24".into())),
            flow_id: flow_id(),
            code_id: grant(n).code_id,
            channel,
            verifier: grant(n).verifier,
            expires_at: at + Duration::minutes(10),
            deliverable: true,
            context: ctx(),
        }
    }

    fn redeem(n: u128, action: CodeAction, at: DateTime<Utc>) -> AccountCommand {
        AccountCommand::RedeemCode(RedeemCode {
            flow_id: flow_id(),
            verifier: grant(n).verifier,
            action,
            next_code: Some(grant(n + 1)),
            proof: Proof::default(),
            at,
            context: ctx(),
        })
    }

    fn new_password(p: &str) -> CodeAction {
        CodeAction::ResetPassword(PasswordPolicy::default().check(p, &[]).unwrap())
    }

    fn given_reset_flow() -> Vec<(DateTime<Utc>, AccountFact)> {
        let mut given = vec![registered(), verified_email(t(1))];
        given.extend(flow_started(FlowKind::ResetPassword, t(2)));
        given
    }

    #[test]
    fn test_forgot_password_issues_a_code_to_the_verified_email() {
        let facts = run(
            vec![registered(), verified_email(t(1))],
            start(FlowKind::ResetPassword, None, t(2)),
        )
        .unwrap();
        assert_eq!(
            facts,
            vec![
                AccountFact::FlowStarted {
                    flow_id: flow_id(),
                    kind: FlowKind::ResetPassword,
                    context: ctx()
                },
                code_issued(1, Channel::Email, t(2)),
            ]
        );
    }

    #[test]
    fn test_recovery_codes_are_not_sent_to_unverified_contacts() {
        let facts = run(
            vec![registered()],
            start(FlowKind::ResetPassword, None, t(2)),
        )
        .unwrap();
        assert!(matches!(
            &facts[1],
            AccountFact::CodeIssued {
                deliverable: false,
                ..
            }
        ));
    }

    #[test]
    fn test_unknown_identifier_gets_the_same_flow_and_can_never_succeed() {
        let facts = run(vec![], start(FlowKind::ResetPassword, None, t(2))).unwrap();
        assert_eq!(facts.len(), 2);
        assert!(matches!(
            &facts[1],
            AccountFact::CodeIssued {
                deliverable: false,
                ..
            }
        ));
        // Even the recorded verifier fails on a stand-in.
        let given: Vec<_> = facts.into_iter().map(|f| (t(2), f)).collect();
        let facts = run(
            given,
            redeem(1, new_password("a new long passphrase"), t(3)),
        )
        .unwrap();
        assert!(matches!(
            facts[0],
            AccountFact::CodeAttemptFailed { attempts: 1, .. }
        ));
    }

    #[test]
    fn test_five_wrong_codes_exhaust_the_code() {
        let mut given = given_reset_flow();
        for n in 1..=4 {
            given.push((
                t(3),
                AccountFact::CodeAttemptFailed {
                    flow_id: flow_id(),
                    code_id: grant(1).code_id,
                    attempts: n,
                    context: ctx(),
                },
            ));
        }
        let facts = run(given.clone(), redeem(9, CodeAction::Unlock, t(4)));
        assert_eq!(
            facts,
            Err(AccountError::FlowNotFound),
            "wrong action for the flow"
        );
        let facts = run(
            given.clone(),
            redeem(9, new_password("a new long passphrase"), t(4)),
        )
        .unwrap();
        assert_eq!(
            facts,
            vec![
                AccountFact::CodeAttemptFailed {
                    flow_id: flow_id(),
                    code_id: grant(1).code_id,
                    attempts: 5,
                    context: ctx()
                },
                AccountFact::CodeExhausted {
                    flow_id: flow_id(),
                    code_id: grant(1).code_id
                },
            ]
        );
        // Then even the right code is refused.
        given.extend(facts.into_iter().map(|f| (t(4), f)));
        assert_eq!(
            run(
                given,
                redeem(1, new_password("a new long passphrase"), t(5))
            ),
            Err(AccountError::CodeUnusable("exhausted"))
        );
    }

    #[test]
    fn test_expired_code_is_recorded_and_refused() {
        let facts = run(
            given_reset_flow(),
            redeem(1, new_password("a new long passphrase"), t(13)),
        )
        .unwrap();
        assert_eq!(
            facts,
            vec![AccountFact::CodeExpired {
                flow_id: flow_id(),
                code_id: grant(1).code_id
            }]
        );
    }

    #[test]
    fn test_reset_replaces_password_ends_sessions_and_starts_cooldown() {
        let mut given = vec![registered(), verified_email(t(1)), started(t(1), sid(7))];
        given.extend(flow_started(FlowKind::ResetPassword, t(2)));
        let facts = run(
            given.clone(),
            redeem(1, new_password("a new long passphrase"), t(3)),
        )
        .unwrap();
        assert_eq!(
            facts,
            vec![
                AccountFact::CodeUsed {
                    flow_id: flow_id(),
                    code_id: grant(1).code_id,
                    context: ctx()
                },
                AccountFact::PasswordReset {
                    password_hash: PasswordHash("fake$a new long passphrase".into()),
                    flow_id: flow_id(),
                    context: ctx()
                },
                AccountFact::SessionEnded {
                    session_id: sid(7),
                    reason: SessionEndReason::PasswordReset,
                    context: ctx()
                },
                AccountFact::HighRiskCooldownStarted {
                    until: t(3) + Duration::hours(24),
                    reason: CooldownReason::PasswordReset
                },
            ]
        );
        // The used code cannot be used again.
        given.extend(facts.into_iter().map(|f| (t(3), f)));
        assert_eq!(
            run(
                given,
                redeem(1, new_password("another long passphrase"), t(4))
            ),
            Err(AccountError::CodeUnusable("used"))
        );
    }

    #[test]
    fn test_reset_refuses_current_and_previous_passwords_and_keeps_the_code() {
        let mut given = given_reset_flow();
        assert_eq!(
            run(given.clone(), redeem(1, new_password(PASSWORD), t(3))),
            Err(AccountError::PasswordReused)
        );
        // An earlier password, replaced by a reset, is remembered too.
        given.push((
            t(3),
            AccountFact::PasswordReset {
                password_hash: PasswordHash("fake$second password here".into()),
                flow_id: sid(5),
                context: ctx(),
            },
        ));
        assert_eq!(
            run(given.clone(), redeem(1, new_password(PASSWORD), t(4))),
            Err(AccountError::PasswordReused)
        );
        assert!(run(
            given,
            redeem(1, new_password("a third new passphrase"), t(4))
        )
        .is_ok());
    }

    #[test]
    fn test_unlock_code_lifts_the_lock_and_sign_in_works_again() {
        let mut given = vec![registered(), verified_email(t(0))];
        given.push(failed(t(1), 5));
        given.push(locked(t(1), t(16), 1));
        given.extend(flow_started(FlowKind::Unlock, t(2)));
        let facts = run(given.clone(), redeem(1, CodeAction::Unlock, t(3))).unwrap();
        assert!(matches!(
            facts[1],
            AccountFact::AccountUnlocked {
                reason: UnlockReason::UnlockCode,
                ..
            }
        ));
        given.extend(facts.into_iter().map(|f| (t(3), f)));
        let facts = run(given, login(PASSWORD, t(4), sid(8))).unwrap();
        assert!(facts
            .iter()
            .any(|f| matches!(f, AccountFact::LoginSucceeded { .. })));
    }

    #[test]
    fn test_new_code_supersedes_the_previous_one() {
        let mut given = given_reset_flow();
        given.push((t(4), code_issued(2, Channel::Email, t(4))));
        // Within a flow, only the newest code counts: the old one is just a wrong code.
        assert!(matches!(
            run(
                given.clone(),
                redeem(1, new_password("a new long passphrase"), t(5))
            )
            .unwrap()[0],
            AccountFact::CodeAttemptFailed { attempts: 1, .. }
        ));
        assert!(matches!(
            run(
                given.clone(),
                redeem(2, new_password("a new long passphrase"), t(5))
            )
            .unwrap()[0],
            AccountFact::CodeUsed { .. }
        ));
        // A new flow of the same kind retires the earlier flow's code.
        given.push((
            t(6),
            AccountFact::FlowStarted {
                flow_id: sid(200),
                kind: FlowKind::ResetPassword,
                context: ctx(),
            },
        ));
        given.push((
            t(6),
            AccountFact::CodeIssued {
                requester: None,
                flow_id: sid(200),
                code_id: sid(201),
                channel: Channel::Email,
                verifier: "other".into(),
                expires_at: t(16),
                deliverable: true,
                context: ctx(),
            },
        ));
        assert_eq!(
            run(
                given,
                redeem(2, new_password("a new long passphrase"), t(7))
            ),
            Err(AccountError::CodeUnusable("superseded"))
        );
    }

    #[test]
    fn test_resend_waits_for_the_cooldown_and_may_switch_to_a_verified_channel() {
        let mut given = vec![with_phone(), verified_email(t(0))];
        given.push((
            t(0),
            AccountFact::ContactVerified {
                kind: ContactKind::Phone,
                flow_id: sid(98),
            },
        ));
        given.extend(flow_started(FlowKind::ResetPassword, t(2)));
        let resend = |at, channel| AccountCommand::ResendCode {
            flow_id: flow_id(),
            channel,
            code: grant(2),
            at,
            context: ctx(),
        };
        assert_eq!(
            run(given.clone(), resend(t(2) + Duration::seconds(30), None)),
            Err(AccountError::CodeRateLimited {
                retry_at: t(2) + Duration::seconds(60)
            })
        );
        let facts = run(given, resend(t(3), Some(Channel::Sms))).unwrap();
        assert_eq!(facts, vec![code_issued(2, Channel::Sms, t(3))]);
    }

    #[test]
    fn test_hourly_cap_limits_codes_across_flows() {
        let mut given = vec![registered(), verified_email(t(0))];
        for n in 0..10 {
            given.push((t(n), code_issued(50, Channel::Email, t(n))));
        }
        assert!(matches!(
            run(given, start(FlowKind::Unlock, None, t(11))),
            Err(AccountError::CodeRateLimited { .. })
        ));
    }

    #[test]
    fn test_sign_up_beyond_the_sms_budget_withholds_the_phone_code_and_a_resend_sends_one() {
        let password = PasswordPolicy::default().check(PASSWORD, &[]).unwrap();
        let register = AccountCommand::RegisterAccount(RegisterAccount {
            email: None,
            phone: Some(SealedContact {
                sealed: "p".into(),
                lookup: "lp".into(),
            }),
            verifications: vec![(
                ContactKind::Phone,
                FlowGrant {
                    flow_id: flow_id(),
                    code: grant(1),
                },
            )],
            sms_withheld: Some("+44".into()),
            password,
            at: t(0),
            context: ctx(),
        });
        let facts = run(vec![], register).unwrap();
        let mut withheld = code_issued(1, Channel::Sms, t(0));
        if let AccountFact::CodeIssued { deliverable, .. } = &mut withheld {
            *deliverable = false;
        }
        assert_eq!(
            facts[1..],
            [
                AccountFact::FlowStarted {
                    flow_id: flow_id(),
                    kind: FlowKind::VerifyPhone,
                    context: ctx()
                },
                withheld,
                AccountFact::SmsWithheld {
                    flow_id: Some(flow_id()),
                    scope: "+44".into()
                },
            ]
        );
        // The flow is open: a resend issues a code that is sent.
        let given: Vec<_> = facts.into_iter().map(|f| (t(0), f)).collect();
        let resent = run(
            given,
            AccountCommand::ResendCode {
                flow_id: flow_id(),
                channel: None,
                code: grant(2),
                at: t(120),
                context: ctx(),
            },
        )
        .unwrap();
        assert!(
            resent.contains(&code_issued(2, Channel::Sms, t(120))),
            "{resent:?}"
        );
    }

    #[test]
    fn test_sign_up_starts_verification_and_the_code_verifies_the_email() {
        let password = PasswordPolicy::default().check(PASSWORD, &[]).unwrap();
        let register = AccountCommand::RegisterAccount(RegisterAccount {
            email: Some(SealedContact {
                sealed: "sealed".into(),
                lookup: "lookup".into(),
            }),
            phone: None,
            verifications: vec![(
                ContactKind::Email,
                FlowGrant {
                    flow_id: flow_id(),
                    code: grant(1),
                },
            )],
            sms_withheld: None,
            password,
            at: t(0),
            context: ctx(),
        });
        let facts = run(vec![], register).unwrap();
        assert_eq!(
            facts[1..],
            [
                AccountFact::FlowStarted {
                    flow_id: flow_id(),
                    kind: FlowKind::VerifyEmail,
                    context: ctx()
                },
                code_issued(1, Channel::Email, t(0)),
            ]
        );
        let given: Vec<_> = facts.into_iter().map(|f| (t(0), f)).collect();
        // A verification flow cannot switch channel.
        assert_eq!(
            run(
                given.clone(),
                AccountCommand::ResendCode {
                    flow_id: flow_id(),
                    channel: Some(Channel::Sms),
                    code: grant(2),
                    at: t(2),
                    context: ctx()
                }
            ),
            Err(AccountError::ChannelNotAllowed)
        );
        let facts = run(given.clone(), redeem(1, CodeAction::Verify, t(1))).unwrap();
        assert_eq!(
            facts[1],
            AccountFact::ContactVerified {
                kind: ContactKind::Email,
                flow_id: flow_id()
            }
        );
        let mut state = Account::default();
        for e in history(
            given
                .into_iter()
                .chain(facts.into_iter().map(|f| (t(1), f)))
                .collect(),
        ) {
            state.apply(e);
        }
        assert!(state.is_verified(Channel::Email));
        assert!(!state.is_verified(Channel::Sms));
    }
}

mod contact_change {
    use super::*;
    use crate::contact::ContactKind;

    fn change(password: &str, lookup: &str) -> AccountCommand {
        AccountCommand::ChangeContact(ChangeContact {
            kind: ContactKind::Email,
            contact: SealedContact {
                sealed: "new".into(),
                lookup: lookup.into(),
            },
            proof: by_password(password),
            unavailable: false,
            grant: FlowGrant {
                flow_id: sid(300),
                code: CodeGrant {
                    code_id: sid(301),
                    verifier: "v".into(),
                },
            },
            at: t(1),
            context: ctx(),
        })
    }

    #[test]
    fn test_change_needs_the_password_and_a_different_contact() {
        // A wrong password is a recorded failure (it counts toward the lockout), not a change.
        assert_eq!(
            run(
                vec![registered()],
                change("wrong password here", "new-lookup")
            ),
            Ok(vec![AccountFact::PasswordConfirmationFailed {
                door: Default::default(),
                action: "change_contact".into(),
                consecutive_failures: 1,
                context: ctx(),
            }])
        );
        assert_eq!(
            run(vec![registered()], change(PASSWORD, "lookup")),
            Err(AccountError::ContactUnchanged)
        );
        let facts = run(vec![registered()], change(PASSWORD, "new-lookup")).unwrap();
        assert_eq!(
            names(&facts),
            [
                "HighRiskCooldownStarted",
                "ContactChangeRequested",
                "FlowStarted",
                "CodeIssued"
            ]
        );
        assert!(matches!(
            &facts[1],
            AccountFact::ContactChangeRequested { previous: Some(p), .. } if p.lookup == "lookup"
        ));
        assert!(matches!(
            &facts[3],
            AccountFact::CodeIssued {
                deliverable: true,
                ..
            }
        ));
        // Requested, not in force: the current contact stays the identifier until the new one
        // is verified; a right code then makes the change.
        let given = super::lost_factor::apply_all(vec![registered()], facts, t(1));
        let state = super::lost_factor::state_of(given.clone());
        assert!(state.holds_lookup("lookup") && !state.holds_lookup("new-lookup"));
        assert_eq!(
            state.pending_contact(ContactKind::Email).map(|p| p.flow_id),
            Some(sid(300))
        );
        let verify = |verifier: &str| {
            AccountCommand::RedeemCode(RedeemCode {
                flow_id: sid(300),
                verifier: verifier.into(),
                action: CodeAction::Verify,
                next_code: None,
                proof: Proof::default(),
                at: t(2),
                context: ctx(),
            })
        };
        let wrong = run(given.clone(), verify("x")).unwrap();
        assert_eq!(names(&wrong), ["CodeAttemptFailed"]);
        let facts = run(given.clone(), verify("v")).unwrap();
        assert_eq!(
            names(&facts),
            ["CodeUsed", "ContactChanged", "ContactVerified"]
        );
        let state = super::lost_factor::state_of(super::lost_factor::apply_all(given, facts, t(2)));
        assert!(state.holds_lookup("new-lookup") && !state.holds_lookup("lookup"));
        assert!(state.is_verified(crate::policy::Channel::Email));
        assert!(state.pending_contact(ContactKind::Email).is_none());
    }

    #[test]
    fn test_sign_in_by_a_replaced_identifier_is_refused_without_a_record() {
        let mut given = vec![registered()];
        given.push((
            t(1),
            AccountFact::ContactChanged {
                kind: ContactKind::Email,
                contact: SealedContact {
                    sealed: "new".into(),
                    lookup: "new-lookup".into(),
                },
                previous: None,
                context: ctx(),
            },
        ));
        let attempt = |lookup: &str| {
            AccountCommand::AttemptLogin(AttemptLogin {
                device: None,
                lookup: Some(lookup.into()),
                password: SecretString::from(PASSWORD.to_string()),
                grant: SessionGrant {
                    device: crate::account::DeviceGrant {
                        device_id: Uuid::nil(),
                        token_hash: "device-hash".into(),
                    },
                    session_id: sid(9),
                    token_hash: "h".into(),
                },
                at: t(2),
                context: ctx(),
            })
        };
        assert_eq!(
            run(given.clone(), attempt("lookup")),
            Err(AccountError::IdentifierMoved)
        );
        assert!(run(given, attempt("new-lookup")).is_ok());
    }
}

mod second_factor {
    use super::*;

    pub(super) fn enrolled(step: u64) -> Vec<(DateTime<Utc>, AccountFact)> {
        vec![
            registered(),
            (
                t(0),
                AccountFact::TotpEnrolmentStarted {
                    sealed_secret: "v1.secret".into(),
                    context: ctx(),
                },
            ),
            (
                t(0),
                AccountFact::TotpEnrolled {
                    step,
                    context: ctx(),
                },
            ),
            (
                t(0),
                AccountFact::BackupCodesGenerated {
                    verifiers: vec!["b0".into(), "b1".into()],
                    context: ctx(),
                },
            ),
        ]
    }

    fn challenged(step: u64) -> Vec<(DateTime<Utc>, AccountFact)> {
        let mut given = enrolled(step);
        given.push((
            t(1),
            AccountFact::MfaChallengeIssued {
                door: Default::default(),
                challenge_id: sid(50),
                methods: vec!["totp".into(), "backup_code".into()],
                expires_at: t(6),
                context: ctx(),
            },
        ));
        given
    }

    fn answer(proof: MfaProof, at: DateTime<Utc>) -> AccountCommand {
        AccountCommand::CompleteMfa(CompleteMfa {
            challenge_id: sid(50),
            proof,
            grant: SessionGrant {
                device: crate::account::DeviceGrant {
                    device_id: Uuid::nil(),
                    token_hash: "device-hash".into(),
                },
                session_id: sid(51),
                token_hash: "h51".into(),
            },
            at,
            context: ctx(),
        })
    }

    pub(super) fn totp(step: u64) -> MfaProof {
        MfaProof::Totp {
            matched_step: Some(step),
        }
    }

    #[test]
    fn test_password_with_a_second_factor_yields_a_challenge_not_a_session() {
        let facts = run(enrolled(10), login(PASSWORD, t(1), sid(50))).unwrap();
        assert_eq!(
            facts,
            vec![AccountFact::MfaChallengeIssued {
                door: Default::default(),
                challenge_id: sid(50),
                methods: vec!["totp".into(), "backup_code".into()],
                expires_at: t(1) + MFA_CHALLENGE_TTL,
                context: ctx(),
            }]
        );
    }

    #[test]
    fn test_totp_answers_the_challenge_once_and_a_replayed_step_fails() {
        let facts = run(challenged(10), answer(totp(11), t(2))).unwrap();
        assert!(matches!(
            &facts[0],
            AccountFact::SecondFactorVerified { step: Some(11), .. }
        ));
        // Signing in opens a session, and does not step it up.
        assert!(
            matches!(facts.last(), Some(AccountFact::SessionStarted { session_id, .. }) if *session_id == sid(51))
        );
        assert!(!facts
            .iter()
            .any(|f| matches!(f, AccountFact::SessionSteppedUp { .. })));
        // The same challenge cannot be answered twice.
        let mut given = challenged(10);
        given.extend(facts.into_iter().map(|f| (t(2), f)));
        assert_eq!(
            run(given, answer(totp(12), t(3))),
            Err(AccountError::ChallengeInvalid)
        );
        // A step at or before the last accepted one is a replay.
        let facts = run(challenged(11), answer(totp(11), t(2))).unwrap();
        assert!(matches!(
            facts[0],
            AccountFact::SecondFactorFailed {
                consecutive_failures: 1,
                ..
            }
        ));
    }

    #[test]
    fn test_wrong_second_factors_lock_like_wrong_passwords() {
        let mut given = challenged(10);
        for n in 1..=4 {
            given.push((
                t(2),
                AccountFact::SecondFactorFailed {
                    door: Default::default(),
                    challenge_id: Some(sid(50)),
                    method: "totp".into(),
                    consecutive_failures: n,
                    context: ctx(),
                },
            ));
        }
        let facts = run(given, answer(MfaProof::Totp { matched_step: None }, t(3))).unwrap();
        assert!(matches!(facts[1], AccountFact::AccountLocked { .. }));
    }

    #[test]
    fn test_expired_challenge_is_refused() {
        assert_eq!(
            run(challenged(10), answer(totp(11), t(6))),
            Err(AccountError::ChallengeInvalid)
        );
    }

    #[test]
    fn test_backup_code_works_once() {
        let code = MfaProof::BackupCode {
            verifier: "b1".into(),
        };
        let facts = run(challenged(10), answer(code.clone(), t(2))).unwrap();
        assert!(matches!(
            facts[0],
            AccountFact::SecondFactorVerified {
                backup_code: Some(1),
                ..
            }
        ));
        let mut given = challenged(10);
        given.extend(facts.into_iter().map(|f| (t(2), f)));
        given.push((
            t(3),
            AccountFact::MfaChallengeIssued {
                door: Default::default(),
                challenge_id: sid(50),
                methods: vec![],
                expires_at: t(8),
                context: ctx(),
            },
        ));
        let facts = run(given, answer(code, t(4))).unwrap();
        assert!(matches!(facts[0], AccountFact::SecondFactorFailed { .. }));
    }

    #[test]
    fn test_removal_needs_password_and_factor_and_starts_a_cooldown() {
        let remove = |password: &str, step: u64, at| AccountCommand::RemoveSecondFactor {
            proof: by_password_and(password, totp(step)),
            at,
            context: ctx(),
        };
        // A wrong password is recorded and counted; nothing is removed.
        assert_eq!(
            run(enrolled(10), remove("not the password", 11, t(2))),
            Ok(vec![AccountFact::PasswordConfirmationFailed {
                door: Default::default(),
                action: "remove_second_factor".into(),
                consecutive_failures: 1,
                context: ctx(),
            }])
        );
        let facts = run(enrolled(10), remove(PASSWORD, 11, t(2))).unwrap();
        assert!(matches!(facts[1], AccountFact::SecondFactorRemoved { .. }));
        assert_eq!(
            facts[2],
            AccountFact::HighRiskCooldownStarted {
                until: t(2) + Duration::hours(24),
                reason: CooldownReason::SecondFactorRemoved
            }
        );
        // During a cooldown (e.g. after a password reset) removal is refused.
        let mut given = enrolled(10);
        given.push((
            t(1),
            AccountFact::HighRiskCooldownStarted {
                until: t(100),
                reason: CooldownReason::PasswordReset,
            },
        ));
        assert_eq!(
            run(given, remove(PASSWORD, 11, t(2))),
            Err(AccountError::HighRiskCooldown { until: t(100) })
        );
    }
}

mod lost_factor {
    use super::*;
    use crate::contact::ContactKind;
    use crate::policy::codes::{Channel, FlowKind};

    fn flow() -> Uuid {
        sid(700)
    }

    fn code(n: u128) -> CodeGrant {
        CodeGrant {
            code_id: sid(710 + n),
            verifier: format!("lv{n}"),
        }
    }

    fn given_started(with_phone: bool) -> Vec<(DateTime<Utc>, AccountFact)> {
        let mut given = vec![
            registered(),
            (
                t(0),
                AccountFact::ContactVerified {
                    kind: ContactKind::Email,
                    flow_id: sid(1),
                },
            ),
        ];
        if with_phone {
            given.push((
                t(0),
                AccountFact::ContactChanged {
                    kind: ContactKind::Phone,
                    contact: SealedContact {
                        sealed: "p".into(),
                        lookup: "lp".into(),
                    },
                    previous: None,
                    context: ctx(),
                },
            ));
            given.push((
                t(0),
                AccountFact::ContactVerified {
                    kind: ContactKind::Phone,
                    flow_id: sid(2),
                },
            ));
        }
        given.push((
            t(1),
            AccountFact::FlowStarted {
                flow_id: flow(),
                kind: FlowKind::LostSecondFactor,
                context: ctx(),
            },
        ));
        given.push((
            t(1),
            AccountFact::CodeIssued {
                requester: None,
                flow_id: flow(),
                code_id: code(0).code_id,
                channel: Channel::Email,
                verifier: code(0).verifier,
                expires_at: t(11),
                deliverable: true,
                context: ctx(),
            },
        ));
        given
    }

    fn redeem(n: u128, at: DateTime<Utc>) -> AccountCommand {
        AccountCommand::RedeemCode(RedeemCode {
            flow_id: flow(),
            verifier: code(n).verifier,
            action: CodeAction::RecoveryStep,
            next_code: Some(code(n + 1)),
            proof: Proof::default(),
            at,
            context: ctx(),
        })
    }

    pub(super) fn apply_all(
        mut given: Vec<(DateTime<Utc>, AccountFact)>,
        facts: Vec<AccountFact>,
        at: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, AccountFact)> {
        given.extend(facts.into_iter().map(|f| (at, f)));
        given
    }

    pub(super) fn state_of(given: Vec<(DateTime<Utc>, AccountFact)>) -> Account {
        let mut state = Account::default();
        for e in history(given) {
            state.apply(e);
        }
        state
    }

    #[test]
    fn test_email_then_phone_then_evidence_then_review_then_hold_then_removal() {
        let given = given_started(true);
        assert_eq!(
            state_of(given.clone()).recovery().unwrap().step_of(),
            (1, 4)
        );
        let facts = run(given.clone(), redeem(0, t(2))).unwrap();
        assert!(
            matches!(&facts[1], AccountFact::RecoveryStepPassed { step, .. } if *step == RecoveryStep::Email)
        );
        assert!(matches!(
            &facts[2],
            AccountFact::CodeIssued {
                channel: Channel::Sms,
                deliverable: true,
                ..
            }
        ));
        let given = apply_all(given, facts, t(2));
        assert_eq!(
            state_of(given.clone()).recovery().unwrap().step_of(),
            (2, 4)
        );
        let facts = run(given.clone(), redeem(1, t(3))).unwrap();
        let given = apply_all(given, facts, t(3));
        assert_eq!(
            state_of(given.clone()).recovery().unwrap().step_of(),
            (3, 4)
        );
        let evidence = AccountCommand::SubmitRecoveryEvidence {
            flow_id: flow(),
            sealed_evidence: "v1.sealed".into(),
            at: t(4),
            context: ctx(),
        };
        let facts = run(given.clone(), evidence).unwrap();
        let given = apply_all(given, facts, t(4));
        assert_eq!(
            state_of(given.clone()).recovery().unwrap().step_of(),
            (4, 4)
        );
        let review = |approve| AccountCommand::ReviewRecovery {
            flow_id: flow(),
            approve,
            reviewer: "rita".into(),
            reason: "passport matches".into(),
            at: t(5),
        };
        let facts = run(given.clone(), review(true)).unwrap();
        assert_eq!(
            facts,
            vec![AccountFact::RecoveryReviewed {
                flow_id: flow(),
                approved: true,
                reviewer: "rita".into(),
                reason: "passport matches".into(),
                hold_until: Some(t(5) + Duration::hours(48)),
            }]
        );
        let mut given = apply_all(given, facts, t(5));
        // A session opened shortly before the hold ends.
        given.push(started(
            t(5) + Duration::hours(48) - Duration::minutes(10),
            sid(720),
        ));
        let complete = |at| AccountCommand::CompleteRecovery {
            flow_id: flow(),
            at,
            context: ctx(),
        };
        assert_eq!(
            run(given.clone(), complete(t(60))),
            Err(AccountError::RecoveryHold {
                until: t(5) + Duration::hours(48)
            })
        );
        let at = t(5) + Duration::hours(48);
        let facts = run(given, complete(at)).unwrap();
        assert!(matches!(facts[1], AccountFact::SecondFactorRemoved { .. }));
        assert!(
            facts.iter().any(|f| matches!(
                f,
                AccountFact::SessionEnded { session_id, reason: SessionEndReason::Recovery, .. } if *session_id == sid(720)
            )),
            "live sessions end: {facts:?}"
        );
        assert!(matches!(
            facts.last(),
            Some(AccountFact::HighRiskCooldownStarted {
                reason: CooldownReason::LostFactorRecovery,
                ..
            })
        ));
    }

    #[test]
    fn test_without_a_phone_evidence_follows_the_email_and_steps_are_three() {
        let given = given_started(false);
        // Four until the email code is accepted: the count must not tell a stranger whether the
        // account has a phone.
        assert_eq!(
            state_of(given.clone()).recovery().unwrap().step_of(),
            (1, 4)
        );
        let facts = run(given.clone(), redeem(0, t(2))).unwrap();
        assert_eq!(facts.len(), 2, "no phone code");
        let given = apply_all(given, facts, t(2));
        assert_eq!(state_of(given).recovery().unwrap().step_of(), (2, 3));
    }

    #[test]
    fn test_steps_cannot_be_skipped_and_owner_can_cancel_or_reviewer_deny() {
        let given = given_started(true);
        let evidence = AccountCommand::SubmitRecoveryEvidence {
            flow_id: flow(),
            sealed_evidence: "v1.sealed".into(),
            at: t(2),
            context: ctx(),
        };
        assert_eq!(
            run(given.clone(), evidence),
            Err(AccountError::RecoveryStage)
        );
        let review = AccountCommand::ReviewRecovery {
            flow_id: flow(),
            approve: true,
            reviewer: "rita".into(),
            reason: "x".into(),
            at: t(2),
        };
        assert_eq!(run(given.clone(), review), Err(AccountError::RecoveryStage));
        let facts = run(
            given.clone(),
            AccountCommand::CancelRecovery {
                at: t(2),
                context: ctx(),
            },
        )
        .unwrap();
        assert!(matches!(facts[0], AccountFact::RecoveryCancelled { .. }));
        let given = apply_all(given, facts, t(2));
        assert!(state_of(given).recovery().is_none());
    }
}

mod security_keys {
    use super::*;

    fn with_key(counter: u32) -> Vec<(DateTime<Utc>, AccountFact)> {
        let mut given = vec![
            registered(),
            (
                t(0),
                AccountFact::SecurityKeyRegistered {
                    key_id: "key-1".into(),
                    name: "blue".into(),
                    credential: serde_json::json!({"v": 0}),
                    context: ctx(),
                },
            ),
        ];
        if counter > 0 {
            given.push((
                t(0),
                AccountFact::SecurityKeyUsed {
                    key_id: "key-1".into(),
                    counter,
                    credential: serde_json::json!({"v": counter}),
                },
            ));
        }
        given.push((
            t(1),
            AccountFact::MfaChallengeIssued {
                door: Default::default(),
                challenge_id: sid(60),
                methods: vec!["security_key".into()],
                expires_at: t(6),
                context: ctx(),
            },
        ));
        given
    }

    fn answer(check: KeyCheck) -> AccountCommand {
        AccountCommand::CompleteMfa(CompleteMfa {
            challenge_id: sid(60),
            proof: MfaProof::SecurityKey {
                key_id: "key-1".into(),
                check,
            },
            grant: SessionGrant {
                device: crate::account::DeviceGrant {
                    device_id: Uuid::nil(),
                    token_hash: "device-hash".into(),
                },
                session_id: sid(61),
                token_hash: "h".into(),
            },
            at: t(2),
            context: ctx(),
        })
    }

    #[test]
    fn test_a_security_key_is_a_second_factor_and_its_counter_moves_on() {
        let facts = run(with_key(0)[..2].to_vec(), login(PASSWORD, t(1), sid(60))).unwrap();
        assert!(
            matches!(&facts[0], AccountFact::MfaChallengeIssued { methods, .. } if methods == &vec!["security_key".to_string()])
        );
        let facts = run(
            with_key(3),
            answer(KeyCheck::Verified {
                counter: 4,
                credential: serde_json::json!({"v": 4}),
            }),
        )
        .unwrap();
        assert!(matches!(
            &facts[1],
            AccountFact::SecurityKeyUsed { counter: 4, .. }
        ));
        // Signing in with a key is not a step-up.
        assert!(matches!(
            facts.last(),
            Some(AccountFact::SessionStarted { .. })
        ));
        assert!(!facts
            .iter()
            .any(|f| matches!(f, AccountFact::SessionSteppedUp { .. })));
    }

    #[test]
    fn test_a_counter_that_goes_backwards_is_refused_and_recorded() {
        let facts = run(with_key(5), answer(KeyCheck::CounterRegressed)).unwrap();
        assert!(
            matches!(&facts[0], AccountFact::SecurityKeyCounterRegressed { key_id, .. } if key_id == "key-1")
        );
        assert!(matches!(facts[1], AccountFact::SecondFactorFailed { .. }));
        // Even if the library had let it through, the aggregate checks the stored counter.
        let facts = run(
            with_key(5),
            answer(KeyCheck::Verified {
                counter: 5,
                credential: serde_json::json!({}),
            }),
        )
        .unwrap();
        assert!(
            matches!(&facts[0], AccountFact::SecurityKeyCounterRegressed { key_id, .. } if key_id == "key-1")
        );
        assert!(matches!(facts[1], AccountFact::SecondFactorFailed { .. }));
        assert!(!facts
            .iter()
            .any(|f| matches!(f, AccountFact::SessionStarted { .. })));
    }

    fn register(password: &str, key_id: &str) -> AccountCommand {
        register_with(by_password(password), key_id)
    }

    fn register_with(proof: Proof, key_id: &str) -> AccountCommand {
        AccountCommand::RegisterSecurityKey {
            key_id: key_id.into(),
            name: "blue".into(),
            credential: serde_json::json!({"v": 0}),
            proof,
            backup_verifiers: vec!["v1".into(), "v2".into()],
            at: t(1),
            context: ctx(),
        }
    }

    #[test]
    fn test_the_first_key_needs_the_password_and_brings_backup_codes() {
        assert_eq!(
            run(vec![registered()], register("not the password", "key-1")),
            Ok(vec![AccountFact::PasswordConfirmationFailed {
                door: Default::default(),
                action: "add_second_factor".into(),
                consecutive_failures: 1,
                context: ctx(),
            }])
        );
        let facts = run(vec![registered()], register(PASSWORD, "key-1")).unwrap();
        assert!(
            matches!(&facts[0], AccountFact::SecurityKeyRegistered { key_id, .. } if key_id == "key-1")
        );
        assert!(
            matches!(&facts[1], AccountFact::BackupCodesGenerated { verifiers, .. } if verifiers.len() == 2)
        );
        // Adding a factor pauses high-risk actions (a thief with a session would add theirs).
        assert!(matches!(
            facts[2],
            AccountFact::HighRiskCooldownStarted {
                reason: CooldownReason::SecondFactorAdded,
                ..
            }
        ));
        // A second key needs a current factor too, and keeps the codes the owner already holds.
        assert_eq!(
            run(with_key(0)[..2].to_vec(), register(PASSWORD, "key-2")),
            Err(AccountError::SecondFactorRequired)
        );
        let first_key = MfaProof::SecurityKey {
            key_id: "key-1".into(),
            check: KeyCheck::Verified {
                counter: 1,
                credential: serde_json::json!({"v": 1}),
            },
        };
        let facts = run(
            with_key(0)[..2].to_vec(),
            register_with(by_password_and(PASSWORD, first_key), "key-2"),
        )
        .unwrap();
        assert_eq!(
            names(&facts),
            [
                "SecondFactorVerified",
                "SecurityKeyUsed",
                "SecurityKeyRegistered",
                "HighRiskCooldownStarted"
            ]
        );
        assert_eq!(
            run(with_key(0)[..2].to_vec(), register(PASSWORD, "key-1")),
            Err(AccountError::SecurityKeyUnknown)
        );
    }

    #[test]
    fn test_removing_the_last_key_turns_two_step_sign_in_off() {
        let mut given = with_key(3);
        given.pop();
        let remove = |proof: MfaProof| AccountCommand::RemoveSecurityKey {
            key_id: "key-1".into(),
            proof: by_password_and(PASSWORD, proof),
            at: t(2),
            context: ctx(),
        };
        let proof = MfaProof::SecurityKey {
            key_id: "key-1".into(),
            check: KeyCheck::Verified {
                counter: 4,
                credential: serde_json::json!({"v": 4}),
            },
        };
        let facts = run(given.clone(), remove(proof)).unwrap();
        assert_eq!(
            names(&facts),
            [
                "SecondFactorVerified",
                "SecurityKeyUsed",
                "SecurityKeyRemoved",
                "SecondFactorRemoved",
                "HighRiskCooldownStarted"
            ]
        );
        let after = super::lost_factor::apply_all(given.clone(), facts, t(2));
        assert!(!super::lost_factor::state_of(after).has_second_factor());
        // An invalid assertion removes nothing and counts as a failure.
        let facts = run(
            given,
            remove(MfaProof::SecurityKey {
                key_id: "key-1".into(),
                check: KeyCheck::Invalid,
            }),
        )
        .unwrap();
        assert!(matches!(facts[0], AccountFact::SecondFactorFailed { .. }));
        assert_eq!(facts.len(), 1);
    }
}

mod controls {
    use super::*;
    use crate::policy::codes::FlowKind;

    fn with_session() -> Vec<(DateTime<Utc>, AccountFact)> {
        let mut given = super::second_factor::enrolled(10);
        given.push(started(t(1), sid(70)));
        given
    }

    /// `given`, with session 70 opened and stepped up at t(1).
    fn stepped_up(
        mut given: Vec<(DateTime<Utc>, AccountFact)>,
    ) -> Vec<(DateTime<Utc>, AccountFact)> {
        given.push(started(t(1), sid(70)));
        given.push((
            t(1),
            AccountFact::SessionSteppedUp {
                session_id: sid(70),
                method: "totp".into(),
            },
        ));
        given
    }

    fn state_of(given: Vec<(DateTime<Utc>, AccountFact)>) -> Account {
        let mut state = Account::default();
        for e in history(given) {
            state.apply(e);
        }
        state
    }

    fn then(
        given: Vec<(DateTime<Utc>, AccountFact)>,
        facts: Vec<AccountFact>,
        at: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, AccountFact)> {
        let mut given = given;
        given.extend(facts.into_iter().map(|f| (at, f)));
        given
    }

    #[test]
    fn test_step_up_needs_a_current_factor_and_lasts_its_window() {
        let step_up = |proof| AccountCommand::StepUp {
            session_id: sid(70),
            proof,
            at: t(2),
            context: ctx(),
        };
        let facts = run(
            with_session(),
            step_up(by_factor(super::second_factor::totp(11))),
        )
        .unwrap();
        assert!(
            matches!(&facts[1], AccountFact::SessionSteppedUp { session_id, method } if *session_id == sid(70) && method == "totp")
        );
        let state = state_of(then(with_session(), facts, t(2)));
        assert_eq!(
            state.stepped_up_until(sid(70), Duration::minutes(15)),
            Some(t(17))
        );
        // A wrong code counts toward the lockout and steps nothing up.
        let facts = run(
            with_session(),
            step_up(by_factor(super::second_factor::totp(9))),
        )
        .unwrap();
        assert!(matches!(facts[0], AccountFact::SecondFactorFailed { .. }));
        assert_eq!(facts.len(), 1);
        // Without any second factor the password steps the session up; a code alone does not.
        assert_eq!(
            run(
                vec![registered(), started(t(1), sid(70))],
                step_up(by_factor(super::second_factor::totp(11)))
            ),
            Err(AccountError::WrongPassword)
        );
        assert_eq!(
            run(
                vec![registered(), started(t(1), sid(70))],
                step_up(by_password(PASSWORD))
            ),
            Ok(vec![AccountFact::SessionSteppedUp {
                session_id: sid(70),
                method: "password".into()
            }])
        );
    }

    fn key(scopes: Vec<ApiScope>, allowed_ips: Vec<String>) -> AccountCommand {
        AccountCommand::CreateApiKey {
            key: NewApiKey {
                key_id: sid(80),
                name: "bot".into(),
                scopes,
                allowed_ips,
                expires_at: Some(t(600)),
                verifier: "secret-1".into(),
            },
            proof: by_session(sid(70)),
            at: t(1),
            context: ctx(),
        }
    }

    #[test]
    fn test_a_withdraw_key_starts_a_cooldown_and_none_is_made_during_one() {
        let base = stepped_up(super::second_factor::enrolled(10));
        let facts = run(base.clone(), key(vec![ApiScope::Withdraw], vec![])).unwrap();
        assert!(matches!(
            facts[1],
            AccountFact::HighRiskCooldownStarted {
                reason: CooldownReason::WithdrawKeyCreated,
                ..
            }
        ));
        let given = then(base, facts, t(1));
        let again = AccountCommand::CreateApiKey {
            key: NewApiKey {
                key_id: sid(81),
                name: "bot 2".into(),
                scopes: vec![ApiScope::Trade, ApiScope::Withdraw],
                allowed_ips: vec![],
                expires_at: None,
                verifier: "secret-2".into(),
            },
            proof: by_session(sid(70)),
            at: t(2),
            context: ctx(),
        };
        assert!(matches!(
            run(given.clone(), again),
            Err(AccountError::HighRiskCooldown { .. })
        ));
        // A read-only key is not high-risk.
        let read_only = AccountCommand::CreateApiKey {
            key: NewApiKey {
                key_id: sid(82),
                name: "reader".into(),
                scopes: vec![ApiScope::Read],
                allowed_ips: vec![],
                expires_at: None,
                verifier: "secret-3".into(),
            },
            proof: by_session(sid(70)),
            at: t(2),
            context: ctx(),
        };
        assert_eq!(run(given, read_only).unwrap().len(), 1);
    }

    #[test]
    fn test_a_rotated_secret_works_through_its_grace_period_only() {
        let base = stepped_up(vec![registered()]);
        let created = run(
            base.clone(),
            key(vec![ApiScope::Trade], vec!["192.0.2.0/24".into()]),
        )
        .unwrap();
        let given = then(base, created, t(1));
        let rotated = run(
            given.clone(),
            AccountCommand::RotateApiKey {
                key_id: sid(80),
                verifier: "secret-2".into(),
                grace: Duration::minutes(10),
                proof: by_session(sid(70)),
                at: t(5),
                context: ctx(),
            },
        )
        .unwrap();
        let state = state_of(then(given, rotated, t(5)));
        let inside: Option<std::net::IpAddr> = "192.0.2.7".parse().ok();
        let outside: Option<std::net::IpAddr> = "198.51.100.7".parse().ok();
        assert!(state
            .check_api_key(sid(80), "secret-2", inside, t(6))
            .is_ok());
        assert!(state
            .check_api_key(sid(80), "secret-1", inside, t(14))
            .is_ok());
        assert_eq!(
            state
                .check_api_key(sid(80), "secret-1", inside, t(15))
                .err(),
            Some(ApiKeyRefusal::Rotated)
        );
        assert_eq!(
            state
                .check_api_key(sid(80), "secret-2", outside, t(6))
                .err(),
            Some(ApiKeyRefusal::IpNotAllowed)
        );
        assert_eq!(
            state.check_api_key(sid(80), "nope", inside, t(6)).err(),
            Some(ApiKeyRefusal::Invalid)
        );
        assert_eq!(
            state
                .check_api_key(sid(80), "secret-2", inside, t(600))
                .err(),
            Some(ApiKeyRefusal::Expired)
        );
        let revoked = run(
            then(vec![registered()], vec![], t(1)),
            AccountCommand::RevokeApiKeys {
                key_id: None,
                at: t(7),
                context: ctx(),
            },
        )
        .unwrap();
        assert!(revoked.is_empty(), "nothing to revoke without keys");
    }

    #[test]
    fn test_networks_match_by_prefix() {
        let nets = vec!["192.0.2.0/24".to_string(), "2001:db8::/32".to_string()];
        assert!(ip_allowed(&nets, "192.0.2.255".parse().ok()));
        assert!(!ip_allowed(&nets, "192.0.3.1".parse().ok()));
        assert!(ip_allowed(&nets, "2001:db8:1::1".parse().ok()));
        assert!(!ip_allowed(&nets, "2001:db9::1".parse().ok()));
        assert!(!ip_allowed(&nets, None));
        assert!(ip_allowed(&[], None));
        assert!(ip_allowed(
            &["0.0.0.0/0".to_string()],
            "8.8.8.8".parse().ok()
        ));
        assert_eq!(parse_network("10.0.0.0/33"), None);
        assert_eq!(parse_network("not an ip"), None);
    }

    /// A verified email, TOTP, and session 70 stepped up at t(1): what whitelist changes need.
    fn verified() -> Vec<(DateTime<Utc>, AccountFact)> {
        let mut given = super::second_factor::enrolled(10);
        given.push((
            t(0),
            AccountFact::ContactVerified {
                kind: crate::contact::ContactKind::Email,
                flow_id: sid(99),
            },
        ));
        stepped_up(given)
    }

    fn propose(at: DateTime<Utc>) -> AccountCommand {
        AccountCommand::ProposeWithdrawalAddress {
            address: NewWithdrawalAddress {
                asset: "BTC".into(),
                network: "bitcoin".into(),
                sealed_address: "v1.addr".into(),
                lookup: "addr-lookup".into(),
                sealed_label: "v1.label".into(),
                grant: FlowGrant {
                    flow_id: sid(90),
                    code: CodeGrant {
                        code_id: sid(91),
                        verifier: "code-v".into(),
                    },
                },
                proof: by_session(sid(70)),
            },
            at,
            context: ctx(),
        }
    }

    #[test]
    fn test_a_whitelisted_address_needs_a_code_then_waits_its_cooldown() {
        assert_eq!(
            run(
                stepped_up(super::second_factor::enrolled(10)),
                propose(t(1))
            ),
            Err(AccountError::EmailNotVerified)
        );
        let proposed = run(verified(), propose(t(1))).unwrap();
        assert!(matches!(
            &proposed[0],
            AccountFact::FlowStarted {
                kind: FlowKind::WhitelistAddress,
                ..
            }
        ));
        let mut given = then(verified(), proposed, t(1));
        given.push((
            t(1),
            AccountFact::WhitelistModeChanged {
                enabled: true,
                context: ctx(),
            },
        ));
        let state = state_of(given.clone());
        assert_eq!(
            state.check_withdrawal("addr-lookup", t(2)),
            Err(WithdrawalRefusal::NotWhitelisted),
            "a proposed address is not listed before its code"
        );
        let redeem = |verifier: &str| {
            AccountCommand::RedeemCode(RedeemCode {
                flow_id: sid(90),
                verifier: verifier.into(),
                action: CodeAction::ConfirmWithdrawalAddress,
                next_code: None,
                proof: Proof::default(),
                at: t(3),
                context: ctx(),
            })
        };
        let wrong = run(given.clone(), redeem("wrong")).unwrap();
        assert!(matches!(wrong[0], AccountFact::CodeAttemptFailed { .. }));
        let added = run(given.clone(), redeem("code-v")).unwrap();
        assert!(
            matches!(&added[1], AccountFact::WithdrawalAddressAdded { usable_from, .. } if *usable_from == t(3) + Duration::hours(24))
        );
        let state = state_of(then(given, added, t(3)));
        assert_eq!(
            state.check_withdrawal("addr-lookup", t(4)),
            Err(WithdrawalRefusal::AddressCoolingDown {
                until: t(3) + Duration::hours(24)
            })
        );
        assert_eq!(
            state.check_withdrawal("addr-lookup", t(3) + Duration::hours(24)),
            Ok(())
        );
        assert_eq!(
            state.check_withdrawal("other", t(3) + Duration::hours(24)),
            Err(WithdrawalRefusal::NotWhitelisted)
        );
    }

    #[test]
    fn test_a_proposal_needs_a_stepped_up_session_and_a_second_factor() {
        let with = |proof: Proof, at| {
            let mut cmd = propose(at);
            if let AccountCommand::ProposeWithdrawalAddress { address, .. } = &mut cmd {
                address.proof = proof;
            }
            cmd
        };
        // The password no longer stands in for a step-up.
        assert_eq!(
            run(verified(), with(by_password(PASSWORD), t(1))),
            Err(AccountError::StepUpRequired)
        );
        // A session that signed in but did not step up.
        let mut signed_in = super::second_factor::enrolled(10);
        signed_in.push((
            t(0),
            AccountFact::ContactVerified {
                kind: crate::contact::ContactKind::Email,
                flow_id: sid(99),
            },
        ));
        signed_in.push(started(t(1), sid(70)));
        assert_eq!(
            run(signed_in, with(by_session(sid(70)), t(1))),
            Err(AccountError::StepUpRequired)
        );
        // The step-up window has passed.
        assert_eq!(
            run(verified(), with(by_session(sid(70)), t(16))),
            Err(AccountError::StepUpRequired)
        );
        // Stepped up with the password on an account without a second factor.
        let no_factor = stepped_up(vec![
            registered(),
            (
                t(0),
                AccountFact::ContactVerified {
                    kind: crate::contact::ContactKind::Email,
                    flow_id: sid(99),
                },
            ),
        ]);
        assert_eq!(
            run(no_factor, with(by_session(sid(70)), t(2))),
            Err(AccountError::SecondFactorRequired)
        );
        assert!(run(verified(), with(by_session(sid(70)), t(2))).is_ok());
    }

    #[test]
    fn test_no_withdrawal_while_locked_or_for_an_unknown_account() {
        let mut given = verified();
        given.push(locked(t(1), t(20), 1));
        let state = state_of(given);
        assert_eq!(
            state.check_withdrawal("anything", t(2)),
            Err(WithdrawalRefusal::AccountLocked { until: t(20) })
        );
        assert_eq!(state.check_withdrawal("anything", t(20)), Ok(()));
        assert_eq!(
            Account::default().check_withdrawal("anything", t(2)),
            Err(WithdrawalRefusal::UnknownAccount)
        );
    }

    #[test]
    fn test_turning_the_whitelist_off_is_high_risk() {
        let mut given = verified();
        given.push((
            t(1),
            AccountFact::WhitelistModeChanged {
                enabled: true,
                context: ctx(),
            },
        ));
        let off = |at| AccountCommand::SetWhitelistMode {
            enabled: false,
            proof: by_session(sid(70)),
            at,
            context: ctx(),
        };
        let facts = run(given.clone(), off(t(2))).unwrap();
        assert!(matches!(
            facts[1],
            AccountFact::HighRiskCooldownStarted {
                reason: CooldownReason::WhitelistDisabled,
                ..
            }
        ));
        let state = state_of(then(given.clone(), facts, t(2)));
        assert!(matches!(
            state.check_withdrawal("anything", t(3)),
            Err(WithdrawalRefusal::HighRiskCooldown { .. })
        ));
        given.push((
            t(1),
            AccountFact::HighRiskCooldownStarted {
                until: t(100),
                reason: CooldownReason::PasswordReset,
            },
        ));
        assert!(matches!(
            run(given.clone(), off(t(2))),
            Err(AccountError::HighRiskCooldown { .. })
        ));
        assert!(matches!(
            run(given, propose(t(2))),
            Err(AccountError::HighRiskCooldown { .. })
        ));
    }
}
