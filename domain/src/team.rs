//! Team accounts: members with roles (`viewer`, `trader`, `admin`), invitations by verified
//! email, role changes and removals, and what each role may do.
//!
//! One `Team` aggregate per team. Invitations name the invitee by the keyed lookup of their
//! email (never the address); the invitee accepts from an account whose verified email has that
//! lookup. A team always keeps at least one admin.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::chain::ChainLink;

/// Payload version of every `TeamEvent` written by this code.
pub const TEAM_EVENT_VERSION: &str = "1.0";
/// Longest team name.
pub const MAX_TEAM_NAME: usize = 64;
/// Most members and open invitations a team holds.
pub const MAX_TEAM_SIZE: usize = 200;

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamRole {
    /// Sees balances, orders and history.
    Viewer,
    /// Also trades.
    Trader,
    /// Also withdraws and manages members.
    Admin,
}

/// What a member may do; the platform enforces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamPermission {
    /// Read balances, orders, history.
    View,
    /// Place and cancel orders.
    Trade,
    /// Withdraw funds.
    Withdraw,
    /// Invite, change roles, remove members.
    ManageMembers,
}

impl TeamRole {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Trader => "trader",
            Self::Admin => "admin",
        }
    }

    /// What the role may do.
    pub fn permissions(self) -> &'static [TeamPermission] {
        use TeamPermission as P;
        match self {
            Self::Viewer => &[P::View],
            Self::Trader => &[P::View, P::Trade],
            Self::Admin => &[P::View, P::Trade, P::Withdraw, P::ManageMembers],
        }
    }
}

/// The stored envelope of one team fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamEvent {
    /// When it happened (stamped at the edge).
    pub at: DateTime<Utc>,
    /// Hash chain link to the previous event of this aggregate.
    pub prev: ChainLink,
    /// What happened.
    pub fact: TeamFact,
}

/// What happened to a team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TeamFact {
    /// The team was created; its creator is its first admin.
    TeamCreated {
        /// Name.
        name: String,
        /// The creating account.
        created_by: String,
    },
    /// Someone was invited by the keyed lookup of their email.
    MemberInvited {
        /// Invitation id.
        invitation_id: Uuid,
        /// Keyed lookup of the invitee's email.
        email_lookup: String,
        /// Role on acceptance.
        role: TeamRole,
        /// The inviting admin.
        invited_by: String,
        /// Acceptance deadline.
        expires_at: DateTime<Utc>,
    },
    /// The invitee accepted from their account.
    InvitationAccepted {
        /// Invitation id.
        invitation_id: Uuid,
        /// The new member's account.
        account_id: String,
        /// Their role.
        role: TeamRole,
    },
    /// The invitee turned the invitation down from their account.
    InvitationDeclined {
        /// Invitation id.
        invitation_id: Uuid,
        /// The declining account.
        account_id: String,
    },
    /// An admin withdrew an invitation.
    InvitationCancelled {
        /// Invitation id.
        invitation_id: Uuid,
        /// The admin.
        cancelled_by: String,
    },
    /// A member's role changed.
    MemberRoleChanged {
        /// The member.
        account_id: String,
        /// New role.
        role: TeamRole,
        /// The admin.
        changed_by: String,
    },
    /// A member left or was removed.
    MemberRemoved {
        /// The member.
        account_id: String,
        /// The admin, or the member themselves.
        removed_by: String,
    },
}

impl TeamFact {
    /// Stable type string.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TeamCreated { .. } => "TeamCreated",
            Self::MemberInvited { .. } => "MemberInvited",
            Self::InvitationAccepted { .. } => "InvitationAccepted",
            Self::InvitationDeclined { .. } => "InvitationDeclined",
            Self::InvitationCancelled { .. } => "InvitationCancelled",
            Self::MemberRoleChanged { .. } => "MemberRoleChanged",
            Self::MemberRemoved { .. } => "MemberRemoved",
        }
    }
}

impl TeamFact {
    /// The fields of this fact never published; none today (an invitee is named by the keyed
    /// lookup of their email, never the email), decided per variant so that a new fact must say.
    pub fn secret_fields(&self) -> &'static [&'static str] {
        match self {
            Self::TeamCreated { .. }
            | Self::MemberInvited { .. }
            | Self::InvitationAccepted { .. }
            | Self::InvitationDeclined { .. }
            | Self::InvitationCancelled { .. }
            | Self::MemberRoleChanged { .. }
            | Self::MemberRemoved { .. } => &[],
        }
    }
}

