//! Given/when/then tests of issue #17's rules on channels, cases and oracles: a step bound to a
//! channel stays on it; a case in progress is not overwritten; flows at the code steps run side
//! by side; the answers (channel, step count) are the same for every identifier until a code is
//! proven.
use super::*;
use crate::contact::ContactKind;
use crate::policy::codes::{Channel, FlowKind};

fn code(flow: u128, n: u128) -> CodeGrant {
    CodeGrant {
        code_id: sid(flow * 100 + n),
        verifier: format!("v-{flow}-{n}"),
    }
}

fn verified(kind: ContactKind, at: DateTime<Utc>) -> (DateTime<Utc>, AccountFact) {
    (
        at,
        AccountFact::ContactVerified {
            kind,
            flow_id: sid(1),
        },
    )
}

/// An account with an email and a phone; `email`/`phone`: which of them are verified.
fn account(email: bool, phone: bool) -> Vec<(DateTime<Utc>, AccountFact)> {
    let mut given = vec![(
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
    )];
    if email {
        given.push(verified(ContactKind::Email, t(0)));
    }
    if phone {
        given.push(verified(ContactKind::Phone, t(0)));
    }
    given
}

fn start(
    flow: u128,
    kind: FlowKind,
    asked: Option<Channel>,
    typed: Channel,
    at: DateTime<Utc>,
) -> AccountCommand {
    AccountCommand::StartFlow(StartFlow {
        device: None,
        grant: FlowGrant {
            flow_id: sid(flow),
            code: code(flow, 0),
        },
        kind,
        channel: asked,
        typed,
        at,
        context: ctx(),
    })
}

fn resend(flow: u128, n: u128, channel: Option<Channel>, at: DateTime<Utc>) -> AccountCommand {
    AccountCommand::ResendCode {
        flow_id: sid(flow),
        channel,
        code: code(flow, n),
        at,
        context: ctx(),
    }
}

fn redeem(flow: u128, n: u128, action: CodeAction, at: DateTime<Utc>) -> AccountCommand {
    AccountCommand::RedeemCode(RedeemCode {
        flow_id: sid(flow),
        verifier: code(flow, n).verifier,
        action,
        next_code: Some(code(flow, n + 1)),
        proof: Proof::default(),
        at,
        context: ctx(),
    })
}

fn then(
    mut given: Vec<(DateTime<Utc>, AccountFact)>,
    facts: Vec<AccountFact>,
    at: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, AccountFact)> {
    given.extend(facts.into_iter().map(|f| (at, f)));
    given
}

/// Runs `when` and appends its facts to `given`.
fn step(
    given: Vec<(DateTime<Utc>, AccountFact)>,
    when: AccountCommand,
    at: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, AccountFact)> {
    let facts = run(given.clone(), when).unwrap();
    then(given, facts, at)
}

fn state_of(given: Vec<(DateTime<Utc>, AccountFact)>) -> Account {
    let mut state = Account::default();
    for e in history(given) {
        state.apply(e);
    }
    state
}

fn issued(facts: &[AccountFact]) -> (Channel, bool) {
    facts
        .iter()
        .find_map(|f| match f {
            AccountFact::CodeIssued {
                channel,
                deliverable,
                ..
            } => Some((*channel, *deliverable)),
            _ => None,
        })
        .expect("a code is issued")
}

// --- Forgot password and unlock: the channel asked for, else the one typed. ---

