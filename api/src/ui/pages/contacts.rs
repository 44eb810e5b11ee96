//! Contacts and the anti-phishing phrase (`/account/contacts`). A new email or phone is asked
//! with the proof the API's `change_contact` row needs (the password and, when enrolled, a
//! current factor) and then verified with the code sent to it, on the shared code page of
//! [`super::flows`]. The phrase is set or removed with the password. The API has no route that
//! removes a contact without replacing it, so neither does this page.
use askama::Template;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::account::Me;
use super::flows::{self, Flow};
use super::{failure_page, outcome, section, Problem, ProofFields, Section, SignedIn};
use crate::ui::csrf::CsrfForm;
use crate::ui::render::{self, Nav};
use crate::ui::UiState;

/// The contacts page.
#[derive(Template)]
#[template(path = "self/contacts.html")]
pub struct ContactsPage {
    nav: Nav,
    me: Me,
    has_factor: bool,
    notice: Option<&'static str>,
    problem: Option<Problem>,
}

/// The contacts page as a [`Section`].
pub struct Contacts;

impl Section for Contacts {
    fn notice(done: &str) -> Option<&'static str> {
        match done {
            "phrase" => {
                Some("Your anti-phishing phrase is saved: every email from us starts with it.")
            }
            "phrase-removed" => Some("Your anti-phishing phrase is removed."),
            _ => None,
        }
    }

    async fn page(
        ui: &UiState,
        me: &SignedIn,
        notice: Option<&'static str>,
        problem: Option<Problem>,
    ) -> Result<Response, Response> {
        let page = ContactsPage {
            nav: me.nav("contacts"),
            me: me.read_json(ui, "/v1/me").await?,
            has_factor: me.has_factor(ui).await?,
            notice,
            problem,
        };
        Ok(render::html(StatusCode::OK, &page))
    }
}

/// A new contact (`kind` is `email` or `phone`) with the proof.
#[derive(Debug, Deserialize)]
pub struct ContactForm {
    kind: String,
    value: String,
    #[serde(flatten)]
    proof: ProofFields,
}

async fn change(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<ContactForm>,
) -> Response {
    let (path, body) = match form.kind.as_str() {
        "email" => (
            "/v1/me/email",
            json!({"email": form.value.trim(), "proof": form.proof.proof()}),
        ),
        "phone" => (
            "/v1/me/phone",
            json!({"phone": form.value.trim(), "proof": form.proof.proof()}),
        ),
        _ => return render::bad_form(),
    };
    let answer = match me.call(&ui, Method::PUT, path, Some(&body)).await {
        Ok(Ok(answer)) => answer,
        other => return outcome::<Contacts>(&ui, &me, other, |_| render::internal_error()).await,
    };
    // The code went to the new contact: its verification is the shared code page.
    let Some(flow_id) = answer.body["verification_flow_id"].as_str() else {
        return render::internal_error();
    };
    match flows::current(&ui, &me.browser, flow_id).await {
        Ok(view) => flows::code_page(&me.csrf, Flow::Verify, view, None, None),
        Err(failure) => failure_page(&failure),
    }
}

/// The phrase form (`action` is `set` or `remove`) with the password.
#[derive(Debug, Deserialize)]
pub struct PhraseForm {
    action: String,
    phrase: Option<String>,
    #[serde(flatten)]
    proof: ProofFields,
}

async fn phrase(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<PhraseForm>,
) -> Response {
    let proof = form.proof.proof();
    let (method, body, done) = match form.action.as_str() {
        "set" => (
            Method::PUT,
            json!({"phrase": form.phrase.unwrap_or_default(), "proof": proof}),
            "/account/contacts?done=phrase",
        ),
        "remove" => (
            Method::DELETE,
            json!({"proof": proof}),
            "/account/contacts?done=phrase-removed",
        ),
        _ => return render::bad_form(),
    };
    let result = me
        .call(&ui, method, "/v1/me/anti-phishing-phrase", Some(&body))
        .await;
    outcome::<Contacts>(&ui, &me, result, |_| render::see_other(done)).await
}

/// The routes of the contacts page.
pub fn router() -> Router<UiState> {
    Router::new()
        .route("/account/contacts", get(section::<Contacts>))
        .route("/account/contacts/change", post(change))
        .route("/account/contacts/phrase", post(phrase))
}
