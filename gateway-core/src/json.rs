//! A strict JSON reader for the hot path's common bodies, and the pieces
//! to write them, without serde.
//!
//! serde's derived visitors cost tens of instructions for every key and
//! string (UTF-8 checks, identifier matching, generic dispatch), which made
//! JSON a third of a translated request's work. [`Reader`] is a plain loop
//! over the bytes that checks JSON's grammar as it goes and lets its caller
//! pick out the fields it wants.
//!
//! It is a fast path, never the only path: every method returns `None` for
//! whatever it does not handle (invalid JSON, but also a key with escapes,
//! a lone surrogate, a number that is not a plain `u64` where one is
//! asked for, nesting past [`MAX_DEPTH`]), and its callers then decode the
//! body with serde, which gives the answer or the error. Architecture
//! invariant: a caller's fast path never accepts a body that its serde path
//! refuses, nor reads one differently; each keeps a differential test.
//!
//! [`write_str`], [`write_u64`] and [`write_f64`] write values byte for byte
//! as serde_json does, for encoders that write a common body's fixed parts
//! as they are instead of serialising a struct (serde escapes every field
//! name of a struct on every call).

use std::borrow::Cow;

use bytes::BufMut;
use std::ops::Range;

/// Nesting [`Reader::skip`] follows; deeper values go to serde (whose own
/// limit is 128), so the recursion here stays shallow.
const MAX_DEPTH: usize = 100;

