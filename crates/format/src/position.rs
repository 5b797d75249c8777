//! Line/column positions in JSON text, found after the fact.
//! Parsing stays fast (serde_json into values); only when there is something
//! to report do we walk the text again to find where a path starts, or which
//! path a broken document was in when it broke.

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
        let offset = offset.min(text.len());
        let before = &text[..offset];
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let column = 1 + String::from_utf8_lossy(&before[line_start..]).chars().count();
        Position { line, column }
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

/// Where the value at `path` starts, or where its nearest existing ancestor
/// starts when the path itself is missing (a missing key is reported on its object).
pub fn locate(text: &[u8], path: &JsonPath) -> Position {
    let mut target = path.clone();
    loop {
        let mut scanner = Scanner::new(text, Goal::Find(&target));
        if let Err(Stop::Found(offset)) = scanner.document() {
            return Position::of_offset(text, offset);
        }
        match target.parent() {
            Some(parent) => target = parent,
            None => return Position::START,
        }
    }
}

/// The path being read when the scanner reaches `offset` (the place of a syntax
/// error): for `{"a": [1, {"b": tru` it is `a[1].b`.
pub fn path_at(text: &[u8], offset: usize) -> JsonPath {
    let mut scanner = Scanner::new(&text[..offset.min(text.len())], Goal::Walk);
    let _ = scanner.document();
    scanner.path
}

enum Goal<'p> {
    Find(&'p JsonPath),
    Walk,
}

enum Stop {
    Found(usize),
    /// End of text or text that is not JSON: the scanner's path says where.
    Broken,
}

/// A forgiving JSON walker that only tracks where it is; it never builds values.
struct Scanner<'t, 'p> {
    text: &'t [u8],
    pos: usize,
    path: JsonPath,
    goal: Goal<'p>,
}

impl<'t, 'p> Scanner<'t, 'p> {
    fn new(text: &'t [u8], goal: Goal<'p>) -> Self {
        Self { text, pos: 0, path: JsonPath::root(), goal }
    }

    fn document(&mut self) -> Result<(), Stop> {
        self.value()
    }

    fn skip_ws(&mut self) {
        while self.pos < self.text.len() && matches!(self.text[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Result<u8, Stop> {
        self.text.get(self.pos).copied().ok_or(Stop::Broken)
    }

    fn value(&mut self) -> Result<(), Stop> {
        self.skip_ws();
        if let Goal::Find(target) = self.goal {
            if &self.path == target {
                return Err(Stop::Found(self.pos));
            }
        }
        match self.peek()? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string().map(drop),
            _ => self.scalar(),
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
            let key = self.string()?;
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

    /// Reads a string and returns its (unescaped where simple) text.
    fn string(&mut self) -> Result<String, Stop> {
        let start = self.pos + 1;
        let mut i = start;
        while i < self.text.len() {
            match self.text[i] {
                b'\\' => i += 2,
                b'"' => {
                    self.pos = i + 1;
                    let raw = &self.text[start..i];
                    let decoded = serde_json::from_slice::<String>(&self.text[start - 1..=i]);
                    return Ok(decoded.unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned()));
                }
                _ => i += 1,
            }
        }
        self.pos = self.text.len();
        Err(Stop::Broken)
    }

    fn scalar(&mut self) -> Result<(), Stop> {
        let start = self.pos;
        while self.pos < self.text.len()
            && !matches!(self.text[self.pos], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
        {
            self.pos += 1;
        }
        if self.pos == start || self.pos == self.text.len() {
            return Err(Stop::Broken);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "{\n  \"a\": [\n    1,\n    {\"b\": \"x\\\"y\", \"c\": null}\n  ]\n}";

    #[test]
    fn locates_nested_values_and_falls_back_to_the_parent() {
        let c = JsonPath::root().key("a").index(1).key("c");
        assert_eq!(locate(DOC.as_bytes(), &c), Position { line: 4, column: 24 });
        let missing = JsonPath::root().key("a").index(1).key("zzz");
        assert_eq!(locate(DOC.as_bytes(), &missing), Position { line: 4, column: 5 });
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
        assert_eq!(Position::of_offset(text, offset), Position { line: 1, column: 8 });
    }
}
