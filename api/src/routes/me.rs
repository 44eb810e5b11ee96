//! The signed-in account's own views: profile, sessions, login history, lockout.
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use gatehouse_domain::contact::ContactKind;
use gatehouse_domain::policy::Channel;
use gatehouse_domain::AccountCommand;
use gatehouse_projections::{lockout_state, login_history};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::delivery::worker::PHRASE_LABEL;
use crate::directory;
use crate::error::ApiError;
use crate::mask;
use crate::metadata::metadata;
use crate::proof::ProofInput;
use crate::request::{Authenticated, Caller};
use crate::state::AppState;

/// One open session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Session id.
    pub session_id: Uuid,
    /// Whether this is the session making the request.
    pub current: bool,
    /// Sign-in time.
    pub started_at: DateTime<Utc>,
    /// Absolute expiry.
    pub expires_at: DateTime<Utc>,
    /// Expiry if unused.
    pub idle_expires_at: DateTime<Utc>,
    /// IP at sign-in.
    pub ip: Option<String>,
    /// User agent at sign-in.
    pub user_agent: Option<String>,
    /// Device id at sign-in.
    pub device_id: Option<String>,
}

/// The account's open sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Newest first.
    pub sessions: Vec<SessionView>,
}

/// Lists the account's open sessions (read from the account itself, so always current).
#[utoipa::path(get, path = "/v1/me/sessions", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, body = SessionList), (status = 401, body = crate::error::ErrorBody)))]
pub async fn list_sessions(auth: Authenticated) -> Json<SessionList> {
    let current = auth.session_id();
    let mut sessions: Vec<SessionView> = auth
        .account
        .live_sessions(auth.now)
        .into_iter()
        .map(|(id, s)| SessionView {
            session_id: id,
            current: id == current,
            started_at: s.started_at,
            expires_at: s.expires_at,
            idle_expires_at: s.idle_expires_at,
            ip: s.context.ip.clone(),
            user_agent: s.context.user_agent.clone(),
            device_id: s.context.device_id.clone(),
        })
        .collect();
    sessions.sort_by(|a, b| {
        b.started_at
            .cmp(&a.started_at)
            .then(a.session_id.cmp(&b.session_id))
    });
    Json(SessionList { sessions })
}

/// Ends one session of the account (its token fails on its next use).
#[utoipa::path(delete, path = "/v1/me/sessions/{session_id}", tag = "sessions", security(("bearer" = [])),
    params(("session_id" = Uuid, Path, description = "Session to end")),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    Path(session_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    end_session(&state, &caller, &auth, session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends `session_id` on behalf of the authenticated session (a logout when they are the same).
pub async fn end_session(
    state: &AppState,
    caller: &Caller,
    auth: &Authenticated,
    session_id: Uuid,
) -> Result<(), ApiError> {
    let by = auth.session_id();
    let context = caller.context(None);
    state
        .accounts()
        .execute(
            &auth.account_id(),
            || AccountCommand::EndSession {
                session_id,
                by_session: by,
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await?;
    Ok(())
}

/// How many sessions were ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedCount {
    /// Sessions ended.
    pub revoked: usize,
}

/// Ends every session of the account except the caller's.
#[utoipa::path(delete, path = "/v1/me/sessions", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, body = RevokedCount), (status = 401, body = crate::error::ErrorBody)))]
pub async fn revoke_other_sessions(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
) -> Result<Json<RevokedCount>, ApiError> {
    let keep = auth.session_id();
    let context = caller.context(None);
    let executed = state
        .accounts()
        .execute(
            &auth.account_id(),
            || AccountCommand::EndOtherSessions {
                keep,
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await?;
    Ok(Json(RevokedCount {
        revoked: executed.events.len(),
    }))
}

/// Paging of the login history.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Entries per page, 1 to 100 (default 20).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

/// One sign-in attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginHistoryEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// `succeeded`, `failed` or `locked`.
    pub outcome: String,
    /// Why it failed (`wrong_password`, `contact_unverified`, `account_locked`, and for a
    /// passkey `passkey_unknown`, `passkey_user_not_verified`, `passkey_invalid`,
    /// `passkey_counter_regressed`); `passkey` for a sign-in by passkey.
    pub reason: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// Device id.
    pub device_id: Option<String>,
    /// The lockout door the attempt went through: `untrusted` (no valid device token) or
    /// `device` (the trusted device `trusted_device_id`, whose token came with it).
    pub door: String,
    /// The trusted device, for attempts through its door.
    pub trusted_device_id: Option<String>,
}

/// A page of login history, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginHistoryPage {
    /// Entries.
    pub entries: Vec<LoginHistoryEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<i64>,
    /// Read your own writes.
    #[serde(flatten)]
    pub freshness: crate::fresh::Freshness,
}

/// The account's sign-in attempts (from the `login_history` read model). Waits up to
/// `GATEHOUSE_READ_YOUR_WRITES_MS` for the caller's own latest event; `stale: true` when it had
/// not arrived by then.
#[utoipa::path(get, path = "/v1/me/login-history", tag = "history", security(("bearer" = [])), params(HistoryQuery),
    responses((status = 200, body = LoginHistoryPage), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)))]
