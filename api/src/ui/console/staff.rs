//! Staff management for admins (`/v1/admin/staff`): the members and the state of their tokens,
//! creating a member (their token shown once, on the answer to the form, never in a URL), and
//! revoking a member's tokens. The staff API decides who may: any other role gets the refusal
//! page.
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::{no_such, safe_id, when, ConsoleNav, Done, Staff};
use crate::ui::csrf::CsrfForm;
use crate::ui::pages::Problem;
use crate::ui::render;
use crate::ui::UiState;

/// The roles a member can be given, as the API names them.
pub const ROLES: [&str; 4] = ["analyst", "auditor", "reviewer", "admin"];

/// The staff routes.
pub fn router() -> Router<UiState> {
    Router::new()
        .route("/console/staff", get(list).post(create))
        .route("/console/staff/{id}/revoke", post(revoke))
}

/// A member, as the API lists them.
#[derive(Debug, Deserialize)]
pub struct Member {
    staff_id: String,
    name: String,
    roles: Vec<String>,
    token_id: Option<String>,
    token_status: String,
    token_until: Option<chrono::DateTime<chrono::Utc>>,
}

impl Member {
    fn roles_text(&self) -> String {
        self.roles.join(", ")
    }

    fn until(&self) -> String {
        self.token_until.as_ref().map(when).unwrap_or_default()
    }

    fn badge(&self) -> &'static str {
        match self.token_status.as_str() {
            "live" => "ok",
            "expired" => "warn",
            _ => "danger",
        }
    }
}

#[derive(Debug, Deserialize)]
struct MemberList {
    staff: Vec<Member>,
}

/// A member just created: their token, shown this once.
#[derive(Debug, Deserialize)]
struct Created {
    staff_id: String,
    token: String,
    roles: Vec<String>,
}

/// The staff page.
#[derive(Template)]
#[template(path = "console/staff.html")]
struct StaffPage {
    console: ConsoleNav,
    members: Vec<Member>,
    roles: &'static [&'static str],
    created: Option<(String, Created)>,
    notice: Option<&'static str>,
    problem: Option<Problem>,
}

async fn show(
    ui: &UiState,
    staff: &Staff,
    status: StatusCode,
    created: Option<(String, Created)>,
    notice: Option<&'static str>,
    problem: Option<Problem>,
) -> Response {
    let answer = match staff.read(ui, "/v1/admin/staff").await {
        Ok(answer) => answer,
        Err(page) => return page,
    };
    let Some(list) = answer.json::<MemberList>() else {
        return render::internal_error();
    };
    let page = StaffPage {
        console: staff.nav("staff"),
        members: list.staff,
        roles: &ROLES,
        created,
        notice,
        problem,
    };
    // The page may hold a new token: like every page, it is served `no-store` (ui/security.rs).
    let response = render::html(status, &page);
    staff.touch(ui, response)
}

async fn list(State(ui): State<UiState>, staff: Staff, Query(q): Query<Done>) -> Response {
    let notice = match q.done.as_deref() {
        Some("revoke") => Some("Tokens revoked: the member is signed out everywhere until an admin issues a new token."),
        _ => None,
    };
    show(&ui, &staff, StatusCode::OK, None, notice, None).await
}

/// The creation form: a name and one checkbox per role.
#[derive(Debug, Deserialize)]
struct CreateForm {
    name: String,
    analyst: Option<String>,
    auditor: Option<String>,
    reviewer: Option<String>,
    admin: Option<String>,
}

impl CreateForm {
    fn roles(&self) -> Vec<&'static str> {
        [&self.analyst, &self.auditor, &self.reviewer, &self.admin]
            .into_iter()
            .zip(ROLES)
            .filter(|(ticked, _)| ticked.is_some())
            .map(|(_, role)| role)
            .collect()
    }
}

async fn create(
    State(ui): State<UiState>,
    staff: Staff,
    CsrfForm(form): CsrfForm<CreateForm>,
) -> Response {
    let body = json!({ "name": form.name, "roles": form.roles() });
    match staff.post(&ui, "/v1/admin/staff", &body).await {
        Err(page) => page,
        Ok(Err(failure)) if failure.status.is_client_error() => {
            show(
                &ui,
                &staff,
                failure.status,
                None,
                None,
                Some(Problem::from(&failure)),
            )
            .await
        }
        Ok(Err(failure)) => super::failure_page(&failure),
        Ok(Ok(answer)) => match answer.json::<Created>() {
            Some(created) => {
                show(
                    &ui,
                    &staff,
                    StatusCode::CREATED,
                    Some((form.name, created)),
                    None,
                    None,
                )
                .await
            }
            None => render::internal_error(),
        },
    }
}

/// The revocation form (its CSRF token only).
#[derive(Debug, Deserialize)]
struct RevokeForm {}

async fn revoke(
    State(ui): State<UiState>,
    Path(id): Path<String>,
    staff: Staff,
    CsrfForm(_): CsrfForm<RevokeForm>,
) -> Response {
    let Some(id) = safe_id(&id) else {
        return no_such("staff member");
    };
    let path = format!("/v1/admin/staff/{id}/tokens");
    match staff
        .call(&ui, axum::http::Method::DELETE, &path, None)
        .await
    {
        Err(page) => page,
        Ok(Err(failure)) => super::failure_page(&failure),
        Ok(Ok(_)) => staff.touch(&ui, render::see_other("/console/staff?done=revoke")),
    }
}
