//! Freezing an account and getting it back.
//!
//! - `POST /v1/me/freeze`: from any session (freezing protects; a session alone suffices).
//! - `GET /freeze?t=…`: the page a notice's "this wasn't me" link opens. It freezes nothing (mail
//!   scanners fetch links): its button posts the token to `POST /v1/freeze`. Served whatever
//!   else is configured, with `Referrer-Policy: no-referrer`; the request span names the route
//!   template only, so the token in the query string is never logged.
//! - `POST /v1/freeze {token}`: the link's token (`fz1.`, its own kind), single use, 7 days.
//! - `POST /v1/unfreeze {identifier}` → `POST /v1/unfreeze/confirm {flow_id, code, proof}`: the
//!   recovery, on the forgot-password flow machinery (same answer for every identifier, same
//!   codes and limits as unlock), then a current second factor in `proof`. An account with a
//!   verified email and a verified phone needs a code to each: the first code (with the factor)
//!   answers `202` with step 2 of 2, whose code goes by the other channel (bound to it, like the
//!   lost-2FA phone step); only that code unfreezes. Until the first code is accepted every flow
//!   says "step 1 of 2", whatever the identifier.
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use gatehouse_domain::policy::FlowKind;
use gatehouse_domain::{AccountCommand, AccountFact, CodeAction, FreezeRequest};
use serde::Deserialize;
use utoipa::ToSchema;

use super::recovery::{FlowView, RecoveryRequest};
use super::ApiJson;
use crate::error::ApiError;
use crate::metadata::metadata;
use crate::proof::ProofInput;
use crate::request::{Authenticated, Caller};
use crate::state::AppState;
use crate::throttle::Route;

/// Longest reason kept with a freeze.
const MAX_REASON: usize = 1000;

/// An optional reason for freezing one's own account.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FreezeMeRequest {
    /// Why (kept in the account's history); at most 1000 characters.
    #[schema(max_length = 1000)]
    pub reason: Option<String>,
}

/// A freeze link's token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FreezeLinkRequest {
    /// The `t` of the link (`fz1.…`).
    #[schema(max_length = 512)]
    pub token: String,
}

/// The code of `POST /v1/unfreeze` (or of its second step) and a current second factor.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnfreezeConfirmRequest {
    /// The flow id from `POST /v1/unfreeze`.
    pub flow_id: String,
    /// The code received: at step 1 the one of `POST /v1/unfreeze`, at step 2 the one sent by
    /// the other channel.
    pub code: String,
    /// A current second factor (`method` and `code`, or a security key's assertion), required
    /// with the first code when the account has one enrolled. Without it: `403
    /// second_factor_required` with `next_action: "lost_2fa"` (the code stays usable). The
    /// second step takes only its code (the factor was checked with the first).
    pub proof: Option<ProofInput>,
}

/// Freezes the signed-in account: every session (this one too) ends, every API key and trusted
/// device is revoked, sign-in and withdrawals are refused until it is unfrozen, and every
/// verified channel is told.
#[utoipa::path(post, path = "/v1/me/freeze", tag = "freeze", security(("bearer" = [])),
    request_body(content = Option<FreezeMeRequest>, description = "Optional `{reason}`; an empty body is fine"),
    responses(
        (status = 204, description = "Frozen; the session used is ended too"),
        (status = 400, body = crate::error::ErrorBody, description = "`invalid_request`: a malformed body or a reason over 1000 characters"),
        (status = 401, body = crate::error::ErrorBody, description = "`unauthenticated`"),
    ))]
