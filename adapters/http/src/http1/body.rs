//! How an HTTP/1.1 answer's body is delimited, and taking it piece by
//! piece out of the bytes read so far (RFC 9112 §6 and §7.1).
//!
//! Pure: it never reads. The connection feeds it what arrived and reads
//! more when it answers [`Decoded::NeedMore`]. Data is split off the read
//! buffer, not copied, except where several chunks' data already read is
//! joined into one piece.

use bytes::{Buf, Bytes, BytesMut};

use super::Error;
use super::read::take_front;

/// A chunk-size line or trailer line longer than this is refused (the
/// size is at most 16 hex digits; extensions are never this long).
const MAX_LINE: usize = 4096;

/// All trailer lines together may take at most this many bytes.
const MAX_TRAILERS: usize = 16 * 1024;

/// How the body ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// This many bytes are still to come (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`, at this point of the encoding.
    Chunked(Chunked),
    /// Everything until the upstream closes the connection.
    UntilClose,
    /// Complete: nothing more belongs to this answer.
    Done,
}

/// Where a chunked body's decoding stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes to go.
    Data(u64),
    /// After a chunk's data, expecting its CRLF.
    DataEnd,
    /// After the last chunk, reading trailer lines (ignored) up to the
    /// empty line.
    Trailers {
        /// Bytes of trailer lines taken so far.
        seen: usize,
    },
}

/// What the buffered bytes gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// The next piece of the body.
    Data(Bytes),
    /// The body is complete.
    End,
    /// More bytes must be read first.
    NeedMore,
}

impl Framing {
    /// A body of `length` bytes.
    pub fn length(length: u64) -> Self {
        if length == 0 {
            Self::Done
        } else {
            Self::Length(length)
        }
    }

    /// A chunked body, from its first chunk-size line.
    pub fn chunked() -> Self {
        Self::Chunked(Chunked::Size)
    }

    /// Whether the whole body has been taken.
    pub fn is_done(&self) -> bool {
        *self == Self::Done
    }

    /// Takes the next piece of the body out of `buffer`. After a piece of
    /// data, framing that follows it and is already buffered (a chunk's
    /// CRLF, the last chunk, the trailers) is consumed too, so that
    /// [`Framing::is_done`] tells at once when that was the last piece.
    pub fn decode(&mut self, buffer: &mut BytesMut) -> Result<Decoded, Error> {
        let decoded = self.next(buffer)?;
        if matches!(decoded, Decoded::Data(_)) {
            // Errors are not lost: the state stays where it failed, and the
            // next call reports them.
            let _ = self.settle(buffer);
        }
        Ok(decoded)
    }

    /// What the upstream closing the connection means at this point.
    pub fn at_close(&mut self) -> Result<Decoded, Error> {
        match self {
            Self::UntilClose | Self::Done => {
                *self = Self::Done;
                Ok(Decoded::End)
            }
            Self::Length(_) | Self::Chunked(_) => Err(Error::Closed),
        }
    }

    fn next(&mut self, buffer: &mut BytesMut) -> Result<Decoded, Error> {
        match self {
            Self::Done => Ok(Decoded::End),
            Self::UntilClose if buffer.is_empty() => Ok(Decoded::NeedMore),
            Self::UntilClose => Ok(Decoded::Data(buffer.split().freeze())),
            Self::Length(_) if buffer.is_empty() => Ok(Decoded::NeedMore),
            Self::Length(left) => {
                let (data, left) = take(buffer, *left);
                *self = Self::length(left);
                Ok(Decoded::Data(data))
            }
            Self::Chunked(_) => {
                self.settle(buffer)?;
                match self {
                    Self::Done => Ok(Decoded::End),
                    Self::Chunked(Chunked::Data(_)) if !buffer.is_empty() => {
                        let length = self.chunk_data_in(buffer.len());
                        let data = buffer.split_to(length).freeze();
                        // Framing errors after this piece are left for the
                        // next call to report.
                        let mut at = 0;
                        if !self.data_next(buffer, &mut at) {
                            buffer.advance(at);
                            return Ok(Decoded::Data(data));
                        }
                        // More chunks already read: their data comes out
                        // with this piece, copied together. Chunk
                        // boundaries mean nothing in HTTP, and one piece
                        // per read rather than per chunk (a stream sends
                        // an event per chunk) spares each chunk its trip
                        // through the answer's layers, and the joining
                        // copy is the one the client side made anyway to
                        // write them at once (`frontend::coalesce`).
                        let mut joined = Vec::with_capacity(data.len() + buffer.len());
                        joined.extend_from_slice(&data);
                        loop {
                            let length = self.chunk_data_in(buffer.len() - at);
                            joined.extend_from_slice(&buffer[at..at + length]);
                            at += length;
                            if !self.data_next(buffer, &mut at) {
                                break;
                            }
                        }
                        buffer.advance(at);
                        Ok(Decoded::Data(Bytes::from(joined)))
                    }
                    _ => Ok(Decoded::NeedMore),
                }
            }
        }
    }

