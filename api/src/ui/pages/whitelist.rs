//! The withdrawal whitelist (`/account/whitelist`): the addresses with their status and the end
//! of their cooldown, adding one (a stepped-up session, as the API's proof policy asks: the form
//! carries the proof, the page steps up with it, then proposes), its confirmation with the code
//! sent by email, and removal (a shorter list sends funds nowhere new, so no proof).
use askama::Template;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::{
    act_on, outcome, refused_step_up, section, when, Problem, ProofFields, Section, SignedIn,
};
use crate::ui::csrf::CsrfForm;
use crate::ui::render::{self, Nav};
use crate::ui::UiState;

/// An address as `GET /v1/me/withdrawal-addresses` lists it.
#[derive(Debug, Deserialize)]
pub struct Address {
    address_id: String,
    asset: String,
    network: String,
    address: String,
    label: String,
    status: String,
    usable_from: Option<chrono::DateTime<chrono::Utc>>,
}

impl Address {
    fn state(&self) -> String {
        match (self.status.as_str(), &self.usable_from) {
            ("awaiting_code", _) => "waiting for the email code".into(),
            ("cooling_down", Some(from)) => format!("cooling down until {}", when(from)),
            ("active", _) => "usable".into(),
            (other, _) => other.to_string(),
        }
    }

    fn usable(&self) -> bool {
        self.status == "active"
    }
}

#[derive(Debug, Deserialize)]
struct Whitelist {
    whitelist_only: bool,
    addresses: Vec<Address>,
}

/// The whitelist page.
#[derive(Template)]
#[template(path = "self/whitelist.html")]
pub struct WhitelistPage {
    nav: Nav,
    whitelist_only: bool,
    addresses: Vec<Address>,
    has_factor: bool,
    notice: Option<&'static str>,
    problem: Option<Problem>,
}

/// The code step of a new address.
#[derive(Template)]
#[template(path = "self/whitelist_confirm.html")]
pub struct ConfirmPage {
    nav: Nav,
    flow_id: String,
    problem: Option<Problem>,
}

/// The whitelist page as a [`Section`].
pub struct WithdrawalWhitelist;

impl Section for WithdrawalWhitelist {
    fn notice(done: &str) -> Option<&'static str> {
        match done {
            "confirmed" => Some("The address is confirmed. Withdrawals can go there once its cooldown is over (shown below)."),
            "removed" => Some("The address is removed from your whitelist."),
            _ => None,
        }
    }

    async fn page(
        ui: &UiState,
        me: &SignedIn,
        notice: Option<&'static str>,
        problem: Option<Problem>,
    ) -> Result<Response, Response> {
        let list: Whitelist = me.read_json(ui, "/v1/me/withdrawal-addresses").await?;
        let page = WhitelistPage {
            nav: me.nav("whitelist"),
            whitelist_only: list.whitelist_only,
            addresses: list.addresses,
            has_factor: me.has_factor(ui).await?,
            notice,
            problem,
        };
        Ok(render::html(StatusCode::OK, &page))
    }
}

/// A new address, with the proof.
#[derive(Debug, Deserialize)]
pub struct AddForm {
    asset: String,
    network: String,
    address: String,
    label: Option<String>,
    #[serde(flatten)]
    proof: ProofFields,
}

async fn add(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<AddForm>,
) -> Response {
    if let Some(page) = refused_step_up::<WithdrawalWhitelist>(&ui, &me, &form.proof).await {
        return page;
    }
    let body = json!({
        "asset": form.asset,
        "network": form.network,
        "address": form.address,
        "label": form.label.unwrap_or_default(),
    });
    let result = me
        .call(
            &ui,
            Method::POST,
            "/v1/me/withdrawal-addresses",
            Some(&body),
        )
        .await;
    let nav = me.nav("whitelist");
    outcome::<WithdrawalWhitelist>(&ui, &me, result, |answer| {
        match answer.body["flow_id"].as_str() {
            Some(flow_id) => confirm_page(nav, flow_id.to_string(), None),
            None => render::internal_error(),
        }
    })
    .await
}

fn confirm_page(nav: Nav, flow_id: String, problem: Option<Problem>) -> Response {
    render::html(
        StatusCode::OK,
        &ConfirmPage {
            nav,
            flow_id,
            problem,
        },
    )
}

/// The code of a new address.
#[derive(Debug, Deserialize)]
pub struct ConfirmForm {
    flow_id: String,
    code: String,
}

async fn confirm(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<ConfirmForm>,
) -> Response {
    let body = json!({"flow_id": form.flow_id, "code": form.code.trim()});
    let path = "/v1/me/withdrawal-addresses/confirm";
    match me.call(&ui, Method::POST, path, Some(&body)).await {
        Err(page) => page,
        Ok(Ok(_)) => render::see_other("/account/whitelist?done=confirmed"),
        Ok(Err(failure)) => super::mirror(
            confirm_page(
                me.nav("whitelist"),
                form.flow_id,
                Some(Problem::from(&failure)),
            ),
            &failure,
        ),
    }
}

/// The remove button's form.
#[derive(Debug, Deserialize)]
pub struct RemoveForm {
    address_id: String,
}

async fn remove(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<RemoveForm>,
) -> Response {
    let delete = (Method::DELETE, "/v1/me/withdrawal-addresses/{id}");
    let done = "/account/whitelist?done=removed";
    act_on::<WithdrawalWhitelist>(&ui, &me, delete, &form.address_id, done).await
}

/// The routes of the whitelist page.
pub fn router() -> Router<UiState> {
    Router::new()
        .route("/account/whitelist", get(section::<WithdrawalWhitelist>))
        .route("/account/whitelist/add", post(add))
        .route("/account/whitelist/confirm", post(confirm))
        .route("/account/whitelist/remove", post(remove))
}
