//! Team accounts over HTTP: create, invite by verified email, accept or decline, change roles,
//! remove, and the permission answer the platform enforces.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, TimeZone, Utc};
use gatehouse_domain::contact::Contact;
use gatehouse_domain::policy::codes::Channel;
use gatehouse_domain::team::{Team, TeamCommand, TeamError, TeamPermission, TeamRole};
use gatehouse_store::ExecuteError;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::controls::require_session_proof;
use super::ApiJson;
use crate::error::team_not_found;
use crate::error::ApiError;
use crate::keys::random_bytes;
use crate::metadata::metadata;
use crate::request::Authenticated;
use crate::staff::{PlatformChecks, Staff};
use crate::state::AppState;
use gatehouse_domain::SensitiveAction;

/// Creates a team.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeamRequest {
    /// Name (1 to 64 characters).
    pub name: String,
}

/// A team as a member sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamView {
    /// Team id.
    pub team_id: Uuid,
    /// Name.
    pub name: String,
    /// The caller's role.
    #[schema(value_type = String)]
    pub your_role: TeamRole,
    /// Members.
    pub members: Vec<MemberView>,
    /// Open invitations (admins only; empty for others).
    pub invitations: Vec<InvitationView>,
}

/// A member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    /// Account id.
    pub account_id: String,
    /// `viewer`, `trader` or `admin`.
    #[schema(value_type = String)]
    pub role: TeamRole,
}

/// An open invitation.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    /// Invitation id.
    pub invitation_id: Uuid,
    /// Team id.
    pub team_id: Uuid,
    /// Team name.
    pub team_name: String,
    /// Role on acceptance.
    #[schema(value_type = String)]
    pub role: TeamRole,
    /// Deadline.
    pub expires_at: DateTime<Utc>,
}

/// Invitations addressed to the caller's verified email.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    /// Open ones.
    pub invitations: Vec<InvitationView>,
}

/// Invites someone.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// The invitee's email; they accept from an account where it is verified. At most 320
    /// characters (`400` beyond, or when it is not an email address).
    #[schema(max_length = 320)]
    pub email: String,
    /// `viewer`, `trader` or `admin`.
    #[schema(value_type = TeamRoleName)]
    pub role: TeamRole,
}

/// Changes a role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    /// `viewer`, `trader` or `admin`.
    #[schema(value_type = TeamRoleName)]
    pub role: TeamRole,
}

/// A member's role as the API writes it (the domain's `TeamRole`, which knows no schema).
#[derive(Serialize, ToSchema)]
#[schema(as = TeamRole)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum TeamRoleName {
    /// Sees balances, orders and history.
    Viewer,
    /// Also trades.
    Trader,
    /// Also withdraws and manages members.
    Admin,
}

/// What a member may do.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionsView {
    /// Team id.
    pub team_id: Uuid,
    /// The account asked about.
    pub account_id: String,
    /// Whether it is a member.
    pub member: bool,
    /// Its role.
    #[schema(value_type = Option<String>)]
    pub role: Option<TeamRole>,
    /// `view`, `trade`, `withdraw`, `manage_members`; empty for non-members.
    #[schema(value_type = Vec<String>)]
    pub permissions: Vec<TeamPermission>,
}

async fn run(state: &AppState, team_id: Uuid, command: TeamCommand) -> Result<(), ApiError> {
    state
        .teams()
        .execute(&team_id.to_string(), || command.clone(), metadata())
        .await?;
    Ok(())
}

async fn load(state: &AppState, team_id: Uuid) -> Result<Team, ApiError> {
    let team = state.teams().load(&team_id.to_string()).await?;
    if !team.exists {
        return Err(team_not_found());
    }
    Ok(team)
}

