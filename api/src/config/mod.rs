//! Settings, from flags or environment variables (every one is listed in the README).
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use gatehouse_domain::password::{Argon2Settings, PasswordPolicy};
use gatehouse_domain::policy::{
    CodePolicy, ContactPolicy, CooldownPolicy, DevicePolicy, LockoutPolicy, SessionPolicy,
};
use gatehouse_projections::alerts::AlertPolicy;

/// Gatehouse: account security (sign-in, lockout, sessions) on an event-sourced store.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(Box<ServeArgs>),
    /// Print a fresh random master key (64 hex characters) for GATEHOUSE_MASTER_KEY.
    Keygen,
    /// Manage staff (analysts, auditors, reviewers, admins) from the command line.
    Staff(StaffArgs),
}

/// `gatehouse staff …`.
#[derive(Debug, Args)]
pub struct StaffArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: StaffCli,
}

/// Staff subcommands.
#[derive(Debug, Subcommand)]
pub enum StaffCli {
    /// Create a staff member (e.g. the first admin) and print their API token once on stdout.
    Create(StaffCreateArgs),
    /// List staff members: id, name, roles, and whether their token works and until when.
    List(StaffStoreArgs),
    /// Issue a new token to a member and print it once on stdout (their earlier one stops
    /// working).
    Token(StaffIdArgs),
    /// Revoke a member's token: no token of theirs works until a new one is issued.
    Revoke(StaffIdArgs),
}

/// Where the staff live, and the token lifetime (as for `gatehouse serve`).
#[derive(Debug, Clone, Args)]
pub struct StaffStoreArgs {
    /// PostgreSQL URL; when absent the embedded store under the data directory is used.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Directory of the embedded store.
    #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = "./gatehouse-data")]
    pub data_dir: PathBuf,
    /// How long a staff token works after it is issued, in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_STAFF_TOKEN_SECONDS",
        default_value_t = 2_592_000
    )]
    pub staff_token_seconds: i64,
}

/// Settings of `gatehouse staff create`.
#[derive(Debug, Clone, Args)]
pub struct StaffCreateArgs {
    /// Store and token lifetime.
    #[command(flatten)]
    pub store: StaffStoreArgs,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// Role (`analyst`, `auditor`, `reviewer`, `admin`); repeat or comma-separate for several.
    #[arg(long = "role", required = true, value_delimiter = ',')]
    pub roles: Vec<String>,
}

/// Settings of `gatehouse staff token` and `gatehouse staff revoke`.
#[derive(Debug, Clone, Args)]
pub struct StaffIdArgs {
    /// Store and token lifetime.
    #[command(flatten)]
    pub store: StaffStoreArgs,
    /// The member's staff id (as listed).
    #[arg(long)]
    pub id: uuid::Uuid,
}

