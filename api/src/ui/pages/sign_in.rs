//! Signing in (`/sign-in`), its second step (TOTP, backup code, security key) and signing out.
//!
//! The password goes to `POST /v1/login` with this browser's device token (its sealed `gh_device`
//! cookie), so the sign-in passes through this device's own lockout door; a second-factor
//! challenge is answered with `POST /v1/login/mfa`. The session token lands in the sealed
//! `gh_session` cookie; the new device token in `gh_device`.
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{mirror, session_token, with_cookies, Empty, Problem};
use crate::ui::call::{ApiFailure, Browser};
use crate::ui::cookies::{self, CookieKind};
use crate::ui::csrf::{CsrfForm, CsrfToken};
use crate::ui::render::{self, Nav};
use crate::ui::UiState;

/// How long the device cookie lasts (the device token's own trust is the API's to decide).
const DEVICE_COOKIE_SECONDS: u64 = 60 * 60 * 24 * 180;

/// The sign-in page.
#[derive(Template)]
#[template(path = "self/sign_in.html")]
pub struct SignInPage {
    nav: Nav,
    identifier: String,
    notice: Option<&'static str>,
    problem: Option<Problem>,
}

/// The second step of a sign-in.
#[derive(Template)]
#[template(path = "self/second_step.html")]
pub struct SecondStepPage {
    nav: Nav,
    challenge_id: String,
    totp: bool,
    backup_code: bool,
    security_key: bool,
    problem: Option<Problem>,
}

/// Notices the sign-in page shows, by name (never text from the query string).
#[derive(Debug, Deserialize)]
pub struct SignInQuery {
    notice: Option<String>,
}

fn notice(name: Option<&str>) -> Option<&'static str> {
    match name? {
        "expired" => Some("Your session has ended. Please sign in again."),
        "signed-out" => Some("You are signed out."),
        "verified" => Some("Your contact is verified. You can sign in now."),
        "reset" => Some("Your password was changed. Sign in with the new one."),
        "unlocked" => Some("Your account is unlocked. You can sign in now."),
        "recovered" => Some(
            "Your second factors were removed. Sign in with your password, then set up a new one.",
        ),
        _ => None,
    }
}

/// The sign-in page with what the person typed, a notice or the API's refusal.
fn sign_in_page(
    csrf: &str,
    identifier: String,
    notice: Option<&'static str>,
    problem: Option<Problem>,
) -> Response {
    render::html(
        StatusCode::OK,
        &SignInPage {
            nav: Nav::guest(csrf),
            identifier,
            notice,
            problem,
        },
    )
}

async fn page(
    State(ui): State<UiState>,
    CsrfToken(csrf): CsrfToken,
    headers: HeaderMap,
    Query(query): Query<SignInQuery>,
) -> Response {
    if session_token(&headers, &ui).is_some() && query.notice.is_none() {
        return render::see_other("/account");
    }
    sign_in_page(&csrf, String::new(), notice(query.notice.as_deref()), None)
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    identifier: String,
    password: String,
}

