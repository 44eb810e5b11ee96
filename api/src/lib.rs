//! Gatehouse's HTTP API: handlers, the request edge (client IP, bearer sessions), server secrets,
//! and the `serve` entry point used by the `gatehouse` binary.
#![forbid(unsafe_code)]
#![deny(clippy::all)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod api_keys;
pub mod app;
pub mod breach;
pub mod codes;
pub mod config;
pub mod cors;
pub mod delivery;
pub mod delivery_status;
pub mod directory;
pub mod error;
pub mod factors;
pub mod fresh;
pub mod hasher;
pub mod keys;
pub mod mask;
pub mod metadata;
pub mod nats;
pub mod openapi;
pub mod proof;
pub mod protection;
pub mod request;
pub mod routes;
pub mod server;
pub mod sms_budget;
pub mod staff;
pub mod state;
pub mod throttle;
pub mod tokens;
pub mod ui;
pub mod ui_settings;
pub mod webauthn;
pub mod webhooks;

/// Installs the TLS crypto provider (ring) that the SMTP and HTTP clients share. Idempotent; call
/// before building any `reqwest` client in a process that links this crate.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
