//! Pure, time-driven security policies.
pub mod codes;
pub mod contacts;
pub mod devices;
pub mod lockout;
pub mod sessions;

pub use codes::{Channel, CodePolicy, CooldownPolicy, FlowKind};
pub use contacts::ContactPolicy;
pub use devices::DevicePolicy;
pub use lockout::LockoutPolicy;
pub use sessions::SessionPolicy;
