//! The answers to the `Account` aggregate's refusals: one per variant, no wildcard.
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use gatehouse_domain::account::CodeStatus;
use gatehouse_domain::AccountError;

use super::{seconds_until, ApiError};

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        use AccountError as E;
        match e {
            E::SessionNotFound => ApiError::not_found("no such open session"),
            E::NotRegistered => ApiError::unauthenticated(),
            E::DeviceNotFound => ApiError::not_found("no such device"),
            E::DeviceNameInvalid => ApiError::bad_request(
                "name must be 1 to 64 characters, without control characters",
            )
            .with_field("name"),
            E::FlowNotFound => flow_not_found(),
            E::CodeUnusable(status) => code_unusable(status),
            E::CodeRateLimited { retry_at } => ApiError::rate_limited(
                "code_rate_limited",
                "a code was sent recently or too many were sent in the past hour; wait before asking again",
                (retry_at - Utc::now()).num_seconds() + 1,
            ),
            E::PasswordReused => ApiError::validation(
                "password_reused",
                "choose a password you have not used recently",
            )
            .with_field("new_password"),
            E::ChannelNotAllowed => ApiError::validation(
                "channel_not_allowed",
                "this flow cannot switch to that channel",
            )
            .with_field("channel"),
            E::WrongPassword => invalid_password(),
            E::SecondFactorRequired => second_factor_required(),
            E::StepUpRequired => ApiError::other(
                StatusCode::FORBIDDEN,
                "step_up_required",
                "prove a second factor again first (POST /v1/me/step-up; the password when no factor is enrolled)",
            ),
            E::ContactUnchanged => {
                ApiError::validation("contact_unchanged", "that is already the account's contact")
            }
            E::RecoveryStage => ApiError::other(
                StatusCode::CONFLICT,
                "wrong_step",
                "the recovery is not at this step; see GET /v1/flows/{flow_id}",
            ),
            E::RecoveryHold { until } => ApiError::rate_limited(
                "hold_not_over",
                "the recovery hold has not ended",
                seconds_until(until, Utc::now()),
            )
            .with_status(StatusCode::CONFLICT),
            E::HighRiskCooldown { until } => high_risk_cooldown(until),
            E::NoSecondFactor => conflict("no_second_factor", "no second factor is enrolled"),
            E::EmailNotVerified => conflict(
                "email_not_verified",
                "verify the account's email address first: the confirmation code goes there",
            ),
            E::AddressAlreadyListed => conflict(
                "address_already_listed",
                "that address is already on the whitelist",
            ),
            E::TooManyAddresses => conflict(
                "too_many_addresses",
                "the whitelist is full; remove an address first",
            ),
            E::AddressUnknown => ApiError::not_found("no such withdrawal address"),
            E::ApiKeyUnknown => ApiError::not_found("no such API key (or revoked, or expired)"),
            E::TooManyApiKeys => conflict(
                "too_many_api_keys",
                "the account has as many API keys as allowed; revoke one first",
            ),
            E::AlreadyEnrolled => conflict("already_enrolled", "a second factor is already enrolled"),
            E::NoPendingEnrolment => conflict("no_pending_enrolment", "start the enrolment first"),
            E::InvalidSecondFactor => ApiError::validation(
                "invalid_second_factor",
                "the code does not match; check the app's clock and try the current code",
            )
            .with_field("code"),
            E::ChallengeInvalid => invalid_challenge(),
            E::SecurityKeyUnknown => ApiError::not_found("no such security key"),
            E::PasskeyUnknown => ApiError::not_found("no such passkey"),
            E::TooManyPasskeys => conflict(
                "too_many_passkeys",
                "the account has as many passkeys as allowed; remove one first",
            ),
            E::TooManySecurityKeys => conflict(
                "too_many_security_keys",
                "the account has as many security keys as allowed; remove one first",
            ),
            // Sign-in re-resolves a moved identifier once, then answers like a wrong password.
            E::IdentifierMoved => ApiError::invalid_credentials(),
            E::ContactNotReleasable => conflict(
                "contact_not_releasable",
                "that contact belongs to an account and cannot be released",
            ),
            E::NoIdentifier => {
                ApiError::bad_request("an email or a phone is required").with_field("identifier")
            }
            E::AlreadyFrozen => conflict("already_frozen", "the account is frozen already"),
            E::NotFrozen => conflict("not_frozen", "the account is not frozen"),
            E::FreezeLinkUsed => ApiError::other(
                StatusCode::GONE,
                "freeze_link_used",
                "this freeze link was used already; sign in and use POST /v1/me/freeze, or use the link of a newer message",
            ),
            E::FreezeLinkExpired => ApiError::other(
                StatusCode::GONE,
                "freeze_link_expired",
                "this freeze link is more than 7 days old; sign in and use POST /v1/me/freeze, or use the link of a newer message",
            ),
            E::Frozen => account_frozen(),
            // Fresh random ids collide only by a fault: retryable.
            E::AlreadyRegistered => ApiError::unavailable(),
            // Never the caller's fault: the server built a wrong command or the hasher failed.
            E::NotAnOutcome | E::Hashing(_) => ApiError::internal(e),
        }
    }
}

