//! The proof policy: which proof every sensitive action needs, in one table.
//!
//! A session token is not the account: infostealers take session tokens every day. A session
//! alone may read, sign itself out and freeze the account; every change an attacker could use to
//! keep or take the account asks for a fresh proof, and that proof is decided here, never per
//! route. Routes read [`PROOF_POLICY`] (through [`SensitiveAction::rule`]) and the README and
//! OpenAPI describe the same table.
//!
//! A proof has up to three parts, all checked by the aggregate against its own history:
//! - the password, typed again;
//! - a current second factor (a TOTP step not used before, an unused backup code, a security
//!   key's assertion);
//! - a session stepped up by an explicit `StepUp` within the step-up window (signing in never
//!   steps a session up).
//!
//! A wrong password or factor is recorded and counts toward the lockout, like a wrong password at
//! sign-in; a missing part is refused without a record (nothing was guessed).
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use uuid::Uuid;

use crate::context::RequestContext;
use crate::policy::SessionPolicy;

use super::error::AccountError;
use super::events::AccountFact;
use super::evidence::MfaProof;
use super::services::AccountServices;
use super::state::Account;

/// Every action that changes something an attacker could use to take or keep an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SensitiveAction {
    /// Enrol TOTP or register a security key.
    AddSecondFactor,
    /// Replace the backup codes.
    RegenerateBackupCodes,
    /// Remove TOTP, a security key, or every factor.
    RemoveSecondFactor,
    /// Replace or add the email or the phone.
    ChangeContact,
    /// Set a new password while signed in.
    ChangePassword,
    /// Set a new password with a code from the forgot-password flow.
    ResetPassword,
    /// Step a session up for the actions that need a stepped-up session.
    StepUp,
    /// Create or rotate an API key (any scope).
    ManageApiKeys,
    /// Invite to a team, change a member's role.
    ManageTeam,
    /// Withdraw-scoped API keys, whitelist changes, turning whitelist-only withdrawals off.
    WithdrawalControls,
    /// Set, change or remove the anti-phishing phrase.
    AntiPhishingPhrase,
    /// Revoke a trusted device (its own door and code budget go with it).
    ManageDevices,
    /// Register a passkey: a way in by itself (password and second factor together), so a
    /// thief who adds one keeps the account past a password change.
    AddPasskey,
    /// Remove a passkey.
    RemovePasskey,
    /// Unfreeze a frozen account with the code of `POST /v1/unfreeze` (the flow proves a
    /// verified contact, and a second code by the other channel the other one when both are
    /// verified; the factor, checked with the first code, proves the rest).
    Unfreeze,
}

/// Whether the password is part of the proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordNeed {
    /// Not asked.
    No,
    /// Always.
    Yes,
    /// When the account has no second factor (the factor stands in for it otherwise).
    UnlessFactorEnrolled,
    /// Unless the session is stepped up.
    OrSteppedUpSession,
}

/// Whether a current second factor is part of the proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorNeed {
    /// Not asked.
    No,
    /// When the account has one enrolled.
    WhenEnrolled,
    /// Always: the account must have one (`NoSecondFactor` otherwise).
    Yes,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofRule {
    /// The action.
    pub action: SensitiveAction,
    /// The password.
    pub password: PasswordNeed,
    /// A current second factor presented with the request.
    pub factor: FactorNeed,
    /// The session must be stepped up (`POST /v1/me/step-up` within the window).
    pub stepped_up_session: bool,
    /// The account must have a second factor enrolled (`second_factor_required` otherwise).
    pub enrolled_factor: bool,
    /// A lock refuses the proof (sign-in failures locked the account). The reset is the way out
    /// of a lock, so it is not refused; its wrong factors spend the code's tries instead.
    pub refused_while_locked: bool,
    /// What follows a proven action, for the docs.
    pub afterwards: &'static str,
}

