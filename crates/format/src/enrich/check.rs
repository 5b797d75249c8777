//! Validation before enrichment (spec `enrichment.md` §4): every blocker and
//! warning code of the original, plus the checks it lacked (the first turn is
//! the user's, an assistant turn exists, turn numbers are unique).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::diagnostics::Findings;
use crate::path::JsonPath;
use crate::value::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueSeverity {
    Blocker,
    Warning,
}

/// One finding: a stable code, the field it is about, what is wrong and what to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    pub code: String,
    pub severity: IssueSeverity,
    /// A JSON path such as `turns[2].emotional_context.intensity`.
    pub field: String,
    pub message: String,
    pub suggestion: String,
}

/// What validation found, as stored on the conversation and shown by the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    pub is_valid: bool,
    pub has_blockers: bool,
    pub has_warnings: bool,
    pub blockers: Vec<Issue>,
    pub warnings: Vec<Issue>,
    pub conversation_id: String,
    pub validated_at: String,
    pub summary: String,
}

impl ValidationReport {
    pub fn new(conversation_id: &str, validated_at: &str, issues: Vec<Issue>) -> Self {
        let (blockers, warnings): (Vec<Issue>, Vec<Issue>) = issues.into_iter().partition(|i| i.severity == IssueSeverity::Blocker);
        let summary = match (blockers.len(), warnings.len()) {
            (0, 0) => "Validation passed: No issues detected".to_owned(),
            (0, n) => format!("Validation passed with {n} warning(s)"),
            (n, _) => format!("Validation failed: {n} blocking error(s)"),
        };
        Self {
            is_valid: blockers.is_empty(),
            has_blockers: !blockers.is_empty(),
            has_warnings: !warnings.is_empty(),
            blockers,
            warnings,
            conversation_id: conversation_id.to_owned(),
            validated_at: validated_at.to_owned(),
            summary,
        }
    }

    /// `CODE at field: message` for each blocker, for one-line error reports.
    pub fn blocker_lines(&self) -> Vec<String> {
        self.blockers.iter().map(|i| format!("{} at {}: {}", i.code, i.field, i.message)).collect()
    }
}

/// Issues as the checks find them, with their paths, before they become
/// report entries ([`Issue`]) or file diagnostics ([`Findings`]).
struct Found {
    severity: IssueSeverity,
    code: &'static str,
    path: JsonPath,
    message: String,
    suggestion: &'static str,
}

struct Issues(Vec<Found>);

impl Issues {
    fn push(&mut self, severity: IssueSeverity, code: &'static str, path: &JsonPath, message: impl Into<String>, suggestion: &'static str) {
        self.0.push(Found { severity, code, path: path.clone(), message: message.into(), suggestion });
    }

    fn blocker(&mut self, code: &'static str, field: &JsonPath, message: impl Into<String>, suggestion: &'static str) {
        self.push(IssueSeverity::Blocker, code, field, message, suggestion);
    }

    fn warning(&mut self, code: &'static str, field: &JsonPath, message: impl Into<String>, suggestion: &'static str) {
        self.push(IssueSeverity::Warning, code, field, message, suggestion);
    }
}

/// The blocker for text that does not parse; it comes alone.
pub fn syntax_issue(message: &str) -> Issue {
    Issue {
        code: "INVALID_JSON_SYNTAX".into(),
        severity: IssueSeverity::Blocker,
        field: JsonPath::root().to_string(),
        message: format!("the conversation is not valid JSON: {message}"),
        suggestion: "Fix the JSON (or regenerate the conversation) and import it again".into(),
    }
}

/// The warning for text that parsed only after an unambiguous repair.
pub fn repaired_issue(repairs: &[super::source::Repair]) -> Issue {
    let names: Vec<&str> = repairs.iter().map(|r| r.describe()).collect();
    Issue {
        code: "JSON_REPAIRED".into(),
        severity: IssueSeverity::Warning,
        field: JsonPath::root().to_string(),
        message: format!("the text was not valid JSON; repaired: {}", names.join(", ")),
        suggestion: "Check the generator's output format".into(),
    }
}

fn non_blank(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).and_then(Value::as_str).is_some_and(|s| !s.trim().is_empty())
}

