//! Password hashing (Argon2id) and the password length rule.
use clap::Args;
use gatehouse_domain::password::{Argon2Settings, PasswordPolicy};

use super::parse::count_usize;
use super::ConfigError;

/// The longest password any setting allows, in code points.
const MAX_PASSWORD_LENGTH: u64 = 4096;

/// Password settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Passwords")]
pub struct PasswordArgs {
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
    /// Shortest password, in code points.
    #[arg(
        long,
        env = "GATEHOUSE_PASSWORD_MIN_LENGTH",
        default_value_t = 12,
        value_parser = count_usize(1, MAX_PASSWORD_LENGTH)
    )]
    pub password_min_length: usize,
    /// Longest password, in code points.
    #[arg(
        long,
        env = "GATEHOUSE_PASSWORD_MAX_LENGTH",
        default_value_t = 128,
        value_parser = count_usize(1, MAX_PASSWORD_LENGTH)
    )]
    pub password_max_length: usize,
}

impl PasswordArgs {
    /// Hashes computed at once: the setting, else the number of CPU cores.
    pub fn concurrency(&self) -> usize {
        self.hash_concurrency.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }
}

impl From<&PasswordArgs> for Argon2Settings {
    fn from(args: &PasswordArgs) -> Self {
        Argon2Settings {
            memory_kib: args.argon2_memory_kib,
            iterations: args.argon2_iterations,
            parallelism: args.argon2_parallelism,
        }
    }
}

impl TryFrom<&PasswordArgs> for PasswordPolicy {
    type Error = ConfigError;

    fn try_from(args: &PasswordArgs) -> Result<Self, ConfigError> {
        if args.password_max_length < args.password_min_length {
            return Err(ConfigError::PasswordMaxBelowMin {
                min: args.password_min_length,
                max: args.password_max_length,
            });
        }
        Ok(PasswordPolicy {
            min_len: args.password_min_length,
            max_len: args.password_max_length,
        })
    }
}
