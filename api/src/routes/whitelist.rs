//! The withdrawal-address whitelist: the owner proposes an address (a stepped-up session on an
//! account with a second factor: the proof policy's `withdrawal_controls` row), confirms it with
//! a code sent to the verified email, and waits its cooldown; the platform's backend asks whether
//! a withdrawal may go.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use gatehouse_domain::{AccountCommand, CodeAction, NewWithdrawalAddress, SensitiveAction};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::controls::{require_no_cooldown, require_session_proof};
use super::ApiJson;
use crate::codes;
use crate::error::ApiError;
use crate::metadata::metadata;
use crate::proof::data_key;
use crate::request::{session_proof, Authenticated, Caller};
use crate::staff::{PlatformChecks, Staff};
use crate::state::AppState;
use crate::throttle::Route;

const ADDRESS_LABEL: &str = "withdrawal-address";
const NAME_LABEL: &str = "withdrawal-label";

/// Proposes an address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeRequest {
    /// Asset, e.g. `BTC` (letters and digits, up to 16).
    pub asset: String,
    /// Network, e.g. `bitcoin`, `ethereum` (letters, digits, `-`, `_`, up to 32).
    pub network: String,
    /// The address (printable, no spaces, up to 128 characters; compared exactly).
    pub address: String,
    /// The owner's label (up to 64 characters).
    #[serde(default)]
    pub label: String,
    /// Deprecated and ignored: a proposal needs a stepped-up session (`POST /v1/me/step-up`);
    /// the password alone no longer suffices.
    #[schema(deprecated)]
    pub password: Option<String>,
}

/// A proposal waiting for its code.
#[derive(Debug, Serialize, ToSchema)]
pub struct Proposed {
    /// Send it back with the code from the email.
    pub flow_id: String,
    /// The address's id once confirmed.
    pub address_id: Uuid,
    /// Where the code went.
    pub channel: &'static str,
}

/// Confirms a proposal.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    /// From the proposal.
    pub flow_id: String,
    /// The code from the email.
    pub code: String,
}

/// A whitelisted (or proposed) address.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddressView {
    /// Id.
    pub address_id: Uuid,
    /// Asset.
    pub asset: String,
    /// Network.
    pub network: String,
    /// The address (`erased` if the account's key is gone).
    pub address: String,
    /// Label.
    pub label: String,
    /// `awaiting_code`, `cooling_down` or `active`.
    pub status: &'static str,
    /// From when withdrawals may go there.
    pub usable_from: Option<DateTime<Utc>>,
}

/// The whitelist.
#[derive(Debug, Serialize, ToSchema)]
pub struct Whitelist {
    /// Whether withdrawals may only go to active addresses.
    pub whitelist_only: bool,
    /// Addresses, oldest first.
    pub addresses: Vec<AddressView>,
}

/// Turns whitelist-only withdrawals on or off.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModeRequest {
    /// On or off; off needs a stepped-up session, is refused during a cooldown and starts one.
    pub enabled: bool,
}

/// Asks whether a withdrawal may go.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawalCheckRequest {
    /// The account.
    pub account_id: Uuid,
    /// Asset.
    pub asset: String,
    /// Network.
    pub network: String,
    /// Destination address.
    pub address: String,
}

/// The verdict on a withdrawal.
#[derive(Debug, Serialize, ToSchema)]
pub struct WithdrawalVerdict {
    /// Whether it may go.
    pub allowed: bool,
    /// When refused: `unknown_account`, `account_frozen`, `account_locked`, `high_risk_cooldown`,
    /// `not_whitelisted`, `address_cooling_down`.
    pub reason: Option<&'static str>,
    /// When the refusal ends by itself.
    pub until: Option<DateTime<Utc>>,
}

/// What the lookup of an address is computed from: asset and network normalised, the address
/// exactly as given (many address formats are case-sensitive).
fn normalised(
    asset: &str,
    network: &str,
    address: &str,
) -> Result<(String, String, String), ApiError> {
    let asset = asset.trim().to_ascii_uppercase();
    let network = network.trim().to_ascii_lowercase();
    let address = address.trim().to_string();
    if asset.is_empty() || asset.len() > 16 || !asset.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(
            ApiError::bad_request("asset must be 1 to 16 letters or digits").with_field("asset"),
        );
    }
    if network.is_empty()
        || network.len() > 32
        || !network
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(
            ApiError::bad_request("network must be 1 to 32 letters, digits, `-` or `_`")
                .with_field("network"),
        );
    }
    if address.is_empty() || address.len() > 128 || !address.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "address must be 1 to 128 printable characters without spaces",
        )
        .with_field("address"));
    }
    Ok((asset, network, address))
}

