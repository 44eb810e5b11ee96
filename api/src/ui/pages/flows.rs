//! The code flows: forgot password (`/forgot`), unlock (`/unlock`) and contact verification
//! after sign-up (`/verify`). One page shows any flow where it stands, from the API's own flow
//! view (`GET /v1/flows/{flow_id}`): "step N of M", where the code went and whether it left
//! (delivery status), when it expires, tries left, and the resend button with its countdown
//! (the countdown is `countdown.js`; without JavaScript the button works and the API says when
//! to retry) with a channel switch where the flow allows one.
//!
//! The flow id travels in the forms' hidden fields, never in an address.
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{mirror, Problem};
use crate::ui::call::{ApiFailure, Browser};
use crate::ui::cookies::{self, CookieKind};
use crate::ui::csrf::{CsrfForm, CsrfToken};
use crate::ui::render::{self, Nav};
use crate::ui::UiState;

/// A flow the pages run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Forgot password: a code, then the new password.
    Forgot,
    /// Unlock after a lockout.
    Unlock,
    /// Verify a contact (after sign-up, or a new contact).
    Verify,
}

impl Flow {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "forgot" => Some(Self::Forgot),
            "unlock" => Some(Self::Unlock),
            "verify" => Some(Self::Verify),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Forgot => "forgot",
            Self::Unlock => "unlock",
            Self::Verify => "verify",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Forgot => "Reset your password",
            Self::Unlock => "Unlock your account",
            Self::Verify => "Verify your contact",
        }
    }

    /// The API route that redeems the code.
    fn confirm_api(self) -> &'static str {
        match self {
            Self::Forgot => "/v1/password/reset",
            Self::Unlock => "/v1/unlock/confirm",
            Self::Verify => "/v1/verify",
        }
    }

    /// Where the person lands once the code is redeemed.
    fn done(self) -> &'static str {
        match self {
            Self::Forgot => "/sign-in?notice=reset",
            Self::Unlock => "/sign-in?notice=unlocked",
            Self::Verify => "/sign-in?notice=verified",
        }
    }
}

/// The API's view of a flow.
#[derive(Debug, Deserialize)]
pub struct FlowView {
    flow_id: String,
    step: u32,
    steps_total: u32,
    status: String,
    channel: String,
    expires_at: chrono::DateTime<chrono::Utc>,
    resend_available_at: chrono::DateTime<chrono::Utc>,
    attempts_remaining: u32,
    delivery: Delivery,
}

/// Where the code went.
#[derive(Debug, Deserialize)]
pub struct Delivery {
    channel: String,
    destination: String,
    status: String,
}

impl FlowView {
    fn awaiting(&self) -> bool {
        self.status == "awaiting_code"
    }

    fn expires(&self) -> String {
        self.expires_at.format("%H:%M UTC").to_string()
    }

    fn resend_at(&self) -> String {
        self.resend_available_at.to_rfc3339()
    }

    fn channel_name(&self) -> &'static str {
        channel_label(&self.channel)
    }

    fn delivery_channel(&self) -> &'static str {
        channel_label(&self.delivery.channel)
    }

    fn width(&self) -> String {
        format!("w-{}-{}", self.step.min(self.steps_total), self.steps_total)
    }
}

fn channel_label(channel: &str) -> &'static str {
    match channel {
        "sms" => "text message",
        _ => "email",
    }
}

/// Step 1: what the flow needs to start.
#[derive(Template)]
#[template(path = "self/flow_start.html")]
pub struct StartPage {
    nav: Nav,
    flow: &'static str,
    title: &'static str,
    identifier: String,
    problem: Option<Problem>,
}

/// The code step.
#[derive(Template)]
#[template(path = "self/flow_code.html")]
pub struct CodePage {
    nav: Nav,
    flow: &'static str,
    title: &'static str,
    view: FlowView,
    new_password: bool,
    can_switch: bool,
    notice: Option<&'static str>,
    problem: Option<Problem>,
}

fn start_page(csrf: &str, flow: Flow, identifier: String, problem: Option<Problem>) -> StartPage {
    StartPage {
        nav: Nav::guest(csrf),
        flow: flow.name(),
        title: flow.title(),
        identifier,
        problem,
    }
}

async fn start_form(flow: Flow, csrf: &str) -> Response {
    render::html(StatusCode::OK, &start_page(csrf, flow, String::new(), None))
}

async fn forgot_page(CsrfToken(csrf): CsrfToken) -> Response {
    start_form(Flow::Forgot, &csrf).await
}

async fn unlock_page(CsrfToken(csrf): CsrfToken) -> Response {
    start_form(Flow::Unlock, &csrf).await
}

/// Step 1's form.
#[derive(Debug, Deserialize)]
pub struct StartForm {
    identifier: String,
    channel: Option<String>,
}

fn device_token(headers: &HeaderMap, ui: &UiState) -> Option<String> {
    cookies::read_text(headers, CookieKind::Device, ui.settings(), ui.app.keys())
}

async fn start(
    ui: UiState,
    flow: Flow,
    csrf: String,
    browser: Browser,
    headers: HeaderMap,
    form: StartForm,
) -> Response {
    let api = match flow {
        Flow::Forgot => "/v1/password/forgot",
        Flow::Unlock => "/v1/unlock/request",
        // A verification starts with the sign-up (or a contact change), not here.
        Flow::Verify => return render::bad_form(),
    };
    let device = device_token(&headers, &ui);
    let mut body = json!({"identifier": form.identifier});
    if let Some(channel) = form.channel.filter(|c| c == "email" || c == "sms") {
        body["channel"] = Value::String(channel);
    }
    if let Some(device) = &device {
        body["device_token"] = Value::String(device.clone());
    }
    let browser = browser.with_device_token(device.as_deref());
    match ui.api.post(&browser, api, None, &body).await.into_result() {
        Ok(answer) => match answer.json::<FlowView>() {
            Some(view) => code_page(&csrf, flow, view, None, None),
            None => render::internal_error(),
        },
        Err(failure) => mirror(
            render::html(
                StatusCode::OK,
                &start_page(&csrf, flow, form.identifier, Some(Problem::from(&failure))),
            ),
            &failure,
        ),
    }
}

