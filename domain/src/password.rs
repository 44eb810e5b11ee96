//! Password policy (length, normalisation, guessability) and hashing (argon2id, PHC strings).
//!
//! Passwords are NFKC-normalised before they are checked or hashed, so the same password typed
//! with precomposed or decomposed accents verifies; length counts code points after runs of white
//! space are collapsed; nothing is ever truncated.
use std::future::Future;
use std::pin::Pin;

use std::cell::RefCell;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use thiserror::Error;
use unicode_normalization::UnicodeNormalization;

/// Bounds and strength the policy requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest code points (after white-space runs are collapsed).
    pub min_len: usize,
    /// Most code points.
    pub max_len: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_len: 12,
            max_len: 128,
        }
    }
}

/// Why a password was refused; the message is safe to show to the person choosing it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PasswordRejection {
    /// Shorter than the policy's minimum.
    #[error("password must be at least {min} characters long")]
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// Longer than the policy's maximum.
    #[error("password must be at most {max} characters long")]
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// Built from the account's own email or phone, or the service's name.
    #[error("password must not contain your email, phone number or the service name")]
    ContainsIdentifier,
    /// Common, repetitive or sequential.
    #[error("password is too easy to guess: {hint}")]
    TooGuessable {
        /// What made it guessable (from the strength estimator).
        hint: String,
    },
    /// Seen in data breaches at least as often as the policy allows.
    #[error("this password has appeared in a data breach; choose another")]
    Breached,
}

/// A password that passed the policy, normalised, ready to hash. Its `Debug` never shows it.
#[derive(Clone)]
pub struct CandidatePassword(SecretString);

impl std::fmt::Debug for CandidatePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CandidatePassword(<redacted>)")
    }
}

impl PartialEq for CandidatePassword {
    fn eq(&self, other: &Self) -> bool {
        self.0.expose_secret() == other.0.expose_secret()
    }
}

impl CandidatePassword {
    /// The normalised secret.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// NFKC normal form of a typed password: what is hashed and what is verified.
pub fn normalize(raw: &str) -> SecretString {
    SecretString::from(raw.nfkc().collect::<String>())
}

/// Words every password is checked against besides the account's own identifiers.
const SERVICE_WORDS: &[&str] = &["gatehouse"];

impl PasswordPolicy {
    /// Longest input, in bytes, that could still be an acceptable password (no code point is
    /// wider than 4 bytes): anything longer is refused before any normalising or hashing.
    pub fn max_bytes(&self) -> usize {
        self.max_len.saturating_mul(4)
    }

    /// Checks a new password against the policy; `context_words` are the account's identifiers.
    pub fn check(
        &self,
        raw: &str,
        context_words: &[String],
    ) -> Result<CandidatePassword, PasswordRejection> {
        if raw.len() > self.max_bytes() {
            return Err(PasswordRejection::TooLong { max: self.max_len });
        }
        let normalized = normalize(raw);
        let text = normalized.expose_secret();
        let length = collapsed_len(text);
        if length < self.min_len {
            return Err(PasswordRejection::TooShort { min: self.min_len });
        }
        if length > self.max_len {
            return Err(PasswordRejection::TooLong { max: self.max_len });
        }
        let lower = text.to_lowercase();
        let words: Vec<&str> = context_words
            .iter()
            .map(String::as_str)
            .chain(SERVICE_WORDS.iter().copied())
            .filter(|w| w.chars().count() >= 4)
            .collect();
        if words.iter().any(|w| lower.contains(&w.to_lowercase())) {
            return Err(PasswordRejection::ContainsIdentifier);
        }
        let estimate = zxcvbn::zxcvbn(text, &words);
        if (estimate.score() as u8) < 3 {
            let hint = estimate
                .feedback()
                .and_then(|f| f.warning().map(|w| w.to_string()))
                .unwrap_or_else(|| "add more unrelated words or characters".to_string());
            return Err(PasswordRejection::TooGuessable { hint });
        }
        Ok(CandidatePassword(normalized))
    }
}

fn collapsed_len(text: &str) -> usize {
    let mut count = 0;
    let mut previous_space = false;
    for c in text.chars() {
        let space = c.is_whitespace();
        if !(space && previous_space) {
            count += 1;
        }
        previous_space = space;
    }
    count
}

/// A password verifier in PHC string form (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(pub String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// Hashing failed (invalid parameters or a broken stored hash).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(pub String);

/// A boxed future, so the hasher can be a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Password hashing as an injected capability: the real one runs argon2 off the async threads.
pub trait PasswordHasher: Send + Sync {
    /// Hashes a normalised password with a fresh salt at the current parameters.
    fn hash<'a>(
        &'a self,
        password: &'a SecretString,
    ) -> BoxFuture<'a, Result<PasswordHash, HashError>>;
    /// Verifies a normalised password. With `None` it verifies against a dummy hash and returns
    /// false, so an unknown identifier costs the same as a known one.
    fn verify<'a>(
        &'a self,
        password: &'a SecretString,
        hash: Option<&'a PasswordHash>,
    ) -> BoxFuture<'a, bool>;
    /// Whether a stored hash was made with other parameters than the current ones.
    fn needs_rehash(&self, hash: &PasswordHash) -> bool;
}

