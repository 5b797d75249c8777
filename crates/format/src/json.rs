//! Byte-exact JSON output: 2-space indentation like `JSON.stringify(x, null, 2)`
//! at any nesting depth, compact lines for JSONL, raw UTF-8 (no `\u` escapes).
//!
//! Two writers give the same bytes: serde's serializer with `IndentFormatter`
//! for anything `Serialize`, and [`Json::push`] for `Value`s on the hot path
//! (every pair of every build), which skips over text sixteen bytes at a
//! time where serde_json looks at each byte, and [`push_both`] writes a
//! value in both layouts in one walk, escaping each text once.

use std::io::{self, Write};
use std::ops::Range;

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};

use crate::value::{Map, Value};

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
fn write_indent<W: Write + ?Sized>(writer: &mut W, depth: usize) -> io::Result<()> {
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

/// The indentation of `depth` levels (two spaces a level) into a buffer.
pub fn push_indent(out: &mut Vec<u8>, depth: usize) {
    out.resize(out.len() + 2 * depth, b' ');
}

/// Anything the fast writer writes.
pub trait Json {
    fn push(&self, out: &mut Vec<u8>, layout: Layout);
}

impl Json for Value {
    fn push(&self, out: &mut Vec<u8>, layout: Layout) {
        push_value(self, out, layout, &mut Repeats::default());
    }
}

impl Json for Vec<Value> {
    fn push(&self, out: &mut Vec<u8>, layout: Layout) {
        let repeats = &mut Repeats::default();
        push_array(out, layout, self, |item, out, layout| push_value(item, out, layout, repeats));
    }
}

impl Json for Map<String, Value> {
    fn push(&self, out: &mut Vec<u8>, layout: Layout) {
        push_map(self, out, layout, &mut Repeats::default());
    }
}

/// Texts already escaped into one output buffer, so that a repeat is
/// copied instead of escaped again: a conversation's history repeats every
/// earlier message, and every pair its system prompt and metadata.
#[derive(Default)]
pub struct Repeats<'v> {
    seen: Vec<(&'v str, Range<usize>)>,
}

impl<'v> Repeats<'v> {
    /// Shorter texts are escaped each time: looking them up would cost as much.
    const MIN_LEN: usize = 64;

    /// `text` escaped into `out`, which must be the buffer every earlier text was pushed to.
    fn push(&mut self, out: &mut Vec<u8>, text: &'v str) {
        if text.len() < Self::MIN_LEN {
            return push_str(out, text);
        }
        match self.seen.iter().find(|(seen, _)| seen.len() == text.len() && *seen == text) {
            Some((_, written)) => out.extend_from_within(written.clone()),
            None => {
                let start = out.len();
                push_str(out, text);
                self.seen.push((text, start..out.len()));
            }
        }
    }
}

/// [`Json::push`] of a value, with the texts of one output buffer.
pub fn push_value<'v>(value: &'v Value, out: &mut Vec<u8>, layout: Layout, repeats: &mut Repeats<'v>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // Numbers are rare and short: serde_json formats them, so they match to the byte.
        Value::Number(number) => serde_json::to_writer(&mut *out, number).expect("writing to a Vec cannot fail"),
        Value::String(text) => repeats.push(out, text),
        Value::Array(items) => push_array(out, layout, items, |item, out, layout| push_value(item, out, layout, repeats)),
        Value::Object(map) => push_map(map, out, layout, repeats),
    }
}

fn push_map<'v>(map: &'v Map<String, Value>, out: &mut Vec<u8>, layout: Layout, repeats: &mut Repeats<'v>) {
    let entries = map.iter().map(|(key, value)| (key.as_str(), value));
    push_entries(out, layout, entries, |value, out, layout| push_value(value, out, layout, repeats));
}