pub async fn login_history(
    State(state): State<AppState>,
    auth: Authenticated,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<LoginHistoryPage>, ApiError> {
    let Query(query) =
        query.map_err(|_| ApiError::bad_request("limit and cursor must be integers"))?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 100").with_field("limit"));
    }
    let freshness =
        crate::fresh::own_writes(&state, &auth.account_id(), &["login_history_v1"]).await?;
    let rows = login_history::page(
        state.store().reads(),
        &auth.account_id(),
        query.cursor,
        limit + 1,
    )
    .await?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = if more {
        rows.last().map(|r| r.sequence)
    } else {
        None
    };
    let entries = rows
        .into_iter()
        .map(|r| LoginHistoryEntry {
            at: DateTime::from_timestamp_millis(r.at_ms).unwrap_or_default(),
            outcome: r.outcome,
            reason: r.reason,
            ip: r.ip,
            user_agent: r.user_agent,
            device_id: r.device_id,
            door: door_name(r.trusted_device_id.as_deref()).into(),
            trusted_device_id: r.trusted_device_id,
        })
        .collect();
    Ok(Json(LoginHistoryPage {
        entries,
        next_cursor,
        freshness,
    }))
}

/// The wire name of a login history entry's door: `device` when a trusted device's token came
/// with the attempt, else `untrusted`.
pub fn door_name(trusted_device_id: Option<&str>) -> &'static str {
    if trusted_device_id.is_some() {
        "device"
    } else {
        "untrusted"
    }
}

/// Lockout status of the account's untrusted door (sign-ins without a valid device token). Each
/// trusted device has its own door, shown by `GET /v1/me/devices`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LockoutView {
    /// Always `untrusted`: the door this view describes.
    pub door: &'static str,
    /// Whether sign-in is refused right now.
    pub locked: bool,
    /// End of the current lock.
    pub locked_until: Option<DateTime<Utc>>,
    /// Failed attempts since the last success or lock.
    pub consecutive_failures: i64,
    /// Failures allowed before the next lock.
    pub remaining_attempts: i64,
    /// Locks in a row (each doubles the next one).
    pub lock_level: i64,
    /// Last failed attempt.
    pub last_failure_at: Option<DateTime<Utc>>,
}

/// The account's lockout state (from the `lockout_state` read model).
#[utoipa::path(get, path = "/v1/me/lockout", tag = "history", security(("bearer" = [])),
    responses((status = 200, body = LockoutView), (status = 401, body = crate::error::ErrorBody)))]
