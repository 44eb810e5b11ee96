//! What every handler shares.
use std::net::IpAddr;
use std::sync::Arc;

use gatehouse_domain::password::PasswordPolicy;
use gatehouse_domain::Account;
use gatehouse_projections::ProjectionRunner;
use gatehouse_store::{AggregateStore, CommandExecutor, Store};

use crate::keys::Keys;
use crate::throttle::Throttle;

/// Shared application state.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// The pools of background work (outbox and webhook workers), apart from the requests'
    /// ([`gatehouse_store::Store::background`]); the requests' store when not given.
    background: Store,
    accounts: CommandExecutor<Account>,
    keys: Keys,
    runner: ProjectionRunner,
    password_policy: PasswordPolicy,
    trusted_proxies: Vec<IpAddr>,
    throttle: Throttle,
    /// Identifier lookup hash → account id, for accounts that have signed in. An entry goes stale
    /// only when the account changes that contact; the account then refuses the attempt
    /// (`IdentifierMoved`) and the entry is dropped.
    known_accounts: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Runs `Staff` commands (admin API).
    staff: CommandExecutor<gatehouse_domain::staff::Staff>,
    /// Runs `Team` commands.
    teams: CommandExecutor<gatehouse_domain::team::Team>,
    /// Stricter sign-in limits for networks flagged by alerts.
    protection: crate::protection::Protection,
    /// Step-up window and API key rotation grace.
    controls: ControlSettings,
    /// WebAuthn relying party (security keys).
    relying_party: Option<crate::webauthn::RelyingParty>,
    /// Turns true when the server begins shutting down (ends live feeds).
    closing: tokio::sync::watch::Sender<bool>,
    /// Staff token lifetime and who may read `/metrics`.
    access: AccessSettings,
    /// Breached-password corpus (off unless configured).
    breaches: crate::breach::BreachCheck,
    /// SMS budgets and deny-list.
    sms_budget: crate::sms_budget::SmsBudget,
    /// Longest wait of a read-model answer for the caller's own latest event.
    read_your_writes: std::time::Duration,
    /// The NATS JetStream publisher of this process, when `GATEHOUSE_NATS_URL` is set.
    nats: Option<crate::nats::NatsPublisher>,
    /// Webhook subscriptions, their feed and delivery worker.
    webhooks: crate::webhooks::Webhooks,
    /// Whether the pages are served, and how their cookies are set.
    ui: crate::ui_settings::UiSettings,
    /// The origins allowed to call the API from a browser (`GATEHOUSE_CORS_ORIGINS`).
    cors: crate::cors::CorsSettings,
}

/// Operators' access: staff token lifetime and the metrics token.
#[derive(Clone)]
pub struct AccessSettings {
    /// How long a staff token works after it is issued.
    pub staff_token_lifetime: chrono::Duration,
    /// Bearer token `/metrics` needs on the public address; `None`: not served there.
    pub metrics_token: Option<secrecy::SecretString>,
}

impl Default for AccessSettings {
    fn default() -> Self {
        Self {
            staff_token_lifetime: chrono::Duration::days(30),
            metrics_token: None,
        }
    }
}

/// Settings of the power-user controls.
#[derive(Debug, Clone)]
pub struct ControlSettings {
    /// How long a rotated API key's previous secret keeps working.
    pub rotation_grace: chrono::Duration,
    /// How long a team invitation may be accepted.
    pub team_invitation: chrono::Duration,
}

impl Default for ControlSettings {
    fn default() -> Self {
        Self {
            rotation_grace: chrono::Duration::hours(24),
            team_invitation: chrono::Duration::days(7),
        }
    }
}

/// Entries kept in the identifier cache before it starts over.
const KNOWN_ACCOUNTS_CAPACITY: usize = 100_000;

