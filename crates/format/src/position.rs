//! Line/column positions in JSON text, found after the fact.
//! Parsing stays fast (serde_json into values); only when there is something
//! to report do we walk the text again, once for all findings, to find where
//! their paths start, or which path a broken document was in when it broke.

use std::collections::HashMap;

use crate::json::{leading_spaces, plain_prefix_len};
use crate::path::{JsonPath, Segment};

/// A 1-based line and column; the column counts characters, not bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    pub const START: Position = Position { line: 1, column: 1 };

    /// The position of byte `offset` in `text` (clamped to its end).
    pub fn of_offset(text: &[u8], offset: usize) -> Position {
        Self::of_offsets(text, &[offset])[0]
    }

    /// The positions of many byte offsets, in one pass over `text` however
    /// many there are (a file with thousands of findings stays linear).
    pub fn of_offsets(text: &[u8], offsets: &[usize]) -> Vec<Position> {
        let mut order: Vec<usize> = (0..offsets.len()).collect();
        order.sort_unstable_by_key(|&i| offsets[i]);
        let mut positions = vec![Position::START; offsets.len()];
        let (mut at, mut current) = (0, Position::START);
        for i in order {
            let offset = offsets[i].min(text.len());
            let between = &text[at..offset];
            note_scanned(between.len());
            match memchr::memrchr(b'\n', between) {
                Some(last) => {
                    current.line += memchr::memchr_iter(b'\n', between).count();
                    current.column = 1 + characters(&between[last + 1..]);
                }
                None => current.column += characters(between),
            }
            at = offset;
            positions[i] = current;
        }
        positions
    }

    /// The byte offset of a serde_json error position (its column counts bytes).
    pub fn offset_of_serde(text: &[u8], line: usize, column: usize) -> usize {
        let mut offset = 0;
        for _ in 1..line {
            match text[offset..].iter().position(|&b| b == b'\n') {
                Some(i) => offset += i + 1,
                None => return text.len(),
            }
        }
        (offset + column.saturating_sub(1)).min(text.len())
    }
}

/// Characters in UTF-8 `bytes`: every byte but continuation bytes starts one.
fn characters(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b & 0xC0 != 0x80).count()
}

/// Where the value at `path` starts, or where its nearest existing ancestor
/// starts when the path itself is missing (a missing key is reported on its object).
pub fn locate(text: &[u8], path: &JsonPath) -> Position {
    locate_all(text, &[path])[0]
}

/// [`locate`] for many paths at once: one walk of `text` finds where each
/// starts (only the objects and arrays on the way to a path are entered; the
/// rest is skipped without decoding), then one pass turns offsets into positions.
pub fn locate_all(text: &[u8], paths: &[&JsonPath]) -> Vec<Position> {
    let mut walker = Walker::new(text, Finder::new(paths));
    let _ = walker.value();
    let wanted = &walker.visitor.wanted;
    let offsets: Vec<usize> = paths
        .iter()
        .map(|path| {
            let segments = path.segments();
            (0..=segments.len())
                .rev()
                .find_map(|depth| wanted.get(&segments[..depth]).and_then(|node| node.offset))
                .unwrap_or(0)
        })
        .collect();
    Position::of_offsets(text, &offsets)
}

/// The path being read when the walk reaches `offset` (the place of a syntax
/// error): for `{"a": [1, {"b": tru` it is `a[1].b`.
pub fn path_at(text: &[u8], offset: usize) -> JsonPath {
    let mut walker = Walker::new(&text[..offset.min(text.len())], EnterAll);
    let _ = walker.value();
    let mut path = JsonPath::root();
    for segment in walker.path {
        path.push(segment);
    }
    path
}

/// What a [`Walker`] walks for: told where each value starts, it says
/// whether to enter it (an object or array not entered is skipped whole).
trait Visit {
    fn value(&mut self, path: &[Segment], at: usize) -> Result<bool, Stop>;
}