/// Reads one JSON text from the front of a byte slice.
pub struct Reader<'a> {
    bytes: &'a [u8],
    /// The same bytes as text, when the caller has them as `str` already
    /// (a stream's event data, checked when it was read): strings are
    /// then sliced from it rather than checked for UTF-8 a second time.
    text: Option<&'a str>,
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            text: None,
            at: 0,
        }
    }

    /// A reader at the start of `text`: as [`Reader::new`], but the bytes
    /// are known to be UTF-8, so the strings read are not checked again.
    pub fn of_text(text: &'a str) -> Self {
        Self {
            bytes: text.as_bytes(),
            text: Some(text),
            at: 0,
        }
    }

    /// The bytes in `range` as text: sliced from the text when there is
    /// one (its ends are next to ASCII, a string's quotes or a number's
    /// digits, so on character boundaries), checked otherwise.
    fn utf8(&self, range: Range<usize>) -> Option<&'a str> {
        match self.text {
            Some(text) => text.get(range),
            None => simdutf8::basic::from_utf8(self.bytes.get(range)?).ok(),
        }
    }

    /// Whether only whitespace is left.
    pub fn end(&mut self) -> Option<()> {
        self.skip_whitespace();
        (self.at == self.bytes.len()).then_some(())
    }

    /// Reads an object, calling `member` with the reader placed on each
    /// member's value and the member's key, which has no escapes and is
    /// UTF-8 (serde checks the field names it reads). `member` must read
    /// or skip the value.
    pub fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>,
    ) -> Option<()> {
        self.skip_whitespace();
        self.eat(b'{')?;
        self.skip_whitespace();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.skip_whitespace();
            let key = self.plain_bytes()?;
            if self.text.is_none() && !key.is_ascii() {
                std::str::from_utf8(key).ok()?;
            }
            self.skip_whitespace();
            self.eat(b':')?;
            member(self, key)?;
            self.skip_whitespace();
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// Reads an array, calling `element` with the reader placed on each
    /// element. `element` must read or skip it.
    pub fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.skip_whitespace();
        self.eat(b'[')?;
        self.skip_whitespace();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            element(self)?;
            self.skip_whitespace();
            match self.next()? {
                b',' => {}
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// Reads an object for the members named in `names`, each `null` or
    /// what `read` reads (`None` in its slot when absent or null); other
    /// members are checked and skipped. `None` when a named member comes
    /// twice (serde refuses a repeated field).
    pub fn fields<T, const N: usize>(
        &mut self,
        names: [&[u8]; N],
        mut read: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<[Option<T>; N]> {
        let mut values: [Option<T>; N] = std::array::from_fn(|_| None);
        let mut seen = [false; N];
        self.object(|reader, key| {
            let Some(slot) = names.iter().position(|name| *name == key) else {
                return reader.skip();
            };
            if std::mem::replace(&mut seen[slot], true) {
                return None;
            }
            values[slot] = reader.nullable(&mut read)?;
            Some(())
        })?;
        Some(values)
    }

    /// Whether the next value is a string (nothing is read).
    pub fn at_string(&mut self) -> bool {
        self.skip_whitespace();
        self.peek() == Some(b'"')
    }

    /// Reads `null` (giving `Some(None)`), or what `read` reads.
    pub fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.null() {
            return Some(None);
        }
        read(self).map(Some)
    }

    /// Reads `null` if that is the next value.
    pub fn null(&mut self) -> bool {
        self.skip_whitespace();
        self.word(b"null").is_some()
    }

    /// Reads `true` or `false`.
    pub fn bool(&mut self) -> Option<bool> {
        self.skip_whitespace();
        match self.peek()? {
            b't' => self.word(b"true").map(|()| true),
            b'f' => self.word(b"false").map(|()| false),
            _ => None,
        }
    }

    /// Reads a whole number that fits in a `u64`, written without sign,
    /// fraction or exponent (which serde would read as a float).
    pub fn u64(&mut self) -> Option<u64> {
        self.skip_whitespace();
        let first = self.next()?;
        if !first.is_ascii_digit() {
            return None;
        }
        let mut value = u64::from(first - b'0');
        while let Some(byte) = self.peek().filter(u8::is_ascii_digit) {
            if first == b'0' {
                return None;
            }
            value = value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))?;
            self.at += 1;
        }
        match self.peek() {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(value),
        }
    }

    /// Reads a number as an `f64`, the value serde reads (both round
    /// correctly); `None` for one out of range, and for `-0`, whose sign
    /// serde's integer path drops.
    pub fn f64(&mut self) -> Option<f64> {
        self.skip_whitespace();
        let start = self.at;
        self.number()?;
        let text = self.utf8(start..self.at)?;
        if text == "-0" {
            return None;
        }
        text.parse::<f64>().ok().filter(|value| value.is_finite())
    }

    /// Reads a string without escapes, borrowed, with where it stands in
    /// the bytes (quotes included).
    pub fn plain_str(&mut self) -> Option<(&'a str, Range<usize>)> {
        self.skip_whitespace();
        let start = self.at;
        self.plain_bytes()?;
        // Inside the quotes.
        let text = self.utf8(start + 1..self.at - 1)?;
        Some((text, start..self.at))
    }

    /// Reads a string, borrowed when it has no escapes and decoded when it
    /// has (a lone surrogate, which serde refuses, gives `None`).
    pub fn string(&mut self) -> Option<Cow<'a, str>> {
        self.skip_whitespace();
        self.eat(b'"')?;
        let start = self.at;
        self.skip_plain();
        if self.peek()? == b'"' {
            self.at += 1;
            return self.utf8(start..self.at - 1).map(Cow::Borrowed);
        }
        let mut decoded = Vec::with_capacity(self.at - start + 16);
        decoded.extend_from_slice(&self.bytes[start..self.at]);
        loop {
            match self.next()? {
                b'"' => return String::from_utf8(decoded).ok().map(Cow::Owned),
                b'\\' => self.unescape(&mut decoded)?,
                _ => return None,
            }
            let run = self.at;
            self.skip_plain();
            decoded.extend_from_slice(&self.bytes[run..self.at]);
        }
    }

    /// Skips one value of any kind, checking it.
    pub fn skip(&mut self) -> Option<()> {
        self.skip_value(0)
    }

    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_whitespace();
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => self.object(|reader, _| reader.skip_value(depth + 1)),
            b'[' => self.array(|reader| reader.skip_value(depth + 1)),
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            _ => self.number(),
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.peek()? == b'-' {
            self.at += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.digit()?;
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.digit()?;
            self.digits();
        }
        // A digit straight after `0` (a leading zero) is not JSON; the
        // caller sees it where a separator belongs and refuses.
        Some(())
    }

    fn digit(&mut self) -> Option<()> {
        self.next()?.is_ascii_digit().then_some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            self.at += 1;
        }
    }

    fn word(&mut self, word: &[u8]) -> Option<()> {
        self.bytes[self.at..].starts_with(word).then(|| {
            self.at += word.len();
        })
    }

    /// The bytes of a string without escapes; `None` for one with them.
    fn plain_bytes(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.at;
        self.skip_plain();
        self.eat(b'"')?;
        Some(&self.bytes[start..self.at - 1])
    }

    /// Skips any string, its escapes checked.
    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            self.skip_plain();
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => self.escape()?,
                _ => return None,
            }
        }
    }

    /// After a backslash, in a string being skipped: one of JSON's escapes.
    /// A `\u` escape needs four hex digits and nothing more, as serde asks
    /// of a string it skips.
    fn escape(&mut self) -> Option<()> {
        match self.next()? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(()),
            b'u' => self.hex4().map(drop),
            _ => None,
        }
    }

    /// After a backslash, in a string being decoded: the escaped character
    /// appended to `out`.
    fn unescape(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let byte = match self.next()? {
            byte @ (b'"' | b'\\' | b'/') => byte,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let unit = self.hex4()?;
                let code = match unit {
                    0xd800..=0xdbff => {
                        self.eat(b'\\')?;
                        self.eat(b'u')?;
                        let low = self.hex4()?;
                        if !(0xdc00..=0xdfff).contains(&low) {
                            return None;
                        }
                        0x10000 + ((u32::from(unit) - 0xd800) << 10) + (u32::from(low) - 0xdc00)
                    }
                    0xdc00..=0xdfff => return None,
                    _ => u32::from(unit),
                };
                let mut buffer = [0; 4];
                out.extend_from_slice(char::from_u32(code)?.encode_utf8(&mut buffer).as_bytes());
                return Some(());
            }
            _ => return None,
        };
        out.push(byte);
        Some(())
    }

    fn hex4(&mut self) -> Option<u16> {
        let hex = self.bytes.get(self.at..self.at + 4)?;
        self.at += 4;
        let mut value = 0;
        for &digit in hex {
            value = value * 16 + u16::try_from(char::from(digit).to_digit(16)?).ok()?;
        }
        Some(value)
    }

    /// Moves to the next quote, backslash or control character (or the
    /// end).
    fn skip_plain(&mut self) {
        self.at += plain_run(&self.bytes[self.at..]);
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }
}