    /// Whether a chunk's data is next and some of it is in `buffer` past
    /// `at`, once the framing before it is consumed (`at` moved past it).
    /// A framing error is left for the next [`Framing::decode`] to report.
    fn data_next(&mut self, buffer: &[u8], at: &mut usize) -> bool {
        self.settle_in(buffer, at).is_ok()
            && matches!(self, Self::Chunked(Chunked::Data(_)))
            && *at < buffer.len()
    }

    /// How many of the `available` bytes at the front of the buffer are
    /// the current chunk's data (as much of it as has come), the state
    /// moved past them for the caller to take them; 0 when no chunk's
    /// data is next.
    fn chunk_data_in(&mut self, available: usize) -> usize {
        let Self::Chunked(Chunked::Data(left)) = *self else {
            return 0;
        };
        let (length, left) = front_of(available, left);
        *self = Self::Chunked(if left == 0 {
            Chunked::DataEnd
        } else {
            Chunked::Data(left)
        });
        length
    }

    /// Consumes chunked framing (sizes, CRLFs, trailers) from `buffer` as
    /// far as it goes, stopping at data, at the end, or where more bytes
    /// are needed.
    fn settle(&mut self, buffer: &mut BytesMut) -> Result<(), Error> {
        let mut at = 0;
        let settled = self.settle_in(buffer, &mut at);
        buffer.advance(at);
        settled
    }

    /// [`Framing::settle`] on the bytes of `buffer` from `at`, moving `at`
    /// past what it consumes (also when it then fails): the buffer itself
    /// is advanced once, by the caller, rather than at every step.
    fn settle_in(&mut self, buffer: &[u8], at: &mut usize) -> Result<(), Error> {
        loop {
            let Self::Chunked(state) = self else {
                return Ok(());
            };
            let rest = &buffer[*at..];
            match state {
                Chunked::Data(_) => return Ok(()),
                Chunked::Size => {
                    let (size, taken) = match plain_size_line(rest) {
                        Some(plain) => plain,
                        None => {
                            let Some((length, taken)) = line(rest, MAX_LINE)? else {
                                return Ok(());
                            };
                            (chunk_size(&rest[..length])?, taken)
                        }
                    };
                    *at += taken;
                    *state = if size == 0 {
                        Chunked::Trailers { seen: 0 }
                    } else {
                        Chunked::Data(size)
                    };
                }
                Chunked::DataEnd => match rest {
                    [] | [b'\r'] => return Ok(()),
                    [b'\n', ..] => {
                        *at += 1;
                        *state = Chunked::Size;
                    }
                    [b'\r', b'\n', ..] => {
                        *at += 2;
                        *state = Chunked::Size;
                    }
                    _ => return Err(Error::Invalid("a chunk is longer than its size")),
                },
                Chunked::Trailers { seen } => {
                    let Some((length, taken)) = line(rest, MAX_TRAILERS.saturating_sub(*seen))?
                    else {
                        return Ok(());
                    };
                    *at += taken;
                    if length == 0 {
                        *self = Self::Done;
                        return Ok(());
                    }
                    *seen += length + 2;
                }
            }
        }
    }
}

/// How many of `left` bytes still to come are among the `available`
/// ones, and how many are then still to come.
fn front_of(available: usize, left: u64) -> (usize, u64) {
    let taken = left.min(u64::try_from(available).unwrap_or(u64::MAX));
    // `taken` is at most `available`, so it fits a usize.
    (usize::try_from(taken).unwrap_or(available), left - taken)
}

/// Splits off up to `left` bytes of a `Content-Length` body from `buffer`
/// (which is not empty); returns them and how many are still to come. The
/// body's last piece may take the buffer itself (see `take_front`); a
/// piece with more to come leaves the buffer its room for the next read.
fn take(buffer: &mut BytesMut, left: u64) -> (Bytes, u64) {
    let (length, left) = front_of(buffer.len(), left);
    let data = if left == 0 {
        take_front(buffer, length)
    } else {
        buffer.split_to(length).freeze()
    };
    (data, left)
}

