//! TOTP and backup codes: the challenge, replays, lockout by wrong factors, removal.
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
