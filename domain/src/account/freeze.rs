//! Freezing an account, and staff actions on it.
//!
//! Freezing protects, so a session alone may do it, as may a freeze link from any security notice
//! (single use, [`FREEZE_LINK_TTL`]) and staff with a reason. A frozen account has no session, no
//! API key and no trusted device left (revoked, not suspended: a thief's key does not come back),
//! refuses sign-in with the right password (`LoginRefusedWhileFrozen`) and withdrawals.
//!
//! Unfreezing is a recovery: the owner proves a verified contact with the code of an unfreeze
//! flow and a current second factor (`SensitiveAction::Unfreeze`); when the account has both a
//! verified email and a verified phone, a second step follows whose code goes by the other
//! channel (bound to it), and only that code unfreezes. Then high-risk actions pause.
//! A staff unfreeze takes effect only after the recovery hold (as after a lost-2FA approval),
//! announced on every channel with a freeze link, so the owner can freeze again meanwhile: one
//! staff member talked into it cannot hand the account over at once.
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::context::RequestContext;

use super::commands::FreezeRequest;
use super::error::AccountError;
use super::events::{
    AccountFact, CooldownReason, DeviceRevokeReason, FreezeActor, SessionEndReason,
    StaffAccountAction, UnlockReason,
};
use super::services::AccountServices;
use super::state::{Account, FREEZE_LINK_TTL};

/// How far in the future a link's mint time may lie (clocks of several servers differ).
const LINK_CLOCK_SLACK: chrono::Duration = chrono::Duration::minutes(5);

impl Account {
    /// `Freeze`.
    pub(super) fn freeze(
        &self,
        by: FreezeRequest,
        reason: Option<String>,
        at: DateTime<Utc>,
        context: RequestContext,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        let mut facts = Vec::new();
        let actor = match by {
            FreezeRequest::Session { session_id } => {
                if !self
                    .sessions
                    .get(&session_id)
                    .is_some_and(|s| s.is_live(at))
                {
                    return Err(AccountError::SessionNotFound);
                }
                FreezeActor::Owner { session_id }
            }
            FreezeRequest::Link { link_id, issued_at } => {
                if self.used_freeze_links.contains_key(&link_id) {
                    return Err(AccountError::FreezeLinkUsed);
                }
                if at - issued_at >= FREEZE_LINK_TTL || issued_at > at + LINK_CLOCK_SLACK {
                    return Err(AccountError::FreezeLinkExpired);
                }
                FreezeActor::Link { link_id }
            }
            FreezeRequest::Staff { staff_id } => {
                facts.push(AccountFact::StaffActionTaken {
                    staff_id: staff_id.clone(),
                    action: StaffAccountAction::Freeze,
                    reason: reason.clone().unwrap_or_default(),
                    context: context.clone(),
                });
                FreezeActor::Staff { staff_id }
            }
        };
        // Frozen already, with no staff unfreeze pending: nothing to do. (During a staff
        // unfreeze's hold, freezing again cancels the release.)
        if self.frozen.as_ref().is_some_and(|f| f.release_at.is_none()) {
            return Err(AccountError::AlreadyFrozen);
        }
        facts.push(AccountFact::AccountFrozen {
            by: actor,
            reason,
            context: context.clone(),
        });
        facts.extend(self.sessions_ended(at, SessionEndReason::Frozen, &context));
        facts.extend(self.revoke_every_api_key(&context));
        // A thief's passkey must not come back with the unfreeze, like an API key.
        facts.extend(self.revoke_every_passkey(&context));
        facts.extend(self.revoke_devices(DeviceRevokeReason::Frozen, None, &context));
        Ok(facts)
    }

    /// The owner's unfreeze, once the flow's codes (one per verified contact) and the proof
    /// were accepted.
    pub(super) fn unfreeze_by_owner(
        &self,
        flow_id: Uuid,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        if !self.is_frozen(at) {
            return Err(AccountError::NotFrozen);
        }
        Ok(vec![
            AccountFact::AccountUnfrozen {
                by: FreezeActor::Recovery { flow_id },
                reason: None,
                hold_until: None,
                context,
            },
            AccountFact::HighRiskCooldownStarted {
                until: at + services.cooldowns.after_password_reset,
                reason: CooldownReason::Unfrozen,
            },
        ])
    }

    /// `StaffAction`: unfreeze (after the hold), sign out, unlock.
    pub(super) fn staff_action(
        &self,
        staff_id: String,
        action: StaffAccountAction,
        reason: String,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        let taken = AccountFact::StaffActionTaken {
            staff_id: staff_id.clone(),
            action,
            reason: reason.clone(),
            context: context.clone(),
        };
        let mut facts = vec![taken];
        match action {
            StaffAccountAction::Freeze => {
                return self.freeze(FreezeRequest::Staff { staff_id }, Some(reason), at, context)
            }
            StaffAccountAction::Unfreeze => {
                // Only a freeze with no release pending; the hold is the lost-2FA one.
                if self.frozen.as_ref().is_none_or(|f| f.release_at.is_some()) {
                    return Err(AccountError::NotFrozen);
                }
                let hold_until = at + services.cooldowns.recovery_hold;
                facts.push(AccountFact::AccountUnfrozen {
                    by: FreezeActor::Staff { staff_id },
                    reason: Some(reason),
                    hold_until: Some(hold_until),
                    context,
                });
                facts.push(AccountFact::HighRiskCooldownStarted {
                    until: hold_until + services.cooldowns.after_password_reset,
                    reason: CooldownReason::Unfrozen,
                });
            }
            StaffAccountAction::SignOut => {
                facts.extend(self.sessions_ended(at, SessionEndReason::Staff, &context));
            }
            StaffAccountAction::Unlock => facts.push(AccountFact::AccountUnlocked {
                reason: UnlockReason::Staff,
                context,
            }),
        }
        Ok(facts)
    }

    /// One `SessionEnded` per live session.
    fn sessions_ended(
        &self,
        at: DateTime<Utc>,
        reason: SessionEndReason,
        context: &RequestContext,
    ) -> Vec<AccountFact> {
        self.live_sessions(at)
            .into_iter()
            .map(|(session_id, _)| AccountFact::SessionEnded {
                session_id,
                reason: reason.clone(),
                context: context.clone(),
            })
            .collect()
    }

    /// Whether a sign-in from `context` through `door` comes from a place the account knows:
    /// a network (/24, /64) it signed in from before, with a device it knows there (a valid
    /// device token, or the same user agent family). Anything else deserves a notice.
    pub(super) fn familiar_place(
        &self,
        context: &RequestContext,
        door: super::events::Door,
    ) -> bool {
        let network = super::recovery::network_of(context.ip.as_deref());
        if !self.sign_in_networks.contains(&network) {
            return false;
        }
        door.device_id().is_some() || self.sign_in_places.contains(&place_key(context))
    }
}

/// The key of a sign-in place: network and user agent family.
pub(super) fn place_key(context: &RequestContext) -> String {
    format!(
        "{}|{}",
        super::recovery::network_of(context.ip.as_deref()),
        crate::context::user_agent_family(context.user_agent.as_deref())
    )
}