#[test]
fn test_forgot_answers_the_typed_channel_and_sends_nothing_when_it_is_unverified() {
    // Given an account whose email is unverified and whose phone is verified,
    let given = account(false, true);
    for kind in [FlowKind::ResetPassword, FlowKind::Unlock] {
        // when the owner's email is typed, the code is for the email and sent nowhere
        // (never to the phone: that would tell a stranger which contact is verified);
        let facts = run(given.clone(), start(5, kind, None, Channel::Email, t(1))).unwrap();
        assert_eq!(issued(&facts), (Channel::Email, false), "{kind:?}");
        // exactly what an identifier without an account gets;
        let facts = run(vec![], start(5, kind, None, Channel::Email, t(1))).unwrap();
        assert_eq!(issued(&facts), (Channel::Email, false), "{kind:?}");
        // when the phone is asked for, it goes there.
        let facts = run(
            given.clone(),
            start(5, kind, Some(Channel::Sms), Channel::Email, t(1)),
        )
        .unwrap();
        assert_eq!(issued(&facts), (Channel::Sms, true), "{kind:?}");
        // A typed phone number means sms, for an account and a stranger alike.
        let facts = run(given.clone(), start(5, kind, None, Channel::Sms, t(1))).unwrap();
        assert_eq!(issued(&facts), (Channel::Sms, true), "{kind:?}");
        let facts = run(vec![], start(5, kind, None, Channel::Sms, t(1))).unwrap();
        assert_eq!(issued(&facts), (Channel::Sms, false), "{kind:?}");
    }
}

// --- Channel binding. ---

/// A lost-second-factor flow (id 7) on an account with both contacts verified.
fn lost_factor_started() -> Vec<(DateTime<Utc>, AccountFact)> {
    step(
        account(true, true),
        start(7, FlowKind::LostSecondFactor, None, Channel::Email, t(1)),
        t(1),
    )
}

#[test]
fn test_lost_factor_email_step_is_bound_to_the_email_for_accounts_and_strangers() {
    // Given a lost-second-factor flow at its email step, of an account or of a stranger,
    let account_flow = lost_factor_started();
    let stranger_flow = step(
        vec![],
        start(
            7,
            FlowKind::LostSecondFactor,
            Some(Channel::Sms),
            Channel::Sms,
            t(1),
        ),
        t(1),
    );
    for given in [account_flow, stranger_flow] {
        let state = state_of(given.clone());
        assert_eq!(state.bound_channel(sid(7)), Some(Channel::Email));
        assert_eq!(
            state.flow(sid(7)).unwrap().code.as_ref().unwrap().channel,
            Channel::Email
        );
        // when a resend asks for sms, it is refused (the same for both);
        assert_eq!(
            run(given.clone(), resend(7, 1, Some(Channel::Sms), t(3))),
            Err(AccountError::ChannelNotAllowed)
        );
        // a resend on the email (or without a channel) is fine.
        let facts = run(given.clone(), resend(7, 1, None, t(3))).unwrap();
        assert_eq!(issued(&facts).0, Channel::Email);
    }
}

#[test]
fn test_lost_factor_phone_step_accepts_only_a_code_sent_by_sms() {
    // Given a flow whose email step passed, with a phone step next,
    let given = step(
        lost_factor_started(),
        redeem(7, 0, CodeAction::RecoveryStep, t(2)),
        t(2),
    );
    let state = state_of(given.clone());
    assert_eq!(state.bound_channel(sid(7)), Some(Channel::Sms));
    assert_eq!(
        state.recovery_case(sid(7)).unwrap().stage,
        RecoveryStage::PhoneCode
    );
    // when a resend asks to move the phone step to the email, it is refused;
    assert_eq!(
        run(given.clone(), resend(7, 2, Some(Channel::Email), t(4))),
        Err(AccountError::ChannelNotAllowed)
    );
    // a resend by sms works, and its code passes the step.
    let given = step(given, resend(7, 2, Some(Channel::Sms), t(4)), t(4));
    let facts = run(given, redeem(7, 2, CodeAction::RecoveryStep, t(5))).unwrap();
    assert!(
        matches!(&facts[1], AccountFact::RecoveryStepPassed { step, .. } if *step == RecoveryStep::Phone),
        "{facts:?}"
    );
}

