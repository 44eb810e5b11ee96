//! `POST /v1/accounts`: sign-up.
//!
//! The answer is the same whether or not an identifier is already registered (the holder's
//! aggregate records a `DuplicateRegistrationAttempted` instead), so sign-up cannot be used to
//! find out who has an account. Both paths do one password hash, so timing does not tell either.
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use gatehouse_domain::account::AccountStatus;
use gatehouse_domain::contact::{Contact, ContactKind};
use gatehouse_domain::context::RequestContext;
use gatehouse_domain::policy::{Channel, FlowKind};
use gatehouse_domain::{AccountCommand, AccountError, RegisterAccount, StartFlow};
use gatehouse_store::ExecuteError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ApiJson;
use crate::codes;
use crate::directory::{self, Claim};
use crate::error::ApiError;
use crate::keys::random_bytes;
use crate::metadata::metadata;
use crate::request::Caller;
use crate::state::AppState;
use crate::throttle::Route;

/// Sign-up request: an email, a phone, or both, and a password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Email address.
    pub email: Option<String>,
    /// Phone number in international format (`+14155550100`).
    pub phone: Option<String>,
    /// Password.
    pub password: String,
    /// Device id chosen by the frontend, recorded for audit.
    pub device_id: Option<String>,
}

/// Sign-up answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResponse {
    /// The new account's id.
    pub account_id: Uuid,
    /// Flow confirming the first contact given (the email if any, else the phone): a code was
    /// sent there; confirm it with `POST /v1/verify`.
    pub verification_flow_id: String,
    /// Flow confirming the phone, when both an email and a phone were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_verification_flow_id: Option<String>,
    /// True when the phone's code was not sent because an hourly SMS budget is spent (the
    /// pumping guard): the account exists and the phone flow is open; verify the phone later
    /// with `POST /v1/flows/{flow_id}/resend`.
    pub phone_verification_deferred: bool,
}