pub async fn lockout(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<LockoutView>, ApiError> {
    let row = lockout_state::get(state.store().reads(), &auth.account_id())
        .await?
        .unwrap_or_default();
    let threshold = i64::from(state.accounts().services().lockout.threshold);
    let until = row
        .locked_until_ms
        .and_then(DateTime::from_timestamp_millis)
        .filter(|u| *u > auth.now);
    Ok(Json(LockoutView {
        door: "untrusted",
        locked: until.is_some(),
        locked_until: until,
        consecutive_failures: row.consecutive_failures,
        remaining_attempts: (threshold - row.consecutive_failures).max(0),
        lock_level: row.lock_level,
        last_failure_at: row
            .last_failure_ms
            .and_then(DateTime::from_timestamp_millis),
    }))
}

/// The signed-in account.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeView {
    /// Account id.
    pub account_id: Uuid,
    /// The session making the request.
    pub session_id: Uuid,
    /// Registered email, masked (`a*****e@example.com`); absent when none, or once erased.
    pub email: Option<String>,
    /// Registered phone, masked (`+44*******958`).
    pub phone: Option<String>,
    /// Whether the email was confirmed with a code.
    pub email_verified: bool,
    /// Whether the phone was confirmed with a code.
    pub phone_verified: bool,
    /// Whether an anti-phishing phrase is set (the phrase itself is shown only in emails).
    pub anti_phishing_phrase_set: bool,
}

/// Who am I.
#[utoipa::path(get, path = "/v1/me", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = MeView), (status = 401, body = crate::error::ErrorBody)))]
pub async fn me(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<MeView>, ApiError> {
    let id = auth.account_id();
    let (mut email, mut phone) = (None, None);
    // No key (erased account) means no contact: the sealed values stay unreadable.
    if let Some(wrapped) = directory::wrapped_key(state.store(), &id).await? {
        let key = state.keys().unwrap_data_key(&id, &wrapped)?;
        if let Some(sealed) = auth.account.email() {
            email = Some(mask::email(&key.open(
                &id,
                ContactKind::Email,
                &sealed.sealed,
            )?));
        }
        if let Some(sealed) = auth.account.phone() {
            phone = Some(mask::phone(&key.open(
                &id,
                ContactKind::Phone,
                &sealed.sealed,
            )?));
        }
    }
    Ok(Json(MeView {
        account_id: auth.token.account_id,
        session_id: auth.session_id(),
        email,
        phone,
        email_verified: auth.account.is_verified(Channel::Email),
        phone_verified: auth.account.is_verified(Channel::Sms),
        anti_phishing_phrase_set: auth.account.anti_phishing_phrase().is_some(),
    }))
}

/// The anti-phishing phrase to show in every email.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhraseRequest {
    /// 4 to 64 characters, no control characters.
    pub phrase: String,
    /// The password; not needed when the session is stepped up.
    pub proof: Option<ProofInput>,
}

/// Removes the phrase.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemovePhraseRequest {
    /// The password; not needed when the session is stepped up (then the body may be empty).
    pub proof: Option<ProofInput>,
}

/// Sets or changes the anti-phishing phrase: every email to this account starts with it, so a
/// message without it is not from the platform. Needs the password or a stepped-up session: a
/// thief who knows the phrase can phish with it.
#[utoipa::path(put, path = "/v1/me/anti-phishing-phrase", tag = "accounts", security(("bearer" = [])),
    request_body = PhraseRequest,
    responses(
        (status = 204),
        (status = 400, body = crate::error::ErrorBody, description = "`invalid_request` (a malformed proof)"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`invalid_password` (counts toward the lockout)"),
        (status = 422, body = crate::error::ErrorBody, description = "`invalid_phrase`"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked`"),
    ))]
pub async fn set_anti_phishing_phrase(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    super::ApiJson(req): super::ApiJson<PhraseRequest>,
) -> Result<StatusCode, ApiError> {
    let phrase = req.phrase.trim();
    let len = phrase.chars().count();
    if !(4..=64).contains(&len) || phrase.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "invalid_phrase",
            "the phrase must be 4 to 64 characters without control characters",
        )
        .with_field("phrase"));
    }
    let id = auth.account_id();
    let wrapped = directory::wrapped_key(state.store(), &id)
        .await?
        .ok_or_else(|| ApiError::internal("account key missing"))?;
    let sealed = state
        .keys()
        .unwrap_data_key(&id, &wrapped)
        .and_then(|key| key.seal_text(&id, PHRASE_LABEL, phrase))?;
    change_phrase(
        &state,
        &caller,
        &auth,
        Some(sealed),
        req.proof.unwrap_or_default(),
    )
    .await
}

/// Removes the anti-phishing phrase (the password in `proof`, or a stepped-up session).
#[utoipa::path(delete, path = "/v1/me/anti-phishing-phrase", tag = "accounts", security(("bearer" = [])),
    request_body(content = Option<RemovePhraseRequest>, description = "Optional: empty when the session is stepped up"),
    responses(
        (status = 204),
        (status = 400, body = crate::error::ErrorBody, description = "`invalid_request` (a malformed proof)"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`invalid_password` (counts toward the lockout)"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked`"),
    ))]
