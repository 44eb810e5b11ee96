//! The answers to the `Team` aggregate's refusals.
use axum::http::StatusCode;
use gatehouse_domain::team::TeamError;

use super::ApiError;

impl From<TeamError> for ApiError {
    fn from(e: TeamError) -> Self {
        match e {
            TeamError::NotFound => team_not_found(),
            TeamError::Forbidden => ApiError::forbidden(),
            TeamError::LastAdmin => ApiError::other(
                StatusCode::CONFLICT,
                "last_admin",
                "a team keeps at least one admin: promote another member first",
            ),
            TeamError::InvitationInvalid => ApiError::other(
                StatusCode::NOT_FOUND,
                "invitation_not_found",
                "the invitation is unknown, used, cancelled, expired, or for another email",
            ),
            TeamError::AlreadyMember => ApiError::other(
                StatusCode::CONFLICT,
                "already_member",
                "that account is already a member",
            ),
            TeamError::MemberUnknown => ApiError::not_found("no such member in this team"),
            TeamError::Invalid => ApiError::bad_request(
                "the name must be 1 to 64 characters, and a team holds at most 200 members and invitations",
            ),
            // Fresh random ids collide only by a fault: retryable.
            TeamError::AlreadyExists => ApiError::unavailable(),
        }
    }
}

/// 404 for a team that does not exist or that the caller is not a member of.
pub fn team_not_found() -> ApiError {
    ApiError::other(
        StatusCode::NOT_FOUND,
        "team_not_found",
        "no such team, or you are not a member",
    )
}
