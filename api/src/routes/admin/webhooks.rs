//! Webhook subscriptions (admin): create, list, read, enable or disable, rotate the secret,
//! delete, and the delivery attempts of one.
//!
//! Every change is a fact on the subscription's `Webhook` aggregate (with the admin as author)
//! and an action on the admin's staff record. The signing secret is shown once, when it is
//! made (creation, rotation), sealed at rest, and never written into an event.
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use gatehouse_domain::webhook::{Webhook, WebhookCommand, WebhookFact};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{bad_query, limit_of, time};
use crate::error::{webhook_not_found, ApiError};
use crate::keys::random_bytes;
use crate::metadata::metadata;
use crate::routes::ApiJson;
use crate::staff::{ManageWebhooks, Staff};
use crate::state::AppState;
use crate::webhooks::{guard, kinds, sign, table};

/// A subscription to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Endpoint: `https://…`, or `http://…` to a host listed in
    /// `GATEHOUSE_WEBHOOK_ALLOW_HTTP_HOSTS`; never a private, loopback or link-local address
    /// unless its host is listed.
    pub url: String,
    /// Kind patterns: `alert.*`, `alert.credential_stuffing`, `account.password_reset`,
    /// `account.*`, … (namespaces `account`, `alert`, `staff`, `team`, `protection`).
    pub kinds: Vec<String>,
}

/// A created subscription and its signing secret (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// Subscription id.
    pub webhook_id: String,
    /// Signing secret, `whsec_<base64>` (Standard Webhooks). Shown once; sealed at rest.
    pub secret: String,
    /// Endpoint.
    pub url: String,
    /// Kind patterns, normalised.
    pub kinds: Vec<String>,
    /// Deliveries on.
    pub enabled: bool,
}

/// Messages of a subscription by where they stand.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct MessageCounts {
    /// Waiting for a first or further attempt.
    pub pending: i64,
    /// Accepted by the endpoint.
    pub delivered: i64,
    /// Given up after the last attempt.
    pub failed: i64,
    /// Not sent: the subscription was deleted or disabled first.
    pub dropped: i64,
}

/// A subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Subscription id.
    pub webhook_id: String,
    /// Endpoint.
    pub url: String,
    /// Kind patterns.
    pub kinds: Vec<String>,
    /// Deliveries on.
    pub enabled: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Failed attempts since the last success (or since it was enabled).
    pub consecutive_failures: i64,
    /// While a rotated secret still signs beside the new one: until when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// Messages by status (in the detail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<MessageCounts>,
}

/// Every subscription (deleted ones are not listed).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// Oldest first.
    pub webhooks: Vec<WebhookView>,
}

/// A change of a subscription.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    /// Turn deliveries on (`true`) or off (`false`). Turning on starts the failure count over.
    pub enabled: bool,
}

/// A rotated secret (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    /// Subscription id.
    pub webhook_id: String,
    /// The new signing secret, `whsec_<base64>`. Shown once.
    pub secret: String,
    /// Until then, messages carry a second signature made with the previous secret
    /// (`GATEHOUSE_WEBHOOK_ROTATION_GRACE_SECONDS`).
    pub previous_secret_until: DateTime<Utc>,
}

/// One delivery attempt and its outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Position among the subscription's facts (the cursor).
    pub sequence: i64,
    /// The message (`webhook-id` header): the same on every attempt of one message.
    pub message_id: String,
    /// Its kind.
    pub kind: String,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// `delivered` or `failed`.
    pub outcome: String,
    /// HTTP status, when the endpoint answered.
    pub status: Option<u16>,
    /// What went wrong (failed attempts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the message is tried again (a failed attempt that is not the last).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
    /// When the attempt ended.
    pub at: DateTime<Utc>,
}

/// A page of delivery attempts, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    /// Attempts.
    pub deliveries: Vec<DeliveryView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// Paging of the delivery attempts.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Attempts after this sequence (the previous page's `next_after`).
    pub after: Option<i64>,
    /// Page size, 1 to 500 (default 100).
    pub limit: Option<i64>,
}

fn webhook_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| webhook_not_found())
}

fn new_id() -> Result<uuid::Uuid, ApiError> {
    Ok(uuid::Builder::from_random_bytes(random_bytes::<16>()?).into_uuid())
}

/// Draws a secret, seals and keeps it: its id and the secret as shown.
async fn new_secret(state: &AppState, webhook_id: &str) -> Result<(uuid::Uuid, String), ApiError> {
    let secret_id = new_id()?;
    let bytes = random_bytes::<{ sign::SECRET_BYTES }>()?;
    let sealed = state
        .keys()
        .seal_webhook_secret(webhook_id, secret_id, &bytes)?;
    table::save_secret(
        state.store(),
        webhook_id,
        secret_id,
        &sealed,
        Utc::now().timestamp_millis(),
    )
    .await?;
    Ok((secret_id, sign::show_secret(&bytes)))
}

