//! Server secrets: one master key, sub-keys derived from it (HKDF-SHA256), and per-account data
//! keys wrapped under the key-encryption sub-key.
//!
//! Personal data (email, phone) is sealed under the account's data key, so destroying that key
//! erases it while the events that carry the ciphertext stay (crypto-shredding). Lookups go through
//! an HMAC of the normalised identifier, so the store never holds an identifier in clear.
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

use gatehouse_domain::contact::{Contact, ContactKind, SealedContact};

/// Length of the master key in bytes (64 hex characters).
pub const MASTER_KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Version prefix of sealed values, so the scheme can change without ambiguity.
const SEALED_PREFIX: &str = "v1.";

/// Key handling failures. Messages never include key material.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    /// The configured master key is not 64 hex characters.
    #[error("GATEHOUSE_MASTER_KEY must be 64 hex characters (32 bytes); generate one with `gatehouse keygen`")]
    MalformedMasterKey,
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
    /// A wrapped key or sealed value failed authentication (wrong master key or tampering).
    #[error("sealed data failed authentication")]
    Unseal,
}

/// Keys derived from the master key.
pub struct Keys {
    lookup: Hmac<Sha256>,
    fingerprint: String,
    kek: XChaCha20Poly1305,
    code_verifier: Hmac<Sha256>,
    code_delivery: XChaCha20Poly1305,
    flow_token: XChaCha20Poly1305,
    webhook_secret: XChaCha20Poly1305,
    /// Seals the pages' cookies (its own key: no cookie opens as a token, nor a token as a
    /// cookie).
    cookie: XChaCha20Poly1305,
    /// Makes the pages' CSRF form tokens from the browser's CSRF secret.
    csrf: Hmac<Sha256>,
}

/// Bytes a sealed token's plaintext is padded to, so that tokens of accounts and of unknown
/// identifiers (whose aggregate ids are longer) have the same length.
const TOKEN_PLAINTEXT: usize = 112;

/// The kinds of sealed tokens the server hands out. Each kind has its own prefix, and its
/// prefix is the associated data it is sealed under: a token of one kind re-labelled as another
/// (`fl1.X` sent as `ch1.X`) fails authentication instead of naming the same aggregate and id.
/// A new kind of token (device, freeze link, …) gets a variant here, never another kind's.
///
/// (WebAuthn ceremony ids are not sealed tokens: they are random ids of server-side rows bound to
/// one account and one purpose, taken once; see `webauthn::take_ceremony`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A self-service flow (verification, forgot password, unlock, lost second factor,
    /// whitelist address): `fl1.`.
    Flow,
    /// A sign-in waiting for its second factor: `ch1.`.
    Challenge,
    /// A trusted device (OWASP device cookie): `dv1.`, followed by `.` and the token's secret.
    Device,
    /// A "this wasn't me" freeze link in a security notice: `fz1.` (single use, 7 days).
    FreezeLink,
}

impl TokenKind {
    /// Every kind (for tests that check they are all distinct).
    pub const ALL: [TokenKind; 4] = [
        TokenKind::Flow,
        TokenKind::Challenge,
        TokenKind::Device,
        TokenKind::FreezeLink,
    ];

    /// The wire prefix; also the associated data (unchanged for flows since version 1, so flow
    /// ids issued before kinds were separated keep working).
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Flow => "fl1.",
            Self::Challenge => "ch1.",
            Self::Device => "dv1.",
            Self::FreezeLink => "fz1.",
        }
    }

    fn associated_data(self) -> &'static [u8] {
        self.prefix().as_bytes()
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

/// Draws `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| KeyError::Random)?;
    Ok(bytes)
}