/// Settings of `gatehouse serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// PostgreSQL URL; when absent the embedded store under the data directory is used.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Directory of the embedded store (and of its generated master key).
    #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = "./gatehouse-data")]
    pub data_dir: PathBuf,
    /// Address to listen on (`127.0.0.1:0` picks a free port; the chosen one is logged).
    #[arg(long, env = "GATEHOUSE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Master secret, 64 hex characters. Required with PostgreSQL; generated and kept in the data
    /// directory for the embedded store.
    #[arg(long, env = "GATEHOUSE_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// Proxy addresses whose `X-Forwarded-For` is believed (comma-separated IPs). Empty: the socket
    /// address is the client address.
    #[arg(long, env = "GATEHOUSE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpAddr>,
    /// Connections in the database pool.
    #[arg(long, env = "GATEHOUSE_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// Consecutive failed sign-ins without a valid device token that lock the account's
    /// untrusted door.
    #[arg(long, env = "GATEHOUSE_LOCKOUT_THRESHOLD", default_value_t = 5)]
    pub lockout_threshold: u32,
    /// Consecutive failures through one trusted device's own door (requests presenting its
    /// device token) that lock that door. Durations as for the untrusted door.
    #[arg(long, env = "GATEHOUSE_DEVICE_LOCKOUT_THRESHOLD", default_value_t = 5)]
    pub device_lockout_threshold: u32,
    /// Days a device stays trusted after its last sign-in (each sign-in with its token renews it).
    #[arg(long, env = "GATEHOUSE_DEVICE_TOKEN_DAYS", default_value_t = 180)]
    pub device_token_days: i64,
    /// First lock duration in seconds (doubles on each repeated lock).
    #[arg(long, env = "GATEHOUSE_LOCKOUT_SECONDS", default_value_t = 900)]
    pub lockout_seconds: i64,
    /// Longest lock in seconds.
    #[arg(long, env = "GATEHOUSE_LOCKOUT_MAX_SECONDS", default_value_t = 86_400)]
    pub lockout_max_seconds: i64,
    /// Absolute session lifetime in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_SESSION_ABSOLUTE_SECONDS",
        default_value_t = 43_200
    )]
    pub session_absolute_seconds: i64,
    /// Idle session lifetime in seconds.
    #[arg(long, env = "GATEHOUSE_SESSION_IDLE_SECONDS", default_value_t = 1_800)]
    pub session_idle_seconds: i64,
    /// Most open sessions per account; signing in beyond it ends the oldest.
    #[arg(long, env = "GATEHOUSE_SESSION_MAX_ACTIVE", default_value_t = 50)]
    pub session_max_active: usize,
    /// Argon2id memory in KiB (OWASP: 19456).
    #[arg(long, env = "GATEHOUSE_ARGON2_MEMORY_KIB", default_value_t = 19_456)]
    pub argon2_memory_kib: u32,
    /// Argon2id passes (OWASP: 2).
    #[arg(long, env = "GATEHOUSE_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
    /// Argon2id lanes (OWASP: 1).
    #[arg(long, env = "GATEHOUSE_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,
    /// Hashes computed at once (default: the number of CPU cores).
    #[arg(long, env = "GATEHOUSE_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
    /// Milliseconds the projections runner gathers new events before applying them (read models
    /// lag by about this much; larger batches cost less under load).
    #[arg(long, env = "GATEHOUSE_PROJECTION_COALESCE_MS", default_value_t = 100)]
    pub projection_coalesce_ms: u64,
    /// Shortest password, in code points.
    #[arg(long, env = "GATEHOUSE_PASSWORD_MIN_LENGTH", default_value_t = 12)]
    pub password_min_length: usize,
    /// Longest password, in code points.
    #[arg(long, env = "GATEHOUSE_PASSWORD_MAX_LENGTH", default_value_t = 128)]
    pub password_max_length: usize,
    /// One-time code lifetime in seconds.
    #[arg(long, env = "GATEHOUSE_CODE_TTL_SECONDS", default_value_t = 600)]
    pub code_ttl_seconds: i64,
    /// Wrong tries that exhaust a one-time code.
    #[arg(long, env = "GATEHOUSE_CODE_MAX_ATTEMPTS", default_value_t = 5)]
    pub code_max_attempts: u32,
    /// Seconds before a flow's code may be resent.
    #[arg(long, env = "GATEHOUSE_CODE_RESEND_SECONDS", default_value_t = 60)]
    pub code_resend_seconds: i64,
    /// Most codes issued to one account per hour for one requester: a trusted device (valid
    /// device token), or the client network (/24 IPv4, /64 IPv6) of an untrusted request.
    #[arg(long, env = "GATEHOUSE_CODE_MAX_PER_HOUR", default_value_t = 10)]
    pub code_max_per_hour: u32,
    /// Most codes issued to one account per hour for untrusted requesters together (the hard
    /// ceiling; raised to GATEHOUSE_CODE_MAX_PER_HOUR when set lower). Trusted devices are
    /// exempt. Reaching it
    /// raises the `code_ceiling` alert.
    #[arg(
        long,
        env = "GATEHOUSE_CODE_ACCOUNT_CEILING_PER_HOUR",
        default_value_t = 30
    )]
    pub code_account_ceiling_per_hour: u32,
    /// Seconds high-risk actions stay blocked after a password reset.
    #[arg(
        long,
        env = "GATEHOUSE_HIGH_RISK_COOLDOWN_SECONDS",
        default_value_t = 86_400
    )]
    pub high_risk_cooldown_seconds: i64,
    /// Seconds between the approval of a lost-second-factor recovery and the removal of the
    /// factors, during which the owner can cancel from any session.
    #[arg(
        long,
        env = "GATEHOUSE_RECOVERY_HOLD_SECONDS",
        default_value_t = 172_800
    )]
    pub recovery_hold_seconds: i64,
    /// SMTP server for email, in lettre's URL form (`smtp://host:2525`, `smtps://user:pass@host`,
    /// `smtp://host:587?tls=required`). Unset: emails are written to the development outbox.
    #[arg(long, env = "GATEHOUSE_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender address of emails.
    #[arg(
        long,
        env = "GATEHOUSE_SMTP_FROM",
        default_value = "Gatehouse <no-reply@gatehouse.invalid>"
    )]
    pub smtp_from: String,
    /// URL the SMS provider webhook receives `{"to", "body", "id"}` at. Unset: text messages are
    /// written to the development outbox.
    #[arg(long, env = "GATEHOUSE_SMS_WEBHOOK_URL", hide_env_values = true)]
    pub sms_webhook_url: Option<String>,
    /// Text messages sent per hour, all numbers together (shared by every server process on
    /// PostgreSQL). Beyond it, codes are withheld: sign-up answers
    /// `phone_verification_deferred: true`, resends `429 sms_budget_exhausted`.
    #[arg(long, env = "GATEHOUSE_SMS_MAX_PER_HOUR", default_value_t = 1000)]
    pub sms_max_per_hour: u32,
    /// Text messages sent per hour to one country calling code (`+1`, `+44`, …).
    #[arg(
        long,
        env = "GATEHOUSE_SMS_MAX_PER_PREFIX_PER_HOUR",
        default_value_t = 200
    )]
    pub sms_max_per_prefix_per_hour: u32,
    /// Comma-separated number prefixes never texted (`+1900,+44909`): refused at sign-up and
    /// contact change with `422 phone_not_allowed`, and never sent to.
    #[arg(long, env = "GATEHOUSE_SMS_DENY_PREFIXES", value_delimiter = ',')]
    pub sms_deny_prefixes: Vec<String>,
    /// Pwned Passwords k-anonymity range service (`https://api.pwnedpasswords.com/range`): new
    /// passwords are looked up by the first 5 hex digits of their SHA-1. Unset: not consulted.
    #[arg(long, env = "GATEHOUSE_PWNED_RANGE_URL")]
    pub pwned_range_url: Option<String>,
    /// Local file in the downloadable Pwned Passwords format (`SHA1HEX:COUNT` lines sorted by
    /// hash), searched in place. Unset: not consulted.
    #[arg(long, env = "GATEHOUSE_PWNED_FILE")]
    pub pwned_file: Option<PathBuf>,
    /// A new password seen this many times or more in a breach corpus is refused.
    #[arg(long, env = "GATEHOUSE_PWNED_MIN_COUNT", default_value_t = 1)]
    pub pwned_min_count: u64,
    /// Directory of the development outbox (messages as files) when no SMTP server or SMS
    /// webhook is configured; defaults to `<data dir>/outbox`.
    #[arg(long, env = "GATEHOUSE_DEV_OUTBOX_DIR")]
    pub dev_outbox_dir: Option<PathBuf>,
    /// Tries before a message is given up.
    #[arg(long, env = "GATEHOUSE_DELIVERY_MAX_ATTEMPTS", default_value_t = 6)]
    pub delivery_max_attempts: u32,
    /// Self-service requests (forgot password, unlock, codes) allowed per client IP per minute.
    #[arg(
        long,
        env = "GATEHOUSE_RATE_LIMIT_PER_IP_PER_MINUTE",
        default_value_t = 30
    )]
    pub rate_limit_per_ip_per_minute: u32,
    /// Self-service requests allowed per identifier (or flow) per minute.
    #[arg(
        long,
        env = "GATEHOUSE_RATE_LIMIT_PER_IDENTIFIER_PER_MINUTE",
        default_value_t = 10
    )]
    pub rate_limit_per_identifier_per_minute: u32,
    /// Redis URL (`redis://host:6379/0`) holding the rate limits shared by every server process.
    /// Unset: PostgreSQL holds them (the embedded store: each process its own).
    #[arg(long, env = "GATEHOUSE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of the rate limit keys in Redis (several deployments can share one Redis).
    #[arg(long, env = "GATEHOUSE_REDIS_PREFIX", default_value = "gatehouse:rl:")]
    pub redis_prefix: String,
    /// Sign-in attempts per minute allowed from an IP or network flagged for credential stuffing
    /// (0: no feedback from alerts).
    #[arg(long, env = "GATEHOUSE_FLAGGED_LOGINS_PER_MINUTE", default_value_t = 5)]
    pub flagged_logins_per_minute: u32,
    /// Seconds after its last evidence that a stuffing alert keeps its IP or network flagged.
    #[arg(long, env = "GATEHOUSE_FLAGGED_SECONDS", default_value_t = 3600)]
    pub flagged_seconds: i64,
    /// Alerts: failed sign-ins on one account (or unknown identifier) that make brute force.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_BRUTE_FORCE_FAILURES",
        default_value_t = 10
    )]
    pub alert_brute_force_failures: i64,
    /// Alerts: brute-force window in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_BRUTE_FORCE_WINDOW_SECONDS",
        default_value_t = 900
    )]
    pub alert_brute_force_window_seconds: i64,
    /// Alerts: distinct identifiers one IP must fail against to be credential stuffing.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_STUFFING_IP_IDENTIFIERS",
        default_value_t = 20
    )]
    pub alert_stuffing_ip_identifiers: i64,
    /// Alerts: distinct identifiers one /24 (IPv4) or /64 (IPv6) must fail against.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_STUFFING_NET_IDENTIFIERS",
        default_value_t = 40
    )]
    pub alert_stuffing_net_identifiers: i64,
    /// Alerts: credential-stuffing window in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_STUFFING_WINDOW_SECONDS",
        default_value_t = 3600
    )]
    pub alert_stuffing_window_seconds: i64,
    /// Alerts: least failures in the spray window.
    #[arg(long, env = "GATEHOUSE_ALERT_SPRAY_MIN_FAILURES", default_value_t = 50)]
    pub alert_spray_min_failures: i64,
    /// Alerts: least distinct accounts among the spray failures.
    #[arg(long, env = "GATEHOUSE_ALERT_SPRAY_MIN_ACCOUNTS", default_value_t = 20)]
    pub alert_spray_min_accounts: i64,
    /// Alerts: least distinct IPs among the spray failures.
    #[arg(long, env = "GATEHOUSE_ALERT_SPRAY_MIN_IPS", default_value_t = 10)]
    pub alert_spray_min_ips: i64,
    /// Alerts: how many times its baseline the spray window's failures must reach.
    #[arg(long, env = "GATEHOUSE_ALERT_SPRAY_FACTOR", default_value_t = 5)]
    pub alert_spray_factor: i64,
    /// Alerts: spray window in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_SPRAY_WINDOW_SECONDS",
        default_value_t = 900
    )]
    pub alert_spray_window_seconds: i64,
    /// Alerts: preceding windows averaged into the spray baseline.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_SPRAY_BASELINE_WINDOWS",
        default_value_t = 8
    )]
    pub alert_spray_baseline_windows: i64,
    /// Alerts: seconds after a password reset or unlock in which a sign-in is reported.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_AFTER_RECOVERY_SECONDS",
        default_value_t = 3600
    )]
    pub alert_after_recovery_seconds: i64,
    /// Alerts: exhausted one-time codes of one account that make code guessing.
    #[arg(long, env = "GATEHOUSE_ALERT_CODE_EXHAUSTED", default_value_t = 1)]
    pub alert_code_exhausted: i64,
    /// Alerts: recovery flows started for one account that make a burst.
    #[arg(long, env = "GATEHOUSE_ALERT_RECOVERY_FLOWS", default_value_t = 5)]
    pub alert_recovery_flows: i64,
    /// Alerts: window of the code-guessing and recovery-burst counts, in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_RECOVERY_WINDOW_SECONDS",
        default_value_t = 3600
    )]
    pub alert_recovery_window_seconds: i64,
    /// Alerts: distinct accounts locked that make a lockout storm.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_LOCKOUT_STORM_ACCOUNTS",
        default_value_t = 10
    )]
    pub alert_lockout_storm_accounts: i64,
    /// Alerts: lockout-storm window in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_LOCKOUT_STORM_WINDOW_SECONDS",
        default_value_t = 600
    )]
    pub alert_lockout_storm_window_seconds: i64,
    /// Alerts: how long a single-event alert (new device, code guessing…) gathers repeats, in
    /// seconds.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_REPEAT_WINDOW_SECONDS",
        default_value_t = 86_400
    )]
    pub alert_repeat_window_seconds: i64,
    /// Alerts: one-minute windows in which the rate limits refused one IP (counted per route and
    /// server process) that make rate limit abuse.
    #[arg(long, env = "GATEHOUSE_ALERT_RATE_LIMIT_WINDOWS", default_value_t = 3)]
    pub alert_rate_limit_windows: i64,
    /// Alerts: rate-limit-abuse window in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_ALERT_RATE_LIMIT_WINDOW_SECONDS",
        default_value_t = 3600
    )]
    pub alert_rate_limit_window_seconds: i64,
    /// WebAuthn relying-party id: the registrable domain the security keys are bound to (the
    /// site's host or a parent of it).
    #[arg(long, env = "GATEHOUSE_WEBAUTHN_RP_ID", default_value = "localhost")]
    pub webauthn_rp_id: String,
    /// WebAuthn origins the frontends run on (comma-separated; https, or http on localhost).
    #[arg(
        long,
        env = "GATEHOUSE_WEBAUTHN_ORIGINS",
        value_delimiter = ',',
        default_value = "http://localhost:8080"
    )]
    pub webauthn_origins: Vec<String>,
    /// Name shown by the browser and the key when registering.
    #[arg(long, env = "GATEHOUSE_WEBAUTHN_RP_NAME", default_value = "Gatehouse")]
    pub webauthn_rp_name: String,
    /// How long a session counts as stepped up after it proved a second factor (high-risk
    /// routes need that), in seconds.
    #[arg(long, env = "GATEHOUSE_STEP_UP_SECONDS", default_value_t = 900)]
    pub step_up_seconds: i64,
    /// High-risk actions pause this long after a second factor is added, in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_COOLDOWN_AFTER_FACTOR_ADDED_SECONDS",
        default_value_t = 86_400
    )]
    pub cooldown_after_factor_added_seconds: i64,
    /// High-risk actions pause this long after the email or the phone is replaced or added, or
    /// the password is changed while signed in.
    #[arg(
        long,
        env = "GATEHOUSE_COOLDOWN_AFTER_CONTACT_CHANGED_SECONDS",
        default_value_t = 86_400
    )]
    pub cooldown_after_contact_changed_seconds: i64,
    /// High-risk actions pause this long after an API key with the `withdraw` scope is created.
    #[arg(
        long,
        env = "GATEHOUSE_COOLDOWN_AFTER_WITHDRAW_KEY_SECONDS",
        default_value_t = 86_400
    )]
    pub cooldown_after_withdraw_key_seconds: i64,
    /// High-risk actions pause this long after whitelist-only withdrawals are turned off.
    #[arg(
        long,
        env = "GATEHOUSE_COOLDOWN_AFTER_WHITELIST_OFF_SECONDS",
        default_value_t = 86_400
    )]
    pub cooldown_after_whitelist_off_seconds: i64,
    /// A newly whitelisted withdrawal address is usable after this long, in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_WHITELIST_ADDRESS_COOLDOWN_SECONDS",
        default_value_t = 86_400
    )]
    pub whitelist_address_cooldown_seconds: i64,
    /// After a rotation, an API key's previous secret keeps working this long, in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_API_KEY_ROTATION_GRACE_SECONDS",
        default_value_t = 86_400
    )]
    pub api_key_rotation_grace_seconds: i64,
    /// How long a team invitation may be accepted, in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_TEAM_INVITATION_SECONDS",
        default_value_t = 604_800
    )]
    pub team_invitation_seconds: i64,
    /// Sign-in needs a verified email or phone: until one is verified, the right password is
    /// answered like a wrong one (`true` or `false`).
    #[arg(
        long,
        env = "GATEHOUSE_REQUIRE_VERIFIED_CONTACT",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub require_verified_contact: bool,
    /// An identifier an account claimed at sign-up and never verified is given to a later
    /// sign-up with the same identifier once the claim is this old, in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_UNVERIFIED_CLAIM_SECONDS",
        default_value_t = 86_400
    )]
    pub unverified_claim_seconds: i64,
    /// How long a staff token works after it is issued, in seconds (a token issued before
    /// tokens expired counts from the member's creation).
    #[arg(
        long,
        env = "GATEHOUSE_STAFF_TOKEN_SECONDS",
        default_value_t = 2_592_000
    )]
    pub staff_token_seconds: i64,
    /// Bearer token that `/metrics` needs on the public address (compared in constant time).
    /// Unset, and without GATEHOUSE_METRICS_LISTEN, metrics are not served.
    #[arg(long, env = "GATEHOUSE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// A separate address serving only `/metrics`, without a token (e.g. `127.0.0.1:9100`,
    /// reachable by the scraper only).
    #[arg(long, env = "GATEHOUSE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