fn conflict(code: &'static str, message: &'static str) -> ApiError {
    ApiError::other(StatusCode::CONFLICT, code, message)
}

/// 403 for the right password on a frozen account: what to do next.
pub fn account_frozen() -> ApiError {
    ApiError::other(
        StatusCode::FORBIDDEN,
        "account_frozen",
        "this account is frozen: nobody can sign in until it is unfrozen. To unfreeze it, ask for a code with POST /v1/unfreeze {identifier} and confirm it with your second factor (POST /v1/unfreeze/confirm), then the code sent to your other verified contact if you have one; without your second factor, start the lost-2FA review (POST /v1/recovery/lost-2fa)",
    )
    .with_next_action("unfreeze")
}

/// 404 for a freeze link this server did not make (forged, altered, another kind of token).
pub fn freeze_link_invalid() -> ApiError {
    ApiError::other(
        StatusCode::NOT_FOUND,
        "freeze_link_invalid",
        "this freeze link is not valid; sign in and use POST /v1/me/freeze, or use the link of a newer message",
    )
}

/// 401 for a sign-in challenge that is unknown, used or expired.
pub fn invalid_challenge() -> ApiError {
    ApiError::other(
        StatusCode::UNAUTHORIZED,
        "invalid_challenge",
        "the sign-in challenge is unknown, used or expired; sign in again",
    )
}

/// 403 for a wrong or missing password in a proof.
pub fn invalid_password() -> ApiError {
    ApiError::other(
        StatusCode::FORBIDDEN,
        "invalid_password",
        "the password is incorrect",
    )
    .with_field("password")
}

/// 403 while a high-risk cooldown runs, with `retry_after`.
pub fn high_risk_cooldown(until: DateTime<Utc>) -> ApiError {
    ApiError::rate_limited(
        "high_risk_cooldown",
        "high-risk changes are paused after a recent security change; see GET /v1/me/restrictions",
        (until - Utc::now()).num_seconds() + 1,
    )
    .with_status(StatusCode::FORBIDDEN)
}

/// 403: the action needs a current second factor (in `proof`), or an enrolled one.
pub fn second_factor_required() -> ApiError {
    ApiError::other(
        StatusCode::FORBIDDEN,
        "second_factor_required",
        "this change needs a current second factor in `proof` (or, where none is enrolled, an enrolled one first)",
    )
    .with_field("proof")
}

/// 404 for a flow id that is unknown, forged or of another kind.
pub fn flow_not_found() -> ApiError {
    ApiError::other(
        StatusCode::NOT_FOUND,
        "flow_not_found",
        "no such flow; start again",
    )
}

/// 410 for a code that can no longer be used.
pub fn code_unusable(status: CodeStatus) -> ApiError {
    let (code, message) = match status {
        CodeStatus::Used => ("code_used", "this code was already used"),
        CodeStatus::Exhausted => ("code_exhausted", "too many wrong codes; ask for a new code"),
        CodeStatus::Expired => ("code_expired", "the code expired; ask for a new code"),
        // An active code is never refused as unusable; a newer code is what replaces one.
        CodeStatus::Superseded | CodeStatus::Active => (
            "code_superseded",
            "a newer code was sent; use the latest one",
        ),
    };
    ApiError::other(StatusCode::GONE, code, message)
}