pub async fn remove_anti_phishing_phrase(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let req: RemovePhraseRequest = crate::proof::optional_body(&body)?;
    change_phrase(&state, &caller, &auth, None, req.proof.unwrap_or_default()).await
}

async fn change_phrase(
    state: &AppState,
    caller: &Caller,
    auth: &Authenticated,
    sealed_phrase: Option<String>,
    input: ProofInput,
) -> Result<StatusCode, ApiError> {
    let id = auth.account_id();
    let proof = crate::proof::resolve(
        state,
        &id,
        &auth.account,
        &input,
        Some(auth.session_id()),
        auth.now,
    )
    .await?;
    let context = caller.context(None);
    let executed = state
        .accounts()
        .execute(
            &id,
            || AccountCommand::SetAntiPhishingPhrase {
                sealed_phrase: sealed_phrase.clone(),
                proof: proof.clone(),
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await?;
    crate::proof::refusal(&executed.events, auth.now)?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the platform must refuse for now.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestrictionsView {
    /// High-risk actions (withdrawals, whitelist changes, second-factor removal, withdraw-scoped
    /// keys) are refused until then; absent when none applies.
    pub high_risk_blocked_until: Option<DateTime<Utc>>,
    /// Why (`password_reset`, `second_factor_removed`, `lost_factor_recovery`,
    /// `second_factor_added`, `withdraw_key_created`, `whitelist_disabled`, `contact_changed`,
    /// `password_changed`).
    pub reasons: Vec<String>,
    /// What is refused until `high_risk_blocked_until`.
    pub blocked_actions: Vec<&'static str>,
    /// Until when this session counts as stepped up (high-risk routes need it); absent when it
    /// is not.
    pub step_up_valid_until: Option<DateTime<Utc>>,
    /// Whether the account has a second factor (high-risk routes need one).
    pub has_second_factor: bool,
    /// Whether withdrawals may only go to whitelisted addresses.
    pub whitelist_only: bool,
}

/// The restrictions in force on the account, for the platform to honour on withdrawals.
#[utoipa::path(get, path = "/v1/me/restrictions", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = RestrictionsView), (status = 401, body = crate::error::ErrorBody)))]
pub async fn restrictions(
    axum::extract::State(state): axum::extract::State<AppState>,
    auth: Authenticated,
) -> Json<RestrictionsView> {
    let until = auth.account.high_risk_until(auth.now);
    let step_up_valid_until = auth
        .account
        .stepped_up_until(
            auth.session_id(),
            state.accounts().services().sessions.step_up,
        )
        .filter(|u| auth.now < *u);
    Json(RestrictionsView {
        high_risk_blocked_until: until,
        reasons: until
            .map(|_| auth.account.high_risk_reasons(auth.now))
            .unwrap_or_default(),
        blocked_actions: if until.is_some() {
            vec![
                "withdrawals",
                "whitelist_changes",
                "second_factor_removal",
                "withdraw_scoped_api_keys",
                "whitelist_disable",
            ]
        } else {
            Vec::new()
        },
        step_up_valid_until,
        has_second_factor: auth.account.has_second_factor(),
        whitelist_only: auth.account.whitelist_only(),
    })
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(me))
        .routes(utoipa_axum::routes!(list_sessions, revoke_other_sessions))
        .routes(utoipa_axum::routes!(revoke_session))
        .routes(utoipa_axum::routes!(login_history))
        .routes(utoipa_axum::routes!(lockout))
        .routes(utoipa_axum::routes!(
            set_anti_phishing_phrase,
            remove_anti_phishing_phrase
        ))
        .routes(utoipa_axum::routes!(restrictions))
}