/// A setting is out of range.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting: {0}")]
pub struct ConfigError(pub String);

impl ServeArgs {
    /// Lockout policy from the settings.
    pub fn lockout(&self) -> Result<LockoutPolicy, ConfigError> {
        if self.lockout_threshold == 0
            || self.lockout_seconds <= 0
            || self.lockout_max_seconds < self.lockout_seconds
        {
            return Err(ConfigError(
                "GATEHOUSE_LOCKOUT_THRESHOLD and GATEHOUSE_LOCKOUT_SECONDS must be positive, and GATEHOUSE_LOCKOUT_MAX_SECONDS at least GATEHOUSE_LOCKOUT_SECONDS".into(),
            ));
        }
        Ok(LockoutPolicy {
            threshold: self.lockout_threshold,
            base: chrono::Duration::seconds(self.lockout_seconds),
            max: chrono::Duration::seconds(self.lockout_max_seconds),
        })
    }

    /// Session policy from the settings.
    pub fn sessions(&self) -> Result<SessionPolicy, ConfigError> {
        if self.session_idle_seconds <= 0
            || self.session_absolute_seconds < self.session_idle_seconds
            || self.session_max_active == 0
        {
            return Err(ConfigError(
                "session lifetimes must be positive, the absolute one at least the idle one, and GATEHOUSE_SESSION_MAX_ACTIVE at least 1".into(),
            ));
        }
        let idle = chrono::Duration::seconds(self.session_idle_seconds);
        Ok(SessionPolicy {
            absolute: chrono::Duration::seconds(self.session_absolute_seconds),
            idle,
            // Extend at most every sixth of the idle window: bounded writes, bounded staleness.
            extend_after: idle / 6,
            max_active: self.session_max_active,
            step_up: chrono::Duration::seconds(self.step_up_seconds),
        })
    }

