//! Reviewers' queue of lost-second-factor recoveries: `GET /v1/admin/recovery-cases` (pending
//! cases with their evidence, unsealed for the reviewer) and the decision (`approve` / `deny`
//! with a reason). Every look and every decision is recorded on the reviewer's staff aggregate;
//! the decision itself is an event on the account.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use gatehouse_domain::AccountCommand;
use gatehouse_projections::recovery_cases;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiJson;
use crate::directory;
use crate::error::ApiError;
use crate::metadata::metadata;
use crate::staff::{ReviewRecoveries, Staff};
use crate::state::AppState;

/// A pending case.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCaseView {
    /// Case id (the flow's id).
    pub case_id: String,
    /// The account.
    pub account_id: String,
    /// When the evidence arrived.
    pub submitted_at: DateTime<Utc>,
    /// The evidence (`kyc_reference`, `statement`), or `null` once the account was erased.
    pub evidence: Option<serde_json::Value>,
}

/// Pending cases, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCaseList {
    /// The queue.
    pub cases: Vec<RecoveryCaseView>,
}

/// A reviewer's decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why (kept in the account's history): 1 to 1000 characters once trimmed (`422
    /// invalid_reason` otherwise).
    #[schema(min_length = 1)]
    pub reason: String,
}

/// Lists the recovery cases awaiting review (reviewer, admin).
#[utoipa::path(get, path = "/v1/admin/recovery-cases", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = RecoveryCaseList), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    staff: Staff<ReviewRecoveries>,
) -> Result<Json<RecoveryCaseList>, ApiError> {
    let rows = recovery_cases::by_status(state.store().reads(), "pending", 100).await?;
    let mut cases = Vec::with_capacity(rows.len());
    for row in rows {
        let sealed = state
            .accounts()
            .events(&row.account_id)
            .await?
            .into_iter()
            .rev()
            .find_map(|e| match e.payload.fact {
                gatehouse_domain::AccountFact::RecoveryEvidenceSubmitted {
                    flow_id,
                    sealed_evidence,
                    ..
                } if flow_id.to_string() == row.flow_id => Some(sealed_evidence),
                _ => None,
            });
        let evidence = match (
            sealed,
            directory::wrapped_key(state.store(), &row.account_id).await?,
        ) {
            (Some(sealed), Some(wrapped)) => state
                .keys()
                .unwrap_data_key(&row.account_id, &wrapped)
                .and_then(|key| {
                    key.open_text(&row.account_id, super::lost_factor::EVIDENCE_LABEL, &sealed)
                })
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok()),
            _ => None,
        };
        cases.push(RecoveryCaseView {
            case_id: row.flow_id,
            account_id: row.account_id,
            submitted_at: DateTime::from_timestamp_millis(row.submitted_ms).unwrap_or_default(),
            evidence,
        });
    }
    staff
        .record(
            &state,
            "list_recovery_cases",
            format!("{} cases", cases.len()),
        )
        .await?;
    Ok(Json(RecoveryCaseList { cases }))
}

/// Approves a case (reviewer, admin): the hold starts, announced on every channel.
#[utoipa::path(post, path = "/v1/admin/recovery-cases/{case_id}/approve", tag = "admin", security(("bearer" = [])),
    params(("case_id" = String, Path, description = "Case id")), request_body = Decision,
    responses((status = 204), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody, description = "`invalid_reason`: the reason is blank or over 1000 characters once trimmed")))]
pub async fn approve(
    State(state): State<AppState>,
    staff: Staff<ReviewRecoveries>,
    Path(case_id): Path<String>,
    ApiJson(body): ApiJson<Decision>,
) -> Result<StatusCode, ApiError> {
    decide(&state, &staff, case_id, body.reason, true).await
}

/// Denies a case (reviewer, admin).
#[utoipa::path(post, path = "/v1/admin/recovery-cases/{case_id}/deny", tag = "admin", security(("bearer" = [])),
    params(("case_id" = String, Path, description = "Case id")), request_body = Decision,
    responses((status = 204), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody, description = "`invalid_reason`: the reason is blank or over 1000 characters once trimmed")))]
pub async fn deny(
    State(state): State<AppState>,
    staff: Staff<ReviewRecoveries>,
    Path(case_id): Path<String>,
    ApiJson(body): ApiJson<Decision>,
) -> Result<StatusCode, ApiError> {
    decide(&state, &staff, case_id, body.reason, false).await
}

async fn decide(
    state: &AppState,
    staff: &Staff<ReviewRecoveries>,
    case_id: String,
    reason: String,
    approve: bool,
) -> Result<StatusCode, ApiError> {
    let reason = reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(ApiError::validation(
            "invalid_reason",
            "give a reason of 1 to 1000 characters",
        )
        .with_field("reason"));
    }
    let flow_id = uuid::Uuid::parse_str(&case_id)
        .map_err(|_| ApiError::not_found("no such recovery case"))?;
    let account = recovery_cases::account_of(state.store().any(), &case_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such recovery case"))?;
    state
        .accounts()
        .execute(
            &account,
            || AccountCommand::ReviewRecovery {
                flow_id,
                approve,
                reviewer: staff.id.clone(),
                reason: reason.clone(),
                at: Utc::now(),
            },
            metadata(),
        )
        .await?;
    staff
        .record(
            state,
            if approve {
                "approve_recovery"
            } else {
                "deny_recovery"
            },
            case_id,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(list))
        .routes(utoipa_axum::routes!(approve))
        .routes(utoipa_axum::routes!(deny))
}
