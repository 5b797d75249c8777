//! Streaming reader for v4 documents: the top-level object is read key by key
//! and each element of a full file's `conversations` array is handed to a
//! callback as soon as it is parsed, so memory is one conversation, not one file.

use std::cell::RefCell;
use std::fmt;
use std::io::Read;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::parse;
use crate::value::{Map, Value};

/// The top-level keys of a document except `conversations`, in file order.
#[derive(Debug, Default)]
pub struct TopLevel {
    pub fields: Map<String, Value>,
    /// Number of conversations streamed, when the document had a `conversations` array.
    pub conversations: Option<usize>,
    /// Every top-level key in order, `conversations` included.
    pub keys: Vec<String>,
}

/// Why a document could not be read.
#[derive(Debug)]
pub enum ReadError<E> {
    /// Not JSON, or not an object at the top: serde_json's message and position.
    Syntax { message: String, line: usize, column: usize },
    /// The callback refused a conversation.
    Callback(E),
}

/// Reads a document held in memory.
pub fn read_slice<E>(
    text: &[u8],
    mut on_conversation: impl FnMut(usize, Value) -> Result<(), E>,
) -> Result<TopLevel, ReadError<E>> {
    // Text checked once up front (a fast, vectorised check) spares checking
    // each string again; text that is not UTF-8 is left to the slice reader,
    // which reports where it breaks. Whatever the fast reader gives up on,
    // serde_json reads or explains; the conversations handed over before it
    // gave up are not handed over again.
    match simdutf8::basic::from_utf8(text) {
        Ok(text) => {
            let mut delivered = 0usize;
            let fast = read_fast(text, &mut |index, conversation| {
                delivered += 1;
                on_conversation(index, conversation)
            });
            match fast {
                Ok(Some(top)) => Ok(top),
                Err(error) => Err(ReadError::Callback(error)),
                Ok(None) => {
                    let mut skipped = 0usize;
                    read_with(&mut serde_json::Deserializer::from_str(text), |index, conversation| {
                        if skipped < delivered {
                            skipped += 1;
                            return Ok(());
                        }
                        on_conversation(index, conversation)
                    })
                }
            }
        }
        Err(_) => read_with(&mut serde_json::Deserializer::from_slice(text), on_conversation),
    }
}

/// [`read_with`]'s result by the fast reader ([`parse`]), or `None` where it
/// gives up. The top level is read as [`TopLevelVisitor`] reads it.
fn read_fast<E>(
    text: &str,
    on_conversation: &mut impl FnMut(usize, Value) -> Result<(), E>,
) -> Result<Option<TopLevel>, E> {
    let mut cursor = parse::Cursor::new(text);
    let mut top = TopLevel::default();
    if cursor.next() != Some(b'{') {
        return Ok(None);
    }
    if !cursor.eat(b'}') {
        loop {
            if cursor.next() != Some(b'"') {
                return Ok(None);
            }
            let Some(key) = cursor.string() else { return Ok(None) };
            if cursor.next() != Some(b':') {
                return Ok(None);
            }
            top.keys.push(key.clone());
            if key == "conversations" {
                if cursor.next() != Some(b'[') {
                    return Ok(None);
                }
                let mut count = 0;
                if !cursor.eat(b']') {
                    loop {
                        // Inside the top object and the array.
                        let Some(conversation) = cursor.value_at_depth(2) else { return Ok(None) };
                        on_conversation(count, conversation)?;
                        count += 1;
                        match cursor.next() {
                            Some(b',') => {}
                            Some(b']') => break,
                            _ => return Ok(None),
                        }
                    }
                }
                top.conversations = Some(count);
            } else {
                let Some(value) = cursor.value_at_depth(1) else { return Ok(None) };
                top.fields.insert(key, value);
            }
            match cursor.next() {
                Some(b',') => {}
                Some(b'}') => break,
                _ => return Ok(None),
            }
        }
    }
    Ok(cursor.at_end().then_some(top))
}

/// Reads a document from a stream (for full files of any size).
pub fn read_stream<R: Read, E>(
    reader: R,
    on_conversation: impl FnMut(usize, Value) -> Result<(), E>,
) -> Result<TopLevel, ReadError<E>> {
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    read_with(&mut deserializer, on_conversation)
}

