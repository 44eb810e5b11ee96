//! Passkeys: registered under the proof policy (`AddPasskey`, `RemovePasskey`), a sign-in that
//! stands for password and second factor together, counters, user verification, and locks.
use super::*;

fn session() -> Uuid {
    sid(70)
}

/// Registered, email verified, signed in (session 70 at t(1)); no second factor.
fn plain() -> Vec<(DateTime<Utc>, AccountFact)> {
    vec![
        registered(),
        (
            t(0),
            AccountFact::ContactVerified {
                kind: crate::contact::ContactKind::Email,
                flow_id: sid(99),
            },
        ),
        started(t(1), session()),
    ]
}

fn passkey_registered(key_id: &str) -> (DateTime<Utc>, AccountFact) {
    (
        t(1),
        AccountFact::PasskeyRegistered {
            key_id: key_id.into(),
            name: "phone".into(),
            credential: serde_json::json!({"v": 0}),
            context: ctx(),
        },
    )
}

/// `plain`, with the passkey `pk-1` whose counter is at `counter`.
fn with_passkey(counter: u32) -> Vec<(DateTime<Utc>, AccountFact)> {
    let mut given = plain();
    given.push(passkey_registered("pk-1"));
    if counter > 0 {
        given.push((
            t(1),
            AccountFact::PasskeyUsed {
                key_id: "pk-1".into(),
                counter,
                credential: serde_json::json!({"v": counter}),
            },
        ));
    }
    given
}

fn register(key_id: &str, proof: Proof) -> AccountCommand {
    AccountCommand::RegisterPasskey(RegisterPasskey {
        key_id: key_id.into(),
        name: "phone".into(),
        credential: serde_json::json!({"v": 0}),
        proof: Proof {
            session_id: Some(session()),
            ..proof
        },
        at: t(2),
        context: ctx(),
    })
}

fn sign_in_with(key_id: &str, check: KeyCheck, user_verified: bool) -> AccountCommand {
    AccountCommand::SignInWithPasskey(SignInWithPasskey {
        key_id: key_id.into(),
        check,
        user_verified,
        grant: SessionGrant {
            device: crate::account::DeviceGrant {
                device_id: sid(81),
                token_hash: "device-hash".into(),
            },
            session_id: sid(80),
            token_hash: "h".into(),
        },
        device: None,
        at: t(30),
        context: ctx(),
    })
}

fn verified(counter: u32) -> KeyCheck {
    KeyCheck::Verified {
        counter,
        credential: serde_json::json!({"v": counter}),
    }
}

#[test]
fn test_row_add_passkey_needs_the_password_and_a_factor_when_enrolled() {
    let rule = SensitiveAction::AddPasskey.rule();
    assert_eq!(
        (rule.password, rule.factor, rule.stepped_up_session),
        (PasswordNeed::Yes, FactorNeed::WhenEnrolled, false)
    );
    // A stolen session alone adds no passkey: refused, nothing recorded.
    assert_eq!(
        run(plain(), register("pk-1", Proof::default())),
        Err(AccountError::WrongPassword)
    );
    // A wrong password is recorded and counted.
    let facts = run(plain(), register("pk-1", by_password("wrong"))).unwrap();
    assert_eq!(names(&facts), ["PasswordConfirmationFailed"]);
    // With a second factor enrolled, the password alone is not enough.
    let mut with_totp = super::second_factor::enrolled(10);
    with_totp.push(started(t(1), session()));
    assert_eq!(
        run(with_totp, register("pk-1", by_password(PASSWORD))),
        Err(AccountError::SecondFactorRequired)
    );
}

#[test]
fn test_register_passkey_records_it_and_starts_the_factor_added_cooldown() {
    let facts = run(plain(), register("pk-1", by_password(PASSWORD))).unwrap();
    assert_eq!(
        names(&facts),
        ["PasskeyRegistered", "HighRiskCooldownStarted"]
    );
    assert!(matches!(
        &facts[1],
        AccountFact::HighRiskCooldownStarted {
            reason: CooldownReason::SecondFactorAdded,
            ..
        }
    ));
    // A passkey is not a second factor of the password sign-in.
    let state = {
        let mut given = plain();
        given.push(passkey_registered("pk-1"));
        let mut account = Account::default();
        for e in history(given) {
            account.apply(e);
        }
        account
    };
    assert!(!state.has_second_factor());
    assert_eq!(state.passkeys().len(), 1);
    // The same credential twice, or one that is already a security key: refused.
    assert_eq!(
        run(with_passkey(0), register("pk-1", by_password(PASSWORD))),
        Err(AccountError::PasskeyUnknown)
    );
}

#[test]
fn test_row_remove_passkey_needs_the_password() {
    let rule = SensitiveAction::RemovePasskey.rule();
    assert_eq!(
        (rule.password, rule.factor),
        (PasswordNeed::Yes, FactorNeed::WhenEnrolled)
    );
    let remove = |proof: Proof| AccountCommand::RemovePasskey {
        key_id: "pk-1".into(),
        proof: Proof {
            session_id: Some(session()),
            ..proof
        },
        at: t(3),
        context: ctx(),
    };
    assert_eq!(
        run(with_passkey(0), remove(Proof::default())),
        Err(AccountError::WrongPassword)
    );
    let facts = run(with_passkey(0), remove(by_password(PASSWORD))).unwrap();
    assert_eq!(names(&facts), ["PasskeyRemoved"]);
    assert_eq!(
        run(plain(), remove(by_password(PASSWORD))),
        Err(AccountError::PasskeyUnknown)
    );
}

