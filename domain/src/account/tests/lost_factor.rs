//! Recovery of a lost second factor: the steps, their order, review, hold and removal.
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
