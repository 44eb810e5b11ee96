//! Given/when/then: sign-in needs a verified contact, and an unverified identifier is released
//! to a later sign-up once its claim is old enough.
use super::*;
use crate::contact::ContactKind;
use crate::policy::codes::FlowKind;
use crate::policy::ContactPolicy;

/// The defaults: sign-in requires a verified contact; claims expire after 24 hours.
fn strict() -> AccountServices {
    AccountServices {
        contacts: ContactPolicy::default(),
        ..services()
    }
}

fn run_strict(
    given: Vec<(DateTime<Utc>, AccountFact)>,
    when: AccountCommand,
) -> Result<Vec<AccountFact>, AccountError> {
    AccountTestFramework::with(strict())
        .given(history(given))
        .when(when)
        .inspect_result()
        .map(facts_of)
}

fn verified(at: DateTime<Utc>) -> (DateTime<Utc>, AccountFact) {
    (
        at,
        AccountFact::ContactVerified {
            kind: ContactKind::Email,
            flow_id: sid(77),
        },
    )
}

fn unverified_failure(at: DateTime<Utc>, n: u32) -> (DateTime<Utc>, AccountFact) {
    (
        at,
        AccountFact::LoginFailed {
            door: Default::default(),
            reason: LoginFailureReason::ContactUnverified,
            consecutive_failures: n,
            context: ctx(),
        },
    )
}

fn release(lookup: &str, claimed_at: DateTime<Utc>, at: DateTime<Utc>) -> AccountCommand {
    AccountCommand::ReleaseUnverifiedContact {
        lookup: lookup.into(),
        claimed_at,
        at,
        context: ctx(),
    }
}

#[test]
fn test_contact_policy_defaults_require_a_verified_contact_and_release_after_a_day() {
    let policy = ContactPolicy::default();
    assert!(policy.require_verified_for_sign_in);
    assert_eq!(policy.unverified_claim_ttl, Duration::hours(24));
}

#[test]
fn test_right_password_without_verified_contact_fails_like_a_wrong_one() {
    // Given an account whose only contact is unverified, when it signs in with the right
    // password, then the sign-in fails (counted) and no session opens.
    let facts = run_strict(vec![registered()], login(PASSWORD, t(1), sid(1))).unwrap();
    assert_eq!(facts, vec![unverified_failure(t(1), 1).1]);
}

#[test]
fn test_wrong_password_without_verified_contact_is_a_wrong_password() {
    let facts = run_strict(vec![registered()], login("not the password", t(1), sid(1))).unwrap();
    assert_eq!(facts, vec![failed(t(1), 1).1]);
}

#[test]
fn test_unverified_refusals_count_toward_the_lockout() {
    // Given four refusals for an unverified contact, when a fifth comes, then the account locks
    // exactly as after five wrong passwords.
    let mut given = vec![registered()];
    given.extend((1..=4).map(|n| unverified_failure(t(1), n)));
    let facts = run_strict(given, login(PASSWORD, t(2), sid(1))).unwrap();
    assert_eq!(
        facts,
        vec![unverified_failure(t(2), 5).1, locked(t(2), t(17), 1).1]
    );
}

#[test]
fn test_sign_in_succeeds_once_a_contact_is_verified() {
    let facts = run_strict(
        vec![registered(), unverified_failure(t(1), 1), verified(t(2))],
        login(PASSWORD, t(3), sid(1)),
    )
    .unwrap();
    assert_eq!(
        facts,
        vec![
            AccountFact::LoginSucceeded {
                door: Default::default(),
                session_id: sid(1),
                context: ctx(),
                familiar: false,
            },
            signed_in(t(3), sid(1))[0].clone(),
            signed_in(t(3), sid(1))[1].clone(),
        ]
    );
}

#[test]
fn test_sign_in_without_verified_contact_succeeds_when_the_rule_is_off() {
    // `services()` turns the rule off (GATEHOUSE_REQUIRE_VERIFIED_CONTACT=false).
    let facts = run(vec![registered()], login(PASSWORD, t(1), sid(1))).unwrap();
    assert!(
        matches!(facts[0], AccountFact::LoginSucceeded { .. }),
        "{facts:?}"
    );
}

#[test]
fn test_unverified_contact_is_released_after_the_claim_expires() {
    // Given an account registered at t(0) that never verified its email, when a sign-up with the
    // same identifier asks a day later, then the contact is released.
    let day = Duration::hours(24);
    let facts = run_strict(vec![registered()], release("lookup", t(0), t(0) + day)).unwrap();
    assert_eq!(
        facts,
        vec![AccountFact::UnverifiedContactReleased {
            kind: ContactKind::Email,
            claimed_at: t(0),
            context: ctx(),
        }]
    );
}

#[test]
fn test_unverified_contact_is_kept_while_the_claim_is_young() {
    let early = t(0) + Duration::hours(24) - Duration::seconds(1);
    let result = run_strict(vec![registered()], release("lookup", t(0), early));
    assert_eq!(result, Err(AccountError::ContactNotReleasable));
}

#[test]
fn test_verified_or_foreign_contacts_are_never_released() {
    let later = t(0) + Duration::days(30);
    let result = run_strict(
        vec![registered(), verified(t(1))],
        release("lookup", t(0), later),
    );
    assert_eq!(result, Err(AccountError::ContactNotReleasable));
    let result = run_strict(vec![registered()], release("someone-else", t(0), later));
    assert_eq!(result, Err(AccountError::ContactNotReleasable));
    let result = run_strict(vec![], release("lookup", t(0), later));
    assert_eq!(result, Err(AccountError::NotRegistered));
}

#[test]
fn test_released_contact_is_gone_and_its_verification_flow_closed() {
    let day = Duration::hours(24);
    let given = vec![
        registered(),
        (
            t(0),
            AccountFact::FlowStarted {
                flow_id: sid(5),
                kind: FlowKind::VerifyEmail,
                context: ctx(),
            },
        ),
        (
            t(0) + day,
            AccountFact::UnverifiedContactReleased {
                kind: ContactKind::Email,
                claimed_at: t(0),
                context: ctx(),
            },
        ),
    ];
    let mut state = Account::default();
    for e in history(given) {
        state.apply(e);
    }
    assert!(state.email().is_none());
    assert!(!state.holds_lookup("lookup"));
    assert!(state.flow(sid(5)).is_none());
    assert!(!state.has_verified_contact());
}