/// The first line of `buffer`: its length without the LF or CRLF, and the
/// bytes it takes with them; `None` while it is incomplete. A line longer
/// than `max` is an error.
fn line(buffer: &[u8], max: usize) -> Result<Option<(usize, usize)>, Error> {
    // A chunk-size line is a few bytes: looked for byte by byte, its end
    // is found before `memchr` would have set up its vector search.
    const SHORT: usize = 16;
    let end = match buffer.iter().take(SHORT).position(|&byte| byte == b'\n') {
        Some(end) => Some(end),
        None => buffer
            .get(SHORT..)
            .and_then(|rest| memchr::memchr(b'\n', rest))
            .map(|end| end + SHORT),
    };
    let Some(end) = end else {
        if buffer.len() > max {
            return Err(Error::Invalid("a chunked body's line is too long"));
        }
        return Ok(None);
    };
    if end > max {
        return Err(Error::Invalid("a chunked body's line is too long"));
    }
    let length = if end > 0 && buffer[end - 1] == b'\r' {
        end - 1
    } else {
        end
    };
    Ok(Some((length, end + 1)))
}

/// The size and length of a chunk-size line at the front of `buffer` in
/// the form nearly every server sends, hex digits and CRLF, read in one
/// pass; `None` for anything else (an extension, a bare LF, too many
/// digits, a line not complete yet), which [`line`] and [`chunk_size`]
/// then read or refuse.
fn plain_size_line(buffer: &[u8]) -> Option<(u64, usize)> {
    let mut size: u64 = 0;
    // At most 16 digits (the value fits), then the CR.
    for (at, &byte) in buffer.iter().enumerate().take(17) {
        let digit = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            b'A'..=b'F' => byte - b'A' + 10,
            b'\r' if at > 0 => {
                return (buffer.get(at + 1) == Some(&b'\n')).then_some((size, at + 2));
            }
            _ => return None,
        };
        size = size << 4 | u64::from(digit);
    }
    None
}