/// Creates a team; the caller is its first admin.
#[utoipa::path(post, path = "/v1/teams", tag = "teams", security(("bearer" = [])),
    request_body = CreateTeamRequest,
    responses((status = 201, body = TeamView), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiJson(req): ApiJson<CreateTeamRequest>,
) -> Result<(StatusCode, Json<TeamView>), ApiError> {
    let name = super::object_name(&req.name)?;
    let team_id = uuid::Builder::from_random_bytes(random_bytes::<16>()?).into_uuid();
    run(
        &state,
        team_id,
        TeamCommand::Create {
            name: name.clone(),
            by: auth.account_id(),
            at: auth.now,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(TeamView {
            team_id,
            name,
            your_role: TeamRole::Admin,
            members: vec![MemberView {
                account_id: auth.account_id(),
                role: TeamRole::Admin,
            }],
            invitations: Vec::new(),
        }),
    ))
}

/// A team, for its members; admins also see open invitations.
#[utoipa::path(get, path = "/v1/teams/{team_id}", tag = "teams", security(("bearer" = [])),
    params(("team_id" = Uuid, Path, description = "Team id")),
    responses((status = 200, body = TeamView), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_team(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(team_id): Path<Uuid>,
) -> Result<Json<TeamView>, ApiError> {
    let team = load(&state, team_id).await?;
    let your_role = team
        .role_of(&auth.account_id())
        .ok_or_else(team_not_found)?;
    let invitations = if your_role == TeamRole::Admin {
        team.invitations
            .iter()
            .filter(|(_, i)| !i.closed && auth.now < i.expires_at)
            .map(|(id, i)| InvitationView {
                invitation_id: *id,
                team_id,
                team_name: team.name.clone(),
                role: i.role,
                expires_at: i.expires_at,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Json(TeamView {
        team_id,
        name: team.name.clone(),
        your_role,
        members: team
            .members
            .iter()
            .map(|(account_id, role)| MemberView {
                account_id: account_id.clone(),
                role: *role,
            })
            .collect(),
        invitations,
    }))
}

/// Invites someone by email (admins). They see it in `GET /v1/me/team-invitations` once that
/// email is verified on their account, and accept or decline it there.
#[utoipa::path(post, path = "/v1/teams/{team_id}/invitations", tag = "teams", security(("bearer" = [])),
    params(("team_id" = Uuid, Path, description = "Team id")),
    request_body = InviteRequest,
    responses(
        (status = 201, body = InvitationView),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`step_up_required` (`POST /v1/me/step-up` first), `forbidden` (not an admin)"),
        (status = 404, body = crate::error::ErrorBody),
    ))]
pub async fn invite(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(team_id): Path<Uuid>,
    ApiJson(req): ApiJson<InviteRequest>,
) -> Result<(StatusCode, Json<InvitationView>), ApiError> {
    require_session_proof(&state, &auth, SensitiveAction::ManageTeam)?;
    if req.email.len() > super::MAX_IDENTIFIER_LEN {
        return Err(ApiError::bad_request("email is too long").with_field("email"));
    }
    let email = Contact::email(&req.email)
        .map_err(|_| ApiError::bad_request("email is not an email address").with_field("email"))?;
    let email_lookup = state.keys().lookup(email.as_str());
    let invitation_id = uuid::Builder::from_random_bytes(random_bytes::<16>()?).into_uuid();
    let expires_at = auth.now + state.controls().team_invitation;
    run(
        &state,
        team_id,
        TeamCommand::Invite {
            invitation_id,
            email_lookup: email_lookup.clone(),
            role: req.role,
            by: auth.account_id(),
            expires_at,
            at: auth.now,
        },
    )
    .await?;
    sqlx::query(
        "insert into team_invitations (invitation_id, team_id, email_lookup, expires_ms) values ($1, $2, $3, $4)",
    )
    .bind(invitation_id.to_string())
    .bind(team_id.to_string())
    .bind(&email_lookup)
    .bind(expires_at.timestamp_millis())
    .execute(state.store().any())
    .await?;
    let team = load(&state, team_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(InvitationView {
            invitation_id,
            team_id,
            team_name: team.name,
            role: req.role,
            expires_at,
        }),
    ))
}

