//! The self-service pages at `/`, one module per flow. Each handler turns its form into the
//! JSON body of the API route that owns the rule and shows the answer (see [`super::call`]).
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use serde::Deserialize;

use super::call::{ApiAnswer, ApiFailure, Browser};
use super::cookies::{self, CookieKind};
use super::csrf::CsrfToken;
use super::render;
use super::UiState;

pub mod account;
pub mod api_keys;
pub mod contacts;
pub mod factors;
pub mod flow_view;
pub mod flows;
pub mod history;
pub mod invitations;
pub mod lost_factor;
pub mod password;
pub mod recovery_stage;
pub mod sessions;
pub mod sign_in;
pub mod sign_up;
pub mod whitelist;

/// The self-service routes.
pub fn router() -> Router<UiState> {
    Router::new()
        .route("/", get(home))
        .merge(sign_in::router())
        .merge(sign_up::router())
        .merge(flows::router())
        .merge(lost_factor::router())
        .merge(account::router())
        .merge(sessions::router())
        .merge(history::router())
        .merge(factors::router())
        .merge(contacts::router())
        .merge(password::router())
        .merge(api_keys::router())
        .merge(whitelist::router())
        .merge(invitations::router())
}

/// `/`: the security center when signed in, else the sign-in page.
async fn home(
    axum::extract::State(ui): axum::extract::State<UiState>,
    headers: HeaderMap,
) -> Response {
    if session_token(&headers, &ui).is_some() {
        render::see_other("/account")
    } else {
        render::see_other("/sign-in")
    }
}

/// The API session token in this browser's sealed session cookie.
pub fn session_token(headers: &HeaderMap, ui: &UiState) -> Option<String> {
    cookies::read_text(headers, CookieKind::Session, ui.settings(), ui.app.keys())
}

/// The session ended (signed out elsewhere, revoked, expired) or there is none: back to the
/// sign-in page, which says so, and the stale cookie is removed.
pub fn sign_in_again(ui: &UiState) -> Response {
    let mut response = render::see_other("/sign-in?notice=expired");
    response.headers_mut().append(
        header::SET_COOKIE,
        cookies::clear(CookieKind::Session, ui.settings()),
    );
    response
}

/// A signed-in page's request: the session token from the sealed cookie, the CSRF token for its
/// forms and the caller for the API. No session cookie: the page asks for sign-in. (A handler
/// that also takes a [`crate::ui::csrf::CsrfForm`] runs only once the form passed its checks,
/// so the token is never used for a refused form.)
pub struct SignedIn {
    /// The API session token.
    pub token: String,
    /// The CSRF token of this page's forms.
    pub csrf: String,
    /// The caller, as the API sees it.
    pub browser: Browser,
}

impl axum::extract::FromRequestParts<UiState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        ui: &UiState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = session_token(&parts.headers, ui) else {
            return Err(sign_in_again(ui));
        };
        let CsrfToken(csrf) = CsrfToken::from_request_parts(parts, ui).await?;
        let browser = match Browser::from_request_parts(parts, ui).await {
            Ok(browser) => browser,
            Err(never) => match never {},
        };
        Ok(Self {
            token,
            csrf,
            browser,
        })
    }
}

impl SignedIn {
    /// Calls the API as this session: `Err` with the page to answer when the session is gone
    /// (sign in again), else the answer, error or not.
    pub async fn call(
        &self,
        ui: &UiState,
        method: axum::http::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Result<ApiAnswer, ApiFailure>, Response> {
        let answer = ui
            .api
            .call(&self.browser, method, path, Some(&self.token), body)
            .await;
        match answer.into_result() {
            Err(f) if f.is_unauthenticated() => Err(sign_in_again(ui)),
            other => Ok(other),
        }
    }

    /// `GET path` for a page: the answer, or the page to show instead (sign in again, or the
    /// error).
    pub async fn read(&self, ui: &UiState, path: &str) -> Result<ApiAnswer, Response> {
        match self.call(ui, axum::http::Method::GET, path, None).await? {
            Ok(answer) => Ok(answer),
            Err(f) => Err(failure_page(&f)),
        }
    }

    /// The layout of a signed-in page in section `current`.
    pub fn nav(&self, current: &'static str) -> render::Nav {
        render::Nav::signed_in(&self.csrf, current)
    }

    /// `GET path` read as `T` (a 500 page when the answer does not fit).
    pub async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        ui: &UiState,
        path: &str,
    ) -> Result<T, Response> {
        self.read(ui, path)
            .await?
            .json::<T>()
            .ok_or_else(render::internal_error)
    }

    /// Whether the account has a second factor (so that a proof form asks for its code).
    pub async fn has_factor(&self, ui: &UiState) -> Result<bool, Response> {
        let answer = self.read(ui, "/v1/me/restrictions").await?;
        Ok(answer.body["has_second_factor"].as_bool().unwrap_or(false))
    }

    /// Steps the session up with the form's proof (`POST /v1/me/step-up`), for the API routes
    /// that need a stepped-up session rather than a proof in their body (API keys, the
    /// withdrawal whitelist). Whether the proof is enough is the API's proof policy to say.
    pub async fn step_up(
        &self,
        ui: &UiState,
        proof: &ProofFields,
    ) -> Result<Result<ApiAnswer, ApiFailure>, Response> {
        let body = serde_json::json!({"proof": proof.proof()});
        self.call(ui, axum::http::Method::POST, "/v1/me/step-up", Some(&body))
            .await
    }
}

/// A signed-in page of the security center whose forms' refusals are shown on the page itself,
/// above its forms; its `GET` route is [`section`].
pub trait Section {
    /// The notice after one of the page's forms, by the name in `?done=`.
    fn notice(done: &str) -> Option<&'static str>;

