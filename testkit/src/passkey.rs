//! A minimal software authenticator that holds resident (discoverable) credentials and verifies
//! its user: what a phone or a password manager does for a passkey, enough for the end-to-end
//! tests to play the browser and the authenticator over HTTP.
//!
//! `webauthn-authenticator-rs`'s `SoftPasskey` and `SoftToken` refuse resident keys and user
//! verification, so this one is written here: ES256 keys (P-256, already in the tree under
//! webauthn-rs), `none` attestation, authenticator data with the UP, UV and AT flags and a
//! signature counter, and the `userHandle` in every assertion. The client data is built as a
//! browser builds it, with the origin the test chooses (so another origin can be tried).
//!
//! It answers the JSON options the server sends (`{publicKey: …}`) with the JSON credential the
//! server takes (`RegisterPublicKeyCredential`, `PublicKeyCredential`).
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

/// One credential the authenticator holds for a relying party.
struct Resident {
    rp_id: String,
    credential_id: Vec<u8>,
    key: SigningKey,
    user_handle: Vec<u8>,
    counter: u32,
}

/// The software passkey authenticator.
pub struct SoftPasskey {
    origin: String,
    credentials: Vec<Resident>,
    user_verification: bool,
    counter_step: u32,
}

impl SoftPasskey {
    /// An authenticator that verifies its user, for pages served from `origin`.
    pub fn new(origin: &str) -> Self {
        Self {
            origin: origin.to_string(),
            credentials: Vec::new(),
            user_verification: true,
            counter_step: 1,
        }
    }

    /// Whether it verifies its user (sets the UV flag): off, it only tests presence.
    pub fn set_user_verification(&mut self, on: bool) {
        self.user_verification = on;
    }

    /// The origin the "browser" puts in the client data.
    pub fn set_origin(&mut self, origin: &str) {
        self.origin = origin.to_string();
    }

    /// How much the signature counter moves per signature (0: it keeps no counter).
    pub fn set_counter_step(&mut self, step: u32) {
        self.counter_step = step;
    }

    /// Puts every credential's counter back to `counter` (a clone's counter).
    pub fn rewind_counters(&mut self, counter: u32) {
        for c in &mut self.credentials {
            c.counter = counter;
        }
    }

    /// How many credentials it holds.
    pub fn len(&self) -> usize {
        self.credentials.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.credentials.is_empty()
    }

    /// Answers `navigator.credentials.create` options with a new resident credential.
    pub fn register(&mut self, options: &Value) -> Result<Value, String> {
        let pk = options.get("publicKey").unwrap_or(options);
        let rp_id = pk["rp"]["id"]
            .as_str()
            .ok_or("options name no rp.id")?
            .to_string();
        let challenge = pk["challenge"]
            .as_str()
            .ok_or("options have no challenge")?;
        let user_handle = decode(pk["user"]["id"].as_str().ok_or("options have no user.id")?)?;
        let es256 = pk["pubKeyCredParams"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p["alg"] == json!(-7)));
        if !es256 {
            return Err("the relying party does not accept ES256".into());
        }
        let excluded: Vec<Vec<u8>> = pk["excludeCredentials"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["id"].as_str().and_then(|id| decode(id).ok()))
                    .collect()
            })
            .unwrap_or_default();
        if self
            .credentials
            .iter()
            .any(|c| c.rp_id == rp_id && excluded.contains(&c.credential_id))
        {
            return Err("a credential of this authenticator is excluded".into());
        }
        let key = SigningKey::from_slice(&random::<32>()?).map_err(|e| e.to_string())?;
        let credential_id = random::<32>()?.to_vec();
        let point = key.verifying_key().to_sec1_point(false);
        let xy = point.as_bytes();
        if xy.len() != 65 {
            return Err("unexpected public key encoding".into());
        }
        let cose_key = cbor_map(vec![
            (cbor_int(1), cbor_int(2)),
            (cbor_int(3), cbor_int(-7)),
            (cbor_int(-1), cbor_int(1)),
            (cbor_int(-2), cbor_bytes(&xy[1..33])),
            (cbor_int(-3), cbor_bytes(&xy[33..65])),
        ]);
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(UP | AT | if self.user_verification { UV } else { 0 });
        auth_data.extend_from_slice(&0u32.to_be_bytes());
        auth_data.extend_from_slice(&[0u8; 16]);
        auth_data.extend_from_slice(&(credential_id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&credential_id);
        auth_data.extend_from_slice(&cose_key);
        let attestation_object = cbor_map(vec![
            (cbor_text("fmt"), cbor_text("none")),
            (cbor_text("attStmt"), cbor_map(Vec::new())),
            (cbor_text("authData"), cbor_bytes(&auth_data)),
        ]);
        let client_data = self.client_data("webauthn.create", challenge);
        let id = URL_SAFE_NO_PAD.encode(&credential_id);
        self.credentials.push(Resident {
            rp_id,
            credential_id,
            key,
            user_handle,
            counter: 0,
        });
        Ok(json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "attestationObject": URL_SAFE_NO_PAD.encode(attestation_object),
                "clientDataJSON": URL_SAFE_NO_PAD.encode(client_data),
                "transports": ["internal"],
            },
            "extensions": {},
        }))
    }

    /// Answers `navigator.credentials.get` options: with an empty `allowCredentials` (a
    /// discoverable sign-in), the newest resident credential for the relying party; otherwise
    /// the newest one listed. The assertion carries the credential's `userHandle`.
    pub fn sign_in(&mut self, options: &Value) -> Result<Value, String> {
        let pk = options.get("publicKey").unwrap_or(options);
        let rp_id = pk["rpId"]
            .as_str()
            .ok_or("options name no rpId")?
            .to_string();
        let challenge = pk["challenge"]
            .as_str()
            .ok_or("options have no challenge")?
            .to_string();
        let allowed: Vec<Vec<u8>> = pk["allowCredentials"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["id"].as_str().and_then(|id| decode(id).ok()))
                    .collect()
            })
            .unwrap_or_default();
        let client_data = self.client_data("webauthn.get", &challenge);
        let flags = UP | if self.user_verification { UV } else { 0 };
        let step = self.counter_step;
        let credential = self
            .credentials
            .iter_mut()
            .rev()
            .find(|c| {
                c.rp_id == rp_id && (allowed.is_empty() || allowed.contains(&c.credential_id))
            })
            .ok_or("no credential for this relying party")?;
        credential.counter = credential.counter.saturating_add(step);
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(flags);
        auth_data.extend_from_slice(&credential.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let signature: Signature = credential.key.sign(&signed);
        let id = URL_SAFE_NO_PAD.encode(&credential.credential_id);
        Ok(json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "authenticatorData": URL_SAFE_NO_PAD.encode(&auth_data),
                "clientDataJSON": URL_SAFE_NO_PAD.encode(&client_data),
                "signature": URL_SAFE_NO_PAD.encode(der_signature(&signature)),
                "userHandle": URL_SAFE_NO_PAD.encode(&credential.user_handle),
            },
            "extensions": {},
        }))
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({
            "type": kind,
            "challenge": challenge,
            "origin": self.origin,
            "crossOrigin": false,
        })
        .to_string()
        .into_bytes()
    }
}

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// Base64 as the server may write it (URL-safe or standard, padded or not).
fn decode(text: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .or_else(|_| STANDARD.decode(text))
        .map_err(|e| format!("not base64: {e}"))
}

