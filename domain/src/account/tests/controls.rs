//! Account controls: step-up, API keys and their networks, the withdrawal whitelist.
use super::*;
use crate::policy::codes::FlowKind;

fn with_session() -> Vec<(DateTime<Utc>, AccountFact)> {
    let mut given = super::second_factor::enrolled(10);
    given.push(started(t(1), sid(70)));
    given
}

/// `given`, with session 70 opened and stepped up at t(1).
fn stepped_up(mut given: Vec<(DateTime<Utc>, AccountFact)>) -> Vec<(DateTime<Utc>, AccountFact)> {
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
