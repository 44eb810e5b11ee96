//! The route × key table of limits, read from `GATEHOUSE_RATE_LIMIT_<ROUTE>_PER_<KEY>_PER_MINUTE`
//! and checked at start-up.
use super::KeyKind;

/// A rate-limited route (or group of routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `POST /v1/accounts`.
    Signup,
    /// `POST /v1/login`.
    Login,
    /// `POST /v1/login/mfa`, `POST /v1/login/mfa/security-key`.
    LoginMfa,
    /// `POST /v1/password/forgot`.
    Forgot,
    /// `POST /v1/password/reset`, `POST /v1/flows/{flow_id}/security-key`.
    Reset,
    /// `POST /v1/unlock/request`, `POST /v1/unlock/confirm`.
    Unlock,
    /// `POST /v1/verify`.
    Verify,
    /// `POST /v1/recovery/lost-2fa` and its steps.
    Lost2fa,
    /// `POST /v1/flows/{flow_id}/resend`.
    Resend,
    /// Signed-in requests that check a password or code (step-up, password and contact change,
    /// second factors, whitelist).
    SignedIn,
}

/// Every route, in setting order.
pub const ROUTES: [Route; 10] = [
    Route::Signup,
    Route::Login,
    Route::LoginMfa,
    Route::Forgot,
    Route::Reset,
    Route::Unlock,
    Route::Verify,
    Route::Lost2fa,
    Route::Resend,
    Route::SignedIn,
];

/// Every key kind, in setting order.
pub const KEY_KINDS: [KeyKind; 3] = [KeyKind::Ip, KeyKind::Network, KeyKind::Identifier];

const GENERIC_IP: &str = "GATEHOUSE_RATE_LIMIT_PER_IP_PER_MINUTE";
const GENERIC_IDENTIFIER: &str = "GATEHOUSE_RATE_LIMIT_PER_IDENTIFIER_PER_MINUTE";
const PREFIX: &str = "GATEHOUSE_RATE_LIMIT_";
/// Largest accepted limit (the GCRA interval stays at least 60 µs).
const MAX_PER_MINUTE: u32 = 1_000_000;

impl Route {
    /// `SIGNUP`, `LOGIN`, … (setting names).
    pub fn name(self) -> &'static str {
        match self {
            Self::Signup => "SIGNUP",
            Self::Login => "LOGIN",
            Self::LoginMfa => "LOGIN_MFA",
            Self::Forgot => "FORGOT",
            Self::Reset => "RESET",
            Self::Unlock => "UNLOCK",
            Self::Verify => "VERIFY",
            Self::Lost2fa => "LOST_2FA",
            Self::Resend => "RESEND",
            Self::SignedIn => "SIGNED_IN",
        }
    }

    /// `signup`, `login`, … (keys, metrics, facts).
    pub fn label(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Login => "login",
            Self::LoginMfa => "login_mfa",
            Self::Forgot => "forgot",
            Self::Reset => "reset",
            Self::Unlock => "unlock",
            Self::Verify => "verify",
            Self::Lost2fa => "lost_2fa",
            Self::Resend => "resend",
            Self::SignedIn => "signed_in",
        }
    }

    pub(super) fn index(self) -> usize {
        ROUTES.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// Whether the generic `GATEHOUSE_RATE_LIMIT_PER_*` settings are this route's defaults.
    pub fn is_self_service(self) -> bool {
        !matches!(self, Self::Signup | Self::Login | Self::LoginMfa)
    }
}

/// The setting name of one cell.
pub fn setting(route: Route, kind: KeyKind) -> String {
    format!("{PREFIX}{}_PER_{}_PER_MINUTE", route.name(), kind.name())
}

/// Requests per minute for every route and key kind (0: that key is not limited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitTable {
    cells: [[u32; 3]; ROUTES.len()],
}

/// What a cell defaults to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultLimit {
    /// A number.
    Fixed(u32),
    /// `GATEHOUSE_RATE_LIMIT_PER_IP_PER_MINUTE` times this.
    GenericIp(u32),
    /// `GATEHOUSE_RATE_LIMIT_PER_IDENTIFIER_PER_MINUTE`.
    GenericIdentifier,
}

impl DefaultLimit {
    /// The README's wording.
    pub fn describe(self) -> String {
        match self {
            Self::Fixed(n) => format!("`{n}`"),
            Self::GenericIp(1) => format!("`{GENERIC_IP}`"),
            Self::GenericIp(k) => format!("{k} × `{GENERIC_IP}`"),
            Self::GenericIdentifier => format!("`{GENERIC_IDENTIFIER}`"),
        }
    }
}

/// A cell's default.
pub fn default_of(route: Route, kind: KeyKind) -> DefaultLimit {
    use DefaultLimit::*;
    match (route, kind) {
        (Route::Signup, KeyKind::Ip) => Fixed(10),
        (Route::Signup, KeyKind::Network) => Fixed(40),
        (Route::Signup, KeyKind::Identifier) => Fixed(3),
        (Route::Login | Route::LoginMfa, KeyKind::Ip) => Fixed(30),
        (Route::Login | Route::LoginMfa, KeyKind::Network) => Fixed(120),
        (Route::Login | Route::LoginMfa, KeyKind::Identifier) => Fixed(10),
        (_, KeyKind::Ip) => GenericIp(1),
        (_, KeyKind::Network) => GenericIp(4),
        (_, KeyKind::Identifier) => GenericIdentifier,
    }
}