#[test]
fn test_a_phone_step_code_that_came_by_email_counts_as_a_wrong_code() {
    // Given a history from before the binding: the phone step's code was re-sent by email,
    let mut given = step(
        lost_factor_started(),
        redeem(7, 0, CodeAction::RecoveryStep, t(2)),
        t(2),
    );
    given.push((
        t(4),
        AccountFact::CodeIssued {
            requester: None,
            flow_id: sid(7),
            code_id: code(7, 5).code_id,
            channel: Channel::Email,
            verifier: code(7, 5).verifier,
            expires_at: t(14),
            deliverable: true,
            context: ctx(),
        },
    ));
    // when that (right) code is typed, it is a wrong try, not a passed step.
    let facts = run(given, redeem(7, 5, CodeAction::RecoveryStep, t(5))).unwrap();
    assert!(
        matches!(
            facts[..],
            [AccountFact::CodeAttemptFailed { attempts: 1, .. }]
        ),
        "{facts:?}"
    );
}

#[test]
fn test_whitelist_and_verification_codes_stay_on_their_channel() {
    // Given a whitelist confirmation (code to the verified email) and a phone verification,
    let mut given = account(true, true);
    for (flow, kind, channel) in [
        (8, FlowKind::WhitelistAddress, Channel::Email),
        (9, FlowKind::VerifyPhone, Channel::Sms),
    ] {
        given.push((
            t(1),
            AccountFact::FlowStarted {
                flow_id: sid(flow),
                kind,
                context: ctx(),
            },
        ));
        given.push((
            t(1),
            AccountFact::CodeIssued {
                requester: None,
                flow_id: sid(flow),
                code_id: code(flow, 0).code_id,
                channel,
                verifier: code(flow, 0).verifier,
                expires_at: t(11),
                deliverable: true,
                context: ctx(),
            },
        ));
    }
    // when a resend asks for the other channel, it is refused;
    assert_eq!(
        run(given.clone(), resend(8, 1, Some(Channel::Sms), t(3))),
        Err(AccountError::ChannelNotAllowed)
    );
    assert_eq!(
        run(given.clone(), resend(9, 1, Some(Channel::Email), t(3))),
        Err(AccountError::ChannelNotAllowed)
    );
    // on its own channel it works.
    let facts = run(given, resend(8, 1, Some(Channel::Email), t(3))).unwrap();
    assert_eq!(issued(&facts), (Channel::Email, true));
}

// --- Step counts. ---

#[test]
fn test_lost_factor_counts_four_steps_until_the_email_code_is_accepted() {
    // Given lost-second-factor flows for an account with a phone, one without, and a stranger,
    let with_phone = lost_factor_started();
    let without_phone = step(
        account(true, false),
        start(7, FlowKind::LostSecondFactor, None, Channel::Email, t(1)),
        t(1),
    );
    let stranger = step(
        vec![],
        start(7, FlowKind::LostSecondFactor, None, Channel::Email, t(1)),
        t(1),
    );
    // then all three say step 1 of 4;
    for given in [&with_phone, &without_phone, &stranger] {
        assert_eq!(
            state_of(given.clone())
                .recovery_case(sid(7))
                .unwrap()
                .step_of(),
            (1, 4)
        );
    }
    // when the email code is accepted, the count tells whether a phone step follows.
    let with_phone = step(
        with_phone,
        redeem(7, 0, CodeAction::RecoveryStep, t(2)),
        t(2),
    );
    let without_phone = step(
        without_phone,
        redeem(7, 0, CodeAction::RecoveryStep, t(2)),
        t(2),
    );
    assert_eq!(
        state_of(with_phone)
            .recovery_case(sid(7))
            .unwrap()
            .step_of(),
        (2, 4)
    );
    assert_eq!(
        state_of(without_phone).recovery().unwrap().step_of(),
        (2, 3)
    );
}

// --- Cases in progress and side-by-side flows. ---

