//! Rate-limit state shared by every node, in Redis: one Lua script per decision (one round
//! trip, atomic on the server), GCRA over Redis's own clock (`TIME`), so that nodes whose
//! clocks differ still agree. Each key's theoretical arrival time expires with it, so Redis
//! keeps nothing that no longer limits anyone.
//!
//! A decision that does not come back within its budget is an error, never a wait: the caller
//! applies the limit's `on_store_failure`. While Redis is unreachable, a reconnection is tried
//! at most once a second, so a dead Redis costs no more than a failed check.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script};

use crate::StoreError;

/// GCRA in one step. KEYS[1]: the key; ARGV[1]: the emission interval and ARGV[2] the
/// tolerance (burst × interval), in microseconds. Returns {admitted (1|0), remaining or the
/// wait (µs), until the whole burst is back (µs)}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval
local allow_at = next_tat - tolerance
if allow_at > now then
  return {0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], next_tat, 'PX', math.ceil((next_tat - now) / 1000) + 1)
return {1, math.floor((now + tolerance - next_tat) / interval), next_tat - now}
";

/// How long to wait between attempts to reach a Redis that is down.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// What Redis decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedDecision {
    /// Admitted; how many more would be now, and until the whole burst is back.
    Allowed {
        /// Remaining right now.
        remaining: u64,
        /// Until the whole burst is back.
        reset: Duration,
    },
    /// Refused; until it would have been admitted, and until the whole burst is back.
    Limited {
        /// Until it would have been admitted.
        retry_after: Duration,
        /// Until the whole burst is back.
        reset: Duration,
    },
}

/// A connection to the Redis every node shares.
pub struct RedisLimits {
    client: Client,
    budget: Duration,
    script: Script,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// When a connection was last tried and failed.
    failed_at: Mutex<Option<Instant>>,
    reconnect_every: Duration,
}

impl RedisLimits {
    /// Redis at `url` (`redis://host:port[/db]`); each decision gets `budget` (connecting
    /// included) before it counts as a failure. Nothing is connected yet.
    pub fn new(url: &str, budget: Duration) -> Result<RedisLimits, StoreError> {
        let client = Client::open(url).map_err(StoreError::backend)?;
        Ok(RedisLimits {
            client,
            budget,
            script: Script::new(GCRA),
            conn: tokio::sync::Mutex::new(None),
            failed_at: Mutex::new(None),
            reconnect_every: RECONNECT_EVERY,
        })
    }

    /// Tries to reach a Redis that is down no more often than `every` (a second unless told).
    pub fn reconnecting_every(mut self, every: Duration) -> RedisLimits {
        self.reconnect_every = every;
        self
    }

    /// One GCRA decision for `key` with emission `interval` and a burst of `burst`.
    pub async fn check(
        &self,
        key: &[u8],
        interval: Duration,
        burst: u64,
    ) -> Result<SharedDecision, StoreError> {
        let work = async {
            let mut conn = self.connection().await?;
            let interval_us = u64::try_from(interval.as_micros())
                .unwrap_or(u64::MAX)
                .max(1);
            let reply: Vec<i64> = self
                .script
                .key(key)
                .arg(interval_us)
                .arg(interval_us.saturating_mul(burst.max(1)))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| {
                    self.forget_connection();
                    StoreError::backend(e)
                })?;
            decision(&reply)
        };
        match tokio::time::timeout(self.budget, work).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::backend_says(format!(
                "Redis did not answer within {} ms",
                self.budget.as_millis()
            ))),
        }
    }

    /// Deletes `keys`, and every key starting with `prefix` when one is given (found with
    /// `SCAN`, a page at a time, so a large keyspace never blocks Redis).
    pub async fn forget(&self, keys: &[Vec<u8>], prefix: Option<&[u8]>) -> Result<(), StoreError> {
        let backend = |e: redis::RedisError| {
            self.forget_connection();
            StoreError::backend(e)
        };
        let mut conn = self.connection().await?;
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(keys)
                .query_async::<i64>(&mut conn)
                .await
                .map_err(backend)?;
        }
        if let Some(prefix) = prefix {
            let mut pattern = prefix.to_vec();
            pattern.push(b'*');
            let mut cursor: u64 = 0;
            loop {
                let (next, found): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(500)
                    .query_async(&mut conn)
                    .await
                    .map_err(backend)?;
                if !found.is_empty() {
                    redis::cmd("DEL")
                        .arg(&found)
                        .query_async::<i64>(&mut conn)
                        .await
                        .map_err(backend)?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    /// The shared connection, opening one if there is none (not more often than once a
    /// second while Redis is down).
    async fn connection(&self) -> Result<MultiplexedConnection, StoreError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        {
            let failed = self
                .failed_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if failed.is_some_and(|at| at.elapsed() < self.reconnect_every) {
                return Err(StoreError::backend_says("Redis is unreachable"));
            }
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.budget))
            .set_response_timeout(Some(self.budget));
        match self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(c) => {
                *self
                    .failed_at
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                *slot = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                *self
                    .failed_at
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
                Err(StoreError::backend(e))
            }
        }
    }

    /// Drops the connection after an error: the next decision reconnects.
    fn forget_connection(&self) {
        if let Ok(mut slot) = self.conn.try_lock() {
            *slot = None;
        }
    }
}

/// The script's reply as a decision; anything else is Redis answering garbage.
fn decision(reply: &[i64]) -> Result<SharedDecision, StoreError> {
    let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
    match *reply {
        [1, remaining, reset] if remaining >= 0 && reset >= 0 => Ok(SharedDecision::Allowed {
            remaining: remaining.unsigned_abs(),
            reset: us(reset),
        }),
        [0, wait, reset] if wait > 0 && reset >= 0 => Ok(SharedDecision::Limited {
            retry_after: us(wait),
            reset: us(reset),
        }),
        _ => Err(StoreError::backend_says(format!(
            "Redis answered {reply:?} to a rate-limit decision"
        ))),
    }
}
