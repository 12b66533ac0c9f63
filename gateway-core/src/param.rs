//! Where a value sits in a request body (`messages[1].content[0].text`),
//! spelled out only when an error names it.
//!
//! Request decoders walk every message and content part; formatting each
//! one's path up front cost more than decoding it. A [`Param`] is a chain of
//! borrowed steps on the stack, and becomes text through [`Display`] in the
//! error branch alone.

use std::fmt;

/// A path to a request parameter, built from a top-level field by
/// [`Param::field`] and [`Param::index`] steps.
#[derive(Clone, Copy, Debug)]
pub enum Param<'a> {
    /// A top-level field (`messages`, `system`).
    Root(&'a str),
    /// A named field of the value at the parent path (`.content`).
    Field(&'a Param<'a>, &'a str),
    /// An element of the array at the parent path (`[2]`).
    Index(&'a Param<'a>, usize),
}

impl<'a> Param<'a> {
    /// The named field of the value at this path.
    pub fn field(&'a self, name: &'a str) -> Param<'a> {
        Param::Field(self, name)
    }

    /// The element `index` of the array at this path.
    pub fn index(&'a self, index: usize) -> Param<'a> {
        Param::Index(self, index)
    }
}

impl fmt::Display for Param<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Param::Root(name) => f.write_str(name),
            Param::Field(parent, name) => write!(f, "{parent}.{name}"),
            Param::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Param;

    #[test]
    fn a_path_is_written_as_the_error_names_it() {
        let messages = Param::Root("messages");
        let message = messages.index(1);
        let content = message.field("content");
        let part = content.index(0);
        assert_eq!(
            part.field("text").to_string(),
            "messages[1].content[0].text"
        );
        assert_eq!(Param::Root("system").to_string(), "system");
    }
}
