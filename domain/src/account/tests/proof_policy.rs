//! The proof policy: one given/when/then test per row of `PROOF_POLICY`, showing what the row
//! accepts and what it refuses, then the table's shape and the lockout that wrong proofs feed.
use std::collections::HashSet;

use super::*;
use crate::account::commands::ChangePassword;
use crate::contact::ContactKind;
use crate::policy::codes::{Channel, FlowKind};

type Given = Vec<(DateTime<Utc>, AccountFact)>;

/// The signed-in session making the requests.
fn session() -> Uuid {
    sid(70)
}

fn email_verified() -> (DateTime<Utc>, AccountFact) {
    (
        t(0),
        AccountFact::ContactVerified {
            kind: ContactKind::Email,
            flow_id: sid(99),
        },
    )
}

/// Registered, email verified, signed in (session 70 at t(1), not stepped up); no second factor.
fn plain() -> Given {
    vec![registered(), email_verified(), started(t(1), session())]
}

/// As `plain`, with TOTP confirmed at step 10 and backup codes `b0`, `b1`.
fn with_totp() -> Given {
    let mut given = super::second_factor::enrolled(10);
    given.push(email_verified());
    given.push(started(t(1), session()));
    given
}

/// As `plain`, with the security key `key-1` (counter 0) and backup codes `k0`, `k1`.
fn with_key() -> Given {
    vec![
        registered(),
        email_verified(),
        (
            t(0),
            AccountFact::SecurityKeyRegistered {
                key_id: "key-1".into(),
                name: "blue".into(),
                credential: serde_json::json!({"v": 0}),
                context: ctx(),
            },
        ),
        (
            t(0),
            AccountFact::BackupCodesGenerated {
                verifiers: vec!["k0".into(), "k1".into()],
                context: ctx(),
            },
        ),
        started(t(1), session()),
    ]
}

/// `given`, with session 70 stepped up at `at`.
fn stepped_up(mut given: Given, at: DateTime<Utc>) -> Given {
    given.push((
        at,
        AccountFact::SessionSteppedUp {
            session_id: session(),
            method: "totp".into(),
        },
    ));
    given
}

fn then(mut given: Given, facts: Vec<AccountFact>, at: DateTime<Utc>) -> Given {
    given.extend(facts.into_iter().map(|f| (at, f)));
    given
}

fn state_of(given: Given) -> Account {
    let mut state = Account::default();
    for e in history(given) {
        state.apply(e);
    }
    state
}

fn totp(step: u64) -> MfaProof {
    MfaProof::Totp {
        matched_step: Some(step),
    }
}

fn backup(verifier: &str) -> MfaProof {
    MfaProof::BackupCode {
        verifier: verifier.into(),
    }
}

fn key_assertion(counter: u32) -> MfaProof {
    MfaProof::SecurityKey {
        key_id: "key-1".into(),
        check: KeyCheck::Verified {
            counter,
            credential: serde_json::json!({ "v": counter }),
        },
    }
}

fn bad_key_assertion() -> MfaProof {
    MfaProof::SecurityKey {
        key_id: "key-1".into(),
        check: KeyCheck::Invalid,
    }
}

fn confirmation_failed(action: &str, n: u32) -> AccountFact {
    AccountFact::PasswordConfirmationFailed {
        door: Default::default(),
        action: action.into(),
        consecutive_failures: n,
        context: ctx(),
    }
}

fn api_key_created(key_id: Uuid, scopes: Vec<ApiScope>) -> (DateTime<Utc>, AccountFact) {
    (
        t(1),
        AccountFact::ApiKeyCreated {
            key_id,
            name: "bot".into(),
            scopes,
            allowed_ips: vec![],
            expires_at: None,
            verifier: format!("secret-{key_id}"),
            context: ctx(),
        },
    )
}

fn create_key(scopes: Vec<ApiScope>, proof: Proof, at: DateTime<Utc>) -> AccountCommand {
    AccountCommand::CreateApiKey {
        key: NewApiKey {
            key_id: sid(80),
            name: "bot".into(),
            scopes,
            allowed_ips: vec![],
            expires_at: None,
            verifier: "secret-80".into(),
        },
        proof,
        at,
        context: ctx(),
    }
}

fn step_up(proof: Proof, at: DateTime<Utc>) -> AccountCommand {
    AccountCommand::StepUp {
        session_id: session(),
        proof,
        at,
        context: ctx(),
    }
}

fn change_contact(proof: Proof) -> AccountCommand {
    change_contact_to(proof, false)
}

fn change_contact_to(proof: Proof, unavailable: bool) -> AccountCommand {
    AccountCommand::ChangeContact(ChangeContact {
        kind: ContactKind::Phone,
        contact: SealedContact {
            sealed: "new".into(),
            lookup: "new-phone".into(),
        },
        proof,
        unavailable,
        grant: FlowGrant {
            flow_id: sid(300),
            code: CodeGrant {
                code_id: sid(301),
                verifier: "v".into(),
            },
        },
        at: t(2),
        context: ctx(),
    })
}

fn change_password(session_id: Uuid, proof: Proof, new: &str) -> AccountCommand {
    AccountCommand::ChangePassword(ChangePassword {
        session_id,
        proof,
        new_password: PasswordPolicy::default().check(new, &[]).unwrap(),
        at: t(2),
        context: ctx(),
    })
}

fn regenerate(proof: Proof) -> AccountCommand {
    AccountCommand::RegenerateBackupCodes {
        proof,
        verifiers: vec!["r0".into(), "r1".into(), "r2".into()],
        at: t(2),
        context: ctx(),
    }
}

fn set_phrase(phrase: Option<&str>, proof: Proof) -> AccountCommand {
    AccountCommand::SetAntiPhishingPhrase {
        sealed_phrase: phrase.map(str::to_string),
        proof,
        at: t(2),
        context: ctx(),
    }
}

/// `given` with a forgot-password flow whose code is `reset-code`, issued at t(2).
fn reset_flow(mut given: Given) -> Given {
    given.push((
        t(2),
        AccountFact::FlowStarted {
            flow_id: sid(100),
            kind: FlowKind::ResetPassword,
            context: ctx(),
        },
    ));
    given.push((
        t(2),
        AccountFact::CodeIssued {
            requester: None,
            flow_id: sid(100),
            code_id: sid(101),
            channel: Channel::Email,
            verifier: "reset-code".into(),
            expires_at: t(12),
            deliverable: true,
            context: ctx(),
        },
    ));
    given
}

