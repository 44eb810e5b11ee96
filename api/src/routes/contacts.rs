//! `PUT /v1/me/email` and `PUT /v1/me/phone`: replace (or add) a contact. The proof policy's
//! `change_contact` row confirms the owner (the password and, when enrolled, a current factor);
//! the new contact is claimed at once (nobody else can take it meanwhile) and waits, with a code on
//! its way; the current contact stays the sign-in identifier and the recovery channel until the
//! new one is verified, and is told of the request; high-risk actions pause.
//!
//! The answer never tells whether the address is someone else's: a taken address gets the same
//! 202 and a verification flow whose code is never sent, nothing is claimed, and the holder is
//! told (at most once a day).
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use gatehouse_domain::contact::{Contact, ContactKind};
use gatehouse_domain::{AccountCommand, ChangeContact};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{execute_error, metadata, store_error, ApiJson};
use crate::codes;
use crate::directory::{self, Claim};
use crate::error::ApiError;
use crate::proof::ProofInput;
use crate::request::{Authenticated, Caller};
use crate::state::AppState;
use crate::throttle::Route;

/// A new email address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEmailRequest {
    /// The new address.
    pub email: String,
    /// The password and, when a factor is enrolled, a current one.
    pub proof: Option<ProofInput>,
    /// Deprecated: use `proof.password`.
    #[schema(deprecated)]
    pub password: Option<String>,
}

/// A new phone number.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePhoneRequest {
    /// The new number, international format.
    pub phone: String,
    /// The password and, when a factor is enrolled, a current one.
    pub proof: Option<ProofInput>,
    /// Deprecated: use `proof.password`.
    #[schema(deprecated)]
    pub password: Option<String>,
}

