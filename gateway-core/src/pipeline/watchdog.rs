//! Keeps an answer's stream honest: ends it with a timeout error when the
//! upstream goes quiet for too long or the whole answer takes too long, and
//! holds the request's slots until the stream ends or is dropped (the
//! client went away), whichever comes first.

use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::time::{Instant, Sleep};

use crate::error::GatewayError;

/// The limits a [`Watchdog`] enforces.
#[derive(Debug, Clone)]
pub struct StreamLimits {
    /// Longest gap between two items.
    pub idle: Duration,
    /// When the whole answer must be done.
    pub deadline: Instant,
    /// What the deadline is, for the error message.
    pub deadline_reason: DeadlineReason,
}

/// What set a stream's deadline, put into words only when the deadline
/// passes (formatting it for every answer cost an allocation and a
/// `format!` per request).
#[derive(Debug, Clone)]
pub enum DeadlineReason {
    /// `limits.max_stream_duration_ms`, this long.
    MaxStreamDuration(Duration),
    /// `backend`'s `total_timeout_ms`, this long.
    TotalTimeout {
        /// The backend's id.
        backend: Arc<str>,
        /// Its total timeout.
        limit: Duration,
    },
    /// A fixed description.
    Named(&'static str),
}

impl fmt::Display for DeadlineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeadlineReason::MaxStreamDuration(limit) => {
                write!(f, "limits.max_stream_duration_ms is {}", limit.as_millis())
            }
            DeadlineReason::TotalTimeout { backend, limit } => write!(
                f,
                "backend '{backend}' has total_timeout_ms {}",
                limit.as_millis()
            ),
            DeadlineReason::Named(name) => f.write_str(name),
        }
    }
}

/// A stream with idle and total time limits that holds `held` (concurrency
/// slots, the key's admission) while it runs; dropped when the stream ends,
/// fails or is dropped.
///
/// One timer serves both limits: it is set for the earlier of the deadline
/// and "idle after the last item", and an item only notes the time, so a
/// fast stream does not move a timer on every chunk. The timer is made
/// when the stream first has to wait: an answer that is all there when
/// first polled (most JSON answers) never makes one, and the idle clock
/// starts when waiting does.
///
/// The stream is `Unpin` (a boxed stream, in practice), so it is held as it
/// is rather than boxed again.
pub struct Watchdog<S, H> {
    inner: Option<S>,
    idle: Duration,
    /// When the last item came; read only once the timer is made.
    last_item: Instant,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    deadline_reason: DeadlineReason,
    held: Option<H>,
}

impl<S, H> Watchdog<S, H> {
    /// Watches `inner` with `limits`, holding `held` until the end.
    pub fn new(inner: S, limits: StreamLimits, held: H) -> Self {
        Self {
            inner: Some(inner),
            idle: limits.idle,
            last_item: limits.deadline,
            deadline: limits.deadline,
            timer: None,
            deadline_reason: limits.deadline_reason,
            held: Some(held),
        }
    }

    /// Ends the stream: drops the upstream and releases what was held.
    fn finish(&mut self) {
        self.inner = None;
        self.held = None;
    }
}

impl<S, H, T> Stream for Watchdog<S, H>
where
    S: Stream<Item = Result<T, GatewayError>> + Unpin,
    H: Unpin,
{
    type Item = Result<T, GatewayError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Every field is boxed or Unpin, so the wrapper is Unpin.
        let this = Pin::into_inner(self);
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_next(cx) {
            Poll::Ready(Some(item)) => {
                if item.is_err() {
                    this.finish();
                } else if this.timer.is_some() {
                    this.last_item = Instant::now();
                }
                return Poll::Ready(Some(item));
            }
            Poll::Ready(None) => {
                this.finish();
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        let timer = this.timer.get_or_insert_with(|| {
            let now = Instant::now();
            this.last_item = now;
            Box::pin(tokio::time::sleep_until(
                (now + this.idle).min(this.deadline),
            ))
        });
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let message = if now >= this.deadline {
                format!(
                    "the answer did not finish in time: {}",
                    this.deadline_reason
                )
            } else if now >= this.last_item + this.idle {
                format!(
                    "the upstream sent nothing for {} ms (idle_timeout_ms)",
                    this.idle.as_millis()
                )
            } else {
                // Items came since the timer was set: move it and wait on.
                let next = (this.last_item + this.idle).min(this.deadline);
                timer.as_mut().reset(next);
                continue;
            };
            this.finish();
            return Poll::Ready(Some(Err(GatewayError::timeout(message))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_upstream_ends_with_a_timeout_and_releases_what_it_held() {
        let released = Arc::new(AtomicBool::new(false));
        let inner =
            futures::stream::iter([Ok::<_, GatewayError>(1)]).chain(futures::stream::pending());
        let mut watched = Watchdog::new(
            inner,
            StreamLimits {
                idle: Duration::from_secs(5),
                deadline: Instant::now() + Duration::from_secs(600),
                deadline_reason: DeadlineReason::Named("total"),
            },
            Box::new(Flag(released.clone())),
        );
        assert_eq!(watched.next().await.map(|r| r.ok()), Some(Some(1)));
        let err = watched.next().await.expect("an item").expect_err("timeout");
        assert_eq!(err.status(), 504);
        assert!(err.message.contains("idle_timeout_ms"), "{}", err.message);
        assert!(released.load(Ordering::SeqCst));
        assert!(watched.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_that_never_waits_makes_no_timer_and_one_that_waits_does() {
        let limits = || StreamLimits {
            idle: Duration::from_secs(5),
            deadline: Instant::now() + Duration::from_secs(600),
            deadline_reason: DeadlineReason::Named("total"),
        };
        let mut ready = Watchdog::new(
            futures::stream::iter([Ok::<_, GatewayError>(1)]),
            limits(),
            (),
        );
        assert_eq!(ready.next().await.map(|r| r.ok()), Some(Some(1)));
        assert!(ready.next().await.is_none());
        assert!(ready.timer.is_none());

        // The idle clock starts when the stream first waits, not when the
        // watchdog was made.
        tokio::time::advance(Duration::from_secs(4)).await;
        let (sender, receiver) = futures::channel::mpsc::unbounded::<Result<i32, GatewayError>>();
        let mut waiting = Watchdog::new(receiver, limits(), ());
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(futures::poll!(waiting.next()).is_pending());
        assert!(waiting.timer.is_some());
        // 8 s after it was made, 4 s after it began to wait: no timeout.
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(futures::poll!(waiting.next()).is_pending());
        sender.unbounded_send(Ok(2)).expect("open");
        assert_eq!(waiting.next().await.map(|r| r.ok()), Some(Some(2)));
        let err = waiting.next().await.expect("an item").expect_err("timeout");
        assert!(err.message.contains("idle_timeout_ms"), "{}", err.message);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_ends_a_busy_stream() {
        let inner = Box::pin(
            futures::stream::repeat_with(|| Ok::<_, GatewayError>(())).then(|item| async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                item
            }),
        );
        let watched = Watchdog::new(
            inner,
            StreamLimits {
                idle: Duration::from_secs(5),
                deadline: Instant::now() + Duration::from_secs(10),
                deadline_reason: DeadlineReason::Named("max_stream_duration_ms"),
            },
            Box::new(()),
        );
        let items: Vec<_> = watched.collect().await;
        assert!(items.len() >= 9 && items.len() <= 11, "{}", items.len());
        let last = items.last().expect("items").as_ref().expect_err("deadline");
        assert!(last.message.contains("max_stream_duration_ms"));
    }
}