/// A subscription's view from its aggregate.
fn view(id: &str, w: &Webhook, now: DateTime<Utc>) -> WebhookView {
    WebhookView {
        webhook_id: id.to_string(),
        url: w.url.clone(),
        kinds: w.kinds.clone(),
        enabled: w.enabled,
        created_at: w.created_at.unwrap_or_default(),
        consecutive_failures: i64::from(w.consecutive_failures),
        previous_secret_until: w
            .previous_secret
            .map(|(_, until)| until)
            .filter(|until| *until > now),
        messages: None,
    }
}

/// Loads a live subscription (404 when unknown or deleted).
async fn live(state: &AppState, id: &str) -> Result<Webhook, ApiError> {
    let w = state.webhooks().executor().load(id).await?;
    if !w.exists || w.deleted {
        return Err(webhook_not_found());
    }
    Ok(w)
}

/// Runs a command on a subscription and refreshes its listed row.
async fn execute(
    state: &AppState,
    id: &str,
    command: impl Fn() -> WebhookCommand,
) -> Result<Webhook, ApiError> {
    let done = state
        .webhooks()
        .executor()
        .execute(id, command, metadata())
        .await?;
    if let Some(last) = done.events.last() {
        table::save(state.store(), id, &done.aggregate, last.sequence as i64).await?;
    }
    Ok(done.aggregate)
}

/// Creates a subscription (admin): 201 with its secret, shown once.
#[utoipa::path(post, path = "/v1/admin/webhooks", tag = "admin", security(("bearer" = [])), request_body = CreateWebhookRequest,
    responses((status = 201, body = CreatedWebhook, description = "Subscribed; the secret is shown once"),
              (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody, description = "`invalid_webhook_url` (scheme, credentials, or an address that is not public) or `invalid_webhook_kinds` (the message states the rule)")))]
pub async fn create_webhook(
    State(state): State<AppState>,
    staff: Staff<ManageWebhooks>,
    ApiJson(req): ApiJson<CreateWebhookRequest>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    let url =
        guard::check_url(&req.url, &state.webhooks().settings().allow_http_hosts).map_err(|e| {
            ApiError::validation("invalid_webhook_url", e.to_string()).with_field("url")
        })?;
    let patterns = kinds::parse_patterns(&req.kinds).map_err(|e| {
        ApiError::validation(
            "invalid_webhook_kinds",
            format!("{e}: {}", kinds::PATTERN_RULE),
        )
        .with_field("kinds")
    })?;
    let id = new_id()?.to_string();
    let (secret_id, secret) = new_secret(&state, &id).await?;
    let (by, at, url_text) = (staff.id.clone(), Utc::now(), url.to_string());
    let w = execute(&state, &id, || WebhookCommand::Subscribe {
        url: url_text.clone(),
        kinds: patterns.clone(),
        secret_id,
        by: by.clone(),
        at,
    })
    .await?;
    staff.record(&state, "webhooks.create", id.clone()).await?;
    state.webhooks().wake();
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            webhook_id: id,
            secret,
            url: w.url,
            kinds: w.kinds,
            enabled: w.enabled,
        }),
    ))
}

/// Lists the subscriptions (admin).
#[utoipa::path(get, path = "/v1/admin/webhooks", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = WebhookList),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    staff: Staff<ManageWebhooks>,
) -> Result<Json<WebhookList>, ApiError> {
    let rows = table::list(state.store(), false).await?;
    staff.record(&state, "webhooks.list", String::new()).await?;
    let webhooks = rows
        .into_iter()
        .map(|r| WebhookView {
            kinds: r.patterns(),
            webhook_id: r.id,
            url: r.url,
            enabled: r.enabled == 1,
            created_at: time(r.created_ms),
            consecutive_failures: r.consecutive_failures,
            previous_secret_until: None,
            messages: None,
        })
        .collect();
    Ok(Json(WebhookList { webhooks }))
}

/// One subscription (admin), with its messages by status.
#[utoipa::path(get, path = "/v1/admin/webhooks/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookView),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody, description = "No such webhook (or deleted)")))]
pub async fn get_webhook(
    State(state): State<AppState>,
    staff: Staff<ManageWebhooks>,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let id = webhook_id(&id)?;
    let w = live(&state, &id).await?;
    let mut counts = MessageCounts::default();
    for (status, n) in table::counts(state.store(), &id).await? {
        match status.as_str() {
            "pending" => counts.pending = n,
            "delivered" => counts.delivered = n,
            "failed" => counts.failed = n,
            _ => counts.dropped += n,
        }
    }
    staff.record(&state, "webhooks.read", id.clone()).await?;
    let mut shown = view(&id, &w, Utc::now());
    shown.messages = Some(counts);
    Ok(Json(shown))
}

/// Turns a subscription's deliveries on or off (admin). Messages that come due while it is off
/// are dropped.
#[utoipa::path(patch, path = "/v1/admin/webhooks/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id")), request_body = UpdateWebhookRequest,
    responses((status = 200, body = WebhookView),
              (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody, description = "No such webhook (or deleted)")))]
