//! Byte-exact JSON output: 2-space indentation like `JSON.stringify(x, null, 2)`
//! at any nesting depth, compact lines for JSONL, raw UTF-8 (no `\u` escapes).
//!
//! Two writers give the same bytes: serde's serializer with [`IndentFormatter`]
//! for anything `Serialize`, and [`Json::push`] for `Value`s on the hot path
//! (every pair of every build), which skips over text eight bytes at a time
//! where serde_json looks at each byte.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};
use serde_json::{Map, Value};

/// Writes `value` pretty-printed as if it sat `depth` levels deep in a larger
/// document, so fragments can be concatenated into one file without re-parsing.
pub fn write_pretty_at<W: Write, T: Serialize + ?Sized>(writer: W, value: &T, depth: usize) -> io::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(writer, IndentFormatter::at_depth(depth));
    value.serialize(&mut serializer).map_err(io::Error::from)
}

/// `value` pretty-printed at the top level (a whole file).
pub fn to_pretty_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    write_pretty_at(&mut out, value, 0).expect("writing to a Vec cannot fail");
    out
}

/// `value` on one line, as in a JSONL file.
pub fn write_compact<W: Write, T: Serialize + ?Sized>(writer: W, value: &T) -> io::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(writer, CompactFormatter);
    value.serialize(&mut serializer).map_err(io::Error::from)
}

/// Writes the indentation of `depth` levels.
pub fn write_indent<W: Write + ?Sized>(writer: &mut W, depth: usize) -> io::Result<()> {
    for _ in 0..depth {
        writer.write_all(b"  ")?;
    }
    Ok(())
}

/// serde_json's `PrettyFormatter`, but starting at a given depth.
struct IndentFormatter {
    depth: usize,
    has_value: bool,
}

impl IndentFormatter {
    fn at_depth(depth: usize) -> Self {
        Self { depth, has_value: false }
    }
}

impl IndentFormatter {
    fn open<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        writer.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            writer.write_all(b"\n")?;
            write_indent(writer, self.depth)?;
        }
        writer.write_all(bracket)
    }

    fn item<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        writer.write_all(if first { b"\n" } else { b",\n" })?;
        write_indent(writer, self.depth)
    }
}

impl Formatter for IndentFormatter {
    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        self.item(writer, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        self.item(writer, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// Where a value goes: on one line, or pretty-printed `depth` levels deep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Compact,
    Pretty(usize),
}

impl Layout {
    fn nested(self) -> Self {
        match self {
            Self::Compact => Self::Compact,
            Self::Pretty(depth) => Self::Pretty(depth + 1),
        }
    }

    /// Before an item of a container laid out by `self.nested()`.
    fn item(self, out: &mut Vec<u8>, first: bool) {
        if !first {
            out.push(b',');
        }
        if let Self::Pretty(depth) = self {
            out.push(b'\n');
            push_indent(out, depth);
        }
    }

    /// Before the closing bracket of a container laid out by `self`.
    fn close(self, out: &mut Vec<u8>, empty: bool) {
        if let (Self::Pretty(depth), false) = (self, empty) {
            out.push(b'\n');
            push_indent(out, depth);
        }
    }

    fn colon(self) -> &'static [u8] {
        match self {
            Self::Compact => b":",
            Self::Pretty(_) => b": ",
        }
    }
}

fn push_indent(out: &mut Vec<u8>, depth: usize) {
    out.resize(out.len() + 2 * depth, b' ');
}

/// Anything the fast writer writes.
pub trait Json {
    fn push(&self, out: &mut Vec<u8>, layout: Layout);
}

impl Json for Value {
    fn push(&self, out: &mut Vec<u8>, layout: Layout) {
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            // Numbers are rare and short: serde_json formats them, so they match to the byte.
            Value::Number(number) => serde_json::to_writer(&mut *out, number).expect("writing to a Vec cannot fail"),
            Value::String(text) => push_str(out, text),
            Value::Array(items) => items.push(out, layout),
            Value::Object(map) => map.push(out, layout),
        }
    }
}

impl Json for Vec<Value> {
    fn push(&self, out: &mut Vec<u8>, layout: Layout) {
        out.push(b'[');
        for (i, item) in self.iter().enumerate() {
            layout.nested().item(out, i == 0);
            item.push(out, layout.nested());
        }
        layout.close(out, self.is_empty());
        out.push(b']');
    }
}