/// The breached-password corpus could not be consulted (a third party down, a file unreadable).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("breached-password check unavailable: {0}")]
pub struct BreachCheckError(pub String);

/// A corpus of breached passwords (Pwned Passwords), as an injected capability: consulting it is
/// I/O (a k-anonymity range request, a file search), so it lives outside the pure policy.
pub trait BreachedPasswords: Send + Sync {
    /// How many times the normalised password appears in the corpus (0: never).
    fn times_seen<'a>(
        &'a self,
        password: &'a SecretString,
    ) -> BoxFuture<'a, Result<u64, BreachCheckError>>;
}

/// What the policy makes of a breach check: refused when seen `min_count` times or more; an
/// unavailable corpus refuses nothing (the caller logs and counts it).
pub fn breach_verdict(
    seen: &Result<u64, BreachCheckError>,
    min_count: u64,
) -> Result<(), PasswordRejection> {
    match seen {
        Ok(n) if *n >= min_count.max(1) => Err(PasswordRejection::Breached),
        _ => Ok(()),
    }
}

thread_local! {
    /// Argon2's working memory (19 MiB at the default parameters), kept per thread between
    /// verifications. Allocating it zeroed each time costs page faults and a memset for nothing:
    /// Argon2 writes every block before it reads it, so leftover contents never matter.
    static WORKING_MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

fn with_working_memory<T>(blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
    WORKING_MEMORY.with(|cell| match cell.try_borrow_mut() {
        Ok(mut memory) => {
            if memory.len() != blocks {
                memory.clear();
                memory.shrink_to_fit();
                memory.resize(blocks, Block::new());
            }
            work(&mut memory[..])
        }
        // Re-entered on the same thread (cannot happen today): use a fresh buffer.
        Err(_) => work(&mut vec![Block::new(); blocks][..]),
    })
}

/// Bytes of Argon2 working memory the calling thread keeps between hashes: 0 on a thread that
/// never hashed. Only the hashing threads should hold any (a diagnostic for tests and memory
/// accounting).
pub fn kept_working_memory_bytes() -> usize {
    WORKING_MEMORY.with(|cell| {
        cell.try_borrow()
            .map_or(0, |memory| memory.len() * std::mem::size_of::<Block>())
    })
}

/// Argon2id parameters; the default is OWASP's m=19456 KiB, t=2, p=1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Argon2Settings {
    fn params(&self) -> Result<Params, HashError> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| HashError(e.to_string()))
    }

    fn argon2(&self) -> Result<Argon2<'static>, HashError> {
        Ok(Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            self.params()?,
        ))
    }

    /// Hashes with the given 16-byte salt (drawn by the caller from a CSPRNG). CPU-bound.
    pub fn hash_blocking(
        &self,
        password: &SecretString,
        salt: &[u8],
    ) -> Result<PasswordHash, HashError> {
        use argon2::password_hash::phc::{Output, ParamsString, Salt};
        // As `hash_password_with_salt`, but in this thread's kept working memory: a fresh 19 MiB
        // area per hash (sign-up, password change, rehash) stays resident in the allocator's
        // arenas once glibc's mmap threshold has grown past it, and the server's memory with it.
        let argon = self.argon2()?;
        let params = self.params()?;
        let salt = Salt::new(salt).map_err(|e| HashError(e.to_string()))?;
        let mut out = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
        with_working_memory(params.block_count(), |blocks| {
            argon.hash_password_into_with_memory(
                password.expose_secret().as_bytes(),
                salt.as_ref(),
                &mut out,
                blocks,
            )
        })
        .map_err(|e| HashError(e.to_string()))?;
        let hash = argon2::PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| HashError(e.to_string()))?,
            salt: Some(salt),
            hash: Some(Output::new(&out).map_err(|e| HashError(e.to_string()))?),
        };
        Ok(PasswordHash(hash.to_string()))
    }

    /// Verifies against a PHC string, at the parameters recorded in it (not necessarily the
    /// current ones). CPU-bound.
    pub fn verify_blocking(&self, password: &SecretString, hash: &PasswordHash) -> bool {
        let Ok(phc) = argon2::PasswordHash::new(&hash.0) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
            return false;
        };
        let (Ok(algorithm), Ok(params)) = (
            Algorithm::try_from(phc.algorithm.as_str()),
            Params::try_from(&phc),
        ) else {
            return false;
        };
        let Ok(version) = Version::try_from(phc.version.unwrap_or(0x13)) else {
            return false;
        };
        let argon = Argon2::new(algorithm, version, params.clone());
        let mut computed = vec![0u8; expected.len()];
        let hashed = with_working_memory(params.block_count(), |blocks| {
            argon.hash_password_into_with_memory(
                password.expose_secret().as_bytes(),
                salt.as_ref(),
                &mut computed,
                blocks,
            )
        });
        hashed.is_ok() && bool::from(computed.as_slice().ct_eq(expected.as_bytes()))
    }

    /// The PHC parameter segment these settings produce, e.g. `m=19456,t=2,p=1`.
    pub fn phc_params(&self) -> String {
        format!(
            "m={},t={},p={}",
            self.memory_kib, self.iterations, self.parallelism
        )
    }

    /// True when `hash` is not argon2id v19 at exactly these parameters.
    pub fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        let parts: Vec<&str> = hash.0.split('$').collect();
        !matches!(parts.as_slice(), ["", "argon2id", "v=19", params, _, _] if *params == self.phc_params())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy::default()
    }

    #[test]
    fn test_breach_verdict_refuses_at_the_minimum_count_and_never_when_unavailable() {
        assert_eq!(breach_verdict(&Ok(0), 1), Ok(()));
        assert_eq!(breach_verdict(&Ok(1), 1), Err(PasswordRejection::Breached));
        assert_eq!(breach_verdict(&Ok(4), 5), Ok(()));
        assert_eq!(breach_verdict(&Ok(5), 5), Err(PasswordRejection::Breached));
        // A minimum of 0 would refuse every password: it counts as 1.
        assert_eq!(breach_verdict(&Ok(0), 0), Ok(()));
        let down = Err(BreachCheckError("connection refused".into()));
        assert_eq!(breach_verdict(&down, 1), Ok(()));
    }

    #[test]
    fn test_password_policy_length_counts_code_points_after_collapsing_spaces() {
        assert_eq!(
            policy().check("Kx9 vq#2 Lm", &[]),
            Err(PasswordRejection::TooShort { min: 12 })
        );
        assert_eq!(
            policy().check("Kx9       vq#2 Lm", &[]),
            Err(PasswordRejection::TooShort { min: 12 })
        );
        assert!(policy().check("Kx9 vq#2 Lm!z", &[]).is_ok());
        // 12 emoji are 12 code points (48 bytes).
        assert!(policy().check("🦀🐙🦊🐢🦉🐝🐳🦋🐌🦑🐸🐧", &[]).is_ok());
    }

    #[test]
    fn test_password_policy_bounds_maximum_without_truncating() {
        let long = "correct horse battery staple ".repeat(5); // 145 code points
        assert_eq!(
            policy().check(&long, &[]),
            Err(PasswordRejection::TooLong { max: 128 })
        );
        let megabyte = "a".repeat(1 << 20);
        assert_eq!(
            policy().check(&megabyte, &[]),
            Err(PasswordRejection::TooLong { max: 128 })
        );
        let ok = "Zq8!pL3#vN6@".repeat(5); // 60 code points
        assert!(policy().check(&ok, &[]).is_ok());
    }

    #[test]
    fn test_password_policy_rejects_common_repetitive_sequential() {
        for weak in [
            "password1234",
            "aaaaaaaaaaaa",
            "123456789012",
            "qwertyuiopasdf",
        ] {
            assert!(
                matches!(
                    policy().check(weak, &[]),
                    Err(PasswordRejection::TooGuessable { .. })
                ),
                "{weak}"
            );
        }
    }

    #[test]
    fn test_password_policy_rejects_identifiers_and_service_name() {
        let words = vec!["margaret.h".to_string(), "example".to_string()];
        assert_eq!(
            policy().check("Margaret.H-2024-winter!", &words),
            Err(PasswordRejection::ContainsIdentifier)
        );
        assert_eq!(
            policy().check("my-GateHouse-vault-77", &[]),
            Err(PasswordRejection::ContainsIdentifier)
        );
    }

    #[test]
    fn test_password_policy_accepts_lowercase_passphrase() {
        assert!(policy().check("plumbing giraffe tundra", &[]).is_ok());
    }

    #[test]
    fn test_password_normalization_makes_composed_and_decomposed_equal() {
        let composed = normalize("caf\u{e9} gr\u{e9}ve longue");
        let decomposed = normalize("cafe\u{301} gre\u{301}ve longue");
        assert_eq!(composed.expose_secret(), decomposed.expose_secret());
    }

    #[test]
    fn test_argon2_hash_is_phc_argon2id_and_verifies_without_truncation() {
        let settings = Argon2Settings {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        };
        let p = "Zq8!pL3#vN6@".repeat(8) + "abcd"; // 100 chars
        let hash = settings
            .hash_blocking(&SecretString::from(p.clone()), &[7u8; 16])
            .unwrap();
        assert!(
            hash.0.starts_with("$argon2id$v=19$m=256,t=1,p=1$"),
            "{}",
            hash.0
        );
        assert!(settings.verify_blocking(&SecretString::from(p.clone()), &hash));
        for wrong in [&p[..72], &p[..99], &(p.clone() + "x")] {
            assert!(!settings.verify_blocking(&SecretString::from(wrong.to_string()), &hash));
        }
        assert!(!settings.needs_rehash(&hash));
        assert!(Argon2Settings::default().needs_rehash(&hash));
    }

    #[test]
    fn test_argon2_hash_in_kept_memory_equals_the_librarys_own() {
        use argon2::password_hash::PasswordHasher as _;
        let settings = Argon2Settings {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        };
        let password = SecretString::from("a long enough passphrase");
        let salt = b"0123456789abcdef";
        let ours = settings.hash_blocking(&password, salt).unwrap();
        let theirs = settings
            .argon2()
            .unwrap()
            .hash_password_with_salt(password.expose_secret().as_bytes(), salt)
            .unwrap();
        assert_eq!(ours.0, theirs.to_string());
        // Twice on the same thread (the kept memory reused) gives the same hash.
        assert_eq!(settings.hash_blocking(&password, salt).unwrap(), ours);
        assert!(settings.verify_blocking(&password, &ours));
    }

    #[test]
    fn test_argon2_same_password_different_salts_differ() {
        let settings = Argon2Settings {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        };
        let pw = SecretString::from("same password here".to_string());
        let a = settings.hash_blocking(&pw, &[1u8; 16]).unwrap();
        let b = settings.hash_blocking(&pw, &[2u8; 16]).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn test_argon2_verify_agrees_with_the_reference_and_reuses_memory_safely() {
        use argon2::password_hash::PasswordVerifier as _;
        let small = Argon2Settings {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        };
        let large = Argon2Settings {
            memory_kib: 512,
            iterations: 2,
            parallelism: 1,
        };
        let pw = SecretString::from("reference check password".to_string());
        let h_small = small.hash_blocking(&pw, &[3u8; 16]).unwrap();
        let h_large = large.hash_blocking(&pw, &[4u8; 16]).unwrap();
        // Alternating sizes on one thread: the kept memory is resized, results stay exact, and a
        // hash verifies at its own parameters whatever the current settings are.
        for _ in 0..2 {
            for hash in [&h_small, &h_large] {
                assert!(small.verify_blocking(&pw, hash));
                assert!(!small.verify_blocking(
                    &SecretString::from("reference check passworD".to_string()),
                    hash
                ));
                let reference =
                    Argon2::default().verify_password(b"reference check password", hash.0.as_str());
                assert!(reference.is_ok());
            }
        }
        // Tampered or malformed verifiers never verify.
        let mut tampered = h_small.0.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        for bad in [
            tampered,
            String::new(),
            "$argon2id$v=19$m=256,t=1,p=1$".into(),
            "plain".into(),
        ] {
            assert!(!small.verify_blocking(&pw, &PasswordHash(bad)));
        }
    }
}
