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

#[cfg(test)]
mod tests {
    use super::*;

    fn view(next_action: &str, status: &str) -> FlowView {
        serde_json::from_value(serde_json::json!({
            "flow_id": "f", "step": 2, "steps_total": 3, "status": status,
            "next_action": next_action, "channel": "email",
            "expires_at": "2026-12-05T07:00:00Z", "resend_available_at": "2026-12-05T07:00:00Z",
            "attempts_remaining": 5,
            "delivery": {"channel": "email", "destination": "a***@example.com", "status": "sent"},
        }))
        .unwrap()
    }

    #[test]
    fn test_stage_follows_the_api_next_action() {
        for (action, status, stage) in [
            ("submit_evidence", "awaiting_evidence", Stage::Evidence),
            ("await_review", "in_review", Stage::Review),
            ("await_hold_end", "approved", Stage::Hold),
            ("done", "closed", Stage::Ended),
        ] {
            let v = view(action, status);
            assert!(v.past_codes(), "{action}");
            assert_eq!(Stage::of(&v), stage, "{action}");
        }
        for action in ["enter_code", "request_new_code"] {
            assert!(!view(action, "awaiting_code").past_codes(), "{action}");
        }
    }
}
