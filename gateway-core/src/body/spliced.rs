//! A pass-through body as the caller's bytes with one span replaced, kept
//! as pieces rather than copied into one buffer.
//!
//! Putting the upstream's model name into a request used to copy the whole
//! body, so a long prompt cost a copy of itself on every request. The
//! pieces go out back to back instead (one vectored write on HTTP/1.1, a
//! chained buffer on HTTP/2), and only the new name is allocated.

use std::ops::Range;

use bytes::buf::Chain;
use bytes::{Buf, Bytes};

/// A request body to send upstream: `whole` with the bytes in `cut`
/// replaced by `insert`. A body with nothing replaced is `whole` alone.
#[derive(Debug, Clone, Default)]
pub struct SplicedBody {
    whole: Bytes,
    /// Offsets into `whole`; `u32` keeps the body small in the futures
    /// that carry it (a body over 4 GiB is never read).
    cut: (u32, u32),
    insert: Bytes,
}

/// The three pieces of a [`SplicedBody`] as one [`Buf`], for senders that
/// take a buffer rather than slices (HTTP/2).
pub type SplicedBuf = Chain<Chain<Bytes, Bytes>, Bytes>;

impl SplicedBody {
    /// `whole` with `cut` (a range within it) replaced by `insert`. A range
    /// that does not fit in `whole` or past `u32` is clamped to its end.
    pub fn new(whole: Bytes, cut: Range<usize>, insert: Bytes) -> Self {
        let end = whole.len().min(cut.end);
        let start = cut.start.min(end);
        match (u32::try_from(start), u32::try_from(end)) {
            (Ok(start), Ok(end)) => Self {
                whole,
                cut: (start, end),
                insert,
            },
            // Never read (bodies are far smaller); kept correct by a copy.
            _ => Self::from(Bytes::from(
                [&whole[..start], insert.as_ref(), &whole[end..]].concat(),
            )),
        }
    }

    /// The body's length in bytes.
    pub fn len(&self) -> usize {
        self.whole.len() - (self.cut.1 - self.cut.0) as usize + self.insert.len()
    }

    /// Whether the body has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body's pieces in order: before the cut, the insert, after the
    /// cut. Any may be empty.
    pub fn pieces(&self) -> [&[u8]; 3] {
        let (start, end) = (self.cut.0 as usize, self.cut.1 as usize);
        [
            self.whole.get(..start).unwrap_or_default(),
            &self.insert,
            self.whole.get(end..).unwrap_or_default(),
        ]
    }

    /// The body in one piece: shared when nothing was replaced, copied
    /// otherwise (for callers that must read it whole).
    pub fn to_bytes(&self) -> Bytes {
        if self.insert.is_empty() && self.cut.0 == self.cut.1 {
            return self.whole.clone();
        }
        let mut out = Vec::with_capacity(self.len());
        for piece in self.pieces() {
            out.extend_from_slice(piece);
        }
        Bytes::from(out)
    }

    /// The body as one buffer of its pieces, without copying them.
    pub fn into_buf(self) -> SplicedBuf {
        let (start, end) = (self.cut.0 as usize, self.cut.1 as usize);
        let front = self.whole.slice(..start);
        let back = self.whole.slice(end..);
        front.chain(self.insert).chain(back)
    }
}

impl From<Bytes> for SplicedBody {
    fn from(whole: Bytes) -> Self {
        Self {
            whole,
            cut: (0, 0),
            insert: Bytes::new(),
        }
    }
}

/// Bodies are equal when their bytes are, however they are pieced.
impl PartialEq for SplicedBody {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .pieces()
                .iter()
                .flat_map(|piece| piece.iter())
                .eq(other.pieces().iter().flat_map(|piece| piece.iter()))
    }
}

impl Eq for SplicedBody {}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(buf: impl Buf) -> Vec<u8> {
        let mut buf = buf;
        let mut out = Vec::new();
        while buf.has_remaining() {
            let chunk = buf.chunk();
            out.extend_from_slice(chunk);
            let taken = chunk.len();
            buf.advance(taken);
        }
        out
    }

    #[test]
    fn a_splice_reads_the_same_through_every_view() {
        let whole = Bytes::from_static(b"{\"model\":\"fast/gpt\",\"x\":1}");
        let body = SplicedBody::new(whole, 9..19, Bytes::from_static(b"\"gpt\""));
        let expected = b"{\"model\":\"gpt\",\"x\":1}";
        assert_eq!(body.len(), expected.len());
        assert_eq!(body.pieces().concat(), expected);
        assert_eq!(body.to_bytes().as_ref(), expected);
        assert_eq!(bytes_of(body.clone().into_buf()), expected);
        assert_eq!(body, SplicedBody::from(Bytes::from_static(expected)));
    }

    #[test]
    fn an_unspliced_body_is_shared_not_copied() {
        let whole = Bytes::from(b"{}".to_vec());
        let body = SplicedBody::from(whole.clone());
        assert_eq!(body.to_bytes().as_ptr(), whole.as_ptr());
        assert_eq!(body.pieces().concat(), b"{}");
    }

    #[test]
    fn a_cut_past_the_end_is_clamped() {
        let body = SplicedBody::new(Bytes::from_static(b"abc"), 2..9, Bytes::from_static(b"Z"));
        assert_eq!(body.to_bytes().as_ref(), b"abZ");
        let body = SplicedBody::new(Bytes::from_static(b"abc"), 7..9, Bytes::from_static(b"Z"));
        assert_eq!(body.to_bytes().as_ref(), b"abcZ");
        assert!(SplicedBody::default().is_empty());
    }
}
