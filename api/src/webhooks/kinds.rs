//! What a subscription receives: kinds and the patterns over them. Pure functions.
//!
//! A kind is `<namespace>.<name>` in snake_case, as the NATS subjects and the admin events view
//! name things: `account.password_reset` (an event of an `Account`: its type in snake_case),
//! `staff.alert_status_changed`, `team.member_invited`, `protection.network_throttled`, and
//! `alert.<rule>` for a change of an alert (`alert.credential_stuffing`). Webhook facts have no
//! kind: deliveries are never delivered.
//!
//! A pattern is a kind, or `<namespace>.*` for every kind of a namespace. A kind must be one the
//! server knows: an alert rule, or a fact of the namespace's aggregate (its variant names, read
//! from the fact enum's own deserializer, so that a new fact is known without a list to keep).
use std::collections::HashSet;
use std::sync::OnceLock;

use gatehouse_projections::alerts::policy::Rule;
use serde::de::DeserializeOwned;

use crate::nats::subjects::snake_case;

/// Namespaces of deliverable kinds (the aggregate kinds, and `alert`).
pub const NAMESPACES: [&str; 5] = ["account", "alert", "staff", "team", "protection"];

/// Most patterns one subscription holds.
pub const MAX_PATTERNS: usize = 20;

/// The rule a pattern follows, for error messages.
pub const PATTERN_RULE: &str = "each kind is `<namespace>.<name>` or `<namespace>.*`, namespace one of account, alert, staff, team, protection, name in snake_case (a-z, 0-9, _) naming a known event type of that namespace (account.password_reset, account.login_failed, staff.alert_status_changed, …) or, for alert, a rule (alert.credential_stuffing, alert.webhook_disabled, …); 1 to 20 kinds";

/// The kind of an event of `aggregate_type`, `None` for what is never delivered (webhook facts,
/// aggregates this code does not know).
pub fn event_kind(aggregate_type: &str, event_type: &str) -> Option<String> {
    let namespace = snake_case(aggregate_type);
    if namespace == "alert" || !NAMESPACES.contains(&namespace.as_str()) {
        return None;
    }
    Some(format!("{namespace}.{}", snake_case(event_type)))
}

/// The kind of an alert change.
pub fn alert_kind(rule: &str) -> String {
    format!("alert.{}", snake_case(rule))
}

fn snake_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The variant names of an externally tagged enum, as its derived deserializer lists them when
/// it meets an unknown one ("unknown variant `x`, expected one of `A`, `B`").
fn variant_names<T: DeserializeOwned>() -> Vec<String> {
    let probe = serde_json::json!({"\u{1}": null});
    match serde_json::from_value::<T>(probe) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .to_string()
            .split('`')
            .skip(3)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    }
}

/// Every kind the server knows.
pub fn known_kinds() -> &'static HashSet<String> {
    static KNOWN: OnceLock<HashSet<String>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        use gatehouse_domain::{protection::ProtectionFact, staff::StaffFact, team::TeamFact};
        let mut known = HashSet::new();
        for (namespace, names) in [
            ("account", variant_names::<gatehouse_domain::AccountFact>()),
            ("staff", variant_names::<StaffFact>()),
            ("team", variant_names::<TeamFact>()),
            ("protection", variant_names::<ProtectionFact>()),
        ] {
            for name in names {
                known.insert(format!("{namespace}.{}", snake_case(&name)));
            }
        }
        for rule in Rule::ALL {
            known.insert(alert_kind(rule.name()));
        }
        known
    })
}

/// Checks one pattern; the error names the offending pattern.
pub fn valid_pattern(pattern: &str) -> bool {
    let Some((namespace, name)) = pattern.split_once('.') else {
        return false;
    };
    if !NAMESPACES.contains(&namespace) {
        return false;
    }
    if name == "*" {
        return true;
    }
    snake_name(name) && known_kinds().contains(pattern)
}