pub async fn freeze_me(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let req: FreezeMeRequest = if body.iter().all(u8::is_ascii_whitespace) {
        FreezeMeRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| ApiError::bad_request("the body must be {\"reason\": \"…\"} or empty"))?
    };
    let reason = bounded_reason(req.reason)?;
    let context = caller.context(None);
    let now = Utc::now();
    state
        .accounts()
        .execute(
            &auth.account_id(),
            || AccountCommand::Freeze {
                by: FreezeRequest::Session {
                    session_id: auth.session_id(),
                },
                reason: reason.clone(),
                at: now,
                context: context.clone(),
            },
            metadata(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn bounded_reason(reason: Option<String>) -> Result<Option<String>, ApiError> {
    let reason = reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON)
    {
        return Err(
            ApiError::bad_request("the reason is over 1000 characters").with_field("reason")
        );
    }
    Ok(reason)
}

/// The page a freeze link opens (`api/templates/freeze.html` on the pages' layout; its button's
/// script, `/assets/freeze.js`, reads the token from the page's own address, so the server never
/// echoes it).
#[derive(askama::Template)]
#[template(path = "freeze.html")]
struct FreezePage {
    nav: crate::ui::render::Nav,
}

/// The page a freeze link opens. Freezes nothing by itself: a mail scanner fetching the link
/// changes nothing; the person's click posts the token to `POST /v1/freeze`.
#[utoipa::path(get, path = "/freeze", tag = "freeze",
    params(("t" = Option<String>, Query, description = "The freeze link's token (read by the page's script, never by the server)")),
    responses(
        (status = 200, content_type = "text/html", body = String, description = "A minimal confirmation page; the same whatever the token (`Referrer-Policy: no-referrer`, no caching)"),
    ))]
pub async fn freeze_page() -> Response {
    let mut response = crate::ui::render::html(
        StatusCode::OK,
        &FreezePage {
            nav: crate::ui::render::Nav::default(),
        },
    );
    // The pages' headers (CSP without inline scripts, no framing, no referrer, no caching),
    // whether or not the other pages are served.
    crate::ui::security::apply(response.headers_mut());
    response
}

/// Freezes the account a freeze link names (the button of `GET /freeze`). The link works once
/// and for 7 days after its message was sent.
#[utoipa::path(post, path = "/v1/freeze", tag = "freeze", request_body = FreezeLinkRequest,
    responses(
        (status = 204, description = "Frozen: every session ended, every API key and trusted device revoked, every verified channel told"),
        (status = 400, body = crate::error::ErrorBody, description = "`invalid_request`: a malformed body"),
        (status = 404, body = crate::error::ErrorBody, description = "`freeze_link_invalid`: not a freeze link of this server (forged, altered, or a token of another kind)"),
        (status = 409, body = crate::error::ErrorBody, description = "`already_frozen`"),
        (status = 410, body = crate::error::ErrorBody, description = "`freeze_link_used` (a link works once) or `freeze_link_expired` (after 7 days)"),
        (status = 429, body = crate::error::ErrorBody, description = "`rate_limited` (with `retry_after` and `Retry-After`): over the per-IP, per-network or per-link limit (UNLOCK)"),
    ))]
