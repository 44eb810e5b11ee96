//! Self-service flows: forgot password, unlock, contact verification, and the flow view with its
//! step counter.
//!
//! Every answer about an identifier is the same whether or not it belongs to an account: unknown
//! identifiers run the same flow on their stand-in aggregate, which records it and sends nothing.
//! Flow ids are opaque tokens sealed by the server (they name the aggregate and the flow, with one
//! fixed length), so they cannot be forged or enumerated.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use gatehouse_domain::account::{CodeStatus, Flow, RecoveryStage};
use gatehouse_domain::policy::{Channel, FlowKind};
use gatehouse_domain::{AccountCommand, AccountFact, CodeAction, RedeemCode, StartFlow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ApiJson;
use crate::codes;
use crate::error::ApiError;
use crate::error::{code_unusable, flow_not_found};
use crate::metadata::metadata;
use crate::proof::ProofInput;
use crate::request::Caller;
use crate::state::AppState;
use crate::throttle::Route;

/// Channel a code is sent on.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelParam {
    /// Email.
    Email,
    /// Text message.
    Sms,
}

impl From<ChannelParam> for Channel {
    fn from(c: ChannelParam) -> Self {
        match c {
            ChannelParam::Email => Channel::Email,
            ChannelParam::Sms => Channel::Sms,
        }
    }
}

/// Starts a recovery flow for an identifier.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryRequest {
    /// Email or phone of the account; at most 320 characters (`400` beyond).
    #[schema(max_length = 320)]
    pub identifier: String,
    /// Where to send the code; default: the channel of the identifier typed (`email` for an
    /// address, `sms` for a number). The answer names this channel for every identifier, known or
    /// not; the code goes there only if it is a verified contact of the account, and otherwise
    /// nowhere (never to the other contact).
    pub channel: Option<ChannelParam>,
    /// The `device_token` of an earlier sign-in on this device: the request then counts on the
    /// device's own code budget, which strangers' requests cannot use up (and is exempt from
    /// the account's hourly ceiling). An invalid, revoked, expired or other account's token
    /// counts as none; the answer is the same either way.
    pub device_token: Option<String>,
}

/// Resend a flow's code, optionally on the other channel.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendRequest {
    /// Channel for the new code: forgot-password, unlock and an unfreeze's first step only. A
    /// step that proves a contact is bound to it (verification, whitelist address: email; lost
    /// second factor: the email step by email, the phone step by sms; an unfreeze's second step:
    /// the other channel than its first code's): another channel is refused with
    /// `422 channel_not_allowed`, for unknown identifiers' flows alike.
    pub channel: Option<ChannelParam>,
}

/// A code for a flow.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// The flow id.
    pub flow_id: String,
    /// The code received (spaces and dashes are ignored).
    pub code: String,
}

/// A code and the new password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// The flow id from `POST /v1/password/forgot`.
    pub flow_id: String,
    /// The code received.
    pub code: String,
    /// The new password: the password policy applies, and it must differ from the last 5.
    pub new_password: String,
    /// A current second factor, required when the account has one enrolled (without it:
    /// `403 second_factor_required` with `next_action: "lost_2fa"`, and the code stays usable).
    /// A security key answers a challenge from `POST /v1/flows/{flow_id}/security-key`.
    pub proof: Option<ProofInput>,
}