fn reset(verifier: &str, proof: Proof) -> AccountCommand {
    AccountCommand::RedeemCode(RedeemCode {
        flow_id: sid(100),
        verifier: verifier.into(),
        action: CodeAction::ResetPassword(
            PasswordPolicy::default()
                .check("a new long passphrase", &[])
                .unwrap(),
        ),
        next_code: None,
        proof,
        at: t(3),
        context: ctx(),
    })
}

/// The failure count a refused proof recorded.
fn counted(fact: &AccountFact) -> Option<u32> {
    match fact {
        AccountFact::PasswordConfirmationFailed {
            consecutive_failures,
            ..
        }
        | AccountFact::SecondFactorFailed {
            consecutive_failures,
            ..
        }
        | AccountFact::LoginFailed {
            consecutive_failures,
            ..
        } => Some(*consecutive_failures),
        _ => None,
    }
}

#[test]
fn test_row_add_second_factor_needs_the_password_and_a_current_factor_and_keeps_backup_codes() {
    let rule = SensitiveAction::AddSecondFactor.rule();
    assert_eq!(
        (rule.password, rule.factor, rule.stepped_up_session),
        (PasswordNeed::Yes, FactorNeed::WhenEnrolled, false)
    );
    let pending = |mut given: Given| {
        given.push((
            t(1),
            AccountFact::TotpEnrolmentStarted {
                sealed_secret: "v1.new-secret".into(),
                context: ctx(),
            },
        ));
        given
    };
    let confirm = |proof| AccountCommand::ConfirmTotpEnrolment {
        matched_step: Some(20),
        backup_verifiers: vec!["n0".into(), "n1".into(), "n2".into()],
        proof,
        at: t(2),
        context: ctx(),
    };
    let keyed = pending(with_key());

    // A stolen session alone adds nothing, with or without a factor enrolled.
    assert_eq!(
        run(keyed.clone(), confirm(by_session(session()))),
        Err(AccountError::SecondFactorRequired)
    );
    assert_eq!(
        run(pending(plain()), confirm(by_session(session()))),
        Err(AccountError::WrongPassword)
    );
    // The password without a current factor, on an account protected by a key.
    assert_eq!(
        run(keyed.clone(), confirm(by_password(PASSWORD))),
        Err(AccountError::SecondFactorRequired)
    );
    // The factor without the password.
    assert_eq!(
        run(keyed.clone(), confirm(by_factor(key_assertion(1)))),
        Err(AccountError::WrongPassword)
    );
    // A wrong password is recorded and counted.
    assert_eq!(
        run(
            keyed.clone(),
            confirm(by_password_and("not the password", key_assertion(1)))
        ),
        Ok(vec![confirmation_failed("add_second_factor", 1)])
    );
    // A wrong factor is recorded and counted; nothing is enrolled.
    let facts = run(
        keyed.clone(),
        confirm(by_password_and(PASSWORD, bad_key_assertion())),
    )
    .unwrap();
    assert!(matches!(
        facts.as_slice(),
        [AccountFact::SecondFactorFailed {
            consecutive_failures: 1,
            ..
        }]
    ));
    let state = state_of(then(keyed.clone(), facts, t(2)));
    assert_eq!(state.consecutive_failures(), 1);
    assert!(!state.has_totp());
    // Password and a current factor: enrolled, and the owner's backup codes are kept.
    let facts = run(
        keyed.clone(),
        confirm(by_password_and(PASSWORD, key_assertion(1))),
    )
    .unwrap();
    assert_eq!(
        names(&facts),
        [
            "SecondFactorVerified",
            "SecurityKeyUsed",
            "TotpEnrolled",
            "HighRiskCooldownStarted"
        ]
    );
    assert_eq!(
        facts[3],
        AccountFact::HighRiskCooldownStarted {
            until: t(2) + Duration::hours(24),
            reason: CooldownReason::SecondFactorAdded
        }
    );
    let state = state_of(then(keyed, facts, t(2)));
    assert!(state.has_totp());
    assert_eq!(state.backup_codes_left(), 2);
    assert!(state.check_proof(&backup("k0")).is_some());
    assert!(state.check_proof(&backup("n0")).is_none());
    // The first factor needs the password only, and brings the first backup codes.
    let facts = run(pending(plain()), confirm(by_password(PASSWORD))).unwrap();
    assert_eq!(
        names(&facts),
        [
            "TotpEnrolled",
            "BackupCodesGenerated",
            "HighRiskCooldownStarted"
        ]
    );
    // A security key reads the same row: on a TOTP account it needs a current code too.
    let register = |proof| AccountCommand::RegisterSecurityKey {
        key_id: "key-2".into(),
        name: "green".into(),
        credential: serde_json::json!({}),
        proof,
        backup_verifiers: vec!["n0".into()],
        at: t(2),
        context: ctx(),
    };
    assert_eq!(
        run(with_totp(), register(by_password(PASSWORD))),
        Err(AccountError::SecondFactorRequired)
    );
    let facts = run(with_totp(), register(by_password_and(PASSWORD, totp(10)))).unwrap();
    assert_eq!(names(&facts), ["SecondFactorFailed"], "a replayed step");
    let facts = run(with_totp(), register(by_password_and(PASSWORD, totp(11)))).unwrap();
    assert_eq!(
        names(&facts),
        [
            "SecondFactorVerified",
            "SecurityKeyRegistered",
            "HighRiskCooldownStarted"
        ]
    );
}

