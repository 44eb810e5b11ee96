//! Staff actions on an account from its console page: freeze and unfreeze (reviewer, admin),
//! end every session and lift every lock (admin), each with a reason. The staff API decides
//! who may; a role without the action gets the refusal page.
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::{no_such, safe_id, Staff};
use crate::ui::csrf::CsrfForm;
use crate::ui::render;
use crate::ui::UiState;

/// The actions, as the console's and the API's path name them.
pub const ACTIONS: [&str; 4] = ["freeze", "unfreeze", "sign-out", "unlock"];

/// The action route.
pub fn router() -> Router<UiState> {
    Router::new().route("/console/accounts/{id}/actions/{action}", post(act))
}

/// The action's form.
#[derive(Debug, Deserialize)]
struct ReasonForm {
    reason: String,
}

async fn act(
    State(ui): State<UiState>,
    Path((id, action)): Path<(String, String)>,
    staff: Staff,
    CsrfForm(form): CsrfForm<ReasonForm>,
) -> Response {
    let (Some(id), Some(action)) = (safe_id(&id), ACTIONS.into_iter().find(|a| *a == action))
    else {
        return no_such("action");
    };
    let path = format!("/v1/admin/accounts/{id}/{action}");
    match staff
        .post(&ui, &path, &json!({ "reason": form.reason }))
        .await
    {
        Err(page) => page,
        Ok(Err(failure)) => super::failure_page(&failure),
        Ok(Ok(_)) => staff.touch(
            &ui,
            render::see_other(&format!("/console/accounts/{id}?done={action}")),
        ),
    }
}
