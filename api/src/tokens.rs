//! Session tokens: `gh1.<account id>.<session id>.<secret>`, the secret 256 random bits in
//! base64url. Only SHA-256 of the secret is stored; the ids route the check to the right aggregate
//! without a lookup table. A fast hash is right here: the secret has full entropy, so there is
//! nothing to brute-force.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use gatehouse_domain::{DeviceGrant, SessionGrant};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

pub use crate::keys::hash_secret;
use crate::keys::{random_bytes, KeyError};

const PREFIX: &str = "gh1";

/// A token as handed to the client, with the grant the aggregate records.
pub struct IssuedToken {
    /// The bearer token (secret).
    pub token: SecretString,
    /// Session id and token hash for `AttemptLogin`.
    pub grant: SessionGrant,
    /// The secret of the device token that comes with the session (sealed into the token once
    /// the aggregate has said which device it trusted; see `Keys::device_token`).
    pub device_secret: SecretString,
}

/// Draws a new session id and secret for `account_id`.
pub fn issue(account_id: Uuid) -> Result<IssuedToken, KeyError> {
    let session_id = uuid::Builder::from_random_bytes(random_bytes::<16>()?).into_uuid();
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let token_hash = hash_secret(&secret);
    let device_id = uuid::Builder::from_random_bytes(random_bytes::<16>()?).into_uuid();
    let device_secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    Ok(IssuedToken {
        token: SecretString::from(format!("{PREFIX}.{account_id}.{session_id}.{secret}")),
        grant: SessionGrant {
            session_id,
            token_hash,
            device: DeviceGrant {
                device_id,
                token_hash: hash_secret(&device_secret),
            },
        },
        device_secret: SecretString::from(device_secret),
    })
}

/// A presented token, split into its parts (the secret already hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedToken {
    /// Account the session belongs to.
    pub account_id: Uuid,
    /// Session id.
    pub session_id: Uuid,
    /// SHA-256 (hex) of the secret.
    pub token_hash: String,
}

/// Parses a bearer token; `None` for anything malformed.
pub fn parse(token: &SecretString) -> Option<PresentedToken> {
    let mut parts = token.expose_secret().split('.');
    let (prefix, account, session, secret) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if prefix != PREFIX || parts.next().is_some() || secret.len() != 43 {
        return None;
    }
    URL_SAFE_NO_PAD.decode(secret).ok()?;
    Some(PresentedToken {
        account_id: Uuid::parse_str(account).ok()?,
        session_id: Uuid::parse_str(session).ok()?,
        token_hash: hash_secret(secret),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_issued_token_parses_back_to_its_grant() {
        let account = Uuid::new_v4();
        let issued = issue(account).unwrap();
        let parsed = parse(&issued.token).unwrap();
        assert_eq!(parsed.account_id, account);
        assert_eq!(parsed.session_id, issued.grant.session_id);
        assert_eq!(parsed.token_hash, issued.grant.token_hash);
        assert!(!issued
            .grant
            .token_hash
            .contains(issued.token.expose_secret().rsplit('.').next().unwrap()));
    }

    #[test]
    fn test_tokens_are_unique_and_malformed_ones_are_refused() {
        let a = issue(Uuid::new_v4()).unwrap();
        let b = issue(Uuid::new_v4()).unwrap();
        assert_ne!(a.grant.token_hash, b.grant.token_hash);
        for bad in ["", "gh1", "gh1.x.y.z", "gh2.00000000-0000-0000-0000-000000000000.00000000-0000-0000-0000-000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
            assert!(parse(&SecretString::from(bad)).is_none(), "{bad}");
        }
        let extra = format!("{}.extra", a.token.expose_secret());
        assert!(parse(&SecretString::from(extra)).is_none());
    }
}