#[test]
fn test_row_regenerate_backup_codes_needs_the_password_and_an_enrolled_current_factor() {
    let rule = SensitiveAction::RegenerateBackupCodes.rule();
    assert_eq!(
        (rule.password, rule.factor),
        (PasswordNeed::Yes, FactorNeed::Yes)
    );
    assert_eq!(
        run(plain(), regenerate(by_password(PASSWORD))),
        Err(AccountError::NoSecondFactor)
    );
    assert_eq!(
        run(with_totp(), regenerate(by_session(session()))),
        Err(AccountError::SecondFactorRequired)
    );
    assert_eq!(
        run(with_totp(), regenerate(by_password(PASSWORD))),
        Err(AccountError::SecondFactorRequired)
    );
    // A factor alone no longer suffices: a thief who stepped up with a stolen backup code must
    // not mint a fresh set.
    assert_eq!(
        run(with_totp(), regenerate(by_factor(totp(11)))),
        Err(AccountError::WrongPassword)
    );
    assert_eq!(
        run(
            with_totp(),
            regenerate(by_password_and("not the password", totp(11)))
        ),
        Ok(vec![confirmation_failed("regenerate_backup_codes", 1)])
    );
    let facts = run(
        with_totp(),
        regenerate(by_password_and(PASSWORD, backup("nope"))),
    )
    .unwrap();
    assert!(matches!(
        facts.as_slice(),
        [AccountFact::SecondFactorFailed { method, consecutive_failures: 1, .. }] if method == "backup_code"
    ));
    let facts = run(
        with_totp(),
        regenerate(by_password_and(PASSWORD, backup("b0"))),
    )
    .unwrap();
    assert!(matches!(
        facts[0],
        AccountFact::SecondFactorVerified {
            backup_code: Some(0),
            ..
        }
    ));
    assert_eq!(
        names(&facts),
        ["SecondFactorVerified", "BackupCodesGenerated"]
    );
    // The old set stops working.
    let state = state_of(then(with_totp(), facts, t(2)));
    assert_eq!(state.backup_codes_left(), 3);
    assert!(state.check_proof(&backup("b1")).is_none());
    assert!(state.check_proof(&backup("r1")).is_some());
}

#[test]
fn test_row_remove_second_factor_needs_the_password_and_a_current_factor() {
    let rule = SensitiveAction::RemoveSecondFactor.rule();
    assert_eq!(
        (rule.password, rule.factor),
        (PasswordNeed::Yes, FactorNeed::Yes)
    );
    let remove = |proof| AccountCommand::RemoveSecondFactor {
        proof,
        at: t(2),
        context: ctx(),
    };
    assert_eq!(
        run(plain(), remove(by_password(PASSWORD))),
        Err(AccountError::NoSecondFactor)
    );
    assert_eq!(
        run(with_totp(), remove(by_session(session()))),
        Err(AccountError::SecondFactorRequired)
    );
    assert_eq!(
        run(with_totp(), remove(by_password(PASSWORD))),
        Err(AccountError::SecondFactorRequired)
    );
    assert_eq!(
        run(with_totp(), remove(by_factor(totp(11)))),
        Err(AccountError::WrongPassword)
    );
    assert_eq!(
        run(
            with_totp(),
            remove(by_password_and("not the password", totp(11)))
        ),
        Ok(vec![confirmation_failed("remove_second_factor", 1)])
    );
    assert_eq!(
        names(&run(with_totp(), remove(by_password_and(PASSWORD, totp(10)))).unwrap()),
        ["SecondFactorFailed"]
    );
    let facts = run(with_totp(), remove(by_password_and(PASSWORD, totp(11)))).unwrap();
    assert_eq!(
        names(&facts),
        [
            "SecondFactorVerified",
            "SecondFactorRemoved",
            "HighRiskCooldownStarted"
        ]
    );
    // Removing a single key reads the same row.
    let remove_key = |proof| AccountCommand::RemoveSecurityKey {
        key_id: "key-1".into(),
        proof,
        at: t(2),
        context: ctx(),
    };
    assert_eq!(
        run(with_key(), remove_key(by_password(PASSWORD))),
        Err(AccountError::SecondFactorRequired)
    );
    assert_eq!(
        run(with_key(), remove_key(by_factor(key_assertion(1)))),
        Err(AccountError::WrongPassword)
    );
    assert!(run(
        with_key(),
        remove_key(by_password_and(PASSWORD, key_assertion(1)))
    )
    .unwrap()
    .iter()
    .any(|f| matches!(f, AccountFact::SecurityKeyRemoved { .. })));
}

#[test]
fn test_row_change_contact_needs_the_password_and_a_factor_when_enrolled_and_starts_a_cooldown() {
    let rule = SensitiveAction::ChangeContact.rule();
    assert_eq!(
        (rule.password, rule.factor),
        (PasswordNeed::Yes, FactorNeed::WhenEnrolled)
    );
    // No factor enrolled: the password.
    assert_eq!(
        run(plain(), change_contact(by_session(session()))),
        Err(AccountError::WrongPassword)
    );
    assert_eq!(
        run(plain(), change_contact(by_password("not the password"))),
        Ok(vec![confirmation_failed("change_contact", 1)])
    );
    let facts = run(plain(), change_contact(by_password(PASSWORD))).unwrap();
    assert_eq!(
        names(&facts),
        [
            "HighRiskCooldownStarted",
            "ContactChangeRequested",
            "FlowStarted",
            "CodeIssued"
        ]
    );
    assert_eq!(
        facts[0],
        AccountFact::HighRiskCooldownStarted {
            until: t(2) + Duration::hours(24),
            reason: CooldownReason::ContactChanged
        }
    );
    let state = state_of(then(plain(), facts, t(2)));
    assert_eq!(state.high_risk_reasons(t(3)), ["contact_changed"]);
    assert!(state
        .high_risk_reasons(t(2) + Duration::hours(24))
        .is_empty());
    // Another account's contact: the same proof is asked, and then nothing is claimed (a
    // verification flow whose code is never sent).
    assert_eq!(
        run(plain(), change_contact_to(by_session(session()), true)),
        Err(AccountError::WrongPassword)
    );
    // The same facts as for a free contact (nothing tells them apart), but its code is sent
    // nowhere, so the request can never be verified.
    let facts = run(plain(), change_contact_to(by_password(PASSWORD), true)).unwrap();
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
        facts[3],
        AccountFact::CodeIssued {
            deliverable: false,
            ..
        }
    ));
    // A resend of that flow (past the resend wait) sends nothing either: the other account's
    // holder never receives a code that would verify the request.
    let resend = || AccountCommand::ResendCode {
        flow_id: sid(300),
        channel: None,
        code: CodeGrant {
            code_id: sid(302),
            verifier: "again".into(),
        },
        at: t(5),
        context: ctx(),
    };
    let requested = then(plain(), facts.clone(), t(2));
    assert!(matches!(
        run(requested, resend()).unwrap().as_slice(),
        [AccountFact::CodeIssued {
            deliverable: false,
            ..
        }]
    ));
    // A free one's resend goes out (to the requested phone; the account has none yet).
    let free = run(plain(), change_contact_to(by_password(PASSWORD), false)).unwrap();
    let requested = then(plain(), free, t(2));
    assert!(matches!(
        run(requested, resend()).unwrap().as_slice(),
        [AccountFact::CodeIssued {
            deliverable: true,
            ..
        }]
    ));
    // TOTP enrolled: the password alone is not enough, session + password is not the owner.
    assert_eq!(
        run(with_totp(), change_contact(by_password(PASSWORD))),
        Err(AccountError::SecondFactorRequired)
    );
    let facts = run(
        with_totp(),
        change_contact(by_password_and(PASSWORD, totp(10))),
    )
    .unwrap();
    assert_eq!(names(&facts), ["SecondFactorFailed"], "nothing changes");
    let facts = run(
        with_totp(),
        change_contact(by_password_and(PASSWORD, totp(11))),
    )
    .unwrap();
    assert_eq!(
        names(&facts),
        [
            "SecondFactorVerified",
            "HighRiskCooldownStarted",
            "ContactChangeRequested",
            "FlowStarted",
            "CodeIssued"
        ]
    );
}