pub async fn freeze_by_link(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<FreezeLinkRequest>,
) -> Result<StatusCode, ApiError> {
    let opened = state.keys().open_freeze_link(req.token.trim());
    let subject = opened.as_ref().map(|(_, link_id, _)| link_id.to_string());
    state
        .throttle()
        .admit(Route::Unlock, caller.ip, subject.as_deref())
        .await?;
    let (aggregate_id, link_id, issued_at) =
        opened.ok_or_else(crate::error::freeze_link_invalid)?;
    let context = caller.context(None);
    let now = Utc::now();
    state
        .accounts()
        .execute(
            &aggregate_id,
            || AccountCommand::Freeze {
                by: FreezeRequest::Link { link_id, issued_at },
                reason: None,
                at: now,
                context: context.clone(),
            },
            metadata(),
        )
        .await
        .map_err(|e| match ApiError::from(e) {
            // A link naming no registered account was not made by a notice.
            e if e.code() == "unauthenticated" => crate::error::freeze_link_invalid(),
            e => e,
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts the unfreeze recovery: a code to a verified contact (channel chosen as for forgot
/// password). The answer is the same for every identifier, frozen or not; the code goes out only
/// for a frozen account's verified contact.
#[utoipa::path(post, path = "/v1/unfreeze", tag = "freeze", request_body = RecoveryRequest,
    responses(
        (status = 202, body = FlowView, description = "Always the same answer, whatever the identifier: step 1 of 2 (whether a second step follows is said only once the first code is accepted), `next_action: \"enter_code_and_second_factor\"`, channel as for `/v1/password/forgot`"),
        (status = 400, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody, description = "`code_rate_limited` with `retry_after` (budgets as for `/v1/password/forgot`); or `rate_limited` (with `retry_after` and `Retry-After`): over the per-IP, per-network or per-identifier limit (UNLOCK)"),
    ))]
pub async fn request_unfreeze(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RecoveryRequest>,
) -> Result<(StatusCode, Json<FlowView>), ApiError> {
    super::recovery::start_recovery(&state, &caller, req, FlowKind::Unfreeze).await
}

/// Unfreezes with the code of `POST /v1/unfreeze` and, when the account has one, a current
/// second factor; an account with a verified email and a verified phone then needs the code of a
/// second step, sent by the other channel. Every verified channel is told; high-risk actions
/// pause for a while. Signs nobody in.
#[utoipa::path(post, path = "/v1/unfreeze/confirm", tag = "freeze", request_body = UnfreezeConfirmRequest,
    responses(
        (status = 202, body = FlowView, description = "The first code (and the factor) proved right and the account has a second verified contact: still frozen, step 2 of 2, `next_action: \"enter_code\"`; its code went by `channel`, the other one than the first code's (the step is bound to it: a resend on another channel answers `422 channel_not_allowed`)"),
        (status = 204, description = "Unfrozen (after the last code); high-risk actions paused; every verified channel told"),
        (status = 400, body = crate::error::ErrorBody, description = "`invalid_request` (a malformed body or proof)"),
        (status = 403, body = crate::error::ErrorBody, description = "`second_factor_required` with `next_action: \"lost_2fa\"` (first step; the code is not spent; without the factor, the lost-2FA review is the way back); `invalid_second_factor` (counts toward the lockout and spends one of the code's tries)"),
        (status = 404, body = crate::error::ErrorBody, description = "`flow_not_found`"),
        (status = 409, body = crate::error::ErrorBody, description = "`not_frozen`; `wrong_step` (no second-step code could be drawn)"),
        (status = 410, body = crate::error::ErrorBody, description = "`code_used`, `code_expired`, `code_exhausted`, `code_superseded`"),
        (status = 422, body = crate::error::ErrorBody, description = "`invalid_code` (with tries left; at step 2 a code that came by another channel than the step's counts as wrong)"),
        (status = 429, body = crate::error::ErrorBody, description = "`rate_limited` (with `retry_after` and `Retry-After`): over the per-IP, per-network or per-flow limit (UNLOCK)"),
    ))]
pub async fn confirm_unfreeze(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<UnfreezeConfirmRequest>,
) -> Result<Response, ApiError> {
    let (aggregate_id, facts) = super::recovery::redeem_for_facts(
        &state,
        &caller,
        &req.flow_id,
        &req.code,
        CodeAction::Unfreeze,
        Some(&req.proof.unwrap_or_default()),
    )
    .await
    .map_err(|e| {
        if e.code() == "second_factor_required" {
            // The factor is lost too: the lost-2FA review is the way back.
            e.with_next_action("lost_2fa")
        } else {
            e
        }
    })?;
    if facts
        .iter()
        .any(|f| matches!(f, AccountFact::AccountUnfrozen { .. }))
    {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    // A right first code on an account with a second verified contact: step 2 follows.
    let (_, flow_id) = super::recovery::open_token(&state, &req.flow_id)?;
    let view = super::recovery::current_view(&state, &aggregate_id, flow_id, req.flow_id).await?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// This module's routes, each with its OpenAPI operation.
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(freeze_me))
        .routes(utoipa_axum::routes!(freeze_page))
        .routes(utoipa_axum::routes!(freeze_by_link))
        .routes(utoipa_axum::routes!(request_unfreeze))
        .routes(utoipa_axum::routes!(confirm_unfreeze))
}
