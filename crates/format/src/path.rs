//! JSON paths such as `training_pairs[3].conversation_history[1].role`.
//! Diagnostics name the place they talk about with one of these.

use std::borrow::Cow;
use std::fmt;

/// One step into a JSON document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Field names are mostly the spec's literals: borrowing them keeps
    /// building paths cheap on the validator's hot path.
    Key(Cow<'static, str>),
    Index(usize),
}

/// A path from the document root; the root itself displays as `$`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct JsonPath(Vec<Segment>);

impl JsonPath {
    pub fn root() -> Self {
        Self::default()
    }

    pub fn key(&self, key: impl Into<Cow<'static, str>>) -> Self {
        let mut segments = Vec::with_capacity(self.0.len() + 1);
        segments.extend(self.0.iter().cloned());
        segments.push(Segment::Key(key.into()));
        Self(segments)
    }

    pub fn index(&self, index: usize) -> Self {
        let mut segments = Vec::with_capacity(self.0.len() + 1);
        segments.extend(self.0.iter().cloned());
        segments.push(Segment::Index(index));
        Self(segments)
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub fn parent(&self) -> Option<Self> {
        let (_, rest) = self.0.split_last()?;
        Some(Self(rest.to_vec()))
    }

    /// This path with `prefix` in front (used to place a conversation's findings inside a full file).
    pub fn under(&self, prefix: &JsonPath) -> Self {
        let mut segments = prefix.0.clone();
        segments.extend(self.0.iter().cloned());
        Self(segments)
    }

    pub(crate) fn push(&mut self, segment: Segment) {
        self.0.push(segment);
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("$");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

impl serde::Serialize for JsonPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_keys_and_indices_like_javascript() {
        let path = JsonPath::root()
            .key("training_pairs")
            .index(3)
            .key("conversation_history")
            .index(1)
            .key("role");
        assert_eq!(path.to_string(), "training_pairs[3].conversation_history[1].role");
        assert_eq!(JsonPath::root().to_string(), "$");
        assert_eq!(JsonPath::root().index(2).key("id").to_string(), "[2].id");
    }
}