#[test]
fn test_row_change_password_ends_other_sessions_but_keeps_the_callers() {
    let rule = SensitiveAction::ChangePassword.rule();
    assert_eq!(
        (rule.password, rule.factor),
        (PasswordNeed::Yes, FactorNeed::WhenEnrolled)
    );
    let mut given = plain();
    given.push(started(t(1), sid(71)));
    given.push(started(t(1), sid(72)));
    let new = "a brand new passphrase";
    assert_eq!(
        run(
            given.clone(),
            change_password(session(), by_session(session()), new)
        ),
        Err(AccountError::WrongPassword)
    );
    assert_eq!(
        run(
            given.clone(),
            change_password(session(), by_password("not the password"), new)
        ),
        Ok(vec![confirmation_failed("change_password", 1)])
    );
    assert_eq!(
        run(
            given.clone(),
            change_password(sid(79), by_password(PASSWORD), new)
        ),
        Err(AccountError::SessionNotFound)
    );
    assert_eq!(
        run(
            given.clone(),
            change_password(session(), by_password(PASSWORD), PASSWORD)
        ),
        Err(AccountError::PasswordReused)
    );
    let facts = run(
        given.clone(),
        change_password(session(), by_password(PASSWORD), new),
    )
    .unwrap();
    assert_eq!(
        facts,
        vec![
            AccountFact::PasswordChanged {
                password_hash: PasswordHash(format!("fake${new}")),
                session_id: session(),
                context: ctx(),
            },
            AccountFact::SessionEnded {
                session_id: sid(71),
                reason: SessionEndReason::PasswordChanged,
                context: ctx(),
            },
            AccountFact::SessionEnded {
                session_id: sid(72),
                reason: SessionEndReason::PasswordChanged,
                context: ctx(),
            },
            AccountFact::HighRiskCooldownStarted {
                until: t(2) + Duration::hours(24),
                reason: CooldownReason::PasswordChanged,
            },
        ]
    );
    let after = then(given, facts, t(2));
    let live: Vec<Uuid> = state_of(after.clone())
        .live_sessions(t(3))
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(live, [session()]);
    // The old password stops working at sign-in; the new one works.
    assert!(matches!(
        run(after.clone(), login(PASSWORD, t(3), sid(80))).unwrap()[0],
        AccountFact::LoginFailed { .. }
    ));
    assert!(matches!(
        run(after, login(new, t(3), sid(80))).unwrap()[0],
        AccountFact::LoginSucceeded { .. }
    ));
    // With TOTP enrolled, a current code comes with the password.
    assert_eq!(
        run(
            with_totp(),
            change_password(session(), by_password(PASSWORD), new)
        ),
        Err(AccountError::SecondFactorRequired)
    );
    let facts = run(
        with_totp(),
        change_password(session(), by_password_and(PASSWORD, totp(11)), new),
    )
    .unwrap();
    assert_eq!(
        names(&facts),
        [
            "SecondFactorVerified",
            "PasswordChanged",
            "HighRiskCooldownStarted"
        ]
    );
}