    /// One-time code policy from the settings.
    pub fn codes(&self) -> Result<CodePolicy, ConfigError> {
        if self.code_ttl_seconds <= 0
            || self.code_max_attempts == 0
            || self.code_resend_seconds < 0
            || self.code_max_per_hour == 0
        {
            return Err(ConfigError(
                "GATEHOUSE_CODE_TTL_SECONDS, GATEHOUSE_CODE_MAX_ATTEMPTS and GATEHOUSE_CODE_MAX_PER_HOUR must be positive, GATEHOUSE_CODE_RESEND_SECONDS not negative".into(),
            ));
        }
        Ok(CodePolicy {
            ttl: chrono::Duration::seconds(self.code_ttl_seconds),
            max_attempts: self.code_max_attempts,
            resend_cooldown: chrono::Duration::seconds(self.code_resend_seconds),
            max_per_hour: self.code_max_per_hour,
            // Never below one requester's budget (the policy applies the same floor).
            account_ceiling_per_hour: self
                .code_account_ceiling_per_hour
                .max(self.code_max_per_hour),
        })
    }

    /// Trusted-device policy from the settings (their doors lock for as long as the untrusted
    /// door's locks).
    pub fn devices(&self) -> Result<DevicePolicy, ConfigError> {
        if self.device_lockout_threshold == 0 || self.device_token_days <= 0 {
            return Err(ConfigError(
                "GATEHOUSE_DEVICE_LOCKOUT_THRESHOLD and GATEHOUSE_DEVICE_TOKEN_DAYS must be positive"
                    .into(),
            ));
        }
        Ok(DevicePolicy {
            ttl: chrono::Duration::days(self.device_token_days.min(3650)),
            lockout: LockoutPolicy {
                threshold: self.device_lockout_threshold,
                ..self.lockout()?
            },
        })
    }

