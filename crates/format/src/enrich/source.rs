//! Reading a conversation as it arrives: raw LLM output, a parsed file, or an
//! enriched v4 file, told apart by content. Text that is not JSON is repaired
//! only where the repair is unambiguous; anything else is left for review.

use serde::Serialize;

use crate::position::Position;
use crate::value::Value;

/// How far along the pipeline a conversation file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// LLM output: `conversation_metadata` + `turns`.
    Raw,
    /// Raw plus an `input_parameters` block naming its scaffolding.
    Parsed,
    /// An enriched v4 file: `dataset_metadata` + `training_pairs`.
    Enriched,
}

impl Stage {
    /// The stage of a parsed document, or `None` when it is none of the three.
    pub fn of(document: &Value) -> Option<Self> {
        let map = document.as_object()?;
        if map.contains_key("training_pairs") || map.contains_key("dataset_metadata") {
            Some(Self::Enriched)
        } else if map.contains_key("turns") || map.contains_key("conversation_metadata") {
            Some(if map.contains_key("input_parameters") { Self::Parsed } else { Self::Raw })
        } else {
            None
        }
    }
}

/// A repair applied to make the text parse; each is recorded in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Repair {
    ByteOrderMark,
    CodeFence,
    SurroundingText,
    TrailingComma,
}

impl Repair {
    pub fn describe(self) -> &'static str {
        match self {
            Self::ByteOrderMark => "a byte-order mark removed",
            Self::CodeFence => "a Markdown code fence removed",
            Self::SurroundingText => "text around the JSON object removed",
            Self::TrailingComma => "commas before a closing bracket removed",
        }
    }
}

/// A document that parsed, with the repairs it needed.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub document: Value,
    pub repairs: Vec<Repair>,
}

/// Text that is not JSON and has no unambiguous repair.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {}, column {}: {message}", position.line, position.column)]
pub struct SyntaxError {
    pub message: String,
    pub position: Position,
    /// Byte offset of the error in the text.
    pub offset: usize,
}

/// Parses `text`, repairing it where that is unambiguous: a byte-order mark,
/// a Markdown code fence or prose around the one JSON object, and commas
/// before a closing bracket. Truncated or otherwise broken JSON is an error
/// located in the original text.
pub fn parse(text: &[u8]) -> Result<Parsed, SyntaxError> {
    let original = match serde_json::from_slice::<Value>(text) {
        Ok(document) => return Ok(Parsed { document, repairs: Vec::new() }),
        Err(error) => error,
    };
    let located = || {
        let offset = Position::offset_of_serde(text, original.line(), original.column());
        SyntaxError { message: crate::document::describe(&original), position: Position::of_offset(text, offset), offset }
    };
    let Ok(mut rest) = std::str::from_utf8(text) else { return Err(located()) };
    let mut repairs = Vec::new();
    if let Some(stripped) = rest.strip_prefix('\u{feff}') {
        repairs.push(Repair::ByteOrderMark);
        rest = stripped;
    }
    if let Some(inner) = fenced(rest) {
        repairs.push(Repair::CodeFence);
        rest = inner;
    }
    if let (Some(start), Some(end)) = (rest.find('{'), rest.rfind('}')) {
        if start < end && (!rest[..start].trim().is_empty() || !rest[end + 1..].trim().is_empty()) {
            repairs.push(Repair::SurroundingText);
            rest = &rest[start..=end];
        }
    }
    let without_commas = drop_trailing_commas(rest);
    if without_commas.len() != rest.len() {
        repairs.push(Repair::TrailingComma);
    }
    match serde_json::from_str::<Value>(&without_commas) {
        Ok(document) if !repairs.is_empty() && document.is_object() => Ok(Parsed { document, repairs }),
        _ => Err(located()),
    }
}

/// The body of a text that is one Markdown code block (```` ```json … ``` ````).
fn fenced(text: &str) -> Option<&str> {
    let body = text.trim().strip_prefix("```")?.strip_suffix("```")?;
    let newline = body.find('\n')?;
    let language = body[..newline].trim();
    matches!(language, "" | "json" | "JSON").then(|| &body[newline + 1..])
}

/// `text` without the commas that directly precede `}` or `]` (whitespace
/// between them allowed), leaving string contents alone.
fn drop_trailing_commas(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for (index, c) in text.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c == ',' {
            let next = bytes[index + 1..].iter().find(|b| !b.is_ascii_whitespace());
            if matches!(next, Some(b'}' | b']')) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_json_needs_no_repair() {
        let parsed = parse(br#"{"turns": []}"#).unwrap();
        assert!(parsed.repairs.is_empty());
        assert_eq!(Stage::of(&parsed.document), Some(Stage::Raw));
    }

    #[test]
    fn a_code_fence_and_trailing_commas_are_repaired() {
        let parsed = parse(b"```json\n{\"turns\": [1, 2,], \"a\": \"x,]\",}\n```\n").unwrap();
        assert_eq!(parsed.repairs, [Repair::CodeFence, Repair::TrailingComma]);
        assert_eq!(parsed.document, crate::json!({"turns": [1, 2], "a": "x,]"}));
    }

    #[test]
    fn prose_around_the_object_is_dropped() {
        let parsed = parse("\u{feff}Here is the conversation:\n{\"turns\": []}\nHope this helps!".as_bytes()).unwrap();
        assert_eq!(parsed.repairs, [Repair::ByteOrderMark, Repair::SurroundingText]);
    }

    #[test]
    fn truncated_json_is_not_guessed_at() {
        let error = parse(b"{\n  \"turns\": [\n    {\"role\": \"user\"").unwrap_err();
        assert_eq!(error.position.line, 3);
        assert!(error.message.contains("EOF"), "{}", error.message);
    }

    #[test]
    fn stages_are_told_apart_by_content() {
        let stage = |text: &str| Stage::of(&serde_json::from_str(text).unwrap());
        assert_eq!(stage(r#"{"conversation_metadata": {}, "turns": [], "input_parameters": {}}"#), Some(Stage::Parsed));
        assert_eq!(stage(r#"{"dataset_metadata": {}, "training_pairs": []}"#), Some(Stage::Enriched));
        assert_eq!(stage(r#"{"hello": 1}"#), None);
        assert_eq!(stage("[1]"), None);
    }
}
