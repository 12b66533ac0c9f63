//! One validating pass over a chat request body that finds `model`,
//! `stream` and `stream_options.include_usage` without serde.
//!
//! serde's probe spent about 20 instructions a byte on a typical body,
//! most of it in the generic visitor machinery around skipping
//! `messages`; this scan is a plain loop that checks the same grammar.
//!
//! It answers only when it is sure. Every body it does not accept gets
//! `None` and goes to the serde probe, which then gives the answer or the
//! error (so error texts stay serde's): invalid JSON, but also what is
//! valid and merely unusual here, such as a repeated or escaped top-level
//! key, a field of an unexpected type, an escaped model name, or nesting
//! deeper than [`MAX_DEPTH`]. Architecture invariant: it never accepts a
//! body the serde probe refuses.

use std::ops::Range;

/// Nesting this scan follows; deeper bodies go to serde (whose own limit
/// is 128), so the recursion here stays shallow.
const MAX_DEPTH: usize = 100;

/// What the scan found.
#[derive(Debug, PartialEq)]
pub(super) struct Scanned<'a> {
    /// The model name.
    pub(super) model: &'a str,
    /// Where the model's JSON string is in the body, quotes included.
    pub(super) model_span: Range<usize>,
    pub(super) stream: bool,
    pub(super) include_usage: bool,
}