/// Checks a raw or parsed conversation document.
pub fn check_conversation(document: &Value) -> Vec<Issue> {
    find(document)
        .into_iter()
        .map(|f| Issue { code: f.code.to_owned(), severity: f.severity, field: f.path.to_string(), message: f.message, suggestion: f.suggestion.to_owned() })
        .collect()
}

/// The same checks as diagnostics of a file (blockers are errors), for `validate`.
pub fn conversation_findings(document: &Value) -> Findings {
    let mut findings = Findings::default();
    for found in find(document) {
        let message = format!("{}: {} ({})", found.code, found.message, found.suggestion);
        match found.severity {
            IssueSeverity::Blocker => findings.error(&found.path, found.code, message),
            IssueSeverity::Warning => findings.warning(&found.path, found.code, message),
        }
    }
    findings
}

fn find(document: &Value) -> Vec<Found> {
    let mut issues = Issues(Vec::new());
    let root = JsonPath::root();
    let Some(top) = document.as_object() else {
        issues.blocker("MISSING_CONVERSATION_METADATA", &root, "the document is not a JSON object", "Import the LLM's JSON object itself");
        return issues.0;
    };
    let metadata_path = root.key("conversation_metadata");
    match top.get("conversation_metadata").and_then(Value::as_object) {
        None => issues.blocker("MISSING_CONVERSATION_METADATA", &metadata_path, "conversation_metadata is missing or not an object", "Add conversation_metadata"),
        Some(metadata) => {
            for (key, code) in [
                ("client_persona", "MISSING_CLIENT_PERSONA"),
                ("session_context", "MISSING_SESSION_CONTEXT"),
                ("conversation_phase", "MISSING_CONVERSATION_PHASE"),
            ] {
                if !non_blank(metadata, key) {
                    issues.blocker(code, &metadata_path.key(key), format!("{key} is missing or empty"), "Provide a non-empty string");
                }
            }
            if !non_blank(metadata, "expected_outcome") {
                let path = metadata_path.key("expected_outcome");
                issues.warning("MISSING_EXPECTED_OUTCOME", &path, "expected_outcome is missing", "A default outcome will be used");
            }
        }
    }
    let turns_path = root.key("turns");
    let Some(turns) = top.get("turns").and_then(Value::as_array) else {
        issues.blocker("MISSING_TURNS_ARRAY", &turns_path, "turns is missing or not an array", "Add the conversation's turns");
        return issues.0;
    };
    if turns.len() < 2 {
        issues.blocker("INSUFFICIENT_TURNS", &turns_path, format!("a conversation needs at least 2 turns, found {}", turns.len()), "Regenerate a longer conversation");
        return issues.0;
    }
    check_turns(&mut issues, turns, &turns_path);
    issues.0
}

fn check_turns(issues: &mut Issues, turns: &[Value], turns_path: &JsonPath) {
    let mut seen_numbers = HashSet::new();
    let mut previous_role: Option<&str> = None;
    let mut assistant_turns = 0;
    for (index, turn) in turns.iter().enumerate() {
        let path = turns_path.index(index);
        let Some(turn) = turn.as_object() else {
            issues.blocker("INVALID_ROLE", &path, "the turn is not an object", "Each turn is {turn_number, role, content, emotional_context}");
            continue;
        };
        match turn.get("turn_number").and_then(Value::as_f64) {
            None => issues.blocker("INVALID_TURN_NUMBER", &path.key("turn_number"), "turn_number is missing or not a number", "Number the turns 1, 2, 3…"),
            Some(n) => {
                if n != (index + 1) as f64 {
                    issues.warning("TURN_NUMBER_MISMATCH", &path.key("turn_number"), format!("is {n} but this is turn {}", index + 1), "Turns are renumbered in order");
                }
                if !seen_numbers.insert(n.to_bits()) {
                    issues.blocker("DUPLICATE_TURN_NUMBER", &path.key("turn_number"), format!("turn number {n} appears more than once"), "Give each turn its own number");
                }
            }
        }
        let role = turn.get("role").and_then(Value::as_str).filter(|r| matches!(*r, "user" | "assistant"));
        match role {
            None => issues.blocker("INVALID_ROLE", &path.key("role"), "role must be \"user\" or \"assistant\"", "Set the role"),
            Some(role) => {
                if index == 0 && role != "user" {
                    issues.blocker("FIRST_TURN_NOT_USER", &path.key("role"), "the first turn must be the user's", "Start the conversation with the client");
                }
                if previous_role == Some(role) {
                    issues.warning("ROLE_NOT_ALTERNATING", &path.key("role"), format!("two {role} turns in a row"), "Alternate user and assistant turns");
                }
                assistant_turns += usize::from(role == "assistant");
            }
        }
        previous_role = role;
        match turn.get("content").and_then(Value::as_str) {
            Some(content) if !content.trim().is_empty() => {
                if content.trim().chars().count() < 10 {
                    issues.warning("SHORT_CONTENT", &path.key("content"), "content is under 10 characters", "Check the turn was not cut short");
                }
            }
            _ => issues.blocker("MISSING_CONTENT", &path.key("content"), "content is missing or empty", "Provide the turn's text"),
        }
        check_emotional_context(issues, turn.get("emotional_context"), &path.key("emotional_context"));
    }
    if assistant_turns == 0 {
        issues.blocker("NO_ASSISTANT_TURN", turns_path, "the conversation has no assistant turn, so nothing to train on", "Regenerate the conversation");
    }
}