fn read_with<'de, R: serde_json::de::Read<'de>, E>(
    deserializer: &mut serde_json::Deserializer<R>,
    on_conversation: impl FnMut(usize, Value) -> Result<(), E>,
) -> Result<TopLevel, ReadError<E>> {
    let failure = RefCell::new(None);
    let callback = RefCell::new(on_conversation);
    let visitor = TopLevelVisitor { callback: &callback, failure: &failure };
    let result = deserializer.deserialize_any(visitor).and_then(|top| deserializer.end().map(|()| top));
    if let Some(error) = failure.into_inner() {
        return Err(ReadError::Callback(error));
    }
    result.map_err(|error| ReadError::Syntax {
        message: describe(&error),
        line: error.line(),
        column: error.column(),
    })
}

/// serde_json's message without its trailing " at line L column C" (the
/// finding states its position once, in characters).
pub(crate) fn describe(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

struct TopLevelVisitor<'c, F, E> {
    callback: &'c RefCell<F>,
    failure: &'c RefCell<Option<E>>,
}

impl<'de, 'c, F, E> Visitor<'de> for TopLevelVisitor<'c, F, E>
where
    F: FnMut(usize, Value) -> Result<(), E>,
{
    type Value = TopLevel;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object at the top level")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
        let mut top = TopLevel::default();
        while let Some(key) = map.next_key::<String>()? {
            top.keys.push(key.clone());
            if key == "conversations" {
                let seed = ConversationsSeed { callback: self.callback, failure: self.failure };
                top.conversations = Some(map.next_value_seed(seed)?);
            } else {
                let value = map.next_value::<Value>()?;
                top.fields.insert(key, value);
            }
        }
        Ok(top)
    }
}

struct ConversationsSeed<'c, F, E> {
    callback: &'c RefCell<F>,
    failure: &'c RefCell<Option<E>>,
}

impl<'de, 'c, F, E> DeserializeSeed<'de> for ConversationsSeed<'c, F, E>
where
    F: FnMut(usize, Value) -> Result<(), E>,
{
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, 'c, F, E> Visitor<'de> for ConversationsSeed<'c, F, E>
where
    F: FnMut(usize, Value) -> Result<(), E>,
{
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of conversations")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut count = 0;
        while let Some(conversation) = seq.next_element::<Value>()? {
            if let Err(error) = (self.callback.borrow_mut())(count, conversation) {
                *self.failure.borrow_mut() = Some(error);
                return Err(de::Error::custom("stopped by the reader"));
            }
            count += 1;
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_conversations_and_keeps_other_keys_in_order() {
        let text = br#"{"b": 1, "conversations": [{"x": 1}, {"x": 2}], "a": [true]}"#;
        let mut seen = Vec::new();
        let top = read_slice::<()>(text, |i, c| {
            seen.push((i, c["x"].clone()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(top.keys, ["b", "conversations", "a"]);
        assert_eq!(top.fields.keys().collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(top.conversations, Some(2));
    }

    #[test]
    fn reports_an_array_at_the_top_with_its_position() {
        let error = read_slice::<()>(b"[1, 2]", |_, _| Ok(())).unwrap_err();
        match error {
            ReadError::Syntax { message, line, column } => {
                assert!(message.contains("expected a JSON object at the top level"), "{message}");
                assert_eq!((line, column), (1, 1));
            }
            ReadError::Callback(()) => panic!("no callback error expected"),
        }
    }

    #[test]
    fn a_syntax_error_after_conversations_were_handed_over_is_reported_where_serde_json_finds_it() {
        let text = b"{\"conversations\": [{\"x\": 1},\n {\"x\": 2} {\"x\": 3}]}";
        let mut seen = Vec::new();
        let error = read_slice::<()>(text, |i, _| {
            seen.push(i);
            Ok(())
        })
        .unwrap_err();
        assert_eq!(seen, [0, 1]);
        match error {
            ReadError::Syntax { line, column, .. } => assert_eq!((line, column), (2, 11)),
            ReadError::Callback(()) => panic!("no callback error expected"),
        }
    }

    #[test]
    fn a_callback_error_stops_reading() {
        let text = br#"{"conversations": [1, 2, 3]}"#;
        let error = read_slice(text, |i, _| if i == 1 { Err("stop") } else { Ok(()) }).unwrap_err();
        assert!(matches!(error, ReadError::Callback("stop")));
    }
}
