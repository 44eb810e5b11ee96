//! Lost second factor (`/lost-2fa`): the recovery of an account whose authenticator is gone,
//! with its "step N of M" from the API's flow view. Its start page and code steps (email, then
//! phone) are the shared pages of [`super::flows`]; this module holds what follows them: the identity
//! evidence, the wait for a reviewer, the hold after an approval (every channel is told, and
//! the owner can cancel from any session), and the outcome. Each stage is read from the API's
//! flow view, never guessed by the page.
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::flow_view::FlowView;
use super::flows::{code_page_with, device_token, Flow};
use super::recovery_stage::stage_page;
use super::{mirror, Empty, SignedIn};
use crate::ui::call::Browser;
use crate::ui::csrf::{CsrfForm, CsrfToken};
use crate::ui::render;
use crate::ui::UiState;

/// The evidence form: a reference of an identity check and a statement for the reviewer.
#[derive(Debug, Deserialize)]
pub struct EvidenceForm {
    flow_id: String,
    kyc_reference: String,
    statement: String,
}

/// The flow id alone (the hold's "finish" button).
#[derive(Debug, Deserialize)]
pub struct FlowForm {
    flow_id: String,
}

/// Posts a recovery step's `body` to `path` as this browser: the API's answer, or the page of
/// its refusal (the flow where it stands, with the problem).
async fn step(
    ui: &UiState,
    (csrf, browser, headers): (&str, Browser, &HeaderMap),
    path: &str,
    body: serde_json::Value,
    flow_id: &str,
) -> Result<crate::ui::call::ApiAnswer, Response> {
    let browser = browser.with_device_token(device_token(headers, ui).as_deref());
    match ui.api.post(&browser, path, None, &body).await.into_result() {
        Ok(answer) => Ok(answer),
        Err(f) => Err(code_page_with(ui, &browser, csrf, Flow::LostFactor, flow_id, &f).await),
    }
}

async fn evidence(
    State(ui): State<UiState>,
    CsrfToken(csrf): CsrfToken,
    browser: Browser,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<EvidenceForm>,
) -> Response {
    let body = json!({
        "flow_id": form.flow_id,
        "kyc_reference": form.kyc_reference,
        "statement": form.statement,
    });
    let caller = (csrf.as_str(), browser, &headers);
    let path = "/v1/recovery/lost-2fa/evidence";
    match step(&ui, caller, path, body, &form.flow_id).await {
        Ok(answer) => match answer.json::<FlowView>() {
            Some(view) => stage_page(&csrf, view, None, None),
            None => render::internal_error(),
        },
        Err(page) => page,
    }
}

async fn complete(
    State(ui): State<UiState>,
    CsrfToken(csrf): CsrfToken,
    browser: Browser,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<FlowForm>,
) -> Response {
    let body = json!({"flow_id": form.flow_id});
    let caller = (csrf.as_str(), browser, &headers);
    let path = "/v1/recovery/lost-2fa/complete";
    match step(&ui, caller, path, body, &form.flow_id).await {
        Ok(_) => render::see_other("/sign-in?notice=recovered"),
        Err(page) => page,
    }
}

/// Cancels a pending recovery from a signed-in session (`DELETE /v1/me/recovery`): the owner's
/// answer to a recovery they did not ask for. A session alone may cancel (it only protects).
async fn cancel(State(ui): State<UiState>, me: SignedIn, CsrfForm(_): CsrfForm<Empty>) -> Response {
    match me
        .call(&ui, axum::http::Method::DELETE, "/v1/me/recovery", None)
        .await
    {
        Err(page) => page,
        Ok(Ok(_)) => render::message(
            StatusCode::OK,
            "Recovery cancelled",
            "The pending recovery of your second factor is cancelled; nothing was changed.",
        ),
        Ok(Err(failure)) => mirror(
            render::message(StatusCode::OK, "Nothing to cancel", &failure.message),
            &failure,
        ),
    }
}

/// The routes of the lost-second-factor recovery.
pub fn router() -> Router<UiState> {
    Router::new()
        .route("/lost-2fa/evidence", post(evidence))
        .route("/lost-2fa/complete", post(complete))
        .route("/account/recovery/cancel", post(cancel))
}
