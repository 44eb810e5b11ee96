//! Masked contacts for display: enough for a person to recognise their own address, not enough
//! to hand a stolen session the full personal data.

/// `ann.lee@example.com` → `a*****e@example.com`.
pub fn email(address: &str) -> String {
    let Some((local, domain)) = address.split_once('@') else {
        return "***".to_string();
    };
    let chars: Vec<char> = local.chars().collect();
    let masked = match chars.len() {
        0 => String::new(),
        1 | 2 => format!("{}*", chars[0]),
        n => format!("{}{}{}", chars[0], "*".repeat(n - 2), chars[n - 1]),
    };
    format!("{masked}@{domain}")
}

/// `+442079460958` → `+44*******958`: country code and last three digits.
pub fn phone(number: &str) -> String {
    let digits: Vec<char> = number.trim_start_matches('+').chars().collect();
    if digits.len() < 6 {
        return "***".to_string();
    }
    let n = digits.len();
    let head: String = digits[..2].iter().collect();
    let tail: String = digits[n - 3..].iter().collect();
    format!("+{head}{}{tail}", "*".repeat(n - 5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_masks_keep_only_recognisable_ends() {
        assert_eq!(email("ann.lee@example.com"), "a*****e@example.com");
        assert_eq!(email("al@example.com"), "a*@example.com");
        assert_eq!(email("broken"), "***");
        assert_eq!(phone("+442079460958"), "+44*******958");
        assert_eq!(phone("+1234"), "***");
    }
}