#[test]
fn test_row_reset_password_needs_a_factor_when_enrolled_and_keeps_the_code_without_one() {
    let rule = SensitiveAction::ResetPassword.rule();
    assert_eq!(
        (rule.password, rule.factor, rule.refused_while_locked),
        (PasswordNeed::No, FactorNeed::WhenEnrolled, false)
    );
    let given = reset_flow(with_totp());
    // The inbox alone does not reset a TOTP account: the code is kept (not used), and the
    // flow records that it asked for the factor (so it may ask for a key challenge).
    let flow = sid(100);
    let asked = run(given.clone(), reset("reset-code", Proof::default()));
    assert_eq!(
        asked,
        Ok(vec![AccountFact::ResetFactorAsked { flow_id: flow }])
    );
    assert!(!state_of(given.clone()).reset_factor_asked(flow, t(2)));
    let after = then(given.clone(), asked.unwrap(), t(2));
    assert!(state_of(after.clone()).reset_factor_asked(flow, t(2)));
    assert!(
        !state_of(after).reset_factor_asked(flow, t(2) + Duration::hours(1)),
        "not once the code expired"
    );
    // The password does not stand in for the factor.
    assert_eq!(
        run(given.clone(), reset("reset-code", by_password(PASSWORD))),
        Ok(vec![AccountFact::ResetFactorAsked { flow_id: flow }])
    );
    // A wrong code is a wrong code, whatever the factor.
    assert_eq!(
        names(&run(given.clone(), reset("nope", by_factor(totp(11)))).unwrap()),
        ["CodeAttemptFailed"]
    );
    // A wrong factor counts toward the lockout and spends one of the code's tries.
    let facts = run(given.clone(), reset("reset-code", by_factor(totp(10)))).unwrap();
    assert_eq!(
        facts,
        vec![
            AccountFact::SecondFactorFailed {
                door: Default::default(),
                challenge_id: None,
                method: "totp".into(),
                consecutive_failures: 1,
                context: ctx(),
            },
            AccountFact::CodeAttemptFailed {
                flow_id: sid(100),
                code_id: sid(101),
                attempts: 1,
                context: ctx(),
            },
        ]
    );
    // The fifth wrong factor exhausts the code.
    let mut worn = given.clone();
    for attempts in 1..=4 {
        worn.push((
            t(2),
            AccountFact::CodeAttemptFailed {
                flow_id: sid(100),
                code_id: sid(101),
                attempts,
                context: ctx(),
            },
        ));
    }
    assert!(matches!(
        run(worn, reset("reset-code", by_factor(totp(10))))
            .unwrap()
            .last(),
        Some(AccountFact::CodeExhausted { .. })
    ));
    // The same code, still unspent, then works with a current factor.
    let facts = run(given.clone(), reset("reset-code", by_factor(totp(11)))).unwrap();
    assert_eq!(
        names(&facts),
        [
            "SecondFactorVerified",
            "CodeUsed",
            "PasswordReset",
            "SessionEnded",
            "HighRiskCooldownStarted"
        ]
    );
    // A backup code is a factor too.
    assert!(matches!(
        run(given, reset("reset-code", by_factor(backup("b1")))).unwrap()[0],
        AccountFact::SecondFactorVerified {
            backup_code: Some(1),
            ..
        }
    ));
    // Without a second factor the code is the proof.
    assert!(matches!(
        run(reset_flow(plain()), reset("reset-code", Proof::default())).unwrap()[0],
        AccountFact::CodeUsed { .. }
    ));
    // A lock does not bar the way out: the reset proven with a factor lifts it.
    let mut locked_out = with_totp();
    locked_out.push(failed(t(1), 5));
    locked_out.push(locked(t(1), t(16), 1));
    let facts = run(
        reset_flow(locked_out),
        reset("reset-code", by_factor(totp(11))),
    )
    .unwrap();
    assert!(facts.iter().any(|f| matches!(
        f,
        AccountFact::AccountUnlocked {
            reason: UnlockReason::PasswordReset,
            ..
        }
    )));
}

#[test]
fn test_reset_and_lost_factor_recovery_revoke_every_api_key() {
    let mut given = plain();
    given.push(api_key_created(
        sid(80),
        vec![ApiScope::Read, ApiScope::Trade],
    ));
    given.push(api_key_created(sid(81), vec![ApiScope::Read]));
    given.push(api_key_created(sid(82), vec![ApiScope::Read]));
    given.push((
        t(1),
        AccountFact::ApiKeyRevoked {
            key_id: sid(82),
            context: ctx(),
        },
    ));
    let facts = run(
        reset_flow(given.clone()),
        reset("reset-code", Proof::default()),
    )
    .unwrap();
    let revoked: Vec<Uuid> = facts
        .iter()
        .filter_map(|f| match f {
            AccountFact::ApiKeyRevoked { key_id, .. } => Some(*key_id),
            _ => None,
        })
        .collect();
    assert_eq!(
        revoked,
        [sid(80), sid(81)],
        "the revoked one is not revoked again"
    );
    let state = state_of(then(reset_flow(given.clone()), facts, t(3)));
    assert_eq!(
        state
            .check_api_key(sid(80), &format!("secret-{}", sid(80)), None, t(4))
            .err(),
        Some(ApiKeyRefusal::Revoked)
    );

    // A lost-second-factor recovery that completes revokes them too.
    given.extend([
        (
            t(1),
            AccountFact::FlowStarted {
                flow_id: sid(700),
                kind: FlowKind::LostSecondFactor,
                context: ctx(),
            },
        ),
        (
            t(1),
            AccountFact::CodeIssued {
                requester: None,
                flow_id: sid(700),
                code_id: sid(701),
                channel: Channel::Email,
                verifier: "lost-code".into(),
                expires_at: t(11),
                deliverable: true,
                context: ctx(),
            },
        ),
    ]);
    let commands = [
        AccountCommand::RedeemCode(RedeemCode {
            flow_id: sid(700),
            verifier: "lost-code".into(),
            action: CodeAction::RecoveryStep,
            next_code: None,
            proof: Proof::default(),
            at: t(2),
            context: ctx(),
        }),
        AccountCommand::SubmitRecoveryEvidence {
            flow_id: sid(700),
            sealed_evidence: "v1.sealed".into(),
            at: t(3),
            context: ctx(),
        },
        AccountCommand::ReviewRecovery {
            flow_id: sid(700),
            approve: true,
            reviewer: "rita".into(),
            reason: "passport matches".into(),
            at: t(4),
        },
    ];
    for (n, command) in commands.into_iter().enumerate() {
        let facts = run(given.clone(), command).unwrap();
        given = then(given, facts, t(2 + n as i64));
    }
    let facts = run(
        given,
        AccountCommand::CompleteRecovery {
            flow_id: sid(700),
            at: t(4) + Duration::hours(48),
            context: ctx(),
        },
    )
    .unwrap();
    let revoked: Vec<Uuid> = facts
        .iter()
        .filter_map(|f| match f {
            AccountFact::ApiKeyRevoked { key_id, .. } => Some(*key_id),
            _ => None,
        })
        .collect();
    assert_eq!(revoked, [sid(80), sid(81)]);
}