impl AppState {
    /// Assembles the state.
    pub fn new(
        store: Store,
        accounts: CommandExecutor<Account>,
        keys: Keys,
        runner: ProjectionRunner,
        password_policy: PasswordPolicy,
        trusted_proxies: Vec<IpAddr>,
        throttle: Throttle,
    ) -> Self {
        // Every executor wakes the projections runner after each commit (coalesced), so no
        // handler nudges the read side.
        let committed = runner.commit_signal();
        let accounts = accounts.with_commit_signal(committed.clone());
        let staff = CommandExecutor::new(AggregateStore::new(&store, Vec::new()), ())
            .with_commit_signal(committed.clone());
        let teams = CommandExecutor::new(AggregateStore::new(&store, Vec::new()), ())
            .with_commit_signal(committed.clone());
        let webhooks = crate::webhooks::Webhooks::new(
            &store,
            committed,
            crate::webhooks::WebhookSettings::default(),
        );
        Self {
            inner: Arc::new(Inner {
                background: store.clone(),
                staff,
                teams,
                relying_party: None,
                controls: ControlSettings::default(),
                closing: tokio::sync::watch::Sender::new(false),
                access: AccessSettings::default(),
                breaches: crate::breach::BreachCheck::default(),
                sms_budget: crate::sms_budget::SmsBudget::default(),
                read_your_writes: std::time::Duration::from_millis(1000),
                nats: None,
                webhooks,
                ui: crate::ui_settings::UiSettings::default(),
                cors: crate::cors::CorsSettings::default(),
                protection: crate::protection::Protection::new(
                    &store,
                    runner.commit_signal(),
                    crate::protection::ProtectionSettings {
                        per_minute: 5,
                        flag_for: chrono::Duration::hours(1),
                    },
                ),
                store,
                accounts,
                keys,
                runner,
                password_policy,
                trusted_proxies,
                throttle,
                known_accounts: Default::default(),
            }),
        }
    }