fn check_emotional_context(issues: &mut Issues, context: Option<&Value>, path: &JsonPath) {
    let Some(context) = context.and_then(Value::as_object) else {
        issues.blocker("MISSING_EMOTIONAL_CONTEXT", path, "emotional_context is missing or not an object", "Add {primary_emotion, intensity}");
        return;
    };
    if !non_blank(context, "primary_emotion") {
        issues.blocker("MISSING_PRIMARY_EMOTION", &path.key("primary_emotion"), "primary_emotion is missing or empty", "Name the primary emotion");
    }
    match context.get("intensity").and_then(Value::as_f64) {
        None => issues.blocker("MISSING_INTENSITY", &path.key("intensity"), "intensity is missing or not a number", "Give an intensity between 0 and 1"),
        Some(i) if !(0.0..=1.0).contains(&i) => {
            issues.blocker("INTENSITY_OUT_OF_RANGE", &path.key("intensity"), format!("intensity {i} is outside [0, 1]"), "Give an intensity between 0 and 1")
        }
        Some(i) if i == 0.0 || i == 1.0 => {
            issues.warning("EXTREME_INTENSITY", &path.key("intensity"), format!("intensity is exactly {i}"), "Check the intensity is meant")
        }
        Some(_) => {}
    }
    if !non_blank(context, "secondary_emotion") {
        issues.warning("MISSING_SECONDARY_EMOTION", &path.key("secondary_emotion"), "secondary_emotion is missing", "Optional; add it for richer context");
    }
}

#[cfg(test)]
mod tests {
    use crate::json;

    use super::*;

    fn turn(n: u32, role: &str, content: &str) -> Value {
        json!({"turn_number": n, "role": role, "content": content,
            "emotional_context": {"primary_emotion": "shame", "secondary_emotion": "fear", "intensity": 0.5}})
    }

    fn valid() -> Value {
        json!({
            "conversation_metadata": {"client_persona": "A", "session_context": "B", "conversation_phase": "C", "expected_outcome": "D"},
            "turns": [turn(1, "user", "Hello there, I need help"), turn(2, "assistant", "Of course, tell me more"),
                turn(3, "user", "My savings are a mess"), turn(4, "assistant", "Let us look at them together")],
        })
    }

    fn codes(document: &Value) -> Vec<(String, String)> {
        check_conversation(document).into_iter().map(|i| (i.code, i.field)).collect()
    }

    fn one(code: &str, field: &str) -> Vec<(String, String)> {
        vec![(code.to_owned(), field.to_owned())]
    }

    #[test]
    fn a_clean_conversation_has_no_issues() {
        assert_eq!(codes(&valid()), []);
        let report = ValidationReport::new("c", "t", check_conversation(&valid()));
        assert!(report.is_valid && !report.has_warnings);
        assert_eq!(report.summary, "Validation passed: No issues detected");
    }

    #[test]
    fn document_level_blockers() {
        assert_eq!(codes(&json!(null)), one("MISSING_CONVERSATION_METADATA", "$"));
        assert_eq!(codes(&json!({"turns": valid()["turns"]})), one("MISSING_CONVERSATION_METADATA", "conversation_metadata"));
        let mut doc = valid();
        doc.as_object_mut().unwrap().remove("turns");
        assert_eq!(codes(&doc), one("MISSING_TURNS_ARRAY", "turns"));
        doc["turns"] = json!([turn(1, "user", "Hello there, I need help")]);
        assert_eq!(codes(&doc), one("INSUFFICIENT_TURNS", "turns"));
    }

