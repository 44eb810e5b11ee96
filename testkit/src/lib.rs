//! The harness shared by the integration tests (`tests/`) and the benchmarks (`bench/`): one
//! place that knows how to get a database on the PostgreSQL under test, start the real
//! `gatehouse` binary against it, receive its messages, and check what it answered and stored.
//!
//! - [`db`]: a migrated database per test, cloned from a template migrated once per run
//!   ([`TestDb`]), or an empty database for a benchmark run ([`ScratchDb`]);
//! - [`server`]: the binary started with `serve` on a free port ([`Server`]), with the settings
//!   that keep tests fast ([`fast_env`]) or a benchmark's;
//! - [`cluster`]: a throwaway PostgreSQL cluster of a test's own, to stop and start ([`Cluster`]);
//! - [`mail`]: real receivers, an SMTP server (aiosmtpd, `TEST_SMTP_PYTHON`) and an SMS webhook;
//! - [`checks`]: answers, error shapes, read models and events;
//! - [`passkey`]: a software authenticator holding discoverable credentials ([`SoftPasskey`]).
//!
//! Test helpers panic on what a test cannot go on without; what a benchmark calls returns its
//! failures as messages.
#![forbid(unsafe_code)]
#![deny(clippy::all)]

pub mod checks;
pub mod cluster;
pub mod db;
pub mod geoip;
pub mod mail;
pub mod passkey;
pub mod server;

pub use checks::{
    assert_error_shape, assert_nowhere_in_database, event_types, eventually, read, table_rows,
    ALERT_TABLES,
};
pub use cluster::Cluster;
pub use db::{admin_url, database_url, ScratchDb, TestDb};
pub use passkey::SoftPasskey;
pub use server::{
    binary, fast_env, sign_in_limits, Server, METRICS_TOKEN, PASSWORD, TEST_MASTER_KEY,
};
