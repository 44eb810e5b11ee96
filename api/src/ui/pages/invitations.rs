//! Team invitations (`/account/invitations`): the open invitations addressed to the account's
//! verified email, each with an accept and a decline button (an invitation left unanswered lapses
//! at its deadline).
use askama::Template;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::{outcome, section, when, Problem, Section, SignedIn};
use crate::ui::csrf::CsrfForm;
use crate::ui::render::{self, Nav};
use crate::ui::UiState;

/// An invitation as `GET /v1/me/team-invitations` lists it.
#[derive(Debug, Deserialize)]
pub struct Invitation {
    invitation_id: uuid::Uuid,
    team_id: uuid::Uuid,
    team_name: String,
    role: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

impl Invitation {
    fn expires(&self) -> String {
        when(&self.expires_at)
    }
}

#[derive(Debug, Deserialize)]
struct InvitationList {
    invitations: Vec<Invitation>,
}

/// The invitations page.
#[derive(Template)]
#[template(path = "self/invitations.html")]
pub struct InvitationsPage {
    nav: Nav,
    invitations: Vec<Invitation>,
    notice: Option<&'static str>,
    problem: Option<Problem>,
}

/// The invitations page as a [`Section`].
pub struct Invitations;

impl Section for Invitations {
    fn notice(done: &str) -> Option<&'static str> {
        match done {
            "accepted" => Some("You joined the team."),
            "declined" => Some("You declined the invitation."),
            _ => None,
        }
    }

    async fn page(
        ui: &UiState,
        me: &SignedIn,
        notice: Option<&'static str>,
        problem: Option<Problem>,
    ) -> Result<Response, Response> {
        let list: InvitationList = me.read_json(ui, "/v1/me/team-invitations").await?;
        let page = InvitationsPage {
            nav: me.nav("invitations"),
            invitations: list.invitations,
            notice,
            problem,
        };
        Ok(render::html(StatusCode::OK, &page))
    }
}

/// The accept and decline buttons' form.
#[derive(Debug, Deserialize)]
pub struct AnswerForm {
    team_id: String,
    invitation_id: String,
}

async fn accept(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<AnswerForm>,
) -> Response {
    answer(&ui, &me, form, "accept", "accepted").await
}

async fn decline(
    State(ui): State<UiState>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<AnswerForm>,
) -> Response {
    answer(&ui, &me, form, "decline", "declined").await
}

/// Posts the invitee's answer (`verb`) to the API, which decides who may give it.
async fn answer(ui: &UiState, me: &SignedIn, form: AnswerForm, verb: &str, done: &str) -> Response {
    let (Ok(team), Ok(invitation)) = (
        uuid::Uuid::parse_str(form.team_id.trim()),
        uuid::Uuid::parse_str(form.invitation_id.trim()),
    ) else {
        return render::bad_form();
    };
    let path = format!("/v1/teams/{team}/invitations/{invitation}/{verb}");
    let result = me.call(ui, Method::POST, &path, None).await;
    outcome::<Invitations>(ui, me, result, |_| {
        render::see_other(&format!("/account/invitations?done={done}"))
    })
    .await
}

/// The routes of the invitations page.
pub fn router() -> Router<UiState> {
    Router::new()
        .route("/account/invitations", get(section::<Invitations>))
        .route("/account/invitations/accept", post(accept))
        .route("/account/invitations/decline", post(decline))
}