/// Enters everything: the walk goes on until the text ends or breaks.
struct EnterAll;

impl Visit for EnterAll {
    fn value(&mut self, _path: &[Segment], _at: usize) -> Result<bool, Stop> {
        Ok(true)
    }
}

/// A path [`Finder`] looks for, or one on the way to such a path.
#[derive(Default)]
struct Node {
    offset: Option<usize>,
    /// Some wanted path goes deeper: the finder enters this value.
    has_children: bool,
}

/// Enters only values on the way to wanted paths, noting where each wanted
/// path (and each ancestor) first starts; stops once all are found.
struct Finder<'p> {
    wanted: HashMap<&'p [Segment], Node>,
    /// Nodes not found yet: at 0 the walk stops.
    missing: usize,
}

impl<'p> Finder<'p> {
    fn new(paths: &[&'p JsonPath]) -> Self {
        let mut wanted: HashMap<&'p [Segment], Node> = HashMap::new();
        for path in paths {
            let segments = path.segments();
            for depth in 0..=segments.len() {
                wanted.entry(&segments[..depth]).or_default().has_children |= depth < segments.len();
            }
        }
        let missing = wanted.len();
        Self { wanted, missing }
    }
}

impl Visit for Finder<'_> {
    fn value(&mut self, path: &[Segment], at: usize) -> Result<bool, Stop> {
        let Some(node) = self.wanted.get_mut(path) else { return Ok(false) };
        if node.offset.is_none() {
            node.offset = Some(at);
            self.missing -= 1;
            if self.missing == 0 {
                return Err(Stop::Found);
            }
        }
        Ok(node.has_children)
    }
}

enum Stop {
    /// Everything wanted is found.
    Found,
    /// End of text or text that is not JSON: the walker's path says where.
    Broken,
}

/// A forgiving JSON walker that only tracks where it is; it never builds
/// values. Both the placing of findings and [`path_at`] walk with it.
struct Walker<'t, V> {
    text: &'t [u8],
    pos: usize,
    path: Vec<Segment>,
    visitor: V,
}

impl<'t, V: Visit> Walker<'t, V> {
    fn new(text: &'t [u8], visitor: V) -> Self {
        Self { text, pos: 0, path: Vec::new(), visitor }
    }

    fn skip_ws(&mut self) {
        let start = self.pos;
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.text.get(self.pos) {
            self.pos += 1;
            // Indentation (texts are mostly pretty-printed), sixteen spaces at a time.
            if self.text.get(self.pos) == Some(&b' ') {
                self.pos += leading_spaces(&self.text[self.pos..]);
            }
        }
        note_scanned(self.pos - start);
    }

    fn peek(&self) -> Result<u8, Stop> {
        self.text.get(self.pos).copied().ok_or(Stop::Broken)
    }

    fn value(&mut self) -> Result<(), Stop> {
        self.skip_ws();
        let enter = self.visitor.value(&self.path, self.pos)?;
        match self.peek()? {
            b'{' if enter => self.object(),
            b'[' if enter => self.array(),
            _ => self.skip_value(),
        }
    }