impl LimitTable {
    /// The table from environment-style `vars` (the specific settings; other names are
    /// ignored) and the generic self-service limits. Fails with a message naming the setting
    /// when a value is not a whole number in `0..=1000000` or a `GATEHOUSE_RATE_LIMIT_…` name is
    /// not one of the known settings (a typo would otherwise silently keep the default).
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
        generic_ip: u32,
        generic_identifier: u32,
    ) -> Result<Self, String> {
        let mut cells = [[0u32; 3]; ROUTES.len()];
        for (r, route) in ROUTES.iter().enumerate() {
            for (k, kind) in KEY_KINDS.iter().enumerate() {
                cells[r][k] = match default_of(*route, *kind) {
                    DefaultLimit::Fixed(n) => n,
                    DefaultLimit::GenericIp(m) => generic_ip.saturating_mul(m),
                    DefaultLimit::GenericIdentifier => generic_identifier,
                }
                .min(MAX_PER_MINUTE);
            }
        }
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix(PREFIX) else {
                continue;
            };
            if name == GENERIC_IP || name == GENERIC_IDENTIFIER {
                continue;
            }
            let cell = ROUTES.iter().enumerate().find_map(|(r, route)| {
                KEY_KINDS
                    .iter()
                    .position(|kind| setting(*route, *kind) == name)
                    .map(|k| (r, k))
            });
            let Some((r, k)) = cell else {
                return Err(format!(
                    "{PREFIX}{rest} is not a known setting: use {PREFIX}<ROUTE>_PER_<IP|NETWORK|IDENTIFIER>_PER_MINUTE with ROUTE one of {} (README, settings)",
                    ROUTES.map(Route::name).join(", ")
                ));
            };
            cells[r][k] = value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= MAX_PER_MINUTE)
                .ok_or_else(|| {
                    format!("{name} must be a whole number of requests per minute from 0 (no limit) to {MAX_PER_MINUTE}, not {value:?}")
                })?;
        }
        Ok(Self { cells })
    }

    /// Requests per minute for `route` by `kind` (0: not limited).
    pub fn per_minute(&self, route: Route, kind: KeyKind) -> u32 {
        self.cells[route.index()][kind.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn test_the_generic_settings_are_the_self_service_defaults() {
        let t = LimitTable::from_vars(vars(&[]), 7, 3).unwrap();
        assert_eq!(t.per_minute(Route::Forgot, KeyKind::Ip), 7);
        assert_eq!(t.per_minute(Route::Resend, KeyKind::Network), 28);
        assert_eq!(t.per_minute(Route::Lost2fa, KeyKind::Identifier), 3);
        // Not for sign-up and sign-in.
        assert_eq!(t.per_minute(Route::Signup, KeyKind::Ip), 10);
        assert_eq!(t.per_minute(Route::Login, KeyKind::Identifier), 10);
    }

    #[test]
    fn test_a_specific_setting_wins_over_the_generic_one() {
        let t = LimitTable::from_vars(
            vars(&[
                ("GATEHOUSE_RATE_LIMIT_PER_IP_PER_MINUTE", "99"),
                ("GATEHOUSE_RATE_LIMIT_FORGOT_PER_IP_PER_MINUTE", "2"),
                (
                    "GATEHOUSE_RATE_LIMIT_LOST_2FA_PER_IDENTIFIER_PER_MINUTE",
                    "0",
                ),
                ("GATEHOUSE_LOCKOUT_THRESHOLD", "x"),
            ]),
            7,
            3,
        )
        .unwrap();
        assert_eq!(t.per_minute(Route::Forgot, KeyKind::Ip), 2);
        assert_eq!(t.per_minute(Route::Reset, KeyKind::Ip), 7);
        assert_eq!(t.per_minute(Route::Lost2fa, KeyKind::Identifier), 0);
    }

    #[test]
    fn test_every_name_is_accepted() {
        for route in ROUTES {
            for kind in KEY_KINDS {
                let t =
                    LimitTable::from_vars(vars(&[(&setting(route, kind), "5")]), 30, 10).unwrap();
                assert_eq!(t.per_minute(route, kind), 5, "{}", setting(route, kind));
            }
        }
    }

    #[test]
    fn test_typos_and_bad_values_are_refused_by_name() {
        let e = LimitTable::from_vars(
            vars(&[("GATEHOUSE_RATE_LIMIT_LOGN_PER_IP_PER_MINUTE", "5")]),
            30,
            10,
        )
        .unwrap_err();
        assert!(
            e.contains("GATEHOUSE_RATE_LIMIT_LOGN_PER_IP_PER_MINUTE"),
            "{e}"
        );
        for bad in ["-1", "ten", "", "1000001"] {
            let e = LimitTable::from_vars(
                vars(&[("GATEHOUSE_RATE_LIMIT_LOGIN_PER_IP_PER_MINUTE", bad)]),
                30,
                10,
            )
            .unwrap_err();
            assert!(
                e.contains("GATEHOUSE_RATE_LIMIT_LOGIN_PER_IP_PER_MINUTE"),
                "{e}"
            );
        }
    }

    /// The README lists every setting with its default, in the table's own words.
    #[test]
    fn test_the_readme_lists_every_setting_with_its_default() {
        let readme = include_str!("../../../README.md");
        for route in ROUTES {
            for kind in KEY_KINDS {
                let row = format!(
                    "| `{}` | {} |",
                    setting(route, kind),
                    default_of(route, kind).describe()
                );
                assert!(readme.contains(&row), "README lacks the row starting {row}");
            }
        }
    }
}
