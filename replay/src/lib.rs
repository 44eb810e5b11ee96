//! The library half of `gatehouse-replay`: the typed reports the tool prints, shared with
//! whatever reads them back (the benchmark, tests). The commands themselves live in the binary.
#![forbid(unsafe_code)]
#![deny(clippy::all)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod report;