/// The proof policy. Every sensitive route reads its row; `README.md` shows the same table.
pub const PROOF_POLICY: [ProofRule; 15] = [
    ProofRule {
        action: SensitiveAction::AddSecondFactor,
        password: PasswordNeed::Yes,
        factor: FactorNeed::WhenEnrolled,
        stepped_up_session: false,
        enrolled_factor: false,
        refused_while_locked: true,
        afterwards:
            "factor-added cooldown; notice on every verified channel; existing backup codes kept",
    },
    ProofRule {
        action: SensitiveAction::RegenerateBackupCodes,
        password: PasswordNeed::Yes,
        factor: FactorNeed::Yes,
        stepped_up_session: false,
        enrolled_factor: false,
        refused_while_locked: true,
        afterwards: "the old set stops working; notice",
    },
    ProofRule {
        action: SensitiveAction::RemoveSecondFactor,
        password: PasswordNeed::Yes,
        factor: FactorNeed::Yes,
        stepped_up_session: false,
        enrolled_factor: false,
        refused_while_locked: true,
        afterwards: "refused during a cooldown; starts one; notice on every verified channel",
    },
    ProofRule {
        action: SensitiveAction::ChangeContact,
        password: PasswordNeed::Yes,
        factor: FactorNeed::WhenEnrolled,
        stepped_up_session: false,
        enrolled_factor: false,
        refused_while_locked: true,
        afterwards:
            "a code to the new contact; contact-changed cooldown; notice to the old contact",
    },
    ProofRule {
        action: SensitiveAction::ChangePassword,
        password: PasswordNeed::Yes,
        factor: FactorNeed::WhenEnrolled,
        stepped_up_session: false,
        enrolled_factor: false,
        refused_while_locked: true,
        afterwards: "every other session ends; cooldown; notice on every verified channel",
    },
    ProofRule {
        action: SensitiveAction::ResetPassword,
        password: PasswordNeed::No,
        factor: FactorNeed::WhenEnrolled,
        stepped_up_session: false,
        enrolled_factor: false,
        refused_while_locked: false,
        afterwards: "every session ends; every API key is revoked; cooldown; notice",
    },
    ProofRule {
        action: SensitiveAction::StepUp,
        password: PasswordNeed::UnlessFactorEnrolled,
        factor: FactorNeed::WhenEnrolled,
        stepped_up_session: false,
        enrolled_factor: false,
        refused_while_locked: true,
        afterwards: "the session is stepped up for GATEHOUSE_STEP_UP_SECONDS",
    },
    ProofRule {
        action: SensitiveAction::ManageApiKeys,
        password: PasswordNeed::No,
        factor: FactorNeed::No,
        stepped_up_session: true,
        enrolled_factor: false,
        refused_while_locked: true,
        afterwards: "as before (a withdraw scope also needs the withdrawal-controls row)",
    },
    ProofRule {
        action: SensitiveAction::ManageTeam,
        password: PasswordNeed::No,
        factor: FactorNeed::No,
        stepped_up_session: true,
        enrolled_factor: false,
        refused_while_locked: true,
        afterwards: "as before",
    },
    ProofRule {
        action: SensitiveAction::WithdrawalControls,
        password: PasswordNeed::No,
        factor: FactorNeed::No,
        stepped_up_session: true,
        enrolled_factor: true,
        refused_while_locked: true,
        afterwards: "refused during a cooldown; a withdraw key or whitelist-only off starts one",
    },
    ProofRule {
        action: SensitiveAction::AntiPhishingPhrase,
        password: PasswordNeed::OrSteppedUpSession,
        factor: FactorNeed::No,
        stepped_up_session: false,
        enrolled_factor: false,
        refused_while_locked: true,
        afterwards: "notice",
    },
    ProofRule {
        action: SensitiveAction::ManageDevices,
        password: PasswordNeed::No,
        factor: FactorNeed::No,
        stepped_up_session: true,
        enrolled_factor: false,
        refused_while_locked: true,
        afterwards: "the device's token stops working; the sessions it opened end",
    },
    ProofRule {
        action: SensitiveAction::AddPasskey,
        password: PasswordNeed::Yes,
        factor: FactorNeed::WhenEnrolled,
        stepped_up_session: false,
        enrolled_factor: false,
        refused_while_locked: true,
        afterwards: "factor-added cooldown; notice on every verified channel; revoked by a password reset, a lost-factor recovery or a freeze",
    },
    ProofRule {
        action: SensitiveAction::RemovePasskey,
        password: PasswordNeed::Yes,
        factor: FactorNeed::WhenEnrolled,
        stepped_up_session: false,
        enrolled_factor: false,
        refused_while_locked: true,
        afterwards: "notice on every verified channel",
    },
    ProofRule {
        action: SensitiveAction::Unfreeze,
        password: PasswordNeed::No,
        factor: FactorNeed::WhenEnrolled,
        stepped_up_session: false,
        enrolled_factor: false,
        refused_while_locked: false,
        afterwards: "sign-in works again; high-risk cooldown; notice on every verified channel",
    },
];