/// Withdraws an open invitation (admins).
#[utoipa::path(delete, path = "/v1/teams/{team_id}/invitations/{invitation_id}", tag = "teams", security(("bearer" = [])),
    params(("team_id" = Uuid, Path), ("invitation_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn cancel_invitation(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((team_id, invitation_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    run(
        &state,
        team_id,
        TeamCommand::CancelInvitation {
            invitation_id,
            by: auth.account_id(),
            at: auth.now,
        },
    )
    .await?;
    forget_invitation(&state, invitation_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn forget_invitation(state: &AppState, invitation_id: Uuid) -> Result<(), ApiError> {
    sqlx::query("delete from team_invitations where invitation_id = $1")
        .bind(invitation_id.to_string())
        .execute(state.store().any())
        .await?;
    Ok(())
}

/// The caller's verified email lookup, if any.
fn verified_email_lookup(auth: &Authenticated) -> Option<String> {
    auth.account
        .email()
        .filter(|_| auth.account.is_verified(Channel::Email))
        .map(|e| e.lookup.clone())
}

/// Open invitations addressed to the caller's verified email.
#[utoipa::path(get, path = "/v1/me/team-invitations", tag = "teams", security(("bearer" = [])),
    responses((status = 200, body = InvitationList), (status = 401, body = crate::error::ErrorBody)))]