pub async fn update_webhook(
    State(state): State<AppState>,
    staff: Staff<ManageWebhooks>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateWebhookRequest>,
) -> Result<Json<WebhookView>, ApiError> {
    let id = webhook_id(&id)?;
    let (by, at) = (staff.id.clone(), Utc::now());
    let current = live(&state, &id).await?;
    // Already in the state asked for: nothing to record, the state is the answer.
    let w = if current.enabled == req.enabled {
        current
    } else {
        execute(&state, &id, || WebhookCommand::SetEnabled {
            enabled: req.enabled,
            by: by.clone(),
            at,
        })
        .await?
    };
    let action = if req.enabled {
        "webhooks.enable"
    } else {
        "webhooks.disable"
    };
    staff.record(&state, action, id.clone()).await?;
    Ok(Json(view(&id, &w, Utc::now())))
}

/// Deletes a subscription (admin): nothing more is sent to it.
#[utoipa::path(delete, path = "/v1/admin/webhooks/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204, description = "Deleted"),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody, description = "No such webhook (or deleted)")))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    staff: Staff<ManageWebhooks>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = webhook_id(&id)?;
    let (by, at) = (staff.id.clone(), Utc::now());
    execute(&state, &id, || WebhookCommand::Delete {
        by: by.clone(),
        at,
    })
    .await?;
    staff.record(&state, "webhooks.delete", id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotates a subscription's signing secret (admin): the new secret is shown once; the previous
/// one keeps signing beside it for the grace period (two `v1,` entries in `webhook-signature`).
#[utoipa::path(post, path = "/v1/admin/webhooks/{id}/rotate", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = RotatedSecret, description = "The new secret, shown once"),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody, description = "No such webhook (or deleted)")))]
pub async fn rotate_webhook_secret(
    State(state): State<AppState>,
    staff: Staff<ManageWebhooks>,
    Path(id): Path<String>,
) -> Result<Json<RotatedSecret>, ApiError> {
    let id = webhook_id(&id)?;
    live(&state, &id).await?;
    let (secret_id, secret) = new_secret(&state, &id).await?;
    let (by, at) = (staff.id.clone(), Utc::now());
    let grace = state.webhooks().settings().rotation_grace;
    let w = execute(&state, &id, || WebhookCommand::RotateSecret {
        secret_id,
        grace,
        by: by.clone(),
        at,
    })
    .await?;
    staff.record(&state, "webhooks.rotate", id.clone()).await?;
    Ok(Json(RotatedSecret {
        webhook_id: id,
        secret,
        previous_secret_until: w.previous_secret.map_or(at, |(_, until)| until),
    }))
}

/// The delivery attempts of a subscription and their outcomes (admin), oldest first.
#[utoipa::path(get, path = "/v1/admin/webhooks/{id}/deliveries", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id"), DeliveryQuery),
    responses((status = 200, body = DeliveryPage),
              (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody, description = "No such webhook")))]
pub async fn webhook_deliveries(
    State(state): State<AppState>,
    staff: Staff<ManageWebhooks>,
    Path(id): Path<String>,
    query: Result<Query<DeliveryQuery>, QueryRejection>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let Query(q) = query.map_err(bad_query)?;
    let limit = limit_of(q.limit, 100, 500)?;
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_request("after must not be negative").with_field("after"));
    }
    let id = webhook_id(&id)?;
    // Deleted subscriptions keep their history.
    let events = state.webhooks().executor().events(&id).await?;
    if events.is_empty() {
        return Err(webhook_not_found());
    }
    let mut deliveries = Vec::new();
    let mut more = false;
    for e in events.iter().filter(|e| e.sequence as i64 > after) {
        let view = match &e.payload.fact {
            WebhookFact::WebhookDelivered {
                message_id,
                kind,
                attempt,
                status,
            } => DeliveryView {
                sequence: e.sequence as i64,
                message_id: message_id.clone(),
                kind: kind.clone(),
                attempt: *attempt,
                outcome: "delivered".into(),
                status: Some(*status),
                error: None,
                retry_at: None,
                at: e.payload.at,
            },
            WebhookFact::WebhookDeliveryFailed {
                message_id,
                kind,
                attempt,
                status,
                error,
                retry_at,
            } => DeliveryView {
                sequence: e.sequence as i64,
                message_id: message_id.clone(),
                kind: kind.clone(),
                attempt: *attempt,
                outcome: "failed".into(),
                status: *status,
                error: Some(error.clone()),
                retry_at: *retry_at,
                at: e.payload.at,
            },
            _ => continue,
        };
        if deliveries.len() as i64 == limit {
            more = true;
            break;
        }
        deliveries.push(view);
    }
    staff.record(&state, "webhooks.deliveries", id).await?;
    let next_after = more
        .then(|| deliveries.last().map(|d| d.sequence))
        .flatten();
    Ok(Json(DeliveryPage {
        deliveries,
        next_after,
    }))
}

/// This module's routes, each with its OpenAPI operation.
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(create_webhook, list_webhooks))
        .routes(utoipa_axum::routes!(
            get_webhook,
            update_webhook,
            delete_webhook
        ))
        .routes(utoipa_axum::routes!(rotate_webhook_secret))
        .routes(utoipa_axum::routes!(webhook_deliveries))
}
