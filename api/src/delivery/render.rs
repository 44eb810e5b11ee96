//! The words of each message. Emails carry the owner's anti-phishing phrase first, so a message
//! without it is recognisably not from us; text messages stay short.
use chrono::{DateTime, SecondsFormat, Utc};
use gatehouse_domain::policy::FlowKind;
use gatehouse_projections::notice::Notice;

/// What a message is about, with what it needs to say.
#[derive(Debug, Clone)]
pub enum Topic<'a> {
    /// A one-time code.
    Code {
        /// The digits.
        code: &'a str,
        /// What it is for.
        kind: FlowKind,
        /// Minutes until it expires.
        valid_minutes: i64,
    },
    /// A notice about a security event (`password_reset`, `account_locked`, …) with its details.
    Notice(&'a Notice),
    /// An outbox row whose topic this server does not know (written by a newer version, or
    /// damaged): a generic notice naming the topic.
    Unrecognised(&'a str),
}

/// What a notice says beyond its stored details, worked out when it is sent.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// The "this wasn't me" link (`{GATEHOUSE_PUBLIC_URL}/freeze?t=…`), minted for this message
    /// and never stored.
    pub freeze_link: Option<String>,
    /// The approximate place of the request's address (`GATEHOUSE_GEOIP_DB`).
    pub place: Option<String>,
    /// When the event happened.
    pub at: Option<DateTime<Utc>>,
}

/// Subject and body of an email. Every security notice carries the anti-phishing phrase (or
/// says none is set) and the freeze link; a code message carries the phrase only.
pub fn email(topic: &Topic<'_>, phrase: Option<&str>, extras: &Extras) -> (String, String) {
    let (subject, text) = words(topic, extras);
    let notice = !matches!(topic, Topic::Code { .. });
    let mut body = String::new();
    match phrase {
        Some(phrase) => body.push_str(&format!("Your anti-phishing phrase: {phrase}\n\n")),
        None if notice => body.push_str(
            "Your anti-phishing phrase: (none set; set one so you can tell our emails from \
             phishing)\n\n",
        ),
        None => {}
    }
    body.push_str(&text);
    if let (true, Some(link)) = (notice, &extras.freeze_link) {
        body.push_str(&format!(
            "\n\nThis wasn't me: freeze my account at once (every session ends, every API key \
             and device is revoked; the link works once, for 7 days):\n{link}"
        ));
    }
    body.push_str(
        "\n\nGatehouse never asks for your password or codes by email or phone. If you did not \
         expect this message, change your password and contact support.\n",
    );
    (subject, body)
}

/// Text of an SMS (a notice ends with the freeze link).
pub fn sms(topic: &Topic<'_>, extras: &Extras) -> String {
    match topic {
        Topic::Code {
            code,
            kind,
            valid_minutes,
        } => format!(
            "{code} is your Gatehouse {} code. It expires in {valid_minutes} min. Never share it.",
            purpose(*kind)
        ),
        Topic::Notice(_) | Topic::Unrecognised(_) => {
            let (subject, _) = words(topic, extras);
            match &extras.freeze_link {
                Some(link) => format!("Gatehouse: {subject}. Not you? Freeze your account: {link}"),
                None => {
                    format!("Gatehouse: {subject}. If this was not you, secure your account now.")
                }
            }
        }
    }
}

fn purpose(kind: FlowKind) -> &'static str {
    match kind {
        FlowKind::VerifyEmail => "email verification",
        FlowKind::VerifyPhone => "phone verification",
        FlowKind::ResetPassword => "password reset",
        FlowKind::Unlock => "account unlock",
        FlowKind::LostSecondFactor => "account recovery",
        FlowKind::WhitelistAddress => "withdrawal address confirmation",
        FlowKind::Unfreeze => "account unfreeze",
    }
}

/// A recorded detail, or `unknown` when none was recorded.
fn known(detail: &Option<String>) -> &str {
    detail.as_deref().unwrap_or("unknown")
}