    /// Cooldown policy from the settings.
    pub fn cooldowns(&self) -> Result<CooldownPolicy, ConfigError> {
        if [
            self.high_risk_cooldown_seconds,
            self.recovery_hold_seconds,
            self.cooldown_after_factor_added_seconds,
            self.cooldown_after_contact_changed_seconds,
            self.cooldown_after_withdraw_key_seconds,
            self.cooldown_after_whitelist_off_seconds,
            self.whitelist_address_cooldown_seconds,
        ]
        .iter()
        .any(|s| *s < 0)
        {
            return Err(ConfigError(
                "cooldowns and holds (GATEHOUSE_HIGH_RISK_COOLDOWN_SECONDS, GATEHOUSE_RECOVERY_HOLD_SECONDS, GATEHOUSE_COOLDOWN_*, GATEHOUSE_WHITELIST_ADDRESS_COOLDOWN_SECONDS) must not be negative".into(),
            ));
        }
        let seconds = chrono::Duration::seconds;
        Ok(CooldownPolicy {
            after_password_reset: seconds(self.high_risk_cooldown_seconds),
            recovery_hold: seconds(self.recovery_hold_seconds),
            after_factor_added: seconds(self.cooldown_after_factor_added_seconds),
            after_withdraw_key: seconds(self.cooldown_after_withdraw_key_seconds),
            after_contact_changed: seconds(self.cooldown_after_contact_changed_seconds),
            after_whitelist_disabled: seconds(self.cooldown_after_whitelist_off_seconds),
            new_address: seconds(self.whitelist_address_cooldown_seconds),
        })
    }

