//! Given/when/then: two doors (a stranger's failures lock the untrusted door, a trusted device
//! has its own), and code budgets per requester under a per-account ceiling.
use super::*;
use crate::policy::codes::{Channel, FlowKind};

const DEVICE: u128 = 900;

fn device() -> Uuid {
    sid(DEVICE)
}

fn trusted(at: DateTime<Utc>) -> (DateTime<Utc>, AccountFact) {
    (
        at,
        AccountFact::DeviceTrusted {
            device_id: device(),
            token_hash: "device-token".into(),
            expires_at: at + Duration::days(180),
            context: ctx(),
        },
    )
}

fn claim(token_hash: &str) -> Option<DeviceClaim> {
    Some(DeviceClaim {
        device_id: device(),
        token_hash: token_hash.into(),
    })
}

fn from(ip: &str) -> RequestContext {
    RequestContext::new(Some(ip.into()), None, None)
}

fn login_via(
    password: &str,
    at: DateTime<Utc>,
    device: Option<DeviceClaim>,
    context: RequestContext,
) -> AccountCommand {
    let AccountCommand::AttemptLogin(mut cmd) = login(password, at, sid(1)) else {
        unreachable!()
    };
    cmd.device = device;
    cmd.context = context;
    AccountCommand::AttemptLogin(cmd)
}

/// Runs `when` on `given` and appends what it recorded, at `at`.
fn step(
    given: &mut Vec<(DateTime<Utc>, AccountFact)>,
    when: AccountCommand,
    at: DateTime<Utc>,
) -> Vec<AccountFact> {
    let facts = run(given.clone(), when).unwrap();
    given.extend(facts.iter().cloned().map(|f| (at, f)));
    facts
}

/// A stranger's five wrong passwords, from five networks, without a device token.
fn stranger_locks_untrusted_door(given: &mut Vec<(DateTime<Utc>, AccountFact)>) {
    for n in 1..=5u8 {
        step(
            given,
            login_via("wrong", t(1), None, from(&format!("198.51.{n}.7"))),
            t(1),
        );
    }
}

#[test]
fn test_a_strangers_failures_lock_the_untrusted_door_only() {
    let mut given = vec![registered(), trusted(t(0))];
    stranger_locks_untrusted_door(&mut given);
    assert!(given.iter().any(|(_, f)| matches!(
        f,
        AccountFact::AccountLocked {
            door: Door::Untrusted,
            level: 1,
            ..
        }
    )));
    // The stranger, even with the right password, stays locked out.
    let facts = run(given.clone(), login_via(PASSWORD, t(2), None, ctx())).unwrap();
    assert!(
        matches!(
            facts[..],
            [AccountFact::LoginRejectedWhileLocked {
                door: Door::Untrusted,
                ..
            }]
        ),
        "{facts:?}"
    );
    // The owner's device goes through its own door, and its trust is renewed (same device).
    let facts = step(
        &mut given,
        login_via(PASSWORD, t(2), claim("device-token"), ctx()),
        t(2),
    );
    assert_eq!(
        names(&facts),
        ["LoginSucceeded", "DeviceTrusted", "SessionStarted"]
    );
    assert!(
        matches!(facts[0], AccountFact::LoginSucceeded { door, .. } if door == Door::Device(device()))
    );
    assert!(
        matches!(&facts[1], AccountFact::DeviceTrusted { device_id, token_hash, .. } if *device_id == device() && token_hash == "device-hash")
    );
    // The owner's success does not open the untrusted door.
    let facts = run(given, login_via(PASSWORD, t(3), None, ctx())).unwrap();
    assert!(matches!(
        facts[..],
        [AccountFact::LoginRejectedWhileLocked {
            door: Door::Untrusted,
            ..
        }]
    ));
}

