//! Where a lost-second-factor recovery stands once its codes are accepted (issue #21): the
//! evidence form, the wait for a reviewer, the hold after an approval, the end. Read from the
//! API's flow view, never guessed; shown by the flow pages ([`super::flows::code_page`]) and
//! after the recovery's own forms ([`super::lost_factor`]).
use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;

use super::flow_view::FlowView;
use super::Problem;
use crate::ui::render::{self, Nav};

/// Where a recovery past its code steps stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The codes were accepted: the evidence form.
    Evidence,
    /// A reviewer has the case.
    Review,
    /// Approved: the hold runs, then the factors can be removed.
    Hold,
    /// Denied, cancelled or done: nothing more to do here.
    Ended,
}

impl Stage {
    fn of(view: &FlowView) -> Self {
        match view.next_action.as_str() {
            "submit_evidence" => Self::Evidence,
            "await_review" => Self::Review,
            "await_hold_end" => Self::Hold,
            _ => Self::Ended,
        }
    }
}

/// A recovery past its code steps.
#[derive(Template)]
#[template(path = "self/recovery_stage.html")]
pub struct StagePage {
    nav: Nav,
    view: FlowView,
    stage: Stage,
    notice: Option<&'static str>,
    problem: Option<Problem>,
}

/// The page of a recovery past its code steps (called by [`flows::code_page`]).
pub fn stage_page(
    csrf: &str,
    view: FlowView,
    notice: Option<&'static str>,
    problem: Option<Problem>,
) -> Response {
    render::html(
        StatusCode::OK,
        &StagePage {
            nav: Nav::guest(csrf),
            stage: Stage::of(&view),
            view,
            notice,
            problem,
        },
    )
}
