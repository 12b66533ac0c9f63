//! Field paths (`backends[1].models[0].id`) and finding them in a TOML file.

use std::fmt;

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// The location of a value inside the config, printed the way users write it:
/// `backends[1].models[0].id`, with odd keys quoted (`aliases."gpt-4.1"`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// The root of the document.
    pub fn root() -> Self {
        Self::default()
    }

    /// This path with one more key.
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.into()));
        next
    }

    /// This path with one more index.
    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }

    /// Parses an RFC 6901 JSON pointer (`/backends/1/id`), as `jsonschema`
    /// reports locations. Numeric steps become indexes.
    pub fn from_json_pointer(pointer: &str) -> Self {
        let segments = pointer
            .split('/')
            .skip(1)
            .map(|raw| {
                let step = raw.replace("~1", "/").replace("~0", "~");
                match step.parse::<usize>() {
                    Ok(index) => Segment::Index(index),
                    Err(_) => Segment::Key(step),
                }
            })
            .collect();
        Self(segments)
    }

    /// The 1-based line of this path's value in `toml_text` (or of its
    /// nearest existing ancestor), when the text is TOML.
    pub fn line_in_toml(&self, toml_text: &str) -> Option<usize> {
        let document = toml_text.parse::<toml_edit::Document<String>>().ok()?;
        let mut span = None;
        let mut item = document.as_item();
        for segment in &self.0 {
            // A missing step (a required field) points at its parent.
            let found = match segment {
                Segment::Key(key) => item.get(key.as_str()),
                Segment::Index(index) => item.get(*index),
            };
            let Some(next) = found else { break };
            span = next.span().or(span);
            // Tables of arrays carry spans on the table, not on the item.
            if let (None, Some(table)) = (next.span(), next.as_table()) {
                span = table.span().or(span);
            }
            item = next;
        }
        let start = span?.start;
        Some(toml_text[..start].matches('\n').count() + 1)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) => {
                    if position > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if bare {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_users_write_it() {
        let path = FieldPath::from_json_pointer("/backends/1/models/0/id");
        assert_eq!(path.to_string(), "backends[1].models[0].id");
        let odd = FieldPath::root().key("aliases").key("gpt-4.1");
        assert_eq!(odd.to_string(), "aliases.\"gpt-4.1\"");
        assert_eq!(FieldPath::root().to_string(), "(top level)");
        let escaped = FieldPath::from_json_pointer("/aliases/a~1b");
        assert_eq!(escaped.to_string(), "aliases.\"a/b\"");
    }

    #[test]
    fn finds_lines_in_toml() {
        let text = "[server]\nlisten = \"x\"\n\n[[backends]]\nid = \"a\"\n\n[[backends]]\nid = \"b\"\nmodels = [\n  { id = \"m\" },\n  { id = \"n\" },\n]\n";
        let path = FieldPath::from_json_pointer("/backends/1/models/1/id");
        assert_eq!(path.line_in_toml(text), Some(11));
        let listen = FieldPath::from_json_pointer("/server/listen");
        assert_eq!(listen.line_in_toml(text), Some(2));
        let second = FieldPath::from_json_pointer("/backends/1");
        assert_eq!(second.line_in_toml(text), Some(7));
        assert_eq!(
            FieldPath::from_json_pointer("/nope").line_in_toml(text),
            None
        );
        let missing = FieldPath::from_json_pointer("/backends/1/models/1/name");
        assert_eq!(missing.line_in_toml(text), Some(11));
    }
}