/// An array of `items`, each written by `push_item` at the layout given.
pub fn push_array<'a, T>(out: &mut Vec<u8>, layout: Layout, items: &'a [T], mut push_item: impl FnMut(&'a T, &mut Vec<u8>, Layout)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        layout.nested().item(out, i == 0);
        push_item(item, out, layout.nested());
    }
    layout.close(out, items.is_empty());
    out.push(b']');
}

/// Anything written by a function: a value [`push_object`] writes in place.
pub struct Writer<F>(pub F);

impl<F: Fn(&mut Vec<u8>, Layout)> Json for Writer<F> {
    fn push(&self, out: &mut Vec<u8>, layout: Layout) {
        (self.0)(out, layout)
    }
}

/// Writes `value` twice in one walk: laid out by `layout` into `out`, and on
/// one line into `compact`. Text is escaped once, for `out`, and the escaped
/// bytes copied to `compact` (a build writes each pair to the full JSON and
/// to the JSONL: escaping is most of what rendering costs).
pub fn push_both<'v>(value: &'v Value, out: &mut Vec<u8>, layout: Layout, compact: &mut Vec<u8>, repeats: &mut Repeats<'v>) {
    match value {
        Value::Array(items) => {
            out.push(b'[');
            compact.push(b'[');
            for (i, item) in items.iter().enumerate() {
                layout.nested().item(out, i == 0);
                Layout::Compact.item(compact, i == 0);
                push_both(item, out, layout.nested(), compact, repeats);
            }
            layout.close(out, items.is_empty());
            out.push(b']');
            compact.push(b']');
        }
        Value::Object(map) => push_object_both(map, out, layout, compact, &[], |_| true, repeats),
        scalar => {
            let start = out.len();
            push_value(scalar, out, layout, repeats);
            compact.extend_from_slice(&out[start..]);
        }
    }
}

/// `map` laid out by `layout` into `out` and, in the same walk, on one line
/// into `compact`: there the `leading` entries first, then the entries of
/// `map` that `keep` selects, in `map`'s order.
pub fn push_object_both<'v>(
    map: &'v Map<String, Value>,
    out: &mut Vec<u8>,
    layout: Layout,
    compact: &mut Vec<u8>,
    leading: &[(&str, &dyn Json)],
    keep: impl Fn(&str) -> bool,
    repeats: &mut Repeats<'v>,
) {
    out.push(b'{');
    compact.push(b'{');
    for (i, (key, value)) in leading.iter().enumerate() {
        push_key(compact, Layout::Compact, i == 0, key);
        value.push(compact, Layout::Compact);
    }
    let mut compact_first = leading.is_empty();
    for (i, (key, value)) in map.iter().enumerate() {
        layout.nested().item(out, i == 0);
        let start = out.len();
        push_str(out, key);
        let escaped_key = start..out.len();
        out.extend_from_slice(layout.colon());
        if !keep(key) {
            push_value(value, out, layout.nested(), repeats);
            continue;
        }
        Layout::Compact.item(compact, compact_first);
        compact_first = false;
        compact.extend_from_slice(&out[escaped_key]);
        compact.push(b':');
        push_both(value, out, layout.nested(), compact, repeats);
    }
    layout.close(out, map.is_empty());
    out.push(b'}');
    compact.push(b'}');
}

/// An object of the given entries, in order.
pub fn push_object(out: &mut Vec<u8>, layout: Layout, entries: &[(&str, &dyn Json)]) {
    push_entries(out, layout, entries.iter().copied(), |value, out, layout| value.push(out, layout));
}

/// An object of `entries`, in order, each value written by `push_value` at
/// the layout given (as [`push_array`] writes items).
fn push_entries<'a, V>(out: &mut Vec<u8>, layout: Layout, entries: impl Iterator<Item = (&'a str, V)>, mut push_value: impl FnMut(V, &mut Vec<u8>, Layout)) {
    out.push(b'{');
    let mut empty = true;
    for (key, value) in entries {
        push_key(out, layout, empty, key);
        push_value(value, out, layout.nested());
        empty = false;
    }
    layout.close(out, empty);
    out.push(b'}');
}

