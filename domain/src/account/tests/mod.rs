//! Given/when/then tests of the `Account` aggregate, one behaviour each, with a fixed clock: one
//! file per feature, sharing the fixtures of `given`.
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::*;
use crate::chain::{self, ChainLink};
use crate::contact::SealedContact;
use crate::context::RequestContext;
use crate::password::{BoxFuture, HashError, PasswordHash, PasswordHasher, PasswordPolicy};
use crate::policy::{LockoutPolicy, SessionPolicy};

mod given;
use given::*;

/// Bound channels, cases in progress, challenges.
mod cases;
/// One-time codes and the flows that use them.
mod codes;
/// Changing a contact.
mod contact_change;
/// Verified contacts, claims released.
mod contacts;
/// Step-up, API keys, the withdrawal whitelist.
mod controls;
/// Two doors and code budgets per requester.
mod doors;
/// Freezing, unfreezing, staff actions, the new-sign-in rule.
mod freeze;
/// Sign-up, sign-in, lockout and sessions.
mod login;
/// Recovery of a lost second factor.
mod lost_factor;
/// One test per row of `PROOF_POLICY`.
mod proof_policy;
/// TOTP and backup codes.
mod second_factor;
/// Security keys.
mod security_keys;
