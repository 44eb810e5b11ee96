//! The API's view of a code flow (`GET /v1/flows/{flow_id}` and the answers of the flow routes),
//! as the flow pages read and show it: "step N of M", the code's state, where it went.
use serde::Deserialize;

/// The API's view of a flow.
#[derive(Debug, Deserialize)]
pub struct FlowView {
    pub(super) flow_id: String,
    pub(super) step: u32,
    pub(super) steps_total: u32,
    pub(super) status: String,
    pub(super) next_action: String,
    pub(super) channel: String,
    pub(super) expires_at: chrono::DateTime<chrono::Utc>,
    pub(super) resend_available_at: chrono::DateTime<chrono::Utc>,
    pub(super) attempts_remaining: u32,
    pub(super) delivery: Delivery,
}

/// Where the code went.
#[derive(Debug, Deserialize)]
pub struct Delivery {
    pub(super) channel: String,
    pub(super) destination: String,
    pub(super) status: String,
}

impl FlowView {
    pub(super) fn awaiting(&self) -> bool {
        self.status == "awaiting_code"
    }

    pub(super) fn expires(&self) -> String {
        self.expires_at.format("%H:%M UTC").to_string()
    }

    pub(super) fn resend_at(&self) -> String {
        self.resend_available_at.to_rfc3339()
    }

    pub(super) fn channel_name(&self) -> &'static str {
        channel_label(&self.channel)
    }

    pub(super) fn delivery_channel(&self) -> &'static str {
        channel_label(&self.delivery.channel)
    }

    /// The progress bar's width class (`w-N-M`).
    pub(super) fn width(&self) -> String {
        format!("w-{}-{}", self.step.min(self.steps_total), self.steps_total)
    }

    /// Whether the flow is past its code steps (a recovery's evidence, review, hold or end).
    pub(super) fn past_codes(&self) -> bool {
        !matches!(
            self.next_action.as_str(),
            "enter_code"
                | "enter_code_and_new_password"
                | "enter_code_and_second_factor"
                | "request_new_code"
        ) || self.status == "closed"
    }
}

fn channel_label(channel: &str) -> &'static str {
    match channel {
        "sms" => "text message",
        _ => "email",
    }
}