/// Where a flow stands, for a frontend to show "step 2 of 2" and when "resend" works.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowView {
    /// The flow id (opaque).
    pub flow_id: String,
    /// `verify_email`, `verify_phone`, `reset_password`, `unlock`, `lost_second_factor`,
    /// `whitelist_address` or `unfreeze`.
    pub kind: &'static str,
    /// Current step, from 1.
    pub step: u32,
    /// Steps in this flow. A lost-second-factor recovery counts 4 until its email code is
    /// accepted, whatever the identifier; after it, 4 when a phone step follows, else 3. An
    /// unfreeze counts 2 (step 1) until its first code is accepted, whatever the identifier;
    /// after it, 2 (step 2) when a code by the other channel follows, else 1.
    pub steps_total: u32,
    /// `enter_code`, `enter_code_and_new_password`, `enter_code_and_second_factor`,
    /// `request_new_code`, `submit_evidence`,
    /// `await_review`, `await_hold_end` or `done`.
    pub next_action: &'static str,
    /// `awaiting_code`, `completed`, `code_exhausted`, `code_expired`, `code_superseded`; for a
    /// lost second factor also `awaiting_evidence`, `in_review`, `approved`, `closed`.
    pub status: &'static str,
    /// Channel of the current code (as asked or typed; says nothing about which contacts the
    /// account has or has verified).
    pub channel: &'static str,
    /// When the current code expires.
    pub expires_at: DateTime<Utc>,
    /// When a new code may be requested.
    pub resend_available_at: DateTime<Utc>,
    /// Wrong tries left on the current code.
    pub attempts_remaining: u32,
    /// Where and how the current code was sent. The real status and destination only to the
    /// account's owner (a trusted `X-Device-Token`, or a session of the account as `Authorization:
    /// Bearer`); every other caller sees the channel, the identifier typed masked (`***` when the
    /// code goes to another kind of contact) and `sent`, for accounts and unknown identifiers
    /// alike.
    pub delivery: crate::delivery_status::DeliveryView,
}

fn view(
    state: &AppState,
    token: String,
    account: &gatehouse_domain::Account,
    flow_id: Uuid,
    flow: &Flow,
    now: DateTime<Utc>,
    delivery: crate::delivery_status::DeliveryView,
) -> Option<FlowView> {
    let code = flow.code.as_ref()?;
    let policy = &state.accounts().services().codes;
    let status = match code.status {
        CodeStatus::Active if now >= code.expires_at => "code_expired",
        CodeStatus::Active => "awaiting_code",
        CodeStatus::Used => "completed",
        CodeStatus::Exhausted => "code_exhausted",
        CodeStatus::Expired => "code_expired",
        CodeStatus::Superseded => "code_superseded",
    };
    let steps_total = flow.kind.steps_total();
    let next_action = match status {
        "awaiting_code" => flow.kind.next_action(),
        "completed" => "done",
        _ => "request_new_code",
    };
    let (step, steps_total, next_action, status) = match account
        .recovery_case(flow_id)
        .filter(|_| flow.kind == FlowKind::LostSecondFactor)
    {
        // A lost-second-factor recovery moves through its own stages.
        Some(case) => {
            let (step, total) = case.step_of();
            let (action, status) = match case.stage {
                RecoveryStage::EmailCode | RecoveryStage::PhoneCode => (next_action, status),
                RecoveryStage::Evidence => ("submit_evidence", "awaiting_evidence"),
                RecoveryStage::Review => ("await_review", "in_review"),
                RecoveryStage::Hold => ("await_hold_end", "approved"),
            };
            (step, total, action, status)
        }
        // An unfreeze counts "1 of 2" for everyone until its first code is accepted; then 2 of 2
        // when a code by the other channel follows (the factor is behind: only the code), else
        // done in 1.
        None if flow.kind == FlowKind::Unfreeze => {
            let (step, total) = flow.unfreeze_step();
            let action = if step == 2 && status == "awaiting_code" {
                "enter_code"
            } else {
                next_action
            };
            (step, total, action, status)
        }
        None if flow.kind == FlowKind::LostSecondFactor => (
            steps_total,
            steps_total,
            "done",
            if status == "completed" {
                "closed"
            } else {
                status
            },
        ),
        None => (steps_total, steps_total, next_action, status),
    };
    Some(FlowView {
        flow_id: token,
        kind: flow.kind.as_str(),
        step,
        steps_total,
        next_action,
        status,
        channel: code.channel.as_str(),
        expires_at: code.expires_at,
        resend_available_at: code.issued_at + policy.resend_cooldown,
        attempts_remaining: policy.max_attempts.saturating_sub(code.attempts),
        delivery,
    })
}

/// Loads the flow a token names and renders it, with the delivery status every caller but the
/// owner sees.
pub(super) async fn current_view(
    state: &AppState,
    aggregate_id: &str,
    flow_id: Uuid,
    token: String,
) -> Result<FlowView, ApiError> {
    current_view_for(state, aggregate_id, flow_id, token, None).await
}