#[test]
fn test_row_step_up_takes_a_factor_or_the_password_when_none_is_enrolled() {
    let rule = SensitiveAction::StepUp.rule();
    assert_eq!(
        (rule.password, rule.factor),
        (PasswordNeed::UnlessFactorEnrolled, FactorNeed::WhenEnrolled)
    );
    let window = SessionPolicy::default().step_up;
    // No factor enrolled: the password.
    assert_eq!(
        run(plain(), step_up(by_session(session()), t(2))),
        Err(AccountError::WrongPassword)
    );
    assert_eq!(
        run(plain(), step_up(by_password("not the password"), t(2))),
        Ok(vec![confirmation_failed("step_up", 1)])
    );
    let facts = run(plain(), step_up(by_password(PASSWORD), t(2))).unwrap();
    assert_eq!(
        facts,
        vec![AccountFact::SessionSteppedUp {
            session_id: session(),
            method: "password".into()
        }]
    );
    let stepped = then(plain(), facts, t(2));
    let state = state_of(stepped.clone());
    assert!(state.is_stepped_up(session(), t(2) + window - Duration::seconds(1), window));
    assert!(!state.is_stepped_up(session(), t(2) + window, window));
    assert!(!state.is_stepped_up(sid(79), t(3), window));
    // A password step-up stops counting once a factor is enrolled: a session + password that
    // enrols TOTP must not pass for a factor-proven session (the withdrawal controls).
    let mut enrolled = stepped;
    enrolled.push((
        t(3),
        AccountFact::SecurityKeyRegistered {
            key_id: "key-9".into(),
            name: "new".into(),
            credential: serde_json::json!({"v": 0}),
            context: ctx(),
        },
    ));
    let state = state_of(enrolled.clone());
    assert!(!state.is_stepped_up(session(), t(4), window));
    assert_eq!(
        state.check_session_proof(
            SensitiveAction::WithdrawalControls,
            Some(session()),
            t(4),
            &SessionPolicy::default()
        ),
        Err(AccountError::StepUpRequired)
    );
    // Only an open session of this account steps up.
    assert_eq!(
        run(
            plain(),
            AccountCommand::StepUp {
                session_id: sid(79),
                proof: by_password(PASSWORD),
                at: t(2),
                context: ctx(),
            }
        ),
        Err(AccountError::SessionNotFound)
    );
    // A factor enrolled: the password no longer does, a current factor does.
    assert_eq!(
        run(with_totp(), step_up(by_password(PASSWORD), t(2))),
        Err(AccountError::SecondFactorRequired)
    );
    assert_eq!(
        names(&run(with_totp(), step_up(by_factor(totp(10)), t(2))).unwrap()),
        ["SecondFactorFailed"]
    );
    let facts = run(with_totp(), step_up(by_factor(totp(11)), t(2))).unwrap();
    assert!(matches!(
        facts.as_slice(),
        [
            AccountFact::SecondFactorVerified { .. },
            AccountFact::SessionSteppedUp { method, .. }
        ] if method == "totp"
    ));
}

#[test]
fn test_signing_in_with_a_second_factor_does_not_step_up() {
    let mut given = with_totp();
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
    let facts = run(
        given.clone(),
        AccountCommand::CompleteMfa(CompleteMfa {
            challenge_id: sid(50),
            proof: totp(11),
            grant: SessionGrant {
                device: crate::account::DeviceGrant {
                    device_id: Uuid::nil(),
                    token_hash: "device-hash".into(),
                },
                session_id: sid(51),
                token_hash: "h51".into(),
            },
            at: t(2),
            context: ctx(),
        }),
    )
    .unwrap();
    assert!(facts.iter().any(
        |f| matches!(f, AccountFact::SessionStarted { session_id, .. } if *session_id == sid(51))
    ));
    assert!(!facts
        .iter()
        .any(|f| matches!(f, AccountFact::SessionSteppedUp { .. })));
    let given = then(given, facts, t(2));
    let window = SessionPolicy::default().step_up;
    assert!(!state_of(given.clone()).is_stepped_up(sid(51), t(3), window));
    // So the fresh session cannot yet create an API key.
    assert_eq!(
        run(
            given,
            create_key(vec![ApiScope::Read], by_session(sid(51)), t(3))
        ),
        Err(AccountError::StepUpRequired)
    );
}

#[test]
fn test_row_manage_api_keys_needs_a_stepped_up_session() {
    let rule = SensitiveAction::ManageApiKeys.rule();
    assert_eq!(
        (
            rule.password,
            rule.factor,
            rule.stepped_up_session,
            rule.enrolled_factor
        ),
        (PasswordNeed::No, FactorNeed::No, true, false)
    );
    let read = || vec![ApiScope::Read, ApiScope::Trade];
    // Neither no session, nor a session that did not step up, nor the password.
    for proof in [
        Proof::default(),
        by_session(session()),
        by_password(PASSWORD),
        by_factor(totp(11)),
    ] {
        assert_eq!(
            run(with_totp(), create_key(read(), proof, t(2))),
            Err(AccountError::StepUpRequired)
        );
    }
    // A stepped-up session, within the window, even without a second factor enrolled.
    let facts = run(
        stepped_up(plain(), t(1)),
        create_key(read(), by_session(session()), t(2)),
    )
    .unwrap();
    assert_eq!(names(&facts), ["ApiKeyCreated"]);
    assert_eq!(
        run(
            stepped_up(plain(), t(1)),
            create_key(read(), by_session(session()), t(16))
        ),
        Err(AccountError::StepUpRequired),
        "the step-up window has passed"
    );
    // Another session's step-up does not count.
    let mut other = plain();
    other.push(started(t(1), sid(71)));
    assert_eq!(
        run(
            stepped_up(other, t(1)),
            create_key(read(), by_session(sid(71)), t(2))
        ),
        Err(AccountError::StepUpRequired)
    );
    // Rotation reads the same row.
    let mut given = plain();
    given.push(api_key_created(sid(80), read()));
    let rotate = |proof| AccountCommand::RotateApiKey {
        key_id: sid(80),
        verifier: "secret-new".into(),
        grace: Duration::minutes(10),
        proof,
        at: t(2),
        context: ctx(),
    };
    assert_eq!(
        run(given.clone(), rotate(by_session(session()))),
        Err(AccountError::StepUpRequired)
    );
    assert_eq!(
        names(&run(stepped_up(given, t(1)), rotate(by_session(session()))).unwrap()),
        ["ApiKeyRotated"]
    );
}

