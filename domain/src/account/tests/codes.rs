//! One-time codes and the flows that use them: verification, reset, unlock, resends and budgets.
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