/// Loads the flow a token names and renders it; the delivery status is the real one when
/// `headers` show the account's owner.
pub(super) async fn current_view_for(
    state: &AppState,
    aggregate_id: &str,
    flow_id: Uuid,
    token: String,
    headers: Option<&axum::http::HeaderMap>,
) -> Result<FlowView, ApiError> {
    use crate::delivery_status::{is_owner, owner_view, public_view};
    let account = state.accounts().load(aggregate_id).await?;
    let now = Utc::now();
    let flow = account.flow(flow_id).ok_or_else(flow_not_found)?;
    let code = flow.code.as_ref().ok_or_else(flow_not_found)?;
    let owner = headers.is_some_and(|h| is_owner(state, h, aggregate_id, &account, now));
    let delivery = if owner {
        owner_view(state, aggregate_id, &account, code).await?
    } else {
        public_view(state, flow_id, code).await?
    };
    view(state, token, &account, flow_id, flow, now, delivery).ok_or_else(flow_not_found)
}

pub(super) fn open_token(state: &AppState, token: &str) -> Result<(String, Uuid), ApiError> {
    state
        .keys()
        .open_flow_token(token)
        .ok_or_else(flow_not_found)
}

/// Starts a recovery flow (shared by forgot password, unlock and lost second factor).
pub(super) async fn start_recovery(
    state: &AppState,
    caller: &Caller,
    req: RecoveryRequest,
    kind: FlowKind,
) -> Result<(StatusCode, Json<FlowView>), ApiError> {
    // An account's stream and an unknown identifier's stand-in cost slightly different work (a
    // kept state or a fresh stream, a code kept for delivery or not): the answer waits for a
    // fixed floor so that its time does not tell them apart (BENCHMARKS.md, enumeration
    // timing). A sleep, not work: it costs no CPU.
    let floor = tokio::time::Instant::now() + RESPONSE_FLOOR;
    let answer = start_recovery_now(state, caller, req, kind).await;
    tokio::time::sleep_until(floor).await;
    answer
}

/// Least time before a self-service start (forgot, unlock, lost second factor) answers: above
/// what the work takes on an idle server (about 2 ms in a release build), far below anything a
/// person notices.
const RESPONSE_FLOOR: std::time::Duration = std::time::Duration::from_millis(15);

async fn start_recovery_now(
    state: &AppState,
    caller: &Caller,
    req: RecoveryRequest,
    kind: FlowKind,
) -> Result<(StatusCode, Json<FlowView>), ApiError> {
    // Past the cache of signed-in identifiers: an identifier it holds would answer a directory
    // query faster than an unknown one, a timing oracle (BENCHMARKS.md, enumeration timing).
    // These routes are not hot paths; sign-in keeps the cache.
    let route = match kind {
        // Unfreeze is a recovery like unlock, and shares its limits.
        FlowKind::Unlock | FlowKind::Unfreeze => Route::Unlock,
        FlowKind::LostSecondFactor => Route::Lost2fa,
        _ => Route::Forgot,
    };
    let subject = super::limit_subject(state, &req.identifier, req.device_token.as_deref()).await?;
    state
        .throttle()
        .admit(route, caller.ip, subject.as_deref())
        .await?;
    let resolved = super::resolve_identifier_with(state, &req.identifier, false).await?;
    let typed = resolved
        .kind
        .map(Channel::for_contact)
        .unwrap_or(Channel::Email);
    let expires_at = Utc::now() + state.accounts().services().codes.ttl;
    // Kept for every flow, stand-ins included, so both paths do the same work; undelivered
    // codes are purged at expiry.
    let grant = codes::draw_flow_for_delivery(state.store(), state.keys(), expires_at).await?;
    let now = Utc::now();
    let flow_id = grant.flow_id;
    crate::delivery_status::remember_typed(state, flow_id, &req.identifier, expires_at).await?;
    let context = caller.context(None);
    let device = super::device_claim(state, req.device_token.as_deref(), &resolved.aggregate_id);
    let command = StartFlow {
        grant,
        device,
        kind,
        channel: req.channel.map(Channel::from),
        typed,
        at: now,
        context,
    };
    state
        .accounts()
        .execute(
            &resolved.aggregate_id,
            || AccountCommand::StartFlow(command.clone()),
            metadata(),
        )
        .await?;
    let token = state.keys().flow_token(&resolved.aggregate_id, flow_id)?;
    let view = current_view(state, &resolved.aggregate_id, flow_id, token).await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// Asks for a password reset code.
#[utoipa::path(post, path = "/v1/password/forgot", tag = "recovery", request_body = RecoveryRequest,
    responses(
        (status = 202, body = FlowView, description = "Always the same answer, whatever the identifier: `channel` is the one asked for, else the one typed; a code goes there if it is a verified contact of an account, else nowhere"),
        (status = 400, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody, description = "`code_rate_limited` (the requester's hourly budget: the trusted device's for a valid `device_token`, else the client network's; or the account's ceiling for untrusted requesters), with `retry_after`; or `rate_limited` (with `retry_after` and `Retry-After`): over the route's per-IP, per-network or per-identifier limit (FORGOT; a valid `device_token` for the account skips the per-identifier key)"),
    ))]
