//! What every handler shares.
use std::net::IpAddr;
use std::sync::Arc;

use gatehouse_domain::password::PasswordPolicy;
use gatehouse_domain::Account;
use gatehouse_projections::store::CommandExecutor;
use gatehouse_projections::{ProjectionRunner, Store};

use crate::keys::Keys;

/// Shared application state.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    accounts: CommandExecutor<Account>,
    keys: Keys,
    runner: ProjectionRunner,
    password_policy: PasswordPolicy,
    trusted_proxies: Vec<IpAddr>,
}

impl AppState {
    /// Assembles the state.
    pub fn new(
        store: Store,
        accounts: CommandExecutor<Account>,
        keys: Keys,
        runner: ProjectionRunner,
        password_policy: PasswordPolicy,
        trusted_proxies: Vec<IpAddr>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                accounts,
                keys,
                runner,
                password_policy,
                trusted_proxies,
            }),
        }
    }

    /// The store (side tables and read models).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Runs `Account` commands.
    pub fn accounts(&self) -> &CommandExecutor<Account> {
        &self.inner.accounts
    }

    /// Server keys.
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// The projections runner (to nudge after commits).
    pub fn runner(&self) -> &ProjectionRunner {
        &self.inner.runner
    }

    /// Password policy for new passwords.
    pub fn password_policy(&self) -> &PasswordPolicy {
        &self.inner.password_policy
    }

    /// Proxies whose `X-Forwarded-For` is believed.
    pub fn trusted_proxies(&self) -> &[IpAddr] {
        &self.inner.trusted_proxies
    }
}