/// What comes before an entry's value: the separator, the key and the colon.
fn push_key(out: &mut Vec<u8>, layout: Layout, first: bool, key: &str) {
    layout.nested().item(out, first);
    push_str(out, key);
    out.extend_from_slice(layout.colon());
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
    out.reserve(text.len() + 2);
    out.push(b'"');
    let mut rest = text.as_bytes();
    loop {
        let clean = clean_prefix_len(rest);
        out.extend_from_slice(&rest[..clean]);
        let Some(&byte) = rest.get(clean) else { break };
        push_escape(out, byte);
        rest = &rest[clean + 1..];
    }
    out.push(b'"');
}

fn push_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]]),
    }
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// How many leading bytes need no escaping: where a JSON string's text
/// runs up to its closing quote or next escape, when reading.
pub(crate) fn clean_prefix_len(bytes: &[u8]) -> usize {
    let clean = clean_chunks_len(bytes);
    clean + bytes[clean..].iter().position(|&b| needs_escape(b)).unwrap_or(bytes.len() - clean)
}

/// [`clean_prefix_len`] sixteen bytes at a time with SSE2 (part of every
/// x86_64 CPU): exact when it finds a byte to escape, else where the tail
/// shorter than sixteen bytes begins.
#[cfg(target_arch = "x86_64")]
fn clean_chunks_len(bytes: &[u8]) -> usize {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_max_epu8, _mm_or_si128, _mm_set1_epi8};
    // SAFETY: SSE2 is in the x86_64 baseline.
    first_hit_chunks(bytes, |chunk| unsafe {
        let quote = _mm_cmpeq_epi8(chunk, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(chunk, _mm_set1_epi8(b'\\' as i8));
        // Unsigned `byte < 0x20` is `max(byte, 0x1f) == 0x1f`.
        let control = _mm_cmpeq_epi8(_mm_max_epu8(chunk, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
        _mm_or_si128(_mm_or_si128(quote, backslash), control)
    })
}

/// How many leading bytes hold none of `"{}[]`: what a reader skipping a
/// container passes over between strings and brackets (white space, commas,
/// numbers, words).
pub(crate) fn plain_prefix_len(bytes: &[u8]) -> usize {
    let plain = plain_chunks_len(bytes);
    plain + bytes[plain..].iter().position(|b| matches!(b, b'"' | b'{' | b'}' | b'[' | b']')).unwrap_or(bytes.len() - plain)
}

/// [`plain_prefix_len`] sixteen bytes at a time, as [`clean_chunks_len`].
#[cfg(target_arch = "x86_64")]
fn plain_chunks_len(bytes: &[u8]) -> usize {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_or_si128, _mm_set1_epi8};
    // SAFETY: SSE2 is in the x86_64 baseline.
    first_hit_chunks(bytes, |chunk| unsafe {
        let quote = _mm_cmpeq_epi8(chunk, _mm_set1_epi8(b'"' as i8));
        // `[` and `]` are `{` and `}` but for the 0x20 bit.
        let folded = _mm_or_si128(chunk, _mm_set1_epi8(0x20));
        let open = _mm_cmpeq_epi8(folded, _mm_set1_epi8(b'{' as i8));
        let close = _mm_cmpeq_epi8(folded, _mm_set1_epi8(b'}' as i8));
        _mm_or_si128(quote, _mm_or_si128(open, close))
    })
}

/// The offset of the first byte `hits` marks (0xff in its lane) in chunks
/// of sixteen; else where the tail shorter than sixteen bytes begins.
#[cfg(target_arch = "x86_64")]
fn first_hit_chunks(bytes: &[u8], hits: impl Fn(std::arch::x86_64::__m128i) -> std::arch::x86_64::__m128i) -> usize {
    use std::arch::x86_64::{_mm_loadu_si128, _mm_movemask_epi8};
    let mut clean = 0;
    while let Some(chunk) = bytes.get(clean..clean + 16) {
        // SAFETY: `chunk` is 16 readable bytes (an unaligned load is
        // allowed), and SSE2 is in the x86_64 baseline.
        let mask = unsafe { _mm_movemask_epi8(hits(_mm_loadu_si128(chunk.as_ptr().cast()))) };
        if mask != 0 {
            return clean + mask.trailing_zeros() as usize;
        }
        clean += 16;
    }
    clean
}

#[cfg(not(target_arch = "x86_64"))]
fn plain_chunks_len(_bytes: &[u8]) -> usize {
    0
}

/// How many of the first sixteen bytes (or fewer, at the end) are spaces:
/// indentation, in one step.
pub(crate) fn leading_spaces(bytes: &[u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if let Some(chunk) = bytes.get(..16) {
        use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
        // SAFETY: `chunk` is 16 readable bytes (an unaligned load is
        // allowed), and SSE2 is in the x86_64 baseline.
        let spaces = unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(chunk.as_ptr().cast()), _mm_set1_epi8(b' ' as i8))) };
        return (!spaces).trailing_zeros().min(16) as usize;
    }
    bytes.iter().take_while(|&&b| b == b' ').count()
}

