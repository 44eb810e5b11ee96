//! Signing up (`/sign-up`) and verifying the contact with the code sent to it: the sign-up
//! goes to `POST /v1/accounts`, its verification flow is shown by the flow pages
//! ([`super::flows`]) and redeemed with `POST /v1/verify`.
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::flow_view::FlowView;
use super::flows::{code_page, Flow};
use super::{mirror, Problem};
use crate::ui::call::Browser;
use crate::ui::csrf::{CsrfForm, CsrfToken};
use crate::ui::render::{self, Nav};
use crate::ui::UiState;

/// The sign-up page.
#[derive(Template)]
#[template(path = "self/sign_up.html")]
pub struct SignUpPage {
    nav: Nav,
    email: String,
    phone: String,
    problem: Option<Problem>,
}

async fn page(CsrfToken(csrf): CsrfToken) -> Response {
    render::html(
        StatusCode::OK,
        &SignUpPage {
            nav: Nav::guest(&csrf),
            email: String::new(),
            phone: String::new(),
            problem: None,
        },
    )
}

/// The sign-up form: an email and/or a phone, and a password.
#[derive(Debug, Deserialize)]
pub struct SignUpForm {
    email: Option<String>,
    phone: Option<String>,
    password: String,
}

async fn submit(
    State(ui): State<UiState>,
    CsrfToken(csrf): CsrfToken,
    browser: Browser,
    CsrfForm(form): CsrfForm<SignUpForm>,
) -> Response {
    let email = form.email.unwrap_or_default().trim().to_string();
    let phone = form.phone.unwrap_or_default().trim().to_string();
    let mut body = json!({"password": form.password});
    if !email.is_empty() {
        body["email"] = json!(email);
    }
    if !phone.is_empty() {
        body["phone"] = json!(phone);
    }
    let answer = ui.api.post(&browser, "/v1/accounts", None, &body).await;
    let failure = match answer.into_result() {
        Ok(answer) => {
            let flow_id = answer.body["verification_flow_id"]
                .as_str()
                .unwrap_or_default();
            let path = format!("/v1/flows/{flow_id}");
            match ui.api.get(&browser, &path, None).await.into_result() {
                Ok(flow) => match flow.json::<FlowView>() {
                    Some(view) => {
                        return code_page(
                            &csrf,
                            Flow::Verify,
                            view,
                            Some("Your account was created. Enter the code we sent to confirm your contact."),
                            None,
                        )
                    }
                    None => return render::internal_error(),
                },
                Err(failure) => failure,
            }
        }
        Err(failure) => failure,
    };
    mirror(
        render::html(
            StatusCode::OK,
            &SignUpPage {
                nav: Nav::guest(&csrf),
                email,
                phone,
                problem: Some(Problem::from(&failure)),
            },
        ),
        &failure,
    )
}

/// The routes of sign-up.
pub fn router() -> Router<UiState> {
    Router::new().route("/sign-up", get(page).post(submit))
}