/// SHA-256 (hex) of a token's secret part (full entropy: a fast hash is right).
pub fn hash_secret(secret: &str) -> String {
    use sha2::Digest as _;
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A fresh master key as 64 hex characters.
pub fn generate_master_key_hex() -> Result<String, KeyError> {
    Ok(hex::encode(random_bytes::<MASTER_KEY_LEN>()?))
}

impl Keys {
    /// Derives the sub-keys from a 64-hex-character master key.
    pub fn from_master_hex(master_hex: &str) -> Result<Self, KeyError> {
        let master = hex::decode(master_hex.trim()).map_err(|_| KeyError::MalformedMasterKey)?;
        if master.len() != MASTER_KEY_LEN {
            return Err(KeyError::MalformedMasterKey);
        }
        let hk = Hkdf::<Sha256>::new(Some(b"gatehouse"), &master);
        let mut lookup = [0u8; 32];
        let mut kek = [0u8; 32];
        // Both lengths are valid for HKDF-SHA256 (at most 255 * 32 bytes), so expand cannot fail.
        hk.expand(b"gatehouse/identifier-lookup/v1", &mut lookup)
            .map_err(|_| KeyError::MalformedMasterKey)?;
        hk.expand(b"gatehouse/key-encryption/v1", &mut kek)
            .map_err(|_| KeyError::MalformedMasterKey)?;
        let mut check = [0u8; 16];
        hk.expand(b"gatehouse/key-check/v1", &mut check)
            .map_err(|_| KeyError::MalformedMasterKey)?;
        let kek =
            XChaCha20Poly1305::new_from_slice(&kek).map_err(|_| KeyError::MalformedMasterKey)?;
        let derive = |label: &[u8]| -> Result<[u8; 32], KeyError> {
            let mut key = [0u8; 32];
            hk.expand(label, &mut key)
                .map_err(|_| KeyError::MalformedMasterKey)?;
            Ok(key)
        };
        let code_verifier = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&derive(
            b"gatehouse/one-time-code-verifier/v1",
        )?)
        .map_err(|_| KeyError::MalformedMasterKey)?;
        let code_delivery =
            XChaCha20Poly1305::new_from_slice(&derive(b"gatehouse/one-time-code-delivery/v1")?)
                .map_err(|_| KeyError::MalformedMasterKey)?;
        let flow_token = XChaCha20Poly1305::new_from_slice(&derive(b"gatehouse/flow-token/v1")?)
            .map_err(|_| KeyError::MalformedMasterKey)?;
        let webhook_secret =
            XChaCha20Poly1305::new_from_slice(&derive(b"gatehouse/webhook-secret/v1")?)
                .map_err(|_| KeyError::MalformedMasterKey)?;
        let cookie = XChaCha20Poly1305::new_from_slice(&derive(b"gatehouse/ui-cookie/v1")?)
            .map_err(|_| KeyError::MalformedMasterKey)?;
        let csrf =
            <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&derive(b"gatehouse/ui-csrf/v1")?)
                .map_err(|_| KeyError::MalformedMasterKey)?;
        let lookup = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&lookup)
            .map_err(|_| KeyError::MalformedMasterKey)?;
        Ok(Self {
            cookie,
            csrf,
            lookup,
            kek,
            fingerprint: hex::encode(check),
            code_verifier,
            code_delivery,
            flow_token,
            webhook_secret,
        })
    }

    /// A fingerprint that identifies the master key without revealing it (stored to detect a
    /// server started with the wrong key).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The keyed lookup hash (HMAC-SHA256, hex) of a normalised identifier.
    pub fn lookup(&self, normalized_identifier: &str) -> String {
        let mut mac = self.lookup.clone();
        mac.update(normalized_identifier.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The verifier of a one-time code: an HMAC under a server key, bound to its flow, so the
    /// event store alone cannot be used to recover a code by trying all of them.
    pub fn code_verifier(&self, flow_id: uuid::Uuid, code: &str) -> String {
        let mut mac = self.code_verifier.clone();
        mac.update(flow_id.as_bytes());
        mac.update(b":");
        mac.update(code.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The verifier of a backup code, bound to its account (same key as one-time codes, another
    /// domain of input).
    pub fn backup_code_verifier(&self, account_id: &str, code: &str) -> String {
        let mut mac = self.code_verifier.clone();
        mac.update(b"backup-code:");
        mac.update(account_id.as_bytes());
        mac.update(b":");
        mac.update(code.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The verifier of an API key's secret, bound to its key id (same key as one-time codes,
    /// another domain of input).
    pub fn api_key_verifier(&self, key_id: uuid::Uuid, secret: &str) -> String {
        let mut mac = self.code_verifier.clone();
        mac.update(b"api-key:");
        mac.update(key_id.as_bytes());
        mac.update(b":");
        mac.update(secret.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Seals a code for the delivery queue (bound to its code id).
    pub fn seal_code(&self, code_id: uuid::Uuid, code: &str) -> Result<String, KeyError> {
        let sealed = seal_bytes(&self.code_delivery, code.as_bytes(), code_id.as_bytes())?;
        Ok(base64_url(&sealed))
    }

    /// Opens a code sealed by [`Keys::seal_code`].
    pub fn open_code(&self, code_id: uuid::Uuid, sealed: &str) -> Result<String, KeyError> {
        let bytes = base64_decode(sealed)?;
        let plain = open_bytes(&self.code_delivery, &bytes, code_id.as_bytes())?;
        String::from_utf8(plain).map_err(|_| KeyError::Unseal)
    }

    /// Seals a webhook signing secret at rest, bound to its subscription and secret ids.
    pub fn seal_webhook_secret(
        &self,
        webhook_id: &str,
        secret_id: uuid::Uuid,
        secret: &[u8],
    ) -> Result<String, KeyError> {
        let aad = format!("webhook-secret/{webhook_id}/{secret_id}");
        let sealed = seal_bytes(&self.webhook_secret, secret, aad.as_bytes())?;
        Ok(base64_url(&sealed))
    }

    /// Opens a secret sealed by [`Keys::seal_webhook_secret`] with the same ids.
    pub fn open_webhook_secret(
        &self,
        webhook_id: &str,
        secret_id: uuid::Uuid,
        sealed: &str,
    ) -> Result<Vec<u8>, KeyError> {
        let aad = format!("webhook-secret/{webhook_id}/{secret_id}");
        open_bytes(
            &self.webhook_secret,
            &base64_decode(sealed)?,
            aad.as_bytes(),
        )
    }

    /// A sealed token of `kind` naming an aggregate and an id (flow, challenge, …), of one fixed
    /// length whatever the aggregate.
    pub fn seal_token(
        &self,
        kind: TokenKind,
        aggregate_id: &str,
        id: uuid::Uuid,
    ) -> Result<String, KeyError> {
        let mut plain = Vec::with_capacity(TOKEN_PLAINTEXT);
        plain.extend_from_slice(id.as_bytes());
        plain.extend_from_slice(aggregate_id.as_bytes());
        if plain.len() > TOKEN_PLAINTEXT {
            return Err(KeyError::Unseal);
        }
        plain.resize(TOKEN_PLAINTEXT, 0);
        let sealed = seal_bytes(&self.flow_token, &plain, kind.associated_data())?;
        Ok(format!("{}{}", kind.prefix(), base64_url(&sealed)))
    }

    /// The aggregate and id a token of `kind` names; `None` for anything this server did not
    /// seal as that kind (forged, altered, or a token of another kind).
    pub fn open_token(&self, kind: TokenKind, token: &str) -> Option<(String, uuid::Uuid)> {
        let body = token.strip_prefix(kind.prefix())?;
        if body.len() > 256 {
            return None;
        }
        let bytes = base64_decode(body).ok()?;
        let plain = open_bytes(&self.flow_token, &bytes, kind.associated_data()).ok()?;
        let (id, rest) = plain.split_at_checked(16)?;
        let id = uuid::Uuid::from_slice(id).ok()?;
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        let aggregate = String::from_utf8(rest[..end].to_vec()).ok()?;
        Some((aggregate, id))
    }

    /// An opaque, authenticated flow id naming the aggregate that holds the flow.
    pub fn flow_token(&self, aggregate_id: &str, flow_id: uuid::Uuid) -> Result<String, KeyError> {
        self.seal_token(TokenKind::Flow, aggregate_id, flow_id)
    }

    /// The aggregate and flow a flow id names; `None` for anything not made by this server as a
    /// flow id.
    pub fn open_flow_token(&self, token: &str) -> Option<(String, uuid::Uuid)> {
        self.open_token(TokenKind::Flow, token)
    }

    /// An opaque sign-in challenge id (its own kind: never accepted as a flow id, nor a flow id
    /// as a challenge).
    pub fn challenge_token(
        &self,
        aggregate_id: &str,
        challenge_id: uuid::Uuid,
    ) -> Result<String, KeyError> {
        self.seal_token(TokenKind::Challenge, aggregate_id, challenge_id)
    }

    /// The aggregate and challenge a challenge token names.
    pub fn open_challenge_token(&self, token: &str) -> Option<(String, uuid::Uuid)> {
        self.open_token(TokenKind::Challenge, token)
    }

    /// A freeze link's token, minted when a notice is sent (never stored): the account and a
    /// link id whose first 8 bytes are the minute it was minted (so the aggregate can refuse it
    /// past its lifetime) and the rest random (so each link is used once).
    pub fn freeze_link_token(
        &self,
        aggregate_id: &str,
        issued_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, KeyError> {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&issued_at.timestamp().to_be_bytes());
        id[8..].copy_from_slice(&random_bytes::<8>()?);
        self.seal_token(
            TokenKind::FreezeLink,
            aggregate_id,
            uuid::Uuid::from_bytes(id),
        )
    }

    /// The account, link id and mint time a freeze link names; `None` for anything this server
    /// did not seal as a freeze link (forged, altered, another kind of token).
    pub fn open_freeze_link(
        &self,
        token: &str,
    ) -> Option<(String, uuid::Uuid, chrono::DateTime<chrono::Utc>)> {
        let (aggregate, id) = self.open_token(TokenKind::FreezeLink, token)?;
        let seconds = i64::from_be_bytes(id.as_bytes()[..8].try_into().ok()?);
        let issued_at = chrono::DateTime::from_timestamp(seconds, 0)?;
        Some((aggregate, id, issued_at))
    }

    /// A device token: the sealed account and device (its own kind), then `.` and the secret
    /// whose hash the account keeps.
    pub fn device_token(
        &self,
        aggregate_id: &str,
        device_id: uuid::Uuid,
        secret: &str,
    ) -> Result<String, KeyError> {
        let sealed = self.seal_token(TokenKind::Device, aggregate_id, device_id)?;
        Ok(format!("{sealed}.{secret}"))
    }

    /// The aggregate, the device and the secret's hash a device token names; `None` for anything
    /// this server did not seal as a device token (forged, altered, another kind of token).
    pub fn open_device_token(&self, token: &str) -> Option<(String, uuid::Uuid, String)> {
        let (sealed, secret) = token.rsplit_once('.')?;
        if secret.len() != 43
            || !secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        let (aggregate, device_id) = self.open_token(TokenKind::Device, sealed)?;
        Some((aggregate, device_id, hash_secret(secret)))
    }

    /// Seals a page cookie's value under the cookie key, bound to the cookie's purpose (`aad`):
    /// a value sealed for one cookie does not open as another.
    pub fn seal_cookie(&self, aad: &[u8], value: &[u8]) -> Result<String, KeyError> {
        Ok(base64_url(&seal_bytes(&self.cookie, value, aad)?))
    }

    /// Opens a value sealed by [`Keys::seal_cookie`] for the same purpose; `None` for anything
    /// else (forged, altered, another cookie's, a token).
    pub fn open_cookie(&self, aad: &[u8], sealed: &str) -> Option<Vec<u8>> {
        if sealed.len() > 2048 {
            return None;
        }
        open_bytes(&self.cookie, &base64_decode(sealed).ok()?, aad).ok()
    }

    /// The CSRF form token of a browser's CSRF secret (HMAC-SHA256, hex).
    pub fn csrf_token(&self, secret: &[u8]) -> String {
        let mut mac = self.csrf.clone();
        mac.update(secret);
        hex::encode(mac.finalize().into_bytes())
    }

    /// A fresh data key for a new account, and its wrapped form for storage.
    pub fn new_data_key(&self, account_id: &str) -> Result<(DataKey, Vec<u8>), KeyError> {
        let key = random_bytes::<32>()?;
        let wrapped = seal_bytes(&self.kek, &key, account_id.as_bytes())?;
        Ok((DataKey::from_bytes(&key)?, wrapped))
    }

    /// Unwraps a stored data key; the account id is bound as associated data.
    pub fn unwrap_data_key(&self, account_id: &str, wrapped: &[u8]) -> Result<DataKey, KeyError> {
        let key = open_bytes(&self.kek, wrapped, account_id.as_bytes())?;
        DataKey::from_bytes(&key)
    }
}

/// One account's data key.
pub struct DataKey(XChaCha20Poly1305);

impl DataKey {
    fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        XChaCha20Poly1305::new_from_slice(bytes)
            .map(Self)
            .map_err(|_| KeyError::Unseal)
    }

    /// Seals a contact: ciphertext under this key, bound to the account and the contact's kind.
    pub fn seal(
        &self,
        keys: &Keys,
        account_id: &str,
        contact: &Contact,
    ) -> Result<SealedContact, KeyError> {
        let aad = format!("{account_id}/{}", contact.kind().as_str());
        let sealed = seal_bytes(&self.0, contact.as_str().as_bytes(), aad.as_bytes())?;
        Ok(SealedContact {
            sealed: format!("{SEALED_PREFIX}{}", base64_url(&sealed)),
            lookup: keys.lookup(contact.as_str()),
        })
    }

    /// Seals free text (e.g. the anti-phishing phrase) under a label bound as associated data.
    pub fn seal_text(&self, account_id: &str, label: &str, text: &str) -> Result<String, KeyError> {
        let aad = format!("{account_id}/{label}");
        let sealed = seal_bytes(&self.0, text.as_bytes(), aad.as_bytes())?;
        Ok(format!("{SEALED_PREFIX}{}", base64_url(&sealed)))
    }

    /// Opens text sealed by [`DataKey::seal_text`] with the same label.
    pub fn open_text(
        &self,
        account_id: &str,
        label: &str,
        sealed: &str,
    ) -> Result<String, KeyError> {
        let body = sealed.strip_prefix(SEALED_PREFIX).ok_or(KeyError::Unseal)?;
        let bytes = base64_decode(body)?;
        let aad = format!("{account_id}/{label}");
        let plain = open_bytes(&self.0, &bytes, aad.as_bytes())?;
        String::from_utf8(plain).map_err(|_| KeyError::Unseal)
    }

    /// Opens a sealed contact value of the given kind.
    pub fn open(
        &self,
        account_id: &str,
        kind: ContactKind,
        sealed: &str,
    ) -> Result<String, KeyError> {
        let body = sealed.strip_prefix(SEALED_PREFIX).ok_or(KeyError::Unseal)?;
        let bytes = base64_decode(body)?;
        let aad = format!("{account_id}/{}", kind.as_str());
        let plain = open_bytes(&self.0, &bytes, aad.as_bytes())?;
        String::from_utf8(plain).map_err(|_| KeyError::Unseal)
    }
}

fn base64_decode(text: &str) -> Result<Vec<u8>, KeyError> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| KeyError::Unseal)
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `nonce || ciphertext` with a random 24-byte nonce (XChaCha: random nonces are safe).
fn seal_bytes(cipher: &XChaCha20Poly1305, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
    let nonce_bytes = random_bytes::<NONCE_LEN>()?;
    let nonce = XNonce::try_from(&nonce_bytes[..]).map_err(|_| KeyError::Random)?;
    let mut out = nonce_bytes.to_vec();
    let ciphertext = cipher
        .encrypt(&nonce, Payload { msg: plain, aad })
        .map_err(|_| KeyError::Random)?;
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

fn open_bytes(cipher: &XChaCha20Poly1305, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
    if sealed.len() < NONCE_LEN {
        return Err(KeyError::Unseal);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce).map_err(|_| KeyError::Unseal)?;
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| KeyError::Unseal)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn test_master_key_must_be_64_hex_characters() {
        assert_eq!(
            Keys::from_master_hex("abcd").unwrap_err(),
            KeyError::MalformedMasterKey
        );
        assert_eq!(
            Keys::from_master_hex(&"zz".repeat(32)).unwrap_err(),
            KeyError::MalformedMasterKey
        );
        assert!(Keys::from_master_hex(MASTER).is_ok());
    }

    #[test]
    fn test_fingerprint_identifies_the_key_without_revealing_it() {
        let a = Keys::from_master_hex(MASTER).unwrap();
        let b = Keys::from_master_hex(&generate_master_key_hex().unwrap()).unwrap();
        assert_eq!(
            a.fingerprint(),
            Keys::from_master_hex(MASTER).unwrap().fingerprint()
        );
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert!(!MASTER.contains(a.fingerprint()));
    }

    #[test]
    fn test_lookup_is_keyed_and_deterministic() {
        let a = Keys::from_master_hex(MASTER).unwrap();
        let b = Keys::from_master_hex(&generate_master_key_hex().unwrap()).unwrap();
        assert_eq!(a.lookup("ann@example.com"), a.lookup("ann@example.com"));
        assert_ne!(a.lookup("ann@example.com"), b.lookup("ann@example.com"));
        assert_ne!(a.lookup("ann@example.com"), a.lookup("bob@example.com"));
    }

    #[test]
    fn test_flow_tokens_round_trip_have_one_length_and_resist_forgery() {
        let keys = Keys::from_master_hex(MASTER).unwrap();
        let flow = uuid::Uuid::from_u128(42);
        let short = keys
            .flow_token("0b7c7d4e-0000-4000-8000-000000000001", flow)
            .unwrap();
        let long = keys
            .flow_token(&format!("unknown-{}", "a".repeat(64)), flow)
            .unwrap();
        assert_eq!(short.len(), long.len());
        assert_eq!(
            keys.open_flow_token(&short),
            Some(("0b7c7d4e-0000-4000-8000-000000000001".to_string(), flow))
        );
        let other = Keys::from_master_hex(&generate_master_key_hex().unwrap()).unwrap();
        assert_eq!(other.open_flow_token(&short), None);
        let mut forged = short.clone().into_bytes();
        let last = forged.len() - 3;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            keys.open_flow_token(&String::from_utf8(forged).unwrap()),
            None
        );
        assert_eq!(keys.open_flow_token("fl1.!!"), None);
    }

    #[test]
    fn test_freeze_links_carry_their_mint_time_are_each_distinct_and_open_as_nothing_else() {
        let keys = Keys::from_master_hex(MASTER).unwrap();
        let aggregate = "0b7c7d4e-0000-4000-8000-000000000001";
        let at = chrono::DateTime::from_timestamp(1_767_322_800, 0).unwrap();
        let a = keys.freeze_link_token(aggregate, at).unwrap();
        let b = keys.freeze_link_token(aggregate, at).unwrap();
        assert!(a.starts_with("fz1."), "{a}");
        let (opened, link_a, issued) = keys.open_freeze_link(&a).unwrap();
        assert_eq!((opened.as_str(), issued), (aggregate, at));
        let (_, link_b, _) = keys.open_freeze_link(&b).unwrap();
        assert_ne!(link_a, link_b, "each message's link is its own");
        assert_eq!(keys.open_flow_token(&a), None);
        assert_eq!(keys.open_challenge_token(&a), None);
        let flow = keys.flow_token(aggregate, link_a).unwrap();
        assert_eq!(keys.open_freeze_link(&flow), None);
        assert_eq!(
            keys.open_freeze_link(&flow.replacen("fl1.", "fz1.", 1)),
            None
        );
    }

    #[test]
    fn test_a_token_of_one_kind_never_opens_as_another() {
        // Given a token of each kind for the same aggregate and id,
        let keys = Keys::from_master_hex(MASTER).unwrap();
        let id = uuid::Uuid::from_u128(42);
        let aggregate = "0b7c7d4e-0000-4000-8000-000000000001";
        for kind in TokenKind::ALL {
            let token = keys.seal_token(kind, aggregate, id).unwrap();
            assert!(token.starts_with(kind.prefix()));
            // it opens as its own kind,
            assert_eq!(
                keys.open_token(kind, &token),
                Some((aggregate.to_string(), id))
            );
            for other in TokenKind::ALL.into_iter().filter(|o| *o != kind) {
                assert_ne!(kind.prefix(), other.prefix());
                // when it is sent as another kind, unchanged or re-prefixed, it does not open.
                assert_eq!(keys.open_token(other, &token), None);
                let relabelled = format!("{}{}", other.prefix(), &token[kind.prefix().len()..]);
                assert_eq!(
                    keys.open_token(other, &relabelled),
                    None,
                    "{kind:?} as {other:?}"
                );
            }
        }
        // The named helpers are the same kinds.
        let flow = keys.flow_token(aggregate, id).unwrap();
        let challenge = keys.challenge_token(aggregate, id).unwrap();
        assert_eq!(
            keys.open_challenge_token(&format!("ch1.{}", &flow[4..])),
            None
        );
        assert_eq!(
            keys.open_flow_token(&format!("fl1.{}", &challenge[4..])),
            None
        );
        assert!(keys.open_challenge_token(&challenge).is_some());
        assert!(keys.open_flow_token(&flow).is_some());
    }

    #[test]
    fn test_a_device_token_opens_only_as_a_device_token_with_its_secret() {
        let keys = Keys::from_master_hex(MASTER).unwrap();
        let id = uuid::Uuid::from_u128(7);
        let aggregate = "0b7c7d4e-0000-4000-8000-000000000001";
        let secret = "A".repeat(43);
        let token = keys.device_token(aggregate, id, &secret).unwrap();
        assert!(token.starts_with("dv1."));
        assert_eq!(
            keys.open_device_token(&token),
            Some((aggregate.to_string(), id, hash_secret(&secret)))
        );
        let (sealed, _) = token.rsplit_once('.').unwrap();
        // A flow or challenge token with a secret appended, or relabelled, is not a device token;
        let flow = keys.flow_token(aggregate, id).unwrap();
        assert_eq!(keys.open_device_token(&format!("{flow}.{secret}")), None);
        assert_eq!(
            keys.open_device_token(&format!("dv1.{}.{secret}", &flow[4..])),
            None
        );
        // nor is a device token opened as a flow, nor one with a malformed secret.
        assert_eq!(keys.open_flow_token(&format!("fl1.{}", &sealed[4..])), None);
        assert_eq!(keys.open_device_token(sealed), None);
        assert_eq!(keys.open_device_token(&format!("{sealed}.short")), None);
    }

    #[test]
    fn test_code_verifier_is_keyed_and_bound_to_the_flow() {
        let a = Keys::from_master_hex(MASTER).unwrap();
        let b = Keys::from_master_hex(&generate_master_key_hex().unwrap()).unwrap();
        let f1 = uuid::Uuid::from_u128(1);
        let f2 = uuid::Uuid::from_u128(2);
        assert_eq!(a.code_verifier(f1, "123456"), a.code_verifier(f1, "123456"));
        assert_ne!(a.code_verifier(f1, "123456"), a.code_verifier(f2, "123456"));
        assert_ne!(a.code_verifier(f1, "123456"), b.code_verifier(f1, "123456"));
        let sealed = a.seal_code(f1, "123456").unwrap();
        assert!(!sealed.contains("123456"));
        assert_eq!(a.open_code(f1, &sealed).unwrap(), "123456");
        assert!(a.open_code(f2, &sealed).is_err());
    }

    #[test]
    fn test_sealed_contact_round_trips_and_is_bound_to_its_account() {
        let keys = Keys::from_master_hex(MASTER).unwrap();
        let (key, wrapped) = keys.new_data_key("acct-1").unwrap();
        let email = Contact::email("Ann@Example.com").unwrap();
        let sealed = key.seal(&keys, "acct-1", &email).unwrap();
        assert!(!sealed.sealed.contains("example"));
        let reopened = keys.unwrap_data_key("acct-1", &wrapped).unwrap();
        assert_eq!(
            reopened
                .open("acct-1", ContactKind::Email, &sealed.sealed)
                .unwrap(),
            email.as_str()
        );
        // Another account's id, another kind, or a tampered byte: refused.
        assert_eq!(
            reopened
                .open("acct-2", ContactKind::Email, &sealed.sealed)
                .unwrap_err(),
            KeyError::Unseal
        );
        assert_eq!(
            reopened
                .open("acct-1", ContactKind::Phone, &sealed.sealed)
                .unwrap_err(),
            KeyError::Unseal
        );
        assert!(keys.unwrap_data_key("acct-2", &wrapped).is_err());
        let mut tampered = wrapped.clone();
        tampered[30] ^= 1;
        assert!(keys.unwrap_data_key("acct-1", &tampered).is_err());
    }
}