impl Json for Map<String, Value> {
    fn push(&self, out: &mut Vec<u8>, layout: Layout) {
        out.push(b'{');
        for (i, (key, value)) in self.iter().enumerate() {
            push_entry(out, layout, i == 0, key, value);
        }
        layout.close(out, self.is_empty());
        out.push(b'}');
    }
}

/// An object of the given entries, in order.
pub fn push_object(out: &mut Vec<u8>, layout: Layout, entries: &[(&str, &dyn Json)]) {
    out.push(b'{');
    for (i, (key, value)) in entries.iter().enumerate() {
        push_entry(out, layout, i == 0, key, *value);
    }
    layout.close(out, entries.is_empty());
    out.push(b'}');
}

fn push_entry(out: &mut Vec<u8>, layout: Layout, first: bool, key: &str, value: &(impl Json + ?Sized)) {
    layout.nested().item(out, first);
    push_str(out, key);
    out.extend_from_slice(layout.colon());
    value.push(out, layout.nested());
}

impl Json for &str {
    fn push(&self, out: &mut Vec<u8>, _layout: Layout) {
        push_str(out, self);
    }
}

impl Json for String {
    fn push(&self, out: &mut Vec<u8>, _layout: Layout) {
        push_str(out, self);
    }
}

/// A string escaped exactly as serde_json escapes it: `"` and `\\`, the
/// five short control escapes, `\u00xx` for the other control bytes.
fn push_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            if !may_need_escape(u64::from_le_bytes(chunk.try_into().expect("eight bytes"))) {
                i += 8;
                continue;
            }
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let byte = bytes[i];
        let control;
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => {
                control = [b'\\', b'u', b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]];
                &control
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether any of the eight bytes of `word` is `"`, `\\` or below 0x20.
/// (Never false when one is; a rare true without one only costs a slower look.)
fn may_need_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    let zero = |x: u64| below(x, 1);
    (below(word, 0x20) | zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\')))) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pretty_output_matches_javascript_stringify() {
        let value = json!({"a": [1, {"b": "→ é"}], "c": {}, "d": [], "e": 2.5});
        let text = String::from_utf8(to_pretty_vec(&value)).unwrap();
        assert_eq!(
            text,
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": \"→ é\"\n    }\n  ],\n  \"c\": {},\n  \"d\": [],\n  \"e\": 2.5\n}"
        );
    }

    #[test]
    fn nested_output_continues_the_outer_indentation() {
        let mut out = Vec::new();
        write_pretty_at(&mut out, &json!({"k": [1]}), 2).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\n      \"k\": [\n        1\n      ]\n    }");
    }

    fn fast(value: &Value, layout: Layout) -> Vec<u8> {
        let mut out = Vec::new();
        value.push(&mut out, layout);
        out
    }

    fn serde(value: &Value, layout: Layout) -> Vec<u8> {
        let mut out = Vec::new();
        match layout {
            Layout::Compact => write_compact(&mut out, value).unwrap(),
            Layout::Pretty(depth) => write_pretty_at(&mut out, value, depth).unwrap(),
        }
        out
    }

    #[test]
    fn the_fast_writer_writes_what_serde_writes() {
        let every_byte: String = (0u8..=0x7f).map(char::from).chain("é → 😀".chars()).collect();
        let value = json!({
            "text": every_byte,
            "quote at eight": "1234567\"",
            "nested": [[], {}, [1, -2, 2.5, 1e300, 0.1], {"k": null, "t": true, "f": false}],
            "": "",
            "key \n with escapes \u{1}": {"a": {"b": ["x\\y"]}}
        });
        for layout in [Layout::Compact, Layout::Pretty(0), Layout::Pretty(3)] {
            assert_eq!(String::from_utf8(fast(&value, layout)).unwrap(), String::from_utf8(serde(&value, layout)).unwrap(), "{layout:?}");
        }
    }

    #[test]
    fn every_escape_position_in_a_word_is_found() {
        for special in ['"', '\\', '\n', '\u{1f}', '\u{0}'] {
            for at in 0..17 {
                let text: String = (0..17).map(|i| if i == at { special } else { 'a' }).collect();
                let value = Value::String(text);
                assert_eq!(fast(&value, Layout::Compact), serde(&value, Layout::Compact), "{special:?} at {at}");
            }
        }
    }
}
