//! The JSON API called in-process: pages never re-implement a rule, they call the API route
//! that owns it and show its answer.
//!
//! The call goes through the API router with all its middleware, carrying what the browser's
//! request carried that the API's rules read: the peer address (`ConnectInfo`), `User-Agent`,
//! `X-Forwarded-For` (the API applies its trusted-proxies rule itself), `X-Request-Id` (so the
//! page's request and the events it caused share an id) and `X-Device-Token`. The bearer token
//! comes from the page's sealed cookie, and only after a form's CSRF check passed.
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt;

/// Largest API answer a page reads (exports are streamed through instead).
const ANSWER_LIMIT: usize = 4 * 1024 * 1024;

/// Headers of the browser's request passed on to the API.
const PASSED_ON: [&str; 4] = [
    "user-agent",
    "x-forwarded-for",
    "x-request-id",
    "x-device-token",
];

/// What a page's request tells the API about its caller.
#[derive(Debug, Clone, Default)]
pub struct Browser {
    peer: Option<SocketAddr>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl<S: Send + Sync> FromRequestParts<S> for Browser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let mut headers = Vec::new();
        for name in PASSED_ON {
            for value in parts.headers.get_all(name) {
                headers.push((HeaderName::from_static(name), value.clone()));
            }
        }
        // The id the request-id middleware settled on for this request.
        if let Some(id) = parts.extensions.get::<crate::metadata::RequestId>() {
            if let Ok(value) = HeaderValue::from_str(id.as_str()) {
                headers.retain(|(n, _)| n != "x-request-id");
                headers.push((HeaderName::from_static("x-request-id"), value));
            }
        }
        Ok(Self { peer, headers })
    }
}

impl Browser {
    /// The same caller, also presenting `X-Device-Token` (the device token of this browser's
    /// sealed device cookie): the API then treats it as the account's trusted device, as it
    /// would a frontend that kept the token.
    pub fn with_device_token(mut self, token: Option<&str>) -> Self {
        if let Some(value) = token.and_then(|t| HeaderValue::from_str(t).ok()) {
            self.headers.retain(|(n, _)| n != "x-device-token");
            self.headers
                .push((HeaderName::from_static("x-device-token"), value));
        }
        self
    }
}

/// The API's answer: status, `Retry-After`, and the JSON body (`Value::Null` when empty).
#[derive(Debug, Clone)]
pub struct ApiAnswer {
    /// The status.
    pub status: StatusCode,
    /// The `Retry-After` header, to copy onto the page's answer.
    pub retry_after: Option<HeaderValue>,
    /// The JSON body, `Null` when empty or not JSON.
    pub body: Value,
}

/// An API error, as the page shows it: `{"error": {"code", "message", …}}`.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    /// The status, mirrored by the page's own.
    pub status: StatusCode,
    /// The error code (`invalid_credentials`, `rate_limited`, …).
    pub code: String,
    /// The API's message (escaped by the template like every value).
    pub message: String,
    /// The field the error is about, if any.
    pub field: Option<String>,
    /// What the client should do next, if the API said.
    pub next_action: Option<String>,
    /// `Retry-After`, to copy onto the page's answer.
    pub retry_after: Option<HeaderValue>,
}

impl ApiAnswer {
    /// A 2xx answer.
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body read as `T`; `None` if it does not fit.
    pub fn json<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_value(self.body.clone()).ok()
    }

    /// The error of a non-2xx answer (a generic one when the body is not the error shape).
    pub fn failure(&self) -> Option<ApiFailure> {
        if self.is_success() {
            return None;
        }
        let error = &self.body["error"];
        let text = |key: &str| error[key].as_str().map(str::to_string);
        Some(ApiFailure {
            status: self.status,
            code: text("code").unwrap_or_else(|| "internal".into()),
            message: text("message")
                .unwrap_or_else(|| "Something went wrong. Please try again.".into()),
            field: text("field"),
            next_action: text("next_action"),
            retry_after: self.retry_after.clone(),
        })
    }

    /// `Ok(self)` for a 2xx answer, else its error.
    // Once per API call a page makes; the failure is what the page shows, not a hot path.
    #[allow(clippy::result_large_err)]
    pub fn into_result(self) -> Result<Self, ApiFailure> {
        match self.failure() {
            None => Ok(self),
            Some(failure) => Err(failure),
        }
    }
}

impl ApiFailure {
    /// The session is gone (signed out, revoked, expired): the page asks to sign in.
    pub fn is_unauthenticated(&self) -> bool {
        self.status == StatusCode::UNAUTHORIZED && self.code == "unauthenticated"
    }
}

/// The JSON API, called in-process.
#[derive(Clone)]
pub struct ApiClient {
    api: Router,
}

impl ApiClient {
    /// A client of `api` (the router [`crate::app::router`] builds, with its middleware).
    pub fn new(api: Router) -> Self {
        Self { api }
    }

    /// Calls `method path` as `browser`, with `bearer` as the `Authorization` and `body` as
    /// JSON; the raw answer (for exports, passed through as they are).
    pub async fn raw(
        &self,
        browser: &Browser,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let mut builder = Request::builder().method(method).uri(path);
        for (name, value) in &browser.headers {
            builder = builder.header(name, value);
        }
        if let Some(token) = bearer {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(json).unwrap_or_default())
            }
            None => Body::empty(),
        };
        let mut request = match builder.body(body) {
            Ok(request) => request,
            Err(_) => return super::render::internal_error(),
        };
        if let Some(peer) = browser.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        match self.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// Calls `method path` and reads the JSON answer.
    pub async fn call(
        &self,
        browser: &Browser,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> ApiAnswer {
        let response = self.raw(browser, method, path, bearer, body).await;
        let status = response.status();
        let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
        let bytes = axum::body::to_bytes(response.into_body(), ANSWER_LIMIT)
            .await
            .unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        ApiAnswer {
            status,
            retry_after,
            body,
        }
    }

    /// `GET path`.
    pub async fn get(&self, browser: &Browser, path: &str, bearer: Option<&str>) -> ApiAnswer {
        self.call(browser, Method::GET, path, bearer, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(
        &self,
        browser: &Browser,
        path: &str,
        bearer: Option<&str>,
        body: &Value,
    ) -> ApiAnswer {
        self.call(browser, Method::POST, path, bearer, Some(body))
            .await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(
        &self,
        browser: &Browser,
        path: &str,
        bearer: Option<&str>,
        body: &Value,
    ) -> ApiAnswer {
        self.call(browser, Method::PUT, path, bearer, Some(body))
            .await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch(
        &self,
        browser: &Browser,
        path: &str,
        bearer: Option<&str>,
        body: &Value,
    ) -> ApiAnswer {
        self.call(browser, Method::PATCH, path, bearer, Some(body))
            .await
    }

    /// `DELETE path`, with a JSON body when given.
    pub async fn delete(
        &self,
        browser: &Browser,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> ApiAnswer {
        self.call(browser, Method::DELETE, path, bearer, body).await
    }
}
