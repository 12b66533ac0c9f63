//! Stream discipline: the shape every [`ChatStream`] the gateway hands out
//! has, and folding a stream into a [`ChatResponse`].

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use crate::adapter::ChatStream;
use crate::error::GatewayError;
use crate::types::{ChatEvent, ChatResponse, FinishReason, ToolCall, Usage};

/// Wraps an adapter's stream so that it starts with exactly one
/// [`ChatEvent::Started`] and ends with exactly one `Finished` or one error:
/// a stream that stops early becomes an error, events after the end are
/// dropped, and an adapter's own `Started` is not repeated.
pub struct Disciplined {
    inner: ChatStream,
    started: Option<ChatEvent>,
    done: bool,
    backend: String,
}

impl Disciplined {
    /// Wraps `inner`, announcing `started` first.
    pub fn new(inner: ChatStream, started: ChatEvent, backend: &str) -> Self {
        Self {
            inner,
            started: Some(started),
            done: false,
            backend: backend.to_owned(),
        }
    }
}

impl Stream for Disciplined {
    type Item = Result<ChatEvent, GatewayError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(started) = self.started.take() {
            return Poll::Ready(Some(Ok(started)));
        }
        if self.done {
            return Poll::Ready(None);
        }
        loop {
            return match self.inner.as_mut().poll_next(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(Ok(ChatEvent::Started { .. }))) => continue,
                Poll::Ready(Some(Ok(event @ ChatEvent::Finished { .. }))) => {
                    self.done = true;
                    Poll::Ready(Some(Ok(event)))
                }
                Poll::Ready(Some(Ok(event))) => Poll::Ready(Some(Ok(event))),
                Poll::Ready(Some(Err(err))) => {
                    self.done = true;
                    let backend = self.backend.clone();
                    Poll::Ready(Some(Err(err.with_backend(&backend))))
                }
                Poll::Ready(None) => {
                    self.done = true;
                    let backend = self.backend.clone();
                    Poll::Ready(Some(Err(GatewayError::upstream(
                        "the upstream stream ended before the answer was complete",
                    )
                    .with_backend(&backend))))
                }
            };
        }
    }
}

/// Decodes one upstream dialect's stream payloads (SSE `data:` fields, NDJSON
/// lines) into canonical events. Dialect crates implement it; the adapters'
/// shared HTTP plumbing drives it.
pub trait WireDecoder: Send {
    /// Decodes one payload, appending events to `out`.
    fn decode(&mut self, payload: &str, out: &mut Vec<ChatEvent>) -> Result<(), GatewayError>;

    /// The upstream closed the stream: append what completes it, or fail if
    /// it stopped short.
    fn end(&mut self, out: &mut Vec<ChatEvent>) -> Result<(), GatewayError>;
}

/// Assembles tool calls from `ToolCallDelta` fragments, returned in index
/// order. Only calls actually seen are kept, so an index an upstream makes
/// up cannot make it allocate.
#[derive(Debug, Default)]
pub struct ToolCalls {
    calls: Vec<(u32, ToolCall)>,
}

impl ToolCalls {
    /// Folds in one fragment of the call at `index`.
    pub fn push(&mut self, index: u32, id: Option<&str>, name: Option<&str>, arguments: &str) {
        let position = match self.calls.iter().position(|(seen, _)| *seen == index) {
            Some(position) => position,
            None => {
                let empty = ToolCall {
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                };
                self.calls.push((index, empty));
                self.calls.len() - 1
            }
        };
        let call = &mut self.calls[position].1;
        if let Some(id) = id {
            id.clone_into(&mut call.id);
        }
        if let Some(name) = name {
            name.clone_into(&mut call.name);
        }
        call.arguments.push_str(arguments);
    }

    /// The calls, in index order.
    pub fn into_ordered(mut self) -> Vec<ToolCall> {
        self.calls.sort_by_key(|(index, _)| *index);
        self.calls.into_iter().map(|(_, call)| call).collect()
    }
}

