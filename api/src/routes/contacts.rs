//! `PUT /v1/me/email` and `PUT /v1/me/phone`: replace (or add) a contact. The current password
//! confirms the owner; the new contact is claimed at once (nobody else can take it meanwhile),
//! starts unverified with a code on its way, and the old address is told of the change.
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use gatehouse_domain::contact::{Contact, ContactKind};
use gatehouse_domain::password::normalize;
use gatehouse_domain::{AccountCommand, ChangeContact};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{execute_error, metadata, store_error, ApiJson};
use crate::codes;
use crate::directory::{self, Claim};
use crate::error::ApiError;
use crate::request::{Authenticated, Caller};
use crate::state::AppState;

/// A new email address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEmailRequest {
    /// The new address.
    pub email: String,
    /// The current password.
    pub password: String,
}

/// A new phone number.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePhoneRequest {
    /// The new number, international format.
    pub phone: String,
    /// The current password.
    pub password: String,
}

/// The verification flow of the new contact.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactChangeResponse {
    /// Confirm the code sent to the new contact with `POST /v1/verify`.
    pub verification_flow_id: String,
}

/// Replaces the account's email.
#[utoipa::path(put, path = "/v1/me/email", tag = "accounts", security(("bearer" = [])),
    request_body = ChangeEmailRequest,
    responses(
        (status = 202, body = ContactChangeResponse, description = "Changed; a code was sent to the new address, and the old one was told"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`invalid_password`"),
        (status = 409, body = crate::error::ErrorBody, description = "`identifier_unavailable`"),
        (status = 422, body = crate::error::ErrorBody, description = "`invalid_email`, `contact_unchanged`"),
        (status = 429, body = crate::error::ErrorBody),
    ))]
pub async fn change_email(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    ApiJson(req): ApiJson<ChangeEmailRequest>,
) -> Result<(StatusCode, Json<ContactChangeResponse>), ApiError> {
    let contact = Contact::email(&req.email)
        .map_err(|e| ApiError::validation("invalid_email", e.to_string()).with_field("email"))?;
    change(&state, &caller, &auth, contact, &req.password).await
}

/// Replaces (or adds) the account's phone.
#[utoipa::path(put, path = "/v1/me/phone", tag = "accounts", security(("bearer" = [])),
    request_body = ChangePhoneRequest,
    responses(
        (status = 202, body = ContactChangeResponse, description = "Changed; a code was sent to the new number"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`invalid_password`"),
        (status = 409, body = crate::error::ErrorBody, description = "`identifier_unavailable`"),
        (status = 422, body = crate::error::ErrorBody, description = "`invalid_phone`, `contact_unchanged`"),
        (status = 429, body = crate::error::ErrorBody),
    ))]
pub async fn change_phone(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    ApiJson(req): ApiJson<ChangePhoneRequest>,
) -> Result<(StatusCode, Json<ContactChangeResponse>), ApiError> {
    let contact = Contact::phone(&req.phone)
        .map_err(|e| ApiError::validation("invalid_phone", e.to_string()).with_field("phone"))?;
    change(&state, &caller, &auth, contact, &req.password).await
}

async fn change(
    state: &AppState,
    caller: &Caller,
    auth: &Authenticated,
    contact: Contact,
    password: &str,
) -> Result<(StatusCode, Json<ContactChangeResponse>), ApiError> {
    let id = auth.account_id();
    if let Some(ip) = caller.ip {
        // Each try checks the password: throttled like the other self-service requests.
        state
            .throttle()
            .admit(ip, &format!("contact-change:{id}"))?;
    }
    if password.len() > state.password_policy().max_bytes() {
        return Err(ApiError::bad_request("password is too long").with_field("password"));
    }
    let kind = contact.kind();
    let lookup = state.keys().lookup(contact.as_str());
    let current = match kind {
        ContactKind::Email => auth.account.email(),
        ContactKind::Phone => auth.account.phone(),
    };
    if current.is_some_and(|c| c.lookup == lookup) {
        return Err(ApiError::validation(
            "contact_unchanged",
            "that is already the account's contact",
        ));
    }
    let now = auth.now;
    match directory::claim_identifier(
        state.store(),
        &id,
        &lookup,
        kind.as_str(),
        now.timestamp_millis(),
    )
    .await
    .map_err(store_error)?
    {
        Claim::Claimed => {}
        Claim::Taken { .. } => {
            return Err(ApiError::other(
                StatusCode::CONFLICT,
                "identifier_unavailable",
                "that contact cannot be used; choose another",
            ))
        }
    }
    let result = execute_change(state, caller, auth, &contact, password).await;
    match result {
        Ok(flow_token) => {
            if let Some(old) = current {
                directory::release_identifier(state.store(), &id, &old.lookup)
                    .await
                    .map_err(store_error)?;
                state.forget_account(&old.lookup);
            }
            Ok((
                StatusCode::ACCEPTED,
                Json(ContactChangeResponse {
                    verification_flow_id: flow_token,
                }),
            ))
        }
        Err(e) => {
            if let Err(release) = directory::release_identifier(state.store(), &id, &lookup).await {
                tracing::error!(error = %release, "could not release an unused identifier claim");
            }
            Err(e)
        }
    }
}

async fn execute_change(
    state: &AppState,
    caller: &Caller,
    auth: &Authenticated,
    contact: &Contact,
    password: &str,
) -> Result<String, ApiError> {
    let id = auth.account_id();
    let wrapped = directory::wrapped_key(state.store(), &id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::internal("account key missing"))?;
    let sealed = state
        .keys()
        .unwrap_data_key(&id, &wrapped)
        .and_then(|key| key.seal(state.keys(), &id, contact))
        .map_err(ApiError::internal)?;
    let grant = codes::draw_flow_for_delivery(
        state.store(),
        state.keys(),
        auth.now + state.accounts().services().codes.ttl,
    )
    .await?;
    let flow_id = grant.flow_id;
    let command = ChangeContact {
        kind: contact.kind(),
        contact: sealed,
        password: normalize(password),
        grant,
        at: auth.now,
        context: caller.context(None),
    };
    state
        .accounts()
        .execute(
            &id,
            || AccountCommand::ChangeContact(command.clone()),
            metadata(),
        )
        .await
        .map_err(execute_error)?;
    state.runner().nudge();
    state
        .keys()
        .flow_token(&id, flow_id)
        .map_err(ApiError::internal)
}
