//! Pure, time-driven security policies.
pub mod lockout;
pub mod sessions;

pub use lockout::LockoutPolicy;
pub use sessions::SessionPolicy;
