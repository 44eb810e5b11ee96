//! Freezing: by a session, by a freeze link (single use, 7 days), by staff; what a frozen account
//! refuses; the owner's unfreeze recovery; staff roles' actions; the new-sign-in rule.
use super::*;
use crate::policy::codes::{Channel, FlowKind};

const FLOW: u128 = 300;

fn verified_email() -> (DateTime<Utc>, AccountFact) {
    (
        t(0),
        AccountFact::ContactVerified {
            kind: crate::contact::ContactKind::Email,
            flow_id: sid(99),
        },
    )
}

fn api_key(at: DateTime<Utc>) -> (DateTime<Utc>, AccountFact) {
    (
        at,
        AccountFact::ApiKeyCreated {
            key_id: sid(40),
            name: "bot".into(),
            scopes: vec![ApiScope::Read],
            allowed_ips: vec![],
            expires_at: None,
            verifier: "v".into(),
            context: ctx(),
        },
    )
}

/// Registered, email verified, signed in (session 1 through device nil), with an API key.
fn signed_in_with_key() -> Vec<(DateTime<Utc>, AccountFact)> {
    let mut given = vec![registered(), verified_email()];
    given.extend(signed_in(t(1), sid(1)).into_iter().map(|f| (t(1), f)));
    given.push(api_key(t(2)));
    given
}

fn freeze(by: FreezeRequest, at: DateTime<Utc>) -> AccountCommand {
    AccountCommand::Freeze {
        by,
        reason: None,
        at,
        context: ctx(),
    }
}

fn by_link(link: u128, issued_at: DateTime<Utc>) -> FreezeRequest {
    FreezeRequest::Link {
        link_id: sid(link),
        issued_at,
    }
}

/// Applies `given` then `more`, for the next command's `given`.
fn then(
    mut given: Vec<(DateTime<Utc>, AccountFact)>,
    at: DateTime<Utc>,
    more: Vec<AccountFact>,
) -> Vec<(DateTime<Utc>, AccountFact)> {
    given.extend(more.into_iter().map(|f| (at, f)));
    given
}

fn frozen_by_link() -> Vec<(DateTime<Utc>, AccountFact)> {
    let given = signed_in_with_key();
    let facts = run(given.clone(), freeze(by_link(7, t(3)), t(5))).unwrap();
    then(given, t(5), facts)
}

fn state_of(given: Vec<(DateTime<Utc>, AccountFact)>) -> Account {
    let mut state = Account::default();
    for e in history(given) {
        state.apply(e);
    }
    state
}

#[test]
fn test_freeze_from_a_session_ends_every_session_and_revokes_keys_and_devices() {
    let facts = run(
        signed_in_with_key(),
        freeze(FreezeRequest::Session { session_id: sid(1) }, t(3)),
    )
    .unwrap();
    assert_eq!(
        names(&facts),
        vec![
            "AccountFrozen",
            "SessionEnded",
            "ApiKeyRevoked",
            "DeviceRevoked"
        ]
    );
    assert!(matches!(
        &facts[0],
        AccountFact::AccountFrozen {
            by: FreezeActor::Owner { .. },
            ..
        }
    ));
    assert!(matches!(
        &facts[1],
        AccountFact::SessionEnded {
            reason: SessionEndReason::Frozen,
            ..
        }
    ));
    assert!(matches!(
        &facts[3],
        AccountFact::DeviceRevoked {
            reason: DeviceRevokeReason::Frozen,
            ..
        }
    ));
}

#[test]
fn test_freeze_from_an_ended_session_is_refused() {
    assert_eq!(
        run(
            signed_in_with_key(),
            freeze(FreezeRequest::Session { session_id: sid(9) }, t(3))
        ),
        Err(AccountError::SessionNotFound)
    );
}

#[test]
fn test_a_frozen_account_refuses_the_right_password_and_counts_a_wrong_one() {
    let given = frozen_by_link();
    assert_eq!(
        run(given.clone(), login(PASSWORD, t(6), sid(2))),
        Ok(vec![AccountFact::LoginRefusedWhileFrozen {
            context: ctx(),
            door: Door::Untrusted
        }])
    );
    let wrong = run(given, login("not the password", t(6), sid(2))).unwrap();
    assert_eq!(names(&wrong), vec!["LoginFailed"]);
}