impl TeamEvent {
    /// The event as JSON (its stored shape), with every [secret field](TeamFact::secret_fields)
    /// that holds a value replaced by [`crate::account::REDACTED`].
    pub fn redacted(&self) -> serde_json::Value {
        let Ok(mut value) = serde_json::to_value(self) else {
            return serde_json::Value::String(crate::account::REDACTED.into());
        };
        crate::account::redact_fact(&mut value, self.fact.secret_fields());
        value
    }
}

impl DomainEvent for TeamEvent {
    fn event_type(&self) -> String {
        self.fact.name().to_string()
    }

    fn event_version(&self) -> String {
        TEAM_EVENT_VERSION.to_string()
    }
}

/// Commands on a team. `by` is the acting account, authenticated at the edge.
#[derive(Debug, Clone)]
pub enum TeamCommand {
    /// Creates the team.
    Create {
        /// Name.
        name: String,
        /// The creator (first admin).
        by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Invites someone by the keyed lookup of their email.
    Invite {
        /// Invitation id (drawn at the edge).
        invitation_id: Uuid,
        /// Keyed lookup of the email.
        email_lookup: String,
        /// Role on acceptance.
        role: TeamRole,
        /// The acting admin.
        by: String,
        /// Acceptance deadline.
        expires_at: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Accepts an invitation.
    Accept {
        /// Invitation id.
        invitation_id: Uuid,
        /// The accepting account.
        by: String,
        /// Keyed lookup of that account's verified email, if it has one.
        verified_email_lookup: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Turns an invitation down: only the account whose verified email it names may.
    Decline {
        /// Invitation id.
        invitation_id: Uuid,
        /// The declining account.
        by: String,
        /// Keyed lookup of that account's verified email, if it has one.
        verified_email_lookup: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Withdraws an open invitation.
    CancelInvitation {
        /// Invitation id.
        invitation_id: Uuid,
        /// The acting admin.
        by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Changes a member's role.
    ChangeRole {
        /// The member.
        account_id: String,
        /// New role.
        role: TeamRole,
        /// The acting admin.
        by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Removes a member (an admin), or leaves (the member themselves).
    Remove {
        /// The member.
        account_id: String,
        /// The acting account.
        by: String,
        /// When.
        at: DateTime<Utc>,
    },
}

/// Why a team command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TeamError {
    /// `Create` on an existing team.
    #[error("TM0001 team already exists")]
    AlreadyExists,
    /// No such team, or the caller is not a member.
    #[error("TM0002 no such team")]
    NotFound,
    /// The caller's role does not allow it.
    #[error("TM0003 not allowed for this role")]
    Forbidden,
    /// The change would leave the team without an admin.
    #[error("TM0004 a team keeps at least one admin")]
    LastAdmin,
    /// Unknown, used, cancelled or expired invitation, or not for this account's email.
    #[error("TM0005 invitation unknown, expired or for someone else")]
    InvitationInvalid,
    /// Already a member.
    #[error("TM0006 already a member")]
    AlreadyMember,
    /// No such member.
    #[error("TM0007 no such member")]
    MemberUnknown,
    /// Empty or too long name, or a full team.
    #[error("TM0008 invalid team request")]
    Invalid,
}

/// An invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// Keyed lookup of the invitee's email.
    pub email_lookup: String,
    /// Role on acceptance.
    pub role: TeamRole,
    /// Deadline.
    pub expires_at: DateTime<Utc>,
    /// Accepted or cancelled.
    pub closed: bool,
}

/// A team's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Team {
    /// Created yet.
    pub exists: bool,
    /// Name.
    pub name: String,
    /// Members by account id.
    pub members: BTreeMap<String, TeamRole>,
    /// Invitations by id.
    pub invitations: BTreeMap<Uuid, Invitation>,
    chain: ChainLink,
}

impl Team {
    /// A member's role.
    pub fn role_of(&self, account_id: &str) -> Option<TeamRole> {
        self.members.get(account_id).copied()
    }

    fn admins(&self) -> usize {
        self.members
            .values()
            .filter(|r| **r == TeamRole::Admin)
            .count()
    }

    /// The invitation, if it is open at `at` and names the caller's verified email (compared in
    /// constant time); any other case is the same `InvitationInvalid`.
    fn open_invitation_for(
        &self,
        invitation_id: Uuid,
        verified_email_lookup: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<&Invitation, TeamError> {
        let invitation = self
            .invitations
            .get(&invitation_id)
            .filter(|i| !i.closed && at < i.expires_at)
            .ok_or(TeamError::InvitationInvalid)?;
        let for_this_account = verified_email_lookup
            .is_some_and(|l| bool::from(l.as_bytes().ct_eq(invitation.email_lookup.as_bytes())));
        if for_this_account {
            Ok(invitation)
        } else {
            Err(TeamError::InvitationInvalid)
        }
    }

    fn require_admin(&self, by: &str) -> Result<(), TeamError> {
        match self.role_of(by) {
            None => Err(TeamError::NotFound),
            Some(TeamRole::Admin) => Ok(()),
            Some(_) => Err(TeamError::Forbidden),
        }
    }

    /// The pure decision.
    pub fn decide(&self, command: TeamCommand) -> Result<(DateTime<Utc>, TeamFact), TeamError> {
        if !self.exists && !matches!(command, TeamCommand::Create { .. }) {
            return Err(TeamError::NotFound);
        }
        match command {
            TeamCommand::Create { name, by, at } => {
                if self.exists {
                    return Err(TeamError::AlreadyExists);
                }
                let name = name.trim().to_string();
                if name.is_empty()
                    || name.chars().count() > MAX_TEAM_NAME
                    || name.chars().any(char::is_control)
                {
                    return Err(TeamError::Invalid);
                }
                Ok((
                    at,
                    TeamFact::TeamCreated {
                        name,
                        created_by: by,
                    },
                ))
            }
            TeamCommand::Invite {
                invitation_id,
                email_lookup,
                role,
                by,
                expires_at,
                at,
            } => {
                self.require_admin(&by)?;
                let open = self
                    .invitations
                    .values()
                    .filter(|i| !i.closed && at < i.expires_at)
                    .count();
                if self.members.len() + open >= MAX_TEAM_SIZE
                    || self.invitations.contains_key(&invitation_id)
                {
                    return Err(TeamError::Invalid);
                }
                Ok((
                    at,
                    TeamFact::MemberInvited {
                        invitation_id,
                        email_lookup,
                        role,
                        invited_by: by,
                        expires_at,
                    },
                ))
            }
            TeamCommand::Accept {
                invitation_id,
                by,
                verified_email_lookup,
                at,
            } => {
                let invitation =
                    self.open_invitation_for(invitation_id, verified_email_lookup, at)?;
                if self.members.contains_key(&by) {
                    return Err(TeamError::AlreadyMember);
                }
                Ok((
                    at,
                    TeamFact::InvitationAccepted {
                        invitation_id,
                        account_id: by,
                        role: invitation.role,
                    },
                ))
            }
            TeamCommand::Decline {
                invitation_id,
                by,
                verified_email_lookup,
                at,
            } => {
                // The same answer as for an invitation that does not exist: a stranger learns
                // nothing, and cannot close someone else's invitation.
                self.open_invitation_for(invitation_id, verified_email_lookup, at)?;
                Ok((
                    at,
                    TeamFact::InvitationDeclined {
                        invitation_id,
                        account_id: by,
                    },
                ))
            }
            TeamCommand::CancelInvitation {
                invitation_id,
                by,
                at,
            } => {
                self.require_admin(&by)?;
                self.invitations
                    .get(&invitation_id)
                    .filter(|i| !i.closed)
                    .ok_or(TeamError::InvitationInvalid)?;
                Ok((
                    at,
                    TeamFact::InvitationCancelled {
                        invitation_id,
                        cancelled_by: by,
                    },
                ))
            }
            TeamCommand::ChangeRole {
                account_id,
                role,
                by,
                at,
            } => {
                self.require_admin(&by)?;
                let current = self.role_of(&account_id).ok_or(TeamError::MemberUnknown)?;
                if current == TeamRole::Admin && role != TeamRole::Admin && self.admins() == 1 {
                    return Err(TeamError::LastAdmin);
                }
                Ok((
                    at,
                    TeamFact::MemberRoleChanged {
                        account_id,
                        role,
                        changed_by: by,
                    },
                ))
            }
            TeamCommand::Remove { account_id, by, at } => {
                // A member may leave; removing someone else takes an admin.
                if by != account_id {
                    self.require_admin(&by)?;
                } else if self.role_of(&by).is_none() {
                    return Err(TeamError::NotFound);
                }
                let current = self.role_of(&account_id).ok_or(TeamError::MemberUnknown)?;
                if current == TeamRole::Admin && self.admins() == 1 {
                    return Err(TeamError::LastAdmin);
                }
                Ok((
                    at,
                    TeamFact::MemberRemoved {
                        account_id,
                        removed_by: by,
                    },
                ))
            }
        }
    }

    fn fold(&mut self, event: &TeamEvent) {
        match &event.fact {
            TeamFact::TeamCreated { name, created_by } => {
                self.exists = true;
                self.name = name.clone();
                self.members.insert(created_by.clone(), TeamRole::Admin);
            }
            TeamFact::MemberInvited {
                invitation_id,
                email_lookup,
                role,
                expires_at,
                ..
            } => {
                self.invitations.insert(
                    *invitation_id,
                    Invitation {
                        email_lookup: email_lookup.clone(),
                        role: *role,
                        expires_at: *expires_at,
                        closed: false,
                    },
                );
            }
            TeamFact::InvitationAccepted {
                invitation_id,
                account_id,
                role,
            } => {
                if let Some(i) = self.invitations.get_mut(invitation_id) {
                    i.closed = true;
                }
                self.members.insert(account_id.clone(), *role);
            }
            TeamFact::InvitationCancelled { invitation_id, .. }
            | TeamFact::InvitationDeclined { invitation_id, .. } => {
                if let Some(i) = self.invitations.get_mut(invitation_id) {
                    i.closed = true;
                }
            }
            TeamFact::MemberRoleChanged {
                account_id, role, ..
            } => {
                if let Some(r) = self.members.get_mut(account_id) {
                    *r = *role;
                }
            }
            TeamFact::MemberRemoved { account_id, .. } => {
                self.members.remove(account_id);
            }
        }
    }
}

crate::single_fact_aggregate!(Team, "Team", TeamCommand, TeamEvent, TeamError);

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn given(commands: Vec<TeamCommand>) -> Team {
        let mut team = Team::default();
        for c in commands {
            let (at, fact) = team.decide(c).unwrap();
            let event = TeamEvent {
                at,
                prev: team.chain.clone(),
                fact,
            };
            team.fold(&event);
        }
        team
    }

    fn created() -> Vec<TeamCommand> {
        vec![TeamCommand::Create {
            name: " Desk ".into(),
            by: "alice".into(),
            at: at(0),
        }]
    }

    fn invite(role: TeamRole, by: &str) -> TeamCommand {
        TeamCommand::Invite {
            invitation_id: Uuid::from_u128(1),
            email_lookup: "bob-lookup".into(),
            role,
            by: by.into(),
            expires_at: at(100),
            at: at(1),
        }
    }

    fn accept(lookup: Option<&str>, when: i64) -> TeamCommand {
        TeamCommand::Accept {
            invitation_id: Uuid::from_u128(1),
            by: "bob".into(),
            verified_email_lookup: lookup.map(str::to_string),
            at: at(when),
        }
    }

    #[test]
    fn test_the_creator_is_admin_and_an_invitation_is_accepted_by_its_email_only() {
        let mut history = created();
        history.push(invite(TeamRole::Trader, "alice"));
        let team = given(history.clone());
        assert_eq!(team.name, "Desk");
        assert_eq!(team.role_of("alice"), Some(TeamRole::Admin));
        assert_eq!(
            team.decide(accept(Some("mallory-lookup"), 2)).unwrap_err(),
            TeamError::InvitationInvalid
        );
        assert_eq!(
            team.decide(accept(None, 2)).unwrap_err(),
            TeamError::InvitationInvalid
        );
        assert_eq!(
            team.decide(accept(Some("bob-lookup"), 100)).unwrap_err(),
            TeamError::InvitationInvalid,
            "expired"
        );
        history.push(accept(Some("bob-lookup"), 2));
        let team = given(history.clone());
        assert_eq!(team.role_of("bob"), Some(TeamRole::Trader));
        assert_eq!(
            team.decide(accept(Some("bob-lookup"), 3)).unwrap_err(),
            TeamError::InvitationInvalid,
            "used"
        );
        // Only admins manage members.
        assert_eq!(
            team.decide(TeamCommand::ChangeRole {
                account_id: "bob".into(),
                role: TeamRole::Admin,
                by: "bob".into(),
                at: at(4),
            })
            .unwrap_err(),
            TeamError::Forbidden
        );
        assert_eq!(
            team.decide(invite(TeamRole::Viewer, "stranger"))
                .unwrap_err(),
            TeamError::NotFound
        );
    }

    #[test]
    fn test_a_cancelled_invitation_cannot_be_accepted_and_only_admins_cancel() {
        let mut history = created();
        history.push(invite(TeamRole::Trader, "alice"));
        let cancel = |by: &str| TeamCommand::CancelInvitation {
            invitation_id: Uuid::from_u128(1),
            by: by.into(),
            at: at(2),
        };
        let team = given(history.clone());
        assert_eq!(team.decide(cancel("bob")).unwrap_err(), TeamError::NotFound);
        history.push(cancel("alice"));
        let team = given(history);
        assert_eq!(
            team.decide(accept(Some("bob-lookup"), 3)).unwrap_err(),
            TeamError::InvitationInvalid
        );
        assert_eq!(
            team.decide(cancel("alice")).unwrap_err(),
            TeamError::InvitationInvalid,
            "cancelled once"
        );
    }

    #[test]
    fn test_only_the_invitee_declines_and_a_declined_invitation_is_closed() {
        let mut history = created();
        history.push(invite(TeamRole::Trader, "alice"));
        let decline = |lookup: Option<&str>, by: &str, when: i64| TeamCommand::Decline {
            invitation_id: Uuid::from_u128(1),
            by: by.into(),
            verified_email_lookup: lookup.map(str::to_string),
            at: at(when),
        };
        let team = given(history.clone());
        for (lookup, by) in [
            (Some("mallory-lookup"), "mallory"),
            (None, "bob"),
            (Some("alice-lookup"), "alice"),
        ] {
            assert_eq!(
                team.decide(decline(lookup, by, 2)).unwrap_err(),
                TeamError::InvitationInvalid,
                "{by} without the invitee's verified email"
            );
        }
        assert_eq!(
            team.decide(decline(Some("bob-lookup"), "bob", 100))
                .unwrap_err(),
            TeamError::InvitationInvalid,
            "expired"
        );
        let (_, fact) = team.decide(decline(Some("bob-lookup"), "bob", 2)).unwrap();
        assert_eq!(
            fact,
            TeamFact::InvitationDeclined {
                invitation_id: Uuid::from_u128(1),
                account_id: "bob".into(),
            }
        );
        history.push(decline(Some("bob-lookup"), "bob", 2));
        let team = given(history);
        assert_eq!(team.role_of("bob"), None);
        assert!(team.invitations[&Uuid::from_u128(1)].closed);
        assert_eq!(
            team.decide(accept(Some("bob-lookup"), 3)).unwrap_err(),
            TeamError::InvitationInvalid,
            "declined, then accepted"
        );
        assert_eq!(
            team.decide(decline(Some("bob-lookup"), "bob", 3))
                .unwrap_err(),
            TeamError::InvitationInvalid,
            "declined twice"
        );
    }

    #[test]
    fn test_the_last_admin_can_be_neither_demoted_nor_removed() {
        let team = given(created());
        let demote = TeamCommand::ChangeRole {
            account_id: "alice".into(),
            role: TeamRole::Viewer,
            by: "alice".into(),
            at: at(1),
        };
        assert_eq!(team.decide(demote).unwrap_err(), TeamError::LastAdmin);
        let leave = TeamCommand::Remove {
            account_id: "alice".into(),
            by: "alice".into(),
            at: at(1),
        };
        assert_eq!(
            team.decide(leave.clone()).unwrap_err(),
            TeamError::LastAdmin
        );
        // With a second admin, the first may step down.
        let mut history = created();
        history.push(invite(TeamRole::Admin, "alice"));
        history.push(accept(Some("bob-lookup"), 2));
        let team = given(history);
        assert!(team.decide(leave).is_ok());
        assert_eq!(TeamRole::Viewer.permissions(), &[TeamPermission::View]);
        assert!(TeamRole::Admin
            .permissions()
            .contains(&TeamPermission::ManageMembers));
    }
}
