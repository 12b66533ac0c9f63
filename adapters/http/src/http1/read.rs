//! The read buffer of an HTTP/1.1 connection, client or server side.

use std::io;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

/// A read into a buffer that holds bytes already has room for at least
/// this many bytes at first.
const INITIAL_READ: usize = 4096;

/// Reads grow (doubling each time one fills its room) up to this size.
const MAX_READ: usize = 64 * 1024;

/// A read into an unallocated buffer goes to the stack, this much at most:
/// enough for a typical answer with its whole stream of events in one
/// read rather than two.
const STACK_READ: usize = 16 * 1024;

/// The bytes read from a connection that nothing has taken yet, and how
/// much room the next read gets. Dereferences to the bytes.
#[derive(Debug)]
pub struct ReadBuffer {
    bytes: BytesMut,
    /// Room the next read gets when the buffer is short of it.
    read_size: usize,
}

impl Default for ReadBuffer {
    fn default() -> Self {
        Self {
            bytes: BytesMut::new(),
            read_size: INITIAL_READ,
        }
    }
}

impl ReadBuffer {
    /// Reads what `io` has into the buffer; `Ok(0)` when the peer closed
    /// the connection.
    ///
    /// While nothing is buffered and nothing has arrived, the buffer is
    /// given back to the allocator: an idle connection, or one whose
    /// stream waits for its next event, holds no read buffer (one
    /// allocation per wait is far cheaper than 4 KiB per open stream).
    pub fn poll_fill<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if self.bytes.capacity() == 0 {
            return self.poll_fill_unallocated(io, cx);
        }
        if self.bytes.capacity() - self.bytes.len() < self.read_size / 4 {
            self.bytes.reserve(self.read_size);
        }
        let room = self.bytes.capacity() - self.bytes.len();
        let Poll::Ready(count) = tokio_util::io::poll_read_buf(Pin::new(io), cx, &mut self.bytes)
        else {
            if self.bytes.is_empty() {
                self.bytes = BytesMut::new();
            }
            return Poll::Pending;
        };
        let count = count?;
        if count >= room && self.read_size < MAX_READ {
            self.read_size *= 2;
        }
        Poll::Ready(Ok(count))
    }

    /// [`ReadBuffer::poll_fill`] while no buffer is allocated: the read goes
    /// to the stack and a buffer is allocated only for bytes that came, so
    /// that a read which finds nothing (most of them: every wait for a
    /// request, an answer or an event starts with one) allocates and frees
    /// nothing.
    fn poll_fill_unallocated<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let mut stack = [MaybeUninit::<u8>::uninit(); STACK_READ];
        let mut read = ReadBuf::uninit(&mut stack);
        ready!(Pin::new(io).poll_read(cx, &mut read))?;
        let came = read.filled();
        if !came.is_empty() {
            // Room for what came, no more: a head or a small answer (most
            // reads here) then fits the allocator's small sizes, whose
            // allocations cost a fraction of a 4 KiB one; a message that
            // goes on grows the buffer on its next read.
            self.bytes.reserve(came.len());
            self.bytes.extend_from_slice(came);
            while came.len() >= self.read_size && self.read_size < MAX_READ {
                self.read_size *= 2;
            }
        }
        Poll::Ready(Ok(came.len()))
    }

    /// The buffered bytes, for whoever reads the connection next.
    pub fn into_bytes(self) -> Bytes {
        self.bytes.freeze()
    }
}

/// The first `length` bytes of `buffer` (all of it when it holds no
/// more), taken off it. When they are all of it the buffer itself is
/// taken, which keeps it unshared: splitting a buffer makes it shared,
/// which allocates a count that every piece then updates atomically (and
/// an answer or a request body is usually the whole of its read).
pub fn take_front(buffer: &mut BytesMut, length: usize) -> Bytes {
    if length >= buffer.len() {
        return std::mem::take(buffer).freeze();
    }
    buffer.split_to(length).freeze()
}

/// A copy of the first `length` bytes of `buffer` (all of it when it
/// holds no more), taken off it: for a head, whose few hundred bytes
/// cost less to copy than the shared buffer of [`take_front`] costs the
/// body that follows it in the same read.
pub fn copy_front(buffer: &mut BytesMut, length: usize) -> Bytes {
    if length >= buffer.len() {
        return std::mem::take(buffer).freeze();
    }
    let front = Bytes::copy_from_slice(&buffer[..length]);
    buffer.advance(length);
    front
}

impl Deref for ReadBuffer {
    type Target = BytesMut;

    fn deref(&self) -> &BytesMut {
        &self.bytes
    }
}

impl DerefMut for ReadBuffer {
    fn deref_mut(&mut self) -> &mut BytesMut {
        &mut self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_is_taken_and_the_rest_stays() {
        let mut buffer = BytesMut::from(&b"headbody"[..]);
        assert_eq!(copy_front(&mut buffer, 4), "head");
        assert_eq!(&buffer[..], b"body");
        assert_eq!(take_front(&mut buffer, 2), "bo");
        assert_eq!(&buffer[..], b"dy");
        // All of it, or more than there is: the buffer itself, now empty.
        assert_eq!(take_front(&mut buffer, 9), "dy");
        assert!(buffer.is_empty());
        let mut buffer = BytesMut::from(&b"head"[..]);
        assert_eq!(copy_front(&mut buffer, 4), "head");
        assert!(buffer.is_empty());
    }
}