pub async fn forgot_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RecoveryRequest>,
) -> Result<(StatusCode, Json<FlowView>), ApiError> {
    start_recovery(&state, &caller, req, FlowKind::ResetPassword).await
}

/// Asks for an unlock code.
#[utoipa::path(post, path = "/v1/unlock/request", tag = "recovery", request_body = RecoveryRequest,
    responses(
        (status = 202, body = FlowView, description = "Always the same answer, whatever the identifier (channel as for `/v1/password/forgot`)"),
        (status = 400, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody, description = "`code_rate_limited` with `retry_after` (budgets as for `/v1/password/forgot`: a valid `device_token` has its own); or `rate_limited` (with `retry_after` and `Retry-After`): over the route's per-IP, per-network or per-identifier limit (UNLOCK; a valid `device_token` for the account skips the per-identifier key)"),
    ))]
pub async fn request_unlock(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RecoveryRequest>,
) -> Result<(StatusCode, Json<FlowView>), ApiError> {
    start_recovery(&state, &caller, req, FlowKind::Unlock).await
}

/// Where a flow stands, with its code's delivery status: the real one (queued, sent, failed, and
/// the contact masked) only for the account's owner, shown by a device token the account trusts
/// in `X-Device-Token` or a session of the account in `Authorization: Bearer`; every other caller
/// gets `sent` and the identifier typed, masked, for accounts and unknown identifiers alike.
#[utoipa::path(get, path = "/v1/flows/{flow_id}", tag = "recovery",
    params(
        ("flow_id" = String, Path, description = "Flow id"),
        ("X-Device-Token" = Option<String>, Header, description = "A device token (`dv1.…`) of the account: the real delivery status"),
    ),
    responses((status = 200, body = FlowView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_flow(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Path(token): Path<String>,
) -> Result<Json<FlowView>, ApiError> {
    let (aggregate_id, flow_id) = open_token(&state, &token)?;
    Ok(Json(
        current_view_for(&state, &aggregate_id, flow_id, token, Some(&headers)).await?,
    ))
}

/// Sends a new code for a flow (after the resend cooldown), optionally on the other channel.
#[utoipa::path(post, path = "/v1/flows/{flow_id}/resend", tag = "recovery",
    params(("flow_id" = String, Path, description = "Flow id")), request_body = ResendRequest,
    responses(
        (status = 202, body = FlowView),
        (status = 404, body = crate::error::ErrorBody),
        (status = 410, body = crate::error::ErrorBody, description = "`code_used`: the flow is complete"),
        (status = 400, body = crate::error::ErrorBody, description = "malformed body"),
        (status = 422, body = crate::error::ErrorBody, description = "`channel_not_allowed`: the step is bound to another channel"),
        (status = 429, body = crate::error::ErrorBody, description = "`code_rate_limited` with `retry_after` (resend cooldown, hourly cap), `rate_limited`, or `sms_budget_exhausted` with `retry_after` (a resend by SMS while this hour's SMS budget is spent); `rate_limited` (with `retry_after` and `Retry-After`): over the route's per-IP, per-network or per-identifier limit (RESEND)"),
    ))]