/// Scans `body`; `None` when the serde probe must decide.
pub(super) fn scan(body: &[u8]) -> Option<Scanned<'_>> {
    let mut scanner = Scanner { bytes: body, at: 0 };
    let found = scanner.top_level()?;
    scanner.skip_whitespace();
    (scanner.at == body.len()).then_some(found)
}

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn top_level(&mut self) -> Option<Scanned<'a>> {
        let mut model = None;
        let mut stream = None;
        let mut include_usage = None;
        self.skip_whitespace();
        self.eat(b'{')?;
        self.skip_whitespace();
        if self.peek()? == b'}' {
            self.at += 1;
            return None;
        }
        loop {
            self.skip_whitespace();
            let key = self.key()?;
            self.skip_whitespace();
            self.eat(b':')?;
            self.skip_whitespace();
            match key {
                b"model" if model.is_none() => {
                    let start = self.at;
                    let name = std::str::from_utf8(self.plain_string()?).ok()?;
                    model = Some((name, start..self.at));
                }
                b"stream" if stream.is_none() => stream = Some(self.bool_or_null()?),
                b"stream_options" if include_usage.is_none() => {
                    include_usage = Some(self.stream_options()?);
                }
                b"model" | b"stream" | b"stream_options" => return None,
                _ => self.value(1)?,
            }
            self.skip_whitespace();
            match self.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
        let (model, model_span) = model?;
        Some(Scanned {
            model,
            model_span,
            stream: stream.flatten().unwrap_or(false),
            include_usage: include_usage.flatten().unwrap_or(false),
        })
    }

    /// `stream_options`: null, or an object whose `include_usage` is a
    /// boolean or null; its other fields are skipped.
    fn stream_options(&mut self) -> Option<Option<bool>> {
        if self.bytes[self.at..].starts_with(b"null") {
            self.at += 4;
            return Some(None);
        }
        self.eat(b'{')?;
        self.skip_whitespace();
        let mut include_usage = None;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(None);
        }
        loop {
            self.skip_whitespace();
            let key = self.key()?;
            self.skip_whitespace();
            self.eat(b':')?;
            self.skip_whitespace();
            if key == b"include_usage" {
                if include_usage.is_some() {
                    return None;
                }
                include_usage = Some(self.bool_or_null()?);
            } else {
                self.value(2)?;
            }
            self.skip_whitespace();
            match self.next()? {
                b',' => {}
                b'}' => return Some(include_usage.flatten()),
                _ => return None,
            }
        }
    }

    fn bool_or_null(&mut self) -> Option<Option<bool>> {
        for (word, value) in [
            (&b"true"[..], Some(true)),
            (b"false", Some(false)),
            (b"null", None),
        ] {
            if self.bytes[self.at..].starts_with(word) {
                self.at += word.len();
                return Some(value);
            }
        }
        None
    }

    /// Skips one JSON value at nesting `depth`.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string(),
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            _ => self.number(),
        }
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        self.skip_whitespace();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.skip_whitespace();
            if self.peek()? != b'"' {
                return None;
            }
            self.string()?;
            self.skip_whitespace();
            self.eat(b':')?;
            self.skip_whitespace();
            self.value(depth)?;
            self.skip_whitespace();
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        self.skip_whitespace();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.skip_whitespace();
            self.value(depth)?;
            self.skip_whitespace();
            match self.next()? {
                b',' => {}
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    fn word(&mut self, word: &[u8]) -> Option<()> {
        self.bytes[self.at..].starts_with(word).then(|| {
            self.at += word.len();
        })
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
        // caller sees it as a missing separator and refuses too.
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

    /// A string without escapes (the model name, or a key): its bytes,
    /// inside the quotes. One with escapes is left to serde.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.at;
        self.skip_plain();
        self.eat(b'"')?;
        Some(&self.bytes[start..self.at - 1])
    }

    /// A field name serde reads (it checks those are UTF-8, unlike the
    /// strings it skips).
    fn key(&mut self) -> Option<&'a [u8]> {
        let key = self.plain_string()?;
        (key.is_ascii() || std::str::from_utf8(key).is_ok()).then_some(key)
    }

    /// Skips any string, its escapes checked.
    fn string(&mut self) -> Option<()> {
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

    /// After a backslash: one of JSON's escapes. A `\u` escape needs four
    /// hex digits and nothing more, as serde asks of a string it skips.
    fn escape(&mut self) -> Option<()> {
        match self.next()? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(()),
            b'u' => {
                let hex = self.bytes.get(self.at..self.at + 4)?;
                self.at += 4;
                hex.iter().all(u8::is_ascii_hexdigit).then_some(())
            }
            _ => None,
        }
    }

    /// Moves to the next quote, backslash or control character (or the
    /// end), eight bytes at a time where it can.
    fn skip_plain(&mut self) {
        const ONES: u64 = u64::from_ne_bytes([1; 8]);
        const HIGH: u64 = ONES << 7;
        let rest = &self.bytes[self.at..];
        let mut chunks = rest.chunks_exact(8);
        for chunk in chunks.by_ref() {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            let chars = u64::from_le_bytes(word);
            let control = chars.wrapping_sub(ONES * 0x20) & !chars;
            let quote = chars ^ (ONES * u64::from(b'"'));
            let quote = quote.wrapping_sub(ONES) & !quote;
            let backslash = chars ^ (ONES * u64::from(b'\\'));
            let backslash = backslash.wrapping_sub(ONES) & !backslash;
            let found = (control | quote | backslash) & HIGH;
            if found != 0 {
                // The lowest flagged byte is a true match (borrows only
                // run upwards from one).
                self.at += found.trailing_zeros() as usize / 8;
                return;
            }
            self.at += 8;
        }
        for &byte in chunks.remainder() {
            if byte == b'"' || byte == b'\\' || byte < 0x20 {
                return;
            }
            self.at += 1;
        }
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

#[cfg(test)]
mod tests {
    use super::{Scanned, scan};
    use crate::body::probe_with_serde;

    /// The invariant: whatever the scan accepts, serde accepts with the
    /// same answer.
    fn agrees_with_serde(body: &[u8]) -> Option<Scanned<'_>> {
        let found = scan(body)?;
        let probe = probe_with_serde(body).unwrap_or_else(|err| {
            panic!(
                "the scan accepted what serde refuses ({}): {}",
                err.message,
                String::from_utf8_lossy(body)
            )
        });
        assert_eq!(
            probe.model,
            found.model,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(probe.model_span, found.model_span);
        assert_eq!(probe.stream, found.stream);
        assert_eq!(probe.include_usage, found.include_usage);
        Some(found)
    }

    #[test]
    fn common_bodies_are_scanned() {
        let bodies: [&[u8]; 6] = [
            br#"{"model":"fast/gpt","messages":[{"role":"user","content":"Say something for the benchmark."}],"stream":false}"#,
            br#" { "stream" : true , "model" : "m" , "stream_options" : { "include_usage" : true } } "#,
            br#"{"model":"claude","max_tokens":256,"temperature":-1.5e-3,"top_p":0,"stop":null,"messages":[{"role":"user","content":[{"type":"text","text":"caf\u00e9 \"quoted\"\n\ttab \\ / \/"}]}]}"#,
            "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"ünïcödé ✓ 🚀\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{},\"required\":[]}}}],\"x\":[[[1,2.5E+10,-0]],true,false,null]}".as_bytes(),
            br#"{"model":"m","stream":null,"stream_options":null}"#,
            br#"{"model":"m","stream_options":{"other":[1,{"include_usage":5}],"include_usage":false}}"#,
        ];
        let expected = [
            ("fast/gpt", false, false),
            ("m", true, true),
            ("claude", false, false),
            ("gpt-4o", false, false),
            ("m", false, false),
            ("m", false, false),
        ];
        for (body, (model, stream, include_usage)) in bodies.iter().zip(expected) {
            let found = agrees_with_serde(body)
                .unwrap_or_else(|| panic!("not scanned: {}", String::from_utf8_lossy(body)));
            assert_eq!(
                (found.model, found.stream, found.include_usage),
                (model, stream, include_usage)
            );
        }
    }

    #[test]
    fn unusual_and_invalid_bodies_are_left_to_serde() {
        let bodies: [&[u8]; 27] = [
            b"",
            b"{}",
            br#"{"model":"a\/b"}"#,
            br#"{"mod\u0065l":"m"}"#,
            br#"{"model":"m","model":"n"}"#,
            br#"{"model":"m","stream":true,"stream":true}"#,
            br#"{"model":5}"#,
            br#"{"model":"m","stream":"yes"}"#,
            br#"{"model":"m","stream_options":[true]}"#,
            br#"{"model":"m","stream_options":{"include_usage":1}}"#,
            br#"{"model":"m",}"#,
            br#"{"model":"m"} {}"#,
            br#"{"model":"m","x":01}"#,
            br#"{"model":"m","x":1.}"#,
            br#"{"model":"m","x":1e}"#,
            br#"{"model":"m","x":-}"#,
            br#"{"model":"m","x":tru}"#,
            br#"{"model":"m","x":"\x"}"#,
            br#"{"model":"m","x":"\u12g4"}"#,
            b"{\"model\":\"m\",\"x\":\"a\tb\"}",
            b"{\"model\":\"m\",\"\xff\":1}",
            b"{\"model\":\"\xff\"}",
            br#"{"model":"m","x":[1,]}"#,
            br#"{"model":"m","x":{"a" 1}}"#,
            br#"{"model":"m","x":{1:2}}"#,
            br#"{"model":"m""#,
            br#"{"model":"m","x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
        ];
        for body in bodies {
            assert_eq!(scan(body), None, "{}", String::from_utf8_lossy(body));
        }
    }

    /// Random edits of valid bodies, with the bytes that matter to JSON's
    /// grammar: the scan may refuse any of them, but never accept one that
    /// serde refuses or read it differently.
    #[test]
    fn mutated_bodies_never_fool_the_scan() {
        let seeds: [&[u8]; 3] = [
            br#"{"model":"fast/gpt","messages":[{"role":"user","content":"Say \"hi\" now"}],"stream":false}"#,
            br#"{"stream":true,"model":"m","stream_options":{"include_usage":true},"n":[1,-2.5e3,null]}"#,
            br#"{"model":"x","tools":[{"a":{"b":[true,false]}}],"t":0.5}"#,
        ];
        let alphabet = b"{}[]\":,\\ \t\n-+.0123456789eEtrufalsnmodel_\x01\xc3\xa9\xff";
        let mut rng = fastrand::Rng::with_seed(6);
        let mut scanned = 0;
        for round in 0..30_000 {
            let mut body = seeds[round % seeds.len()].to_vec();
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(0..=body.len());
                let byte = alphabet[rng.usize(0..alphabet.len())];
                match rng.u8(0..3) {
                    0 if at < body.len() => body[at] = byte,
                    1 if at < body.len() => {
                        body.remove(at);
                    }
                    _ => body.insert(at, byte),
                }
            }
            scanned += usize::from(agrees_with_serde(&body).is_some());
        }
        // Many edits land inside strings and keep the body valid.
        assert!(
            scanned > 1_000,
            "only {scanned} mutated bodies were scanned"
        );
    }
}
