//! Controls for power users: step-up of a session, API keys with rotation, the withdrawal-address
//! whitelist, and the answers the platform asks for (is this key good, may this withdrawal go).
//!
//! Every change is a fact; the risky ones are refused during a high-risk cooldown and start one
//! (durations in [`crate::policy::CooldownPolicy`]).
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::context::RequestContext;
use crate::policy::codes::{Channel, FlowKind};

use super::commands::{NewApiKey, NewWithdrawalAddress};
use super::error::AccountError;
use super::events::{AccountFact, ApiScope, CooldownReason};
use super::proof::{Proof, Proved, SensitiveAction};
use super::services::AccountServices;
use super::state::{Account, AccountStatus, ApiKey};

/// Live API keys an account may hold.
pub const MAX_API_KEYS: usize = 20;
/// Whitelisted (or proposed) addresses an account may hold.
pub const MAX_WITHDRAWAL_ADDRESSES: usize = 100;

/// Why an API key is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyRefusal {
    /// No such key, or the secret does not match.
    Invalid,
    /// Revoked by the owner.
    Revoked,
    /// Past its expiry.
    Expired,
    /// The previous secret of a rotated key, after its grace period.
    Rotated,
    /// Used from an address outside its allowlist.
    IpNotAllowed,
}

impl ApiKeyRefusal {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid_key",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Rotated => "rotated",
            Self::IpNotAllowed => "ip_not_allowed",
        }
    }
}

/// Why a withdrawal is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithdrawalRefusal {
    /// No such account.
    UnknownAccount,
    /// The account is frozen (by its owner, a freeze link or staff).
    AccountFrozen {
        /// When a staff unfreeze's hold ends it, if one is pending.
        until: Option<DateTime<Utc>>,
    },
    /// The account is locked after failed sign-ins.
    AccountLocked {
        /// End of the lock.
        until: DateTime<Utc>,
    },
    /// A high-risk cooldown runs.
    HighRiskCooldown {
        /// Its end.
        until: DateTime<Utc>,
    },
    /// Whitelist-only withdrawals are on and the address is not on the list.
    NotWhitelisted,
    /// The address is on the list but its cooldown has not ended.
    AddressCoolingDown {
        /// When it becomes usable.
        until: DateTime<Utc>,
    },
}

impl WithdrawalRefusal {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownAccount => "unknown_account",
            Self::AccountFrozen { .. } => "account_frozen",
            Self::AccountLocked { .. } => "account_locked",
            Self::HighRiskCooldown { .. } => "high_risk_cooldown",
            Self::NotWhitelisted => "not_whitelisted",
            Self::AddressCoolingDown { .. } => "address_cooling_down",
        }
    }

    /// Until when the refusal holds, when it ends by itself.
    pub fn until(self) -> Option<DateTime<Utc>> {
        match self {
            Self::AccountLocked { until }
            | Self::HighRiskCooldown { until }
            | Self::AddressCoolingDown { until } => Some(until),
            Self::AccountFrozen { until } => until,
            Self::UnknownAccount | Self::NotWhitelisted => None,
        }
    }
}