#[test]
fn test_a_frozen_account_authenticates_no_session_and_refuses_withdrawals() {
    let state = state_of(frozen_by_link());
    assert!(state.is_frozen(t(6)));
    assert!(state
        .authenticate(sid(1), "hash-00000000-0000-0000-0000-000000000001", t(6))
        .is_err());
    assert!(matches!(
        state.check_withdrawal("x", t(6)),
        Err(crate::account::WithdrawalRefusal::AccountFrozen { until: None })
    ));
}

#[test]
fn test_a_freeze_link_works_once() {
    let given = frozen_by_link();
    // Unfrozen meanwhile by the owner's recovery; the same link then comes again.
    let given = then(
        given,
        t(10),
        vec![AccountFact::AccountUnfrozen {
            by: FreezeActor::Recovery { flow_id: sid(FLOW) },
            reason: None,
            hold_until: None,
            context: ctx(),
        }],
    );
    assert_eq!(
        run(given.clone(), freeze(by_link(7, t(3)), t(11))),
        Err(AccountError::FreezeLinkUsed)
    );
    // Another link of another message still works.
    assert_eq!(
        names(&run(given, freeze(by_link(8, t(3)), t(11))).unwrap())[0],
        "AccountFrozen"
    );
}

#[test]
fn test_a_freeze_link_expires_after_seven_days() {
    let at = t(0) + FREEZE_LINK_TTL + Duration::minutes(1);
    assert_eq!(
        run(signed_in_with_key(), freeze(by_link(7, t(0)), at)),
        Err(AccountError::FreezeLinkExpired)
    );
    let just_in_time = t(0) + FREEZE_LINK_TTL - Duration::minutes(1);
    assert!(run(signed_in_with_key(), freeze(by_link(7, t(0)), just_in_time)).is_ok());
}

#[test]
fn test_freezing_a_frozen_account_is_refused() {
    assert_eq!(
        run(
            frozen_by_link(),
            freeze(
                FreezeRequest::Staff {
                    staff_id: "s".into()
                },
                t(6)
            )
        ),
        Err(AccountError::AlreadyFrozen)
    );
}

fn unfreeze_flow(given: Vec<(DateTime<Utc>, AccountFact)>) -> Vec<(DateTime<Utc>, AccountFact)> {
    let start = AccountCommand::StartFlow(StartFlow {
        device: None,
        grant: FlowGrant {
            flow_id: sid(FLOW),
            code: CodeGrant {
                code_id: sid(301),
                verifier: "code-1".into(),
            },
        },
        kind: FlowKind::Unfreeze,
        channel: None,
        typed: Channel::Email,
        at: t(6),
        context: ctx(),
    });
    let facts = run(given.clone(), start).unwrap();
    then(given, t(6), facts)
}

fn confirm(proof: Proof) -> AccountCommand {
    AccountCommand::RedeemCode(RedeemCode {
        flow_id: sid(FLOW),
        verifier: "code-1".into(),
        action: CodeAction::Unfreeze,
        next_code: None,
        proof,
        at: t(7),
        context: ctx(),
    })
}

#[test]
fn test_an_unfreeze_code_is_sent_only_while_frozen() {
    let frozen = unfreeze_flow(frozen_by_link());
    assert!(frozen.iter().any(|(_, f)| matches!(
        f,
        AccountFact::CodeIssued {
            deliverable: true,
            ..
        }
    )));
    let not_frozen = unfreeze_flow(signed_in_with_key());
    assert!(not_frozen.iter().any(|(_, f)| matches!(
        f,
        AccountFact::CodeIssued {
            deliverable: false,
            ..
        }
    )));
}

#[test]
fn test_unfreeze_with_the_code_unfreezes_and_starts_a_cooldown_without_a_factor() {
    let facts = run(unfreeze_flow(frozen_by_link()), confirm(Proof::default())).unwrap();
    assert_eq!(
        names(&facts),
        vec!["CodeUsed", "AccountUnfrozen", "HighRiskCooldownStarted"]
    );
    assert!(matches!(
        &facts[2],
        AccountFact::HighRiskCooldownStarted {
            reason: CooldownReason::Unfrozen,
            ..
        }
    ));
}