/// How many bytes at the start of `bytes` a JSON string holds as they
/// are: up to the first quote, backslash or control character. A prompt
/// is mostly such runs, and every request's body is scanned for its model
/// (see `body::probe`), so this is the gateway's per-byte cost. With SSE2
/// (part of every x86-64 CPU): sixteen bytes a step for the first
/// sixty-four (where keys, roles and names end), then sixty-four a test
/// while none is special, and sixteen a step again to find which; without,
/// eight a step.
#[inline(always)]
fn plain_run(bytes: &[u8]) -> usize {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        let mut run = match plain_blocks(bytes, 4) {
            Ok(run) => return run,
            Err(run) => run,
        };
        if run == 64 {
            for stride in bytes.get(run..).unwrap_or_default().chunks_exact(64) {
                // Never `Err`: every chunk is sixty-four bytes.
                let Ok(stride) = stride.try_into() else { break };
                if sse2::any_special(stride) {
                    break;
                }
                run += 64;
            }
        }
        match plain_blocks(bytes.get(run..).unwrap_or_default(), usize::MAX) {
            Ok(more) => run + more,
            Err(more) => {
                run += more;
                run + plain_run_by_words(bytes.get(run..).unwrap_or_default())
            }
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        plain_run_by_words(bytes)
    }
}

/// [`plain_run`] over at most `limit` sixteen-byte blocks of `bytes`:
/// `Ok` with the run when a special byte ended it, `Err` with the bytes
/// stepped over when the limit or the whole blocks ran out first.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn plain_blocks(bytes: &[u8], limit: usize) -> Result<usize, usize> {
    let mut run = 0;
    for block in bytes.chunks_exact(16).take(limit) {
        // Never `Err`: every chunk is sixteen bytes.
        let Ok(block) = block.try_into() else { break };
        let found = sse2::specials(block);
        if found != 0 {
            return Ok(run + found.trailing_zeros() as usize);
        }
        run += 16;
    }
    Err(run)
}

