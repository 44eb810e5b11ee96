//! What the edge presents to the aggregate as evidence, already opened or checked there: a device
//! token's claim and a second factor's proof. Named by the commands that carry them, by the state
//! that judges a device's door, and by the proof policy that counts a factor; it names none of
//! them (a module below all three, so they do not import each other in a circle).
use uuid::Uuid;

/// A presented device token, opened at the edge: the device it names and the hash of its
/// secret. Only the aggregate knows whether that device is trusted with that token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceClaim {
    /// The device the token names.
    pub device_id: Uuid,
    /// SHA-256 (hex) of the token's secret.
    pub token_hash: String,
}

/// A second factor as the aggregate can judge it: the edge unseals the TOTP secret and reports
/// the time step a code matched; backup codes arrive as keyed verifiers.
#[derive(Debug, Clone, PartialEq)]
pub enum MfaProof {
    /// A TOTP code.
    Totp {
        /// The step it matched within the allowed skew, or `None`.
        matched_step: Option<u64>,
    },
    /// A backup code.
    BackupCode {
        /// Its keyed verifier.
        verifier: String,
    },
    /// A security key's assertion, as checked at the edge by the WebAuthn library against the
    /// stored credential.
    SecurityKey {
        /// Credential id that signed.
        key_id: String,
        /// What the check found.
        check: KeyCheck,
    },
}

/// The WebAuthn check of an assertion.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyCheck {
    /// Valid, with the new counter and the updated credential.
    Verified {
        /// Signature counter.
        counter: u32,
        /// Updated credential.
        credential: serde_json::Value,
    },
    /// Valid signature but the counter did not move forward: a possible clone.
    CounterRegressed,
    /// The authenticator did not verify its user (no UV flag) where the ceremony required it
    /// (a passkey sign-in).
    UserNotVerified,
    /// Not a valid assertion.
    Invalid,
}

impl MfaProof {
    /// Wire name of the method.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Totp { .. } => "totp",
            Self::BackupCode { .. } => "backup_code",
            Self::SecurityKey { .. } => "security_key",
        }
    }
}