#[test]
fn test_a_devices_failures_lock_its_own_door_at_its_own_threshold() {
    let mut given = vec![registered(), trusted(t(0))];
    let services = AccountServices {
        devices: crate::policy::DevicePolicy {
            lockout: LockoutPolicy {
                threshold: 3,
                ..LockoutPolicy::default()
            },
            ..Default::default()
        },
        ..services()
    };
    for _ in 0..3 {
        let facts = AccountTestFramework::with(services.clone())
            .given(history(given.clone()))
            .when(login_via("wrong", t(1), claim("device-token"), ctx()))
            .inspect_result()
            .map(facts_of)
            .unwrap();
        given.extend(facts.into_iter().map(|f| (t(1), f)));
    }
    assert!(matches!(
        given.last(),
        Some((_, AccountFact::AccountLocked { door, failed_attempts: 3, .. })) if *door == Door::Device(device())
    ));
    // That device is refused; the untrusted door is still open.
    let facts = run(
        given.clone(),
        login_via(PASSWORD, t(2), claim("device-token"), ctx()),
    )
    .unwrap();
    assert!(
        matches!(facts[..], [AccountFact::LoginRejectedWhileLocked { door, .. }] if door == Door::Device(device()))
    );
    let facts = run(given, login_via(PASSWORD, t(2), None, ctx())).unwrap();
    assert!(matches!(
        facts[0],
        AccountFact::LoginSucceeded {
            door: Door::Untrusted,
            ..
        }
    ));
}

#[test]
fn test_a_wrong_expired_revoked_or_foreign_device_token_is_no_token() {
    let mut locked = vec![registered(), trusted(t(0))];
    stranger_locks_untrusted_door(&mut locked);
    let untrusted = |given: Vec<(DateTime<Utc>, AccountFact)>, at, claim| {
        let facts = run(given, login_via(PASSWORD, at, claim, ctx())).unwrap();
        matches!(
            facts[..],
            [AccountFact::LoginRejectedWhileLocked {
                door: Door::Untrusted,
                ..
            }]
        )
    };
    // Another token for the right device.
    assert!(untrusted(locked.clone(), t(2), claim("other-token")));
    // A device this account never trusted (another account's).
    assert!(untrusted(
        locked.clone(),
        t(2),
        Some(DeviceClaim {
            device_id: sid(901),
            token_hash: "device-token".into(),
        })
    ));
    // A revoked device.
    let mut revoked = locked.clone();
    revoked.push((
        t(2),
        AccountFact::DeviceRevoked {
            device_id: device(),
            reason: DeviceRevokeReason::Owner,
            context: ctx(),
        },
    ));
    assert!(untrusted(revoked, t(3), claim("device-token")));
    // An expired one (its lock on the untrusted door is still running at the last minute).
    let mut late = vec![registered(), trusted(t(0) - Duration::days(180))];
    stranger_locks_untrusted_door(&mut late);
    assert!(untrusted(late, t(2), claim("device-token")));
}

#[test]
fn test_a_sessions_wrong_proofs_count_on_its_devices_door() {
    // Given a session opened by the trusted device,
    let mut given = vec![registered(), trusted(t(0))];
    given.push(started_on(t(0), sid(70), Some(device())));
    // when its holder types five wrong passwords to step up,
    for _ in 0..5 {
        step(
            &mut given,
            AccountCommand::StepUp {
                session_id: sid(70),
                proof: Proof {
                    session_id: Some(sid(70)),
                    password: Some(SecretString::from("wrong".to_string())),
                    factor: None,
                },
                at: t(1),
                context: ctx(),
            },
            t(1),
        );
    }
    // the device's door locks, and the untrusted door (the owner's other way in) does not.
    assert!(given.iter().any(|(_, f)| matches!(
        f,
        AccountFact::AccountLocked { door, .. } if *door == Door::Device(device())
    )));
    let facts = run(given, login_via(PASSWORD, t(2), None, ctx())).unwrap();
    assert!(matches!(facts[0], AccountFact::LoginSucceeded { .. }));
}

#[test]
fn test_an_unlock_code_lifts_every_door() {
    let mut given = vec![registered(), trusted(t(0))];
    stranger_locks_untrusted_door(&mut given);
    given.push((
        t(2),
        AccountFact::AccountUnlocked {
            reason: UnlockReason::UnlockCode,
            context: ctx(),
        },
    ));
    let facts = run(given, login_via(PASSWORD, t(3), None, ctx())).unwrap();
    assert!(matches!(facts[0], AccountFact::LoginSucceeded { .. }));
}

fn start_from(at: DateTime<Utc>, n: u128, context: RequestContext) -> AccountCommand {
    AccountCommand::StartFlow(StartFlow {
        device: None,
        grant: FlowGrant {
            flow_id: sid(500 + n),
            code: CodeGrant {
                code_id: sid(600 + n),
                verifier: format!("v{n}"),
            },
        },
        kind: FlowKind::Unlock,
        channel: None,
        typed: Channel::Email,
        at,
        context,
    })
}

