//! Changing a contact: the password, a different contact, the replaced identifier.
use super::*;
use crate::contact::ContactKind;

fn change(password: &str, lookup: &str) -> AccountCommand {
    AccountCommand::ChangeContact(ChangeContact {
        kind: ContactKind::Email,
        contact: SealedContact {
            sealed: "new".into(),
            lookup: lookup.into(),
        },
        proof: by_password(password),
        unavailable: false,
        grant: FlowGrant {
            flow_id: sid(300),
            code: CodeGrant {
                code_id: sid(301),
                verifier: "v".into(),
            },
        },
        at: t(1),
        context: ctx(),
    })
}

#[test]
fn test_change_needs_the_password_and_a_different_contact() {
    // A wrong password is a recorded failure (it counts toward the lockout), not a change.
    assert_eq!(
        run(
            vec![registered()],
            change("wrong password here", "new-lookup")
        ),
        Ok(vec![AccountFact::PasswordConfirmationFailed {
            door: Default::default(),
            action: "change_contact".into(),
            consecutive_failures: 1,
            context: ctx(),
        }])
    );
    assert_eq!(
        run(vec![registered()], change(PASSWORD, "lookup")),
        Err(AccountError::ContactUnchanged)
    );
    let facts = run(vec![registered()], change(PASSWORD, "new-lookup")).unwrap();
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
        &facts[1],
        AccountFact::ContactChangeRequested { previous: Some(p), .. } if p.lookup == "lookup"
    ));
    assert!(matches!(
        &facts[3],
        AccountFact::CodeIssued {
            deliverable: true,
            ..
        }
    ));
    // Requested, not in force: the current contact stays the identifier until the new one
    // is verified; a right code then makes the change.
    let given = super::lost_factor::apply_all(vec![registered()], facts, t(1));
    let state = super::lost_factor::state_of(given.clone());
    assert!(state.holds_lookup("lookup") && !state.holds_lookup("new-lookup"));
    assert_eq!(
        state.pending_contact(ContactKind::Email).map(|p| p.flow_id),
        Some(sid(300))
    );
    let verify = |verifier: &str| {
        AccountCommand::RedeemCode(RedeemCode {
            flow_id: sid(300),
            verifier: verifier.into(),
            action: CodeAction::Verify,
            next_code: None,
            proof: Proof::default(),
            at: t(2),
            context: ctx(),
        })
    };
    let wrong = run(given.clone(), verify("x")).unwrap();
    assert_eq!(names(&wrong), ["CodeAttemptFailed"]);
    let facts = run(given.clone(), verify("v")).unwrap();
    assert_eq!(
        names(&facts),
        ["CodeUsed", "ContactChanged", "ContactVerified"]
    );
    let state = super::lost_factor::state_of(super::lost_factor::apply_all(given, facts, t(2)));
    assert!(state.holds_lookup("new-lookup") && !state.holds_lookup("lookup"));
    assert!(state.is_verified(crate::policy::Channel::Email));
    assert!(state.pending_contact(ContactKind::Email).is_none());
}

#[test]
fn test_sign_in_by_a_replaced_identifier_is_refused_without_a_record() {
    let mut given = vec![registered()];
    given.push((
        t(1),
        AccountFact::ContactChanged {
            kind: ContactKind::Email,
            contact: SealedContact {
                sealed: "new".into(),
                lookup: "new-lookup".into(),
            },
            previous: None,
            context: ctx(),
        },
    ));
    let attempt = |lookup: &str| {
        AccountCommand::AttemptLogin(AttemptLogin {
            device: None,
            lookup: Some(lookup.into()),
            password: SecretString::from(PASSWORD.to_string()),
            grant: SessionGrant {
                device: crate::account::DeviceGrant {
                    device_id: Uuid::nil(),
                    token_hash: "device-hash".into(),
                },
                session_id: sid(9),
                token_hash: "h".into(),
            },
            at: t(2),
            context: ctx(),
        })
    };
    assert_eq!(
        run(given.clone(), attempt("lookup")),
        Err(AccountError::IdentifierMoved)
    );
    assert!(run(given, attempt("new-lookup")).is_ok());
}