#[test]
fn test_row_manage_team_needs_a_stepped_up_session() {
    let rule = SensitiveAction::ManageTeam.rule();
    assert_eq!(
        (
            rule.password,
            rule.factor,
            rule.stepped_up_session,
            rule.enrolled_factor
        ),
        (PasswordNeed::No, FactorNeed::No, true, false)
    );
    let policy = SessionPolicy::default();
    let check = |state: &Account, session_id, at| {
        state.check_session_proof(SensitiveAction::ManageTeam, session_id, at, &policy)
    };
    let signed_in = state_of(plain());
    assert_eq!(
        check(&signed_in, None, t(2)),
        Err(AccountError::StepUpRequired)
    );
    assert_eq!(
        check(&signed_in, Some(session()), t(2)),
        Err(AccountError::StepUpRequired)
    );
    let stepped = state_of(stepped_up(plain(), t(1)));
    assert_eq!(check(&stepped, Some(session()), t(2)), Ok(()));
    assert_eq!(
        check(&stepped, Some(session()), t(16)),
        Err(AccountError::StepUpRequired)
    );
    assert_eq!(
        check(&stepped, Some(sid(79)), t(2)),
        Err(AccountError::StepUpRequired)
    );
    // Rows that ask for the password or a factor cannot be checked from the session alone.
    for action in [
        SensitiveAction::StepUp,
        SensitiveAction::ChangeContact,
        SensitiveAction::AntiPhishingPhrase,
    ] {
        assert_eq!(
            stepped.check_session_proof(action, Some(session()), t(2), &policy),
            Err(AccountError::WrongPassword),
            "{action:?}"
        );
    }
}

#[test]
fn test_row_withdrawal_controls_need_a_stepped_up_session_and_an_enrolled_factor() {
    let rule = SensitiveAction::WithdrawalControls.rule();
    assert_eq!(
        (rule.stepped_up_session, rule.enrolled_factor),
        (true, true)
    );
    let withdraw = || vec![ApiScope::Withdraw];
    // A withdraw-scoped key.
    assert_eq!(
        run(
            stepped_up(plain(), t(1)),
            create_key(withdraw(), by_session(session()), t(2))
        ),
        Err(AccountError::SecondFactorRequired)
    );
    assert_eq!(
        run(
            with_totp(),
            create_key(withdraw(), by_session(session()), t(2))
        ),
        Err(AccountError::StepUpRequired)
    );
    let facts = run(
        stepped_up(with_totp(), t(1)),
        create_key(withdraw(), by_session(session()), t(2)),
    )
    .unwrap();
    assert_eq!(names(&facts), ["ApiKeyCreated", "HighRiskCooldownStarted"]);
    // A proposal (the code then goes to the verified email).
    let propose = || AccountCommand::ProposeWithdrawalAddress {
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
            proof: by_session(session()),
        },
        at: t(2),
        context: ctx(),
    };
    assert_eq!(
        run(with_totp(), propose()),
        Err(AccountError::StepUpRequired)
    );
    assert_eq!(
        run(stepped_up(plain(), t(1)), propose()),
        Err(AccountError::SecondFactorRequired)
    );
    assert_eq!(
        names(&run(stepped_up(with_totp(), t(1)), propose()).unwrap()),
        ["FlowStarted", "WithdrawalAddressProposed", "CodeIssued"]
    );
    // Whitelist-only withdrawals: on is always allowed, off reads the row.
    let mode = |enabled, proof| AccountCommand::SetWhitelistMode {
        enabled,
        proof,
        at: t(2),
        context: ctx(),
    };
    assert_eq!(
        names(&run(plain(), mode(true, Proof::default())).unwrap()),
        ["WhitelistModeChanged"]
    );
    let whitelisted = |mut given: Given| {
        given.push((
            t(1),
            AccountFact::WhitelistModeChanged {
                enabled: true,
                context: ctx(),
            },
        ));
        given
    };
    assert_eq!(
        run(whitelisted(with_totp()), mode(false, by_session(session()))),
        Err(AccountError::StepUpRequired)
    );
    assert_eq!(
        run(
            stepped_up(whitelisted(plain()), t(1)),
            mode(false, by_session(session()))
        ),
        Err(AccountError::SecondFactorRequired)
    );
    let facts = run(
        stepped_up(whitelisted(with_totp()), t(1)),
        mode(false, by_session(session())),
    )
    .unwrap();
    assert_eq!(
        facts[1],
        AccountFact::HighRiskCooldownStarted {
            until: t(2) + Duration::hours(24),
            reason: CooldownReason::WhitelistDisabled
        }
    );
}

#[test]
fn test_row_anti_phishing_phrase_needs_the_password_or_a_stepped_up_session() {
    let rule = SensitiveAction::AntiPhishingPhrase.rule();
    assert_eq!(
        (rule.password, rule.factor),
        (PasswordNeed::OrSteppedUpSession, FactorNeed::No)
    );
    // A session alone does not set it.
    assert_eq!(
        run(
            plain(),
            set_phrase(Some("v1.phrase"), by_session(session()))
        ),
        Err(AccountError::WrongPassword)
    );
    assert_eq!(
        run(
            plain(),
            set_phrase(Some("v1.phrase"), by_password("nope nope"))
        ),
        Ok(vec![confirmation_failed("anti_phishing_phrase", 1)])
    );
    let set = vec![AccountFact::AntiPhishingPhraseSet {
        sealed_phrase: "v1.phrase".into(),
        context: ctx(),
    }];
    assert_eq!(
        run(
            plain(),
            set_phrase(Some("v1.phrase"), by_password(PASSWORD))
        ),
        Ok(set.clone())
    );
    assert_eq!(
        run(
            stepped_up(plain(), t(1)),
            set_phrase(Some("v1.phrase"), by_session(session()))
        ),
        Ok(set.clone())
    );
    // The password alone, even with a factor enrolled.
    assert_eq!(
        run(
            with_totp(),
            set_phrase(Some("v1.phrase"), by_password(PASSWORD))
        ),
        Ok(set.clone())
    );
    // Removing it reads the same row; removing none changes nothing and asks for nothing.
    let with_phrase = then(plain(), set, t(1));
    assert_eq!(
        run(with_phrase.clone(), set_phrase(None, by_session(session()))),
        Err(AccountError::WrongPassword)
    );
    assert_eq!(
        run(with_phrase, set_phrase(None, by_password(PASSWORD))),
        Ok(vec![AccountFact::AntiPhishingPhraseRemoved {
            context: ctx()
        }])
    );
    assert_eq!(run(plain(), set_phrase(None, Proof::default())), Ok(vec![]));
}