/// An instant as it was stored in the outbox's details (RFC 3339, `Z`).
fn instant(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn words(topic: &Topic<'_>, extras: &Extras) -> (String, String) {
    match topic {
        Topic::Code {
            code,
            kind,
            valid_minutes,
        } => (
            format!("Your {} code", purpose(*kind)),
            format!(
                "Your {} code is: {code}\n\nIt expires in {valid_minutes} minutes and works once.",
                purpose(*kind)
            ),
        ),
        Topic::Unrecognised(other) => (
            "Security notice".into(),
            format!("A security event occurred on your account ({other})."),
        ),
        Topic::Notice(notice) => match notice {
            Notice::PasswordReset { ip } => (
                "Your password was changed".into(),
                format!(
                    "Your password was reset (request from {}). Every session was signed out, \
                     every API key was revoked (see GET /v1/me/api-keys), and withdrawals and \
                     other high-risk changes are paused for a while.",
                    known(ip)
                ),
            ),
            Notice::PasswordChanged { ip } => (
                "Your password was changed".into(),
                format!(
                    "Your password was changed from a signed-in session (request from {}). Every \
                     other session was signed out, and high-risk changes are paused for a while. \
                     If you did not do this, reset your password at once with \
                     POST /v1/password/forgot and contact support.",
                    known(ip)
                ),
            ),
            Notice::IdentifierClaimAttempted {} => (
                "Someone tried to use your address".into(),
                "Another account tried to change its contact to this address, which belongs to \
                 your account. Nothing changed. If you do not know why, no action is needed."
                    .into(),
            ),
            Notice::AccountLocked { until } => (
                "Your account was locked".into(),
                format!(
                    "Too many failed sign-ins: your account is locked until {} (UTC). You can \
                     unlock it early with a code sent to you.",
                    instant(until)
                ),
            ),
            Notice::AccountUnlocked {
                reason: gatehouse_domain::account::UnlockReason::Staff,
            } => (
                "Your account was unlocked".into(),
                "Our support team unlocked your account and reset its failed sign-in count.".into(),
            ),
            Notice::AccountUnlocked { .. } => (
                "Your account was unlocked".into(),
                "Your account was unlocked and its failed sign-in count reset.".into(),
            ),
            Notice::NewSignIn {
                ip,
                user_agent,
                device_id,
            } => (
                "New sign-in to your account".into(),
                format!(
                    "A sign-in to your account from a device or network it had not signed in \
                     from before.\n\nWhen: {} (UTC)\nIP address: {}\nApproximate place: {}\n\
                     Device: {}{}\n\nIf this was you, you need do nothing.",
                    extras
                        .at
                        .as_ref()
                        .map_or_else(|| "unknown".to_string(), instant),
                    known(ip),
                    extras.place.as_deref().unwrap_or("unknown"),
                    known(user_agent),
                    device_id
                        .as_deref()
                        .map(|d| format!(" (device id {d})"))
                        .unwrap_or_default(),
                ),
            ),
            Notice::AccountFrozen { by, ip } => (
                "Your account was frozen".into(),
                format!(
                    "Your account was frozen ({}; request from {}). Every session was signed out \
                     and every API key and trusted device revoked; sign-in and withdrawals are \
                     refused. To unfreeze it, ask for a code with POST /v1/unfreeze and confirm it \
                     with your second factor (POST /v1/unfreeze/confirm), then the code sent to \
                     your other verified contact if you have one.",
                    match by.as_str() {
                        "link" => "with the freeze link of one of our messages",
                        "staff" => "by our support team",
                        _ => "from a signed-in session",
                    },
                    known(ip)
                ),
            ),
            Notice::AccountUnfrozen { by, hold_until } => match hold_until {
                Some(until) if by == "staff" => (
                    "Your account will be unfrozen".into(),
                    format!(
                        "Our support team unfroze your account. It stays frozen until {} (UTC); \
                         if you did not ask for this, freeze it again with the link below before \
                         then. High-risk changes stay paused for a while after.",
                        instant(until)
                    ),
                ),
                _ => (
                    "Your account was unfrozen".into(),
                    "Your account was unfrozen: you can sign in again. High-risk changes are \
                     paused for a while."
                        .into(),
                ),
            },
            Notice::SignedOutByStaff {} => (
                "Every session was signed out".into(),
                "Our support team signed every session of your account out. Sign in again to \
                 continue."
                    .into(),
            ),
            Notice::DuplicateRegistration { .. } => (
                "Someone tried to sign up with your address".into(),
                "Someone tried to open a new account with this address, which already has one. \
                 If it was you, sign in or reset your password instead."
                    .into(),
            ),
            Notice::ContactChangeRequested { .. } => (
                "A change of your contact details was requested".into(),
                "Someone signed in to your account asked to replace this address. It stays your \
                 account's address, for sign-in and recovery, until the new one is confirmed; \
                 high-risk changes are paused for a while. If you did not do this, reset your \
                 password at once with POST /v1/password/forgot (the code comes to this address) \
                 and contact support."
                    .into(),
            ),
            Notice::ContactChanged { .. } => (
                "Your contact details were changed".into(),
                "This address was replaced on your account and will no longer receive our \
                 messages once the new one is verified. High-risk changes are paused for a while. \
                 If you did not do this, reset your password at once with \
                 POST /v1/password/forgot (the code comes to this address) and contact support."
                    .into(),
            ),
            Notice::SecondFactorAdded { ip } => (
                "An authenticator app was added".into(),
                format!(
                    "An authenticator app was added to your account (request from {}); sign-ins \
                     may now use its code. Keep your backup codes somewhere safe. If you did not do \
                     this, reset your password at once.",
                    known(ip)
                ),
            ),
            Notice::SecondFactorRemoved { ip } => (
                "Two-step sign-in was turned off".into(),
                format!(
                    "Your second factor was removed (request from {}). Withdrawals and other \
                     high-risk changes are paused for a while.",
                    known(ip)
                ),
            ),
            Notice::WithdrawalAddressAdded { usable_from } => (
                "A withdrawal address was added".into(),
                format!(
                    "An address was added to your withdrawal whitelist; withdrawals to it are \
                     possible from {}. If you did not do this, sign in, remove it and reset your \
                     password.",
                    usable_from
                ),
            ),
            Notice::WhitelistDisabled {} => (
                "Whitelist-only withdrawals were turned off".into(),
                "Withdrawals may now go to any address. High-risk changes are paused for a \
                 while. If you did not do this, sign in and turn it back on."
                    .into(),
            ),
            Notice::WithdrawKeyCreated { name } => (
                "An API key that can withdraw was created".into(),
                format!(
                    "An API key named \"{}\" with the withdraw scope was created; high-risk \
                     changes are paused for a while. If you did not do this, revoke it at once.",
                    name
                ),
            ),
            Notice::SecurityKeyAdded { ip, name } => (
                "A security key was added".into(),
                format!(
                    "The security key \"{}\" was added to your account (request from {}); \
                     sign-ins may now use it. If you did not do this, reset your password at once.",
                    name,
                    known(ip)
                ),
            ),
            Notice::PasskeyAdded { ip, name } => (
                "A passkey was added".into(),
                format!(
                    "The passkey \"{}\" was added to your account (request from {}); it signs \
                     in by itself, without the password. If you did not do this, reset your \
                     password at once: a reset removes every passkey.",
                    name,
                    known(ip)
                ),
            ),
            Notice::PasskeyRemoved { ip } => (
                "A passkey was removed".into(),
                format!(
                    "A passkey was removed from your account (request from {}). If you did not \
                     do this, reset your password at once.",
                    known(ip)
                ),
            ),
            Notice::SecurityKeyRemoved { ip } => (
                "A security key was removed".into(),
                format!(
                    "A security key was removed from your account (request from {}). \
                     Withdrawals and other high-risk changes are paused for a while.",
                    known(ip)
                ),
            ),
            Notice::RecoveryStarted {} => (
                "Account recovery requested".into(),
                "Someone asked to recover access to your account without its second factor. If \
                 it was not you, sign in and cancel it, then change your password."
                    .into(),
            ),
            Notice::RecoveryApproved { hold_until } => (
                "Account recovery approved: second factor removal pending".into(),
                format!(
                    "A reviewer approved the recovery of your account. Your second factor will be \
                     removed after {} (UTC) unless you cancel from any signed-in session \
                     (DELETE /v1/me/recovery).",
                    hold_until.as_ref().map_or_else(|| "unknown".to_string(), instant)
                ),
            ),
            Notice::RecoveryDenied { .. } => (
                "Account recovery denied".into(),
                "A reviewer denied the request to recover your account without its second factor."
                    .into(),
            ),
            Notice::RecoveryCancelled {} => (
                "Account recovery cancelled".into(),
                "The pending recovery of your account was cancelled.".into(),
            ),
            Notice::RecoveryRequestSetAside {} => (
                "Another recovery request for your account".into(),
                "Someone asked to recover your account without its second factor while your \
                 recovery case is in progress. That request was set aside: your case is unchanged \
                 and nothing was sent to the requester. If you did not ask, you need do nothing; \
                 to end the case, cancel it from any signed-in session (DELETE /v1/me/recovery). \
                 We tell you of such requests at most once a day."
                    .into(),
            ),
            Notice::AntiPhishingPhraseSet {} => (
                "Your anti-phishing phrase was changed".into(),
                "Your anti-phishing phrase was changed. Every email from us starts with it.".into(),
            ),
            Notice::AntiPhishingPhraseRemoved {} => (
                "Your anti-phishing phrase was removed".into(),
                "Your anti-phishing phrase was removed: our emails no longer start with it. If you \
                 did not do this, reset your password at once."
                    .into(),
            ),
            Notice::Code { .. } => (
                "Your one-time code".into(),
                "A one-time code was issued for your account.".into(),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_email_starts_with_the_phrase_and_carries_the_code() {
        let topic = Topic::Code {
            code: "123456",
            kind: FlowKind::ResetPassword,
            valid_minutes: 10,
        };
        let (subject, body) = email(&topic, Some("blue heron"), &Extras::default());
        assert_eq!(subject, "Your password reset code");
        assert!(body.starts_with("Your anti-phishing phrase: blue heron\n"));
        assert!(body.contains("123456"));
        let (_, body) = email(&topic, None, &Extras::default());
        assert!(!body.contains("anti-phishing phrase:"));
    }

    #[test]
    fn test_notices_carry_their_details_as_stored_and_unknown_topics_stay_generic() {
        let at = chrono::DateTime::from_timestamp(1_767_322_800, 0).unwrap_or_default();
        let (_, body) = email(
            &Topic::Notice(&Notice::AccountLocked { until: at }),
            None,
            &Extras::default(),
        );
        assert!(body.contains("until 2026-01-02T03:00:00Z (UTC)"), "{body}");
        let (_, body) = email(
            &Topic::Notice(&Notice::NewSignIn {
                device_id: None,
                ip: Some("198.51.100.7".into()),
                user_agent: None,
            }),
            None,
            &Extras::default(),
        );
        assert!(body.contains("IP address: 198.51.100.7"), "{body}");
        let (subject, body) = email(
            &Topic::Unrecognised("from_the_future"),
            None,
            &Extras::default(),
        );
        assert_eq!(subject, "Security notice");
        assert!(body.contains("(from_the_future)"));
    }

    #[test]
    fn test_sms_is_short_and_has_the_code_first() {
        let text = sms(
            &Topic::Code {
                code: "654321",
                kind: FlowKind::Unlock,
                valid_minutes: 10,
            },
            &Extras::default(),
        );
        assert!(text.starts_with("654321 "));
        assert!(text.len() <= 160);
    }

    #[test]
    fn test_every_notice_carries_the_freeze_link_and_the_phrase_line_but_codes_do_not() {
        let extras = Extras {
            freeze_link: Some("http://localhost:8080/freeze?t=fz1.x".into()),
            place: Some("Lisbon, Portugal".into()),
            at: None,
        };
        let notice = Notice::NewSignIn {
            device_id: None,
            ip: Some("198.51.100.7".into()),
            user_agent: Some("curl/8".into()),
        };
        let (_, body) = email(&Topic::Notice(&notice), None, &extras);
        assert!(body.contains("freeze?t=fz1.x"), "{body}");
        assert!(
            body.starts_with("Your anti-phishing phrase: (none set"),
            "{body}"
        );
        assert!(
            body.contains("Approximate place: Lisbon, Portugal"),
            "{body}"
        );
        assert!(sms(&Topic::Notice(&notice), &extras).contains("freeze?t=fz1.x"));
        let code = Topic::Code {
            code: "123456",
            kind: FlowKind::Unfreeze,
            valid_minutes: 10,
        };
        let (_, body) = email(&code, Some("blue heron"), &extras);
        assert!(!body.contains("freeze?t="), "{body}");
    }
}
