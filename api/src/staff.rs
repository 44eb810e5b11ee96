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
use chrono::{DateTime, Duration, Utc};
use gatehouse_domain::staff::{
    Staff as StaffMember, StaffCommand, StaffError, StaffRole, TokenStatus,
};
use gatehouse_store::Store;
use gatehouse_store::{AggregateStore, CommandExecutor, ExecuteError};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{staff_unauthenticated, ApiError};
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

/// Freeze and unfreeze accounts.
pub struct FreezeAccounts;
impl Permission for FreezeAccounts {
    const ROLES: &'static [StaffRole] = &[StaffRole::Reviewer, StaffRole::Admin];
}

/// Sign an account's sessions out, unlock it.
pub struct ManageAccounts;
impl Permission for ManageAccounts {
    const ROLES: &'static [StaffRole] = &[StaffRole::Admin];
}

/// Verify API keys and check withdrawals (the platform's backend).
pub struct PlatformChecks;
impl Permission for PlatformChecks {
    const ROLES: &'static [StaffRole] = &[StaffRole::Platform, StaffRole::Admin];
}

/// Manage webhook subscriptions (create, rotate, enable, delete, read deliveries).
pub struct ManageWebhooks;
impl Permission for ManageWebhooks {
    const ROLES: &'static [StaffRole] = &[StaffRole::Admin];
}

/// Read one's own staff record (every role: what the console's sign-in checks).
pub struct AnyStaff;
impl Permission for AnyStaff {
    const ROLES: &'static [StaffRole] = &[
        StaffRole::Analyst,
        StaffRole::Auditor,
        StaffRole::Reviewer,
        StaffRole::Admin,
        StaffRole::Platform,
    ];
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
            .ok_or_else(staff_unauthenticated)?;
        let (id, token_hash) = parse(raw.trim()).ok_or_else(staff_unauthenticated)?;
        let id = id.to_string();
        // Checked against the aggregate, not a projection. An expired or revoked token is
        // refused exactly like an unknown one.
        let member = state.staff().load(&id).await?;
        if !member.token_valid(&token_hash, Utc::now(), state.access().staff_token_lifetime) {
            return Err(staff_unauthenticated());
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
                crate::metadata::metadata(),
            )
            .await?;
        Ok(())
    }
}

/// A staff executor over a store.
pub fn executor(store: &Store) -> CommandExecutor<StaffMember> {
    CommandExecutor::new(AggregateStore::new(store, Vec::new()), ())
}

/// Creates a staff member and returns their id and token (shown once), valid for `lifetime`.
/// `created_by` is the creating admin, `None` for the command-line bootstrap.
pub async fn create(
    staff: &CommandExecutor<StaffMember>,
    name: &str,
    roles: Vec<StaffRole>,
    created_by: Option<String>,
    lifetime: Duration,
) -> Result<(Uuid, SecretString), ApiError> {
    let issued = issue()?;
    let token_id = random_id()?;
    let at = Utc::now();
    staff
        .execute(
            &issued.staff_id.to_string(),
            || StaffCommand::CreateStaff {
                name: name.to_string(),
                roles: roles.clone(),
                token_hash: issued.token_hash.clone(),
                token_id,
                token_expires_at: at + lifetime,
                created_by: created_by.clone(),
                at,
            },
            crate::metadata::metadata(),
        )
        .await?;
    Ok((issued.staff_id, issued.token))
}

/// A token issued to an existing member.
pub struct Reissued {
    /// The token's id.
    pub token_id: Uuid,
    /// The bearer token (shown once).
    pub token: SecretString,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// Issues a new token to member `staff_id` (their earlier one stops working). `issued_by` is
/// the admin, `None` from the command line.
pub async fn reissue(
    staff: &CommandExecutor<StaffMember>,
    staff_id: Uuid,
    issued_by: Option<String>,
    lifetime: Duration,
) -> Result<Reissued, ApiError> {
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let token_hash = hash_secret(&secret);
    let token_id = random_id()?;
    let at = Utc::now();
    let expires_at = at + lifetime;
    staff
        .execute(
            &staff_id.to_string(),
            || StaffCommand::IssueToken {
                token_id,
                token_hash: token_hash.clone(),
                expires_at,
                issued_by: issued_by.clone(),
                at,
            },
            crate::metadata::metadata(),
        )
        .await
        .map_err(member_error)?;
    Ok(Reissued {
        token_id,
        token: SecretString::from(format!("{PREFIX}.{staff_id}.{secret}")),
        expires_at,
    })
}

/// Revokes every token of member `staff_id`.
pub async fn revoke(
    staff: &CommandExecutor<StaffMember>,
    staff_id: Uuid,
    revoked_by: Option<String>,
) -> Result<(), ApiError> {
    let at = Utc::now();
    staff
        .execute(
            &staff_id.to_string(),
            || StaffCommand::RevokeTokens {
                revoked_by: revoked_by.clone(),
                at,
            },
            crate::metadata::metadata(),
        )
        .await
        .map_err(member_error)?;
    Ok(())
}

/// A command on a member named in the path: an unknown member is a 404 (not the caller's 401).
fn member_error(e: ExecuteError<StaffError>) -> ApiError {
    match e {
        ExecuteError::Refused(StaffError::NotFound) => ApiError::not_found("no such staff member"),
        other => other.into(),
    }
}

fn random_id() -> Result<Uuid, ApiError> {
    Ok(uuid::Builder::from_random_bytes(random_bytes::<16>()?).into_uuid())
}

/// Every staff member, by id (read from the store's `Staff` aggregates).
pub async fn list(
    store: &Store,
    staff: &CommandExecutor<StaffMember>,
) -> Result<Vec<(String, StaffMember)>, String> {
    use sqlx::Row as _;
    let rows = sqlx::query(
        "select distinct aggregate_id from events where aggregate_type = 'Staff' order by aggregate_id",
    )
    .fetch_all(store.any())
    .await
    .map_err(|e| format!("cannot read the staff: {e}"))?;
    let mut members = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row
            .try_get("aggregate_id")
            .map_err(|e| format!("cannot read the staff: {e}"))?;
        let member = staff
            .load(&id)
            .await
            .map_err(|e| format!("cannot load staff member {id}: {e}"))?;
        if member.exists {
            members.push((id, member));
        }
    }
    Ok(members)
}

