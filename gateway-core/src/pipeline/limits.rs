//! Per-key rate and concurrency limits, behind a store trait so that one
//! gateway process keeps them in memory and several replicas can later share
//! them (a Redis store implements the same trait).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::KeyConfig;

/// A concurrency slot; dropping it releases the slot.
pub type SlotGuard = Box<dyn Send + Sync>;

/// Where per-key limiter state lives. Limits are passed on each call, so a
/// store holds counters only.
#[async_trait]
pub trait LimitStore: Send + Sync + fmt::Debug {
    /// Takes one request from `key`'s per-minute budget, or says how long
    /// until one is available.
    async fn take_request(&self, key: &str, rpm: u32) -> Result<(), Duration>;

    /// Whether `key` has token budget left this minute; if not, how long
    /// until it has.
    async fn check_tokens(&self, key: &str, tpm: u64) -> Result<(), Duration>;

    /// Charges `tokens` used by a finished (or failed) request to `key`.
    /// Called from stream code, so it must not block; a shared store sends
    /// it in the background.
    fn record_tokens(&self, key: &str, tpm: u64, tokens: u64);

    /// One of `key`'s `max` concurrent slots, or `None` when all are taken.
    async fn acquire(&self, key: &str, max: u32) -> Option<SlotGuard>;
}

/// A budget that refills continuously: `capacity` units per minute, never
/// more than `capacity` banked. It may go negative when usage is charged
/// after the fact (tokens), which delays the next admission accordingly.
#[derive(Debug)]
struct Bucket {
    level: f64,
    updated: Instant,
}

impl Bucket {
    fn full(capacity: f64) -> Self {
        Self {
            level: capacity,
            updated: Instant::now(),
        }
    }

    fn refill(&mut self, capacity: f64) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.updated).as_secs_f64();
        self.level = (self.level + elapsed * capacity / 60.0).min(capacity);
        self.updated = now;
    }

    /// How long until the level reaches `needed`.
    fn wait_for(&self, needed: f64, capacity: f64) -> Duration {
        let missing = (needed - self.level).max(0.0);
        Duration::from_secs_f64(missing * 60.0 / capacity)
    }
}

/// `bucket` locked and refilled up to now, for a budget of `capacity` a
/// minute.
fn refilled(bucket: &Mutex<Bucket>, capacity: f64) -> std::sync::MutexGuard<'_, Bucket> {
    let mut bucket = bucket.lock().unwrap_or_else(PoisonError::into_inner);
    bucket.refill(capacity);
    bucket
}

#[derive(Debug)]
struct KeyCounters {
    requests: Mutex<Bucket>,
    tokens: Mutex<Bucket>,
    slots: Option<Arc<Semaphore>>,
}

/// Limiter state in this process's memory: one entry per configured key,
/// built at start-up, so a request locks only its own key's counters.
#[derive(Debug, Default)]
pub struct MemoryLimits {
    keys: crate::LookupMap<String, KeyCounters>,
}

impl MemoryLimits {
    /// Counters for every key in `keys`.
    pub fn new(keys: &[KeyConfig]) -> Self {
        let keys = keys
            .iter()
            .map(|key| {
                let counters = KeyCounters {
                    requests: Mutex::new(Bucket::full(f64::from(key.rpm.unwrap_or(1)))),
                    tokens: Mutex::new(Bucket::full(key.tpm.unwrap_or(1) as f64)),
                    slots: key
                        .max_concurrent
                        .map(|max| Arc::new(Semaphore::new(max as usize))),
                };
                (key.id.clone(), counters)
            })
            .collect();
        Self { keys }
    }

    /// Requests `key` has in flight under its concurrency limit.
    pub fn in_flight(&self, key: &str, max: u32) -> u32 {
        self.keys
            .get(key)
            .and_then(|counters| counters.slots.as_ref())
            .map_or(0, |slots| {
                max.saturating_sub(u32::try_from(slots.available_permits()).unwrap_or(max))
            })
    }
}

#[async_trait]
impl LimitStore for MemoryLimits {
    async fn take_request(&self, key: &str, rpm: u32) -> Result<(), Duration> {
        let Some(counters) = self.keys.get(key) else {
            return Ok(());
        };
        let capacity = f64::from(rpm);
        let mut bucket = refilled(&counters.requests, capacity);
        if bucket.level >= 1.0 {
            bucket.level -= 1.0;
            Ok(())
        } else {
            Err(bucket.wait_for(1.0, capacity))
        }
    }

    async fn check_tokens(&self, key: &str, tpm: u64) -> Result<(), Duration> {
        let Some(counters) = self.keys.get(key) else {
            return Ok(());
        };
        let capacity = tpm as f64;
        let bucket = refilled(&counters.tokens, capacity);
        if bucket.level > 0.0 {
            Ok(())
        } else {
            // Wait until the budget is positive again (a tenth of it, so the
            // next request is not refused again at once).
            Err(bucket.wait_for(capacity / 10.0, capacity))
        }
    }

    fn record_tokens(&self, key: &str, tpm: u64, tokens: u64) {
        let Some(counters) = self.keys.get(key) else {
            return;
        };
        let capacity = tpm as f64;
        let mut bucket = refilled(&counters.tokens, capacity);
        // Debt is bounded by one minute's budget, so one huge answer cannot
        // lock a key out for longer than a minute.
        bucket.level = (bucket.level - tokens as f64).max(-capacity);
    }

    async fn acquire(&self, key: &str, _max: u32) -> Option<SlotGuard> {
        let slots = self.keys.get(key)?.slots.as_ref()?;
        let permit: OwnedSemaphorePermit = slots.clone().try_acquire_owned().ok()?;
        Some(Box::new(permit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{KeyToken, Sha256Token};

    fn limits(rpm: u32, tpm: u64, max_concurrent: u32) -> MemoryLimits {
        MemoryLimits::new(&[KeyConfig {
            id: "k".into(),
            token: KeyToken::Sha256(Sha256Token {
                sha256: "0".repeat(64),
            }),
            models: Vec::new(),
            rpm: Some(rpm),
            tpm: Some(tpm),
            max_concurrent: Some(max_concurrent),
            max_output_tokens: None,
        }])
    }

    #[tokio::test]
    async fn requests_past_the_rate_wait_about_one_refill() {
        let limits = limits(2, 100, 1);
        assert!(limits.take_request("k", 2).await.is_ok());
        assert!(limits.take_request("k", 2).await.is_ok());
        let wait = limits.take_request("k", 2).await.expect_err("limited");
        // One request refills every 30 s at 2 rpm.
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
    }

    #[tokio::test]
    async fn tokens_are_charged_after_the_fact() {
        let limits = limits(100, 100, 1);
        assert!(limits.check_tokens("k", 100).await.is_ok());
        limits.record_tokens("k", 100, 150);
        let wait = limits
            .check_tokens("k", 100)
            .await
            .expect_err("over budget");
        assert!(wait > Duration::from_secs(30), "{wait:?}");
    }

    #[tokio::test]
    async fn slots_return_when_dropped() {
        let limits = limits(100, 100, 1);
        let slot = limits.acquire("k", 1).await.expect("first slot");
        assert_eq!(limits.in_flight("k", 1), 1);
        assert!(limits.acquire("k", 1).await.is_none());
        drop(slot);
        assert_eq!(limits.in_flight("k", 1), 0);
        assert!(limits.acquire("k", 1).await.is_some());
    }
}
