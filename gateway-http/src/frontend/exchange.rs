//! The part of every chat request that is the same in each dialect: admit
//! the caller, dispatch to the targets (pass-through where the dialects
//! match, translated otherwise), and turn the answer into a response that
//! keeps the request's slots until its last byte and charges its usage.

use axum::body::Bytes;
use axum::response::Response;
use futures::StreamExt;
use gateway_core::pipeline::{Admission, Alarm, AttemptError, Dispatched, Watchdog};
use gateway_core::{
    ChatEvent, ChatRequest, ChatResponse, ChatStream, GatewayError, PassthroughRequest,
    PassthroughResponse, Route, SplicedBody, Targets, Usage,
};
use serde_json::Value;

use crate::app::AppState;
use crate::frontend::shared::{passthrough_response, passthrough_whole, whole_body_now};
use crate::frontend::usage::{UsageTap, hide_usage_chunk as hide_usage_chunk_from};

/// What one attempt produced.
pub(crate) enum Answer {
    /// The upstream's own answer, same dialect.
    Passthrough(PassthroughResponse),
    /// Translated events.
    Stream(ChatStream),
    /// A translated whole answer.
    Once(ChatResponse),
}

/// How a dialect frontend renders answers and reads usage.
pub(crate) struct Dialect {
    /// The dialect's name (pass-through when a backend speaks it).
    pub(crate) name: &'static str,
    /// One error event of the dialect's stream format.
    pub(crate) error_frame: fn(&GatewayError) -> Bytes,
    /// Token usage in one JSON value of the dialect's answers (a whole body
    /// or one stream event).
    pub(crate) usage_in: fn(&Value) -> Option<Usage>,
    /// Where the output token limit lives in a request body, as JSON
    /// pointers; the first is the one set when the request has none.
    pub(crate) output_limit_fields: &'static [&'static str],
}

/// One chat request, ready to dispatch.
pub(crate) struct Exchange<'a, 't, P> {
    /// Shared state.
    pub(crate) state: &'a AppState,
    /// Every target the requested name leads to, borrowed from the router.
    pub(crate) targets: &'t Targets,
    /// The caller's admission.
    pub(crate) admission: &'a Admission,
    /// The frontend's dialect.
    pub(crate) dialect: &'static Dialect,
    /// Builds the pass-through request for a route (its body carries the
    /// route's upstream model).
    pub(crate) passthrough: P,
    /// The canonical request, when some target needs translation. Boxed:
    /// the request's future, which every await level moves, stays small
    /// on the pass-through path.
    pub(crate) translated: Option<Box<ChatRequest>>,
}

/// True when some of `targets` needs the request translated.
pub(crate) fn needs_translation(state: &AppState, targets: &Targets, dialect: &str) -> bool {
    targets
        .routes()
        .any(|route| !state.gateway.can_pass_through(route, dialect))
}

impl<'t, P> Exchange<'_, 't, P>
where
    P: Fn(&Route) -> Result<PassthroughRequest, GatewayError>,
{
    /// Dispatches the request through the provider stages; its first-byte
    /// deadlines are waited for on `alarm`, the connection's timer, when
    /// it lends one.
    pub(crate) async fn run(
        &self,
        alarm: Option<&mut Alarm<'_>>,
    ) -> Result<Dispatched<'t, Answer>, GatewayError> {
        let gateway = &self.state.gateway;
        gateway
            .dispatch(self.targets, alarm, |route| async move {
                if gateway.can_pass_through(route, self.dialect.name) {
                    let mut request = (self.passthrough)(route)?;
                    request.body = self.cap_body(route, request.body)?;
                    return gateway
                        .passthrough_attempt(route, request)
                        .await
                        .map(Answer::Passthrough)
                        .map_err(|failure| AttemptError {
                            error: failure.error,
                            answer: failure.answer.map(Answer::Passthrough),
                        });
                }
                let mut request =
                    self.translated.as_deref().cloned().ok_or_else(|| {
                        GatewayError::internal("no canonical request to translate")
                    })?;
                let asked = request
                    .max_output_tokens
                    .or(route.default_max_tokens)
                    .map(u64::from);
                if let Some(limit) = gateway.output_cap(self.admission, route, asked)? {
                    request.max_output_tokens = Some(limit);
                }
                // Boxed, so that the attempt's future (which dispatch holds
                // and moves) is sized for pass-through, not for these.
                if request.stream {
                    Ok(Answer::Stream(
                        Box::pin(gateway.chat_stream_on(route, request)).await?,
                    ))
                } else {
                    Ok(Answer::Once(
                        Box::pin(gateway.chat_once_on(route, request)).await?,
                    ))
                }
            })
            .await
    }

    /// Applies the output token cap to a pass-through body; the body is
    /// parsed and re-serialised only when a cap applies and changes it.
    fn cap_body(&self, route: &Route, body: SplicedBody) -> Result<SplicedBody, GatewayError> {
        let gateway = &self.state.gateway;
        if gateway.output_cap_limit(self.admission, route).is_none() {
            return Ok(body);
        }
        let mut value: Value = serde_json::from_slice(&body.to_bytes()).map_err(|err| {
            GatewayError::invalid_request(format!("the request body is not valid JSON: {err}"))
        })?;
        let fields = self.dialect.output_limit_fields;
        let present = fields
            .iter()
            .find(|pointer| value.pointer(pointer).is_some_and(|v| !v.is_null()));
        let asked = present.and_then(|pointer| value.pointer(pointer).and_then(Value::as_u64));
        let Some(limit) = gateway.output_cap(self.admission, route, asked)? else {
            return Ok(body);
        };
        let pointer = present.or(fields.first()).copied().unwrap_or("/max_tokens");
        set_pointer(&mut value, pointer, Value::from(limit));
        serde_json::to_vec(&value)
            .map(|encoded| SplicedBody::from(Bytes::from(encoded)))
            .map_err(|err| GatewayError::internal(format!("cannot encode the request: {err}")))
    }
}