async fn forgot(
    State(ui): State<UiState>,
    CsrfToken(csrf): CsrfToken,
    browser: Browser,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<StartForm>,
) -> Response {
    start(ui, Flow::Forgot, csrf, browser, headers, form).await
}

async fn unlock(
    State(ui): State<UiState>,
    CsrfToken(csrf): CsrfToken,
    browser: Browser,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<StartForm>,
) -> Response {
    start(ui, Flow::Unlock, csrf, browser, headers, form).await
}

/// The code page of `view`.
pub fn code_page(
    csrf: &str,
    flow: Flow,
    view: FlowView,
    notice: Option<&'static str>,
    problem: Option<Problem>,
) -> Response {
    render::html(
        StatusCode::OK,
        &CodePage {
            nav: Nav::guest(csrf),
            flow: flow.name(),
            title: flow.title(),
            view,
            new_password: flow == Flow::Forgot,
            can_switch: flow != Flow::Verify,
            notice,
            problem,
        },
    )
}

/// The flow's current view, as its owner's browser sees it.
async fn current(ui: &UiState, browser: &Browser, flow_id: &str) -> Result<FlowView, ApiFailure> {
    let path = format!("/v1/flows/{}", urlencode(flow_id));
    let answer = ui.api.get(browser, &path, None).await.into_result()?;
    answer.json::<FlowView>().ok_or_else(|| ApiFailure {
        status: StatusCode::BAD_GATEWAY,
        code: "internal".into(),
        message: "The flow could not be read.".into(),
        field: None,
        next_action: None,
        retry_after: None,
    })
}

/// A path segment, percent-encoded (flow ids are base64url, but nothing typed is trusted).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A failure shown on the flow's code page when the flow can still be read, else on the
/// message page.
async fn code_page_with(
    ui: &UiState,
    browser: &Browser,
    csrf: &str,
    flow: Flow,
    flow_id: &str,
    failure: &ApiFailure,
) -> Response {
    match current(ui, browser, flow_id).await {
        Ok(view) => mirror(
            code_page(csrf, flow, view, None, Some(Problem::from(failure))),
            failure,
        ),
        Err(_) => super::failure_page(failure),
    }
}

/// The code form (and the new password for a reset, with a current second factor when the
/// account has one).
#[derive(Debug, Deserialize)]
pub struct ConfirmForm {
    flow: String,
    flow_id: String,
    code: String,
    new_password: Option<String>,
    factor_code: Option<String>,
}

async fn confirm(
    State(ui): State<UiState>,
    CsrfToken(csrf): CsrfToken,
    browser: Browser,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<ConfirmForm>,
) -> Response {
    let Some(flow) = Flow::from_name(&form.flow) else {
        return render::bad_form();
    };
    let browser = browser.with_device_token(device_token(&headers, &ui).as_deref());
    let mut body = json!({"flow_id": form.flow_id, "code": form.code.trim()});
    if flow == Flow::Forgot {
        body["new_password"] = Value::String(form.new_password.unwrap_or_default());
        if let Some(code) = form.factor_code.filter(|c| !c.trim().is_empty()) {
            body["proof"] = json!({"method": "totp", "code": code.trim()});
        }
    }
    match ui
        .api
        .post(&browser, flow.confirm_api(), None, &body)
        .await
        .into_result()
    {
        Ok(_) => render::see_other(flow.done()),
        Err(failure) => code_page_with(&ui, &browser, &csrf, flow, &form.flow_id, &failure).await,
    }
}

/// The resend form: a new code, optionally by the other channel; or only a fresh look at the
/// delivery status.
#[derive(Debug, Deserialize)]
pub struct ResendForm {
    flow: String,
    flow_id: String,
    channel: Option<String>,
    action: Option<String>,
}

async fn resend(
    State(ui): State<UiState>,
    CsrfToken(csrf): CsrfToken,
    browser: Browser,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<ResendForm>,
) -> Response {
    let Some(flow) = Flow::from_name(&form.flow) else {
        return render::bad_form();
    };
    let browser = browser.with_device_token(device_token(&headers, &ui).as_deref());
    if form.action.as_deref() == Some("status") {
        return match current(&ui, &browser, &form.flow_id).await {
            Ok(view) => code_page(&csrf, flow, view, None, None),
            Err(failure) => super::failure_page(&failure),
        };
    }
    let mut body = json!({});
    if let Some(channel) = form.channel.filter(|c| c == "email" || c == "sms") {
        body["channel"] = Value::String(channel);
    }
    let path = format!("/v1/flows/{}/resend", urlencode(&form.flow_id));
    match ui
        .api
        .post(&browser, &path, None, &body)
        .await
        .into_result()
    {
        Ok(answer) => match answer.json::<FlowView>() {
            Some(view) => code_page(
                &csrf,
                flow,
                view,
                Some("A new code is on its way; earlier codes no longer work."),
                None,
            ),
            None => render::internal_error(),
        },
        Err(failure) => code_page_with(&ui, &browser, &csrf, flow, &form.flow_id, &failure).await,
    }
}

/// The routes of the code flows.
pub fn router() -> Router<UiState> {
    Router::new()
        .route("/forgot", get(forgot_page).post(forgot))
        .route("/unlock", get(unlock_page).post(unlock))
        .route("/flow/confirm", post(confirm))
        .route("/flow/resend", post(resend))
}