pub async fn resend(
    State(state): State<AppState>,
    caller: Caller,
    Path(token): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<FlowView>), ApiError> {
    // The body is optional: no body keeps the channel.
    let req: ResendRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ResendRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|_| {
            ApiError::bad_request("the body must be {\"channel\": \"email\" | \"sms\"} or empty")
        })?
    };
    let (aggregate_id, flow_id) = open_token(&state, &token)?;
    state
        .throttle()
        .admit(Route::Resend, caller.ip, Some(&flow_id.to_string()))
        .await?;
    let now = Utc::now();
    let channel = req.channel.map(Channel::from);
    sms_budget_left(&state, &aggregate_id, flow_id, channel, now).await?;
    let code = codes::draw_for_delivery(
        state.store(),
        state.keys(),
        flow_id,
        now + state.accounts().services().codes.ttl,
    )
    .await?;
    let context = caller.context(None);
    state
        .accounts()
        .execute(
            &aggregate_id,
            || AccountCommand::ResendCode {
                flow_id,
                channel,
                code: code.clone(),
                at: now,
                context: context.clone(),
            },
            metadata(),
        )
        .await?;
    let view = current_view(&state, &aggregate_id, flow_id, token).await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// A resend by SMS while this hour's global SMS budget is spent: `429 sms_budget_exhausted` until
/// the next hour (the pumping guard). Decided on the flow's channel and the shared budget alone,
/// so every flow, an unknown identifier's included, gets the same answer. A spent per-prefix
/// budget is decided by the delivery worker (the code is then withheld and the failure recorded).
async fn sms_budget_left(
    state: &AppState,
    aggregate_id: &str,
    flow_id: Uuid,
    channel: Option<Channel>,
    now: chrono::DateTime<Utc>,
) -> Result<(), ApiError> {
    let by_sms = match channel {
        Some(channel) => channel == Channel::Sms,
        None => state
            .accounts()
            .load(aggregate_id)
            .await?
            .flow(flow_id)
            .and_then(|f| f.code.as_ref())
            .is_some_and(|c| c.channel == Channel::Sms),
    };
    if !by_sms {
        return Ok(());
    }
    let spent = state
        .sms_budget()
        .global_spent(state.store(), now.timestamp_millis())
        .await?;
    match spent {
        Some(retry_after) => Err(ApiError::rate_limited(
            "sms_budget_exhausted",
            "no more text messages can be sent this hour; try again later or use email",
            retry_after,
        )),
        None => Ok(()),
    }
}

/// Presents a code; `Ok` means the code was right and its step done.
pub(super) async fn redeem(
    state: &AppState,
    caller: &Caller,
    token: &str,
    code: &str,
    action: CodeAction,
) -> Result<(), ApiError> {
    redeem_with_proof(state, caller, token, code, action, None).await
}

/// [`redeem`] with what else proves the action (a reset on an account with a second factor).
pub(super) async fn redeem_with_proof(
    state: &AppState,
    caller: &Caller,
    token: &str,
    code: &str,
    action: CodeAction,
    proof: Option<&ProofInput>,
) -> Result<(), ApiError> {
    redeem_for_facts(state, caller, token, code, action, proof)
        .await
        .map(|_| ())
}

