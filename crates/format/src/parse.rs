//! A fast path for reading a document into a [`Value`]: text is skipped
//! sixteen bytes at a time to the next quote, backslash or control byte
//! (the scan the writer uses to escape), where serde_json looks at eight
//! and then builds each value through serde's visitors.
//!
//! It takes well-formed JSON only and answers `None` for anything else —
//! and for anything unusual: a lone surrogate, nesting deeper than
//! serde_json allows. The caller then reads the text with serde_json, which
//! is the reference: it gives the same value where this one gives up, and
//! explains what is wrong with bad input. Numbers other than plain integers
//! are always serde_json's to read. Tests hold the two to the same values.
//!
//! [`skim`] reads a document keeping of each training pair only what a
//! shape names, for a build's first pass.

use crate::json::{clean_prefix_len, leading_spaces, plain_prefix_len};
use crate::value::{has_duplicate_keys, Map, Number, Value};

/// The deepest nesting serde_json reads (its limit counts 128 levels down
/// to zero): deeper documents are its to refuse.
const MAX_DEPTH: usize = 127;

/// `text` as a value, or `None` (see the module documentation). An object
/// at the top that holds `stop_at_key` is given up as soon as the key is
/// read, so a caller can stream what such documents hold instead; so is one
/// that repeats a key (a caller may want to hear of each).
pub fn parse(text: &str, stop_at_key: Option<&str>) -> Option<Value> {
    let mut parser = Parser::new(text, stop_at_key);
    let value = parser.value()?;
    parser.skip_whitespace();
    (parser.at == parser.bytes.len()).then_some(value)
}

/// A reader for callers that walk a document's top level themselves (a
/// full file's `conversations`, streamed): each step answers `None` where
/// [`parse`] would give up, and the caller then reads the text with serde_json.
pub(crate) struct Cursor<'t>(Parser<'t>);

impl<'t> Cursor<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        Cursor(Parser::new(text, None))
    }

    /// The next byte after white space, consumed.
    pub(crate) fn next(&mut self) -> Option<u8> {
        self.0.next()
    }

    /// Whether the next byte after white space is `byte`; it is consumed if so.
    pub(crate) fn eat(&mut self, byte: u8) -> bool {
        self.0.skip_whitespace();
        let found = self.0.bytes.get(self.0.at) == Some(&byte);
        self.0.at += usize::from(found);
        found
    }

    /// After an opening quote: the text, through the closing quote.
    pub(crate) fn string(&mut self) -> Option<String> {
        self.0.string()
    }

    /// The next value, inside `depth` containers (serde_json's nesting
    /// limit counts the whole document).
    pub(crate) fn value_at_depth(&mut self, depth: usize) -> Option<Value> {
        self.0.depth = depth;
        self.0.value()
    }

    /// Whether only white space is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.0.skip_whitespace();
        self.0.at == self.0.bytes.len()
    }
}

/// What a skim keeps of an object: these keys, each as [`Keep`] says;
/// other keys are left out.
pub type Shape<'s> = &'s [(&'s str, Keep<'s>)];

/// How much of a value a skim keeps.
#[derive(Clone, Copy, Debug)]
pub enum Keep<'s> {
    /// All of it.
    All,
    /// Of an object, what the shape says (anything else: all of it).
    Only(Shape<'s>),
    /// Its kind: text, arrays and objects are skipped and read as empty
    /// (`""`, `[]`, `{}`); numbers, booleans and nulls are read.
    Kind,
}

/// `text` as [`parse`] reads it, except that each pair — an element of a
/// `training_pairs` array, at the top or in an entry of `conversations` —
/// keeps only what `pair_shape` names: what a pair holds besides its texts,
/// without copying the texts. What it skips it checks only for its end: a
/// reader of skimmed documents reads them in full before trusting them.
pub fn skim(text: &str, pair_shape: Shape) -> Option<Value> {
    let mut parser = Parser::new(text, None);
    let value = parser.skimmed(Place::Document, pair_shape)?;
    parser.skip_whitespace();
    (parser.at == parser.bytes.len()).then_some(value)
}

