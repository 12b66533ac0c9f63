//! The HTTP/1.1 wire rules this crate's upstream client follows, offered
//! to the gateway's own HTTP/1.1 server so that both sides parse heads,
//! decide framing and take bodies apart the same way.

pub use crate::http1::Error;
pub use crate::http1::body::{Chunked, Decoded, Framing};
pub use crate::http1::head::{
    FramingHeaders, HeaderSpan, HeaderSpans, MAX_HEAD, MAX_HEADERS, header_map, header_spans,
    push_header,
};
pub use crate::http1::read::{ReadBuffer, copy_front, take_front};