fn lookup(state: &AppState, asset: &str, network: &str, address: &str) -> String {
    state
        .keys()
        .lookup(&format!("withdrawal:{asset}:{network}:{address}"))
}

/// The whitelist with the addresses unsealed for their owner.
#[utoipa::path(get, path = "/v1/me/withdrawal-addresses", tag = "withdrawals", security(("bearer" = [])),
    responses((status = 200, body = Whitelist), (status = 401, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<Whitelist>, ApiError> {
    let id = auth.account_id();
    let key = data_key(&state, &id).await.ok();
    let open = |label: &str, sealed: &str| {
        key.as_ref()
            .and_then(|k| k.open_text(&id, label, sealed).ok())
            .unwrap_or_else(|| "erased".to_string())
    };
    let mut addresses: Vec<(DateTime<Utc>, AddressView)> = auth
        .account
        .withdrawal_addresses()
        .iter()
        .map(|(address_id, a)| {
            (
                a.proposed_at,
                AddressView {
                    address_id: *address_id,
                    asset: a.asset.clone(),
                    network: a.network.clone(),
                    address: open(ADDRESS_LABEL, &a.sealed_address),
                    label: open(NAME_LABEL, &a.sealed_label),
                    status: match a.usable_from {
                        None => "awaiting_code",
                        Some(from) if auth.now < from => "cooling_down",
                        Some(_) => "active",
                    },
                    usable_from: a.usable_from,
                },
            )
        })
        .collect();
    addresses.sort_by_key(|(at, a)| (*at, a.address_id));
    Ok(Json(Whitelist {
        whitelist_only: auth.account.whitelist_only(),
        addresses: addresses.into_iter().map(|(_, a)| a).collect(),
    }))
}

/// Proposes an address: a stepped-up session on an account with a second factor, then a code to
/// the verified email confirms it; it becomes usable after
/// `GATEHOUSE_WHITELIST_ADDRESS_COOLDOWN_SECONDS`. Refused during a high-risk cooldown.
#[utoipa::path(post, path = "/v1/me/withdrawal-addresses", tag = "withdrawals", security(("bearer" = [])),
    request_body = ProposeRequest,
    responses(
        (status = 202, body = Proposed),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`second_factor_required`, `step_up_required`, `high_risk_cooldown`"),
        (status = 409, body = crate::error::ErrorBody, description = "`email_not_verified`, `address_already_listed`, `too_many_addresses`"),
        (status = 429, body = crate::error::ErrorBody, description = "`code_rate_limited`"),
    ))]
pub async fn propose(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    ApiJson(req): ApiJson<ProposeRequest>,
) -> Result<(StatusCode, Json<Proposed>), ApiError> {
    let id = auth.account_id();
    state
        .throttle()
        .admit(Route::SignedIn, caller.ip, Some(&format!("whitelist:{id}")))
        .await?;
    let (asset, network, address) = normalised(&req.asset, &req.network, &req.address)?;
    let label = req.label.trim();
    if label.chars().count() > 64 || label.chars().any(char::is_control) {
        return Err(
            ApiError::bad_request("label must be at most 64 characters").with_field("label")
        );
    }
    // The aggregate refuses during a cooldown too; checked here first so that no code is drawn
    // and kept for delivery only to be refused.
    require_no_cooldown(&auth)?;
    // The proof first, so that no code is drawn and kept only to be refused.
    require_session_proof(&state, &auth, SensitiveAction::WithdrawalControls)?;
    let key = data_key(&state, &id).await?;
    let sealed_address = key.seal_text(&id, ADDRESS_LABEL, &address)?;
    let sealed_label = key.seal_text(&id, NAME_LABEL, label)?;
    let grant = codes::draw_flow_for_delivery(
        state.store(),
        state.keys(),
        auth.now + state.accounts().services().codes.ttl,
    )
    .await?;
    let flow_id = grant.flow_id;
    let context = caller.context(None);
    state
        .accounts()
        .execute(
            &id,
            || AccountCommand::ProposeWithdrawalAddress {
                address: NewWithdrawalAddress {
                    asset: asset.clone(),
                    network: network.clone(),
                    sealed_address: sealed_address.clone(),
                    lookup: lookup(&state, &asset, &network, &address),
                    sealed_label: sealed_label.clone(),
                    grant: grant.clone(),
                    proof: session_proof(&auth),
                },
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Proposed {
            flow_id: state.keys().flow_token(&id, flow_id)?,
            address_id: flow_id,
            channel: "email",
        }),
    ))
}

/// Confirms a proposed address with the code from the email; its cooldown starts.
#[utoipa::path(post, path = "/v1/me/withdrawal-addresses/confirm", tag = "withdrawals", security(("bearer" = [])),
    request_body = ConfirmRequest,
    responses(
        (status = 200, body = AddressView),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`high_risk_cooldown`"),
        (status = 404, body = crate::error::ErrorBody, description = "`flow_not_found`"),
        (status = 422, body = crate::error::ErrorBody, description = "`invalid_code`, `code_expired`, `code_exhausted`"),
    ))]
