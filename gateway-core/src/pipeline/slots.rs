//! Per-backend concurrency: at most `max` requests in flight, at most
//! `max_queue` waiting for a slot (each for at most `queue_timeout`); a full
//! queue or a wait that times out is a 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::Serialize;
use thread_local::ThreadLocal;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ErrorKind, GatewayError};

/// One backend's slots and queue.
#[derive(Debug)]
pub struct BackendSlots {
    /// The backend's id, which each thread's [`Shard`] copies.
    backend: Arc<str>,
    limit: Option<(Arc<Semaphore>, u32)>,
    max_queue: u32,
    queue_timeout: Duration,
    /// Requests in flight, counted per thread: a request touches only its
    /// own thread's count and handle, where one shared count was written by
    /// every worker thread on every request.
    shards: ThreadLocal<Arc<Shard>>,
    queued: AtomicU32,
}

/// One thread's part of a backend's slots.
#[derive(Debug)]
struct Shard {
    /// The backend's id: this thread's own copy, so that handing it out
    /// does not write to a count other threads write too.
    backend: Arc<str>,
    in_flight: AtomicU32,
}

/// A slot held for one request; dropping it frees the slot.
#[derive(Debug)]
pub struct BackendSlot {
    shard: Arc<Shard>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl BackendSlot {
    /// The id of the backend the slot belongs to.
    pub fn backend(&self) -> &Arc<str> {
        &self.shard.backend
    }
}

/// Counters for `/v1/providers`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct SlotCounts {
    /// Requests in flight now.
    pub in_flight: u32,
    /// Requests waiting for a slot now.
    pub queued: u32,
    /// The configured limit, if any.
    pub max_concurrent: Option<u32>,
    /// The configured queue length.
    pub max_queue: u32,
}

/// Decrements a counter when dropped, so a cancelled wait is uncounted.
struct Counted<'a>(&'a AtomicU32);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl BackendSlots {
    /// Slots for `backend`; `max` `None` is unlimited (requests are still
    /// counted).
    pub fn new(backend: &str, max: Option<u32>, max_queue: u32, queue_timeout: Duration) -> Self {
        Self {
            backend: Arc::from(backend),
            limit: max.map(|max| (Arc::new(Semaphore::new(max as usize)), max)),
            max_queue,
            queue_timeout,
            shards: ThreadLocal::new(),
            queued: AtomicU32::new(0),
        }
    }

    /// Counts one more request in flight on this thread's shard.
    fn take(&self, permit: Option<OwnedSemaphorePermit>) -> BackendSlot {
        let shard = self.shards.get_or(|| {
            Arc::new(Shard {
                backend: Arc::from(&*self.backend),
                in_flight: AtomicU32::new(0),
            })
        });
        shard.in_flight.fetch_add(1, Ordering::Relaxed);
        BackendSlot {
            shard: shard.clone(),
            _permit: permit,
        }
    }

    /// Takes a slot, waiting in the queue if there is room in it.
    pub async fn acquire(&self) -> Result<BackendSlot, GatewayError> {
        let permit = match &self.limit {
            None => None,
            Some((semaphore, max)) => match semaphore.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => Some(self.wait(semaphore, *max).await?),
            },
        };
        Ok(self.take(permit))
    }

    /// Takes a slot only if one is free now.
    pub fn acquire_now(&self) -> Result<BackendSlot, GatewayError> {
        let permit = match &self.limit {
            None => None,
            Some((semaphore, max)) => {
                Some(semaphore.clone().try_acquire_owned().map_err(|_| {
                    overloaded(format!(
                        "the backend is at its limit of {max} concurrent requests"
                    ))
                })?)
            }
        };
        Ok(self.take(permit))
    }

    async fn wait(
        &self,
        semaphore: &Arc<Semaphore>,
        max: u32,
    ) -> Result<OwnedSemaphorePermit, GatewayError> {
        let backend = &self.backend;
        let queued = self.queued.fetch_add(1, Ordering::AcqRel);
        let _counted = Counted(&self.queued);
        if queued >= self.max_queue {
            return Err(overloaded(format!(
                "backend '{backend}' is at its limit of {max} concurrent requests and its \
                 queue ({}) is full",
                self.max_queue
            )));
        }
        match tokio::time::timeout(self.queue_timeout, semaphore.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(GatewayError::internal("backend semaphore closed")),
            Err(_) => Err(overloaded(format!(
                "backend '{backend}' had no free slot within {} ms (limit {max} concurrent \
                 requests)",
                self.queue_timeout.as_millis()
            ))),
        }
    }

    /// The current counters.
    pub fn counts(&self) -> SlotCounts {
        SlotCounts {
            in_flight: self
                .shards
                .iter()
                .map(|shard| shard.in_flight.load(Ordering::Relaxed))
                .sum(),
            queued: self.queued.load(Ordering::Acquire),
            max_concurrent: self.limit.as_ref().map(|(_, max)| *max),
            max_queue: self.max_queue,
        }
    }
}

impl Drop for BackendSlot {
    fn drop(&mut self) {
        self.shard.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn overloaded(message: String) -> GatewayError {
    let mut err = GatewayError::new(ErrorKind::Unavailable, message);
    err.retryable = true;
    err.retry_after = Some(Duration::from_secs(1));
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_answers_503_and_counters_return_to_zero() {
        let slots = Arc::new(BackendSlots::new("b", Some(1), 1, Duration::from_secs(60)));
        let first = slots.acquire().await.expect("free slot");
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire().await.map(|_| ()) }
        });
        // Wait (without sleeping) until the second request is queued.
        while slots.counts().queued == 0 {
            tokio::task::yield_now().await;
        }
        let refused = slots.acquire().await.expect_err("queue full");
        assert_eq!(refused.status(), 503);
        assert!(refused.message.contains("queue (1) is full"));
        drop(first);
        waiting
            .await
            .expect("join")
            .expect("queued request gets the slot");
        assert_eq!(
            slots.counts(),
            SlotCounts {
                in_flight: 0,
                queued: 0,
                max_concurrent: Some(1),
                max_queue: 1
            }
        );
    }

    #[tokio::test]
    async fn no_queue_means_503_at_once() {
        let slots = Arc::new(BackendSlots::new("b", Some(1), 0, Duration::from_secs(60)));
        let _first = slots.acquire().await.expect("free slot");
        assert_eq!(
            slots.acquire().await.map(|_| ()).map_err(|e| e.status()),
            Err(503)
        );
        assert_eq!(slots.counts().queued, 0);
    }
}