/// Flow 7 taken to review, then approved (hold of 48 h from t(5)).
fn approved_case() -> Vec<(DateTime<Utc>, AccountFact)> {
    let given = step(
        lost_factor_started(),
        redeem(7, 0, CodeAction::RecoveryStep, t(2)),
        t(2),
    );
    let given = step(given, redeem(7, 1, CodeAction::RecoveryStep, t(3)), t(3));
    let given = step(
        given,
        AccountCommand::SubmitRecoveryEvidence {
            flow_id: sid(7),
            sealed_evidence: "v1.e".into(),
            at: t(4),
            context: ctx(),
        },
        t(4),
    );
    step(
        given,
        AccountCommand::ReviewRecovery {
            flow_id: sid(7),
            approve: true,
            reviewer: "rita".into(),
            reason: "documents match".into(),
            at: t(5),
        },
        t(5),
    )
}

#[test]
fn test_a_new_request_leaves_an_approved_case_untouched_and_the_owner_completes_it() {
    // Given an approved case on hold,
    let given = approved_case();
    let before = state_of(given.clone()).recovery().cloned().unwrap();
    assert_eq!(before.stage, RecoveryStage::Hold);
    // when a stranger asks for a recovery of the account,
    let facts = run(
        given.clone(),
        start(20, FlowKind::LostSecondFactor, None, Channel::Email, t(6)),
    )
    .unwrap();
    // the request is recorded like any other, its code is sent nowhere, and the owner is told;
    assert!(matches!(facts[0], AccountFact::FlowStarted { .. }));
    assert_eq!(issued(&facts), (Channel::Email, false));
    assert_eq!(
        facts[2],
        AccountFact::RecoveryRequestSetAside {
            flow_id: sid(20),
            case_flow_id: sid(7),
            owner_notified: true,
        }
    );
    let given = then(given, facts, t(6));
    // the case is untouched, and the new flow looks like any flow at its first step;
    let state = state_of(given.clone());
    assert_eq!(state.recovery(), Some(&before));
    assert_eq!(state.recovery_case(sid(20)).unwrap().step_of(), (1, 4));
    // even the right code of the new flow moves nothing;
    assert_eq!(
        run(given.clone(), redeem(20, 0, CodeAction::RecoveryStep, t(7))),
        Err(AccountError::RecoveryStage)
    );
    // a resend of it goes nowhere either;
    let facts = run(given.clone(), resend(20, 1, None, t(8))).unwrap();
    assert_eq!(issued(&facts), (Channel::Email, false));
    // and after the hold the owner completes the case.
    let at = t(5) + Duration::hours(48);
    let facts = run(
        given,
        AccountCommand::CompleteRecovery {
            flow_id: sid(7),
            at,
            context: ctx(),
        },
    )
    .unwrap();
    assert!(matches!(facts[0], AccountFact::RecoveryCompleted { .. }));
    assert!(matches!(facts[1], AccountFact::SecondFactorRemoved { .. }));
}

#[test]
fn test_the_owner_is_told_of_set_aside_requests_at_most_once_a_day() {
    // Given an approved case and one request already set aside (owner told at t(6)),
    let given = step(
        approved_case(),
        start(20, FlowKind::LostSecondFactor, None, Channel::Email, t(6)),
        t(6),
    );
    let notified = |facts: &[AccountFact]| {
        facts.iter().find_map(|f| match f {
            AccountFact::RecoveryRequestSetAside { owner_notified, .. } => Some(*owner_notified),
            _ => None,
        })
    };
    // when another comes within the day, it is set aside without telling the owner again;
    let facts = run(
        given.clone(),
        start(21, FlowKind::LostSecondFactor, None, Channel::Email, t(60)),
    )
    .unwrap();
    assert_eq!(notified(&facts), Some(false));
    let given = then(given, facts, t(60));
    // a day after the last notice, the owner hears again.
    let facts = run(
        given,
        start(
            22,
            FlowKind::LostSecondFactor,
            None,
            Channel::Email,
            t(6 + 24 * 60),
        ),
    )
    .unwrap();
    assert_eq!(notified(&facts), Some(true));
}