fn proof_input(proof: Option<ProofInput>, password: Option<String>) -> ProofInput {
    ProofInput::or_flat(
        proof,
        ProofInput {
            password,
            ..ProofInput::default()
        },
    )
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
        (status = 202, body = ContactChangeResponse, description = "Changed; a code was sent to the new address, and the old one was told. Also the answer when the address belongs to another account: then nothing changes, no code is sent, and that account's owner is told"),
        (status = 400, body = crate::error::ErrorBody, description = "`invalid_request` (a malformed proof)"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`invalid_password`, `invalid_second_factor` (both count toward the lockout), `second_factor_required`"),
        (status = 409, body = crate::error::ErrorBody, description = "`ceremony_unknown`"),
        (status = 422, body = crate::error::ErrorBody, description = "`invalid_email`, `contact_unchanged`"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked`, `rate_limited`"),
    ))]
pub async fn change_email(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    ApiJson(req): ApiJson<ChangeEmailRequest>,
) -> Result<(StatusCode, Json<ContactChangeResponse>), ApiError> {
    let contact = Contact::email(&req.email)
        .map_err(|e| ApiError::validation("invalid_email", e.to_string()).with_field("email"))?;
    change(
        &state,
        &caller,
        &auth,
        contact,
        proof_input(req.proof, req.password),
    )
    .await
}

/// Replaces (or adds) the account's phone.
#[utoipa::path(put, path = "/v1/me/phone", tag = "accounts", security(("bearer" = [])),
    request_body = ChangePhoneRequest,
    responses(
        (status = 202, body = ContactChangeResponse, description = "Changed; a code was sent to the new number. Also the answer when the number belongs to another account: then nothing changes and no code is sent"),
        (status = 400, body = crate::error::ErrorBody, description = "`invalid_request` (a malformed proof)"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`invalid_password`, `invalid_second_factor` (both count toward the lockout), `second_factor_required`"),
        (status = 409, body = crate::error::ErrorBody, description = "`ceremony_unknown`"),
        (status = 422, body = crate::error::ErrorBody, description = "`invalid_phone` (not a valid E.164 number), `phone_not_allowed` (a denied prefix, `GATEHOUSE_SMS_DENY_PREFIXES`), `contact_unchanged`"),
        (status = 429, body = crate::error::ErrorBody, description = "`account_locked`, `rate_limited`"),
    ))]
pub async fn change_phone(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    ApiJson(req): ApiJson<ChangePhoneRequest>,
) -> Result<(StatusCode, Json<ContactChangeResponse>), ApiError> {
    let contact = state.account_phone(&req.phone)?;
    change(
        &state,
        &caller,
        &auth,
        contact,
        proof_input(req.proof, req.password),
    )
    .await
}

async fn change(
    state: &AppState,
    caller: &Caller,
    auth: &Authenticated,
    contact: Contact,
    input: ProofInput,
) -> Result<(StatusCode, Json<ContactChangeResponse>), ApiError> {
    let id = auth.account_id();
    // Each try checks the password: throttled like the other self-service requests.
    state
        .throttle()
        .admit(
            Route::SignedIn,
            caller.ip,
            Some(&format!("contact-change:{id}")),
        )
        .await?;
    let proof = crate::proof::resolve(
        state,
        &id,
        &auth.account,
        &input,
        Some(auth.session_id()),
        auth.now,
    )
    .await?;
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
    let holder = match directory::claim_identifier(
        state.store(),
        &id,
        &lookup,
        kind.as_str(),
        now.timestamp_millis(),
    )
    .await
    .map_err(store_error)?
    {
        Claim::Claimed => None,
        Claim::Taken { holder, .. } => Some(holder),
    };
    if let Some(holder) = holder {
        // Someone else's address: the same proof is checked and the same answer given, with a
        // flow whose code is never sent; nothing is claimed, and the holder hears of it.
        let token = execute_change(state, caller, auth, &contact, proof, true).await?;
        release_superseded(state, auth, kind, &lookup).await?;
        tell_holder(state, caller, &holder, now);
        return Ok((
            StatusCode::ACCEPTED,
            Json(ContactChangeResponse {
                verification_flow_id: token,
            }),
        ));
    }
    let result = execute_change(state, caller, auth, &contact, proof, false).await;
    match result {
        Ok(flow_token) => {
            // The current contact stays (sign-in, recovery) until the new one is verified
            // (`POST /v1/verify` releases it then); an earlier request it replaces is let go.
            release_superseded(state, auth, kind, &lookup).await?;
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

/// Releases the claim of an earlier requested contact that a new request replaced.
async fn release_superseded(
    state: &AppState,
    auth: &Authenticated,
    kind: ContactKind,
    requested: &str,
) -> Result<(), ApiError> {
    if let Some(earlier) = auth
        .account
        .pending_contact(kind)
        .filter(|p| p.contact.lookup != requested)
    {
        directory::release_identifier(state.store(), &auth.account_id(), &earlier.contact.lookup)
            .await
            .map_err(store_error)?;
    }
    Ok(())
}

/// Tells the holder of a taken identifier that another account tried to use it (the aggregate
/// keeps this to once a day). A failure is logged, never shown: the requester's answer must not
/// depend on it.
fn tell_holder(
    state: &AppState,
    caller: &Caller,
    holder: &str,
    now: chrono::DateTime<chrono::Utc>,
) {
    let context = caller.context(None);
    let state = state.clone();
    let holder = holder.to_string();
    // Off the request's path, so that the answer takes no longer than for a free contact.
    tokio::spawn(async move {
        let told = state
            .accounts()
            .execute(
                &holder,
                || AccountCommand::RecordIdentifierClaimAttempt {
                    at: now,
                    context: context.clone(),
                },
                metadata(),
            )
            .await;
        match told {
            Ok(_) => state.runner().nudge(),
            Err(e) => tracing::warn!(error = ?e, "could not record a claim attempt on its holder"),
        }
    });
}

async fn execute_change(
    state: &AppState,
    caller: &Caller,
    auth: &Authenticated,
    contact: &Contact,
    proof: gatehouse_domain::Proof,
    unavailable: bool,
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
    let grant = if unavailable {
        // Drawn but never kept for delivery: nobody can learn this code.
        codes::draw_flow(state.keys())
            .map_err(ApiError::internal)?
            .0
    } else {
        codes::draw_flow_for_delivery(
            state.store(),
            state.keys(),
            auth.now + state.accounts().services().codes.ttl,
        )
        .await?
    };
    let flow_id = grant.flow_id;
    let command = ChangeContact {
        kind: contact.kind(),
        contact: sealed,
        proof,
        unavailable,
        grant,
        at: auth.now,
        context: caller.context(None),
    };
    let executed = state
        .accounts()
        .execute(
            &id,
            || AccountCommand::ChangeContact(command.clone()),
            metadata(),
        )
        .await
        .map_err(execute_error)?;
    state.runner().nudge();
    crate::proof::refusal(&executed.events, auth.now)?;
    state
        .keys()
        .flow_token(&id, flow_id)
        .map_err(ApiError::internal)
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(change_email))
        .routes(utoipa_axum::routes!(change_phone))
}
