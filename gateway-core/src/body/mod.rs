//! What routing and pass-through need from a JSON request body: the model
//! and the stream flag, and the body with only `model` rewritten. OpenAI and
//! Anthropic both carry `model` and `stream` at the top level.
//!
//! The body is scanned once (to validate it and find `model`) and never
//! copied: a different upstream model id is spliced in ([`SplicedBody`]).
//! The scan is [`scan`]'s plain loop for a common body; anything else, and
//! every error, goes through serde.

mod scan;
mod spliced;

pub use scan::read_stream_options;
pub use spliced::{SplicedBody, SplicedBuf};

use std::borrow::Cow;
use std::ops::Range;

use crate::GatewayError;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The few fields routing needs, located in the original body.
#[derive(Debug)]
pub struct Probe<'a> {
    /// The requested model name.
    pub model: Cow<'a, str>,
    /// Whether the caller asked for a stream.
    pub stream: bool,
    /// Whether `stream_options.include_usage` was asked for.
    pub include_usage: bool,
    model_span: Range<usize>,
}

#[derive(Deserialize)]
struct RawProbe<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// Turns a body deserialisation failure into a 400 that names the parameter
/// at fault.
pub fn body_error(err: serde_path_to_error::Error<serde_json::Error>) -> GatewayError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        return GatewayError::invalid_request(format!(
            "the request body is not valid JSON: {inner}"
        ));
    }
    let text = inner.to_string();
    if let Some(rest) = text.strip_prefix("missing field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        let param = if path == "." {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        return GatewayError::invalid_param(
            param.clone(),
            format!("missing required parameter: '{param}'"),
        );
    }
    if path == "." {
        return GatewayError::invalid_request(format!("the request body is invalid: {text}"));
    }
    GatewayError::invalid_param(path.clone(), format!("'{path}': {text}"))
}

/// Reads `model` and `stream` from a chat request body, with OpenAI-style
/// errors for a body that is not JSON, not an object, or lacks a string model.
pub fn probe(body: &[u8]) -> Result<Probe<'_>, GatewayError> {
    let trimmed = body.trim_ascii_start();
    if trimmed.is_empty() {
        return Err(GatewayError::invalid_request(
            "the request body is empty; send a JSON object with 'model' and 'messages'",
        ));
    }
    if trimmed.first() != Some(&b'{') {
        return Err(GatewayError::invalid_request(
            "the request body must be a JSON object",
        ));
    }
    match scan::scan(body) {
        Some(found) => Ok(Probe {
            model: Cow::Borrowed(found.model),
            stream: found.stream,
            include_usage: found.include_usage,
            model_span: found.model_span,
        }),
        None => probe_with_serde(body),
    }
}

/// [`probe`] for a body the scan left to serde: the answer, or the error
/// that names what is wrong.
fn probe_with_serde(body: &[u8]) -> Result<Probe<'_>, GatewayError> {
    let raw: RawProbe<'_> = parse_body(body)?;
    let model_raw = raw.model.ok_or_else(|| {
        GatewayError::invalid_param("model", "missing required parameter: 'model'")
    })?;
    let model = match unescaped_string(model_raw.get()) {
        Some(plain) => Cow::Borrowed(plain),
        None => serde_json::from_str::<Cow<'_, str>>(model_raw.get()).map_err(|_| {
            GatewayError::invalid_param(
                "model",
                format!("'model' must be a string, got {}", model_raw.get()),
            )
        })?,
    };
    let start = model_raw.get().as_ptr() as usize - body.as_ptr() as usize;
    Ok(Probe {
        model,
        stream: raw.stream.unwrap_or(false),
        include_usage: raw
            .stream_options
            .and_then(|options| options.include_usage)
            .unwrap_or(false),
        model_span: start..start + model_raw.get().len(),
    })
}

/// The text of `json`, a JSON value already validated, when it is a string
/// without escapes: then it needs no decoding (and no copy), which serde
/// does not know for a `Cow<str>`.
fn unescaped_string(json: &str) -> Option<&str> {
    json.strip_prefix('"')?
        .strip_suffix('"')
        .filter(|text| !text.contains('\\'))
}

/// Deserialises a JSON request body into `T`, with an error that names the
/// parameter at fault (a 400).
///
/// The common case parses once without tracking where it is in the body;
/// only a body that fails is parsed again, tracked, to name the field.
/// Trailing characters after the JSON value are an error either way.
pub fn parse_body<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, GatewayError> {
    serde_json::from_slice(body).map_err(|_| tracked_error::<T>(body))
}

/// Why `body` is not a `T`, naming the parameter at fault.
fn tracked_error<'de, T: Deserialize<'de>>(body: &'de [u8]) -> GatewayError {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Err(err) => body_error(err),
        Ok(_) => match deserializer.end() {
            Err(err) => {
                GatewayError::invalid_request(format!("the request body is not valid JSON: {err}"))
            }
            Ok(()) => GatewayError::invalid_request("the request body is invalid"),
        },
    }
}