/// The one `unsafe` of the gateway's own code outside plugin loading:
/// SSE2 instructions, which Rust calls `unsafe` because a CPU might lack
/// them. The module exists only where the build's target has SSE2 (every
/// x86-64 CPU does), so no CPU without them can run it.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[allow(unsafe_code)]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x,
        _mm_set1_epi8,
    };

    /// A bit for each byte of `block` (bit 0 for its first) that is a
    /// quote, a backslash or a control character.
    pub(super) fn specials(block: &[u8; 16]) -> u32 {
        // SAFETY: only SSE2 instructions, and this module is compiled only
        // for targets that have them.
        let mask = unsafe { _mm_movemask_epi8(special_bytes(block)) };
        mask as u32
    }

    /// Whether any byte of `stride` is a quote, a backslash or a control
    /// character: its four blocks' flags are or'd, so a plain stride costs
    /// one test rather than four.
    pub(super) fn any_special(stride: &[u8; 64]) -> bool {
        let block = |at: usize| -> &[u8; 16] {
            // Never the fallback: the four blocks lie within the stride.
            stride[at..at + 16].try_into().unwrap_or(&[0; 16])
        };
        // SAFETY: as in `specials`.
        let mask = unsafe {
            let either = _mm_or_si128(special_bytes(block(0)), special_bytes(block(16)));
            let other = _mm_or_si128(special_bytes(block(32)), special_bytes(block(48)));
            _mm_movemask_epi8(_mm_or_si128(either, other))
        };
        mask != 0
    }

    /// 0xff in each byte of `block` that is special, 0 in the others.
    ///
    /// # Safety
    ///
    /// The CPU must have SSE2, as every one this module is compiled for
    /// does.
    #[inline(always)]
    unsafe fn special_bytes(block: &[u8; 16]) -> __m128i {
        let bytes = u128::from_le_bytes(*block);
        // SAFETY: only SSE2 instructions (the caller's promise).
        unsafe {
            // Two halves rather than a load through a pointer; the
            // compiler makes them one unaligned load.
            let chars = _mm_set_epi64x((bytes >> 64) as i64, bytes as i64);
            let quote = _mm_cmpeq_epi8(chars, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(chars, _mm_set1_epi8(b'\\' as i8));
            // Unsigned: a byte is below 0x20 when it is its own minimum
            // with 0x1f.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(chars, _mm_set1_epi8(0x1f)), chars);
            _mm_or_si128(_mm_or_si128(quote, backslash), control)
        }
    }
}

/// [`plain_run`] eight bytes at a time in a `u64`.
fn plain_run_by_words(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    let mut run = 0;
    let mut words = bytes.chunks_exact(8);
    for word in words.by_ref() {
        // Never `Err`: every chunk is eight bytes.
        let Ok(word) = word.try_into() else { break };
        let chars = u64::from_le_bytes(word);
        let control = chars.wrapping_sub(ONES * 0x20) & !chars;
        let quote = chars ^ (ONES * u64::from(b'"'));
        let quote = quote.wrapping_sub(ONES) & !quote;
        let backslash = chars ^ (ONES * u64::from(b'\\'));
        let backslash = backslash.wrapping_sub(ONES) & !backslash;
        let found = (control | quote | backslash) & HIGH;
        if found != 0 {
            // The lowest flagged byte is a true match (borrows only run
            // upwards from one).
            return run + found.trailing_zeros() as usize / 8;
        }
        run += 8;
    }
    for &byte in words.remainder() {
        if byte == b'"' || byte == b'\\' || byte < 0x20 {
            return run;
        }
        run += 1;
    }
    run
}

/// Appends `text` as a JSON string, byte for byte as serde_json writes it:
/// quote, backslash and control characters escaped (the short forms where
/// JSON has them, `\u00XX` otherwise), everything else as it is.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    out.reserve(text.len() + 2);
    put_str(out, text);
}