fn frozen_with_totp() -> Vec<(DateTime<Utc>, AccountFact)> {
    let mut given = super::second_factor::enrolled(10);
    given.push(verified_email());
    let facts = run(given.clone(), freeze(by_link(7, t(3)), t(5))).unwrap();
    unfreeze_flow(then(given, t(5), facts))
}

#[test]
fn test_unfreeze_needs_a_current_factor_when_one_is_enrolled() {
    let given = frozen_with_totp();
    assert_eq!(
        run(given.clone(), confirm(Proof::default())),
        Err(AccountError::SecondFactorRequired)
    );
    let wrong = run(
        given.clone(),
        confirm(by_factor(MfaProof::Totp { matched_step: None })),
    )
    .unwrap();
    assert_eq!(
        names(&wrong),
        vec!["SecondFactorFailed", "CodeAttemptFailed"]
    );
    let right = run(given, confirm(by_factor(super::second_factor::totp(11)))).unwrap();
    assert_eq!(
        names(&right),
        vec![
            "SecondFactorVerified",
            "CodeUsed",
            "AccountUnfrozen",
            "HighRiskCooldownStarted"
        ]
    );
}

#[test]
fn test_unfreeze_of_an_account_that_is_not_frozen_is_refused() {
    assert_eq!(
        run(
            unfreeze_flow(signed_in_with_key()),
            confirm(Proof::default())
        ),
        Err(AccountError::NotFrozen)
    );
}

/// Email and phone verified, TOTP enrolled, frozen, an unfreeze flow started (first code by
/// email, `code-1`).
fn frozen_with_two_contacts() -> Vec<(DateTime<Utc>, AccountFact)> {
    let mut given = super::second_factor::enrolled(10);
    given.push(verified_email());
    given.push((
        t(0),
        AccountFact::ContactChanged {
            kind: crate::contact::ContactKind::Phone,
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
            kind: crate::contact::ContactKind::Phone,
            flow_id: sid(98),
        },
    ));
    let facts = run(given.clone(), freeze(by_link(7, t(3)), t(5))).unwrap();
    unfreeze_flow(then(given, t(5), facts))
}

/// A code for the unfreeze flow, with the second step's code drawn as the edge does.
fn confirm_step(verifier: &str, proof: Proof, at: DateTime<Utc>) -> AccountCommand {
    AccountCommand::RedeemCode(RedeemCode {
        flow_id: sid(FLOW),
        verifier: verifier.into(),
        action: CodeAction::Unfreeze,
        next_code: Some(CodeGrant {
            code_id: sid(302),
            verifier: "code-2".into(),
        }),
        proof,
        at,
        context: ctx(),
    })
}

#[test]
fn test_with_email_and_phone_verified_the_first_code_alone_does_not_unfreeze() {
    let given = frozen_with_two_contacts();
    // Before the first code: step 1 of 2, as for every identifier.
    let state = state_of(given.clone());
    assert_eq!(state.flow(sid(FLOW)).unwrap().unfreeze_step(), (1, 2));
    assert_eq!(state.bound_channel(sid(FLOW)), None);
    let facts = run(
        given.clone(),
        confirm_step("code-1", by_factor(super::second_factor::totp(11)), t(7)),
    )
    .unwrap();
    assert_eq!(
        names(&facts),
        vec!["SecondFactorVerified", "CodeUsed", "CodeIssued"]
    );
    assert!(matches!(
        &facts[2],
        AccountFact::CodeIssued {
            channel: Channel::Sms,
            deliverable: true,
            ..
        }
    ));
    let state = state_of(then(given, t(7), facts));
    assert!(state.is_frozen(t(8)), "still frozen after the first code");
    assert_eq!(state.flow(sid(FLOW)).unwrap().unfreeze_step(), (2, 2));
    assert_eq!(state.bound_channel(sid(FLOW)), Some(Channel::Sms));
}