/// Opens an account.
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = RegisterRequest,
    responses(
        (status = 201, body = RegisterResponse, description = "Account created (the same answer when an identifier is already registered)"),
        (status = 400, body = crate::error::ErrorBody, description = "Malformed request"),
        (status = 422, body = crate::error::ErrorBody, description = "`invalid_email`, `invalid_phone` (not a valid E.164 number, `field: \"phone\"`), `phone_not_allowed` (a denied prefix, `GATEHOUSE_SMS_DENY_PREFIXES`), `identifier_required`, `weak_password`, `breached_password` (seen in a data breach; `field: \"password\"`)"),
        (status = 429, body = crate::error::ErrorBody, description = "`rate_limited` (with `retry_after` and `Retry-After`): over the route's per-IP, per-network or per-identifier limit (SIGNUP; the identifier is the email, else the phone), checked before any password hashing"),
    ))]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    let email = req
        .email
        .as_deref()
        .map(Contact::email)
        .transpose()
        .map_err(|e| ApiError::validation("invalid_email", e.to_string()).with_field("email"))?;
    let phone = req
        .phone
        .as_deref()
        .map(|raw| state.account_phone(raw))
        .transpose()?;
    let Some(first) = email.as_ref().or(phone.as_ref()) else {
        return Err(
            ApiError::validation("identifier_required", "give an email, a phone, or both")
                .with_field("email"),
        );
    };
    // Before any hashing: per IP, network and (first) identifier.
    state
        .throttle()
        .admit(
            Route::Signup,
            caller.ip,
            Some(&state.keys().lookup(first.as_str())),
        )
        .await?;
    let words: Vec<String> = email
        .iter()
        .chain(phone.iter())
        .flat_map(Contact::context_words)
        .collect();
    let password = state
        .vet_new_password(&req.password, &words, "password")
        .await?;

    let now = Utc::now();
    let context = caller.context(req.device_id);
    let account_id = uuid::Builder::from_random_bytes(random_bytes::<16>()?).into_uuid();
    let id = account_id.to_string();
    let (data_key, wrapped) = state.keys().new_data_key(&id)?;
    let contacts: Vec<&Contact> = email.iter().chain(phone.iter()).collect();
    let lookups: Vec<(String, &'static str)> = contacts
        .iter()
        .map(|c| (state.keys().lookup(c.as_str()), c.kind().as_str()))
        .collect();

    let kinds: Vec<ContactKind> = contacts.iter().map(|c| c.kind()).collect();
    let mut flows: Vec<(ContactKind, Uuid)> = Vec::with_capacity(kinds.len());
    let mut sms_withheld: Option<String> = None;
    match claim(&state, &id, &lookups, &wrapped, now, &context).await? {
        Claim::Taken { holder, .. } => {
            // Same cost as a real sign-up, then a note on the holder's account; the caller gets
            // an id that leads nowhere.
            let _ = state
                .accounts()
                .services()
                .hasher
                .hash(password.secret())
                .await;
            if !holder.is_empty() {
                let result = state
                    .accounts()
                    .execute(
                        &holder,
                        || AccountCommand::RecordDuplicateRegistration {
                            at: now,
                            context: context.clone(),
                        },
                        metadata(),
                    )
                    .await;
                if let Err(e) = result {
                    tracing::warn!(error = %e, "could not record a duplicate registration");
                }
            }
            // The answer's verification flows live on a decoy aggregate named by the returned
            // id: they behave like real ones (tries counted, resend cooldowns) and send nothing.
            for kind in &kinds {
                let (grant, _) = codes::draw_flow(state.keys())?;
                if let (ContactKind::Phone, Some(phone)) = (kind, &phone) {
                    // Counted like a real sign-up's code, so the answer is the same.
                    sms_withheld = first_sms(&state, phone, grant.code.code_id, now).await?;
                }
                let flow_id = grant.flow_id;
                let command = StartFlow {
                    grant,
                    device: None,
                    kind: FlowKind::verify(*kind),
                    channel: None,
                    typed: Channel::for_contact(*kind),
                    at: now,
                    context: context.clone(),
                };
                state
                    .accounts()
                    .execute(
                        &id,
                        || AccountCommand::StartFlow(command.clone()),
                        metadata(),
                    )
                    .await?;
                flows.push((*kind, flow_id));
            }
        }
        Claim::Claimed => {
            let seal = |c: &Option<Contact>| {
                c.as_ref()
                    .map(|c| data_key.seal(state.keys(), &id, c))
                    .transpose()
                    .map_err(ApiError::internal)
            };
            let (sealed_email, sealed_phone) = (seal(&email)?, seal(&phone)?);
            let expires_at = now + state.accounts().services().codes.ttl;
            let mut verifications = Vec::with_capacity(kinds.len());
            for kind in &kinds {
                let grant =
                    codes::draw_flow_for_delivery(state.store(), state.keys(), expires_at).await?;
                if let (ContactKind::Phone, Some(phone)) = (kind, &phone) {
                    sms_withheld = first_sms(&state, phone, grant.code.code_id, now).await?;
                }
                flows.push((*kind, grant.flow_id));
                verifications.push((*kind, grant));
            }
            let result = state
                .accounts()
                .execute(
                    &id,
                    || {
                        AccountCommand::RegisterAccount(RegisterAccount {
                            email: sealed_email.clone(),
                            phone: sealed_phone.clone(),
                            verifications: verifications.clone(),
                            sms_withheld: sms_withheld.clone(),
                            password: password.clone(),
                            at: now,
                            context: context.clone(),
                        })
                    },
                    metadata(),
                )
                .await;
            if let Err(e) = result {
                // Free the identifiers again so the person can retry.
                if let Err(release) = directory::release_claims(state.store(), &id).await {
                    tracing::error!(error = %release, account_id = %id, "could not release identifier claims");
                }
                return Err(e.into());
            }
        }
    }
    let token = |flow_id| {
        state
            .keys()
            .flow_token(&id, flow_id)
            .map_err(ApiError::internal)
    };
    let mut tokens = Vec::with_capacity(flows.len());
    let expires_at = now + state.accounts().services().codes.ttl;
    for (kind, flow_id) in flows {
        // What was typed, masked, for strangers polling the flow's delivery status: kept alike
        // for a real sign-up and for the decoy of a taken identifier.
        let typed = match kind {
            ContactKind::Email => email.as_ref(),
            ContactKind::Phone => phone.as_ref(),
        };
        if let Some(typed) = typed {
            crate::delivery_status::remember_typed(&state, flow_id, typed.as_str(), expires_at)
                .await?;
        }
        tokens.push((kind, token(flow_id)?));
    }
    let verification_flow_id = tokens
        .first()
        .map(|(_, t)| t.clone())
        .ok_or_else(|| ApiError::internal("no verification flow"))?;
    let phone_verification_flow_id = (tokens.len() > 1)
        .then(|| {
            tokens
                .iter()
                .find(|(k, _)| *k == ContactKind::Phone)
                .map(|(_, t)| t.clone())
        })
        .flatten();
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            account_id,
            verification_flow_id,
            phone_verification_flow_id,
            phone_verification_deferred: sms_withheld.is_some(),
        }),
    ))
}