/// Sets `pointer` in `value`, creating objects on the way.
pub(crate) fn set_pointer(value: &mut Value, pointer: &str, new: Value) {
    let mut at = value;
    let mut parts = pointer.trim_start_matches('/').split('/').peekable();
    while let Some(part) = parts.next() {
        let Some(object) = at.as_object_mut() else {
            return;
        };
        if parts.peek().is_none() {
            object.insert(part.to_owned(), new);
            return;
        }
        at = object
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
}

/// Turns a dispatched answer into the response: pass-through bodies are
/// forwarded as they are, translated answers rendered by `stream` or
/// `once`. The backend slot and `admission` are held until the body's last
/// byte (or until the client goes away), and usage is charged to the
/// caller's token budget when it has one.
pub(crate) fn respond(
    dispatched: Dispatched<'_, Answer>,
    admission: Admission,
    dialect: &'static Dialect,
    hide_usage_chunk: bool,
    stream: impl FnOnce(ChatStream) -> Response,
    once: impl FnOnce(ChatResponse) -> Response,
) -> Response {
    let Dispatched {
        value,
        slot,
        limits,
        ..
    } = dispatched;
    let meter = admission.meter();
    match value {
        Answer::Passthrough(mut upstream) => {
            // An answer already read whole (the usual JSON answer) is
            // complete: its slots go now, and it is sent as one body of
            // known length. (With a token budget to charge, or as a
            // stream, it takes the way below.)
            if meter.is_none() && !upstream.is_event_stream() {
                let body =
                    std::mem::replace(&mut upstream.body, Box::pin(futures::stream::empty()));
                match whole_body_now(body) {
                    Ok(whole) => {
                        drop((slot, admission));
                        return passthrough_whole(upstream.status, upstream.headers, whole);
                    }
                    Err(body) => upstream.body = body,
                }
            }
            if let Some(meter) = meter {
                let sse = upstream.is_event_stream();
                let mut tap = UsageTap::new(meter, dialect.usage_in, sse);
                upstream.body = Box::pin(upstream.body.inspect(move |chunk| {
                    if let Ok(bytes) = chunk {
                        tap.observe(bytes);
                    }
                }));
                if sse && hide_usage_chunk {
                    upstream.body = hide_usage_chunk_from(upstream.body);
                }
            }
            upstream.body = Box::pin(Watchdog::new(upstream.body, limits, (slot, admission)));
            passthrough_response(upstream, dialect.error_frame)
        }
        Answer::Stream(events) => {
            let events: ChatStream = match meter {
                Some(meter) => {
                    let mut seen = LastUsage::new(meter);
                    Box::pin(events.inspect(move |event| seen.observe(event)))
                }
                None => events,
            };
            stream(Box::pin(Watchdog::new(events, limits, (slot, admission))))
        }
        Answer::Once(response) => {
            if let (Some(meter), Some(usage)) = (meter, response.usage.as_ref()) {
                meter.record(usage);
            }
            drop((slot, admission));
            once(response)
        }
    }
}

/// Charges the last usage a translated stream reported when the stream is
/// dropped, so a stream the client abandons is still charged for what it
/// used.
struct LastUsage {
    meter: gateway_core::pipeline::UsageMeter,
    usage: Option<Usage>,
}

impl LastUsage {
    fn new(meter: gateway_core::pipeline::UsageMeter) -> Self {
        Self { meter, usage: None }
    }

    fn observe(&mut self, event: &Result<ChatEvent, GatewayError>) {
        if let Ok(ChatEvent::Usage(usage)) = event {
            self.usage = Some(*usage);
        }
    }
}

impl Drop for LastUsage {
    fn drop(&mut self) {
        if let Some(usage) = &self.usage {
            self.meter.record(usage);
        }
    }
}
