//! Who is calling: reads the client token from wherever the caller's SDK
//! puts it and checks it against `[[keys]]`, before any handler runs.
//!
//! Tokens are read from `Authorization: Bearer` (OpenAI), `x-api-key`
//! (Anthropic), `x-goog-api-key` and `?key=` (Google). They identify the
//! caller to the gateway only: they are never forwarded upstream, logged or
//! echoed. A failure is a 401 in the dialect the path belongs to.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderName, header};
use axum::response::Response;
use gateway_core::pipeline::KeyPolicy;

use crate::app::AppState;
use crate::frontend::common::error_for_path;
use crate::headers::HeaderLookup;

/// The authenticated caller's key, or `None` when no keys are configured.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) Option<Arc<KeyPolicy>>);

/// Anthropic's SDK sends its key here.
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Google's GenAI SDK sends its key here.
const X_GOOG_API_KEY: HeaderName = HeaderName::from_static("x-goog-api-key");

/// The token the caller sent, from the first place that has one; `query`
/// is the request target's query string.
pub(crate) fn caller_token<'a>(
    headers: &'a impl HeaderLookup,
    query: Option<&'a str>,
) -> Option<Cow<'a, str>> {
    // Looked up by `HeaderName`, not `&str`, which would parse the name on
    // every request.
    let header = |name: &HeaderName| headers.header_str(name);
    if let Some(value) = header(&header::AUTHORIZATION) {
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or(value);
        return Some(Cow::Borrowed(token.trim()));
    }
    if let Some(token) = header(&X_API_KEY).or_else(|| header(&X_GOOG_API_KEY)) {
        return Some(Cow::Borrowed(token));
    }
    let query = query?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "key")
        .map(|(_, value)| Cow::Owned(value.into_owned()))
}

/// Authenticates `request` (every path except `/health`) and records the
/// caller for the handlers; a failure is the 401 to answer with.
pub(crate) fn authenticate(state: &AppState, request: &mut Request) -> Result<(), Response> {
    let path = request.uri().path();
    if path == "/health" || (path.starts_with("/api/") && path.ends_with("/health")) {
        return Ok(());
    }
    let caller = identify(state, request.headers(), path, request.uri().query())?;
    request.extensions_mut().insert(caller);
    Ok(())
}

/// The caller of a request with `headers` to `path?query`; a failure is
/// the 401 to answer with.
pub(crate) fn identify(
    state: &AppState,
    headers: &impl HeaderLookup,
    path: &str,
    query: Option<&str>,
) -> Result<Caller, Response> {
    // Without keys any token is accepted and ignored: none is read.
    if !state.gateway.requires_keys() {
        return Ok(Caller(None));
    }
    let token = caller_token(headers, query);
    state
        .gateway
        .authenticate(token.as_deref())
        .map(Caller)
        .map_err(|err| error_for_path(path, &err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, Uri};

    fn token(headers: &[(&str, &str)], uri: &str) -> Option<String> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value.parse().expect("value"),
            );
        }
        let uri: Uri = uri.parse().expect("uri");
        caller_token(&map, uri.query()).map(Cow::into_owned)
    }

    #[test]
    fn each_sdks_place_is_read() {
        assert_eq!(
            token(&[("authorization", "Bearer a1")], "/"),
            Some("a1".into())
        );
        assert_eq!(token(&[("x-api-key", "b2")], "/"), Some("b2".into()));
        assert_eq!(token(&[("x-goog-api-key", "c3")], "/"), Some("c3".into()));
        assert_eq!(
            token(&[], "/v1beta/models?key=d%2B4&alt=sse"),
            Some("d+4".into())
        );
        assert_eq!(token(&[], "/v1beta/models?alt=sse"), None);
    }
}