pub async fn confirm(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    ApiJson(req): ApiJson<ConfirmRequest>,
) -> Result<Json<AddressView>, ApiError> {
    let id = auth.account_id();
    // The flow must be this account's: another account's token is just not found.
    let (holder, flow_id) = state
        .keys()
        .open_flow_token(&req.flow_id)
        .filter(|(holder, _)| *holder == id)
        .ok_or_else(crate::error::flow_not_found)?;
    let _ = holder;
    super::recovery::redeem(
        &state,
        &caller,
        &req.flow_id,
        &req.code,
        CodeAction::ConfirmWithdrawalAddress,
    )
    .await?;
    let account = state.accounts().load(&id).await?;
    let added = account
        .withdrawal_addresses()
        .get(&flow_id)
        .ok_or_else(crate::error::flow_not_found)?;
    let key = data_key(&state, &id).await?;
    let open = |label: &str, sealed: &str| {
        key.open_text(&id, label, sealed)
            .unwrap_or_else(|_| "erased".to_string())
    };
    Ok(Json(AddressView {
        address_id: flow_id,
        asset: added.asset.clone(),
        network: added.network.clone(),
        address: open(ADDRESS_LABEL, &added.sealed_address),
        label: open(NAME_LABEL, &added.sealed_label),
        status: "cooling_down",
        usable_from: added.usable_from,
    }))
}

/// Takes an address off the whitelist (allowed during a cooldown: a shorter list sends funds
/// nowhere new).
#[utoipa::path(delete, path = "/v1/me/withdrawal-addresses/{address_id}", tag = "withdrawals", security(("bearer" = [])),
    params(("address_id" = Uuid, Path, description = "Address id")),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    Path(address_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let context = caller.context(None);
    state
        .accounts()
        .execute(
            &auth.account_id(),
            || AccountCommand::RemoveWithdrawalAddress {
                address_id,
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Turns whitelist-only withdrawals on (always allowed) or off (stepped-up session, refused
/// during a cooldown, starts one).
#[utoipa::path(put, path = "/v1/me/withdrawal-whitelist", tag = "withdrawals", security(("bearer" = [])),
    request_body = ModeRequest,
    responses(
        (status = 204),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody, description = "`second_factor_required`, `step_up_required`, `high_risk_cooldown`"),
    ))]
pub async fn set_mode(
    State(state): State<AppState>,
    caller: Caller,
    auth: Authenticated,
    ApiJson(req): ApiJson<ModeRequest>,
) -> Result<StatusCode, ApiError> {
    let context = caller.context(None);
    state
        .accounts()
        .execute(
            &auth.account_id(),
            || AccountCommand::SetWhitelistMode {
                enabled: req.enabled,
                proof: session_proof(&auth),
                at: auth.now,
                context: context.clone(),
            },
            metadata(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// For the platform's backend (staff token with the `platform` role): may this withdrawal go?
/// Refused while the account is locked or under a high-risk cooldown, and, in whitelist-only
/// mode, unless the address is on the list and past its cooldown.
#[utoipa::path(post, path = "/v1/withdrawals/check", tag = "platform", security(("bearer" = [])),
    request_body = WithdrawalCheckRequest,
    responses(
        (status = 200, body = WithdrawalVerdict),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody),
    ))]
pub async fn check(
    State(state): State<AppState>,
    _platform: Staff<PlatformChecks>,
    ApiJson(req): ApiJson<WithdrawalCheckRequest>,
) -> Result<Json<WithdrawalVerdict>, ApiError> {
    let (asset, network, address) = normalised(&req.asset, &req.network, &req.address)?;
    let account = state.accounts().load(&req.account_id.to_string()).await?;
    let verdict =
        match account.check_withdrawal(&lookup(&state, &asset, &network, &address), Utc::now()) {
            Ok(()) => WithdrawalVerdict {
                allowed: true,
                reason: None,
                until: None,
            },
            Err(refusal) => WithdrawalVerdict {
                allowed: false,
                reason: Some(refusal.as_str()),
                until: refusal.until(),
            },
        };
    Ok(Json(verdict))
}

/// This module's routes, each with its OpenAPI operation (the path is written once, in the
/// handler's `#[utoipa::path]`; `routes!` groups the handlers of one path).
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(list, propose))
        .routes(utoipa_axum::routes!(confirm))
        .routes(utoipa_axum::routes!(remove))
        .routes(utoipa_axum::routes!(set_mode))
        .routes(utoipa_axum::routes!(check))
}