#[test]
fn test_every_sensitive_action_has_exactly_one_row() {
    use SensitiveAction as A;
    const ALL: [SensitiveAction; 13] = [
        A::AddSecondFactor,
        A::RegenerateBackupCodes,
        A::RemoveSecondFactor,
        A::ChangeContact,
        A::ChangePassword,
        A::ResetPassword,
        A::StepUp,
        A::ManageApiKeys,
        A::ManageTeam,
        A::WithdrawalControls,
        A::AntiPhishingPhrase,
        A::ManageDevices,
        A::Unfreeze,
    ];
    // Exhaustive: a new action does not compile until it is placed in `ALL` too.
    fn position(action: SensitiveAction) -> usize {
        match action {
            A::AddSecondFactor => 0,
            A::RegenerateBackupCodes => 1,
            A::RemoveSecondFactor => 2,
            A::ChangeContact => 3,
            A::ChangePassword => 4,
            A::ResetPassword => 5,
            A::StepUp => 6,
            A::ManageApiKeys => 7,
            A::ManageTeam => 8,
            A::WithdrawalControls => 9,
            A::AntiPhishingPhrase => 10,
            A::ManageDevices => 11,
            A::Unfreeze => 12,
        }
    }
    for (i, action) in ALL.into_iter().enumerate() {
        assert_eq!(position(action), i);
        assert_eq!(
            PROOF_POLICY.iter().filter(|r| r.action == action).count(),
            1,
            "{action:?}"
        );
        assert_eq!(action.rule().action, action);
    }
    assert_eq!(PROOF_POLICY.len(), ALL.len());
    assert_eq!(
        SensitiveAction::all().collect::<HashSet<_>>(),
        ALL.into_iter().collect::<HashSet<_>>()
    );
    let names: HashSet<&str> = ALL.iter().map(|a| a.as_str()).collect();
    assert_eq!(names.len(), ALL.len(), "recorded names are distinct");
    for rule in &PROOF_POLICY {
        // Every row asks for something beyond a session token.
        assert!(
            rule.password != PasswordNeed::No
                || rule.factor != FactorNeed::No
                || rule.stepped_up_session,
            "{:?} asks for nothing",
            rule.action
        );
        assert!(!rule.afterwards.is_empty());
        // Only the reset and the unfreeze, ways out, are not refused while locked.
        assert_eq!(
            rule.refused_while_locked,
            !matches!(rule.action, A::ResetPassword | A::Unfreeze),
            "{:?}",
            rule.action
        );
    }
}

#[test]
fn test_wrong_proofs_lock_the_account_like_wrong_passwords() {
    let wrong = [
        change_contact(by_password_and("not the password", totp(11))),
        step_up(by_factor(totp(9)), t(2)),
        change_password(
            session(),
            by_password_and("not the password", totp(11)),
            "a brand new passphrase",
        ),
        regenerate(by_password_and(PASSWORD, backup("nope"))),
        set_phrase(Some("v1.phrase"), by_password("not the password")),
    ];
    let mut given = with_totp();
    for (n, command) in wrong.into_iter().enumerate() {
        let facts = run(given.clone(), command).unwrap();
        assert_eq!(counted(&facts[0]), Some(n as u32 + 1), "{facts:?}");
        if n < 4 {
            assert_eq!(facts.len(), 1, "{facts:?}");
        } else {
            assert_eq!(
                facts[1],
                AccountFact::AccountLocked {
                    door: Default::default(),
                    until: t(17),
                    level: 1,
                    failed_attempts: 5
                }
            );
        }
        given = then(given, facts, t(2));
    }
    assert_eq!(
        state_of(given.clone()).lock_at(t(3)).map(|l| l.until),
        Some(t(17))
    );
    // While locked, even the right proof is refused, and recorded as such.
    let rejected = vec![AccountFact::LoginRejectedWhileLocked {
        door: Default::default(),
        locked_until: t(17),
        context: ctx(),
    }];
    assert_eq!(
        run(given.clone(), step_up(by_factor(totp(11)), t(3))),
        Ok(rejected.clone())
    );
    assert_eq!(
        run(
            given.clone(),
            change_contact(by_password_and(PASSWORD, totp(11)))
        ),
        Ok(rejected.clone())
    );
    assert_eq!(
        run(given.clone(), login(PASSWORD, t(3), sid(80))),
        Ok(rejected)
    );
    // The reset is the way out of a lock.
    assert!(
        run(reset_flow(given), reset("reset-code", by_factor(totp(11))))
            .unwrap()
            .iter()
            .any(|f| matches!(f, AccountFact::AccountUnlocked { .. }))
    );

    // Proof failures and sign-in failures share one count.
    let mut given = plain();
    for n in 1..=4 {
        given.push((t(2), confirmation_failed("change_contact", n)));
    }
    let facts = run(given, login("wrong password!", t(3), sid(80))).unwrap();
    assert_eq!(counted(&facts[0]), Some(5));
    assert!(matches!(facts[1], AccountFact::AccountLocked { .. }));
}

#[test]
fn test_a_lock_refuses_the_session_only_rows_too() {
    // Every row says `refused_while_locked` except the reset; the rows that ask only for a
    // stepped-up session honour it as well: while locked, no session counts as stepped up.
    let mut given = stepped_up(with_totp(), t(1));
    given.push(failed(t(2), 5));
    given.push(locked(t(2), t(10), 1));
    let policy = SessionPolicy::default();
    let state = state_of(given.clone());
    for action in [
        SensitiveAction::ManageApiKeys,
        SensitiveAction::ManageTeam,
        SensitiveAction::WithdrawalControls,
        SensitiveAction::ManageDevices,
    ] {
        assert_eq!(
            state.check_session_proof(action, Some(session()), t(3), &policy),
            Err(AccountError::StepUpRequired),
            "{action:?}"
        );
        assert_eq!(
            state.check_session_proof(action, Some(session()), t(10), &policy),
            Ok(()),
            "{action:?} after the lock, within the step-up window"
        );
    }
    assert_eq!(
        run(
            given.clone(),
            create_key(vec![ApiScope::Read], by_session(session()), t(3))
        ),
        Err(AccountError::StepUpRequired)
    );
    // And stepping up again answers with the lock.
    assert!(matches!(
        run(given, step_up(by_factor(totp(11)), t(3)))
            .unwrap()
            .as_slice(),
        [AccountFact::LoginRejectedWhileLocked { .. }]
    ));
}