/// Where a skimmed value sits.
#[derive(Clone, Copy)]
enum Place<'s> {
    /// A document or an entry of `conversations`: their `training_pairs` are skimmed.
    Document,
    /// A `conversations` array.
    Entries,
    /// A `training_pairs` array.
    Pairs,
    /// An object that keeps what this shape says.
    Only(Shape<'s>),
}

struct Parser<'t> {
    text: &'t str,
    bytes: &'t [u8],
    at: usize,
    depth: usize,
    stop_at_key: Option<&'t str>,
    /// How many entries the last container read at each depth held: its
    /// neighbours are usually alike (pairs, messages), so a new one starts
    /// with that room instead of growing into it.
    last_len: [usize; SIZE_HINT_DEPTHS],
}

/// Depths that keep a size hint; deeper containers share the last one.
const SIZE_HINT_DEPTHS: usize = 8;

impl<'t> Parser<'t> {
    fn new(text: &'t str, stop_at_key: Option<&'t str>) -> Self {
        Parser { text, bytes: text.as_bytes(), at: 0, depth: 0, stop_at_key, last_len: [0; SIZE_HINT_DEPTHS] }
    }

    /// Room for a new container at this depth (see `last_len`).
    fn size_hint(&self) -> usize {
        self.last_len[self.depth.min(SIZE_HINT_DEPTHS - 1)]
    }