/// [`write_str`] into any buffer (a `BytesMut` of stream frames, say),
/// which the caller has made room in.
pub fn put_str(out: &mut impl BufMut, text: &str) {
    let mut rest = text.as_bytes();
    out.put_u8(b'"');
    loop {
        let run = plain_run(rest);
        out.put_slice(&rest[..run]);
        let Some(&byte) = rest.get(run) else {
            break;
        };
        match byte {
            b'"' => out.put_slice(b"\\\""),
            b'\\' => out.put_slice(b"\\\\"),
            0x08 => out.put_slice(b"\\b"),
            0x0c => out.put_slice(b"\\f"),
            b'\n' => out.put_slice(b"\\n"),
            b'\r' => out.put_slice(b"\\r"),
            b'\t' => out.put_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.put_slice(b"\\u00");
                out.put_u8(HEX[usize::from(byte >> 4)]);
                out.put_u8(HEX[usize::from(byte & 0xf)]);
            }
        }
        rest = &rest[run + 1..];
    }
    out.put_u8(b'"');
}

/// Appends `items` as a JSON array, each written by `write`.
pub fn write_array<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut Vec<u8>, T),
) {
    out.push(b'[');
    for (index, item) in items.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

/// `seed` with one to three random edits, each a byte replaced, removed or
/// inserted, the bytes drawn from `alphabet`: what the differential tests
/// of every fast path over [`Reader`] feed it and its serde path, so that
/// no edit makes them disagree. (For tests; nothing on a request path.)
pub fn random_edits(seed: &[u8], alphabet: &[u8], rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut edited = seed.to_vec();
    for _ in 0..rng.usize(1..4) {
        let at = rng.usize(0..=edited.len());
        let byte = alphabet[rng.usize(0..alphabet.len())];
        match rng.u8(0..3) {
            0 if at < edited.len() => edited[at] = byte,
            1 if at < edited.len() => {
                edited.remove(at);
            }
            _ => edited.insert(at, byte),
        }
    }
    edited
}

/// Appends `value` as serde_json writes it.
pub fn write_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Appends `value` as serde_json writes it (`null` when not finite).
pub fn write_f64(out: &mut Vec<u8>, value: f64) {
    // Writing a number into memory cannot fail.
    let _ = serde_json::to_writer(out, &value);
}

#[cfg(test)]
mod tests {
    use super::{Reader, plain_run, plain_run_by_words, write_str};

    #[test]
    fn plain_runs_end_at_the_first_quote_backslash_or_control_character() {
        let naive = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
                .unwrap_or(bytes.len())
        };
        // Every byte value at every place of runs of up to three blocks, on
        // a background of plain bytes both sides of 0x80 (which a signed
        // comparison would take for control characters).
        for background in [b'a', 0x20, 0x7f, 0x80, 0xff] {
            for length in 0..50 {
                for at in 0..length {
                    for special in 0..=u8::MAX {
                        let mut bytes = vec![background; length];
                        bytes[at] = special;
                        let expected = naive(&bytes);
                        assert_eq!(plain_run(&bytes), expected, "{bytes:?}");
                        assert_eq!(plain_run_by_words(&bytes), expected, "{bytes:?}");
                    }
                }
                let plain = vec![background; length];
                assert_eq!(plain_run(&plain), length);
            }
        }
    }

    #[test]
    fn long_plain_runs_end_at_their_first_special_byte_in_any_stride() {
        // Past sixty-four bytes the scan tests whole strides, then finds the
        // byte in the stride that has it: a special byte at every place of
        // runs of up to three strides and a bit, and two of them (the first
        // must win, also when both share a stride).
        let specials = [0x00, 0x1f, b'"', b'\\'];
        for background in [b'a', 0x20, 0x7f, 0x80, 0xff] {
            for length in [64, 65, 127, 128, 129, 200] {
                assert_eq!(plain_run(&vec![background; length]), length);
                for at in 0..length {
                    for special in specials {
                        let mut bytes = vec![background; length];
                        bytes[at] = special;
                        assert_eq!(plain_run(&bytes), at, "{length} {at} {special}");
                        if let Some(later) = bytes.get_mut(at + 3) {
                            *later = b'"';
                            assert_eq!(plain_run(&bytes), at, "{length} {at} {special} twice");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn strings_are_written_as_serde_writes_them() {
        let mut every_control: String = (0u8..0x20).map(char::from).collect();
        every_control
            .push_str("\u{7f} \"quoted\" back\\slash / ünïcödé ✓ 🚀 and a longer plain run");
        for text in ["", "plain", "ends with a quote\"", every_control.as_str()] {
            let mut written = Vec::new();
            write_str(&mut written, text);
            assert_eq!(
                String::from_utf8(written).expect("utf8"),
                serde_json::to_string(text).expect("string"),
            );
        }
    }

    #[test]
    fn strings_decode_as_serde_decodes_them() {
        let cases: [&str; 7] = [
            r#""plain""#,
            r#""a\"b\\c\/d\be\ff\ng\rh\ti""#,
            r#""caf\u00e9 \u2713 \ud83d\ude80""#,
            "\"raw ünïcödé ✓ 🚀\"",
            r#""""#,
            r#""\u0000""#,
            r#""ends with escape\n""#,
        ];
        for case in cases {
            let expected: String = serde_json::from_str(case).expect("valid");
            for mut reader in [Reader::new(case.as_bytes()), Reader::of_text(case)] {
                assert_eq!(
                    reader.string().as_deref(),
                    Some(expected.as_str()),
                    "{case}"
                );
                assert_eq!(reader.end(), Some(()));
            }
        }
        let refused: [&[u8]; 7] = [
            br#""\ud83d""#,
            br#""\ude80""#,
            br#""\ud83d\u0041""#,
            br#""\x""#,
            b"\"tab\there\"",
            br#""open"#,
            b"\"\xff\"",
        ];
        for case in refused {
            let text = String::from_utf8_lossy(case);
            assert_eq!(Reader::new(case).string(), None, "{text}");
            assert!(serde_json::from_slice::<String>(case).is_err(), "{text}");
            if let Ok(text) = std::str::from_utf8(case) {
                assert_eq!(Reader::of_text(text).string(), None, "{text}");
            }
        }
    }

    #[test]
    fn a_reader_of_text_reads_what_a_reader_of_bytes_reads() {
        let text = r#"{"type":"message_delta","ключ":"значение ✓","n":"a\nb","plain":"🚀 x"}"#;
        let read = |mut reader: Reader<'_>| {
            let mut seen = Vec::new();
            reader
                .object(|reader, key| {
                    let key = String::from_utf8(key.to_vec()).ok()?;
                    let value = if key == "plain" {
                        let (value, at) = reader.plain_str()?;
                        format!("{value} @ {at:?}")
                    } else {
                        reader.string()?.into_owned()
                    };
                    seen.push(format!("{key}={value}"));
                    Some(())
                })
                .map(|()| seen)
        };
        let from_bytes = read(Reader::new(text.as_bytes()));
        assert_eq!(read(Reader::of_text(text)), from_bytes);
        let seen = from_bytes.expect("an object");
        assert_eq!(seen[1], "ключ=значение ✓");
        assert_eq!(seen[2], "n=a\nb");
        let (value, at) = seen[3].split_once(" @ ").expect("a span");
        assert_eq!(value, "plain=🚀 x");
        let quoted = "\"🚀 x\"";
        let start = text.rfind(quoted).expect("in the text");
        assert_eq!(at, format!("{:?}", start..start + quoted.len()));
    }

    #[test]
    fn numbers_are_u64_only_when_serde_reads_them_so() {
        for (text, expected) in [
            ("0", Some(0)),
            ("18446744073709551615", Some(u64::MAX)),
            ("18446744073709551616", None),
            ("-1", None),
            ("1.0", None),
            ("1e3", None),
            ("01", None),
            ("x", None),
        ] {
            let mut reader = Reader::new(text.as_bytes());
            let read = reader.u64().filter(|_| reader.end().is_some());
            assert_eq!(read, expected, "{text}");
            assert_eq!(
                serde_json::from_str::<u64>(text).ok(),
                expected,
                "serde on {text}"
            );
        }
    }
}