fn from_device(cmd: AccountCommand) -> AccountCommand {
    let AccountCommand::StartFlow(mut start) = cmd else {
        unreachable!()
    };
    start.device = claim("device-token");
    AccountCommand::StartFlow(start)
}

#[test]
fn test_code_budgets_are_per_requester_under_a_ceiling_devices_are_exempt() {
    let mut given = vec![registered(), trusted(t(0))];
    let mut n = 0;
    // One network spends its budget (10 an hour) and is refused;
    for _ in 0..10 {
        n += 1;
        step(&mut given, start_from(t(1), n, from("198.51.100.7")), t(1));
    }
    assert!(matches!(
        run(given.clone(), start_from(t(1), 99, from("198.51.100.8"))),
        Err(AccountError::CodeRateLimited { .. })
    ));
    // another network still has its own budget;
    let facts = run(given.clone(), start_from(t(1), 99, from("203.0.113.9"))).unwrap();
    assert!(matches!(
        &facts[1],
        AccountFact::CodeIssued { requester: Some(Requester::Network(net)), .. } if net == "203.0.113.0/24"
    ));
    // two more networks fill the account's ceiling (30); reaching it is recorded once,
    let mut reached = 0;
    for net in ["203.0.113.9", "192.0.2.200"] {
        for _ in 0..10 {
            n += 1;
            let facts = step(&mut given, start_from(t(2), n, from(net)), t(2));
            reached += facts
                .iter()
                .filter(|f| matches!(f, AccountFact::CodeCeilingReached { issued: 30, .. }))
                .count();
        }
    }
    assert_eq!(reached, 1);
    // so a fresh network is refused by the ceiling,
    assert!(matches!(
        run(given.clone(), start_from(t(3), 99, from("100.64.0.1"))),
        Err(AccountError::CodeRateLimited { .. })
    ));
    // while the owner's device still gets its code, on its own budget.
    let facts = run(
        given.clone(),
        from_device(start_from(t(3), 99, from("198.51.100.7"))),
    )
    .unwrap();
    assert!(matches!(
        &facts[1],
        AccountFact::CodeIssued { requester: Some(Requester::Device(id)), .. } if *id == device()
    ));
    // A forged device token counts as the network it came from (refused here).
    let AccountCommand::StartFlow(mut forged) = start_from(t(3), 99, from("100.64.0.1")) else {
        unreachable!()
    };
    forged.device = claim("forged");
    assert!(matches!(
        run(given, AccountCommand::StartFlow(forged)),
        Err(AccountError::CodeRateLimited { .. })
    ));
}

#[test]
fn test_a_password_reset_or_change_revokes_trusted_devices() {
    let given = vec![registered(), trusted(t(0))];
    let state = history(given)
        .into_iter()
        .fold(Account::default(), |mut a, e| {
            a.apply(e);
            a
        });
    let facts = state.revoke_devices(DeviceRevokeReason::PasswordReset, None, &ctx());
    assert_eq!(
        facts,
        vec![AccountFact::DeviceRevoked {
            device_id: device(),
            reason: DeviceRevokeReason::PasswordReset,
            context: ctx(),
        }]
    );
    assert!(state
        .revoke_devices(DeviceRevokeReason::PasswordChanged, Some(device()), &ctx())
        .is_empty());
}

#[test]
fn test_old_events_without_a_door_read_as_the_untrusted_door() {
    let old = serde_json::json!({"AccountLocked": {"until": "2026-03-01T12:15:00Z", "level": 1, "failed_attempts": 5}});
    let fact: AccountFact = serde_json::from_value(old.clone()).unwrap();
    assert!(matches!(
        fact,
        AccountFact::AccountLocked {
            door: Door::Untrusted,
            ..
        }
    ));
    // and write back byte for byte (the hash chain covers them).
    assert_eq!(serde_json::to_value(&fact).unwrap(), old);
}