async fn submit(
    State(ui): State<UiState>,
    CsrfToken(csrf): CsrfToken,
    browser: Browser,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<SignInForm>,
) -> Response {
    let device = cookies::read_text(&headers, CookieKind::Device, ui.settings(), ui.app.keys());
    let mut body = json!({"identifier": form.identifier, "password": form.password});
    if let Some(device) = device {
        body["device_token"] = Value::String(device);
    }
    let answer = ui.api.post(&browser, "/v1/login", None, &body).await;
    match answer.into_result() {
        Ok(answer) if answer.body["mfa_required"] == true => {
            let methods: Vec<String> = answer.body["methods"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            render::html(
                StatusCode::OK,
                &SecondStepPage {
                    nav: Nav::guest(&csrf),
                    challenge_id: answer.body["challenge_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    totp: methods.iter().any(|m| m == "totp"),
                    backup_code: methods.iter().any(|m| m == "backup_code"),
                    security_key: methods.iter().any(|m| m == "security_key"),
                    problem: None,
                },
            )
        }
        Ok(answer) => signed_in(&ui, &answer.body),
        Err(failure) => mirror(
            sign_in_page(&csrf, form.identifier, None, Some(Problem::from(&failure))),
            &failure,
        ),
    }
}

/// A session answer: the cookies, and on to the security center.
fn signed_in(ui: &UiState, session: &Value) -> Response {
    let settings = ui.settings();
    let keys = ui.app.keys();
    let Some(token) = session["session_token"].as_str() else {
        return render::internal_error();
    };
    let mut set = Vec::new();
    match cookies::set(CookieKind::Session, token.as_bytes(), None, settings, keys) {
        Some(cookie) => set.push(cookie),
        None => return render::internal_error(),
    }
    if let Some(device) = session["device_token"].as_str() {
        set.extend(cookies::set(
            CookieKind::Device,
            device.as_bytes(),
            Some(DEVICE_COOKIE_SECONDS),
            settings,
            keys,
        ));
    }
    with_cookies(render::see_other("/account"), set)
}

/// The second step's form: a code, or a security key's answer (filled in by `webauthn.js`).
#[derive(Debug, Deserialize)]
pub struct SecondStepForm {
    challenge_id: String,
    method: String,
    code: Option<String>,
    ceremony_id: Option<String>,
    assertion: Option<String>,
}

async fn second_step(
    State(ui): State<UiState>,
    CsrfToken(csrf): CsrfToken,
    browser: Browser,
    CsrfForm(form): CsrfForm<SecondStepForm>,
) -> Response {
    let mut body = json!({"challenge_id": form.challenge_id, "method": form.method});
    if let Some(code) = form.code.filter(|c| !c.trim().is_empty()) {
        body["code"] = Value::String(code);
    }
    if let Some(ceremony) = form.ceremony_id.filter(|c| !c.is_empty()) {
        body["ceremony_id"] = Value::String(ceremony);
    }
    if let Some(assertion) = form.assertion.filter(|a| !a.is_empty()) {
        body["assertion"] = serde_json::from_str(&assertion).unwrap_or(Value::String(assertion));
    }
    let answer = ui.api.post(&browser, "/v1/login/mfa", None, &body).await;
    match answer.into_result() {
        Ok(answer) => signed_in(&ui, &answer.body),
        Err(failure) if failure.code == "invalid_challenge" => mirror(
            sign_in_page(
                &csrf,
                String::new(),
                None,
                Some(Problem {
                    message: "This sign-in expired or was already used. Please sign in again."
                        .into(),
                    code: failure.code.clone(),
                }),
            ),
            &failure,
        ),
        Err(failure) => second_step_again(&csrf, form.challenge_id, &form.method, &failure),
    }
}

fn second_step_again(
    csrf: &str,
    challenge_id: String,
    method: &str,
    failure: &ApiFailure,
) -> Response {
    // The methods the challenge offered are not repeated by the error: offer the codes, and the
    // key again if that is what was used.
    mirror(
        render::html(
            StatusCode::OK,
            &SecondStepPage {
                nav: Nav::guest(csrf),
                challenge_id,
                totp: true,
                backup_code: true,
                security_key: method == "security_key",
                problem: Some(Problem::from(failure)),
            },
        ),
        failure,
    )
}

/// The passkey button's form (filled in by `webauthn.js`).
#[derive(Debug, Deserialize)]
pub struct PasskeyForm {
    ceremony_id: String,
    assertion: String,
}

async fn passkey(
    State(ui): State<UiState>,
    CsrfToken(csrf): CsrfToken,
    browser: Browser,
    CsrfForm(form): CsrfForm<PasskeyForm>,
) -> Response {
    let credential = serde_json::from_str(&form.assertion).unwrap_or(Value::String(form.assertion));
    let body = json!({"ceremony_id": form.ceremony_id, "credential": credential});
    match ui
        .api
        .post(&browser, "/v1/login/passkey", None, &body)
        .await
        .into_result()
    {
        Ok(answer) => signed_in(&ui, &answer.body),
        Err(failure) => mirror(
            sign_in_page(&csrf, String::new(), None, Some(Problem::from(&failure))),
            &failure,
        ),
    }
}

async fn sign_out(
    State(ui): State<UiState>,
    browser: Browser,
    headers: HeaderMap,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    if let Some(token) = session_token(&headers, &ui) {
        // Whatever the API says (already ended, …), this browser forgets the session.
        let _ = ui
            .api
            .call(
                &browser,
                axum::http::Method::POST,
                "/v1/logout",
                Some(&token),
                None,
            )
            .await;
    }
    with_cookies(
        render::see_other("/sign-in?notice=signed-out"),
        [cookies::clear(CookieKind::Session, ui.settings())],
    )
}

/// The routes of this flow.
pub fn router() -> Router<UiState> {
    Router::new()
        .route("/sign-in", get(page).post(submit))
        .route("/sign-in/second-step", post(second_step))
        .route("/sign-in/passkey", post(passkey))
        .route("/sign-out", post(sign_out))
}