/// Checks and normalises (sorts, deduplicates) a subscription's patterns; the error is the
/// first pattern that breaks [`PATTERN_RULE`] (or a count out of range).
pub fn parse_patterns(patterns: &[String]) -> Result<Vec<String>, String> {
    if patterns.is_empty() || patterns.len() > MAX_PATTERNS {
        return Err(format!("{} kinds given", patterns.len()));
    }
    let mut out = Vec::with_capacity(patterns.len());
    for p in patterns {
        let p = p.trim();
        if !valid_pattern(p) {
            return Err(format!("{p:?} is not a kind pattern"));
        }
        out.push(p.to_string());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Whether `kind` matches any of `patterns`.
pub fn matches(patterns: &[String], kind: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix(".*") {
        Some(namespace) => kind
            .strip_prefix(namespace)
            .is_some_and(|rest| rest.starts_with('.')),
        None => p == kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_kinds_of_events_and_alerts() {
        assert_eq!(
            event_kind("Account", "PasswordReset").as_deref(),
            Some("account.password_reset")
        );
        assert_eq!(
            event_kind("Staff", "AlertStatusChanged").as_deref(),
            Some("staff.alert_status_changed")
        );
        // Webhook facts (deliveries) and unknown aggregates have no kind.
        assert_eq!(event_kind("Webhook", "WebhookDelivered"), None);
        assert_eq!(event_kind("Webhook", "WebhookDeliveryFailed"), None);
        assert_eq!(event_kind("Alert", "X"), None);
        assert_eq!(event_kind("Mystery", "X"), None);
        assert_eq!(
            alert_kind("credential_stuffing"),
            "alert.credential_stuffing"
        );
    }

    #[test]
    fn test_known_kinds_come_from_the_fact_enums() {
        let known = known_kinds();
        for kind in [
            "account.account_registered",
            "account.password_reset",
            "account.login_failed",
            "staff.alert_status_changed",
            "staff.staff_created",
            "team.team_created",
            "protection.throttle_window_closed",
            "alert.credential_stuffing",
            "alert.webhook_disabled",
        ] {
            assert!(known.contains(kind), "{kind}");
        }
        // Every account fact is there (as many as the enum has variants, checked by name).
        assert!(known.iter().filter(|k| k.starts_with("account.")).count() > 50);
        assert!(!known.iter().any(|k| k.starts_with("webhook.")));
    }

    #[test]
    fn test_patterns_are_checked_and_matched() {
        for good in [
            "alert.*",
            "alert.credential_stuffing",
            "alert.webhook_disabled",
            "account.password_reset",
            "account.*",
            "team.member_invited",
        ] {
            assert!(valid_pattern(good), "{good}");
        }
        for bad in [
            "",
            "*",
            "alert",
            "alert.",
            "alert.no_such_rule",
            "webhook.*",
            "webhook.webhook_delivered",
            "Account.PasswordReset",
            "account.password-reset",
            "account.no_such_event",
            "staff.password_reset",
            "account.**",
            "account.pass*",
            "account.a.b",
        ] {
            assert!(!valid_pattern(bad), "{bad}");
        }
        assert!(parse_patterns(&[]).is_err());
        assert!(parse_patterns(&vec!["alert.*".to_string(); 21]).is_err());
        assert_eq!(
            parse_patterns(&[
                "alert.*".into(),
                " account.password_reset ".into(),
                "alert.*".into()
            ])
            .unwrap(),
            vec!["account.password_reset".to_string(), "alert.*".to_string()]
        );
        let p = vec!["alert.*".to_string(), "account.password_reset".to_string()];
        assert!(matches(&p, "alert.credential_stuffing"));
        assert!(matches(&p, "account.password_reset"));
        assert!(!matches(&p, "account.password_changed"));
        assert!(!matches(&p, "alerts.x"));
        assert!(!matches(&["account.*".to_string()], "accounting.x"));
    }
}
