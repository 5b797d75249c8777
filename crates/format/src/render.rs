//! Rendering a training file: each conversation becomes a *fragment* (its
//! bytes in the full JSON and its JSONL lines) once; a file is a header, the
//! fragments in order and a footer, so adding to a file never re-renders what
//! it already holds.

use std::cell::RefCell;
use std::io::{self, Write};

use chrono::{DateTime, Utc};

use crate::json::{push_array, push_indent, push_object, push_object_both, push_value, write_compact, write_pretty_at, Json, Layout, Repeats, Writer};
use crate::model::{has_target, Conversation};
use crate::quality::{js_number, round2, ConversationFigures, QualityTier, Totals};
use crate::validate::{FORMAT_SPEC, PAIR_KEYS};
use crate::value::{Map, Value};

/// The full-file `version` lora-files writes.
pub const FILE_VERSION: &str = "4.0.0";

/// One conversation rendered for a training file.
#[derive(Clone, Debug, PartialEq)]
pub struct Fragment {
    pub conversation_id: String,
    /// The conversation's entry in `conversations`, indented for its place (no separator).
    pub json: Vec<u8>,
    /// Its JSONL lines, each ending in `\n`.
    pub jsonl: Vec<u8>,
    pub figures: ConversationFigures,
}

/// The suffix that makes JSONL ids unique in a file: the first 8 characters of
/// the conversation id, or all of it when another conversation of the file
/// already uses those 8 (`taken` says whether one does).
pub fn line_id_suffix(conversation_id: &str, taken: impl FnOnce(&str) -> bool) -> String {
    let short: String = conversation_id.chars().take(8).collect();
    if taken(&short) { conversation_id.to_owned() } else { short }
}

/// Renders `conversation`; `line_suffix` comes from [`line_id_suffix`].
pub fn render_conversation_fragment(conversation: &Conversation, line_suffix: &str) -> Fragment {
    let figures = conversation.figures();
    let mut metadata = Map::new();
    metadata.insert("conversation_id".into(), conversation.conversation_id.clone().into());
    metadata.insert("source_file".into(), format!("fp_conversation_{}.json", conversation.conversation_id).into());
    metadata.insert("created_date".into(), conversation.created_date.clone().into());
    metadata.insert("total_turns".into(), figures.turns.into());
    metadata.insert("quality_tier".into(), QualityTier::of_score(figures.quality_score).as_str().into());
    metadata.insert("quality_score".into(), figures.quality_score.map(|s| js_number(round2(s))).into());
    metadata.insert("scaffolding".into(), conversation.scaffolding.to_value());

    // Each pair goes to the full JSON and, with a target, to the JSONL, in one walk.
    let lines = RefCell::new(Vec::with_capacity(32 * 1024));
    let pairs = Writer(|out: &mut Vec<u8>, layout: Layout| {
        let (lines, repeats) = (&mut *lines.borrow_mut(), &mut Repeats::default());
        push_array(out, layout, &conversation.training_pairs, |pair, out, layout| {
            push_pair(pair, out, layout, lines, repeats, &conversation.conversation_id, line_suffix)
        });
    });
    let mut json = Vec::with_capacity(64 * 1024);
    push_indent(&mut json, 2);
    let entry: [(&str, &dyn Json); 2] = [("conversation_metadata", &metadata), ("training_pairs", &pairs)];
    push_object(&mut json, Layout::Pretty(2), &entry);
    Fragment { conversation_id: conversation.conversation_id.clone(), json, jsonl: lines.into_inner(), figures }
}

