//! Change the password while signed in (`/account/password`): the current password and, when
//! enrolled, a current second factor (the API's `change_password` row), then the new one. Every
//! other session ends; this one stays.
use askama::Template;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::{outcome, section, Problem, ProofFields, Section, SignedIn};
use crate::ui::csrf::CsrfForm;
use crate::ui::render::{self, Nav};
use crate::ui::UiState;

/// The password page.
#[derive(Template)]
#[template(path = "self/password.html")]
pub struct PasswordPage {
    nav: Nav,
    has_factor: bool,
    notice: Option<&'static str>,
    problem: Option<Problem>,
}

/// The password page as a [`Section`].
pub struct Password;

impl Section for Password {
    fn notice(done: &str) -> Option<&'static str> {
        (done == "changed")
            .then_some("Your password is changed. Every other session was signed out.")
    }

    async fn page(
        ui: &UiState,
        me: &SignedIn,
        notice: Option<&'static str>,
        problem: Option<Problem>,
    ) -> Result<Response, Response> {
        let page = PasswordPage {
            nav: me.nav("overview"),
            has_factor: me.has_factor(ui).await?,
            notice,
            problem,
        };
        Ok(render::html(StatusCode::OK, &page))
    }
}

/// The new password with the proof (the current password and a factor's code).
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    new_password: String,
    #[serde(flatten)]
    proof: ProofFields,
}

async fn change(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Response {
    let body = json!({"proof": form.proof.proof(), "new_password": form.new_password});
    let result = me
        .call(&ui, Method::PUT, "/v1/me/password", Some(&body))
        .await;
    outcome::<Password>(&ui, &me, result, |_| {
        render::see_other("/account/password?done=changed")
    })
    .await
}

/// The routes of the password page.
pub fn router() -> Router<UiState> {
    Router::new().route("/account/password", get(section::<Password>).post(change))
}
