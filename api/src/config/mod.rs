//! Settings, from flags or environment variables (every one is listed in the README).
//!
//! `gatehouse serve` takes one group of settings per concern (one file each). A value out of its
//! range is refused by clap while parsing, naming the flag and the environment variable; each
//! group then converts into the policy it configures (`From`, or `TryFrom` with a [`ConfigError`]
//! where settings constrain each other).
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod access;
mod accounts;
mod alerts;
mod codes;
mod cooldowns;
mod delivery;
mod http;
mod limits;
mod lockout;
pub(crate) mod parse;
mod passwords;
mod sessions;
mod store;
mod streaming;
mod ui;
mod webhooks;

pub use access::AccessArgs;
pub use accounts::AccountArgs;
pub use alerts::AlertArgs;
pub use codes::CodeArgs;
pub use cooldowns::CooldownArgs;
pub use delivery::DeliveryArgs;
pub use http::HttpArgs;
pub use limits::LimitArgs;
pub use lockout::LockoutArgs;
pub use parse::MAX_SECONDS;
pub use passwords::PasswordArgs;
pub use sessions::SessionArgs;
pub use store::StoreArgs;
pub use streaming::StreamingArgs;
pub use ui::{UiArgs, UiMode};
pub use webhooks::WebhookArgs;

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
        default_value_t = 2_592_000,
        value_parser = parse::seconds(1)
    )]
    pub staff_token_seconds: u64,
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

/// Settings of `gatehouse serve`, one group per concern.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Where the events live.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Listening and client addresses.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Staff tokens and metrics access.
    #[command(flatten)]
    pub access: AccessArgs,
    /// Lockout of the untrusted door and of trusted devices' doors.
    #[command(flatten)]
    pub lockout: LockoutArgs,
    /// Session lifetimes and step-up.
    #[command(flatten)]
    pub sessions: SessionArgs,
    /// Password hashing and length.
    #[command(flatten)]
    pub passwords: PasswordArgs,
    /// One-time codes.
    #[command(flatten)]
    pub codes: CodeArgs,
    /// Cooldowns of high-risk actions.
    #[command(flatten)]
    pub cooldowns: CooldownArgs,
    /// Message delivery.
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    /// Rate limits, SMS budgets and the breached-password check.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Alert thresholds.
    #[command(flatten)]
    pub alerts: AlertArgs,
    /// Contacts, API keys, teams and WebAuthn.
    #[command(flatten)]
    pub accounts: AccountArgs,
    /// The event stream published to NATS JetStream.
    #[command(flatten)]
    pub streaming: StreamingArgs,
    /// The pages (self-service and staff console).
    #[command(flatten)]
    pub ui: UiArgs,
}

/// Settings that are each in range but wrong together, or that a component refuses.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The longest lock is shorter than the first.
    #[error("invalid setting: GATEHOUSE_LOCKOUT_MAX_SECONDS ({max}) must be at least GATEHOUSE_LOCKOUT_SECONDS ({base})")]
    LockoutMaxBelowBase {
        /// GATEHOUSE_LOCKOUT_SECONDS.
        base: u64,
        /// GATEHOUSE_LOCKOUT_MAX_SECONDS.
        max: u64,
    },
    /// The absolute session lifetime is shorter than the idle one.
    #[error("invalid setting: GATEHOUSE_SESSION_ABSOLUTE_SECONDS ({absolute}) must be at least GATEHOUSE_SESSION_IDLE_SECONDS ({idle})")]
    SessionAbsoluteBelowIdle {
        /// GATEHOUSE_SESSION_IDLE_SECONDS.
        idle: u64,
        /// GATEHOUSE_SESSION_ABSOLUTE_SECONDS.
        absolute: u64,
    },
    /// The longest password is shorter than the shortest.
    #[error("invalid setting: GATEHOUSE_PASSWORD_MAX_LENGTH ({max}) must be at least GATEHOUSE_PASSWORD_MIN_LENGTH ({min})")]
    PasswordMaxBelowMin {
        /// GATEHOUSE_PASSWORD_MIN_LENGTH.
        min: usize,
        /// GATEHOUSE_PASSWORD_MAX_LENGTH.
        max: usize,
    },
    /// The metrics token is too short to resist guessing.
    #[error("invalid setting: GATEHOUSE_METRICS_TOKEN must be at least 16 characters (e.g. `openssl rand -hex 32`)")]
    MetricsTokenTooShort,
    /// A denied SMS prefix is not `+` and digits.
    #[error("invalid setting: GATEHOUSE_SMS_DENY_PREFIXES: {0:?} is not a + followed by digits")]
    SmsDenyPrefix(String),
    /// The alert policy refused its thresholds.
    #[error("invalid setting: alerts: {0}")]
    Alerts(String),
    /// A `GATEHOUSE_RATE_LIMIT_*` variable is wrong.
    #[error("invalid setting: {0}")]
    RateLimits(String),
    /// The WebAuthn relying party settings are wrong.
    #[error("invalid setting: {0}")]
    RelyingParty(String),
    /// A breached-password source could not be set up.
    #[error("invalid setting: {0}")]
    BreachCheck(String),
    /// A `GATEHOUSE_NATS_*` setting is wrong.
    #[error("invalid setting: {0}")]
    Nats(String),
}
