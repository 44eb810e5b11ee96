//! The router: routes, the OpenAPI document, and the middleware every request passes through.
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{method_not_allowed_error, no_such_endpoint, ApiError};
use crate::routes::{
    accounts, admin, api_keys, contacts, controls, devices, health, login, lost_factor, me, mfa,
    password, recovery, review, security_keys, teams, whitelist,
};
use crate::state::AppState;

/// Largest request body: far above any legitimate request, far below what could hurt.
pub const BODY_LIMIT: usize = 16 * 1024;

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Gatehouse", description = "Account security: sign-up with contact verification, sign-in with lockout, sessions, login history, self-service recovery (forgot password, unlock) by one-time code. Every error has the shape {\"error\": {\"code\", \"message\"}}."),
    paths(
        accounts::register, login::login, login::logout, me::me, me::list_sessions, me::revoke_session,
        me::revoke_other_sessions, devices::list_devices, devices::revoke_device, me::login_history, me::lockout, me::set_anti_phishing_phrase,
        me::remove_anti_phishing_phrase, me::restrictions, password::change_password, contacts::change_email, contacts::change_phone, recovery::forgot_password, recovery::reset_password,
        recovery::request_unlock, recovery::confirm_unlock, recovery::verify_contact, recovery::get_flow,
        recovery::resend, recovery::reset_security_key, mfa::start_totp, mfa::confirm_totp, mfa::remove_totp, mfa::backup_codes_left,
        mfa::regenerate_backup_codes, mfa::complete_mfa, lost_factor::start, lost_factor::code_step,
        lost_factor::evidence, lost_factor::complete, lost_factor::cancel, review::list, review::approve, review::deny, health::healthz, health::readyz, health::metrics,
        admin::list_alerts, admin::get_alert, admin::acknowledge, admin::resolve, admin::alerts_stream,
        admin::login_history, admin::account_events, admin::create_staff,
        admin::reissue_staff_token, admin::revoke_staff_tokens,
        security_keys::list, security_keys::start_registration, security_keys::register,
        security_keys::rename, security_keys::remove, security_keys::start_assertion,
        security_keys::start_login_assertion, controls::step_up, api_keys::list, api_keys::create,
        api_keys::rotate, api_keys::revoke, api_keys::revoke_all, api_keys::verify, whitelist::list,
        whitelist::propose, whitelist::confirm, whitelist::remove, whitelist::set_mode,
        whitelist::check, teams::create, teams::get_team, teams::invite, teams::cancel_invitation,
        teams::my_invitations, teams::accept, teams::change_role, teams::remove_member,
        teams::permissions
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn not_found() -> ApiError {
    no_such_endpoint()
}

/// Only `/metrics`, without a token: for `GATEHOUSE_METRICS_LISTEN`, an address only the
/// scraper reaches.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics_open))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::map_response(uniform_errors))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("handler panicked").into_response()
        }))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        // Outermost: every answer, even a timeout's or a panic's, carries the request id.
        .layer(axum::middleware::from_fn(crate::metadata::request_id))
}

/// The span of one request: its id, method and route template (never the raw path, which can
/// hold ids, nor the query string, headers or body).
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    let id = request
        .extensions()
        .get::<crate::metadata::RequestId>()
        .map_or("", |id| id.as_str());
    tracing::info_span!("request", request_id = %id, method = %request.method(), route = %route)
}