impl SensitiveAction {
    /// This action's row of [`PROOF_POLICY`].
    pub fn rule(self) -> &'static ProofRule {
        match PROOF_POLICY.iter().find(|r| r.action == self) {
            Some(rule) => rule,
            // Every action has a row (tested); the strictest row stands in otherwise.
            None => &PROOF_POLICY[2],
        }
    }

    /// Stable snake_case name (recorded in failure facts, shown in the docs).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AddSecondFactor => "add_second_factor",
            Self::RegenerateBackupCodes => "regenerate_backup_codes",
            Self::RemoveSecondFactor => "remove_second_factor",
            Self::ChangeContact => "change_contact",
            Self::ChangePassword => "change_password",
            Self::ResetPassword => "reset_password",
            Self::StepUp => "step_up",
            Self::ManageApiKeys => "manage_api_keys",
            Self::ManageTeam => "manage_team",
            Self::WithdrawalControls => "withdrawal_controls",
            Self::AntiPhishingPhrase => "anti_phishing_phrase",
            Self::ManageDevices => "manage_devices",
            Self::AddPasskey => "add_passkey",
            Self::RemovePasskey => "remove_passkey",
            Self::Unfreeze => "unfreeze",
        }
    }

    /// Every action, in table order.
    pub fn all() -> impl Iterator<Item = SensitiveAction> {
        PROOF_POLICY.iter().map(|r| r.action)
    }
}

/// What a request presents as proof. The edge fills in what it can check only with keys it
/// holds (a TOTP secret's matched step, a backup code's keyed verifier, a key's assertion);
/// the aggregate decides whether that is enough.
#[derive(Debug, Clone, Default)]
pub struct Proof {
    /// The session making the request, if any (for the stepped-up rows).
    pub session_id: Option<Uuid>,
    /// The password, normalised; never stored.
    pub password: Option<SecretString>,
    /// A second factor.
    pub factor: Option<MfaProof>,
}

/// The outcome of a proof that was checked.
#[derive(Debug)]
pub(super) enum Proved {
    /// Proven; the facts record what it spent (a TOTP step, a backup code, a key's counter).
    Accepted(Vec<AccountFact>),
    /// A wrong part, or a lock: the facts record the failure (counted toward the lockout).
    Refused(Vec<AccountFact>),
}

impl Account {
    /// Whether a session stepped up within `window` of `at`.
    pub fn is_stepped_up(
        &self,
        session_id: Uuid,
        at: DateTime<Utc>,
        window: chrono::Duration,
    ) -> bool {
        self.sessions
            .get(&session_id)
            .filter(|s| s.is_live(at))
            .and_then(|_| self.stepped_up_until(session_id, window))
            .is_some_and(|until| at < until)
    }