    /// The page, with a notice or the API's refusal; `Err`: the answer instead (sign in again,
    /// or the API's error).
    fn page(
        ui: &UiState,
        me: &SignedIn,
        notice: Option<&'static str>,
        problem: Option<Problem>,
    ) -> impl std::future::Future<Output = Result<Response, Response>> + Send;
}

/// Section `S`'s page, with a notice or the API's refusal.
pub async fn show<S: Section>(
    ui: &UiState,
    me: &SignedIn,
    notice: Option<&'static str>,
    problem: Option<Problem>,
) -> Response {
    S::page(ui, me, notice, problem)
        .await
        .unwrap_or_else(|page| page)
}

/// `GET` of section `S`: its page, with the notice its `?done=` names.
pub async fn section<S: Section>(
    axum::extract::State(ui): axum::extract::State<UiState>,
    me: SignedIn,
    axum::extract::Query(done): axum::extract::Query<Done>,
) -> Response {
    let notice = done.done.as_deref().and_then(S::notice);
    show::<S>(&ui, &me, notice, None).await
}

/// The answer to a form of section `S`: `ok` on success, the page again with the API's refusal
/// (its status and `Retry-After` mirrored) otherwise, or sign-in when the session is gone.
pub async fn outcome<S: Section>(
    ui: &UiState,
    me: &SignedIn,
    result: Result<Result<ApiAnswer, ApiFailure>, Response>,
    ok: impl FnOnce(ApiAnswer) -> Response,
) -> Response {
    match result {
        Err(page) => page,
        Ok(Ok(answer)) => ok(answer),
        Ok(Err(failure)) => mirror(
            show::<S>(ui, me, None, Some(Problem::from(&failure))).await,
            &failure,
        ),
    }
}

/// A form of section `S` that acts on one thing named by its id (a key, an address): `method`
/// on `path` with `{id}` replaced by the id (a UUID, else the form is not understood), then
/// `done` on success.
pub async fn act_on<S: Section>(
    ui: &UiState,
    me: &SignedIn,
    (method, path): (axum::http::Method, &str),
    id: &str,
    done: &str,
) -> Response {
    let Ok(id) = uuid::Uuid::parse_str(id.trim()) else {
        return render::bad_form();
    };
    let path = path.replace("{id}", &id.to_string());
    let result = me.call(ui, method, &path, None).await;
    outcome::<S>(ui, me, result, |_| render::see_other(done)).await
}

/// Steps the session up with `proof` for a form of section `S`: `None` once stepped up, else
/// the answer (the API's refusal on `S`'s page, or sign-in when the session is gone).
pub async fn refused_step_up<S: Section>(
    ui: &UiState,
    me: &SignedIn,
    proof: &ProofFields,
) -> Option<Response> {
    match me.step_up(ui, proof).await {
        Ok(Ok(_)) => None,
        other => Some(outcome::<S>(ui, me, other, |_| render::internal_error()).await),
    }
}

/// A day and time as the pages show it.
pub fn when(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The notice a page shows after one of its forms, by name (never text from the query).
#[derive(Debug, Deserialize)]
pub struct Done {
    /// The notice's name.
    pub done: Option<String>,
}

/// A form of a button alone (its CSRF token is all it carries).
#[derive(Debug, Deserialize)]
pub struct Empty {}

/// The proof fields of a sensitive form: the password and, when the account has one, a code
/// of a current second factor (`totp` or `backup_code`). Turned into the API's `proof` object;
/// whether it is enough is the API's proof policy to say.
#[derive(Debug, Default, Deserialize)]
pub struct ProofFields {
    /// The account's password.
    pub password: Option<String>,
    /// `totp` or `backup_code`.
    pub factor_method: Option<String>,
    /// The factor's code.
    pub factor_code: Option<String>,
}

impl ProofFields {
    /// The API's `proof` object.
    pub fn proof(&self) -> serde_json::Value {
        let mut proof = serde_json::json!({});
        if let Some(p) = self.password.as_ref().filter(|p| !p.is_empty()) {
            proof["password"] = serde_json::json!(p);
        }
        if let Some(code) = self
            .factor_code
            .as_ref()
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
        {
            let method = match self.factor_method.as_deref() {
                Some("backup_code") => "backup_code",
                _ => "totp",
            };
            proof["method"] = serde_json::json!(method);
            proof["code"] = serde_json::json!(code);
        }
        proof
    }
}

/// An error the API answered, as a page shows it above its form.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The API's message.
    pub message: String,
    /// The error code, for people who report it.
    pub code: String,
}

impl From<&ApiFailure> for Problem {
    fn from(f: &ApiFailure) -> Self {
        Self {
            message: f.message.clone(),
            code: f.code.clone(),
        }
    }
}

/// Mirrors an API error's status and `Retry-After` onto a page's answer.
pub fn mirror(mut response: Response, failure: &ApiFailure) -> Response {
    *response.status_mut() = failure.status;
    if let Some(retry) = &failure.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry.clone());
    }
    response
}

/// Adds `Set-Cookie` values to an answer.
pub fn with_cookies(
    mut response: Response,
    cookies: impl IntoIterator<Item = HeaderValue>,
) -> Response {
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// A page the API refused with an unexpected error: the message page with its status.
pub fn failure_page(failure: &ApiFailure) -> Response {
    let status = if failure.status.is_client_error() || failure.status.is_server_error() {
        failure.status
    } else {
        StatusCode::BAD_GATEWAY
    };
    mirror(
        render::message(status, "That did not work", &failure.message),
        failure,
    )
    .into_response()
}