/// [`redeem_with_proof`], answering the account's id and the facts a right code recorded.
pub(super) async fn redeem_for_facts(
    state: &AppState,
    caller: &Caller,
    token: &str,
    code: &str,
    action: CodeAction,
    proof: Option<&ProofInput>,
) -> Result<(String, Vec<AccountFact>), ApiError> {
    let (aggregate_id, flow_id) = open_token(state, token)?;
    let route = match action {
        CodeAction::Verify => Route::Verify,
        CodeAction::Unlock | CodeAction::Unfreeze => Route::Unlock,
        CodeAction::ResetPassword(_) => Route::Reset,
        CodeAction::RecoveryStep => Route::Lost2fa,
        CodeAction::ConfirmWithdrawalAddress => Route::SignedIn,
    };
    state
        .throttle()
        .admit(route, caller.ip, Some(&flow_id.to_string()))
        .await?;
    if code.len() > 64 {
        return Err(ApiError::bad_request("code is too long").with_field("code"));
    }
    let verifier = codes::typed_verifier(state.keys(), flow_id, code);
    let now = Utc::now();
    let context = caller.context(None);
    // A lost-second-factor email step may lead to a phone code, and an unfreeze's first code
    // to one by the other channel: draw it now, used if needed (for every flow alike).
    let next_code = match action {
        CodeAction::RecoveryStep | CodeAction::Unfreeze => Some(
            codes::draw_for_delivery(
                state.store(),
                state.keys(),
                flow_id,
                now + state.accounts().services().codes.ttl,
            )
            .await?,
        ),
        _ => None,
    };
    let proof = match proof {
        // Only a factor needs the account (its TOTP secret, its keys): no extra load otherwise.
        Some(input) if input.method.is_some() => {
            let account = state.accounts().load(&aggregate_id).await?;
            crate::proof::resolve(state, &aggregate_id, &account, input, None, now).await?
        }
        Some(input) => {
            crate::proof::resolve(
                state,
                &aggregate_id,
                &gatehouse_domain::Account::default(),
                input,
                None,
                now,
            )
            .await?
        }
        None => gatehouse_domain::Proof::default(),
    };
    let command = RedeemCode {
        flow_id,
        verifier,
        action,
        next_code,
        proof,
        at: now,
        context,
    };
    let executed = state
        .accounts()
        .execute(
            &aggregate_id,
            || AccountCommand::RedeemCode(command.clone()),
            metadata(),
        )
        .await?;
    crate::proof::refusal(&executed.events, now)?;
    if executed
        .events
        .iter()
        .any(|e| matches!(e.payload.fact, AccountFact::ResetFactorAsked { .. }))
    {
        return Err(crate::error::second_factor_required());
    }
    let max = state.accounts().services().codes.max_attempts;
    let mut wrong = None;
    for envelope in &executed.events {
        match &envelope.payload.fact {
            AccountFact::CodeUsed { .. } => {
                let facts = executed
                    .events
                    .iter()
                    .map(|e| e.payload.fact.clone())
                    .collect();
                return Ok((aggregate_id, facts));
            }
            AccountFact::CodeExpired { .. } => {
                return Err(code_unusable(
                    gatehouse_domain::account::CodeStatus::Expired,
                ))
            }
            AccountFact::CodeExhausted { .. } => {
                return Err(code_unusable(
                    gatehouse_domain::account::CodeStatus::Exhausted,
                ))
            }
            AccountFact::CodeAttemptFailed { attempts, .. } => wrong = Some(*attempts),
            _ => {}
        }
    }
    let left = max.saturating_sub(wrong.unwrap_or(max));
    Err(ApiError::validation(
        "invalid_code",
        format!(
            "the code is wrong; {left} {} left",
            if left == 1 { "try" } else { "tries" }
        ),
    )
    .with_field("code"))
}

