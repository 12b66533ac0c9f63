//! How many requests this worker thread is answering, so that a stream's
//! head goes out at once when nothing else waits for the worker.
//!
//! A client woken by a write on a core that has gone idle takes tens of
//! µs to run (a halted vCPU here: 25-35 µs). Written first, on its own,
//! a stream's head starts that wake-up while the gateway is still
//! decoding and re-framing the body, which then arrives before the client
//! runs: 10 µs off a lone streamed request's round trip with the proxy on
//! a core of its own, 3-4 µs unpinned (the bench's pass-through stream).
//! The separate write costs a syscall and a packet, about 1.7 µs of CPU
//! per stream; a busy worker would spend it while other requests wait
//! (at 64 clients, 10% fewer streams a second), so the head goes out
//! alone only when its request is the only one the worker is answering.
//! nginx writes a stream's head apart always.
//!
//! Each worker is a single-threaded runtime, so a request stays on the
//! thread that counted it. On a runtime that moves tasks between threads
//! a count can go stale; the cost is only a head written one way rather
//! than the other.

use std::cell::Cell;

thread_local! {
    static IN_FLIGHT: Cell<usize> = const { Cell::new(0) };
}

/// One request being answered on this thread, from its head read until
/// its answer is written (or the connection is given up).
pub(super) struct InFlight(());

impl InFlight {
    /// Counts a request in.
    pub(super) fn enter() -> Self {
        IN_FLIGHT.with(|count| count.set(count.get() + 1));
        Self(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.with(|count| count.set(count.get().saturating_sub(1)));
    }
}

/// Whether this thread answers no request but (at most) the caller's.
pub(super) fn alone() -> bool {
    IN_FLIGHT.with(|count| count.get() <= 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_alone_until_another_is_counted_in() {
        assert!(alone());
        let first = InFlight::enter();
        assert!(alone());
        let second = InFlight::enter();
        assert!(!alone());
        drop(first);
        assert!(alone());
        drop(second);
        assert!(alone());
        assert_eq!(IN_FLIGHT.with(Cell::get), 0);
    }
}
