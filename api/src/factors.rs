//! Second factors at the edge: TOTP secrets (drawn, sealed, unsealed to check a code), the
//! `otpauth://` URI and its QR code, and backup codes (drawn, keyed verifiers).
use totp_rs::{Algorithm, Builder, Totp};

use crate::keys::{random_bytes, DataKey, KeyError, Keys};

/// Label the TOTP secret is sealed under.
pub const TOTP_LABEL: &str = "totp-secret";
/// Issuer shown in authenticator apps.
pub const ISSUER: &str = "Gatehouse";
/// Backup codes per set.
pub const BACKUP_CODES: usize = 10;
/// Seconds per TOTP step.
pub const STEP_SECONDS: u64 = 30;

/// A TOTP generator (SHA-1, 6 digits, 30 s, ±1 step) for a secret.
pub fn totp(secret: &[u8], account_name: &str) -> Result<Totp, String> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret.to_vec())
        .with_issuer(Some(ISSUER))
        .with_account_name(account_name.replace(':', " "))
        .build()
        .map_err(|e| format!("cannot build the TOTP generator: {e:?}"))
}

/// A fresh 160-bit secret.
pub fn new_secret() -> Result<[u8; 20], KeyError> {
    random_bytes::<20>()
}

/// Seals a secret under the account's data key (hex inside, so the sealed text is UTF-8).
pub fn seal_secret(key: &DataKey, account_id: &str, secret: &[u8]) -> Result<String, KeyError> {
    key.seal_text(account_id, TOTP_LABEL, &hex::encode(secret))
}

/// Opens a sealed secret.
pub fn open_secret(key: &DataKey, account_id: &str, sealed: &str) -> Result<Vec<u8>, KeyError> {
    let text = key.open_text(account_id, TOTP_LABEL, sealed)?;
    hex::decode(text).map_err(|_| KeyError::Unseal)
}

/// The time step a typed code matches at `unix_seconds` (±1 step), if any. Spaces are ignored;
/// anything but six digits matches nothing.
pub fn matched_step(secret: &[u8], typed: &str, unix_seconds: u64) -> Option<u64> {
    let code: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret, "check").ok()?.check(&code, unix_seconds)
}

/// The QR code of an `otpauth://` URI, as an SVG document.
pub fn qr_svg(uri: &str) -> Result<String, String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| e.to_string())?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build())
}

/// Draws a set of backup codes (`xxxxx-xxxxx`, 50 bits each) and their keyed verifiers.
pub fn backup_codes(keys: &Keys, account_id: &str) -> Result<(Vec<String>, Vec<String>), KeyError> {
    // Crockford's base32: no i, l, o, u to misread.
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut codes = Vec::with_capacity(BACKUP_CODES);
    for _ in 0..BACKUP_CODES {
        let bytes = random_bytes::<10>()?;
        let chars: String = bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
            .collect();
        codes.push(format!("{}-{}", &chars[..5], &chars[5..]));
    }
    let verifiers = codes
        .iter()
        .map(|c| keys.backup_code_verifier(account_id, c))
        .collect();
    Ok((codes, verifiers))
}

/// The verifier of a typed backup code (case and spaces ignored).
pub fn typed_backup_verifier(keys: &Keys, account_id: &str, typed: &str) -> String {
    let cleaned: String = typed
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(64)
        .collect::<String>()
        .to_lowercase();
    keys.backup_code_verifier(account_id, &cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the seeds are the ASCII strings below, 8-digit codes.
    #[test]
    fn test_rfc_6238_appendix_b_vectors() {
        let sha1 = b"12345678901234567890".to_vec();
        let sha256 = b"12345678901234567890123456789012".to_vec();
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".to_vec();
        let cases: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        let build = |alg, secret: &Vec<u8>| {
            Builder::new()
                .with_algorithm(alg)
                .with_digits(8)
                .with_skew(0)
                .with_step_duration(30)
                .with_secret(secret.clone())
                .with_account_name("rfc")
                .build()
                .unwrap()
        };
        for (time, c1, c256, c512) in cases {
            assert_eq!(build(Algorithm::SHA1, &sha1).generate(time).to_string(), c1);
            assert_eq!(
                build(Algorithm::SHA256, &sha256).generate(time).to_string(),
                c256
            );
            assert_eq!(
                build(Algorithm::SHA512, &sha512).generate(time).to_string(),
                c512
            );
        }
    }

    #[test]
    fn test_matched_step_allows_one_step_of_skew_only() {
        let secret = b"12345678901234567890";
        let t = totp(secret, "x").unwrap();
        let now = 1_700_000_000u64;
        let code = t.generate(now).to_string();
        assert_eq!(matched_step(secret, &code, now), Some(now / 30));
        assert_eq!(matched_step(secret, &code, now + 30), Some(now / 30));
        assert_eq!(matched_step(secret, &code, now + 90), None);
        assert_eq!(matched_step(secret, "12345", now), None);
        assert_eq!(matched_step(secret, "abcdef", now), None);
    }

    #[test]
    fn test_backup_codes_are_distinct_and_verified_by_key() {
        let keys = Keys::from_master_hex(&"22".repeat(32)).unwrap();
        let (codes, verifiers) = backup_codes(&keys, "acct").unwrap();
        assert_eq!(codes.len(), BACKUP_CODES);
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), BACKUP_CODES);
        assert_eq!(
            typed_backup_verifier(&keys, "acct", &format!(" {} ", codes[3].to_uppercase())),
            verifiers[3]
        );
        assert_ne!(
            typed_backup_verifier(&keys, "other", &codes[3]),
            verifiers[3]
        );
    }
}
