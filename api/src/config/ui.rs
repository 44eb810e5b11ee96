//! The pages the binary serves (issue #21): on by default, off for API-only deployments.
use clap::{Args, ValueEnum};

use super::parse;

/// Whether `gatehouse serve` serves the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UiMode {
    /// The self-service pages at `/` and the staff console at `/console`.
    On,
    /// API only: `/` and `/console` answer `404 not_found` like any unknown path.
    Off,
}

/// Page settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Pages")]
pub struct UiArgs {
    /// Serve the self-service pages (`/`) and the staff console (`/console`); `off` for an
    /// API-only deployment. `GET /freeze` (the freeze link's page) is served either way. Cookies
    /// are `Secure` with the `__Host-` prefix when GATEHOUSE_PUBLIC_URL is https.
    #[arg(long, env = "GATEHOUSE_UI", value_enum, default_value_t = UiMode::On)]
    pub ui: UiMode,
    /// The staff console's session ends after this many seconds without a request (it also
    /// ends at once when the staff token is revoked or expires).
    #[arg(
        long,
        env = "GATEHOUSE_CONSOLE_IDLE_SECONDS",
        default_value_t = 900,
        value_parser = parse::seconds(1)
    )]
    pub console_idle_seconds: u64,
}
