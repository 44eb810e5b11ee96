//! Subjects and message ids of the published stream: pure functions, unit-tested here.
//!
//! - an event goes to `<prefix>.events.<aggregate kind>.<event type>`, both in snake_case
//!   (`gatehouse.events.account.login_succeeded`); its `Nats-Msg-Id` is its event id
//!   `<Aggregate>:<aggregate id>:<sequence>` (an event is identified by its aggregate and its
//!   place in it);
//! - an alert change goes to `<prefix>.alerts.<rule>` (`gatehouse.alerts.credential_stuffing`);
//!   its id is `alert:<alert id>:<tx>.<position>`, the stream position of the event that made the
//!   change (the alerts read model is a function of the stream, so a rebuild gives the same id).

/// `LoginSucceeded` → `login_succeeded`, `Account` → `account`, `SMSWithheld` → `sms_withheld`;
/// any character that may not stand in a subject token (`.`, `*`, `>`, spaces, …) becomes `_`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                // The last capital of an acronym starts the next word: `SMSWithheld`.
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// The subject of an event.
pub fn event_subject(prefix: &str, aggregate_type: &str, event_type: &str) -> String {
    format!(
        "{prefix}.events.{}.{}",
        snake_case(aggregate_type),
        snake_case(event_type)
    )
}

/// The subject of an alert change.
pub fn alert_subject(prefix: &str, rule: &str) -> String {
    format!("{prefix}.alerts.{}", snake_case(rule))
}

/// The subjects a stream Gatehouse creates listens on.
pub fn stream_subjects(prefix: &str) -> String {
    format!("{prefix}.>")
}

/// An event's id (its `Nats-Msg-Id`).
pub fn event_id(aggregate_type: &str, aggregate_id: &str, sequence: i64) -> String {
    format!("{aggregate_type}:{aggregate_id}:{sequence}")
}

/// An alert change's id (its `Nats-Msg-Id`).
pub fn alert_change_id(alert_id: &str, tx: i64, pos: i64) -> String {
    format!("alert:{alert_id}:{tx}.{pos}")
}

fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Whether `name` can name a JetStream stream (kept to letters, digits, `-` and `_`).
pub fn valid_stream_name(name: &str) -> bool {
    name.len() <= 200 && valid_token(name)
}

/// Whether `prefix` is one or more dot-separated literal subject tokens.
pub fn valid_prefix(prefix: &str) -> bool {
    prefix.len() <= 200 && prefix.split('.').all(valid_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_snake_case_of_type_names() {
        for (name, snake) in [
            ("Account", "account"),
            ("LoginSucceeded", "login_succeeded"),
            ("AccountRegistered", "account_registered"),
            ("SMSWithheld", "sms_withheld"),
            ("SmsWithheld", "sms_withheld"),
            ("TotpEnrolmentStarted", "totp_enrolment_started"),
            ("Code2Sent", "code2_sent"),
            ("credential_stuffing", "credential_stuffing"),
            ("already_snake", "already_snake"),
            ("a.b*c>d e", "a_b_c_d_e"),
            ("", "_"),
        ] {
            assert_eq!(snake_case(name), snake, "{name}");
        }
    }

    #[test]
    fn test_subjects_are_prefixed_snake_case_tokens() {
        assert_eq!(
            event_subject("gatehouse", "Account", "LoginSucceeded"),
            "gatehouse.events.account.login_succeeded"
        );
        assert_eq!(
            event_subject("gatehouse", "Protection", "ThrottleWindowClosed"),
            "gatehouse.events.protection.throttle_window_closed"
        );
        assert_eq!(
            event_subject("t1.gh", "Staff", "AlertStatusChanged"),
            "t1.gh.events.staff.alert_status_changed"
        );
        assert_eq!(
            alert_subject("gatehouse", "credential_stuffing"),
            "gatehouse.alerts.credential_stuffing"
        );
        // A hostile name cannot add tokens or wildcards.
        assert_eq!(alert_subject("gatehouse", "x.>"), "gatehouse.alerts.x__");
        assert_eq!(stream_subjects("gatehouse"), "gatehouse.>");
    }

    #[test]
    fn test_ids_name_the_event_or_the_change() {
        assert_eq!(event_id("Account", "a-1", 7), "Account:a-1:7");
        assert_eq!(
            event_id("Protection", "protection:ip:10.0.0.1", 2),
            "Protection:protection:ip:10.0.0.1:2"
        );
        assert_eq!(alert_change_id("al-9", 812, 40), "alert:al-9:812.40");
        assert_ne!(event_id("Account", "a-1", 1), event_id("Account", "a-1", 2));
    }

    #[test]
    fn test_names_and_prefixes_are_checked() {
        assert!(valid_stream_name("GATEHOUSE"));
        assert!(valid_stream_name("gh_test-1"));
        for bad in ["", "a.b", "a b", "a*", "a>", "a/b"] {
            assert!(!valid_stream_name(bad), "{bad}");
        }
        assert!(valid_prefix("gatehouse"));
        assert!(valid_prefix("acme.gatehouse"));
        for bad in ["", ".", "a.", ".a", "a..b", "a.*", "a.>", "a b"] {
            assert!(!valid_prefix(bad), "{bad}");
        }
    }
}
