//! Standard Webhooks signing (<https://www.standardwebhooks.com/>): secrets `whsec_<base64>`,
//! and `webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`, one
//! space-separated entry per secret that signs (two during a rotation's grace period).
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Prefix of a secret as shown.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes of a secret.
pub const SECRET_BYTES: usize = 32;

/// A secret as shown to the admin: `whsec_` and the base64 of its bytes.
pub fn show_secret(bytes: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// One `v1,<signature>` entry.
pub fn signature(secret: &[u8], message_id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one entry per secret, space-separated.
pub fn signature_header(
    secrets: &[Vec<u8>],
    message_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| signature(s, message_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The message id of one source (an event or an alert change) for one subscription: stable, so
/// a retry and a redelivery after a crash carry the same `webhook-id`.
pub fn message_id(webhook_id: &str, source_id: &str) -> String {
    let digest = Sha256::digest(format!("{webhook_id}\n{source_id}").as_bytes());
    format!("msg_{}", &hex::encode(digest)[..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification and its reference libraries.
        let secret = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let header = signature_header(&[secret.clone(), secret], "m", 1, b"x");
        assert_eq!(header.split(' ').count(), 2);
        assert!(show_secret(&[0u8; 32]).starts_with("whsec_"));
    }

    #[test]
    fn test_message_ids_are_stable_per_subscription_and_source() {
        assert_eq!(
            message_id("w1", "Account:a:1"),
            message_id("w1", "Account:a:1")
        );
        assert_ne!(
            message_id("w1", "Account:a:1"),
            message_id("w2", "Account:a:1")
        );
        assert_ne!(
            message_id("w1", "Account:a:1"),
            message_id("w1", "Account:a:2")
        );
        assert_eq!(message_id("w1", "x").len(), 36);
    }
}
