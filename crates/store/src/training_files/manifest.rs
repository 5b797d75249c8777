//! The layout of a version: for each format, a rendered head, a body of
//! pieces (byte ranges of stored segments, or literal bytes), and a tail.
//!
//! Segments store each conversation's JSON fragment framed by the separator
//! that precedes it in a file (`,\n`), so the fragments of one change form
//! one contiguous range and a version's body is a handful of ranges; the
//! JSON body skips its first byte (the first fragment is preceded by `\n`
//! alone). Removing a conversation splits the range that holds it; nothing
//! stored is rewritten. Fragments stored before segments existed are one
//! object each, unframed: they appear as a literal `,\n` and a range.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// One part of a body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Piece {
    /// `length` bytes of object `key` from `offset`.
    Range {
        #[serde(rename = "k")]
        key: String,
        #[serde(rename = "o")]
        offset: u64,
        #[serde(rename = "n")]
        length: u64,
    },
    /// Bytes held in the manifest itself.
    Literal {
        #[serde(rename = "b")]
        bytes: String,
    },
}

impl Piece {
    pub fn len(&self) -> u64 {
        match self {
            Self::Range { length, .. } => *length,
            Self::Literal { bytes } => bytes.len() as u64,
        }
    }
}

/// Where one member's bytes of one format are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    pub key: String,
    pub offset: u64,
    pub length: u64,
    /// Whether the stored bytes begin with the separator (segments) or not
    /// (one object per fragment, before segments).
    pub framed: bool,
}

impl Location {
    /// The pieces this location adds to a JSON body (which is made of framed fragments).
    fn json_pieces(&self) -> Vec<Piece> {
        let range = Piece::Range { key: self.key.clone(), offset: self.offset, length: self.length };
        if self.framed { vec![range] } else { vec![Piece::Literal { bytes: ",\n".into() }, range] }
    }
}

/// One format of one version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Layout {
    pub head: String,
    pub body: Vec<Piece>,
    /// Bytes of the body left out at its start (the JSON's first `,`).
    pub skip: u64,
    pub tail: String,
}

/// Both formats of one version, as the catalogue keeps it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub json: Layout,
    pub jsonl: Layout,
}

/// A piece of a download: literal bytes, or a range of an object to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Bytes(bytes::Bytes),
    Read { key: String, range: Range<u64> },
}

impl Manifest {
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a manifest serialises")
    }

    pub fn from_text(text: &str) -> Result<Self, StoreError> {
        serde_json::from_str(text).map_err(|e| StoreError::Internal(format!("a version's manifest is not readable: {e}")))
    }

    /// A version written before manifests: one object per format.
    pub fn whole_objects(json: (&str, u64), jsonl: (&str, u64)) -> Self {
        let whole = |(key, length): (&str, u64)| Layout { body: vec![Piece::Range { key: key.to_owned(), offset: 0, length }], ..Layout::default() };
        Self { json: whole(json), jsonl: whole(jsonl) }
    }

    /// Appends one member's bytes of both formats.
    pub fn push_member(&mut self, json: &Location, jsonl: &Location) {
        for piece in json.json_pieces() {
            self.json.push(piece);
        }
        self.jsonl.push(Piece::Range { key: jsonl.key.clone(), offset: jsonl.offset, length: jsonl.length });
    }

    /// Leaves one member's bytes out of both formats.
    pub fn remove_member(&mut self, json: &Location, jsonl: &Location) -> Result<(), StoreError> {
        self.json.replace(json, Vec::new())?;
        self.jsonl.replace(jsonl, Vec::new())
    }

    /// Puts one member's bytes at a new place in both formats (a re-render).
    pub fn move_member(&mut self, (old_json, new_json): (&Location, &Location), (old_jsonl, new_jsonl): (&Location, &Location)) -> Result<(), StoreError> {
        self.json.replace(old_json, new_json.json_pieces())?;
        let jsonl = Piece::Range { key: new_jsonl.key.clone(), offset: new_jsonl.offset, length: new_jsonl.length };
        self.jsonl.replace(old_jsonl, vec![jsonl])
    }
}

impl Layout {
    /// Bytes of this format of the version.
    pub fn len(&self) -> u64 {
        self.head.len() as u64 + self.body_len() + self.tail.len() as u64
    }

