//! Clocks for times that need no more precision than a few milliseconds:
//! how long a pooled connection has been idle, when a kept-alive client
//! must send its next head, the `Date` header's second.
//!
//! They are Linux's coarse clocks, the time as of the kernel's last tick
//! (at most one tick, 1–10 ms, behind). Reading one copies a value from the
//! vDSO page; reading the precise clock also reads the CPU's time-stamp
//! counter and scales it: 16 ns against 4 ns on the bench machine (a
//! million reads in a loop). Four precise reads per pass-through request
//! were 0.5-1% of the gateway's CPU time by `perf record`. nginx does the
//! same with the time it caches once per turn of its event loop. Elsewhere
//! (no coarse clock) they are the precise clocks.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Now, by the coarse monotonic clock, as an [`Instant`] (so that it can
/// set tokio timers and be compared with precise instants): within a tick
/// of [`Instant::now`], either side.
pub fn coarse_instant() -> Instant {
    coarse::instant()
}

/// Seconds since the Unix epoch, by the coarse real-time clock.
pub fn coarse_unix_seconds() -> u64 {
    coarse::unix_seconds()
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
mod coarse {
    use super::{Cell, Duration, Instant};
    use rustix::time::{ClockId, clock_gettime};

    thread_local! {
        /// A precise instant and the coarse clock read just before it,
        /// taken once per thread: a coarse reading becomes an `Instant` by
        /// its distance from this pair, as both clocks are the same
        /// monotonic clock (the coarse one stopped at the last tick).
        static BASE: Cell<Option<(Instant, Duration)>> = const { Cell::new(None) };
    }

    fn read(id: ClockId) -> Duration {
        let time = clock_gettime(id);
        Duration::new(
            u64::try_from(time.tv_sec).unwrap_or(0),
            u32::try_from(time.tv_nsec).unwrap_or(0),
        )
    }

    pub(super) fn instant() -> Instant {
        let now = read(ClockId::MonotonicCoarse);
        let (base, base_coarse) = BASE.get().unwrap_or_else(|| {
            let base = (Instant::now(), read(ClockId::MonotonicCoarse));
            BASE.set(Some(base));
            base
        });
        // The pair's coarse reading trails its precise one by some part
        // of a tick, which this adds back; `now` trails the present by
        // some part of a tick too. So this lies within a tick of the
        // present, either side.
        base + now.saturating_sub(base_coarse)
    }

    pub(super) fn unix_seconds() -> u64 {
        read(ClockId::RealtimeCoarse).as_secs()
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
mod coarse {
    use super::Instant;
    use std::time::{SystemTime, UNIX_EPOCH};

    pub(super) fn instant() -> Instant {
        Instant::now()
    }

    pub(super) fn unix_seconds() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn the_coarse_instant_is_within_a_tick_of_the_precise_one() {
        // A tick is at most 10 ms (HZ=100), with room.
        let bound = Duration::from_millis(12);
        for _ in 0..1000 {
            let before = Instant::now();
            let coarse = coarse_instant();
            let after = Instant::now();
            assert!(
                coarse + bound >= before && coarse <= after + bound,
                "{coarse:?} is not within {bound:?} of {before:?}..{after:?}"
            );
        }
    }

    #[test]
    fn the_coarse_seconds_are_the_system_clock_s() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let coarse = coarse_unix_seconds();
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        // The coarse clock may still show the second before `before`.
        assert!(
            (before.saturating_sub(1)..=after).contains(&coarse),
            "{coarse} not in {before}..={after}"
        );
    }
}