/// The staff as a table for a terminal: every value escaped (a name could hold control
/// characters written before they were refused).
pub fn list_text(
    members: &[(String, StaffMember)],
    now: DateTime<Utc>,
    lifetime: Duration,
) -> String {
    use std::fmt::Write as _;
    let esc = gatehouse_domain::text::escape_control;
    let mut out = format!(
        "{:<36}  {:<24}  {:<24}  {:<36}  {}\n",
        "staff id", "name", "roles", "token id", "token"
    );
    for (id, m) in members {
        let roles: Vec<&str> = m.roles.iter().map(|r| r.as_str()).collect();
        let token = match m.token_status(now, lifetime) {
            TokenStatus::Live(until) => format!("valid until {}", until.to_rfc3339()),
            TokenStatus::Expired(at) => format!("expired {}", at.to_rfc3339()),
            TokenStatus::Revoked => "revoked".to_string(),
        };
        let token_id = match (m.token.id, m.token_status(now, lifetime)) {
            (_, TokenStatus::Revoked) => "-".to_string(),
            (Some(t), _) => t.to_string(),
            (None, _) => "(issued at creation)".to_string(),
        };
        let _ = writeln!(
            out,
            "{:<36}  {:<24}  {:<24}  {:<36}  {}",
            esc(id),
            esc(&m.name),
            roles.join(","),
            token_id,
            token
        );
    }
    out
}

/// `gatehouse staff …`: opens the store (migrating it if needed) and creates a member, lists
/// them, issues a member a new token or revokes theirs. Returns what to print on stdout (a new
/// token alone, once; the list); messages go to stderr.
pub async fn cli(args: crate::config::StaffArgs) -> Result<String, String> {
    use crate::config::StaffCli;
    let store_args = match &args.command {
        StaffCli::Create(a) => &a.store,
        StaffCli::List(a) => a,
        StaffCli::Token(a) | StaffCli::Revoke(a) => &a.store,
    };
    let lifetime = crate::config::parse::duration(store_args.staff_token_seconds);
    let store = match &store_args.database_url {
        Some(url) => Store::connect_postgres(url, 2).await,
        None => Store::open_embedded(&store_args.data_dir).await,
    }
    .map_err(|e| format!("cannot open the event store: {e}"))?;
    store
        .migrate()
        .await
        .map_err(|e| format!("cannot migrate the event store: {e}"))?;
    let staff = executor(&store);
    let result = run_cli(&store, &staff, args.command, lifetime).await;
    store.close().await;
    result
}

async fn run_cli(
    store: &Store,
    staff: &CommandExecutor<StaffMember>,
    command: crate::config::StaffCli,
    lifetime: Duration,
) -> Result<String, String> {
    use crate::config::StaffCli;
    match command {
        StaffCli::Create(args) => {
            let roles = args
                .roles
                .iter()
                .map(|r| {
                    StaffRole::parse(r.trim()).ok_or_else(|| {
                        format!(
                            "unknown role {:?} (analyst, auditor, reviewer, admin, platform)",
                            gatehouse_domain::text::escape_control(r)
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let (id, token) = create(staff, &args.name, roles, None, lifetime)
                .await
                .map_err(|e| format!("cannot create the staff member ({})", e.code()))?;
            eprintln!(
                "created staff member {id}; its token follows on stdout and is not shown again (valid {} s)",
                lifetime.num_seconds()
            );
            Ok(format!("{}\n", token.expose_secret()))
        }
        StaffCli::List(_) => Ok(list_text(&list(store, staff).await?, Utc::now(), lifetime)),
        StaffCli::Token(args) => {
            let issued = reissue(staff, args.id, None, lifetime)
                .await
                .map_err(|e| format!("cannot issue a token to {} ({})", args.id, e.code()))?;
            eprintln!(
                "issued token {} to staff member {} (valid until {}); it follows on stdout and is not shown again; the member's earlier token no longer works",
                issued.token_id,
                args.id,
                issued.expires_at.to_rfc3339()
            );
            Ok(format!("{}\n", issued.token.expose_secret()))
        }
        StaffCli::Revoke(args) => {
            revoke(staff, args.id, None)
                .await
                .map_err(|e| format!("cannot revoke the tokens of {} ({})", args.id, e.code()))?;
            eprintln!("revoked every token of staff member {}", args.id);
            Ok(String::new())
        }
    }
}

/// Exposes a token for printing once.
pub fn reveal(token: &SecretString) -> &str {
    token.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_reviewers_may_freeze_and_unfreeze_and_only_admins_sign_out_and_unlock() {
        let holds = |roles: &[StaffRole], role| roles.contains(&role);
        for role in [StaffRole::Reviewer, StaffRole::Admin] {
            assert!(holds(FreezeAccounts::ROLES, role), "{role:?}");
        }
        for role in [StaffRole::Analyst, StaffRole::Auditor, StaffRole::Platform] {
            assert!(!holds(FreezeAccounts::ROLES, role), "{role:?}");
        }
        assert_eq!(ManageAccounts::ROLES, &[StaffRole::Admin]);
    }

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