    /// `items` as the last container read at this depth.
    fn sized<T>(&mut self, items: Vec<T>) -> Vec<T> {
        self.last_len[self.depth.min(SIZE_HINT_DEPTHS - 1)] = items.len();
        items
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
            // Indentation, up to sixteen spaces at a time.
            if self.bytes.get(self.at) == Some(&b' ') {
                self.at += leading_spaces(&self.bytes[self.at..]);
            }
        }
    }

    /// The next byte after white space, consumed.
    fn next(&mut self) -> Option<u8> {
        self.skip_whitespace();
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn value(&mut self) -> Option<Value> {
        match self.next()? {
            b'{' => self.nested(Self::object),
            b'[' => self.nested(Self::array),
            b'"' => self.string().map(Value::String),
            b't' => self.literal(b"rue", Value::Bool(true)),
            b'f' => self.literal(b"alse", Value::Bool(false)),
            b'n' => self.literal(b"ull", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// `container` read one level deeper, within serde_json's nesting limit.
    fn nested(&mut self, container: impl FnOnce(&mut Self) -> Option<Value>) -> Option<Value> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let value = container(self);
        self.depth -= 1;
        value
    }

    fn literal(&mut self, rest: &[u8], value: Value) -> Option<Value> {
        let end = self.at + rest.len();
        (self.bytes.get(self.at..end)? == rest).then(|| {
            self.at = end;
            value
        })
    }

    /// After `{`.
    fn object(&mut self) -> Option<Value> {
        self.entries_until_brace(|parser, _| parser.value().map(Some))
    }

    /// After `{`: the entries of an object, each value read by `read`
    /// (`Some(None)`: leave the entry out).
    fn entries_until_brace(&mut self, mut read: impl FnMut(&mut Self, &str) -> Option<Option<Value>>) -> Option<Value> {
        match self.next()? {
            b'}' => return Some(Value::Object(Map::new())),
            b'"' => {}
            _ => return None,
        }
        let mut entries = Vec::with_capacity(self.size_hint());
        loop {
            let key = self.string()?;
            if self.depth == 1 && self.stop_at_key == Some(key.as_str()) {
                return None;
            }
            if self.next()? != b':' {
                return None;
            }
            if let Some(value) = read(self, &key)? {
                entries.push((key, value));
            }
            match self.next()? {
                b',' if self.next()? == b'"' => {}
                b'}' if self.depth == 1 && has_duplicate_keys(&entries) => return None,
                b'}' => return Some(Value::Object(Map::from_parsed(self.sized(entries)))),
                _ => return None,
            }
        }
    }

    /// After `[`.
    fn array(&mut self) -> Option<Value> {
        self.items_until_bracket(Self::value)
    }

    /// After `[`: the items of an array, each read by `read`.
    fn items_until_bracket(&mut self, mut read: impl FnMut(&mut Self) -> Option<Value>) -> Option<Value> {
        self.skip_whitespace();
        if self.bytes.get(self.at) == Some(&b']') {
            self.at += 1;
            return Some(Value::Array(Vec::new()));
        }
        let mut items = Vec::with_capacity(self.size_hint());
        loop {
            items.push(read(self)?);
            match self.next()? {
                b',' => {}
                b']' => return Some(Value::Array(self.sized(items))),
                _ => return None,
            }
        }
    }

    /// A value at `place` in a skimmed document (see [`skim`]); what is not
    /// the container the place expects is read whole.
    fn skimmed(&mut self, place: Place<'_>, pair_shape: Shape<'_>) -> Option<Value> {
        let opening = match place {
            Place::Document | Place::Only(_) => b'{',
            Place::Entries | Place::Pairs => b'[',
        };
        self.skip_whitespace();
        if self.bytes.get(self.at) != Some(&opening) {
            return self.value();
        }
        self.at += 1;
        self.nested(|parser| match place {
            Place::Document | Place::Only(_) => parser.skimmed_object(place, pair_shape),
            Place::Entries => parser.items_until_bracket(|parser| parser.skimmed(Place::Document, pair_shape)),
            Place::Pairs => parser.items_until_bracket(|parser| parser.skimmed(Place::Only(pair_shape), pair_shape)),
        })
    }

    /// After `{`, in a skimmed document: a document's `training_pairs` (and
    /// its `conversations`) skimmed, of a pair what its shape names.
    fn skimmed_object(&mut self, place: Place<'_>, pair_shape: Shape<'_>) -> Option<Value> {
        self.entries_until_brace(|parser, key| {
            let keep = match place {
                Place::Only(shape) => shape.iter().find(|(k, _)| *k == key).map(|(_, keep)| *keep),
                _ => Some(Keep::All),
            };
            Some(match (keep, key) {
                (None, _) => parser.skip_value().map(|()| None)?,
                (Some(Keep::Kind), _) => Some(parser.empty_of_its_kind()?),
                (Some(Keep::Only(shape)), _) => Some(parser.skimmed(Place::Only(shape), pair_shape)?),
                (Some(Keep::All), "training_pairs") if matches!(place, Place::Document) => Some(parser.skimmed(Place::Pairs, pair_shape)?),
                (Some(Keep::All), "conversations") if matches!(place, Place::Document) && parser.depth == 1 => {
                    Some(parser.skimmed(Place::Entries, pair_shape)?)
                }
                (Some(Keep::All), _) => Some(parser.value()?),
            })
        })
    }

    /// A value read as [`Keep::Kind`] says.
    fn empty_of_its_kind(&mut self) -> Option<Value> {
        match self.next()? {
            b'"' => self.skip_string().map(|()| Value::String(String::new())),
            b'{' => self.skip_container().map(|()| Value::Object(Map::new())),
            b'[' => self.skip_container().map(|()| Value::Array(Vec::new())),
            _ => {
                self.at -= 1;
                self.value()
            }
        }
    }

    /// A value skipped: text, arrays and objects checked only for their end.
    fn skip_value(&mut self) -> Option<()> {
        self.empty_of_its_kind().map(drop)
    }

    /// After the opening quote; through the closing one.
    fn skip_string(&mut self) -> Option<()> {
        loop {
            self.at += clean_prefix_len(self.bytes.get(self.at..)?);
            match *self.bytes.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => self.at += 2,
                _ => return None,
            }
        }
    }

    /// After an opening bracket; through the matching closing one, counting
    /// brackets outside strings and passing over everything else sixteen
    /// bytes at a time.
    fn skip_container(&mut self) -> Option<()> {
        let mut depth = 1usize;
        while depth > 0 {
            self.at += plain_prefix_len(self.bytes.get(self.at..)?);
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            match byte {
                b'"' => self.skip_string()?,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth -= 1,
                _ => {}
            }
        }
        Some(())
    }

    /// After the opening quote; through the closing one.
    fn string(&mut self) -> Option<String> {
        let mut start = self.at;
        let mut owned = String::new();
        loop {
            self.at += clean_prefix_len(self.bytes.get(self.at..)?);
            match *self.bytes.get(self.at)? {
                b'"' => {
                    // Byte positions next to ASCII are always character boundaries.
                    let tail = &self.text[start..self.at];
                    self.at += 1;
                    return Some(if owned.is_empty() {
                        tail.to_owned()
                    } else {
                        owned.push_str(tail);
                        owned
                    });
                }
                b'\\' => {
                    owned.push_str(&self.text[start..self.at]);
                    self.at += 1;
                    self.escape(&mut owned)?;
                    start = self.at;
                }
                _ => return None, // a control byte: not allowed in JSON text
            }
        }
    }

    /// After a backslash.
    fn escape(&mut self, out: &mut String) -> Option<()> {
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        out.push(match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                match unit {
                    0xd800..=0xdbff => {
                        // A pair: `\uD83D\uDE00`; a lone half is serde_json's to judge.
                        if self.bytes.get(self.at..self.at + 2)? != b"\\u" {
                            return None;
                        }
                        self.at += 2;
                        let low = self.hex4()?;
                        if !(0xdc00..=0xdfff).contains(&low) {
                            return None;
                        }
                        char::from_u32(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00))?
                    }
                    _ => char::from_u32(unit)?,
                }
            }
            _ => return None,
        });
        Some(())
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.at..self.at + 4)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.at += 4;
        u32::from_str_radix(digits, 16).ok()
    }

    /// After the first character of a number. Non-negative integers are
    /// read here; anything else is handed to serde_json, so fractions and
    /// exponents round exactly as it rounds them.
    fn number(&mut self) -> Option<Value> {
        let start = self.at - 1;
        let len = self.bytes[start..].iter().position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'));
        let text = &self.text[start..start + len.unwrap_or(self.bytes.len() - start)];
        self.at = start + text.len();
        let plain = text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
        let number = match text.parse::<u64>() {
            Ok(n) if plain => Number::from(n),
            _ => serde_json::from_str::<Number>(text).ok()?,
        };
        Some(Value::Number(number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_json reads, or `None` where it refuses.
    fn reference(text: &str) -> Option<Value> {
        serde_json::from_str(text).ok()
    }

    /// The fast path either agrees with serde_json or gives up.
    fn agrees(text: &str) -> bool {
        match parse(text, None) {
            Some(value) => reference(text).is_some_and(|reference| {
                let (ours, theirs) = (value.to_string(), reference.to_string());
                ours == theirs && reference == value
            }),
            None => true,
        }
    }

    #[test]
    fn reads_the_bundled_conversations_as_serde_json_does() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/enriched");
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let value = parse(&text, None).expect("a well-formed file is read");
            assert_eq!(value.to_string(), reference(&text).unwrap().to_string());
        }
    }

    #[test]
    fn text_with_every_escape_reads_as_serde_json_reads_it() {
        for text in [
            r#""plain""#,
            r#""""#,
            r#""a\"b\\c\/d\b\f\n\r\t e""#,
            r#""\u0000\u001f\u00e9\u20AC\uD83D\uDE00 end""#,
            "\"é → 😀 raw\"",
            r#"{"k\n":"v","":[]}"#,
        ] {
            assert!(parse(text, None).is_some(), "{text}");
            assert!(agrees(text), "{text}");
        }
        for escape_at in 0..40 {
            let text = format!("\"{}\\n{}\"", "x".repeat(escape_at), "é".repeat(9));
            assert_eq!(parse(&text, None), reference(&text), "{text}");
        }
    }

    #[test]
    fn numbers_read_as_serde_json_reads_them() {
        for (text, read) in [
            ("0", true),
            ("42", true),
            ("-7", true),
            ("18446744073709551615", true),
            ("-9223372036854775808", true),
            ("18446744073709551616", true),
            ("2.5", true),
            ("0.1", true),
            ("4.56", true),
            ("1e3", true),
            ("-1.5E-7", true),
            ("-0", true),
            ("1e400", false),
            ("01", false),
            ("-", false),
            ("1-2", false),
            ("1.", false),
            ("[1,2.5,-3]", true),
        ] {
            assert_eq!(parse(text, None).is_some(), read, "{text}");
            assert!(agrees(text), "{text}");
        }
    }

    #[test]
    fn gives_up_on_everything_serde_json_refuses() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        for text in [
            "", " ", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{1:2}", "[1 2]", "tru", "nul", "\"open", "\"bad \\x escape\"",
            "\"tab\tinside\"", "\"\\uD800\"", "\"\\uDC00\"", "\"\\u12\"", "{} {}", "[]x", &deep,
        ] {
            assert_eq!(parse(text, None), None, "{text:?}");
        }
        let deepest_allowed = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(agrees(&deepest_allowed) && parse(&deepest_allowed, None).is_some());
    }

    #[test]
    fn white_space_anywhere_and_repeated_keys_as_serde_json() {
        for text in [" {\r\n\t\"a\" : [ 1 , { } , [ ] , null , true , false ] , \"b\" : \"x\" } \n", r#"[{"a":1,"b":2,"a":3}]"#] {
            assert!(parse(text, None).is_some(), "{text}");
            assert!(agrees(text), "{text}");
        }
    }

    #[test]
    fn skimming_keeps_of_pairs_only_what_the_shape_names() {
        let shape: Shape = &[("turn", Keep::All), ("target", Keep::Kind), ("meta", Keep::Only(&[("key", Keep::All)])), ("context", Keep::Kind)];
        let pair = r#"{"text": "a \" [quoted] {text}", "history": [{"content": "x"}, [1, "]"]], "turn": 2, "target": "long",
            "meta": {"key": "k", "name": "left out"}, "context": {"a": ["}"]}}"#;
        let kept = r#"{"turn":2,"target":"","meta":{"key":"k"},"context":{}}"#;
        let document = format!(r#"{{"system_prompt": "kept", "training_pairs": [{pair}, {{"target": null}}, 5]}}"#);
        let expected = format!(r#"{{"system_prompt":"kept","training_pairs":[{kept},{{"target":null}},5]}}"#);
        assert_eq!(skim(&document, shape).unwrap().to_string(), expected);
        // A full file: the pairs of each entry of `conversations`.
        let full = format!(r#"{{"conversations": [{{"conversation_metadata": {{"a": "kept"}}, "training_pairs": [{pair}]}}]}}"#);
        let expected = format!(r#"{{"conversations":[{{"conversation_metadata":{{"a":"kept"}},"training_pairs":[{kept}]}}]}}"#);
        assert_eq!(skim(&full, shape).unwrap().to_string(), expected);
        assert_eq!(skim(r#"{"training_pairs": [{"history": "open"#, shape), None);
        assert_eq!(skim(r#"{"training_pairs": [{"history": [1, 2}]}"#, shape), None);
    }

    #[test]
    fn stops_at_the_key_it_is_told_to_leave_to_a_stream() {
        assert_eq!(parse(r#"{"a":1,"conversations":[]}"#, Some("conversations")), None);
        assert!(parse(r#"{"a":{"conversations":[]}}"#, Some("conversations")).is_some());
        assert_eq!(parse(r#"{"a":1,"a":2}"#, None), None);
        assert!(parse(r#"{"a":{"b":1,"b":2}}"#, None).is_some());
    }
}
