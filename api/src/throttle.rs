//! Request throttling for the self-service flows, per client network and per identifier (or
//! flow), on top of the per-code limits the aggregate enforces. GCRA from `governor`; the state is
//! per process, so with N processes behind a balancer the effective limit is up to N times higher.
use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::error::ApiError;

type Keyed<K> = RateLimiter<K, HashMapStateStore<K>, DefaultClock>;

/// The limiters.
pub struct Throttle {
    per_network: Keyed<IpAddr>,
    per_subject: Keyed<String>,
    clock: DefaultClock,
}

impl Throttle {
    /// Limiters allowing `per_ip` and `per_subject` requests a minute (a burst of that size, then
    /// an even rate).
    pub fn new(per_ip: u32, per_subject: u32) -> Self {
        let quota =
            |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN));
        Self {
            per_network: RateLimiter::hashmap(quota(per_ip)),
            per_subject: RateLimiter::hashmap(quota(per_subject)),
            clock: DefaultClock::default(),
        }
    }

    /// Admits a request from `ip` about `subject` (an identifier's lookup hash or a flow id), or
    /// refuses it with `429 rate_limited` and the wait.
    pub fn admit(&self, ip: IpAddr, subject: &str) -> Result<(), ApiError> {
        let network = network_of(ip);
        if let Err(not_until) = self.per_network.check_key(&network) {
            return Err(refusal(not_until.wait_time_from(self.clock.now())));
        }
        if let Err(not_until) = self.per_subject.check_key(&subject.to_string()) {
            return Err(refusal(not_until.wait_time_from(self.clock.now())));
        }
        Ok(())
    }

    /// Drops the state of keys that are back to full allowance (call periodically).
    pub fn housekeep(&self) {
        self.per_network.retain_recent();
        self.per_network.shrink_to_fit();
        self.per_subject.retain_recent();
        self.per_subject.shrink_to_fit();
    }
}

fn refusal(wait: std::time::Duration) -> ApiError {
    let seconds = i64::try_from(wait.as_secs())
        .unwrap_or(i64::MAX)
        .saturating_add(1);
    ApiError::rate_limited(
        "rate_limited",
        "too many requests; wait before trying again",
        seconds,
    )
}

/// IPv6 clients are limited per /64 (one subscriber's allocation); IPv4 per address.
fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_subject_limit_refuses_with_a_retry_hint() {
        let t = Throttle::new(100, 2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(t.admit(ip, "a").is_ok());
        assert!(t.admit(ip, "a").is_ok());
        let refused = t.admit(ip, "a").unwrap_err();
        assert_eq!(refused.code(), "rate_limited");
        // Another subject is unaffected.
        assert!(t.admit(ip, "b").is_ok());
    }

    #[test]
    fn test_ipv6_addresses_of_one_slash_64_share_a_limit() {
        let t = Throttle::new(1, 100);
        assert!(t.admit("2001:db8::1".parse().unwrap(), "a").is_ok());
        assert!(t.admit("2001:db8::ffff".parse().unwrap(), "b").is_err());
        assert!(t.admit("2001:db8:0:1::1".parse().unwrap(), "c").is_ok());
    }
}