    fn body_len(&self) -> u64 {
        self.body.iter().map(Piece::len).sum::<u64>() - self.skip
    }

    /// Appends a piece, merging it into the last one when it continues it.
    pub fn push(&mut self, piece: Piece) {
        match (self.body.last_mut(), piece) {
            (Some(Piece::Range { key, offset, length }), Piece::Range { key: next_key, offset: next_offset, length: next_length })
                if *key == next_key && *offset + *length == next_offset =>
            {
                *length += next_length;
            }
            (Some(Piece::Literal { bytes }), Piece::Literal { bytes: next }) => bytes.push_str(&next),
            (_, piece) => self.body.push(piece),
        }
    }

    /// Replaces the bytes at `location` with `pieces`: the range holding
    /// them is split around them (and for an unframed fragment the literal
    /// separator before it goes too).
    fn replace(&mut self, location: &Location, pieces: Vec<Piece>) -> Result<(), StoreError> {
        let (start, end) = (location.offset, location.offset + location.length);
        let index = self
            .body
            .iter()
            .position(|piece| matches!(piece, Piece::Range { key, offset, length } if *key == location.key && *offset <= start && end <= offset + length))
            .ok_or_else(|| StoreError::Internal(format!("bytes {start}..{end} of {} are not in this version", location.key)))?;
        let rest = self.body.split_off(index + 1);
        let Some(Piece::Range { key, offset, length }) = self.body.pop() else { unreachable!("found a range") };
        if !location.framed && offset == start && self.body.last() == Some(&Piece::Literal { bytes: ",\n".into() }) {
            self.body.pop();
        }
        let before = (offset < start).then(|| Piece::Range { key: key.clone(), offset, length: start - offset });
        let after = (end < offset + length).then(|| Piece::Range { key, offset: end, length: offset + length - end });
        for piece in before.into_iter().chain(pieces).chain(after).chain(rest) {
            self.push(piece);
        }
        Ok(())
    }

    /// What to send for bytes `range` of this format: literal parts and
    /// object ranges, in order (an empty range gives nothing).
    pub fn parts(&self, range: Range<u64>) -> Vec<Part> {
        let mut parts = Vec::new();
        let mut position = 0u64;
        let mut take = |bytes: u64, part: &dyn Fn(Range<u64>) -> Part, parts: &mut Vec<Part>| {
            let (from, to) = (range.start.max(position), range.end.min(position + bytes));
            if from < to {
                parts.push(part(from - position..to - position));
            }
            position += bytes;
        };
        let literal = |text: &str| {
            let bytes = bytes::Bytes::copy_from_slice(text.as_bytes());
            move |r: Range<u64>| Part::Bytes(bytes.slice(r.start as usize..r.end as usize))
        };
        take(self.head.len() as u64, &literal(&self.head), &mut parts);
        let mut skip = self.skip;
        for piece in &self.body {
            let cut = skip.min(piece.len());
            skip -= cut;
            match piece {
                Piece::Range { key, offset, length } => {
                    let start = offset + cut;
                    take(length - cut, &|r: Range<u64>| Part::Read { key: key.clone(), range: start + r.start..start + r.end }, &mut parts);
                }
                Piece::Literal { bytes } => take(bytes.len() as u64 - cut, &literal(&bytes[cut as usize..]), &mut parts),
            }
        }
        take(self.tail.len() as u64, &literal(&self.tail), &mut parts);
        parts
    }

