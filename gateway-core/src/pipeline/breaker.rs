//! A circuit breaker per backend: closed → open after N consecutive
//! failures → half-open (one probe) after a cooldown → closed on the probe's
//! success, open again on its failure.
//!
//! State is a few atomics, so checking it on every request takes no lock.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// What a breaker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// Requests are refused until the cooldown ends.
    Open,
    /// The cooldown ended; one probe request decides.
    HalfOpen,
}

/// One backend's breaker.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    epoch: Instant,
    failures: AtomicU32,
    /// Milliseconds since `epoch` when the breaker opened, plus one; 0 when
    /// closed.
    opened_at: AtomicU64,
    probing: AtomicBool,
}

/// Permission to send one request; report how it went with
/// [`Ticket::succeeded`] or [`Ticket::failed`]. A ticket dropped unreported
/// (the caller went away, or the outcome says nothing about the backend's
/// health) frees the half-open probe for the next request.
#[derive(Debug)]
pub struct Ticket<'b> {
    breaker: &'b Breaker,
    probe: bool,
}

impl Breaker {
    /// A closed breaker; `threshold` 0 never opens.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold,
            cooldown,
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            opened_at: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The time left before an open breaker lets a probe through; `None`
    /// when it is not open.
    fn remaining(&self) -> Option<Duration> {
        let opened = self.opened_at.load(Ordering::Acquire);
        if opened == 0 {
            return None;
        }
        let elapsed = self.now_ms().saturating_sub(opened - 1);
        let cooldown = u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX);
        (elapsed < cooldown).then(|| Duration::from_millis(cooldown - elapsed))
    }

    /// Lets a request through, or says how long until the breaker may.
    pub fn try_pass(&self) -> Result<Ticket<'_>, Duration> {
        if self.opened_at.load(Ordering::Acquire) == 0 {
            return Ok(Ticket {
                breaker: self,
                probe: false,
            });
        }
        if let Some(remaining) = self.remaining() {
            return Err(remaining);
        }
        if self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            Ok(Ticket {
                breaker: self,
                probe: true,
            })
        } else {
            // Another request is probing; try again shortly.
            Err(Duration::from_secs(1))
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        if self.opened_at.load(Ordering::Acquire) == 0 {
            BreakerState::Closed
        } else if self.remaining().is_some() {
            BreakerState::Open
        } else {
            BreakerState::HalfOpen
        }
    }

    /// Consecutive failures counted so far.
    pub fn failures(&self) -> u32 {
        self.failures.load(Ordering::Acquire)
    }

    /// Milliseconds until an open breaker lets a probe through.
    pub fn retry_in(&self) -> Option<Duration> {
        self.remaining()
    }

    fn open(&self) {
        self.opened_at.store(self.now_ms() + 1, Ordering::Release);
    }
}

impl Ticket<'_> {
    /// The request reached a healthy backend.
    pub fn succeeded(mut self) {
        let breaker = &self.breaker;
        if breaker.failures.load(Ordering::Relaxed) != 0 {
            breaker.failures.store(0, Ordering::Release);
        }
        if breaker.opened_at.load(Ordering::Relaxed) != 0 {
            breaker.opened_at.store(0, Ordering::Release);
        }
        if self.probe {
            breaker.probing.store(false, Ordering::Release);
            self.probe = false;
        }
    }

    /// The backend failed this request.
    pub fn failed(mut self) {
        let breaker = &self.breaker;
        if breaker.threshold == 0 {
            return;
        }
        if self.probe {
            breaker.open();
            breaker.probing.store(false, Ordering::Release);
            self.probe = false;
            return;
        }
        let failures = breaker.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failures >= breaker.threshold && breaker.opened_at.load(Ordering::Acquire) == 0 {
            breaker.open();
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.probe {
            self.breaker.probing.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn opens_after_threshold_and_refuses_during_cooldown() {
        let breaker = Arc::new(Breaker::new(2, Duration::from_secs(60)));
        breaker.try_pass().expect("closed").failed();
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.try_pass().expect("closed").failed();
        assert_eq!(breaker.state(), BreakerState::Open);
        let wait = breaker.try_pass().expect_err("open");
        assert!(wait > Duration::from_secs(55));
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = Arc::new(Breaker::new(2, Duration::from_secs(60)));
        breaker.try_pass().expect("closed").failed();
        breaker.try_pass().expect("closed").succeeded();
        breaker.try_pass().expect("closed").failed();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.failures(), 1);
    }

    #[test]
    fn half_open_lets_one_probe_through_and_decides_on_it() {
        let breaker = Arc::new(Breaker::new(1, Duration::ZERO));
        breaker.try_pass().expect("closed").failed();
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        let probe = breaker.try_pass().expect("probe");
        assert!(breaker.try_pass().is_err(), "only one probe at a time");
        probe.failed();
        let probe = breaker.try_pass().expect("next probe");
        drop(probe);
        let probe = breaker
            .try_pass()
            .expect("an abandoned probe frees the slot");
        probe.succeeded();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.failures(), 0);
    }

    #[test]
    fn threshold_zero_never_opens() {
        let breaker = Arc::new(Breaker::new(0, Duration::from_secs(60)));
        for _ in 0..10 {
            breaker.try_pass().expect("closed").failed();
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