    fn object(&mut self) -> Result<(), Stop> {
        self.pos += 1;
        self.skip_ws();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            if self.peek()? != b'"' {
                return Err(Stop::Broken);
            }
            let key = self.key()?;
            self.path.push(Segment::Key(key.into()));
            self.skip_ws();
            if self.peek()? != b':' {
                return Err(Stop::Broken);
            }
            self.pos += 1;
            self.value()?;
            self.path.pop();
            self.skip_ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Stop::Broken),
            }
        }
    }

    fn array(&mut self) -> Result<(), Stop> {
        self.pos += 1;
        self.skip_ws();
        if self.peek()? == b']' {
            self.pos += 1;
            return Ok(());
        }
        let mut index = 0;
        loop {
            self.path.push(Segment::Index(index));
            self.value()?;
            self.path.pop();
            self.skip_ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Stop::Broken),
            }
            index += 1;
        }
    }

    /// An object key, unescaped (as serde_json reads it; the text between
    /// the quotes as it stands where serde_json cannot).
    fn key(&mut self) -> Result<String, Stop> {
        let start = self.pos;
        self.skip_string()?;
        let raw = &self.text[start..self.pos];
        let inner = &raw[1..raw.len() - 1];
        match std::str::from_utf8(inner) {
            // serde_json reads such a key as it stands, or refuses a control
            // character in it, which leaves it as it stands too.
            Ok(plain) if !plain.contains('\\') => Ok(plain.to_owned()),
            _ => Ok(serde_json::from_slice::<String>(raw).unwrap_or_else(|_| String::from_utf8_lossy(inner).into_owned())),
        }
    }

    /// Past a string, from its opening quote, without decoding it.
    fn skip_string(&mut self) -> Result<(), Stop> {
        let start = self.pos;
        let mut i = self.pos + 1;
        let result = loop {
            match memchr::memchr2(b'"', b'\\', &self.text[i.min(self.text.len())..]) {
                Some(found) if self.text[i + found] == b'\\' => i += found + 2,
                Some(found) => {
                    self.pos = i + found + 1;
                    break Ok(());
                }
                None => {
                    self.pos = self.text.len();
                    break Err(Stop::Broken);
                }
            }
        };
        note_scanned(self.pos - start);
        result
    }

    /// Past a value not entered: strings by their quotes, objects and arrays by their brackets.
    fn skip_value(&mut self) -> Result<(), Stop> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    // Up to the next quote or bracket, sixteen bytes at a time.
                    let plain = plain_prefix_len(&self.text[self.pos..]);
                    self.pos += plain;
                    note_scanned(plain);
                    match self.peek()? {
                        b'"' => {
                            self.skip_string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.pos += 1;
                                note_scanned(1);
                                return Ok(());
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                    note_scanned(1);
                }
            }
            _ => {
                let start = self.pos;
                while self.pos < self.text.len() && !matches!(self.text[self.pos], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    self.pos += 1;
                }
                note_scanned(self.pos - start);
                if self.pos == start || self.pos == self.text.len() {
                    return Err(Stop::Broken);
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Bytes the position scanners have looked at on this thread (tests check it stays linear).
    static SCANNED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
fn note_scanned(bytes: usize) {
    SCANNED.with(|scanned| scanned.set(scanned.get() + bytes));
}

#[cfg(not(test))]
#[inline(always)]
fn note_scanned(_bytes: usize) {}

#[cfg(test)]
pub(crate) fn scanned_bytes() -> usize {
    SCANNED.with(std::cell::Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "{\n  \"a\": [\n    1,\n    {\"b\": \"x\\\"y\", \"c\": null}\n  ]\n}";

    #[test]
    fn locates_nested_values_and_falls_back_to_the_parent() {
        let c = JsonPath::root().key("a").index(1).key("c");
        assert_eq!(
            locate(DOC.as_bytes(), &c),
            Position {
                line: 4,
                column: 24
            }
        );
        let missing = JsonPath::root().key("a").index(1).key("zzz");
        assert_eq!(
            locate(DOC.as_bytes(), &missing),
            Position { line: 4, column: 5 }
        );
    }

    #[test]
    fn path_at_names_the_value_being_read_when_text_breaks() {
        let truncated = &DOC.as_bytes()[..DOC.find("null").unwrap() + 2];
        assert_eq!(path_at(truncated, truncated.len()).to_string(), "a[1].c");
    }

    #[test]
    fn columns_count_characters() {
        let text = "{\"é→\": 1}".as_bytes();
        let offset = text.iter().position(|&b| b == b'1').unwrap();
        assert_eq!(
            Position::of_offset(text, offset),
            Position { line: 1, column: 8 }
        );
    }
}
