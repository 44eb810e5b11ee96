//! Staff API tokens and the role check every `/v1/admin/*` route runs.
//!
//! A staff token is `ghs1.<staff id>.<secret>`, the secret 256 random bits in base64url, shown
//! once; the `Staff` aggregate keeps only SHA-256 of the secret. The id routes the check to the
//! aggregate, so a token works from the moment its creation commits, with no lookup table.
//!
//! Routes declare what they need with a permission type: `Staff<ReadAlerts>` admits analysts and
//! admins, and answers 401 without a valid staff token and 403 with a token of another role.
use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Utc;
use gatehouse_domain::staff::{Staff as StaffMember, StaffCommand, StaffError, StaffRole};
use gatehouse_projections::store::{AggregateStore, CommandExecutor, ExecuteError};
use gatehouse_projections::Store;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;
use crate::keys::random_bytes;
use crate::request::Caller;
use crate::state::AppState;

const PREFIX: &str = "ghs1";

/// A freshly issued staff token.
pub struct IssuedStaffToken {
    /// The staff member's id.
    pub staff_id: Uuid,
    /// The bearer token (shown once).
    pub token: SecretString,
    /// SHA-256 (hex) of its secret.
    pub token_hash: String,
}

/// Draws a new staff id and secret.
pub fn issue() -> Result<IssuedStaffToken, crate::keys::KeyError> {
    let staff_id = uuid::Builder::from_random_bytes(random_bytes::<16>()?).into_uuid();
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    Ok(IssuedStaffToken {
        staff_id,
        token_hash: hash_secret(&secret),
        token: SecretString::from(format!("{PREFIX}.{staff_id}.{secret}")),
    })
}

/// Splits a presented staff token into the staff id and the secret's hash.
pub fn parse(token: &str) -> Option<(Uuid, String)> {
    let mut parts = token.split('.');
    let (prefix, id, secret) = (parts.next()?, parts.next()?, parts.next()?);
    if prefix != PREFIX || parts.next().is_some() || secret.len() != 43 {
        return None;
    }
    URL_SAFE_NO_PAD.decode(secret).ok()?;
    Some((Uuid::parse_str(id).ok()?, hash_secret(secret)))
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A permission: which roles hold it.
pub trait Permission: Send + Sync + 'static {
    /// Roles that hold it (admins are always listed explicitly).
    const ROLES: &'static [StaffRole];
}

/// Read alerts and their live feed, acknowledge and resolve them.
pub struct ManageAlerts;
impl Permission for ManageAlerts {
    const ROLES: &'static [StaffRole] = &[StaffRole::Analyst, StaffRole::Admin];
}

/// Search login history across accounts.
pub struct ReadLoginHistory;
impl Permission for ReadLoginHistory {
    const ROLES: &'static [StaffRole] = &[StaffRole::Analyst, StaffRole::Auditor, StaffRole::Admin];
}

/// Read an account's raw event timeline.
pub struct ReadEvents;
impl Permission for ReadEvents {
    const ROLES: &'static [StaffRole] = &[StaffRole::Auditor, StaffRole::Analyst, StaffRole::Admin];
}

/// Review lost-second-factor recovery cases.
pub struct ReviewRecoveries;
impl Permission for ReviewRecoveries {
    const ROLES: &'static [StaffRole] = &[StaffRole::Reviewer, StaffRole::Admin];
}

/// Verify API keys and check withdrawals (the platform's backend).
pub struct PlatformChecks;
impl Permission for PlatformChecks {
    const ROLES: &'static [StaffRole] = &[StaffRole::Platform, StaffRole::Admin];
}

/// Create staff.
pub struct ManageStaff;
impl Permission for ManageStaff {
    const ROLES: &'static [StaffRole] = &[StaffRole::Admin];
}

/// A request by a staff member holding permission `P`.
pub struct Staff<P> {
    /// The member's id (aggregate id).
    pub id: String,
    /// The member's state as checked.
    pub member: StaffMember,
    /// Where the request came from.
    pub caller: Caller,
    _permission: PhantomData<fn() -> P>,
}

impl<P: Permission> FromRequestParts<AppState> for Staff<P> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let raw = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(unauthenticated)?;
        let (id, token_hash) = parse(raw.trim()).ok_or_else(unauthenticated)?;
        let id = id.to_string();
        // Checked against the aggregate, not a projection.
        let member = state.staff().load(&id).await.map_err(staff_execute_error)?;
        if !member.token_matches(&token_hash) {
            return Err(unauthenticated());
        }
        if !member.has_any(P::ROLES) {
            return Err(ApiError::forbidden());
        }
        Ok(Self {
            id,
            member,
            caller,
            _permission: PhantomData,
        })
    }
}