    /// How many pieces of the body are ranges of objects (reads a download makes).
    pub fn ranges(&self) -> usize {
        self.body.iter().filter(|p| matches!(p, Piece::Range { .. })).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(key: &str, offset: u64, length: u64) -> Location {
        Location { key: key.into(), offset, length, framed: true }
    }

    /// The bytes a layout stands for, objects given as strings.
    fn render(layout: &Layout, objects: &[(&str, &str)], range: Range<u64>) -> String {
        layout
            .parts(range)
            .into_iter()
            .map(|part| match part {
                Part::Bytes(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
                Part::Read { key, range } => {
                    let text = objects.iter().find(|(k, _)| *k == key).unwrap().1;
                    text[range.start as usize..range.end as usize].to_owned()
                }
            })
            .collect()
    }

    #[test]
    fn fragments_of_one_segment_form_one_range_and_removal_splits_it() {
        let segment = ",\nA,\nBB,\nCCC";
        let mut manifest = Manifest::default();
        manifest.json = Layout { head: "[".into(), skip: 1, tail: "]".into(), body: Vec::new() };
        for (offset, length) in [(0, 3), (3, 4), (7, 5)] {
            manifest.push_member(&at("s", offset, length), &at("l", offset, length));
        }
        assert_eq!(manifest.json.body.len(), 1);
        let objects = [("s", segment), ("l", segment)];
        assert_eq!(render(&manifest.json, &objects, 0..manifest.json.len()), "[\nA,\nBB,\nCCC]");
        manifest.remove_member(&at("s", 3, 4), &at("l", 3, 4)).unwrap();
        assert_eq!(manifest.json.body.len(), 2);
        assert_eq!(render(&manifest.json, &objects, 0..manifest.json.len()), "[\nA,\nCCC]");
        manifest.remove_member(&at("s", 0, 3), &at("l", 0, 3)).unwrap();
        assert_eq!(render(&manifest.json, &objects, 0..manifest.json.len()), "[\nCCC]", "the new first fragment loses its comma");
        assert!(manifest.remove_member(&at("s", 0, 3), &at("l", 0, 3)).is_err(), "already gone");
    }

    #[test]
    fn unframed_fragments_bring_their_separator_and_take_it_away() {
        let mut manifest = Manifest::default();
        manifest.json.skip = 1;
        let old = |key: &str, length| Location { key: key.into(), offset: 0, length, framed: false };
        manifest.push_member(&old("a", 1), &old("la", 1));
        manifest.push_member(&old("b", 2), &old("lb", 2));
        let objects = [("a", "A"), ("b", "BB")];
        assert_eq!(render(&manifest.json, &objects, 0..manifest.json.len()), "\nA,\nBB");
        manifest.remove_member(&old("a", 1), &old("la", 1)).unwrap();
        assert_eq!(render(&manifest.json, &objects, 0..manifest.json.len()), "\nBB");
    }

    #[test]
    fn any_byte_range_reads_the_right_bytes() {
        let segment = ",\nA,\nBB,\nCCC";
        let mut layout = Layout { head: "HEAD".into(), skip: 1, tail: "TAIL".into(), body: Vec::new() };
        layout.push(Piece::Range { key: "s".into(), offset: 0, length: 7 });
        layout.push(Piece::Literal { bytes: ",\nX".into() });
        layout.push(Piece::Range { key: "s".into(), offset: 7, length: 5 });
        let whole = "HEAD\nA,\nBB,\nX,\nCCCTAIL";
        assert_eq!(layout.len(), whole.len() as u64);
        let objects = [("s", segment)];
        for start in 0..=whole.len() {
            for end in start..=whole.len() {
                assert_eq!(render(&layout, &objects, start as u64..end as u64), &whole[start..end], "{start}..{end}");
            }
        }
    }

    #[test]
    fn a_moved_member_reads_from_its_new_place() {
        let mut manifest = Manifest::default();
        manifest.json.skip = 1;
        manifest.push_member(&at("s", 0, 3), &at("l", 0, 3));
        manifest.push_member(&at("s", 3, 4), &at("l", 3, 4));
        manifest.move_member((&at("s", 3, 4), &at("t", 0, 4)), (&at("l", 3, 4), &at("u", 0, 4))).unwrap();
        let objects = [("s", ",\nA,\nBB"), ("t", ",\nbb")];
        assert_eq!(render(&manifest.json, &objects, 0..manifest.json.len()), "\nA,\nbb");
        assert_eq!(manifest.jsonl.body, vec![Piece::Range { key: "l".into(), offset: 0, length: 3 }, Piece::Range { key: "u".into(), offset: 0, length: 4 }]);
    }

    #[test]
    fn manifests_round_trip_through_text() {
        let mut manifest = Manifest::default();
        manifest.json.head = "{\"é\": [".into();
        manifest.push_member(&Location { key: "a".into(), offset: 0, length: 1, framed: false }, &at("l", 0, 1));
        assert_eq!(Manifest::from_text(&manifest.to_text()).unwrap(), manifest);
    }
}
