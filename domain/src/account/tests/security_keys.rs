//! Security keys: a second factor whose counter moves on, registration and removal.
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