/// Sets a new password with the code from `POST /v1/password/forgot` and, when the account has a
/// second factor, a current one in `proof`: the inbox alone never resets a protected account.
/// Signs nobody in: every session ends, every API key is revoked, and the person signs in again.
#[utoipa::path(post, path = "/v1/password/reset", tag = "recovery", request_body = ResetRequest,
    responses(
        (status = 204, description = "Password replaced; every session ended; every API key revoked; owner notified; high-risk actions paused"),
        (status = 400, body = crate::error::ErrorBody, description = "`invalid_request` (a malformed proof)"),
        (status = 403, body = crate::error::ErrorBody, description = "`second_factor_required` with `next_action: \"lost_2fa\"` (the code is not spent); `invalid_second_factor` (counts toward the lockout and spends one of the code's tries)"),
        (status = 404, body = crate::error::ErrorBody, description = "`flow_not_found`"),
        (status = 410, body = crate::error::ErrorBody, description = "`code_used`, `code_expired`, `code_exhausted`, `code_superseded`"),
        (status = 422, body = crate::error::ErrorBody, description = "`invalid_code` (with tries left), `weak_password`, `breached_password`, `password_reused`"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked` or `code_rate_limited` where they apply, or `rate_limited` (with `retry_after` and `Retry-After`): over the route's per-IP, per-network or per-identifier limit (RESET)"),
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    // Only the general policy here: checking the password against the account's identifiers
    // before the code is checked would tell a stranger whether the flow belongs to an account.
    let password = state
        .vet_new_password(&req.new_password, &[], "new_password")
        .await?;
    redeem_with_proof(
        &state,
        &caller,
        &req.flow_id,
        &req.code,
        CodeAction::ResetPassword(password),
        Some(&req.proof.unwrap_or_default()),
    )
    .await
    .map_err(|e| {
        if e.code() == "second_factor_required" {
            // Lost the factor too: the lost-2FA recovery is the way back.
            e.with_next_action("lost_2fa")
        } else {
            e
        }
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// The security-key challenge of a reset: once the flow's code proved right and the account
/// answered `second_factor_required`, the options for `navigator.credentials.get`; the signed
/// answer then goes in the reset's `proof` (`method: security_key`). Before the code is proven
/// the answer is the one an unknown flow gets, so the flow id alone tells nobody which keys
/// the account has.
#[utoipa::path(post, path = "/v1/flows/{flow_id}/security-key", tag = "recovery",
    params(("flow_id" = String, Path, description = "From `POST /v1/password/forgot`")),
    responses(
        (status = 200, body = super::security_keys::AssertionChallenge),
        (status = 404, body = crate::error::ErrorBody, description = "`flow_not_found`: unknown flow, or its code not proven yet, or no longer usable"),
        (status = 409, body = crate::error::ErrorBody, description = "`no_security_key`"),
        (status = 429, body = crate::error::ErrorBody, description = "`rate_limited` (with `retry_after` and `Retry-After`): over the route's per-IP, per-network or per-identifier limit (RESET)"),
        (status = 503, body = crate::error::ErrorBody, description = "`security_keys_unavailable`"),
    ))]
pub async fn reset_security_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(token): Path<String>,
) -> Result<Json<super::security_keys::AssertionChallenge>, ApiError> {
    let (aggregate_id, flow_id) = open_token(&state, &token)?;
    state
        .throttle()
        .admit(Route::Reset, caller.ip, Some(&flow_id.to_string()))
        .await?;
    let now = Utc::now();
    let account = state.accounts().load(&aggregate_id).await?;
    if !account.reset_factor_asked(flow_id, now) {
        return Err(flow_not_found());
    }
    super::security_keys::assertion_challenge(&state, &aggregate_id, &account, now)
        .await
        .map(Json)
}

/// Lifts a lockout with the code from `POST /v1/unlock/request`.
#[utoipa::path(post, path = "/v1/unlock/confirm", tag = "recovery", request_body = CodeRequest,
    responses(
        (status = 204, description = "Unlocked; the failure count is reset"),
        (status = 404, body = crate::error::ErrorBody),
        (status = 410, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody, description = "`invalid_code`"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked` or `code_rate_limited` where they apply, or `rate_limited` (with `retry_after` and `Retry-After`): over the route's per-IP, per-network or per-identifier limit (UNLOCK)"),
    ))]
pub async fn confirm_unlock(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CodeRequest>,
) -> Result<StatusCode, ApiError> {
    redeem(&state, &caller, &req.flow_id, &req.code, CodeAction::Unlock).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Confirms a contact with the code sent at sign-up (`verification_flow_id`).
#[utoipa::path(post, path = "/v1/verify", tag = "recovery", request_body = CodeRequest,
    responses(
        (status = 204, description = "The contact is verified"),
        (status = 404, body = crate::error::ErrorBody),
        (status = 410, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody, description = "`invalid_code`"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked` or `code_rate_limited` where they apply, or `rate_limited` (with `retry_after` and `Retry-After`): over the route's per-IP, per-network or per-identifier limit (VERIFY)"),
    ))]
pub async fn verify_contact(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CodeRequest>,
) -> Result<StatusCode, ApiError> {
    let (account_id, facts) = redeem_for_facts(
        &state,
        &caller,
        &req.flow_id,
        &req.code,
        CodeAction::Verify,
        None,
    )
    .await?;
    // A requested contact took the old one's place: the old identifier is free now.
    for fact in facts {
        if let AccountFact::ContactChanged {
            previous: Some(previous),
            ..
        } = fact
        {
            crate::directory::release_identifier(state.store(), &account_id, &previous.lookup)
                .await?;
            state.forget_account(&previous.lookup);
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(forgot_password))
        .routes(utoipa_axum::routes!(reset_password))
        .routes(utoipa_axum::routes!(request_unlock))
        .routes(utoipa_axum::routes!(confirm_unlock))
        .routes(utoipa_axum::routes!(verify_contact))
        .routes(utoipa_axum::routes!(get_flow))
        .routes(utoipa_axum::routes!(resend))
        .routes(utoipa_axum::routes!(reset_security_key))
}
