//! Byte-exact JSON output: 2-space indentation like `JSON.stringify(x, null, 2)`
//! at any nesting depth, compact lines for JSONL, raw UTF-8 (no `\u` escapes).

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};

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
}
