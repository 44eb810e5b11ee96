//! Security keys and passkeys (WebAuthn): the relying party, the state kept between the two
//! halves of a ceremony, the check of an assertion as a second-factor proof, and the
//! discoverable (passkey) registration and sign-in.
//!
//! The library (`webauthn-rs`) does the cryptography and the origin, RP id and challenge checks;
//! the account aggregate decides what a checked assertion means (counter, lockout).
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use gatehouse_domain::{Account, KeyCheck, MfaProof};
use gatehouse_store::{Store, StoreError};
use sqlx::Row;
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse, SecurityKey,
    SecurityKeyAuthentication, SecurityKeyRegistration, Url, Uuid, Webauthn, WebauthnBuilder,
    WebauthnError,
};

/// How long a started ceremony may be finished (the browser's own timeout is 60 s).
pub const CEREMONY_TTL_SECONDS: i64 = 300;

/// Settings of the relying party.
#[derive(Debug, Clone)]
pub struct RelyingPartySettings {
    /// Registrable domain the keys are bound to.
    pub rp_id: String,
    /// Origins the frontends run on.
    pub origins: Vec<String>,
    /// Name shown by the browser.
    pub rp_name: String,
}

/// The WebAuthn relying party.
pub struct RelyingParty {
    webauthn: Webauthn,
}

impl RelyingParty {
    /// Builds the relying party; refuses origins that are not URLs or do not belong to the
    /// RP id.
    pub fn new(settings: &RelyingPartySettings) -> Result<Self, String> {
        let origins = settings
            .origins
            .iter()
            .map(|o| {
                Url::parse(o.trim())
                    .map_err(|e| format!("GATEHOUSE_WEBAUTHN_ORIGINS: `{o}` is not a URL ({e})"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (first, rest) = origins.split_first().ok_or_else(|| {
            "GATEHOUSE_WEBAUTHN_ORIGINS must name at least one origin".to_string()
        })?;
        let mut builder = WebauthnBuilder::new(&settings.rp_id, first).map_err(|e| {
            format!(
                "GATEHOUSE_WEBAUTHN_RP_ID `{}` does not fit the origin `{first}` ({e})",
                settings.rp_id
            )
        })?;
        for origin in rest {
            builder = builder.append_allowed_origin(origin);
        }
        let webauthn = builder
            .rp_name(&settings.rp_name)
            .build()
            .map_err(|e| format!("WebAuthn settings: {e}"))?;
        Ok(Self { webauthn })
    }

    /// Starts registering a key for an account; keys it already has are excluded.
    pub fn start_registration(
        &self,
        account_id: Uuid,
        label: &str,
        existing: &[SecurityKey],
    ) -> Result<(CreationChallengeResponse, SecurityKeyRegistration), WebauthnError> {
        let exclude = existing.iter().map(|k| k.cred_id().clone()).collect();
        let (mut options, state) = self.webauthn.start_securitykey_registration(
            account_id,
            label,
            label,
            Some(exclude),
            None,
            None,
        )?;
        // The library asks for the credProtect policy "userVerificationRequired" without
        // enforcing it, while user verification is only preferred: Chromium refuses that
        // combination before it asks the key. The policy is a hint that nothing here relies on
        // (the answer's flags are checked), so the options leave it out for every frontend.
        if let Some(extensions) = options.public_key.extensions.as_mut() {
            extensions.cred_protect = None;
        }
        Ok((options, state))
    }

    /// Checks the key's answer to a registration challenge.
    pub fn finish_registration(
        &self,
        answer: &RegisterPublicKeyCredential,
        state: &SecurityKeyRegistration,
    ) -> Result<SecurityKey, WebauthnError> {
        self.webauthn.finish_securitykey_registration(answer, state)
    }

    /// Starts registering a passkey: a discoverable credential (resident key required) that
    /// verifies its user (user verification required). Keys the account already has (security
    /// keys and passkeys) are excluded.
    pub fn start_passkey_registration(
        &self,
        account_id: Uuid,
        label: &str,
        exclude: Vec<webauthn_rs::prelude::CredentialID>,
    ) -> Result<(CreationChallengeResponse, PasskeyRegistration), WebauthnError> {
        let (mut options, state) =
            self.webauthn
                .start_passkey_registration(account_id, label, label, Some(exclude))?;
        // The library asks for a non-resident key by default; a passkey that signs in without a
        // typed identifier must be discoverable.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(webauthn_rs_proto::ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        Ok((options, state))
    }

    /// Checks the authenticator's answer to a passkey registration (user verification
    /// required by the library).
    pub fn finish_passkey_registration(
        &self,
        answer: &RegisterPublicKeyCredential,
        state: &PasskeyRegistration,
    ) -> Result<Passkey, WebauthnError> {
        self.webauthn.finish_passkey_registration(answer, state)
    }

    /// Starts a discoverable sign-in: no account is named and `allowCredentials` is empty, so
    /// the options say nothing about any account (the authenticator offers the passkeys it
    /// holds for this relying party); user verification required.
    pub fn start_passkey_sign_in(
        &self,
    ) -> Result<(RequestChallengeResponse, DiscoverableAuthentication), WebauthnError> {
        let (mut options, state) = self.webauthn.start_discoverable_authentication()?;
        // The library marks the options for conditional (autofill) mediation; the frontend
        // chooses its own mediation, so the options do not impose one.
        options.mediation = None;
        Ok((options, state))
    }

    /// Starts an assertion by any of the account's keys.
    pub fn start_authentication(
        &self,
        keys: &[SecurityKey],
    ) -> Result<(RequestChallengeResponse, SecurityKeyAuthentication), WebauthnError> {
        self.webauthn.start_securitykey_authentication(keys)
    }
}

/// Credential id as Gatehouse names keys (base64url, no padding).
pub fn key_id(raw: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

/// The account's keys as the library wants them. A stored credential that no longer parses is
/// skipped (and logged) rather than locking the owner out of the others.
pub fn account_keys(account: &Account) -> Vec<SecurityKey> {
    account
        .security_keys()
        .iter()
        .filter_map(
            |(id, key)| match serde_json::from_value(key.credential.clone()) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::error!(key_id = %id, error = %e, "stored security key does not parse");
                    None
                }
            },
        )
        .collect()
}

/// What a ceremony is for: its state is only taken back for the same purpose and account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Registering a key.
    Registration,
    /// A second-factor assertion (sign-in or confirming a change).
    Assertion,
    /// Registering a passkey.
    PasskeyRegistration,
    /// A discoverable passkey sign-in: kept under no account ([`NO_ACCOUNT`]), since the
    /// account is learnt only from the answer.
    PasskeySignIn,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Assertion => "assertion",
            Self::PasskeyRegistration => "passkey_registration",
            Self::PasskeySignIn => "passkey_sign_in",
        }
    }
}

