//! Sends what is ready in one write: a stream adapter that joins the chunks
//! an upstream sent together into one, so twenty SSE events that arrived in
//! one read cost one `writev` instead of twenty.
//!
//! An HTTP/1.1 upstream body is driven in this task (`adapter-http`'s pool),
//! so the chunks of one read come back to back. An HTTP/2 upstream's
//! connection has a task of its own, and hyper hands its body over one chunk
//! per wake-up of that task: each takes scheduler passes to come through.
//! For those, when the next chunk is not there yet,
//! the adapter yields to the scheduler (its own wake-up goes to the back of
//! the run queue) and looks again; it sends what it has once three looks in
//! a row found nothing new. A lone chunk thus waits three scheduler passes
//! (microseconds), never for the network.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::Stream;

/// Scheduler passes without a new chunk before the batch is sent.
const IDLE_LOOKS: u32 = 3;

/// The most bytes joined into one chunk.
const MAX_JOINED: usize = 64 * 1024;

/// See the module documentation.
pub(crate) struct Coalesce<S, E> {
    inner: Pin<Box<S>>,
    /// Chunks taken but not sent yet.
    batch: Batch,
    /// Whether a chunk arrived since the last yield.
    fresh: bool,
    /// Yields in a row that brought nothing new.
    idle_looks: u32,
    /// What ended the stream (an error or the end), sent after the batch.
    pending_end: Option<Option<E>>,
}

/// One chunk as it came, or several joined.
enum Batch {
    Empty,
    One(Bytes),
    Joined(BytesMut),
}

impl Batch {
    fn len(&self) -> usize {
        match self {
            Batch::Empty => 0,
            Batch::One(bytes) => bytes.len(),
            Batch::Joined(buffer) => buffer.len(),
        }
    }

    fn push(&mut self, next: Bytes) {
        *self = match std::mem::replace(self, Batch::Empty) {
            Batch::Empty => Batch::One(next),
            Batch::One(first) => {
                let mut buffer = BytesMut::with_capacity((first.len() + next.len()) * 4);
                buffer.extend_from_slice(&first);
                buffer.extend_from_slice(&next);
                Batch::Joined(buffer)
            }
            Batch::Joined(mut buffer) => {
                buffer.extend_from_slice(&next);
                Batch::Joined(buffer)
            }
        };
    }

    fn take(&mut self) -> Option<Bytes> {
        match std::mem::replace(self, Batch::Empty) {
            Batch::Empty => None,
            Batch::One(bytes) => Some(bytes),
            Batch::Joined(buffer) => Some(buffer.freeze()),
        }
    }
}

impl<S, E> Coalesce<S, E> {
    /// Joins the chunks of `inner` that come together.
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner: Box::pin(inner),
            batch: Batch::Empty,
            fresh: false,
            idle_looks: 0,
            pending_end: None,
        }
    }
}

impl<S, E> Stream for Coalesce<S, E>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = Pin::into_inner(self);
        loop {
            if let Some(end) = &mut this.pending_end {
                if let Some(bytes) = this.batch.take() {
                    return Poll::Ready(Some(Ok(bytes)));
                }
                // An error is sent once; after it, and after the end, None.
                return Poll::Ready(end.take().map(Err));
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => {
                    this.batch.push(bytes);
                    this.fresh = true;
                    if this.batch.len() >= MAX_JOINED {
                        return Poll::Ready(this.batch.take().map(Ok));
                    }
                }
                Poll::Ready(Some(Err(err))) => this.pending_end = Some(Some(err)),
                Poll::Ready(None) => this.pending_end = Some(None),
                Poll::Pending => {
                    if matches!(this.batch, Batch::Empty) {
                        return Poll::Pending;
                    }
                    if this.fresh {
                        this.fresh = false;
                        this.idle_looks = 0;
                    }
                    if this.idle_looks < IDLE_LOOKS {
                        // Yield, so the task that feeds `inner` can run.
                        this.idle_looks += 1;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    return Poll::Ready(this.batch.take().map(Ok));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn ready_chunks_are_joined_and_errors_kept_in_order() {
        let parts = vec![
            Ok(Bytes::from_static(b"a")),
            Ok(Bytes::from_static(b"b")),
            Err("broken"),
            Ok(Bytes::from_static(b"never")),
        ];
        let out: Vec<Result<Bytes, &str>> =
            Coalesce::new(futures::stream::iter(parts)).collect().await;
        assert_eq!(out, vec![Ok(Bytes::from_static(b"ab")), Err("broken")]);
    }

    #[tokio::test]
    async fn a_chunk_that_is_alone_goes_on_at_once() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes, ()>>();
        let mut joined = Coalesce::new(rx);
        tx.unbounded_send(Ok(Bytes::from_static(b"first")))
            .expect("send");
        // Sent after one look that finds nothing new.
        assert_eq!(joined.next().await, Some(Ok(Bytes::from_static(b"first"))));
        tx.unbounded_send(Ok(Bytes::from_static(b"x")))
            .expect("send");
        tx.unbounded_send(Ok(Bytes::from_static(b"y")))
            .expect("send");
        drop(tx);
        assert_eq!(joined.next().await, Some(Ok(Bytes::from_static(b"xy"))));
        assert_eq!(joined.next().await, None);
        assert_eq!(joined.next().await, None);
    }
}