/// A pair into the full JSON at `layout` and, when it has a target, its line
/// into `lines`: the pair's 10 keys in the spec's order, `id` suffixed and
/// `conversation_id` the conversation's real id (spec §3.3). When the pair's
/// keys already come in that order (enrichment writes them so), both are
/// written in one walk, escaping each text once; a text the conversation's
/// earlier pairs already hold is copied (`repeats`).
fn push_pair<'v>(
    pair: &'v Value,
    out: &mut Vec<u8>,
    layout: Layout,
    lines: &mut Vec<u8>,
    repeats: &mut Repeats<'v>,
    conversation_id: &str,
    suffix: &str,
) {
    let line_key = |key: &str| PAIR_KEYS[2..].contains(&key);
    match pair.as_object() {
        Some(map) if has_target(pair) && map.keys().filter_map(|key| PAIR_KEYS[2..].iter().position(|k| k == key)).is_sorted() => {
            let id = line_id(pair, suffix);
            push_object_both(map, out, layout, lines, &[("id", &id), ("conversation_id", &conversation_id)], line_key, repeats);
            lines.push(b'\n');
        }
        _ => {
            push_value(pair, out, layout, repeats);
            if has_target(pair) {
                push_jsonl_line(lines, pair, conversation_id, suffix);
            }
        }
    }
}

fn line_id(pair: &Value, suffix: &str) -> String {
    format!("{}_{suffix}", pair.get("id").and_then(Value::as_str).unwrap_or_default())
}

/// A pair's JSONL line on its own (see [`push_pair`]).
fn push_jsonl_line(out: &mut Vec<u8>, pair: &Value, conversation_id: &str, suffix: &str) {
    let id = line_id(pair, suffix);
    let mut entries: Vec<(&str, &dyn Json)> = vec![("id", &id), ("conversation_id", &conversation_id)];
    entries.extend(PAIR_KEYS[2..].iter().filter_map(|key| pair.get(key).map(|value| (*key, value as &dyn Json))));
    push_object(out, Layout::Compact, &entries);
    out.push(b'\n');
}

/// What a training file states about itself besides its totals.
#[derive(Clone, Debug)]
pub struct FileHeader {
    pub file_name: String,
    pub description: Option<String>,
    pub created: DateTime<Utc>,
    pub last_updated: DateTime<Utc>,
    pub target_model: Option<String>,
    pub vertical: String,
    pub consultant_profile: Value,
}

/// ISO 8601 with milliseconds and `Z`, as the original writes.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The `training_file_metadata` block.
pub fn file_metadata(header: &FileHeader, totals: &Totals) -> Value {
    let mut map = Map::new();
    map.insert("file_name".into(), header.file_name.clone().into());
    if let Some(description) = &header.description {
        map.insert("description".into(), description.clone().into());
    }
    map.insert("version".into(), FILE_VERSION.into());
    map.insert("created_date".into(), timestamp(header.created).into());
    map.insert("last_updated".into(), timestamp(header.last_updated).into());
    map.insert("format_spec".into(), FORMAT_SPEC.into());
    if let Some(model) = &header.target_model {
        map.insert("target_model".into(), model.clone().into());
    }
    map.insert("vertical".into(), header.vertical.clone().into());
    map.insert("total_conversations".into(), totals.conversations.into());
    map.insert("total_training_pairs".into(), totals.training_pairs.into());
    map.insert("total_turns".into(), totals.turns.into());
    map.insert("quality_summary".into(), crate::json!(totals.quality()));
    map.insert("scaffolding_distribution".into(), totals.distribution.to_value());
    Value::Object(map)
}

/// Everything of the full JSON before the first fragment.
pub fn full_json_prefix(header: &FileHeader, totals: &Totals) -> Vec<u8> {
    let mut out = b"{\n  \"training_file_metadata\": ".to_vec();
    write_pretty_at(&mut out, &file_metadata(header, totals), 1).expect("writing to a Vec cannot fail");
    out.extend_from_slice(b",\n  \"consultant_profile\": ");
    write_pretty_at(&mut out, &header.consultant_profile, 1).expect("writing to a Vec cannot fail");
    out.extend_from_slice(b",\n  \"conversations\": [");
    out
}

/// What goes before fragment number `index` (0-based).
pub fn fragment_separator(index: usize) -> &'static [u8] {
    if index == 0 { b"\n" } else { b",\n" }
}