/// A chunk-size line's size: hex digits, then optional whitespace and
/// extensions (`;name=value`), which are ignored.
fn chunk_size(line: &[u8]) -> Result<u64, Error> {
    let digits = line
        .iter()
        .position(|byte| !byte.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let rest = &line[digits..];
    let rest_ok = rest
        .iter()
        .position(|byte| !matches!(byte, b' ' | b'\t'))
        .is_none_or(|at| rest[at] == b';');
    if digits == 0 || digits > 16 || !rest_ok {
        return Err(Error::Invalid("a chunk size is not a hexadecimal number"));
    }
    // At most 16 hex digits: the value fits.
    Ok(line[..digits].iter().fold(0, |size, digit| {
        let value = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => digit - b'A' + 10,
        };
        size << 4 | u64::from(value)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` to a decoder `step` bytes at a time; returns the data
    /// pieces joined and whether the body ended, or the error.
    fn feed(mut framing: Framing, wire: &[u8], step: usize) -> Result<(Vec<u8>, bool), Error> {
        let mut buffer = BytesMut::new();
        let mut body = Vec::new();
        for piece in wire.chunks(step.max(1)) {
            buffer.extend_from_slice(piece);
            loop {
                match framing.decode(&mut buffer)? {
                    Decoded::Data(data) => body.extend_from_slice(&data),
                    Decoded::End => return Ok((body, true)),
                    Decoded::NeedMore => break,
                }
            }
        }
        Ok((body, framing.is_done()))
    }

    #[test]
    fn chunked_bodies_decode_however_the_bytes_arrive() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\ntrailer: x\r\n\r\n";
        for step in [1, 2, 3, 7, wire.len()] {
            let (body, ended) = feed(Framing::chunked(), wire, step).expect("valid");
            assert_eq!(body, b"hello, world", "step {step}");
            assert!(ended, "step {step}");
        }
    }

    #[test]
    fn plain_size_lines_are_read_in_one_pass_and_the_rest_left_to_line() {
        assert_eq!(plain_size_line(b"7f\r\ndata"), Some((0x7f, 4)));
        assert_eq!(plain_size_line(b"0\r\n\r\n"), Some((0, 3)));
        assert_eq!(
            plain_size_line(b"ffffffffffffffff\r\n"),
            Some((u64::MAX, 18))
        );
        // Left to the general reading, which accepts or refuses them.
        for other in [
            &b"7f"[..],
            b"7f\r",
            b"7f\n",
            b"7f;ext=1\r\n",
            b"7f \r\n",
            b"\r\n",
            b"1ffffffffffffffff\r\n",
            b"7f\rx",
            b"g\r\n",
        ] {
            assert_eq!(plain_size_line(other), None, "{other:?}");
        }
    }

    #[test]
    fn lines_past_the_short_scan_are_found_too() {
        // Lines whose ends lie beyond the first 16 bytes, found by
        // `memchr` rather than the byte-by-byte look: a size with an
        // extension, a size of 16 hex digits (the most one may have) and
        // a long trailer.
        let wire = b"5;name=\"a long extension value\"\r\nhello\r\n\
            0000000000000007\r\n, world\r\n0\r\nx-trailer: a value longer than sixteen\r\n\r\n";
        for step in [1, 5, 16, 17, wire.len()] {
            let (body, ended) = feed(Framing::chunked(), wire, step).expect("valid");
            assert_eq!(body, b"hello, world", "step {step}");
            assert!(ended, "step {step}");
        }
    }

    #[test]
    fn chunks_already_read_come_out_as_one_piece() {
        let mut framing = Framing::chunked();
        let mut buffer = BytesMut::from(&b"3\r\none\r\n3\r\ntwo\r\n5\r\nthr"[..]);
        // Every chunk's data in the buffer, the last one's as far as it
        // has come.
        assert_eq!(
            framing.decode(&mut buffer).expect("valid"),
            Decoded::Data(Bytes::from_static(b"onetwothr"))
        );
        assert!(buffer.is_empty());
        buffer.extend_from_slice(b"ee\r\n0\r\n\r\n");
        assert_eq!(
            framing.decode(&mut buffer).expect("valid"),
            Decoded::Data(Bytes::from_static(b"ee"))
        );
        assert!(framing.is_done());
        // A framing error after joined data is reported on the next call.
        let mut framing = Framing::chunked();
        let mut buffer = BytesMut::from(&b"3\r\none\r\n3\r\ntwoX"[..]);
        assert_eq!(
            framing.decode(&mut buffer).expect("valid"),
            Decoded::Data(Bytes::from_static(b"onetwo"))
        );
        assert!(framing.decode(&mut buffer).is_err());
    }

    #[test]
    fn bare_line_feeds_and_hex_case_are_accepted() {
        let wire = b"A\nabcdefghij\n0\n\n";
        let (body, ended) = feed(Framing::chunked(), wire, 1).expect("valid");
        assert_eq!(body, b"abcdefghij");
        assert!(ended);
    }

    #[test]
    fn the_end_already_buffered_is_seen_with_the_last_data() {
        let mut framing = Framing::chunked();
        let mut buffer = BytesMut::from(&b"5\r\nfirst\r\n0\r\n\r\n"[..]);
        assert_eq!(
            framing.decode(&mut buffer).expect("valid"),
            Decoded::Data(Bytes::from_static(b"first"))
        );
        assert!(framing.is_done());
        assert!(buffer.is_empty());
    }

    #[test]
    fn a_length_body_stops_at_its_length() {
        let mut framing = Framing::length(5);
        let mut buffer = BytesMut::from(&b"helloHTTP/1.1"[..]);
        assert_eq!(
            framing.decode(&mut buffer).expect("valid"),
            Decoded::Data(Bytes::from_static(b"hello"))
        );
        assert!(framing.is_done());
        assert_eq!(&buffer[..], b"HTTP/1.1");
        assert_eq!(framing.decode(&mut buffer).expect("valid"), Decoded::End);
    }

    #[test]
    fn bad_chunked_framing_is_an_error() {
        for wire in [
            &b"zz\r\nhello\r\n"[..],
            b"\r\n",
            b"5 x\r\nhello\r\n",
            b"5\r\nhelloX\r\n",
            b"11111111111111111\r\n",
        ] {
            assert!(
                matches!(feed(Framing::chunked(), wire, 1), Err(Error::Invalid(_))),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn endless_lines_are_refused() {
        let long_size = vec![b'1'; MAX_LINE + 1];
        assert!(matches!(
            feed(Framing::chunked(), &long_size, 100),
            Err(Error::Invalid(_))
        ));
        let mut trailers = b"0\r\n".to_vec();
        trailers.extend(std::iter::repeat_n(b"x: y\r\n", MAX_TRAILERS / 6 + 1).flatten());
        assert!(matches!(
            feed(Framing::chunked(), &trailers, 64),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn closing_ends_only_a_body_delimited_by_the_close() {
        assert_eq!(Framing::UntilClose.at_close().expect("end"), Decoded::End);
        assert!(matches!(Framing::length(3).at_close(), Err(Error::Closed)));
        assert!(matches!(Framing::chunked().at_close(), Err(Error::Closed)));
    }
}