#[test]
fn test_revoking_a_device_needs_a_stepped_up_session_and_ends_its_sessions() {
    // Given the trusted device's session and another session,
    let mut given = vec![registered(), trusted(t(0))];
    given.push(started_on(t(0), sid(70), Some(device())));
    given.push(started(t(0), sid(71)));
    let revoke = |at| AccountCommand::RevokeDevice {
        device_id: device(),
        session_id: sid(71),
        at,
        context: ctx(),
    };
    // a session alone cannot revoke it (a thief's session must not take the owner's door);
    assert_eq!(
        run(given.clone(), revoke(t(1))),
        Err(AccountError::StepUpRequired)
    );
    // stepped up, it can: the device's trust and the sessions it opened end.
    given.push((
        t(1),
        AccountFact::SessionSteppedUp {
            session_id: sid(71),
            method: "password".into(),
        },
    ));
    let facts = run(given.clone(), revoke(t(2))).unwrap();
    assert_eq!(
        facts,
        vec![
            AccountFact::DeviceRevoked {
                device_id: device(),
                reason: DeviceRevokeReason::Owner,
                context: ctx(),
            },
            AccountFact::SessionEnded {
                session_id: sid(70),
                reason: SessionEndReason::Revoked {
                    by_session: sid(71)
                },
                context: ctx(),
            },
        ]
    );
    // An unknown device is not found.
    let unknown = AccountCommand::RevokeDevice {
        device_id: sid(999),
        session_id: sid(71),
        at: t(2),
        context: ctx(),
    };
    assert_eq!(run(given, unknown), Err(AccountError::DeviceNotFound));
}

#[test]
fn test_renaming_a_device_records_the_name_and_refuses_bad_ones() {
    // Given a trusted device and a session (a name changes no access: no step-up needed),
    let mut given = vec![registered(), trusted(t(0)), started(t(0), sid(71))];
    let rename = |device_id, name: &str| AccountCommand::RenameDevice {
        device_id,
        name: name.into(),
        at: t(1),
        context: ctx(),
    };
    // when the owner names it, the name is recorded,
    let facts = run(given.clone(), rename(device(), "Work laptop")).unwrap();
    assert_eq!(
        facts,
        vec![AccountFact::DeviceRenamed {
            device_id: device(),
            name: "Work laptop".into(),
            context: ctx(),
        }]
    );
    // and the state (and so the device list) shows it, first and last trust kept apart.
    given.push((t(1), facts[0].clone()));
    given.push(trusted(t(5)));
    let mut state = Account::default();
    for event in history(given.clone()) {
        state.apply(event);
    }
    let known = state.known_devices();
    assert_eq!(known.len(), 1);
    assert_eq!(known[0].1.name.as_deref(), Some("Work laptop"));
    assert_eq!(known[0].1.first_trusted_at, Some(t(0)));
    assert_eq!(known[0].1.trusted_at, t(5));
    // An empty, padded, too long or control-character name is refused, recording nothing;
    let long = "x".repeat(DEVICE_NAME_MAX_CHARS + 1);
    for bad in ["", " padded", "tab\there", "bell\u{7}", long.as_str()] {
        assert_eq!(
            run(given.clone(), rename(device(), bad)),
            Err(AccountError::DeviceNameInvalid),
            "{bad:?}"
        );
    }
    let longest = "é".repeat(DEVICE_NAME_MAX_CHARS);
    assert!(run(given.clone(), rename(device(), &longest)).is_ok());
    // a device the account does not know is not found.
    assert_eq!(
        run(given, rename(sid(999), "Phone")),
        Err(AccountError::DeviceNotFound)
    );
}

#[test]
fn test_an_expired_device_can_still_be_forgotten() {
    // Given a device whose trust ended at t(1), and a stepped-up session,
    let given = vec![
        registered(),
        (
            t(0),
            AccountFact::DeviceTrusted {
                device_id: device(),
                token_hash: "device-token".into(),
                expires_at: t(1),
                context: ctx(),
            },
        ),
        started(t(0), sid(71)),
        (
            t(0),
            AccountFact::SessionSteppedUp {
                session_id: sid(71),
                method: "password".into(),
            },
        ),
    ];
    // when the owner forgets it at t(2), it is forgotten like a trusted one.
    let facts = run(
        given,
        AccountCommand::RevokeDevice {
            device_id: device(),
            session_id: sid(71),
            at: t(2),
            context: ctx(),
        },
    )
    .unwrap();
    assert_eq!(names(&facts), vec!["DeviceRevoked"]);
}