    /// Staff token lifetime and the metrics token from the settings.
    pub fn access(&self) -> Result<crate::state::AccessSettings, ConfigError> {
        if self.staff_token_seconds <= 0 {
            return Err(ConfigError(
                "GATEHOUSE_STAFF_TOKEN_SECONDS must be positive".into(),
            ));
        }
        let metrics_token = match self.metrics_token.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(t) if t.len() < 16 => {
                return Err(ConfigError(
                    "GATEHOUSE_METRICS_TOKEN must be at least 16 characters (e.g. `openssl rand -hex 32`)".into(),
                ))
            }
            Some(t) => Some(secrecy::SecretString::from(t.to_string())),
        };
        Ok(crate::state::AccessSettings {
            staff_token_lifetime: chrono::Duration::seconds(self.staff_token_seconds),
            metrics_token,
        })
    }

    /// Contact verification policy from the settings.
    pub fn contacts(&self) -> Result<ContactPolicy, ConfigError> {
        if self.unverified_claim_seconds <= 0 {
            return Err(ConfigError(
                "GATEHOUSE_UNVERIFIED_CLAIM_SECONDS must be positive".into(),
            ));
        }
        Ok(ContactPolicy {
            require_verified_for_sign_in: self.require_verified_contact,
            unverified_claim_ttl: chrono::Duration::seconds(self.unverified_claim_seconds),
        })
    }

    /// API key rotation grace and team invitation lifetime from the settings (the step-up window
    /// is part of the session policy the aggregate reads).
    pub fn controls(&self) -> Result<crate::state::ControlSettings, ConfigError> {
        if self.step_up_seconds <= 0
            || self.api_key_rotation_grace_seconds < 0
            || self.team_invitation_seconds <= 0
        {
            return Err(ConfigError(
                "GATEHOUSE_STEP_UP_SECONDS and GATEHOUSE_TEAM_INVITATION_SECONDS must be positive, GATEHOUSE_API_KEY_ROTATION_GRACE_SECONDS not negative".into(),
            ));
        }
        Ok(crate::state::ControlSettings {
            rotation_grace: chrono::Duration::seconds(self.api_key_rotation_grace_seconds),
            team_invitation: chrono::Duration::seconds(self.team_invitation_seconds),
        })
    }

    /// The rate limit table: `GATEHOUSE_RATE_LIMIT_<ROUTE>_PER_<KEY>_PER_MINUTE` from the
    /// environment (environment only, no flags), the generic settings as the self-service
    /// defaults.
    pub fn rate_limits(&self) -> Result<crate::throttle::LimitTable, ConfigError> {
        crate::throttle::LimitTable::from_vars(
            std::env::vars(),
            self.rate_limit_per_ip_per_minute,
            self.rate_limit_per_identifier_per_minute,
        )
        .map_err(ConfigError)
    }

    /// Argon2 parameters from the settings.
    pub fn argon2(&self) -> Argon2Settings {
        Argon2Settings {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        }
    }

    /// Alert thresholds from the settings.
    pub fn alert_policy(&self) -> Result<AlertPolicy, ConfigError> {
        let policy = AlertPolicy {
            brute_force_failures: self.alert_brute_force_failures,
            brute_force_window_s: self.alert_brute_force_window_seconds,
            stuffing_ip_identifiers: self.alert_stuffing_ip_identifiers,
            stuffing_net_identifiers: self.alert_stuffing_net_identifiers,
            stuffing_window_s: self.alert_stuffing_window_seconds,
            spray_min_failures: self.alert_spray_min_failures,
            spray_min_accounts: self.alert_spray_min_accounts,
            spray_min_ips: self.alert_spray_min_ips,
            spray_factor: self.alert_spray_factor,
            spray_window_s: self.alert_spray_window_seconds,
            spray_baseline_windows: self.alert_spray_baseline_windows,
            after_recovery_window_s: self.alert_after_recovery_seconds,
            code_exhausted: self.alert_code_exhausted,
            recovery_flows: self.alert_recovery_flows,
            recovery_window_s: self.alert_recovery_window_seconds,
            lockout_storm_accounts: self.alert_lockout_storm_accounts,
            lockout_storm_window_s: self.alert_lockout_storm_window_seconds,
            repeat_window_s: self.alert_repeat_window_seconds,
            rate_limit_windows: self.alert_rate_limit_windows,
            rate_limit_window_s: self.alert_rate_limit_window_seconds,
        };
        policy.validate().map_err(ConfigError)?;
        Ok(policy)
    }

    /// WebAuthn relying party from the settings.
    pub fn relying_party(&self) -> Result<crate::webauthn::RelyingParty, ConfigError> {
        crate::webauthn::RelyingParty::new(&crate::webauthn::RelyingPartySettings {
            rp_id: self.webauthn_rp_id.clone(),
            origins: self.webauthn_origins.clone(),
            rp_name: self.webauthn_rp_name.clone(),
        })
        .map_err(ConfigError)
    }

    /// The SMS pumping guard from the settings.
    pub fn sms_budget(&self) -> Result<crate::sms_budget::SmsBudget, ConfigError> {
        let mut deny_prefixes = Vec::new();
        for raw in &self.sms_deny_prefixes {
            let prefix = raw.trim();
            if prefix.is_empty() {
                continue;
            }
            let digits = prefix.strip_prefix('+').unwrap_or("");
            if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(ConfigError(format!(
                    "GATEHOUSE_SMS_DENY_PREFIXES: {prefix:?} is not a + followed by digits"
                )));
            }
            deny_prefixes.push(prefix.to_string());
        }
        Ok(crate::sms_budget::SmsBudget {
            per_hour: self.sms_max_per_hour,
            per_prefix_per_hour: self.sms_max_per_prefix_per_hour,
            deny_prefixes,
        })
    }

    /// The breached-password check from the settings (off when neither source is set).
    pub fn breach_check(&self) -> Result<crate::breach::BreachCheck, ConfigError> {
        use std::sync::Arc;
        if self.pwned_min_count == 0 {
            return Err(ConfigError(
                "GATEHOUSE_PWNED_MIN_COUNT must be at least 1".into(),
            ));
        }
        let mut sources: Vec<Arc<dyn gatehouse_domain::password::BreachedPasswords>> = Vec::new();
        if let Some(path) = &self.pwned_file {
            sources.push(Arc::new(
                crate::breach::PwnedFile::new(path.clone()).map_err(ConfigError)?,
            ));
        }
        if let Some(url) = &self.pwned_range_url {
            sources.push(Arc::new(
                crate::breach::PwnedRange::new(url).map_err(ConfigError)?,
            ));
        }
        Ok(crate::breach::BreachCheck::new(
            sources,
            self.pwned_min_count,
        ))
    }

    /// Password policy from the settings.
    pub fn password_policy(&self) -> Result<PasswordPolicy, ConfigError> {
        if self.password_min_length == 0
            || self.password_max_length < self.password_min_length
            || self.password_max_length > 4096
        {
            return Err(ConfigError(
                "password lengths must satisfy 0 < min <= max <= 4096".into(),
            ));
        }
        Ok(PasswordPolicy {
            min_len: self.password_min_length,
            max_len: self.password_max_length,
        })
    }
}
