//! The code flows: forgot password (`/forgot`), unlock (`/unlock`), contact verification
//! after sign-up (`/verify`) and the code steps of a lost-second-factor recovery (`/lost-2fa`,
//! whose later stages are [`super::lost_factor`]'s). One page shows any flow where it stands, from the API's own flow
//! view (`GET /v1/flows/{flow_id}`): "step N of M", where the code went and whether it left
//! (delivery status), when it expires, tries left, and the resend button with its countdown
//! (the countdown is `countdown.js`; without JavaScript the button works and the API says when
//! to retry) with a channel switch where the flow allows one.
//!
//! The flow id travels in the forms' hidden fields, never in an address.
use askama::Template;
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::flow_view::FlowView;
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
    /// Recover a lost second factor: the code steps (email, then phone).
    LostFactor,
}

impl Flow {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "forgot" => Some(Self::Forgot),
            "unlock" => Some(Self::Unlock),
            "verify" => Some(Self::Verify),
            "lost-2fa" => Some(Self::LostFactor),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Forgot => "forgot",
            Self::Unlock => "unlock",
            Self::Verify => "verify",
            Self::LostFactor => "lost-2fa",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Forgot => "Reset your password",
            Self::Unlock => "Unlock your account",
            Self::Verify => "Verify your contact",
            Self::LostFactor => "Recover a lost second factor",
        }
    }

    /// The API route that redeems the code.
    fn confirm_api(self) -> &'static str {
        match self {
            Self::Forgot => "/v1/password/reset",
            Self::Unlock => "/v1/unlock/confirm",
            Self::Verify => "/v1/verify",
            Self::LostFactor => "/v1/recovery/lost-2fa/code",
        }
    }

    /// The API route that starts the flow (`None`: it starts elsewhere).
    fn start_api(self) -> Option<&'static str> {
        match self {
            Self::Forgot => Some("/v1/password/forgot"),
            Self::Unlock => Some("/v1/unlock/request"),
            Self::LostFactor => Some("/v1/recovery/lost-2fa"),
            // A verification starts with the sign-up (or a contact change), not here.
            Self::Verify => None,
        }
    }

    /// Where the person lands once the code is redeemed (`None`: the flow goes on, and its
    /// page shows where it stands).
    fn done(self) -> Option<&'static str> {
        match self {
            Self::Forgot => Some("/sign-in?notice=reset"),
            Self::Unlock => Some("/sign-in?notice=unlocked"),
            Self::Verify => Some("/sign-in?notice=verified"),
            Self::LostFactor => None,
        }
    }

    /// Steps as the start page counts them (the API's count before any code is accepted).
    fn steps_at_start(self) -> u32 {
        match self {
            Self::LostFactor => 4,
            _ => 2,
        }
    }

    /// Whether a new code may go by the other channel (a recovery's step is bound to its
    /// channel: the API refuses a switch).
    fn can_switch(self) -> bool {
        matches!(self, Self::Forgot | Self::Unlock)
    }
}

/// Step 1: what the flow needs to start.
#[derive(Template)]
#[template(path = "self/flow_start.html")]
pub struct StartPage {
    nav: Nav,
    flow: &'static str,
    title: &'static str,
    steps: u32,
    can_switch: bool,
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
        steps: flow.steps_at_start(),
        can_switch: flow.can_switch(),
        identifier,
        problem,
    }
}

/// Step 1's page of `flow`.
async fn start_form(flow: Flow, csrf: &str) -> Response {
    render::html(StatusCode::OK, &start_page(csrf, flow, String::new(), None))
}

/// The flow whose start page `path` is (`/forgot`, `/unlock`, `/lost-2fa`).
fn started_at(path: &MatchedPath) -> Option<Flow> {
    Flow::from_name(path.as_str().trim_start_matches('/')).filter(|f| f.start_api().is_some())
}

/// Step 1's page of the flow the route names.
async fn step_one(path: MatchedPath, CsrfToken(csrf): CsrfToken) -> Response {
    match started_at(&path) {
        Some(flow) => start_form(flow, &csrf).await,
        None => render::bad_form(),
    }
}

/// Step 1's form.
#[derive(Debug, Deserialize)]
pub struct StartForm {
    identifier: String,
    channel: Option<String>,
}

/// The device token of this browser's sealed device cookie.
pub(super) fn device_token(headers: &HeaderMap, ui: &UiState) -> Option<String> {
    cookies::read_text(headers, CookieKind::Device, ui.settings(), ui.app.keys())
}

/// Starts `flow` with step 1's form and shows its code page.
async fn start(
    ui: UiState,
    flow: Flow,
    csrf: String,
    browser: Browser,
    headers: HeaderMap,
    form: StartForm,
) -> Response {
    let Some(api) = flow.start_api() else {
        return render::bad_form();
    };
    let device = device_token(&headers, &ui);
    let mut body = json!({"identifier": form.identifier});
    if let Some(channel) = form
        .channel
        .filter(|c| flow.can_switch() && (c == "email" || c == "sms"))
    {
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

/// Step 1's form of the flow the route names.
async fn start_flow(
    State(ui): State<UiState>,
    path: MatchedPath,
    CsrfToken(csrf): CsrfToken,
    browser: Browser,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<StartForm>,
) -> Response {
    match started_at(&path) {
        Some(flow) => start(ui, flow, csrf, browser, headers, form).await,
        None => render::bad_form(),
    }
}

/// The page of `view`: its code step, or, for a recovery past its codes, the stage it is at.
pub fn code_page(
    csrf: &str,
    flow: Flow,
    view: FlowView,
    notice: Option<&'static str>,
    problem: Option<Problem>,
) -> Response {
    if flow == Flow::LostFactor && view.past_codes() {
        return super::recovery_stage::stage_page(csrf, view, notice, problem);
    }
    render::html(
        StatusCode::OK,
        &CodePage {
            nav: Nav::guest(csrf),
            flow: flow.name(),
            title: flow.title(),
            view,
            new_password: flow == Flow::Forgot,
            can_switch: flow.can_switch(),
            notice,
            problem,
        },
    )
}

/// The flow's current view, as its owner's browser sees it.
pub(super) async fn current(
    ui: &UiState,
    browser: &Browser,
    flow_id: &str,
) -> Result<FlowView, ApiFailure> {
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
pub(super) fn urlencode(s: &str) -> String {
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
pub(super) async fn code_page_with(
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
        Ok(answer) => match (flow.done(), answer.json::<FlowView>()) {
            (Some(done), _) => render::see_other(done),
            (None, Some(view)) => code_page(&csrf, flow, view, None, None),
            (None, None) => render::internal_error(),
        },
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
        .route("/forgot", get(step_one).post(start_flow))
        .route("/unlock", get(step_one).post(start_flow))
        .route("/lost-2fa", get(step_one).post(start_flow))
        .route("/flow/confirm", post(confirm))
        .route("/flow/resend", post(resend))
}
