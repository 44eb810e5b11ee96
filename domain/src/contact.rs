//! Contact identifiers (email, phone): parsing, normalisation, and their sealed form in events.
//!
//! Events never hold a contact in clear: they carry the ciphertext sealed under the account's data
//! key (destroying that key erases it) and a keyed lookup hash used for uniqueness and sign-in.
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Which kind of identifier a person typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    /// An email address.
    Email,
    /// A phone number in E.164 form.
    Phone,
}

/// A normalised contact identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    kind: ContactKind,
    value: String,
}

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContactError {
    /// Not a plausible email address.
    #[error("not a valid email address")]
    InvalidEmail,
    /// Not an E.164 phone number.
    #[error("not a valid phone number: use international format, e.g. +14155550100")]
    InvalidPhone,
}

const MAX_EMAIL_LEN: usize = 254;

impl ContactKind {
    /// Stable name, as stored in `identifier_claims` and bound into sealed values.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "Email",
            Self::Phone => "Phone",
        }
    }
}

impl Contact {
    /// Parses an email address: trimmed, lower-cased, one `@`, a dotted domain, no spaces.
    pub fn email(raw: &str) -> Result<Self, ContactError> {
        let value = raw.trim().to_lowercase();
        let (local, domain) = value.split_once('@').ok_or(ContactError::InvalidEmail)?;
        let plausible = !local.is_empty()
            && local.len() <= 64
            && value.len() <= MAX_EMAIL_LEN
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && !value.chars().any(|c| c.is_whitespace() || c.is_control());
        if !plausible {
            return Err(ContactError::InvalidEmail);
        }
        Ok(Self {
            kind: ContactKind::Email,
            value,
        })
    }

    /// Parses a phone number to E.164: `+`, then 8 to 15 digits; spaces, dots, dashes and
    /// parentheses are dropped.
    pub fn phone(raw: &str) -> Result<Self, ContactError> {
        let trimmed = raw.trim();
        let rest = trimmed
            .strip_prefix('+')
            .ok_or(ContactError::InvalidPhone)?;
        let mut digits = String::with_capacity(16);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(ContactError::InvalidPhone),
            }
        }
        if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err(ContactError::InvalidPhone);
        }
        Ok(Self {
            kind: ContactKind::Phone,
            value: format!("+{digits}"),
        })
    }

    /// Parses a phone number given for an account (sign-up, contact change): E.164 and a number
    /// libphonenumber's metadata deems valid for its country. Sign-in keeps the syntactic
    /// [`Contact::phone`], so numbers registered before this check still sign in.
    pub fn valid_phone(raw: &str) -> Result<Self, ContactError> {
        let contact = Self::phone(raw)?;
        let parsed =
            phonenumber::parse(None, &contact.value).map_err(|_| ContactError::InvalidPhone)?;
        // The E.164 form must be the digits as typed (no national prefix such as `(0)` that
        // the library would drop): sign-in parses the same typed form syntactically.
        let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
        if !phonenumber::is_valid(&parsed) || e164 != contact.value {
            return Err(ContactError::InvalidPhone);
        }
        Ok(contact)
    }

    /// Parses whatever a person typed at sign-in: a leading `+` means a phone, else an email.
    pub fn identifier(raw: &str) -> Result<Self, ContactError> {
        if raw.trim_start().starts_with('+') {
            Self::phone(raw)
        } else {
            Self::email(raw)
        }
    }

    /// Email or phone.
    pub fn kind(&self) -> ContactKind {
        self.kind
    }

    /// The normalised text (what is sealed and what the lookup hash is computed over).
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// Words a password must not be built from: the email's local part and domain label, or the
    /// phone's digits.
    pub fn context_words(&self) -> Vec<String> {
        match self.kind {
            ContactKind::Email => {
                let mut words = Vec::new();
                if let Some((local, domain)) = self.value.split_once('@') {
                    words.push(local.to_string());
                    if let Some(label) = domain.split('.').next() {
                        words.push(label.to_string());
                    }
                }
                words
            }
            ContactKind::Phone => vec![self.value.trim_start_matches('+').to_string()],
        }
    }
}

/// A contact as events carry it: sealed ciphertext plus keyed lookup hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedContact {
    /// Ciphertext under the account's data key (opaque to the domain).
    pub sealed: String,
    /// HMAC of the normalised identifier under the server's lookup key (hex).
    pub lookup: String,
}

/// The country calling code of an E.164 number, as `+1`, `+44`; `None` when it has none.
pub fn calling_code(e164: &str) -> Option<String> {
    let parsed = phonenumber::parse(None, e164).ok()?;
    Some(format!("+{}", parsed.code().value()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_contact_email_is_normalised() {
        let c = Contact::email("  Alice.Smith@Example.COM ").unwrap();
        assert_eq!(c.as_str(), "alice.smith@example.com");
        assert_eq!(c.kind(), ContactKind::Email);
        assert_eq!(c.context_words(), vec!["alice.smith", "example"]);
    }

    #[test]
    fn test_contact_email_rejects_malformed() {
        for bad in [
            "", "a", "a@b", "@b.c", "a@.c", "a@c.", "a b@c.d", "a@b@c.d", "a\n@b.c",
        ] {
            assert_eq!(
                Contact::email(bad),
                Err(ContactError::InvalidEmail),
                "{bad:?}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(300));
        assert!(Contact::email(&long).is_err());
    }

    #[test]
    fn test_contact_phone_is_e164() {
        assert_eq!(
            Contact::phone("+1 (415) 555-0100").unwrap().as_str(),
            "+14155550100"
        );
        for bad in [
            "4155550100",
            "+1",
            "+0123456789",
            "+1415555010x",
            "+1234567890123456",
        ] {
            assert_eq!(
                Contact::phone(bad),
                Err(ContactError::InvalidPhone),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn test_valid_phone_needs_a_number_valid_for_its_country() {
        assert_eq!(
            Contact::valid_phone("+44 20 7946 0958").unwrap().as_str(),
            "+442079460958"
        );
        for good in [
            "+1 900 555 0100",
            "+14155550123",
            "+447400900123",
            "+14155559999",
        ] {
            assert!(Contact::valid_phone(good).is_ok(), "{good:?}");
        }
        // Syntactically E.164, but no such area code / country.
        for bad in [
            "+15551234567",
            "+999123456789",
            "+4412",
            "+1 415 555 010x",
            "+44 (0) 20 7946 0958",
        ] {
            assert_eq!(
                Contact::valid_phone(bad),
                Err(ContactError::InvalidPhone),
                "{bad:?}"
            );
        }
        assert_eq!(calling_code("+442079460958").as_deref(), Some("+44"));
        assert_eq!(calling_code("+14155550100").as_deref(), Some("+1"));
        assert_eq!(calling_code("nonsense"), None);
    }

    #[test]
    fn test_contact_identifier_picks_kind() {
        assert_eq!(
            Contact::identifier("+14155550100").unwrap().kind(),
            ContactKind::Phone
        );
        assert_eq!(
            Contact::identifier("x@y.io").unwrap().kind(),
            ContactKind::Email
        );
    }
}