/// Builds the application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/accounts", post(accounts::register))
        .route("/v1/login", post(login::login))
        .route("/v1/logout", post(login::logout))
        .route("/v1/login/mfa", post(mfa::complete_mfa))
        .route(
            "/v1/me/totp",
            post(mfa::start_totp).delete(mfa::remove_totp),
        )
        .route("/v1/me/totp/confirm", post(mfa::confirm_totp))
        .route("/v1/me/step-up", post(controls::step_up))
        .route(
            "/v1/me/password",
            axum::routing::put(password::change_password),
        )
        .route(
            "/v1/me/api-keys",
            get(api_keys::list)
                .post(api_keys::create)
                .delete(api_keys::revoke_all),
        )
        .route("/v1/me/api-keys/{key_id}", delete(api_keys::revoke))
        .route("/v1/me/api-keys/{key_id}/rotate", post(api_keys::rotate))
        .route("/v1/api-keys/verify", post(api_keys::verify))
        .route(
            "/v1/me/withdrawal-addresses",
            get(whitelist::list).post(whitelist::propose),
        )
        .route(
            "/v1/me/withdrawal-addresses/confirm",
            post(whitelist::confirm),
        )
        .route(
            "/v1/me/withdrawal-addresses/{address_id}",
            delete(whitelist::remove),
        )
        .route(
            "/v1/me/withdrawal-whitelist",
            axum::routing::put(whitelist::set_mode),
        )
        .route("/v1/withdrawals/check", post(whitelist::check))
        .route("/v1/teams", post(teams::create))
        .route("/v1/teams/{team_id}", get(teams::get_team))
        .route("/v1/teams/{team_id}/invitations", post(teams::invite))
        .route(
            "/v1/teams/{team_id}/invitations/{invitation_id}",
            delete(teams::cancel_invitation),
        )
        .route(
            "/v1/teams/{team_id}/invitations/{invitation_id}/accept",
            post(teams::accept),
        )
        .route("/v1/me/team-invitations", get(teams::my_invitations))
        .route(
            "/v1/teams/{team_id}/members/{account_id}",
            axum::routing::put(teams::change_role).delete(teams::remove_member),
        )
        .route(
            "/v1/teams/{team_id}/permissions/{account_id}",
            get(teams::permissions),
        )
        .route(
            "/v1/login/mfa/security-key",
            post(security_keys::start_login_assertion),
        )
        .route(
            "/v1/me/security-keys",
            get(security_keys::list).post(security_keys::register),
        )
        .route(
            "/v1/me/security-keys/registration",
            post(security_keys::start_registration),
        )
        .route(
            "/v1/me/security-keys/challenge",
            post(security_keys::start_assertion),
        )
        .route(
            "/v1/me/security-keys/{key_id}",
            axum::routing::patch(security_keys::rename).delete(security_keys::remove),
        )
        .route("/v1/recovery/lost-2fa", post(lost_factor::start))
        .route("/v1/recovery/lost-2fa/code", post(lost_factor::code_step))
        .route(
            "/v1/recovery/lost-2fa/evidence",
            post(lost_factor::evidence),
        )
        .route(
            "/v1/recovery/lost-2fa/complete",
            post(lost_factor::complete),
        )
        .route("/v1/me/recovery", delete(lost_factor::cancel))
        .route("/v1/admin/recovery-cases", get(review::list))
        .route(
            "/v1/admin/recovery-cases/{case_id}/approve",
            post(review::approve),
        )
        .route(
            "/v1/admin/recovery-cases/{case_id}/deny",
            post(review::deny),
        )
        .route(
            "/v1/me/backup-codes",
            get(mfa::backup_codes_left).post(mfa::regenerate_backup_codes),
        )
        .route("/v1/me", get(me::me))
        .route(
            "/v1/me/sessions",
            get(me::list_sessions).delete(me::revoke_other_sessions),
        )
        .route("/v1/me/sessions/{session_id}", delete(me::revoke_session))
        .route("/v1/me/devices", get(devices::list_devices))
        .route("/v1/me/devices/{device_id}", delete(devices::revoke_device))
        .route("/v1/me/login-history", get(me::login_history))
        .route("/v1/me/lockout", get(me::lockout))
        .route(
            "/v1/me/anti-phishing-phrase",
            axum::routing::put(me::set_anti_phishing_phrase)
                .delete(me::remove_anti_phishing_phrase),
        )
        .route("/v1/me/restrictions", get(me::restrictions))
        .route("/v1/me/email", axum::routing::put(contacts::change_email))
        .route("/v1/me/phone", axum::routing::put(contacts::change_phone))
        .route("/v1/password/forgot", post(recovery::forgot_password))
        .route("/v1/password/reset", post(recovery::reset_password))
        .route("/v1/unlock/request", post(recovery::request_unlock))
        .route("/v1/unlock/confirm", post(recovery::confirm_unlock))
        .route("/v1/verify", post(recovery::verify_contact))
        .route("/v1/flows/{flow_id}", get(recovery::get_flow))
        .route("/v1/flows/{flow_id}/resend", post(recovery::resend))
        .route(
            "/v1/flows/{flow_id}/security-key",
            post(recovery::reset_security_key),
        )
        .route("/v1/admin/alerts", get(admin::list_alerts))
        .route("/v1/admin/alerts/stream", get(admin::alerts_stream))
        .route("/v1/admin/alerts/{id}", get(admin::get_alert))
        .route(
            "/v1/admin/alerts/{id}/acknowledge",
            post(admin::acknowledge),
        )
        .route("/v1/admin/alerts/{id}/resolve", post(admin::resolve))
        .route("/v1/admin/login-history", get(admin::login_history))
        .route("/v1/admin/accounts/{id}/events", get(admin::account_events))
        .route("/v1/admin/staff", post(admin::create_staff))
        .route(
            "/v1/admin/staff/{id}/tokens",
            post(admin::reissue_staff_token).delete(admin::revoke_staff_tokens),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        // Any method: without the token every method must answer like an unknown path.
        .route("/metrics", axum::routing::any(health::metrics))
        .route("/openapi.json", get(openapi_json))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::map_response(uniform_errors))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("handler panicked").into_response()
        }))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        // Outermost: every answer, even a timeout's or a panic's, carries the request id.
        .layer(axum::middleware::from_fn(crate::metadata::request_id))
}

async fn method_not_allowed() -> ApiError {
    method_not_allowed_error()
}

/// Rewrites any plain-text error that slipped past the handlers (e.g. a path that fails to parse,
/// a timeout) into the documented JSON shape.
async fn uniform_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::BAD_REQUEST => ("invalid_request", "the request is malformed"),
        StatusCode::NOT_FOUND => ("not_found", "no such resource"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "send the body as JSON"),
        StatusCode::SERVICE_UNAVAILABLE => (
            "unavailable",
            "the service is temporarily unavailable; retry shortly",
        ),
        s if s.is_client_error() => ("invalid_request", "the request was refused"),
        _ => ("internal", "an internal error occurred"),
    };
    ApiError::other(status, code, message).into_response()
}