impl<P> Staff<P> {
    /// Records what the member looked at or did (an event on their aggregate).
    pub async fn record(
        &self,
        state: &AppState,
        action: &str,
        target: String,
    ) -> Result<(), ApiError> {
        let ip = self.caller.ip.map(|ip| ip.to_string());
        let at = Utc::now();
        state
            .staff()
            .execute(
                &self.id,
                || StaffCommand::RecordAction {
                    action: action.to_string(),
                    target: target.clone(),
                    ip: ip.clone(),
                    at,
                },
                crate::routes::metadata(),
            )
            .await
            .map_err(staff_execute_error)?;
        state.runner().nudge();
        Ok(())
    }
}

fn unauthenticated() -> ApiError {
    ApiError::other(
        axum::http::StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "a valid staff token is required",
    )
}

/// Maps a staff command failure.
pub fn staff_execute_error(e: ExecuteError<StaffError>) -> ApiError {
    match e {
        ExecuteError::Refused(StaffError::NotFound) => unauthenticated(),
        ExecuteError::Refused(StaffError::Invalid) => {
            ApiError::validation("invalid_staff", "give a name and at least one role")
        }
        ExecuteError::Refused(other) => ApiError::internal(other),
        ExecuteError::Contention => ApiError::unavailable(),
        ExecuteError::Store(detail) => {
            tracing::error!(error = %detail, "store failure");
            ApiError::unavailable()
        }
    }
}

/// A staff executor over a store.
pub fn executor(store: &Store) -> CommandExecutor<StaffMember> {
    CommandExecutor::new(AggregateStore::new(store, Vec::new()), ())
}

/// Creates a staff member and returns their id and token (shown once). `created_by` is the
/// creating admin, `None` for the command-line bootstrap.
pub async fn create(
    staff: &CommandExecutor<StaffMember>,
    name: &str,
    roles: Vec<StaffRole>,
    created_by: Option<String>,
) -> Result<(Uuid, SecretString), ApiError> {
    let issued = issue().map_err(ApiError::internal)?;
    let at = Utc::now();
    staff
        .execute(
            &issued.staff_id.to_string(),
            || StaffCommand::CreateStaff {
                name: name.to_string(),
                roles: roles.clone(),
                token_hash: issued.token_hash.clone(),
                created_by: created_by.clone(),
                at,
            },
            crate::routes::metadata(),
        )
        .await
        .map_err(staff_execute_error)?;
    Ok((issued.staff_id, issued.token))
}

/// `gatehouse staff create`: opens the store (migrating it if needed), creates the member and
/// returns their token, to be printed once.
pub async fn cli(args: crate::config::StaffArgs) -> Result<String, String> {
    let crate::config::StaffCli::Create(args) = args.command;
    let roles = args
        .roles
        .iter()
        .map(|r| {
            StaffRole::parse(r.trim())
                .ok_or_else(|| format!("unknown role {r:?} (analyst, auditor, reviewer, admin)"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let store = match &args.database_url {
        Some(url) => Store::connect_postgres(url, 2).await,
        None => Store::open_embedded(&args.data_dir).await,
    }
    .map_err(|e| format!("cannot open the event store: {e}"))?;
    store
        .migrate()
        .await
        .map_err(|e| format!("cannot migrate the event store: {e}"))?;
    let staff = executor(&store);
    let result = create(&staff, &args.name, roles, None).await;
    store.close().await;
    let (id, token) =
        result.map_err(|e| format!("cannot create the staff member ({})", e.code()))?;
    eprintln!("created staff member {id}; its token follows on stdout and is not shown again");
    Ok(token.expose_secret().to_string())
}

/// Exposes a token for printing once.
pub fn reveal(token: &SecretString) -> &str {
    token.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_staff_tokens_round_trip_and_reject_session_tokens() {
        let issued = issue().unwrap();
        let (id, hash) = parse(issued.token.expose_secret()).unwrap();
        assert_eq!(id, issued.staff_id);
        assert_eq!(hash, issued.token_hash);
        assert!(parse("gh1.a.b.c").is_none());
        assert!(parse(&format!("ghs1.{id}.short")).is_none());
    }
}
