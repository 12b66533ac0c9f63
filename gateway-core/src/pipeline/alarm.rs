//! One timer for every deadline a connection waits on in turn: its next
//! request head, then the first byte of each attempt of that request.
//!
//! A timer of tokio's costs a lock on the runtime's timer wheel and an
//! insertion when it is first polled, and another lock and a removal when
//! it is dropped: about 430 instructions per pass-through request by
//! callgrind, the removal on the way back to the client, between the
//! answer's arrival and its write. A connection keeps one timer for the
//! head deadlines it waits on between requests, and lends it ([`Alarm`])
//! to the request it serves, whose attempts wait on it rather than on
//! timers of their own. A caller with no timer to lend gives the request
//! one of its own, set at its first attempt.
//!
//! The timer is moved lazily. A deadline later than the timer leaves it
//! where it is; when it fires early, whoever waits moves it on to their own
//! deadline. Most deadlines are later than the timer: a connection's head
//! deadline moves by `header_timeout_ms` (30 s by default) once per
//! `header_timeout_ms`, not per request, and the default first-byte timeout
//! is two minutes. A deadline earlier than the timer moves it back, which
//! costs what a new timer would.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

/// A timer lent by the caller for the deadlines it waits on in turn (see
/// the [module docs](self)).
#[derive(Debug)]
pub struct Alarm<'a> {
    timer: Pin<&'a mut Sleep>,
}

impl<'a> Alarm<'a> {
    /// An alarm that sets `timer`; where it is set now does not matter.
    pub fn new(timer: Pin<&'a mut Sleep>) -> Self {
        Self { timer }
    }

    /// The same timer, lent on for a shorter while.
    pub(crate) fn reborrow(&mut self) -> Alarm<'_> {
        Alarm {
            timer: self.timer.as_mut(),
        }
    }

    /// Resolves at `deadline`.
    pub async fn until(&mut self, deadline: Instant) {
        poll_fn(|cx| self.poll_until(deadline, cx)).await;
    }

    /// Polls a wait for `deadline`: ready once it has passed.
    pub fn poll_until(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        if self.timer.deadline() > deadline {
            self.timer.as_mut().reset(deadline);
        }
        loop {
            ready!(self.timer.as_mut().poll(cx));
            if self.timer.deadline() >= deadline {
                return Poll::Ready(());
            }
            // It fired for an earlier deadline (or long ago).
            self.timer.as_mut().reset(deadline);
        }
    }
}

pin_project! {
    /// `attempt`'s output, or `None` once `deadline` has passed, waited
    /// for on `alarm`: what `tokio::time::timeout_at` does with a timer of
    /// its own.
    pub(crate) struct Within<'a, 'b, F> {
        #[pin]
        attempt: F,
        alarm: &'a mut Alarm<'b>,
        deadline: Instant,
    }
}

impl<'a, 'b, F> Within<'a, 'b, F> {
    /// `attempt` raced against `deadline` on `alarm`.
    pub(crate) fn new(attempt: F, alarm: &'a mut Alarm<'b>, deadline: Instant) -> Self {
        Self {
            attempt,
            alarm,
            deadline,
        }
    }
}

impl<F: Future> Future for Within<'_, '_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.attempt.poll(cx) {
            return Poll::Ready(Some(output));
        }
        this.alarm.poll_until(*this.deadline, cx).map(|()| None)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn a_timer_set_later_is_moved_back_and_one_set_earlier_is_moved_on() {
        let start = Instant::now();
        let timer = std::pin::pin!(tokio::time::sleep(100 * SECOND));
        let mut alarm = Alarm::new(timer);
        alarm.until(start + 5 * SECOND).await;
        assert_eq!(Instant::now() - start, 5 * SECOND);
        // The timer is now at 5 s, in the past: a later deadline is waited
        // for in full, not met at once.
        alarm.until(start + 7 * SECOND).await;
        assert_eq!(Instant::now() - start, 7 * SECOND);
        // A deadline already past is met at once.
        alarm.until(start + SECOND).await;
        assert_eq!(Instant::now() - start, 7 * SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_is_raced_against_its_deadline() {
        let start = Instant::now();
        let timer = std::pin::pin!(tokio::time::sleep(Duration::MAX));
        let mut alarm = Alarm::new(timer);
        let answered = async {
            tokio::time::sleep(2 * SECOND).await;
            "answer"
        };
        let outcome = Within::new(answered, &mut alarm, start + 3 * SECOND).await;
        assert_eq!(outcome, Some("answer"));
        assert_eq!(Instant::now() - start, 2 * SECOND);
        let silent = std::future::pending::<&str>();
        let outcome = Within::new(silent, &mut alarm, start + 5 * SECOND).await;
        assert_eq!(outcome, None);
        assert_eq!(Instant::now() - start, 5 * SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn an_early_timer_is_moved_on_when_it_fires() {
        let start = Instant::now();
        let timer = std::pin::pin!(tokio::time::sleep(2 * SECOND));
        let mut alarm = Alarm::new(timer);
        // Polled once and left: the timer stays at 2 s.
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(alarm.poll_until(start + 9 * SECOND, &mut cx).is_pending());
        assert_eq!(alarm.timer.deadline(), start + 2 * SECOND);
        alarm.until(start + 9 * SECOND).await;
        assert_eq!(Instant::now() - start, 9 * SECOND);
    }
}