    /// Checks a row that asks only for a stepped-up session (and perhaps an enrolled factor): no
    /// secret is checked, so nothing is recorded. Rows that ask for the password or a factor go
    /// through the command that does the action (they are refused here).
    pub fn check_session_proof(
        &self,
        action: SensitiveAction,
        session_id: Option<Uuid>,
        at: DateTime<Utc>,
        sessions: &SessionPolicy,
    ) -> Result<(), AccountError> {
        let rule = action.rule();
        if rule.password != PasswordNeed::No || rule.factor != FactorNeed::No {
            return Err(AccountError::WrongPassword);
        }
        if rule.enrolled_factor && !self.has_second_factor() {
            return Err(AccountError::SecondFactorRequired);
        }
        // A lock refuses these rows too: while locked no session counts as stepped up (and
        // `StepUp` itself answers with the lock).
        let locked = rule.refused_while_locked
            && self
                .door_lock_at(self.session_door(session_id, at), at)
                .is_some();
        let stepped_up =
            !locked && session_id.is_some_and(|s| self.is_stepped_up(s, at, sessions.step_up));
        if rule.stepped_up_session && !stepped_up {
            return Err(AccountError::StepUpRequired);
        }
        Ok(())
    }

    /// Checks `proof` against `action`'s row of the proof policy. `Err` refuses without a record
    /// (a part is missing, the session is not stepped up); `Refused` carries the recorded
    /// failure; `Accepted` the facts of what the proof spent.
    pub(super) async fn prove(
        &self,
        action: SensitiveAction,
        proof: &Proof,
        at: DateTime<Utc>,
        context: &RequestContext,
        services: &AccountServices,
    ) -> Result<Proved, AccountError> {
        let rule = action.rule();
        let enrolled = self.has_second_factor();
        if rule.enrolled_factor && !enrolled {
            return Err(AccountError::SecondFactorRequired);
        }
        let stepped_up = proof
            .session_id
            .is_some_and(|s| self.is_stepped_up(s, at, services.sessions.step_up));
        if rule.stepped_up_session && !stepped_up {
            return Err(AccountError::StepUpRequired);
        }
        let password_needed = match rule.password {
            PasswordNeed::No => false,
            PasswordNeed::Yes => true,
            PasswordNeed::UnlessFactorEnrolled => !enrolled,
            PasswordNeed::OrSteppedUpSession => !stepped_up,
        };
        let factor_needed = match rule.factor {
            FactorNeed::No => false,
            FactorNeed::WhenEnrolled => enrolled,
            FactorNeed::Yes if enrolled => true,
            FactorNeed::Yes => return Err(AccountError::NoSecondFactor),
        };
        // A missing part guesses nothing: refused, unrecorded.
        let factor = match (factor_needed, &proof.factor) {
            (false, _) => None,
            (true, Some(factor)) => Some(factor),
            (true, None) => return Err(AccountError::SecondFactorRequired),
        };
        let password = match (password_needed, &proof.password) {
            (false, _) => None,
            (true, Some(password)) => Some(password),
            (true, None) => return Err(AccountError::WrongPassword),
        };
        // A session's proofs go through the door of the device it signed in through, so a
        // stolen session's wrong guesses lock that device's door, not the owner's other doors.
        let door = self.session_door(proof.session_id, at);
        if rule.refused_while_locked {
            if let Some(lock) = self.door_lock_at(door, at) {
                return Ok(Proved::Refused(vec![
                    AccountFact::LoginRejectedWhileLocked {
                        locked_until: lock.until,
                        context: context.clone(),
                        door,
                    },
                ]));
            }
        }
        if let Some(password) = password {
            if !services
                .hasher
                .verify(password, self.password_hash.as_ref())
                .await
            {
                return Ok(Proved::Refused(self.count_failure(
                    at,
                    services,
                    door,
                    |n| AccountFact::PasswordConfirmationFailed {
                        action: action.as_str().to_string(),
                        consecutive_failures: n,
                        context: context.clone(),
                        door,
                    },
                )));
            }
        }
        match factor {
            None => Ok(Proved::Accepted(Vec::new())),
            Some(factor) => match self.check_proof(factor) {
                None => Ok(Proved::Refused(self.proof_failed(
                    None,
                    factor,
                    at,
                    (context.clone(), door),
                    services,
                ))),
                Some(proven) => Ok(Proved::Accepted(self.verified(
                    None,
                    proven,
                    context.clone(),
                ))),
            },
        }
    }
}
