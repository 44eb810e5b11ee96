//! Per-process limits (`governor`'s GCRA): the embedded store's backend, where one process is
//! the point.
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use super::{BackendError, LimitBackend, LimitKey};

type Keyed = RateLimiter<String, HashMapStateStore<String>, DefaultClock>;

/// One keyed limiter per distinct per-minute limit.
#[derive(Default)]
pub struct LocalBackend {
    limiters: Mutex<HashMap<u32, Keyed>>,
    clock: DefaultClock,
}

impl LocalBackend {
    fn check_now(&self, keys: &[LimitKey]) -> Vec<Option<Duration>> {
        let mut limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .map(|key| {
                let limiter = limiters.entry(key.per_minute).or_insert_with(|| {
                    let n = NonZeroU32::new(key.per_minute).unwrap_or(NonZeroU32::MIN);
                    RateLimiter::hashmap(Quota::per_minute(n))
                });
                limiter
                    .check_key(&key.name)
                    .err()
                    .map(|not_until| not_until.wait_time_from(self.clock.now()))
            })
            .collect()
    }
}

impl LimitBackend for LocalBackend {
    fn check<'a>(
        &'a self,
        keys: &'a [LimitKey],
    ) -> BoxFuture<'a, Result<Vec<Option<Duration>>, BackendError>> {
        let answers = self.check_now(keys);
        Box::pin(async move { Ok(answers) })
    }

    fn housekeep(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        {
            let limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
            for limiter in limiters.values() {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn name(&self) -> &'static str {
        "local"
    }
}