/// Accumulates stream events into a [`ChatResponse`].
#[derive(Debug, Default)]
pub struct Collector {
    id: Option<String>,
    model: Option<String>,
    text: String,
    tool_calls: ToolCalls,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
}

impl Collector {
    /// Folds one event in.
    pub fn push(&mut self, event: ChatEvent) {
        match event {
            ChatEvent::Started {
                request_id, model, ..
            } => {
                self.id.get_or_insert(request_id);
                self.model.get_or_insert(model);
            }
            ChatEvent::TextDelta { text } => self.text.push_str(&text),
            ChatEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments,
            } => self
                .tool_calls
                .push(index, id.as_deref(), name.as_deref(), &arguments),
            ChatEvent::Usage(usage) => self.usage = Some(usage),
            ChatEvent::Finished { reason } => self.finish = Some(reason),
        }
    }

    /// The aggregated response; an error if no `Finished` event arrived.
    pub fn finish(self) -> Result<ChatResponse, GatewayError> {
        let finish_reason = self
            .finish
            .ok_or_else(|| GatewayError::upstream("the answer ended without a finish reason"))?;
        Ok(ChatResponse {
            id: self.id.unwrap_or_default(),
            model: self.model.unwrap_or_default(),
            text: self.text,
            tool_calls: self.tool_calls.into_ordered(),
            finish_reason,
            usage: self.usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{StreamExt, executor::block_on, stream};

    fn started() -> ChatEvent {
        ChatEvent::Started {
            request_id: "r1".into(),
            backend: "b".into(),
            model: "m".into(),
        }
    }

    fn run(events: Vec<Result<ChatEvent, GatewayError>>) -> Vec<Result<ChatEvent, String>> {
        let inner: ChatStream = Box::pin(stream::iter(events));
        block_on(
            Disciplined::new(inner, started(), "b")
                .map(|item| item.map_err(|err| err.message))
                .collect(),
        )
    }

    #[test]
    fn early_end_becomes_one_error() {
        let out = run(vec![Ok(ChatEvent::TextDelta { text: "hi".into() })]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], Ok(started()));
        assert!(matches!(&out[2], Err(msg) if msg.contains("ended before")));
    }

    #[test]
    fn nothing_after_finished_or_error() {
        let finished = ChatEvent::Finished {
            reason: FinishReason::Stop,
        };
        let out = run(vec![
            Ok(finished.clone()),
            Ok(ChatEvent::TextDelta {
                text: "late".into(),
            }),
        ]);
        assert_eq!(out, vec![Ok(started()), Ok(finished)]);
        let out = run(vec![
            Err(GatewayError::upstream("boom")),
            Ok(ChatEvent::TextDelta {
                text: "late".into(),
            }),
        ]);
        assert_eq!(out, vec![Ok(started()), Err("boom".to_owned())]);
    }

    #[test]
    fn a_made_up_huge_index_allocates_nothing_extra() {
        let mut calls = ToolCalls::default();
        calls.push(u32::MAX, Some("x"), Some("f"), "{}");
        let calls = calls.into_ordered();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].name, "f");
    }

    #[test]
    fn collector_merges_tool_call_fragments_in_order() {
        let mut collector = Collector::default();
        for event in [
            started(),
            ChatEvent::ToolCallDelta {
                index: 1,
                id: Some("b".into()),
                name: Some("second".into()),
                arguments: "{".into(),
            },
            ChatEvent::ToolCallDelta {
                index: 0,
                id: Some("a".into()),
                name: Some("first".into()),
                arguments: "{}".into(),
            },
            ChatEvent::ToolCallDelta {
                index: 1,
                id: None,
                name: None,
                arguments: "}".into(),
            },
            ChatEvent::Finished {
                reason: FinishReason::ToolCalls,
            },
        ] {
            collector.push(event);
        }
        let response = collector.finish().expect("finished");
        let calls: Vec<(&str, &str, &str)> = response
            .tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(calls, [("a", "first", "{}"), ("b", "second", "{}")]);
    }
}
