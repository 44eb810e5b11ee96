//! Limits shared through Redis (`GATEHOUSE_REDIS_URL`): the same GCRA as [`super::postgres`],
//! every key of a request spent by one Lua script call on Redis's clock, each key expiring when
//! it is back to full allowance. Redis unreachable: the caller fails open; reconnection is tried
//! at most once a second meanwhile, so a down Redis costs requests no waiting.
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script};

use super::{BackendError, LimitBackend, LimitKey};

/// KEYS: the keys; ARGV: their intervals in µs. Answers, per key, 0 (admitted) or the wait in µs.
const SPEND: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local answers = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new = tat + interval
  if new - now <= 60000000 then
    redis.call('SET', key, new, 'PX', math.ceil((new - now) / 1000))
    answers[i] = 0
  else
    answers[i] = math.max(new - 60000000 - now, 1)
  end
end
return answers";

/// How long a connection attempt or a script call may take before the request fails open.
const TIMEOUT: Duration = Duration::from_millis(250);
/// Least time between reconnection attempts.
const RECONNECT_EVERY_MS: i64 = 1_000;

/// The Redis backend.
pub struct RedisBackend {
    client: Client,
    prefix: String,
    script: Script,
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    last_attempt_ms: AtomicI64,
}

impl RedisBackend {
    /// For `url` (`redis://host:6379/0`), keys under `prefix`. Connects lazily: a Redis that is
    /// down at start-up only means failing open until it is back.
    pub fn new(url: &str, prefix: &str) -> Result<Self, String> {
        let client = Client::open(url).map_err(|e| format!("GATEHOUSE_REDIS_URL: {e}"))?;
        Ok(Self {
            client,
            prefix: prefix.to_string(),
            script: Script::new(SPEND),
            connection: tokio::sync::Mutex::new(None),
            last_attempt_ms: AtomicI64::new(i64::MIN),
        })
    }

    async fn connection(&self) -> Result<MultiplexedConnection, BackendError> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let now = chrono::Utc::now().timestamp_millis();
        let last = self.last_attempt_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < RECONNECT_EVERY_MS {
            return Err(BackendError("not connected (retrying shortly)".into()));
        }
        self.last_attempt_ms.store(now, Ordering::Relaxed);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT);
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| BackendError(e.to_string()))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn forget_connection(&self) {
        *self.connection.lock().await = None;
    }
}

impl LimitBackend for RedisBackend {
    fn check<'a>(
        &'a self,
        keys: &'a [LimitKey],
    ) -> BoxFuture<'a, Result<Vec<Option<Duration>>, BackendError>> {
        Box::pin(async move {
            let mut connection = self.connection().await?;
            let mut invocation = self.script.prepare_invoke();
            for key in keys {
                invocation.key(format!("{}{}", self.prefix, key.name));
            }
            for key in keys {
                invocation.arg(key.interval_us());
            }
            let waits: Vec<i64> = match invocation.invoke_async(&mut connection).await {
                Ok(waits) => waits,
                Err(e) => {
                    if e.is_unrecoverable_error() || e.is_timeout() || e.is_io_error() {
                        self.forget_connection().await;
                    }
                    return Err(BackendError(e.to_string()));
                }
            };
            Ok(waits
                .into_iter()
                .map(|us| (us > 0).then(|| Duration::from_micros(us.unsigned_abs())))
                .collect())
        })
    }

    fn housekeep(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        // Keys expire by themselves.
        Box::pin(async { Ok(()) })
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}