#[test]
fn test_with_email_and_phone_verified_the_code_by_the_other_channel_unfreezes() {
    let given = frozen_with_two_contacts();
    let first = run(
        given.clone(),
        confirm_step("code-1", by_factor(super::second_factor::totp(11)), t(7)),
    )
    .unwrap();
    let given = then(given, t(7), first);
    // The first code again: spent.
    assert_eq!(
        run(
            given.clone(),
            confirm_step("code-1", Proof::default(), t(8))
        ),
        Ok(vec![AccountFact::CodeAttemptFailed {
            flow_id: sid(FLOW),
            code_id: sid(302),
            attempts: 1,
            context: ctx(),
        }])
    );
    // The phone's code (the factor was checked with the first code).
    let facts = run(
        given.clone(),
        confirm_step("code-2", Proof::default(), t(8)),
    )
    .unwrap();
    assert_eq!(
        names(&facts),
        vec!["CodeUsed", "AccountUnfrozen", "HighRiskCooldownStarted"]
    );
    let state = state_of(then(given, t(8), facts));
    assert!(!state.is_frozen(t(9)));
    assert_eq!(state.flow(sid(FLOW)).unwrap().unfreeze_step(), (2, 2));
}

#[test]
fn test_the_second_unfreeze_step_is_bound_to_the_other_channel() {
    let given = frozen_with_two_contacts();
    let first = run(
        given.clone(),
        confirm_step("code-1", by_factor(super::second_factor::totp(11)), t(7)),
    )
    .unwrap();
    let given = then(given, t(7), first);
    let resend = |channel: Option<Channel>| AccountCommand::ResendCode {
        flow_id: sid(FLOW),
        channel,
        code: CodeGrant {
            code_id: sid(303),
            verifier: "code-3".into(),
        },
        at: t(9),
        context: ctx(),
    };
    assert_eq!(
        run(given.clone(), resend(Some(Channel::Email))),
        Err(AccountError::ChannelNotAllowed)
    );
    let facts = run(given.clone(), resend(None)).unwrap();
    assert!(matches!(
        &facts[0],
        AccountFact::CodeIssued {
            channel: Channel::Sms,
            deliverable: true,
            ..
        }
    ));
    // A code that came by email for the phone step (only an old history holds one) is wrong.
    let by_email = then(
        given,
        t(9),
        vec![AccountFact::CodeIssued {
            flow_id: sid(FLOW),
            code_id: sid(304),
            channel: Channel::Email,
            verifier: "code-4".into(),
            expires_at: t(19),
            deliverable: true,
            context: ctx(),
            requester: None,
        }],
    );
    let facts = run(by_email, confirm_step("code-4", Proof::default(), t(10))).unwrap();
    assert_eq!(names(&facts), vec!["CodeAttemptFailed"]);
}

#[test]
fn test_the_first_unfreeze_step_needs_the_factor_before_any_second_code() {
    let given = frozen_with_two_contacts();
    assert_eq!(
        run(
            given.clone(),
            confirm_step("code-1", Proof::default(), t(7))
        ),
        Err(AccountError::SecondFactorRequired)
    );
    let wrong = run(
        given,
        confirm_step(
            "code-1",
            by_factor(MfaProof::Totp { matched_step: None }),
            t(7),
        ),
    )
    .unwrap();
    assert_eq!(
        names(&wrong),
        vec!["SecondFactorFailed", "CodeAttemptFailed"]
    );
}

#[test]
fn test_with_one_verified_contact_one_code_unfreezes_and_counts_one_step() {
    let given = frozen_with_totp();
    let facts = run(
        given.clone(),
        confirm_step("code-1", by_factor(super::second_factor::totp(11)), t(7)),
    )
    .unwrap();
    assert_eq!(
        names(&facts),
        vec![
            "SecondFactorVerified",
            "CodeUsed",
            "AccountUnfrozen",
            "HighRiskCooldownStarted"
        ]
    );
    let state = state_of(then(given, t(7), facts));
    assert_eq!(state.flow(sid(FLOW)).unwrap().unfreeze_step(), (1, 1));
}

fn staff(action: StaffAccountAction, at: DateTime<Utc>) -> AccountCommand {
    AccountCommand::StaffAction {
        staff_id: "staff-1".into(),
        action,
        reason: "the owner called".into(),
        at,
        context: ctx(),
    }
}