#[test]
fn test_sign_in_with_a_passkey_opens_a_session_like_a_password_sign_in() {
    let facts = run(with_passkey(3), sign_in_with("pk-1", verified(4), true)).unwrap();
    assert_eq!(
        names(&facts),
        [
            "PasskeyUsed",
            "LoginSucceeded",
            "DeviceTrusted",
            "SessionStarted"
        ]
    );
    assert!(matches!(
        &facts[1],
        AccountFact::LoginSucceeded {
            method: SignInMethod::Passkey,
            ..
        }
    ));
    assert!(matches!(
        &facts[0],
        AccountFact::PasskeyUsed { counter: 4, .. }
    ));
    // The passkey stands for the second factor too: no challenge on a TOTP account.
    let mut given = super::second_factor::enrolled(10);
    given.push(passkey_registered("pk-1"));
    let facts = run(given, sign_in_with("pk-1", verified(1), true)).unwrap();
    assert!(names(&facts).contains(&"SessionStarted"), "{facts:?}");
    assert!(!names(&facts).contains(&"MfaChallengeIssued"));
}

#[test]
fn test_sign_in_with_a_passkey_without_user_verification_is_refused() {
    let facts = run(with_passkey(3), sign_in_with("pk-1", verified(4), false)).unwrap();
    assert_eq!(
        facts,
        vec![AccountFact::PasskeySignInFailed {
            key_id: "pk-1".into(),
            reason: PasskeyFailureReason::UserNotVerified,
            context: ctx(),
        }]
    );
    let facts = run(
        with_passkey(3),
        sign_in_with("pk-1", KeyCheck::UserNotVerified, false),
    )
    .unwrap();
    assert_eq!(names(&facts), ["PasskeySignInFailed"]);
}

#[test]
fn test_sign_in_with_a_regressed_counter_is_refused_and_recorded() {
    let facts = run(
        with_passkey(5),
        sign_in_with("pk-1", KeyCheck::CounterRegressed, false),
    )
    .unwrap();
    assert_eq!(
        names(&facts),
        ["SecurityKeyCounterRegressed", "PasskeySignInFailed"]
    );
    // Even if the library had let it through, the aggregate checks the stored counter.
    let facts = run(with_passkey(5), sign_in_with("pk-1", verified(5), true)).unwrap();
    assert_eq!(
        names(&facts),
        ["SecurityKeyCounterRegressed", "PasskeySignInFailed"]
    );
    // A counter of zero: the authenticator keeps none (synced passkeys).
    let facts = run(with_passkey(0), sign_in_with("pk-1", verified(0), true)).unwrap();
    assert!(names(&facts).contains(&"SessionStarted"));
}

#[test]
fn test_unknown_or_invalid_passkeys_are_recorded_and_count_toward_no_lock() {
    let facts = run(with_passkey(0), sign_in_with("pk-9", verified(1), true)).unwrap();
    assert_eq!(
        facts,
        vec![AccountFact::PasskeySignInFailed {
            key_id: "pk-9".into(),
            reason: PasskeyFailureReason::UnknownPasskey,
            context: ctx(),
        }]
    );
    let facts = run(
        with_passkey(0),
        sign_in_with("pk-1", KeyCheck::Invalid, false),
    )
    .unwrap();
    assert_eq!(names(&facts), ["PasskeySignInFailed"]);
    assert!(!facts
        .iter()
        .any(|f| matches!(f, AccountFact::AccountLocked { .. })));
}

#[test]
fn test_a_lock_by_strangers_does_not_refuse_a_passkey_nor_is_lifted_by_it() {
    let mut given = with_passkey(0);
    for n in 1..=4 {
        given.push(failed(t(10 + i64::from(n)), n));
    }
    given.push(failed(t(15), 5));
    given.push(locked(t(15), t(60), 1));
    // The password door refuses even the right password…
    let facts = run(given.clone(), login(PASSWORD, t(30), sid(90))).unwrap();
    assert_eq!(names(&facts), ["LoginRejectedWhileLocked"]);
    // …the passkey signs in…
    let facts = run(given.clone(), sign_in_with("pk-1", verified(1), true)).unwrap();
    assert!(names(&facts).contains(&"SessionStarted"), "{facts:?}");
    // …and the lock stays: the strangers' door is still closed after the passkey sign-in.
    let mut after = given;
    let mut at = t(30);
    for fact in facts {
        after.push((at, fact));
        at += Duration::seconds(1);
    }
    let facts = run(after, login(PASSWORD, t(31), sid(91))).unwrap();
    assert_eq!(names(&facts), ["LoginRejectedWhileLocked"]);
}

#[test]
fn test_a_password_reset_revokes_every_passkey() {
    let mut account = Account::default();
    let mut given = with_passkey(0);
    given.push(passkey_registered("pk-2"));
    for e in history(given) {
        account.apply(e);
    }
    let facts = account.revoke_every_passkey(&ctx());
    assert_eq!(
        facts,
        vec![AccountFact::PasskeysRevoked {
            key_ids: vec!["pk-1".into(), "pk-2".into()],
            context: ctx(),
        }]
    );
    let mut given = with_passkey(0);
    given.push(passkey_registered("pk-2"));
    given.push((t(5), facts[0].clone()));
    let mut account = Account::default();
    for e in history(given) {
        account.apply(e);
    }
    assert!(account.passkeys().is_empty());
    assert!(account.revoke_every_passkey(&ctx()).is_empty());
}

#[test]
fn test_a_frozen_account_refuses_a_passkey_sign_in() {
    let mut given = with_passkey(0);
    given.push((
        t(5),
        AccountFact::AccountFrozen {
            by: FreezeActor::Owner {
                session_id: session(),
            },
            reason: None,
            context: ctx(),
        },
    ));
    let facts = run(given, sign_in_with("pk-1", verified(1), true)).unwrap();
    assert_eq!(names(&facts), ["LoginRefusedWhileFrozen"]);
}