    /// Gives background work pools of its own ([`AppState::background_store`]).
    pub fn with_background_store(mut self, background: Store) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.background = background;
        }
        self
    }

    /// The store of background work: the outbox and webhook workers use it, requests never do.
    pub fn background_store(&self) -> &Store {
        &self.inner.background
    }

    /// Sets how long a read-model answer waits for the caller's own latest event.
    pub fn with_read_your_writes(mut self, wait: std::time::Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.read_your_writes = wait;
        }
        self
    }

    /// Sets whether the pages are served and how their cookies are set (call right after
    /// [`AppState::new`]).
    pub fn with_ui(mut self, ui: crate::ui_settings::UiSettings) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.ui = ui;
        }
        self
    }

    /// Sets the origins allowed to call the API from a browser (call right after
    /// [`AppState::new`]).
    pub fn with_cors(mut self, cors: crate::cors::CorsSettings) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.cors = cors;
        }
        self
    }

    /// The origins allowed to call the API from a browser.
    pub fn cors(&self) -> &crate::cors::CorsSettings {
        &self.inner.cors
    }

    /// Whether the pages are served, and how their cookies are set.
    pub fn ui(&self) -> &crate::ui_settings::UiSettings {
        &self.inner.ui
    }

    /// How long a read-model answer waits for the caller's own latest event.
    pub fn read_your_writes(&self) -> std::time::Duration {
        self.inner.read_your_writes
    }

    /// The store (side tables and read models).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Runs `Account` commands.
    pub fn accounts(&self) -> &CommandExecutor<Account> {
        &self.inner.accounts
    }

    /// Runs `Staff` commands.
    pub fn staff(&self) -> &CommandExecutor<gatehouse_domain::staff::Staff> {
        &self.inner.staff
    }

    /// Runs `Team` commands.
    pub fn teams(&self) -> &CommandExecutor<gatehouse_domain::team::Team> {
        &self.inner.teams
    }

    /// Replaces the alert feedback settings (call right after [`AppState::new`], before the state
    /// is shared).
    pub fn with_protection(mut self, settings: crate::protection::ProtectionSettings) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.protection = crate::protection::Protection::new(
                &inner.store,
                inner.runner.commit_signal(),
                settings,
            );
        }
        self
    }

    /// Replaces the step-up and API key settings (call right after [`AppState::new`]).
    pub fn with_controls(mut self, controls: ControlSettings) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.controls = controls;
        }
        self
    }

    /// Step-up window and API key rotation grace.
    pub fn controls(&self) -> &ControlSettings {
        &self.inner.controls
    }

    /// Replaces the WebAuthn relying party (call right after [`AppState::new`]).
    pub fn with_relying_party(mut self, relying_party: crate::webauthn::RelyingParty) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.relying_party = Some(relying_party);
        }
        self
    }

    /// Replaces the staff token lifetime and metrics token (call right after [`AppState::new`]).
    pub fn with_access(mut self, access: AccessSettings) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.access = access;
        }
        self
    }

    /// Replaces the breached-password check (call right after [`AppState::new`]).
    pub fn with_breach_check(mut self, breaches: crate::breach::BreachCheck) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.breaches = breaches;
        }
        self
    }

    /// Replaces the SMS budgets and deny-list (call right after [`AppState::new`]).
    pub fn with_sms_budget(mut self, sms_budget: crate::sms_budget::SmsBudget) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.sms_budget = sms_budget;
        }
        self
    }

    /// The SMS budgets and deny-list.
    pub fn sms_budget(&self) -> &crate::sms_budget::SmsBudget {
        &self.inner.sms_budget
    }

    /// With the NATS JetStream publisher (its metrics are served on `/metrics`).
    pub fn with_nats(mut self, nats: Option<crate::nats::NatsPublisher>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.nats = nats;
        }
        self
    }

    /// The NATS JetStream publisher, when configured.
    pub fn nats(&self) -> Option<&crate::nats::NatsPublisher> {
        self.inner.nats.as_ref()
    }

    /// Sets the webhook settings (call right after [`AppState::new`], before the state is
    /// shared).
    pub fn with_webhooks(mut self, settings: crate::webhooks::WebhookSettings) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.webhooks = inner.webhooks.with_settings(settings);
        }
        self
    }

    /// Webhook subscriptions, feed and worker.
    pub fn webhooks(&self) -> &crate::webhooks::Webhooks {
        &self.inner.webhooks
    }

    /// Parses a phone number given for an account (sign-up, contact change): valid E.164
    /// (`422 invalid_phone`) and not on the deny-list (`422 phone_not_allowed`), both naming
    /// `field: "phone"`. The answer depends on the number alone, never on who holds it.
    pub fn account_phone(
        &self,
        raw: &str,
    ) -> Result<gatehouse_domain::contact::Contact, crate::error::ApiError> {
        use crate::error::ApiError;
        let phone = gatehouse_domain::contact::Contact::valid_phone(raw).map_err(|e| {
            ApiError::validation("invalid_phone", e.to_string()).with_field("phone")
        })?;
        if let Some(prefix) = self.sms_budget().denied_prefix(phone.as_str()) {
            return Err(ApiError::validation(
                "phone_not_allowed",
                format!("numbers starting {prefix} cannot be used"),
            )
            .with_field("phone"));
        }
        Ok(phone)
    }

    /// The breached-password check.
    pub fn breaches(&self) -> &crate::breach::BreachCheck {
        &self.inner.breaches
    }

    /// Checks a new password against the policy (`context_words`: the account's identifiers)
    /// and the breached-password corpus: the one place every new password passes. Refusals are
    /// 422 `weak_password` or `breached_password` naming `field`.
    pub async fn vet_new_password(
        &self,
        raw: &str,
        context_words: &[String],
        field: &'static str,
    ) -> Result<gatehouse_domain::password::CandidatePassword, crate::error::ApiError> {
        use gatehouse_domain::password::PasswordRejection;
        let refused = |r: PasswordRejection| {
            let code = match r {
                PasswordRejection::Breached => "breached_password",
                _ => "weak_password",
            };
            crate::error::ApiError::validation(code, r.to_string()).with_field(field)
        };
        let password = self
            .password_policy()
            .check(raw, context_words)
            .map_err(refused)?;
        self.breaches().check(&password).await.map_err(refused)?;
        Ok(password)
    }

    /// Staff token lifetime and the metrics token.
    pub fn access(&self) -> &AccessSettings {
        &self.inner.access
    }

    /// WebAuthn relying party (security keys); `None` until [`AppState::with_relying_party`].
    pub fn relying_party(&self) -> Option<&crate::webauthn::RelyingParty> {
        self.inner.relying_party.as_ref()
    }

    /// Stricter sign-in limits for networks flagged by alerts.
    pub fn protection(&self) -> &crate::protection::Protection {
        &self.inner.protection
    }

    /// Turns true when the server begins shutting down: long-lived responses (the alert feed)
    /// end so that the graceful shutdown does not wait for their clients.
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// Signals shutdown to long-lived responses.
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
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

    /// Throttling of the self-service flows.
    pub fn throttle(&self) -> &Throttle {
        &self.inner.throttle
    }

    /// The account a lookup hash is known to belong to.
    pub fn known_account(&self, lookup: &str) -> Option<String> {
        let known = self
            .inner
            .known_accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        known.get(lookup).cloned()
    }

    /// Drops a cached lookup (the account no longer holds that identifier).
    pub fn forget_account(&self, lookup: &str) {
        let mut known = self
            .inner
            .known_accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        known.remove(lookup);
    }

    /// Records that a lookup hash belongs to an account that has signed in.
    pub fn remember_account(&self, lookup: &str, account_id: &str) {
        let mut known = self
            .inner
            .known_accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if known.len() >= KNOWN_ACCOUNTS_CAPACITY {
            known.clear();
        }
        known.insert(lookup.to_string(), account_id.to_string());
    }
}
