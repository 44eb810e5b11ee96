//! Open sessions (`/account/sessions`), each with a revoke button, and "sign out everywhere
//! else". A session alone may end sessions (the proof policy says so), so no proof is asked.
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::{mirror, Empty, Problem, SignedIn};
use crate::ui::csrf::CsrfForm;
use crate::ui::render::{self, Nav};
use crate::ui::UiState;

/// One open session, as `GET /v1/me/sessions` lists it.
#[derive(Debug, Deserialize)]
pub struct Session {
    session_id: String,
    current: bool,
    started_at: chrono::DateTime<chrono::Utc>,
    idle_expires_at: chrono::DateTime<chrono::Utc>,
    ip: Option<String>,
    user_agent: Option<String>,
}

impl Session {
    fn started(&self) -> String {
        self.started_at.format("%Y-%m-%d %H:%M UTC").to_string()
    }

    fn idle_until(&self) -> String {
        self.idle_expires_at
            .format("%Y-%m-%d %H:%M UTC")
            .to_string()
    }
}

#[derive(Debug, Deserialize)]
struct SessionList {
    sessions: Vec<Session>,
}

/// The sessions page.
#[derive(Template)]
#[template(path = "self/sessions.html")]
pub struct SessionsPage {
    nav: Nav,
    sessions: Vec<Session>,
    notice: Option<&'static str>,
    problem: Option<Problem>,
}

/// Notices after an action, by name.
#[derive(Debug, Deserialize)]
pub struct Done {
    done: Option<String>,
}

async fn show(
    ui: &UiState,
    me: &SignedIn,
    notice: Option<&'static str>,
    problem: Option<Problem>,
) -> Response {
    let answer = match me.read(ui, "/v1/me/sessions").await {
        Ok(answer) => answer,
        Err(page) => return page,
    };
    let Some(list) = answer.json::<SessionList>() else {
        return render::internal_error();
    };
    render::html(
        StatusCode::OK,
        &SessionsPage {
            nav: me.nav("sessions"),
            sessions: list.sessions,
            notice,
            problem,
        },
    )
}

async fn page(State(ui): State<UiState>, me: SignedIn, Query(done): Query<Done>) -> Response {
    let notice = match done.done.as_deref() {
        Some("revoked") => Some("The session was ended. Whoever used it must sign in again."),
        Some("others") => Some("Every other session was ended."),
        _ => None,
    };
    show(&ui, &me, notice, None).await
}

/// The revoke button's form.
#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    session_id: String,
}

async fn revoke(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<RevokeForm>,
) -> Response {
    let Ok(id) = uuid::Uuid::parse_str(form.session_id.trim()) else {
        return render::bad_form();
    };
    let path = format!("/v1/me/sessions/{id}");
    match me.call(&ui, Method::DELETE, &path, None).await {
        Err(page) => page,
        Ok(Ok(_)) => render::see_other("/account/sessions?done=revoked"),
        Ok(Err(failure)) => mirror(
            show(&ui, &me, None, Some(Problem::from(&failure))).await,
            &failure,
        ),
    }
}

async fn revoke_others(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    match me.call(&ui, Method::DELETE, "/v1/me/sessions", None).await {
        Err(page) => page,
        Ok(Ok(_)) => render::see_other("/account/sessions?done=others"),
        Ok(Err(failure)) => mirror(
            show(&ui, &me, None, Some(Problem::from(&failure))).await,
            &failure,
        ),
    }
}

/// The routes of the sessions page.
pub fn router() -> Router<UiState> {
    Router::new()
        .route("/account/sessions", get(page))
        .route("/account/sessions/revoke", post(revoke))
        .route("/account/sessions/revoke-others", post(revoke_others))
}