#[test]
fn test_flows_at_the_code_steps_run_side_by_side() {
    // Given the owner's flow at its email step,
    let given = step(
        account(true, false),
        start(7, FlowKind::LostSecondFactor, None, Channel::Email, t(1)),
        t(1),
    );
    // when someone else starts another,
    let facts = run(
        given.clone(),
        start(20, FlowKind::LostSecondFactor, None, Channel::Email, t(2)),
    )
    .unwrap();
    assert_eq!(facts.len(), 2, "nothing set aside: no case in progress");
    let given = then(given, facts, t(2));
    // the owner's flow and code still work: its step passes.
    let state = state_of(given.clone());
    assert_eq!(
        state.flow(sid(7)).unwrap().code.as_ref().unwrap().status,
        CodeStatus::Active
    );
    let facts = run(given, redeem(7, 0, CodeAction::RecoveryStep, t(3))).unwrap();
    assert!(
        matches!(&facts[1], AccountFact::RecoveryStepPassed { flow_id, .. } if *flow_id == sid(7))
    );
}

#[test]
fn test_no_flow_passes_its_code_steps_while_a_case_is_under_review() {
    // Given a case under review (flow 7) and a second flow (20) started before the review,
    let given = step(
        account(true, false),
        start(7, FlowKind::LostSecondFactor, None, Channel::Email, t(1)),
        t(1),
    );
    let given = step(
        given,
        start(20, FlowKind::LostSecondFactor, None, Channel::Email, t(2)),
        t(2),
    );
    let given = step(given, redeem(7, 0, CodeAction::RecoveryStep, t(3)), t(3));
    let given = step(
        given,
        AccountCommand::SubmitRecoveryEvidence {
            flow_id: sid(7),
            sealed_evidence: "v1.e".into(),
            at: t(4),
            context: ctx(),
        },
        t(4),
    );
    // when the second flow's right code comes, it is refused and the case stays in review.
    assert_eq!(
        run(given.clone(), redeem(20, 0, CodeAction::RecoveryStep, t(5))),
        Err(AccountError::RecoveryStage)
    );
    assert_eq!(
        state_of(given).recovery().unwrap().stage,
        RecoveryStage::Review
    );
}

#[test]
fn test_the_owner_cancels_the_case_and_every_flow_at_the_code_steps() {
    // Given an approved case and a request set aside,
    let given = step(
        approved_case(),
        start(20, FlowKind::LostSecondFactor, None, Channel::Email, t(6)),
        t(6),
    );
    // when the owner cancels from a session, the case ends with one fact,
    let facts = run(
        given.clone(),
        AccountCommand::CancelRecovery {
            at: t(7),
            context: ctx(),
        },
    )
    .unwrap();
    assert_eq!(
        facts,
        vec![AccountFact::RecoveryCancelled {
            flow_id: sid(7),
            context: ctx()
        }]
    );
    // and nothing is left in progress.
    let state = state_of(then(given, facts, t(7)));
    assert!(state.recovery().is_none());
    assert!(state.recovery_case(sid(20)).is_none());
}

// --- Sign-in challenges. ---

#[test]
fn test_only_an_open_challenge_of_the_account_is_open() {
    // Given a challenge issued at t(1) for five minutes,
    let mut given = vec![registered()];
    given.push((
        t(1),
        AccountFact::MfaChallengeIssued {
            door: Default::default(),
            challenge_id: sid(30),
            methods: vec!["security_key".into()],
            expires_at: t(6),
            context: ctx(),
        },
    ));
    let state = state_of(given.clone());
    // it is open before it expires, not after; an id never issued is not;
    assert!(state.open_challenge(sid(30), t(2)).is_some());
    assert!(state.open_challenge(sid(30), t(6)).is_none());
    assert!(state.open_challenge(sid(31), t(2)).is_none());
    // once answered, it is not open any more.
    given.push((
        t(2),
        AccountFact::SecondFactorVerified {
            challenge_id: Some(sid(30)),
            method: "security_key".into(),
            step: None,
            backup_code: None,
            context: ctx(),
        },
    ));
    assert!(state_of(given).open_challenge(sid(30), t(3)).is_none());
}