#[cfg(not(target_arch = "x86_64"))]
fn clean_chunks_len(_bytes: &[u8]) -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

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
    fn writing_both_layouts_at_once_gives_each_layout_alone() {
        let value = json!({"a": [1, {"b": "→ \"é\"\n"}, [], {}], "c": null, "d": [true, "x"], "e": -2.5});
        for depth in [0, 3] {
            let (mut pretty, mut compact) = (b"prefix".to_vec(), Vec::new());
            push_both(&value, &mut pretty, Layout::Pretty(depth), &mut compact, &mut Repeats::default());
            assert_eq!(pretty[6..], serde(&value, Layout::Pretty(depth))[..]);
            assert_eq!(compact, serde(&value, Layout::Compact));
        }
    }

    #[test]
    fn repeated_long_texts_are_copied_to_the_same_bytes() {
        let long = "a \"quoted\" line\nand é → more ".repeat(4);
        let same_length_other = long.replace('a', "b");
        assert!(long.len() >= Repeats::MIN_LEN && long.len() == same_length_other.len());
        let value = json!({"x": long, "y": [{"z": long}, same_length_other, long], "short": "s", "again": "s"});
        for layout in [Layout::Compact, Layout::Pretty(0), Layout::Pretty(2)] {
            assert_eq!(String::from_utf8(fast(&value, layout)).unwrap(), String::from_utf8(serde(&value, layout)).unwrap(), "{layout:?}");
        }
        let (mut pretty, mut compact) = (Vec::new(), Vec::new());
        push_both(&value, &mut pretty, Layout::Pretty(1), &mut compact, &mut Repeats::default());
        assert_eq!(pretty, serde(&value, Layout::Pretty(1)));
        assert_eq!(compact, serde(&value, Layout::Compact));
    }

    #[test]
    fn leading_spaces_are_counted_up_to_sixteen_at_a_time() {
        for spaces in 0..40 {
            for tail in ["", "x", "\n  y", &"z".repeat(20)] {
                let text = " ".repeat(spaces) + tail;
                assert_eq!(leading_spaces(text.as_bytes()), spaces.min(16), "{spaces} then {tail:?}");
            }
        }
    }

    #[test]
    fn every_escape_position_in_a_chunk_is_found() {
        for special in ['"', '\\', '\n', '\u{1f}', '\u{0}'] {
            for at in 0..40 {
                // `special` at byte `at`, then multi-byte text.
                let text: String = "a".repeat(at) + &special.to_string() + &"é".repeat(20);
                let value = Value::String(text);
                assert_eq!(fast(&value, Layout::Compact), serde(&value, Layout::Compact), "{special:?} at {at}");
            }
        }
    }
}
