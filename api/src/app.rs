//! The router: routes, the OpenAPI document, and the middleware every request passes through.
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::{method_not_allowed_error, no_such_endpoint, ApiError};
use crate::routes::{
    accounts, activity, admin, api_keys, contacts, controls, devices, freeze, health, login,
    lost_factor, me, mfa, passkeys, password, recovery, review, security_keys, teams, whitelist,
};
use crate::state::AppState;

/// Largest request body: far above any legitimate request, far below what could hurt.
pub const BODY_LIMIT: usize = 16 * 1024;

/// What the OpenAPI document says besides its paths (which each routes module adds with its
/// router): the title, the error body and the bearer scheme.
#[derive(OpenApi)]
#[openapi(
    info(title = "Gatehouse", description = "Account security: sign-up with contact verification, sign-in with lockout, sessions, login history, self-service recovery (forgot password, unlock) by one-time code. Every error has the shape {\"error\": {\"code\", \"message\"}}."),
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

/// Every routes module's router, merged: the routes and, from their `#[utoipa::path]`
/// attributes, the OpenAPI document.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(accounts::router())
        .merge(login::router())
        .merge(mfa::router())
        .merge(controls::router())
        .merge(password::router())
        .merge(api_keys::router())
        .merge(whitelist::router())
        .merge(teams::router())
        .merge(security_keys::router())
        .merge(passkeys::router())
        .merge(lost_factor::router())
        .merge(review::router())
        .merge(me::router())
        .merge(activity::router())
        .merge(devices::router())
        .merge(freeze::router())
        .merge(contacts::router())
        .merge(recovery::router())
        .merge(health::router())
        .merge(admin::router())
}

/// The routes and the OpenAPI document the server serves at `/openapi.json`: what the handlers'
/// attributes say, with the answers every operation shares
/// ([`crate::openapi::SharedResponses`]).
fn parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut openapi) = routes().split_for_parts();
    crate::openapi::SharedResponses.modify(&mut openapi);
    (routes, openapi)
}

/// The OpenAPI document the server serves at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    parts().1
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

/// Builds the application: the JSON API and, unless `GATEHOUSE_UI=off`, the pages
/// ([`crate::ui`]), which call the API in-process. The assets (`/assets/*`) are served either
/// way: the freeze link's page (`GET /freeze`, part of the API) uses them.
pub fn router(state: AppState) -> Router {
    let api = api_router(state.clone());
    let pages = if state.ui().enabled {
        crate::ui::router(state, api.clone())
    } else {
        Router::new()
    };
    edge(pages.merge(crate::ui::assets::router())).fallback_service(api)
}

/// The JSON API with its middleware.
fn api_router(state: AppState) -> Router {
    let cors = state.cors().clone();
    let (routes, mut openapi) = parts();
    crate::openapi::password_bounds(&mut openapi, state.password_policy());
    // Serialized once: the document does not change while the process runs.
    let openapi = axum::body::Bytes::from(serde_json::to_vec(&openapi).unwrap_or_default());
    let routes = routes
        .route(
            "/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], openapi) }
            }),
        )
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
        ));
    // CORS wraps the API only (the pages are same-origin), when origins are configured.
    let routes = match cors.layer() {
        Some(layer) => routes.layer(layer),
        None => routes,
    };
    edge(routes)
}

/// The middleware every answer passes through, the API's and the pages': panics and timeouts
/// become answers, each request has its span, and its id (outermost: every answer, even a
/// timeout's or a panic's, carries it).
fn edge(router: Router) -> Router {
    router
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("handler panicked").into_response()
        }))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
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
    if status == StatusCode::SERVICE_UNAVAILABLE {
        return ApiError::unavailable().into_response();
    }
    let (code, message) = match status {
        StatusCode::BAD_REQUEST => ("invalid_request", "the request is malformed"),
        StatusCode::NOT_FOUND => ("not_found", "no such resource"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "send the body as JSON"),
        s if s.is_client_error() => ("invalid_request", "the request was refused"),
        _ => ("internal", "an internal error occurred"),
    };
    ApiError::other(status, code, message).into_response()
}