/// Decides the admission of a sign-up's first phone code (keyed by its code id, so the delivery
/// worker does not count it again): the spent budget's scope when it is withheld.
async fn first_sms(
    state: &AppState,
    phone: &Contact,
    code_id: Uuid,
    now: chrono::DateTime<Utc>,
) -> Result<Option<String>, ApiError> {
    let admission = state
        .sms_budget()
        .admit(
            state.store(),
            &code_id.to_string(),
            phone.as_str(),
            now.timestamp_millis(),
        )
        .await?;
    Ok(match admission {
        crate::sms_budget::SmsAdmission::Admitted => None,
        crate::sms_budget::SmsAdmission::Denied(prefix) => Some(format!("deny:{prefix}")),
        crate::sms_budget::SmsAdmission::Spent { scope, .. } => Some(scope),
    })
}

/// A claim this old whose account never got its first event is left over from a crash between
/// the two writes of a sign-up (claims and key, then the event).
const ORPHANED_CLAIM_AFTER_MS: i64 = 5 * 60 * 1000;

/// Claims the identifiers. An identifier held by a claim that no longer deserves it is taken
/// over: one orphaned by a crashed sign-up, or one its account never verified, claimed longer
/// ago than `GATEHOUSE_UNVERIFIED_CLAIM_SECONDS` (the account records that it gave it up). So
/// neither a crash nor a squatter keeps the real owner from signing up.
async fn claim(
    state: &AppState,
    id: &str,
    lookups: &[(String, &'static str)],
    wrapped: &[u8],
    now: chrono::DateTime<Utc>,
    context: &RequestContext,
) -> Result<Claim, ApiError> {
    let now_ms = now.timestamp_millis();
    // At most one take-over per identifier given.
    for _ in 0..lookups.len() {
        let claim =
            directory::claim_identifiers(state.store(), id, lookups, wrapped, now_ms).await?;
        let Claim::Taken {
            holder,
            claimed_ms,
            lookup,
        } = &claim
        else {
            return Ok(claim);
        };
        if holder.is_empty() || !take_over(state, holder, lookup, *claimed_ms, now, context).await?
        {
            return Ok(claim);
        }
    }
    directory::claim_identifiers(state.store(), id, lookups, wrapped, now_ms)
        .await
        .map_err(ApiError::from)
}

/// Frees `lookup` from `holder` when its claim is orphaned or an expired unverified one;
/// `false` when the holder keeps it.
async fn take_over(
    state: &AppState,
    holder: &str,
    lookup: &str,
    claimed_ms: i64,
    now: chrono::DateTime<Utc>,
    context: &RequestContext,
) -> Result<bool, ApiError> {
    let age_ms = now.timestamp_millis() - claimed_ms;
    let ttl_ms = state
        .accounts()
        .services()
        .contacts
        .unverified_claim_ttl
        .num_milliseconds();
    if age_ms < ORPHANED_CLAIM_AFTER_MS.min(ttl_ms) {
        return Ok(false);
    }
    let holder_state = state.accounts().load(holder).await?;
    if holder_state.status() != AccountStatus::Active {
        if age_ms < ORPHANED_CLAIM_AFTER_MS {
            return Ok(false);
        }
        tracing::warn!(account_id = %holder, "releasing identifiers of a sign-up that never completed");
        directory::release_claims(state.store(), holder).await?;
        return Ok(true);
    }
    // Only a contact the holder still has and never verified; the aggregate decides again on
    // its latest state (a verification in between wins).
    if age_ms < ttl_ms || !matches!(holder_state.contact_by_lookup(lookup), Some((_, false))) {
        return Ok(false);
    }
    let claimed_at = chrono::DateTime::from_timestamp_millis(claimed_ms).unwrap_or(now);
    let released = state
        .accounts()
        .execute(
            holder,
            || AccountCommand::ReleaseUnverifiedContact {
                lookup: lookup.to_string(),
                claimed_at,
                at: now,
                context: context.clone(),
            },
            metadata(),
        )
        .await;
    match released {
        Ok(_) => {}
        Err(ExecuteError::Refused(AccountError::ContactNotReleasable)) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    state.forget_account(lookup);
    directory::release_identifier(state.store(), holder, lookup).await?;
    tracing::info!(account_id = %holder, "an unverified identifier claim expired and was taken over by a new sign-up");
    Ok(true)
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(register))
}
