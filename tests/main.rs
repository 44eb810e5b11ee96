//! Gatehouse's integration suite: one binary, so the workspace links it once.
//!
//! Needs PostgreSQL at `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! and the `gatehouse` binary built next to this test (`scripts/test` does both).
mod suite;
