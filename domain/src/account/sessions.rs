//! Deciding about sessions and trusted devices: extending a session, ending one or all others,
//! revoking a device with its sessions.
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::context::RequestContext;

use super::error::AccountError;
use super::events::{AccountFact, DeviceRevokeReason, SessionEndReason};
use super::proof::SensitiveAction;
use super::services::AccountServices;
use super::state::{Account, Session};

impl Account {
    /// The session `session_id` if it is live at `at`, else `SessionNotFound`.
    pub(super) fn live_session(
        &self,
        session_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<&Session, AccountError> {
        self.sessions
            .get(&session_id)
            .filter(|s| s.is_live(at))
            .ok_or(AccountError::SessionNotFound)
    }

    /// `ExtendSession`: a live session's idle expiry moves on when the policy says it is due.
    pub(super) fn extend_session(
        &self,
        session_id: Uuid,
        now: DateTime<Utc>,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        Ok(self
            .live_session(session_id, now)?
            .extension_at(now, &services.sessions)
            .map(|idle_expires_at| AccountFact::SessionExtended {
                session_id,
                idle_expires_at,
            })
            .into_iter()
            .collect())
    }

    /// `EndSession`: the caller's own session is logged out, another one is revoked by it.
    pub(super) fn end_session(
        &self,
        session_id: Uuid,
        by_session: Uuid,
        at: DateTime<Utc>,
        context: RequestContext,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        self.live_session(session_id, at)?;
        let reason = if session_id == by_session {
            SessionEndReason::LoggedOut
        } else {
            SessionEndReason::Revoked { by_session }
        };
        Ok(vec![AccountFact::SessionEnded {
            session_id,
            reason,
            context,
        }])
    }

    /// `EndOtherSessions`: every live session but `keep` is revoked by it.
    pub(super) fn end_other_sessions(
        &self,
        keep: Uuid,
        at: DateTime<Utc>,
        context: RequestContext,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        Ok(self
            .live_sessions(at)
            .into_iter()
            .filter(|(id, _)| *id != keep)
            .map(|(session_id, _)| AccountFact::SessionEnded {
                session_id,
                reason: SessionEndReason::Revoked { by_session: keep },
                context: context.clone(),
            })
            .collect())
    }

    /// `RevokeDevice`: the proof of `ManageDevices`; the device's trust and its sessions end.
    pub(super) fn revoke_device(
        &self,
        device_id: Uuid,
        session_id: Uuid,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        self.check_session_proof(
            SensitiveAction::ManageDevices,
            Some(session_id),
            at,
            &services.sessions,
        )?;
        // Any device the account remembers, trusted or expired: forgetting one is always safe.
        if !self.devices.contains_key(&device_id) {
            return Err(AccountError::DeviceNotFound);
        }
        let mut facts = vec![AccountFact::DeviceRevoked {
            device_id,
            reason: DeviceRevokeReason::Owner,
            context: context.clone(),
        }];
        facts.extend(
            self.live_sessions(at)
                .into_iter()
                .filter(|(_, s)| s.device_id == Some(device_id))
                .map(|(id, _)| AccountFact::SessionEnded {
                    session_id: id,
                    reason: if id == session_id {
                        SessionEndReason::LoggedOut
                    } else {
                        SessionEndReason::Revoked {
                            by_session: session_id,
                        }
                    },
                    context: context.clone(),
                }),
        );
        Ok(facts)
    }

    /// `RenameDevice`: a device the account remembers gets the owner's name for it. The name is
    /// the owner's words, bounded so that it fits every list and export.
    pub(super) fn rename_device(
        &self,
        device_id: Uuid,
        name: String,
        context: RequestContext,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        if !device_name_is_valid(&name) {
            return Err(AccountError::DeviceNameInvalid);
        }
        if !self.devices.contains_key(&device_id) {
            return Err(AccountError::DeviceNotFound);
        }
        Ok(vec![AccountFact::DeviceRenamed {
            device_id,
            name,
            context,
        }])
    }
}

/// Longest device name, in characters.
pub const DEVICE_NAME_MAX_CHARS: usize = 64;

/// Whether `name` may name a device: already trimmed, 1 to [`DEVICE_NAME_MAX_CHARS`] characters,
/// no control characters (a name ends up in lists, emails and CSV exports).
pub fn device_name_is_valid(name: &str) -> bool {
    let chars = name.chars().count();
    name.trim() == name
        && (1..=DEVICE_NAME_MAX_CHARS).contains(&chars)
        && !name.chars().any(char::is_control)
}