pub async fn my_invitations(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<InvitationList>, ApiError> {
    let Some(lookup) = verified_email_lookup(&auth) else {
        return Ok(Json(InvitationList {
            invitations: Vec::new(),
        }));
    };
    let rows = sqlx::query(
        "select invitation_id, team_id, expires_ms from team_invitations where email_lookup = $1 and expires_ms > $2 order by expires_ms limit 100",
    )
    .bind(&lookup)
    .bind(auth.now.timestamp_millis())
    .fetch_all(state.store().any())
    .await?;
    let mut invitations = Vec::with_capacity(rows.len());
    for row in rows {
        let (Ok(invitation), Ok(team)) = (
            row.try_get::<String, _>("invitation_id"),
            row.try_get::<String, _>("team_id"),
        ) else {
            continue;
        };
        let (Ok(invitation_id), Ok(team_id)) =
            (Uuid::parse_str(&invitation), Uuid::parse_str(&team))
        else {
            continue;
        };
        // The aggregate has the last word: only invitations still open there are shown.
        let Ok(team) = load(&state, team_id).await else {
            continue;
        };
        if let Some(i) = team
            .invitations
            .get(&invitation_id)
            .filter(|i| !i.closed && auth.now < i.expires_at)
        {
            let expires_ms: i64 = row.try_get("expires_ms").unwrap_or_default();
            invitations.push(InvitationView {
                invitation_id,
                team_id,
                team_name: team.name.clone(),
                role: i.role,
                expires_at: Utc
                    .timestamp_millis_opt(expires_ms)
                    .single()
                    .unwrap_or(i.expires_at),
            });
        }
    }
    Ok(Json(InvitationList { invitations }))
}

/// Accepts an invitation addressed to the caller's verified email.
#[utoipa::path(post, path = "/v1/teams/{team_id}/invitations/{invitation_id}/accept", tag = "teams", security(("bearer" = [])),
    params(("team_id" = Uuid, Path), ("invitation_id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody, description = "`invitation_not_found`"), (status = 409, body = crate::error::ErrorBody, description = "`already_member`")))]
pub async fn accept(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((team_id, invitation_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let command = TeamCommand::Accept {
        invitation_id,
        by: auth.account_id(),
        verified_email_lookup: verified_email_lookup(&auth),
        at: auth.now,
    };
    answer_invitation(&state, team_id, invitation_id, command).await
}

/// Runs the invitee's answer (accept or decline), then drops the invitation from the invitees'
/// lists. An unknown team reads as an invitation that does not exist.
async fn answer_invitation(
    state: &AppState,
    team_id: Uuid,
    invitation_id: Uuid,
    command: TeamCommand,
) -> Result<StatusCode, ApiError> {
    state
        .teams()
        .execute(&team_id.to_string(), || command.clone(), metadata())
        .await
        .map_err(|e| match e {
            ExecuteError::Refused(TeamError::NotFound) => {
                ApiError::from(TeamError::InvitationInvalid)
            }
            other => other.into(),
        })?;
    forget_invitation(state, invitation_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Declines an invitation addressed to the caller's verified email: it closes and leaves the
/// caller's list. Anyone else (another account, an unknown or closed invitation, an unknown team)
/// gets the same `404 invitation_not_found`, and the invitation stays open.
#[utoipa::path(post, path = "/v1/teams/{team_id}/invitations/{invitation_id}/decline", tag = "teams", security(("bearer" = [])),
    params(("team_id" = Uuid, Path), ("invitation_id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody, description = "`invitation_not_found`")))]
pub async fn decline(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((team_id, invitation_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let command = TeamCommand::Decline {
        invitation_id,
        by: auth.account_id(),
        verified_email_lookup: verified_email_lookup(&auth),
        at: auth.now,
    };
    answer_invitation(&state, team_id, invitation_id, command).await
}

/// Changes a member's role (admins); the last admin cannot be demoted.
#[utoipa::path(put, path = "/v1/teams/{team_id}/members/{account_id}", tag = "teams", security(("bearer" = [])),
    params(("team_id" = Uuid, Path), ("account_id" = String, Path)),
    request_body = RoleRequest,
    responses((status = 204), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody, description = "`step_up_required` (`POST /v1/me/step-up` first), `forbidden` (not an admin)"), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody, description = "`last_admin`")))]
pub async fn change_role(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((team_id, account_id)): Path<(Uuid, String)>,
    ApiJson(req): ApiJson<RoleRequest>,
) -> Result<StatusCode, ApiError> {
    require_session_proof(&state, &auth, SensitiveAction::ManageTeam)?;
    run(
        &state,
        team_id,
        TeamCommand::ChangeRole {
            account_id,
            role: req.role,
            by: auth.account_id(),
            at: auth.now,
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a member (admins), or leaves the team (the member); the last admin cannot go.
#[utoipa::path(delete, path = "/v1/teams/{team_id}/members/{account_id}", tag = "teams", security(("bearer" = [])),
    params(("team_id" = Uuid, Path), ("account_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody, description = "`last_admin`")))]
pub async fn remove_member(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((team_id, account_id)): Path<(Uuid, String)>,
) -> Result<StatusCode, ApiError> {
    run(
        &state,
        team_id,
        TeamCommand::Remove {
            account_id,
            by: auth.account_id(),
            at: auth.now,
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What an account may do in a team, for the platform to enforce. Asked by the platform's
/// backend (staff role `platform`) or by any member of the team.
#[utoipa::path(get, path = "/v1/teams/{team_id}/permissions/{account_id}", tag = "teams", security(("bearer" = [])),
    params(("team_id" = Uuid, Path), ("account_id" = String, Path)),
    responses((status = 200, body = PermissionsView), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn permissions(
    State(state): State<AppState>,
    platform: Result<Staff<PlatformChecks>, ApiError>,
    member: Result<Authenticated, ApiError>,
    Path((team_id, account_id)): Path<(Uuid, String)>,
) -> Result<Json<PermissionsView>, ApiError> {
    let team = load(&state, team_id).await?;
    match (platform, member) {
        (Ok(_), _) => {}
        (Err(_), Ok(auth)) if team.role_of(&auth.account_id()).is_some() => {}
        (Err(_), Ok(_)) => return Err(team_not_found()),
        (Err(e), Err(_)) => return Err(e),
    }
    let role = team.role_of(&account_id);
    Ok(Json(PermissionsView {
        team_id,
        account_id,
        member: role.is_some(),
        role,
        permissions: role.map(|r| r.permissions().to_vec()).unwrap_or_default(),
    }))
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(create))
        .routes(utoipa_axum::routes!(get_team))
        .routes(utoipa_axum::routes!(invite))
        .routes(utoipa_axum::routes!(cancel_invitation))
        .routes(utoipa_axum::routes!(accept))
        .routes(utoipa_axum::routes!(decline))
        .routes(utoipa_axum::routes!(my_invitations))
        .routes(utoipa_axum::routes!(change_role, remove_member))
        .routes(utoipa_axum::routes!(permissions))
}