/// The account a discoverable sign-in ceremony is kept under (no account id is empty).
pub const NO_ACCOUNT: &str = "";

/// Keeps a ceremony's state until it is finished (once) or expires; answers its id.
pub async fn keep_ceremony(
    store: &Store,
    account_id: &str,
    purpose: Purpose,
    state: &impl serde::Serialize,
    now: DateTime<Utc>,
) -> Result<Uuid, StoreError> {
    let id = Uuid::new_v4();
    let state = serde_json::to_string(state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    // Expired ceremonies go as new ones come: the table stays the size of the live ones.
    sqlx::query("delete from webauthn_ceremonies where expires_ms < $1")
        .bind(now.timestamp_millis())
        .execute(store.any())
        .await?;
    sqlx::query(
        "insert into webauthn_ceremonies (ceremony_id, account_id, purpose, state, expires_ms)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(id.to_string())
    .bind(account_id)
    .bind(purpose.as_str())
    .bind(state)
    .bind((now + Duration::seconds(CEREMONY_TTL_SECONDS)).timestamp_millis())
    .execute(store.any())
    .await?;
    Ok(id)
}

/// Takes a ceremony's state back: single use (deleted as it is read), for the same account and
/// purpose, before it expires. `None` otherwise.
pub async fn take_ceremony<T: serde::de::DeserializeOwned>(
    store: &Store,
    ceremony_id: &str,
    account_id: &str,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<Option<T>, StoreError> {
    let row = sqlx::query(
        "delete from webauthn_ceremonies
         where ceremony_id = $1 and account_id = $2 and purpose = $3
         returning state, expires_ms",
    )
    .bind(ceremony_id)
    .bind(account_id)
    .bind(purpose.as_str())
    .fetch_optional(store.any())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let expires_ms: i64 = row.try_get("expires_ms")?;
    if expires_ms < now.timestamp_millis() {
        return Ok(None);
    }
    let state: String = row.try_get("state")?;
    Ok(serde_json::from_str(&state).ok())
}

/// Whether a credential id may be registered: WebAuthn wants a credential on one account only.
/// Claims it for the account when free or already this account's (a claim outlives the key when
/// every factor is removed at once, e.g. by a lost-factor recovery, and the owner may bring the
/// key back).
pub async fn claim_key(
    store: &Store,
    key_id: &str,
    account_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "insert into security_key_claims (key_id, account_id, claimed_ms) values ($1, $2, $3)
         on conflict (key_id) do update set claimed_ms = excluded.claimed_ms
          where security_key_claims.account_id = excluded.account_id",
    )
    .bind(key_id)
    .bind(account_id)
    .bind(now.timestamp_millis())
    .execute(store.any())
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Frees a credential id (the key was removed, or its registration refused).
pub async fn release_key(store: &Store, key_id: &str, account_id: &str) -> Result<(), StoreError> {
    sqlx::query("delete from security_key_claims where key_id = $1 and account_id = $2")
        .bind(key_id)
        .bind(account_id)
        .execute(store.any())
        .await?;
    Ok(())
}

/// Judges an assertion against the ceremony state: the proof the aggregate will rule on.
pub fn check_assertion(
    relying_party: &RelyingParty,
    account: &Account,
    answer: &PublicKeyCredential,
    state: &SecurityKeyAuthentication,
) -> MfaProof {
    let claimed = key_id(&answer.raw_id);
    let check = match relying_party
        .webauthn
        .finish_securitykey_authentication(answer, state)
    {
        Ok(result) => {
            let used = key_id(result.cred_id());
            let stored = account
                .security_keys()
                .get(&used)
                .and_then(|k| serde_json::from_value::<SecurityKey>(k.credential.clone()).ok());
            match stored {
                Some(mut key) => {
                    key.update_credential(&result);
                    match serde_json::to_value(&key) {
                        Ok(credential) => KeyCheck::Verified {
                            counter: result.counter(),
                            credential,
                        },
                        Err(_) => KeyCheck::Invalid,
                    }
                }
                // Removed since the challenge was made.
                None => KeyCheck::Invalid,
            }
        }
        Err(WebauthnError::CredentialPossibleCompromise) => KeyCheck::CounterRegressed,
        Err(e) => {
            tracing::info!(error = %e, "security key assertion refused");
            KeyCheck::Invalid
        }
    };
    MfaProof::SecurityKey {
        key_id: claimed,
        check,
    }
}

/// The account's passkeys as the library wants them (one that no longer parses is skipped and
/// logged).
pub fn account_passkeys(account: &Account) -> Vec<(String, Passkey)> {
    account
        .passkeys()
        .iter()
        .filter_map(
            |(id, key)| match serde_json::from_value::<Passkey>(key.credential.clone()) {
                Ok(k) => Some((id.clone(), k)),
                Err(e) => {
                    tracing::error!(key_id = %id, error = %e, "stored passkey does not parse");
                    None
                }
            },
        )
        .collect()
}

/// The account a discoverable answer names (its `userHandle`, the account id given at
/// registration) and the credential id that signed; `None` when the answer names none.
pub fn passkey_holder(
    relying_party: &RelyingParty,
    answer: &PublicKeyCredential,
) -> Option<(Uuid, String)> {
    relying_party
        .webauthn
        .identify_discoverable_authentication(answer)
        .ok()
        .map(|(account, cred_id)| (account, key_id(cred_id)))
}

/// Judges a discoverable sign-in answer against the ceremony and the account's stored passkey:
/// the check and whether the authenticator verified its user. A passkey the account does not
/// hold is `Invalid` (the aggregate records it as unknown).
pub fn check_passkey(
    relying_party: &RelyingParty,
    account: &Account,
    key_id: &str,
    answer: &PublicKeyCredential,
    state: DiscoverableAuthentication,
) -> (KeyCheck, bool) {
    let Some(mut stored) = account
        .passkeys()
        .get(key_id)
        .and_then(|k| serde_json::from_value::<Passkey>(k.credential.clone()).ok())
    else {
        return (KeyCheck::Invalid, false);
    };
    match relying_party
        .webauthn
        .finish_discoverable_authentication_v2(answer, state, &stored)
    {
        Ok(result) => {
            stored.update_credential(&result);
            match serde_json::to_value(&stored) {
                Ok(credential) => (
                    KeyCheck::Verified {
                        counter: result.counter(),
                        credential,
                    },
                    result.user_verified(),
                ),
                Err(_) => (KeyCheck::Invalid, false),
            }
        }
        Err(WebauthnError::CredentialPossibleCompromise) => (KeyCheck::CounterRegressed, false),
        Err(WebauthnError::UserNotVerified) => (KeyCheck::UserNotVerified, false),
        Err(e) => {
            tracing::info!(error = %e, "passkey assertion refused");
            (KeyCheck::Invalid, false)
        }
    }
}