/// Parses `address` or `address/prefix` (IPv4 or IPv6) into a network.
pub fn parse_network(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = match text.trim().split_once('/') {
        Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
        None => (text.trim().parse::<IpAddr>().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some((addr, prefix))
}

/// Whether `ip` is inside one of the networks (an empty list allows every address).
pub fn ip_allowed(networks: &[String], ip: Option<IpAddr>) -> bool {
    if networks.is_empty() {
        return true;
    }
    let Some(ip) = ip else { return false };
    networks
        .iter()
        .filter_map(|n| parse_network(n))
        .any(|(net, prefix)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        })
}

fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

impl Account {
    /// Until when a session counts as stepped up (proved itself within `window`). A step-up
    /// proven with the password counts only while the account has no second factor: a session
    /// stepped up that way and then used to enrol one must not pass for a factor-proven one.
    pub fn stepped_up_until(
        &self,
        session_id: Uuid,
        window: chrono::Duration,
    ) -> Option<DateTime<Utc>> {
        self.sessions
            .get(&session_id)
            .filter(|s| !(s.stepped_up_with_password && self.has_second_factor()))
            .and_then(|s| s.stepped_up_at)
            .map(|at| at + window)
    }

    /// API keys by id (revoked ones included).
    pub fn api_keys(&self) -> &std::collections::BTreeMap<Uuid, ApiKey> {
        &self.api_keys
    }

    /// Whitelisted and proposed withdrawal addresses by id.
    pub fn withdrawal_addresses(
        &self,
    ) -> &std::collections::BTreeMap<Uuid, super::state::WithdrawalAddress> {
        &self.withdrawal_addresses
    }

    /// Whether withdrawals may only go to whitelisted addresses.
    pub fn whitelist_only(&self) -> bool {
        self.whitelist_only
    }

    /// Checks a presented API key: the key, its secret's verifier and the client address.
    pub fn check_api_key(
        &self,
        key_id: Uuid,
        verifier: &str,
        ip: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<&ApiKey, ApiKeyRefusal> {
        if self.status != AccountStatus::Active {
            return Err(ApiKeyRefusal::Invalid);
        }
        let key = self.api_keys.get(&key_id).ok_or(ApiKeyRefusal::Invalid)?;
        let current = same(&key.verifier, verifier);
        let previous = key.previous.as_ref().filter(|(old, _)| same(old, verifier));
        if !current && previous.is_none() {
            return Err(ApiKeyRefusal::Invalid);
        }
        if key.revoked_at.is_some() {
            return Err(ApiKeyRefusal::Revoked);
        }
        if key.expires_at.is_some_and(|e| now >= e) {
            return Err(ApiKeyRefusal::Expired);
        }
        if !current && previous.is_some_and(|(_, until)| now >= *until) {
            return Err(ApiKeyRefusal::Rotated);
        }
        if !ip_allowed(&key.allowed_ips, ip) {
            return Err(ApiKeyRefusal::IpNotAllowed);
        }
        Ok(key)
    }

    /// May a withdrawal go to the address with this keyed lookup now?
    pub fn check_withdrawal(
        &self,
        lookup: &str,
        now: DateTime<Utc>,
    ) -> Result<(), WithdrawalRefusal> {
        if self.status != AccountStatus::Active {
            return Err(WithdrawalRefusal::UnknownAccount);
        }
        if let Some(freeze) = self.freeze_at(now) {
            return Err(WithdrawalRefusal::AccountFrozen {
                until: freeze.release_at,
            });
        }
        if let Some(lock) = self.lock_at(now) {
            return Err(WithdrawalRefusal::AccountLocked { until: lock.until });
        }
        if let Some(until) = self.high_risk_until(now) {
            return Err(WithdrawalRefusal::HighRiskCooldown { until });
        }
        if !self.whitelist_only {
            return Ok(());
        }
        let listed = self
            .withdrawal_addresses
            .values()
            .filter(|a| same(&a.lookup, lookup))
            .find_map(|a| a.usable_from);
        match listed {
            None => Err(WithdrawalRefusal::NotWhitelisted),
            Some(from) if now < from => Err(WithdrawalRefusal::AddressCoolingDown { until: from }),
            Some(_) => Ok(()),
        }
    }

    /// The cooldown a cause starts, unless its duration is zero.
    pub(super) fn cooldown(
        &self,
        reason: CooldownReason,
        at: DateTime<Utc>,
        services: &AccountServices,
    ) -> Option<AccountFact> {
        let length = services.cooldowns.after(reason);
        (length > chrono::Duration::zero()).then(|| AccountFact::HighRiskCooldownStarted {
            until: at + length,
            reason,
        })
    }

    fn refuse_during_cooldown(&self, at: DateTime<Utc>) -> Result<(), AccountError> {
        match self.high_risk_until(at) {
            Some(until) => Err(AccountError::HighRiskCooldown { until }),
            None => Ok(()),
        }
    }

    /// `StepUp`: a second factor proved again within a session (the password, when the account
    /// has no factor).
    pub(super) async fn step_up(
        &self,
        session_id: Uuid,
        proof: &Proof,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        self.live_session(session_id, at)?;
        let method = match &proof.factor {
            Some(factor) if self.has_second_factor() => factor.method(),
            _ => "password",
        };
        let mut facts = match self
            .prove(SensitiveAction::StepUp, proof, at, &context, services)
            .await?
        {
            Proved::Refused(refusal) => return Ok(refusal),
            Proved::Accepted(spent) => spent,
        };
        facts.push(AccountFact::SessionSteppedUp {
            session_id,
            method: method.to_string(),
        });
        Ok(facts)
    }

    /// The session-only rows an API key change needs: `ManageApiKeys`, and
    /// `WithdrawalControls` for a key that may withdraw.
    fn api_key_proof(
        &self,
        withdraws: bool,
        proof: &Proof,
        at: DateTime<Utc>,
        services: &AccountServices,
    ) -> Result<(), AccountError> {
        if withdraws {
            self.check_session_proof(
                SensitiveAction::WithdrawalControls,
                proof.session_id,
                at,
                &services.sessions,
            )?;
        }
        self.check_session_proof(
            SensitiveAction::ManageApiKeys,
            proof.session_id,
            at,
            &services.sessions,
        )
    }

    /// `CreateApiKey`: a `withdraw` scope is refused during a cooldown and starts one.
    pub(super) async fn create_api_key(
        &self,
        key: NewApiKey,
        proof: &Proof,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        self.api_key_proof(
            key.scopes.contains(&ApiScope::Withdraw),
            proof,
            at,
            services,
        )?;
        let live = self
            .api_keys
            .values()
            .filter(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|e| at < e))
            .count();
        if live >= MAX_API_KEYS {
            return Err(AccountError::TooManyApiKeys);
        }
        if self.api_keys.contains_key(&key.key_id) {
            return Err(AccountError::ApiKeyUnknown);
        }
        let withdraws = key.scopes.contains(&ApiScope::Withdraw);
        if withdraws {
            self.refuse_during_cooldown(at)?;
        }
        let mut facts = vec![AccountFact::ApiKeyCreated {
            key_id: key.key_id,
            name: key.name,
            scopes: key.scopes,
            allowed_ips: key.allowed_ips,
            expires_at: key.expires_at,
            verifier: key.verifier,
            context,
        }];
        if withdraws {
            facts.extend(self.cooldown(CooldownReason::WithdrawKeyCreated, at, services));
        }
        Ok(facts)
    }

    /// `RotateApiKey`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn rotate_api_key(
        &self,
        key_id: Uuid,
        verifier: String,
        grace: chrono::Duration,
        proof: &Proof,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        let key = self
            .api_keys
            .get(&key_id)
            .filter(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|e| at < e))
            .ok_or(AccountError::ApiKeyUnknown)?;
        let withdraws = key.scopes.contains(&ApiScope::Withdraw);
        self.api_key_proof(withdraws, proof, at, services)?;
        if withdraws {
            self.refuse_during_cooldown(at)?;
        }
        Ok(vec![AccountFact::ApiKeyRotated {
            key_id,
            verifier,
            previous_valid_until: at + grace.max(chrono::Duration::zero()),
            context,
        }])
    }

    /// `RevokeApiKeys`: one, or every key not yet revoked.
    pub(super) fn revoke_api_keys(
        &self,
        key_id: Option<Uuid>,
        context: RequestContext,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        let revoke = |key_id: Uuid| AccountFact::ApiKeyRevoked {
            key_id,
            context: context.clone(),
        };
        match key_id {
            Some(id) => {
                self.api_keys
                    .get(&id)
                    .filter(|k| k.revoked_at.is_none())
                    .ok_or(AccountError::ApiKeyUnknown)?;
                Ok(vec![revoke(id)])
            }
            None => Ok(self
                .api_keys
                .iter()
                .filter(|(_, k)| k.revoked_at.is_none())
                .map(|(id, _)| revoke(*id))
                .collect()),
        }
    }

    /// `ProposeWithdrawalAddress`: a code to the verified email confirms it.
    pub(super) async fn propose_withdrawal_address(
        &self,
        address: NewWithdrawalAddress,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        self.check_session_proof(
            SensitiveAction::WithdrawalControls,
            address.proof.session_id,
            at,
            &services.sessions,
        )?;
        if !self.is_verified(Channel::Email) {
            return Err(AccountError::EmailNotVerified);
        }
        self.refuse_during_cooldown(at)?;
        if self.withdrawal_addresses.len() >= MAX_WITHDRAWAL_ADDRESSES {
            return Err(AccountError::TooManyAddresses);
        }
        if self
            .withdrawal_addresses
            .values()
            .any(|a| a.usable_from.is_some() && same(&a.lookup, &address.lookup))
        {
            return Err(AccountError::AddressAlreadyListed);
        }
        let requester = self.requester(super::events::Door::Untrusted, &context);
        let ceiling = self.check_code_budget(at, None, &requester, services)?;
        let flow_id = address.grant.flow_id;
        let mut facts = vec![
            AccountFact::FlowStarted {
                flow_id,
                kind: FlowKind::WhitelistAddress,
                context: context.clone(),
            },
            AccountFact::WithdrawalAddressProposed {
                flow_id,
                asset: address.asset,
                network: address.network,
                sealed_address: address.sealed_address,
                lookup: address.lookup,
                sealed_label: address.sealed_label,
                context: context.clone(),
            },
            AccountFact::CodeIssued {
                flow_id,
                code_id: address.grant.code.code_id,
                channel: Channel::Email,
                verifier: address.grant.code.verifier,
                expires_at: at + services.codes.ttl,
                deliverable: true,
                context,
                requester: Some(requester),
            },
        ];
        facts.extend(ceiling);
        Ok(facts)
    }

    /// The right code of a whitelist flow: the address is listed, usable after its cooldown.
    pub(super) fn confirm_withdrawal_address(
        &self,
        flow_id: Uuid,
        used: AccountFact,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.withdrawal_addresses
            .get(&flow_id)
            .filter(|a| a.usable_from.is_none())
            .ok_or(AccountError::FlowNotFound)?;
        self.refuse_during_cooldown(at)?;
        Ok(vec![
            used,
            AccountFact::WithdrawalAddressAdded {
                address_id: flow_id,
                usable_from: at + services.cooldowns.new_address,
                context,
            },
        ])
    }

    /// `RemoveWithdrawalAddress`. Allowed during a cooldown: a shorter list cannot send funds
    /// anywhere new.
    /// Needs no proof: like turning whitelist-only on, it only protects.
    pub(super) fn remove_withdrawal_address(
        &self,
        address_id: Uuid,
        context: RequestContext,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        if !self.withdrawal_addresses.contains_key(&address_id) {
            return Err(AccountError::AddressUnknown);
        }
        Ok(vec![AccountFact::WithdrawalAddressRemoved {
            address_id,
            context,
        }])
    }

    /// `SetWhitelistMode`: turning it on is always allowed (it protects); turning it off is
    /// high-risk.
    pub(super) async fn set_whitelist_mode(
        &self,
        enabled: bool,
        proof: &Proof,
        at: DateTime<Utc>,
        context: RequestContext,
        services: &AccountServices,
    ) -> Result<Vec<AccountFact>, AccountError> {
        self.require_active()?;
        if enabled == self.whitelist_only {
            return Ok(Vec::new());
        }
        if enabled {
            return Ok(vec![AccountFact::WhitelistModeChanged { enabled, context }]);
        }
        self.check_session_proof(
            SensitiveAction::WithdrawalControls,
            proof.session_id,
            at,
            &services.sessions,
        )?;
        self.refuse_during_cooldown(at)?;
        let mut facts = vec![AccountFact::WhitelistModeChanged { enabled, context }];
        facts.extend(self.cooldown(CooldownReason::WhitelistDisabled, at, services));
        Ok(facts)
    }
}