impl Probe<'_> {
    /// `body` (the one this probe read) with `model` set to `upstream_model`
    /// and every other byte unchanged. A long body is not copied: the new
    /// name is spliced in and the rest shared with `body`. A short one is
    /// copied whole, which costs less than sharing it (see
    /// [`SPLICE_FROM`]).
    pub fn rewrite_model(&self, body: &Bytes, upstream_model: &str) -> SplicedBody {
        if self.model == upstream_model {
            return SplicedBody::from(body.clone());
        }
        let span = self.model_span.clone();
        if body.len() < SPLICE_FROM {
            // Room for the name quoted: the common name has no escapes, and
            // a `Vec` filled to its capacity becomes `Bytes` without the
            // extra allocation a spare capacity costs.
            let mut out = Vec::with_capacity(body.len() - span.len() + upstream_model.len() + 2);
            out.extend_from_slice(&body[..span.start]);
            crate::json::write_str(&mut out, upstream_model);
            out.extend_from_slice(&body[span.end..]);
            return SplicedBody::from(Bytes::from(out));
        }
        let mut quoted = Vec::with_capacity(upstream_model.len() + 2);
        crate::json::write_str(&mut quoted, upstream_model);
        SplicedBody::new(body.clone(), span, Bytes::from(quoted))
    }
}

/// Bodies from this many bytes get the upstream model spliced in rather
/// than copied around it. Sharing a body the server read into a buffer of
/// its own allocates a reference count the first time, and the pieces
/// cost a little more to carry and write: about 150 instructions a
/// request in all (callgrind), which a copy of a few KiB costs too.
pub const SPLICE_FROM: usize = 4 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_the_model() {
        let body = Bytes::from_static(
            br#"{ "messages": [{"role":"user","content":"hi \"model\""}], "model" : "fast", "x_unknown": {"model": "keep"}, "stream": true }"#,
        );
        let probe = probe(&body).expect("valid");
        assert_eq!(probe.model, "fast");
        assert!(probe.stream);
        let rewritten = probe.rewrite_model(&body, "org/model-x.1");
        assert_eq!(
            std::str::from_utf8(&rewritten.to_bytes()).expect("utf8"),
            r#"{ "messages": [{"role":"user","content":"hi \"model\""}], "model" : "org/model-x.1", "x_unknown": {"model": "keep"}, "stream": true }"#
        );
    }

    #[test]
    fn a_long_body_shares_its_bytes_and_a_short_one_is_copied() {
        let prompt = "x".repeat(SPLICE_FROM);
        let long = Bytes::from(format!(
            r#"{{"messages":[{{"role":"user","content":"{prompt}"}}],"model":"fast/gpt","stream":false}}"#
        ));
        let probed = probe(&long).expect("valid");
        let rewritten = probed.rewrite_model(&long, "g\"pt");
        let expected = format!(
            r#"{{"messages":[{{"role":"user","content":"{prompt}"}}],"model":"g\"pt","stream":false}}"#
        );
        assert_eq!(rewritten.to_bytes(), expected.as_bytes());
        assert_eq!(rewritten.len(), expected.len());
        let [front, name, back] = rewritten.pieces();
        assert_eq!(front.as_ptr(), long.as_ptr(), "the front is shared");
        assert_eq!(name, br#""g\"pt""#);
        assert_eq!(back, br#","stream":false}"#);

        let short = Bytes::from(r#"{"model":"fast/gpt"}"#);
        let rewritten = probe(&short).expect("valid").rewrite_model(&short, "gpt");
        assert_eq!(rewritten.to_bytes(), &br#"{"model":"gpt"}"#[..]);
        let [front, name, whole] = rewritten.pieces();
        assert!(front.is_empty() && name.is_empty(), "copied into one piece");
        assert_ne!(
            whole.as_ptr(),
            short.as_ptr(),
            "a copy, not the caller's buffer"
        );
    }

    #[test]
    fn unchanged_model_is_not_copied() {
        let body = Bytes::from_static(br#"{"model":"m"}"#);
        let probe = probe(&body).expect("valid");
        let same = probe.rewrite_model(&body, "m");
        assert_eq!(same.to_bytes().as_ptr(), body.as_ptr());
    }

    #[test]
    fn escaped_model_names_decode_and_plain_ones_are_borrowed() {
        let body = Bytes::from_static(br#"{"model":"a\/b"}"#);
        assert_eq!(probe(&body).expect("valid").model, "a/b");
        let body = Bytes::from_static(br#"{"model":"fast/gpt"}"#);
        let probed = probe(&body).expect("valid");
        assert!(matches!(probed.model, Cow::Borrowed("fast/gpt")));
        let rewritten = probed.rewrite_model(&body, "q\"\u{1}");
        assert_eq!(&rewritten.to_bytes()[..], br#"{"model":"q\"\u0001"}"#);
        let body = Bytes::from_static(br#"{"model":""}"#);
        assert_eq!(probe(&body).expect("valid").model, "");
    }

    #[test]
    fn bad_bodies_get_clear_errors() {
        let cases: [(&[u8], &str); 8] = [
            (
                b"",
                "the request body is empty; send a JSON object with 'model' and 'messages'",
            ),
            (b"[1]", "the request body must be a JSON object"),
            (
                b"{\"model\": ",
                "the request body is not valid JSON: EOF while parsing a value at line 1 column 10",
            ),
            (b"{\"messages\": []}", "missing required parameter: 'model'"),
            (b"{\"model\": 5}", "'model' must be a string, got 5"),
            (
                b"{\"model\": \"m\", \"stream\": \"yes\"}",
                "'stream': invalid type: string \"yes\", expected a boolean at line 1 column 30",
            ),
            (
                b"{\"model\": \"m\",}",
                "the request body is not valid JSON: trailing comma at line 1 column 15",
            ),
            (
                b"{\"model\": \"m\"} {}",
                "the request body is not valid JSON: trailing characters at line 1 column 16",
            ),
        ];
        for (body, expected) in cases {
            let err = probe(body).expect_err("invalid");
            assert_eq!(err.status(), 400);
            assert_eq!(err.message, expected, "{}", String::from_utf8_lossy(body));
        }
    }
}