    #[test]
    fn metadata_codes() {
        for (key, code) in [
            ("client_persona", "MISSING_CLIENT_PERSONA"),
            ("session_context", "MISSING_SESSION_CONTEXT"),
            ("conversation_phase", "MISSING_CONVERSATION_PHASE"),
            ("expected_outcome", "MISSING_EXPECTED_OUTCOME"),
        ] {
            let mut doc = valid();
            doc["conversation_metadata"][key] = json!("   ");
            assert_eq!(codes(&doc), one(code, &format!("conversation_metadata.{key}")));
        }
    }

    #[test]
    fn per_turn_codes() {
        let cases: [(&str, Value, &str, &str); 11] = [
            ("turn_number", json!("1"), "INVALID_TURN_NUMBER", "turns[1].turn_number"),
            ("turn_number", json!(5), "TURN_NUMBER_MISMATCH", "turns[1].turn_number"),
            ("role", json!("coach"), "INVALID_ROLE", "turns[1].role"),
            ("content", json!(""), "MISSING_CONTENT", "turns[1].content"),
            ("content", json!("Ok."), "SHORT_CONTENT", "turns[1].content"),
            ("emotional_context", json!(null), "MISSING_EMOTIONAL_CONTEXT", "turns[1].emotional_context"),
            ("emotional_context", json!({"intensity": 0.5, "secondary_emotion": "x"}), "MISSING_PRIMARY_EMOTION", "turns[1].emotional_context.primary_emotion"),
            ("emotional_context", json!({"primary_emotion": "x", "secondary_emotion": "y"}), "MISSING_INTENSITY", "turns[1].emotional_context.intensity"),
            ("emotional_context", json!({"primary_emotion": "x", "secondary_emotion": "y", "intensity": 1.5}), "INTENSITY_OUT_OF_RANGE", "turns[1].emotional_context.intensity"),
            ("emotional_context", json!({"primary_emotion": "x", "secondary_emotion": "y", "intensity": 1}), "EXTREME_INTENSITY", "turns[1].emotional_context.intensity"),
            ("emotional_context", json!({"primary_emotion": "x", "intensity": 0.4}), "MISSING_SECONDARY_EMOTION", "turns[1].emotional_context.secondary_emotion"),
        ];
        for (key, value, code, field) in cases {
            let mut doc = valid();
            doc["turns"][1][key] = value;
            assert_eq!(codes(&doc), one(code, field), "{key}");
        }
        let mut doc = valid();
        doc["turns"][2]["turn_number"] = json!(2);
        doc["turns"][3]["turn_number"] = json!(3);
        let found = codes(&doc);
        assert!(found.contains(&("DUPLICATE_TURN_NUMBER".into(), "turns[2].turn_number".into())), "{found:?}");
    }

    #[test]
    fn the_checks_the_original_lacked() {
        let mut doc = valid();
        doc["turns"] = json!([turn(1, "assistant", "Welcome, how can I help?"), turn(2, "user", "I need help with money")]);
        assert_eq!(codes(&doc), one("FIRST_TURN_NOT_USER", "turns[0].role"));
        doc["turns"] = json!([turn(1, "user", "I need help with money"), turn(2, "user", "Anyone there at all?")]);
        assert_eq!(codes(&doc), [("ROLE_NOT_ALTERNATING".into(), "turns[1].role".into()), ("NO_ASSISTANT_TURN".into(), "turns".into())]);
    }

    #[test]
    fn summaries_count_blockers_and_warnings() {
        let mut doc = valid();
        doc["turns"][1]["content"] = json!("Ok.");
        assert_eq!(ValidationReport::new("c", "t", check_conversation(&doc)).summary, "Validation passed with 1 warning(s)");
        doc["turns"][1]["role"] = json!("bot");
        let report = ValidationReport::new("c", "t", check_conversation(&doc));
        assert_eq!(report.summary, "Validation failed: 1 blocking error(s)");
        assert!(!report.is_valid && report.has_blockers && report.has_warnings);
        assert_eq!(ValidationReport::new("c", "t", vec![syntax_issue("EOF")]).blockers[0].code, "INVALID_JSON_SYNTAX");
    }
}
