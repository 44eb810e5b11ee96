//! Holds no code: the integration suite lives in `main.rs` and `suite/` (one test binary).
