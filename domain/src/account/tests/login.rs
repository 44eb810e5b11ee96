//! Sign-up, password sign-in, lockout, sessions and the event chain.
use super::*;

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
                context: ctx(),
                familiar: false,
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
            context: ctx(),
            familiar: false,
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
                familiar: false,
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