/// ASN.1 DER `SEQUENCE { INTEGER r, INTEGER s }` of a fixed-size signature.
fn der_signature(signature: &Signature) -> Vec<u8> {
    let bytes = signature.to_bytes();
    let integer = |raw: &[u8]| {
        let trimmed: Vec<u8> = raw.iter().copied().skip_while(|b| *b == 0).collect();
        let mut value = if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
            vec![0]
        } else {
            Vec::new()
        };
        value.extend(trimmed);
        let mut out = vec![0x02, value.len() as u8];
        out.extend(value);
        out
    };
    let mut body = integer(&bytes[..32]);
    body.extend(integer(&bytes[32..]));
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

fn cbor_head(major: u8, value: u64) -> Vec<u8> {
    let m = major << 5;
    match value {
        0..=23 => vec![m | value as u8],
        24..=0xff => vec![m | 24, value as u8],
        0x100..=0xffff => {
            let mut v = vec![m | 25];
            v.extend_from_slice(&(value as u16).to_be_bytes());
            v
        }
        _ => {
            let mut v = vec![m | 26];
            v.extend_from_slice(&(value as u32).to_be_bytes());
            v
        }
    }
}

fn cbor_int(n: i64) -> Vec<u8> {
    if n >= 0 {
        cbor_head(0, n as u64)
    } else {
        cbor_head(1, (-1 - n) as u64)
    }
}

fn cbor_bytes(b: &[u8]) -> Vec<u8> {
    let mut v = cbor_head(2, b.len() as u64);
    v.extend_from_slice(b);
    v
}

fn cbor_text(s: &str) -> Vec<u8> {
    let mut v = cbor_head(3, s.len() as u64);
    v.extend_from_slice(s.as_bytes());
    v
}

fn cbor_map(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<u8> {
    let mut v = cbor_head(5, entries.len() as u64);
    for (k, val) in entries {
        v.extend(k);
        v.extend(val);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cbor_heads() {
        assert_eq!(cbor_int(-7), vec![0x26]);
        assert_eq!(cbor_int(2), vec![0x02]);
        assert_eq!(cbor_text("fmt"), vec![0x63, b'f', b'm', b't']);
        assert_eq!(cbor_bytes(&[0; 32])[..2], [0x58, 32]);
    }

    #[test]
    fn test_der_signature_is_a_sequence_of_two_integers() {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let sig: Signature = key.sign(b"message");
        let der = der_signature(&sig);
        assert_eq!(der[0], 0x30);
        assert_eq!(der[1] as usize, der.len() - 2);
        assert_eq!(der[2], 0x02);
    }
}
