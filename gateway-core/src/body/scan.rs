//! One validating pass over a chat request body that finds `model`,
//! `stream` and `stream_options.include_usage` without serde.
//!
//! serde's probe spent about 20 instructions a byte on a typical body,
//! most of it in the generic visitor machinery around skipping
//! `messages`; this scan reads it with [`Reader`], a plain loop that checks
//! the same grammar.
//!
//! It answers only when it is sure. Every body it does not accept gets
//! `None` and goes to the serde probe, which then gives the answer or the
//! error (so error texts stay serde's): invalid JSON, but also what is
//! valid and merely unusual here, such as a repeated or escaped top-level
//! key, a field of an unexpected type, an escaped model name, or deep
//! nesting. Architecture invariant: it never accepts a body the serde probe
//! refuses.

use std::ops::Range;

use crate::json::Reader;

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
    let mut reader = Reader::new(body);
    let mut model = None;
    let mut stream = None;
    let mut include_usage = None;
    reader.object(|reader, key| {
        match key {
            b"model" if model.is_none() => model = Some(reader.plain_str()?),
            b"stream" if stream.is_none() => stream = Some(reader.nullable(Reader::bool)?),
            b"stream_options" if include_usage.is_none() => {
                include_usage = Some(reader.nullable(read_stream_options)?.flatten());
            }
            b"model" | b"stream" | b"stream_options" => return None,
            _ => reader.skip()?,
        }
        Some(())
    })?;
    reader.end()?;
    let (model, model_span) = model?;
    Some(Scanned {
        model,
        model_span,
        stream: stream.flatten().unwrap_or(false),
        include_usage: include_usage.flatten().unwrap_or(false),
    })
}

/// An OpenAI `stream_options` object's `include_usage` (a boolean or null);
/// its other fields are checked and skipped, as serde skips them. `None`
/// where serde would refuse or read it differently (not an object, a
/// repeated `include_usage`).
pub fn read_stream_options(reader: &mut Reader<'_>) -> Option<Option<bool>> {
    let [include_usage] = reader.fields([b"include_usage"], Reader::bool)?;
    Some(include_usage)
}

#[cfg(test)]
mod tests {
    use super::{Scanned, scan};
    use crate::body::probe_with_serde;
    use crate::json::random_edits;

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
            let body = random_edits(seeds[round % seeds.len()], alphabet, &mut rng);
            scanned += usize::from(agrees_with_serde(&body).is_some());
        }
        // Many edits land inside strings and keep the body valid.
        assert!(
            scanned > 1_000,
            "only {scanned} mutated bodies were scanned"
        );
    }
}
