//! Keeps an answer's stream honest: ends it with a timeout error when the
//! upstream goes quiet for too long or the whole answer takes too long, and
//! holds the request's slots until the stream ends or is dropped (the
//! client went away), whichever comes first.

use std::any::Any;
use std::future::Future as _;
use std::pin::Pin;
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
    pub deadline_reason: String,
}

/// Whatever must live as long as the answer: concurrency slots, the key's
/// admission. Dropped when the stream ends, fails or is dropped.
pub type Held = Vec<Box<dyn Any + Send + Sync>>;

/// A stream with idle and total time limits that holds `held` while it runs.
pub struct Watchdog<S> {
    inner: Option<Pin<Box<S>>>,
    idle: Duration,
    idle_timer: Pin<Box<Sleep>>,
    deadline_timer: Pin<Box<Sleep>>,
    deadline_reason: String,
    held: Held,
}

impl<S> Watchdog<S> {
    /// Watches `inner` with `limits`, holding `held` until the end.
    pub fn new(inner: S, limits: StreamLimits, held: Held) -> Self {
        Self {
            inner: Some(Box::pin(inner)),
            idle: limits.idle,
            idle_timer: Box::pin(tokio::time::sleep(limits.idle)),
            deadline_timer: Box::pin(tokio::time::sleep_until(limits.deadline)),
            deadline_reason: limits.deadline_reason,
            held,
        }
    }

    /// Ends the stream: drops the upstream and releases what was held.
    fn finish(&mut self) {
        self.inner = None;
        self.held.clear();
    }
}

impl<S, T> Stream for Watchdog<S>
where
    S: Stream<Item = Result<T, GatewayError>>,
{
    type Item = Result<T, GatewayError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Every field is boxed or Unpin, so the wrapper is Unpin.
        let this = Pin::into_inner(self);
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(item)) => {
                let failed = item.is_err();
                if failed {
                    this.finish();
                } else {
                    let next = Instant::now() + this.idle;
                    this.idle_timer.as_mut().reset(next);
                }
                return Poll::Ready(Some(item));
            }
            Poll::Ready(None) => {
                this.finish();
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if this.deadline_timer.as_mut().poll(cx).is_ready() {
            let message = format!(
                "the answer did not finish in time: {}",
                this.deadline_reason
            );
            this.finish();
            return Poll::Ready(Some(Err(GatewayError::timeout(message))));
        }
        if this.idle_timer.as_mut().poll(cx).is_ready() {
            let message = format!(
                "the upstream sent nothing for {} ms (idle_timeout_ms)",
                this.idle.as_millis()
            );
            this.finish();
            return Poll::Ready(Some(Err(GatewayError::timeout(message))));
        }
        Poll::Pending
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
                deadline_reason: "total".into(),
            },
            vec![Box::new(Flag(released.clone()))],
        );
        assert_eq!(watched.next().await.map(|r| r.ok()), Some(Some(1)));
        let err = watched.next().await.expect("an item").expect_err("timeout");
        assert_eq!(err.status(), 504);
        assert!(err.message.contains("idle_timeout_ms"), "{}", err.message);
        assert!(released.load(Ordering::SeqCst));
        assert!(watched.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_ends_a_busy_stream() {
        let inner =
            futures::stream::repeat_with(|| Ok::<_, GatewayError>(())).then(|item| async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                item
            });
        let watched = Watchdog::new(
            inner,
            StreamLimits {
                idle: Duration::from_secs(5),
                deadline: Instant::now() + Duration::from_secs(10),
                deadline_reason: "max_stream_duration_ms".into(),
            },
            Vec::new(),
        );
        let items: Vec<_> = watched.collect().await;
        assert!(items.len() >= 9 && items.len() <= 11, "{}", items.len());
        let last = items.last().expect("items").as_ref().expect_err("deadline");
        assert!(last.message.contains("max_stream_duration_ms"));
    }
}