/// Everything after the last of `count` fragments (no trailing newline, like the original).
pub fn full_json_suffix(count: usize) -> &'static [u8] {
    if count == 0 { b"]\n}" } else { b"\n  ]\n}" }
}

/// The optional `_meta` first line of the JSONL for old consumers.
pub fn jsonl_meta_line(file_name: &str, total_pairs: usize) -> Vec<u8> {
    let meta = serde_json::json!({"_meta": {"file_name": file_name, "total_pairs": total_pairs, "version": FILE_VERSION}});
    let mut out = Vec::new();
    write_compact(&mut out, &meta).expect("writing to a Vec cannot fail");
    out.push(b'\n');
    out
}

/// Writes a whole full JSON from fragments held in memory (tests, small files).
pub fn write_full_json<W: Write>(mut out: W, header: &FileHeader, totals: &Totals, fragments: &[&[u8]]) -> io::Result<()> {
    out.write_all(&full_json_prefix(header, totals))?;
    for (i, fragment) in fragments.iter().enumerate() {
        out.write_all(fragment_separator(i))?;
        out.write_all(fragment)?;
    }
    out.write_all(full_json_suffix(fragments.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;
    use crate::json::write_compact;

    /// A fragment's pairs in the full JSON and its JSONL lines.
    #[derive(Debug, PartialEq)]
    struct Outputs {
        pairs: String,
        lines: String,
    }

    /// The fragment of a conversation with these pairs, and what it must be:
    /// the pairs pretty-printed as they came, and a line per pair with a
    /// target holding the spec's keys in the spec's order.
    fn rendered_and_expected(pairs: Vec<Value>) -> (Outputs, Outputs) {
        let conversation = Conversation { training_pairs: pairs.clone(), ..Conversation::from_enriched(Map::new()) };
        let fragment = render_conversation_fragment(&conversation, "abcd1234");

        let mut pairs_json = Vec::new();
        write_pretty_at(&mut pairs_json, &pairs, 3).unwrap();
        let mut lines = Vec::new();
        for pair in pairs.iter().filter(|p| has_target(p)) {
            let mut line = Map::new();
            line.insert("id".into(), format!("{}_abcd1234", pair["id"].as_str().unwrap()).into());
            line.insert("conversation_id".into(), conversation.conversation_id.clone().into());
            for key in &PAIR_KEYS[2..] {
                if let Some(value) = pair.get(key) {
                    line.insert((*key).into(), value.clone());
                }
            }
            write_compact(&mut lines, &line).unwrap();
            lines.push(b'\n');
        }
        let json = String::from_utf8(fragment.json).unwrap();
        let start = json.find("\"training_pairs\": ").unwrap() + "\"training_pairs\": ".len();
        let rendered = Outputs { pairs: json[start..json.len() - 6].to_owned(), lines: String::from_utf8(fragment.jsonl).unwrap() };
        (rendered, Outputs { pairs: String::from_utf8(pairs_json).unwrap(), lines: String::from_utf8(lines).unwrap() })
    }

    #[test]
    fn pairs_in_any_key_order_render_as_each_output_alone_would() {
        let in_order = json!({"id": "p1", "conversation_id": "c", "turn_number": 1, "system_prompt": "Be \"kind\"\n",
            "conversation_history": [{"role": "user", "content": "→ é"}], "current_user_input": "hi", "target_response": "hello", "training_metadata": {"q": [1, 2.5]}});
        let mut reordered = Map::new();
        for (key, value) in in_order.as_object().unwrap().iter().rev() {
            reordered.insert(key.clone(), value.clone());
        }
        let mut with_extra = in_order.clone();
        with_extra.as_object_mut().unwrap().insert("reviewer".into(), json!({"x": null}));
        let no_target = json!({"id": "p0", "turn_number": 0, "target_response": null, "extra": []});
        let (rendered, expected) = rendered_and_expected(vec![no_target, in_order, Value::Object(reordered), with_extra]);
        assert_eq!(rendered, expected);
    }
}
