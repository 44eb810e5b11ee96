//! Account-level rules: verified contacts, API key rotation, team invitations and the WebAuthn
//! relying party.
use clap::Args;
use gatehouse_domain::policy::ContactPolicy;

use super::parse::{duration, seconds};
use super::ConfigError;
use crate::state::ControlSettings;
use crate::webauthn::{RelyingParty, RelyingPartySettings};

/// Account settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Accounts")]
pub struct AccountArgs {
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
        default_value_t = 86_400,
        value_parser = seconds(1)
    )]
    pub unverified_claim_seconds: u64,
    /// After a rotation, an API key's previous secret keeps working this long, in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_API_KEY_ROTATION_GRACE_SECONDS",
        default_value_t = 86_400,
        value_parser = seconds(0)
    )]
    pub api_key_rotation_grace_seconds: u64,
    /// How long a team invitation may be accepted, in seconds.
    #[arg(
        long,
        env = "GATEHOUSE_TEAM_INVITATION_SECONDS",
        default_value_t = 604_800,
        value_parser = seconds(1)
    )]
    pub team_invitation_seconds: u64,
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
}

impl From<&AccountArgs> for ContactPolicy {
    fn from(args: &AccountArgs) -> Self {
        ContactPolicy {
            require_verified_for_sign_in: args.require_verified_contact,
            unverified_claim_ttl: duration(args.unverified_claim_seconds),
        }
    }
}

/// API key rotation grace and team invitation lifetime (the step-up window is part of the
/// session policy the aggregate reads).
impl From<&AccountArgs> for ControlSettings {
    fn from(args: &AccountArgs) -> Self {
        ControlSettings {
            rotation_grace: duration(args.api_key_rotation_grace_seconds),
            team_invitation: duration(args.team_invitation_seconds),
        }
    }
}

impl TryFrom<&AccountArgs> for RelyingParty {
    type Error = ConfigError;

    fn try_from(args: &AccountArgs) -> Result<Self, ConfigError> {
        RelyingParty::new(&RelyingPartySettings {
            rp_id: args.webauthn_rp_id.clone(),
            origins: args.webauthn_origins.clone(),
            rp_name: args.webauthn_rp_name.clone(),
        })
        .map_err(ConfigError::RelyingParty)
    }
}