#[test]
fn test_a_staff_unfreeze_takes_effect_after_the_recovery_hold() {
    let given = frozen_by_link();
    let facts = run(given.clone(), staff(StaffAccountAction::Unfreeze, t(6))).unwrap();
    assert_eq!(
        names(&facts),
        vec![
            "StaffActionTaken",
            "AccountUnfrozen",
            "HighRiskCooldownStarted"
        ]
    );
    let hold = services().cooldowns.recovery_hold;
    let state = state_of(then(given.clone(), t(6), facts.clone()));
    assert!(state.is_frozen(t(7)));
    assert!(state.is_frozen(t(6) + hold - Duration::minutes(1)));
    assert!(!state.is_frozen(t(6) + hold));
    // The owner (told with a freeze link) freezes it again during the hold: no release.
    let given = then(given, t(6), facts);
    let again = run(given.clone(), freeze(by_link(8, t(6)), t(8))).unwrap();
    let state = state_of(then(given, t(8), again));
    assert!(state.is_frozen(t(6) + hold + Duration::days(1)));
}

#[test]
fn test_a_staff_unfreeze_of_an_unfrozen_account_is_refused() {
    assert_eq!(
        run(
            signed_in_with_key(),
            staff(StaffAccountAction::Unfreeze, t(3))
        ),
        Err(AccountError::NotFrozen)
    );
}

#[test]
fn test_staff_freeze_sign_out_and_unlock_are_recorded_with_who_and_why() {
    let facts = run(
        signed_in_with_key(),
        staff(StaffAccountAction::Freeze, t(3)),
    )
    .unwrap();
    assert_eq!(names(&facts)[..2], ["StaffActionTaken", "AccountFrozen"]);
    assert!(matches!(
        &facts[1],
        AccountFact::AccountFrozen {
            by: FreezeActor::Staff { .. },
            reason: Some(_),
            ..
        }
    ));
    let facts = run(
        signed_in_with_key(),
        staff(StaffAccountAction::SignOut, t(3)),
    )
    .unwrap();
    assert_eq!(names(&facts), vec!["StaffActionTaken", "SessionEnded"]);
    let mut locked_out = signed_in_with_key();
    locked_out.push(failed(t(4), 5));
    locked_out.push(locked(t(4), t(30), 1));
    let facts = run(locked_out.clone(), staff(StaffAccountAction::Unlock, t(5))).unwrap();
    assert_eq!(names(&facts), vec!["StaffActionTaken", "AccountUnlocked"]);
    let state = state_of(then(locked_out, t(5), facts));
    assert_eq!(state.lock_at(t(6)), None);
}

#[test]
fn test_a_sign_in_from_a_known_network_and_browser_is_familiar_and_a_new_one_is_not() {
    // First sign-in ever: new.
    let first = run(vec![registered()], login(PASSWORD, t(1), sid(1))).unwrap();
    assert!(matches!(
        first[0],
        AccountFact::LoginSucceeded {
            familiar: false,
            ..
        }
    ));
    let given = then(vec![registered()], t(1), first);
    // Same network and user agent family: familiar.
    let again = run(given.clone(), login(PASSWORD, t(2), sid(2))).unwrap();
    assert!(matches!(
        again[0],
        AccountFact::LoginSucceeded { familiar: true, .. }
    ));
    // Another network: new.
    let mut elsewhere = login(PASSWORD, t(2), sid(3));
    if let AccountCommand::AttemptLogin(cmd) = &mut elsewhere {
        cmd.context =
            RequestContext::new(Some("198.51.100.4".into()), Some("test-agent".into()), None);
    }
    let facts = run(given.clone(), elsewhere).unwrap();
    assert!(matches!(
        facts[0],
        AccountFact::LoginSucceeded {
            familiar: false,
            ..
        }
    ));
    // Same network, another browser, no device token: new.
    let mut other_browser = login(PASSWORD, t(2), sid(4));
    if let AccountCommand::AttemptLogin(cmd) = &mut other_browser {
        cmd.context = RequestContext::new(Some("192.0.2.77".into()), Some("curl/8".into()), None);
    }
    let facts = run(given, other_browser).unwrap();
    assert!(matches!(
        facts[0],
        AccountFact::LoginSucceeded {
            familiar: false,
            ..
        }
    ));
}
