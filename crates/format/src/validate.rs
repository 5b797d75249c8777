//! The validator: every invariant of the v4 formats (spec `v4-format.md` §4),
//! all findings of a document in one pass, each with its JSON path.
//!
//! The rules read `serde_json::Value`s; positions are found afterwards
//! (`Findings::locate_in`), so checking stays cheap when a file is clean.

use std::collections::{HashMap, HashSet};

use crate::diagnostics::Findings;
use crate::path::JsonPath;
use crate::quality::QualityTier;
use crate::valence;
use crate::value::{Map, Value};

/// The keys of a training pair, in the order the original writes them.
pub const PAIR_KEYS: [&str; 10] = [
    "id",
    "conversation_id",
    "turn_number",
    "conversation_metadata",
    "system_prompt",
    "conversation_history",
    "current_user_input",
    "emotional_context",
    "target_response",
    "training_metadata",
];

/// The five per-conversation metadata keys every pair repeats.
pub const BASE_METADATA_KEYS: [&str; 5] =
    ["client_persona", "client_background", "session_context", "conversation_phase", "expected_outcome"];

/// Pair-level scaffolding keys and the `input_parameters` key each copies.
pub const SCAFFOLDING_PAIR_KEYS: [(&str, &str); 5] = [
    ("persona_archetype", "persona_key"),
    ("emotional_arc", "emotional_arc_name"),
    ("emotional_arc_key", "emotional_arc_key"),
    ("training_topic", "training_topic_name"),
    ("training_topic_key", "training_topic_key"),
];

pub const INPUT_PARAMETER_KEYS: [&str; 9] = [
    "persona_id",
    "persona_key",
    "persona_name",
    "emotional_arc_id",
    "emotional_arc_key",
    "emotional_arc_name",
    "training_topic_id",
    "training_topic_key",
    "training_topic_name",
];

const DATASET_METADATA_STRINGS: [&str; 9] = [
    "dataset_name",
    "version",
    "created_date",
    "vertical",
    "consultant_persona",
    "target_use",
    "conversation_source",
    "quality_tier",
    "notes",
];

const CRITERIA: [&str; 4] = ["empathy_score", "clarity_score", "appropriateness_score", "brand_voice_alignment"];

pub const FORMAT_SPEC: &str = "brightrun-lora-v4";

/// A short description of a JSON value's type for messages: `string "2"`, `null`.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() > 40 => "a string".into(),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Typed access that records a finding when the shape is wrong.
struct Check<'f> {
    findings: &'f mut Findings,
}

impl<'f> Check<'f> {
    fn object<'v>(&mut self, value: &'v Value, path: &JsonPath) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            other => {
                self.findings.error(path, "wrong_type", format!("must be an object, found {}", describe(other)));
                None
            }
        }
    }

    fn field<'v>(&mut self, map: &'v Map<String, Value>, key: &'static str, path: &JsonPath) -> Option<&'v Value> {
        let value = map.get(key);
        if value.is_none() {
            self.findings.error(&path.key(key), "missing_key", format!("required key `{key}` is missing"));
        }
        value
    }

    fn string<'v>(&mut self, map: &'v Map<String, Value>, key: &'static str, path: &JsonPath) -> Option<&'v str> {
        match self.field(map, key, path)? {
            Value::String(s) => Some(s),
            other => {
                self.findings.error(&path.key(key), "wrong_type", format!("must be a string, found {}", describe(other)));
                None
            }
        }
    }

    fn non_empty_string<'v>(&mut self, map: &'v Map<String, Value>, key: &'static str, path: &JsonPath) -> Option<&'v str> {
        let text = self.string(map, key, path)?;
        if text.trim().is_empty() {
            self.findings.error(&path.key(key), "empty_string", "must not be empty");
            return None;
        }
        Some(text)
    }

    /// The value at `key` as a `T`, or a `wrong_type` finding saying it must be `what`.
    fn typed<T>(&mut self, map: &Map<String, Value>, key: &'static str, path: &JsonPath, what: &str, extract: fn(&Value) -> Option<T>) -> Option<T> {
        let value = self.field(map, key, path)?;
        let typed = extract(value);
        if typed.is_none() {
            self.findings.error(&path.key(key), "wrong_type", format!("must be {what}, found {}", describe(value)));
        }
        typed
    }

    fn integer(&mut self, map: &Map<String, Value>, key: &'static str, path: &JsonPath) -> Option<i64> {
        self.typed(map, key, path, "an integer", Value::as_i64)
    }

    fn boolean(&mut self, map: &Map<String, Value>, key: &'static str, path: &JsonPath) -> Option<bool> {
        self.typed(map, key, path, "true or false", Value::as_bool)
    }

    /// A number within `[low, high]`.
    fn number_in(&mut self, map: &Map<String, Value>, key: &'static str, path: &JsonPath, low: f64, high: f64) -> Option<f64> {
        let value = self.field(map, key, path)?;
        let Some(n) = value.as_f64() else {
            self.findings.error(&path.key(key), "wrong_type", format!("must be a number, found {}", describe(value)));
            return None;
        };
        if !(low..=high).contains(&n) {
            self.findings.error(&path.key(key), "out_of_range", format!("must be between {low} and {high}, found {n}"));
            return None;
        }
        Some(n)
    }

    /// A score on the 1–5 scale, or null for "not scored".
    fn score(&mut self, map: &Map<String, Value>, key: &'static str, path: &JsonPath) -> Option<f64> {
        match map.get(key) {
            Some(Value::Null) => None,
            _ => self.number_in(map, key, path, 1.0, 5.0),
        }
    }

    fn string_array(&mut self, map: &Map<String, Value>, key: &'static str, path: &JsonPath, min_items: usize) {
        let Some(value) = self.field(map, key, path) else { return };
        let Some(items) = value.as_array() else {
            self.findings.error(&path.key(key), "wrong_type", format!("must be an array of strings, found {}", describe(value)));
            return;
        };
        if items.len() < min_items {
            self.findings.error(&path.key(key), "too_few_items", format!("must have at least {min_items} item(s)"));
        }
        for (i, item) in items.iter().enumerate() {
            if !item.is_string() {
                self.findings.error(&path.key(key).index(i), "wrong_type", format!("must be a string, found {}", describe(item)));
            }
        }
    }
}

/// Validates an enriched per-conversation file (spec §4 rules 1–12).
pub fn validate_enriched(document: &Value) -> Findings {
    let mut findings = Findings::default();
    let root = JsonPath::root();
    let mut check = Check { findings: &mut findings };
    let Some(top) = check.object(document, &root) else { return findings };

    let pairs = check.field(top, "training_pairs", &root);
    let dataset = check.field(top, "dataset_metadata", &root).and_then(|v| check.object(v, &root.key("dataset_metadata")));
    if let Some(profile) = check.field(top, "consultant_profile", &root) {
        check_consultant_profile(&mut check, profile, &root.key("consultant_profile"));
    }
    for key in top.keys() {
        if !matches!(key.as_str(), "dataset_metadata" | "consultant_profile" | "training_pairs" | "input_parameters") {
            findings.warning(&root.key(key.clone()), "unknown_key", format!("unexpected top-level key `{key}`"));
        }
    }

    let input_parameters = top.get("input_parameters");
    let expected = input_parameters.and_then(|v| check_input_parameters(&mut findings, v, &root.key("input_parameters")));
    let scaffolding = match &expected {
        Some(map) => ExpectedScaffolding::Strict(map),
        None => ExpectedScaffolding::Legacy,
    };

    let pairs_path = root.key("training_pairs");
    let pair_count = match pairs {
        Some(Value::Array(pairs)) if pairs.is_empty() => {
            findings.error(&pairs_path, "empty_training_pairs", "must hold at least one training pair");
            Some(0)
        }
        Some(Value::Array(pairs)) => {
            check_conversation_pairs(&mut findings, pairs, &pairs_path, &scaffolding);
            Some(pairs.len())
        }
        Some(other) => {
            findings.error(&pairs_path, "wrong_type", format!("must be an array, found {}", describe(other)));
            None
        }
        None => None,
    };
    if let Some(dataset) = dataset {
        check_dataset_metadata(&mut findings, dataset, &root.key("dataset_metadata"), pair_count);
    }
    findings
}

fn check_dataset_metadata(findings: &mut Findings, dataset: &Map<String, Value>, path: &JsonPath, pair_count: Option<usize>) {
    let mut check = Check { findings };
    for key in DATASET_METADATA_STRINGS {
        check.string(dataset, key, path);
    }
    if let Some(n) = check.integer(dataset, "total_conversations", path) {
        if n != 1 {
            findings.error(&path.key("total_conversations"), "count_mismatch", format!("must be 1 in a per-conversation file, found {n}"));
        }
    }
    let mut check = Check { findings };
    if let (Some(n), Some(pairs)) = (check.integer(dataset, "total_turns", path), pair_count) {
        if n != pairs as i64 {
            findings.error(&path.key("total_turns"), "count_mismatch", format!("is {n} but the file has {pairs} training pairs"));
        }
    }
    if let Some(date) = dataset.get("created_date").and_then(Value::as_str) {
        if !is_date(date) {
            findings.error(&path.key("created_date"), "bad_date", format!("must be a YYYY-MM-DD date, found {date:?}"));
        }
    }
    if let Some(name) = dataset.get("dataset_name").and_then(Value::as_str) {
        if crate::model::conversation_id_from_dataset_name(name).is_none() {
            findings.warning(&path.key("dataset_name"), "dataset_name", format!("{name:?} is not `fp_conversation_<uuid>`"));
        }
    }
    if let Some(tier) = dataset.get("quality_tier").and_then(Value::as_str) {
        if QualityTier::parse(tier).is_none() {
            findings.warning(&path.key("quality_tier"), "unknown_tier", format!("{tier:?} is not a known quality tier"));
        }
    }
}

fn check_consultant_profile(check: &mut Check, profile: &Value, path: &JsonPath) {
    let Some(profile) = check.object(profile, path) else { return };
    for key in ["name", "business", "expertise"] {
        check.string(profile, key, path);
    }
    check.integer(profile, "years_experience", path);
    let philosophy_path = path.key("core_philosophy");
    if let Some(philosophy) = check.field(profile, "core_philosophy", path).and_then(|v| check.object(v, &philosophy_path)) {
        const PRINCIPLES: [&str; 5] = ["principle_1", "principle_2", "principle_3", "principle_4", "principle_5"];
        for key in PRINCIPLES {
            check.string(philosophy, key, &philosophy_path);
        }
        for key in philosophy.keys().filter(|k| !PRINCIPLES.contains(&k.as_str())) {
            check.findings.error(&philosophy_path.key(key.clone()), "unknown_key", "core_philosophy holds exactly principle_1 to principle_5");
        }
    }
    let style_path = path.key("communication_style");
    if let Some(style) = check.field(profile, "communication_style", path).and_then(|v| check.object(v, &style_path)) {
        check.string(style, "tone", &style_path);
        check.string_array(style, "techniques", &style_path, 1);
        check.string_array(style, "avoid", &style_path, 1);
    }
}

/// Checks `input_parameters` and returns the pair-level scaffolding it implies.
fn check_input_parameters(findings: &mut Findings, value: &Value, path: &JsonPath) -> Option<Map<String, Value>> {
    let mut check = Check { findings };
    let parameters = check.object(value, path)?;
    for key in INPUT_PARAMETER_KEYS {
        match parameters.get(key) {
            Some(Value::String(_)) => {}
            Some(other) => findings.error(&path.key(key), "wrong_type", format!("must be a string, found {}", describe(other))),
            None => findings.warning(&path.key(key), "missing_key", format!("`{key}` is missing")),
        }
    }
    let mut expected = Map::new();
    for (pair_key, parameter_key) in SCAFFOLDING_PAIR_KEYS {
        if let Some(Value::String(text)) = parameters.get(parameter_key) {
            if !text.is_empty() {
                expected.insert(pair_key.to_owned(), Value::String(text.clone()));
            }
        }
    }
    Some(expected)
}

/// What the pair-level scaffolding keys must be.
pub(crate) enum ExpectedScaffolding<'a> {
    /// From `input_parameters`: each present value must appear on every pair; empty ones must not.
    Strict(&'a Map<String, Value>),
    /// From a full file's conversation `scaffolding`: keys that are known must match.
    Keys(&'a Map<String, Value>),
    /// Older files without scaffolding: missing keys are warnings.
    Legacy,
}

/// What one pair says, for the checks that compare pairs with each other.
struct PairFacts<'v> {
    index: usize,
    turn: Option<i64>,
    id: Option<&'v str>,
    conversation_id: Option<&'v str>,
    /// `Some(None)` is a user pair (null target); `None` is unknown.
    target: Option<Option<&'v str>>,
    user_input: Option<&'v str>,
    emotions: Option<&'v Map<String, Value>>,
    history: Option<&'v Vec<Value>>,
    metadata: Option<&'v Map<String, Value>>,
    system_prompt: Option<&'v str>,
}

impl PairFacts<'_> {
    /// The text this pair contributes to later histories.
    fn message(&self) -> Option<(&'static str, &str)> {
        match self.target? {
            Some(target) => Some(("assistant", target)),
            None => Some(("user", self.user_input?)),
        }
    }
}

/// Rules 4–12 over one conversation's pairs.
pub(crate) fn check_conversation_pairs(findings: &mut Findings, pairs: &[Value], path: &JsonPath, scaffolding: &ExpectedScaffolding) {
    let facts: Vec<PairFacts> = pairs
        .iter()
        .enumerate()
        .filter_map(|(i, pair)| check_pair(findings, pair, &path.index(i), i, PairKind::Enriched))
        .collect();

    let mut seen_ids: HashMap<&str, usize> = HashMap::new();
    let first = facts.first();
    for pair in &facts {
        let pair_path = path.index(pair.index);
        if let Some(turn) = pair.turn {
            if turn != pair.index as i64 + 1 {
                findings.error(
                    &pair_path.key("turn_number"),
                    "turn_sequence",
                    format!("turn_number is {turn} but this is pair {}: turns must run 1..N in order", pair.index + 1),
                );
            }
        }
        if let Some(id) = pair.id {
            if let Some(previous) = seen_ids.insert(id, pair.index) {
                findings.error(&pair_path.key("id"), "duplicate_pair_id", format!("pair id {id:?} is also used by {}", path.index(previous)));
            }
        }
        if let (Some(first_id), Some(id)) = (first.and_then(|f| f.conversation_id), pair.conversation_id) {
            if first_id != id {
                findings.error(
                    &pair_path.key("conversation_id"),
                    "conversation_id_mismatch",
                    format!("is {id:?} but the first pair says {first_id:?}: one conversation per file"),
                );
            }
        }
        check_history_replay(findings, pair, &facts, &pair_path);
        check_metadata_consistency(findings, pair, first, &pair_path, scaffolding);
    }

    check_roles(findings, &facts, path);
}

/// Where a pair sits: in a conversation, or alone on a JSONL line (whose `id`
/// carries a suffix and whose `conversation_id` is the conversation's UUID).
#[derive(Clone, Copy, PartialEq, Eq)]
enum PairKind {
    Enriched,
    JsonlRecord,
}

/// Rules 4–12 that need only the pair itself.
fn check_pair<'v>(findings: &mut Findings, pair: &'v Value, path: &JsonPath, index: usize, kind: PairKind) -> Option<PairFacts<'v>> {
    let mut check = Check { findings };
    let pair = check.object(pair, path)?;
    for key in PAIR_KEYS {
        check.field(pair, key, path);
    }
    let turn = pair.get("turn_number").and_then(|v| match v.as_i64() {
        Some(n) if n >= 1 => Some(n),
        _ => {
            findings.error(&path.key("turn_number"), "wrong_type", format!("must be an integer ≥ 1, found {}", describe(v)));
            None
        }
    });
    let mut check = Check { findings };
    let id = pair.get("id").and(check_optional_string(&mut check, pair, "id", path));
    let conversation_id = pair.get("conversation_id").and(check_optional_string(&mut check, pair, "conversation_id", path));
    // The original's pairs carry the template category as `conversation_id`
    // and `<category>_turn<n>` as `id`; lora-files keeps that `id` but puts
    // the conversation's real UUID in `conversation_id`.
    if let (Some(id), Some(conversation_id), Some(turn), PairKind::Enriched) = (id, conversation_id, turn, kind) {
        let expected = format!("{conversation_id}_turn{turn}");
        let suffix = format!("_turn{turn}");
        let ok = id == expected || (is_uuid(conversation_id) && id.strip_suffix(&suffix).is_some_and(|category| !category.is_empty()));
        if !ok {
            findings.error(&path.key("id"), "pair_id", format!("is {id:?} but must be {expected:?} (conversation_id + \"_turn\" + turn_number)"));
        }
    }

    let target = match pair.get("target_response") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) if s.is_empty() => {
            findings.error(&path.key("target_response"), "empty_string", "must be a non-empty string, or null for a user message");
            None
        }
        Some(Value::String(s)) => Some(Some(s.as_str())),
        Some(other) => {
            findings.error(&path.key("target_response"), "wrong_type", format!("must be a string or null, found {}", describe(other)));
            None
        }
    };
    let mut check = Check { findings };
    let user_input = if pair.contains_key("current_user_input") {
        check.non_empty_string(pair, "current_user_input", path)
    } else {
        None
    };
    let system_prompt = if pair.contains_key("system_prompt") {
        check.non_empty_string(pair, "system_prompt", path)
    } else {
        None
    };
    if let Some(prompt) = system_prompt {
        if prompt.chars().count() < 100 {
            findings.warning(&path.key("system_prompt"), "short_system_prompt", "is under 100 characters");
        }
    }
    for (key, text) in [("target_response", target.flatten()), ("current_user_input", user_input)] {
        if let Some(text) = text {
            check_text(findings, text, &path.key(key));
        }
    }

    let emotions = pair.get("emotional_context").and_then(|v| check_emotions(findings, v, &path.key("emotional_context")));
    let metadata = pair.get("conversation_metadata").and_then(|v| {
        let mut check = Check { findings };
        check.object(v, &path.key("conversation_metadata"))
    });
    if let Some(metadata) = metadata {
        let mut check = Check { findings };
        for key in BASE_METADATA_KEYS {
            check.non_empty_string(metadata, key, &path.key("conversation_metadata"));
        }
    }
    let history = match pair.get("conversation_history") {
        Some(Value::Array(entries)) => Some(entries),
        Some(other) => {
            findings.error(&path.key("conversation_history"), "wrong_type", format!("must be an array, found {}", describe(other)));
            None
        }
        None => None,
    };
    if let (Some(history), Some(turn)) = (history, turn) {
        check_history_shape(findings, history, turn, user_input, target, &path.key("conversation_history"), &path.key("current_user_input"));
    }
    if let Some(training) = pair.get("training_metadata") {
        let topic_key = metadata.and_then(|m| m.get("training_topic_key")).and_then(Value::as_str);
        check_training_metadata(findings, training, &path.key("training_metadata"), turn, topic_key);
    }
    Some(PairFacts { index, turn, id, conversation_id, target, user_input, emotions, history, metadata, system_prompt })
}

fn check_optional_string<'v>(check: &mut Check, map: &'v Map<String, Value>, key: &'static str, path: &JsonPath) -> Option<&'v str> {
    check.non_empty_string(map, key, path)
}

/// Rule 12: texts cut by the generator.
fn check_text(findings: &mut Findings, text: &str, path: &JsonPath) {
    if text.ends_with('\\') {
        findings.warning(path, "truncated_text", "ends in a backslash: the text was probably cut off");
    }
    if text.contains("\\n") {
        findings.warning(path, "literal_newline", "contains a literal \\n (backslash + n) instead of a line break");
    }
    // C0 characters are single bytes in UTF-8, so bytes tell; looked for a
    // block at a time without stopping inside one, which the compiler vectorises.
    let control = |b: u8| b < 0x20 && !matches!(b, b'\n' | b'\t' | b'\r');
    if text.as_bytes().chunks(64).any(|block| block.iter().fold(false, |found, &b| found | control(b))) {
        findings.warning(path, "control_character", "contains C0 control characters");
    }
}

/// Rule 8.
fn check_emotions<'v>(findings: &mut Findings, value: &'v Value, path: &JsonPath) -> Option<&'v Map<String, Value>> {
    let mut check = Check { findings };
    let context = check.object(value, path)?;
    let detected_path = path.key("detected_emotions");
    let detected = check.field(context, "detected_emotions", path).and_then(|v| check.object(v, &detected_path))?;
    let primary = check.non_empty_string(detected, "primary", &detected_path);
    check.number_in(detected, "primary_confidence", &detected_path, 0.0, 1.0);
    check.number_in(detected, "intensity", &detected_path, 0.0, 1.0);
    match (detected.get("secondary"), detected.get("secondary_confidence")) {
        (Some(_), Some(_)) => {
            check.string(detected, "secondary", &detected_path);
            check.number_in(detected, "secondary_confidence", &detected_path, 0.0, 1.0);
        }
        (Some(_), None) => findings.error(&detected_path.key("secondary_confidence"), "missing_key", "must be present when `secondary` is"),
        (None, Some(_)) => findings.error(&detected_path.key("secondary_confidence"), "unexpected_key", "must be absent when `secondary` is"),
        (None, None) => {}
    }
    let mut check = Check { findings };
    if let Some(valence) = check.string(detected, "valence", &detected_path) {
        if !matches!(valence, "positive" | "negative" | "mixed") {
            findings.error(&detected_path.key("valence"), "bad_enum", format!("must be positive, negative or mixed, found {valence:?}"));
        } else if let Some(primary) = primary {
            let expected = valence::original_rule(primary);
            if valence != expected && valence != valence::of_label(primary) {
                findings.warning(&detected_path.key("valence"), "valence_mismatch", format!("is {valence:?} but {primary:?} reads as {expected:?}"));
            }
        }
    }
    Some(detected)
}

/// Rule 9.
fn check_training_metadata(findings: &mut Findings, value: &Value, path: &JsonPath, turn: Option<i64>, topic_key: Option<&str>) {
    let mut check = Check { findings };
    let Some(training) = check.object(value, path) else { return };
    let difficulty = check.string(training, "difficulty_level", path);
    let objective = check.string(training, "key_learning_objective", path);
    check.string_array(training, "demonstrates_skills", path, 0);
    let conversation_turn = check.integer(training, "conversation_turn", path);
    check.string(training, "emotional_progression_target", path);
    // null: not scored (lora-files records a missing score as missing).
    let score = check.score(training, "quality_score", path);
    let criteria_path = path.key("quality_criteria");
    if let Some(criteria) = check.field(training, "quality_criteria", path).and_then(|v| check.object(v, &criteria_path)) {
        for key in CRITERIA {
            if let (Some(value), Some(score)) = (check.score(criteria, key, &criteria_path), score) {
                if (value - score).abs() > 0.7 + 1e-9 {
                    check.findings.warning(&criteria_path.key(key), "criterion_far_from_score", format!("{value} is more than 0.7 from quality_score {score}"));
                }
            }
        }
    }
    check.boolean(training, "human_reviewed", path);
    match check.field(training, "reviewer_notes", path) {
        Some(Value::Null | Value::String(_)) | None => {}
        Some(other) => check.findings.error(&path.key("reviewer_notes"), "wrong_type", format!("must be a string or null, found {}", describe(other))),
    }
    check.boolean(training, "use_as_seed_example", path);
    if let Some(n) = check.integer(training, "generate_variations_count", path) {
        if n < 0 {
            findings.error(&path.key("generate_variations_count"), "out_of_range", "must not be negative");
        }
    }
    if let (Some(conversation_turn), Some(turn)) = (conversation_turn, turn) {
        if conversation_turn != turn {
            findings.error(&path.key("conversation_turn"), "turn_mismatch", format!("is {conversation_turn} but turn_number is {turn}"));
        }
    }
    if let (Some(difficulty), Some(turn)) = (difficulty, turn) {
        let level_ok = ["beginner", "intermediate", "advanced"]
            .iter()
            .any(|level| difficulty == format!("{level}_conversation_turn_{turn}"));
        if !level_ok {
            findings.warning(&path.key("difficulty_level"), "difficulty_level", format!("{difficulty:?} is not <beginner|intermediate|advanced>_conversation_turn_{turn}"));
        }
    }
    if let (Some(objective), Some(topic)) = (objective, topic_key) {
        if objective != topic {
            findings.warning(&path.key("key_learning_objective"), "stale_objective", format!("is {objective:?} but the training topic is {topic:?}"));
        }
    }
}

/// Rule 5 (shape) and rule 7 (what the user said last).
fn check_history_shape(
    findings: &mut Findings,
    history: &[Value],
    turn: i64,
    user_input: Option<&str>,
    target: Option<Option<&str>>,
    path: &JsonPath,
    input_path: &JsonPath,
) {
    if history.len() as i64 != turn - 1 {
        findings.error(path, "history_length", format!("has {} entries but turn {turn} must have {}", history.len(), turn - 1));
    }
    let mut last_user = None;
    for (k, entry) in history.iter().enumerate() {
        let entry_path = path.index(k);
        let mut check = Check { findings };
        let Some(entry) = check.object(entry, &entry_path) else { continue };
        if let Some(n) = check.integer(entry, "turn", &entry_path) {
            if n != k as i64 + 1 {
                findings.error(&entry_path.key("turn"), "history_turn", format!("is {n} but must be {}", k + 1));
            }
        }
        let mut check = Check { findings };
        let role = check.string(entry, "role", &entry_path);
        if let Some(role) = role {
            if !matches!(role, "user" | "assistant") {
                findings.error(&entry_path.key("role"), "bad_enum", format!("must be user or assistant, found {role:?}"));
            }
        }
        let mut check = Check { findings };
        let content = check.string(entry, "content", &entry_path);
        let state_path = entry_path.key("emotional_state");
        if let Some(state) = check.field(entry, "emotional_state", &entry_path).and_then(|v| check.object(v, &state_path)) {
            check.string(state, "primary", &state_path);
            check.number_in(state, "intensity", &state_path, 0.0, 1.0);
        }
        if role == Some("user") {
            last_user = content;
        }
    }
    if let (Some(Some(_)), Some(input), Some(last_user)) = (target, user_input, last_user) {
        if input != last_user {
            findings.error(input_path, "current_user_input_mismatch", "on an assistant pair it must equal the last user message of conversation_history");
        }
    }
}

/// Rule 5 (replay): entry k of every history repeats pair k+1.
fn check_history_replay(findings: &mut Findings, pair: &PairFacts, all: &[PairFacts], path: &JsonPath) {
    let Some(history) = pair.history else { return };
    for (k, entry) in history.iter().enumerate().take(pair.index) {
        // `all` is in pair order, so pair k is found by its index.
        let Ok(earlier) = all.binary_search_by_key(&k, |f| f.index).map(|i| &all[i]) else { continue };
        let Some(entry) = entry.as_object() else { continue };
        let entry_path = || path.key("conversation_history").index(k);
        if let Some((role, text)) = earlier.message() {
            if entry.get("role").and_then(Value::as_str).is_some_and(|r| r != role) {
                findings.error(&entry_path().key("role"), "history_mismatch", format!("must be {role:?}: pair {} is a {role} message", k + 1));
            }
            if entry.get("content").and_then(Value::as_str).is_some_and(|c| c != text) {
                findings.error(&entry_path().key("content"), "history_mismatch", format!("must repeat the text of pair {}", k + 1));
            }
        }
        let (Some(state), Some(emotions)) = (entry.get("emotional_state").and_then(Value::as_object), earlier.emotions) else { continue };
        for key in ["primary", "secondary", "intensity"] {
            if state.get(key) != emotions.get(key) && !numbers_equal(state.get(key), emotions.get(key)) {
                findings.error(&entry_path().key("emotional_state").key(key), "history_mismatch", format!("must repeat `{key}` of pair {}", k + 1));
            }
        }
    }
}

fn numbers_equal(a: Option<&Value>, b: Option<&Value>) -> bool {
    matches!((a.and_then(Value::as_f64), b.and_then(Value::as_f64)), (Some(x), Some(y)) if x == y)
}

/// Rules 10 and 11 across pairs.
fn check_metadata_consistency(findings: &mut Findings, pair: &PairFacts, first: Option<&PairFacts>, path: &JsonPath, scaffolding: &ExpectedScaffolding) {
    let Some(metadata) = pair.metadata else { return };
    let metadata_path = path.key("conversation_metadata");
    if let Some(first_metadata) = first.filter(|f| f.index != pair.index).and_then(|f| f.metadata) {
        for key in BASE_METADATA_KEYS.iter().chain(SCAFFOLDING_PAIR_KEYS.iter().map(|(k, _)| k)) {
            if metadata.get(key) != first_metadata.get(key) {
                findings.error(&metadata_path.key(*key), "metadata_varies", format!("`{key}` differs from the first pair's: it must be the same on every pair"));
            }
        }
    }
    if let (Some(prompt), Some(first_prompt)) = (pair.system_prompt, first.and_then(|f| f.system_prompt)) {
        if prompt != first_prompt {
            findings.warning(&path.key("system_prompt"), "system_prompt_varies", "differs from the first pair's system prompt");
        }
    }
    if pair.index != 0 {
        return; // scaffolding is identical across pairs (checked above), so judge it once
    }
    for (key, parameter_key) in SCAFFOLDING_PAIR_KEYS {
        let actual = metadata.get(key);
        match scaffolding {
            ExpectedScaffolding::Strict(expected) => match (expected.get(key), actual) {
                (Some(want), Some(got)) if want != got => findings.error(
                    &metadata_path.key(key),
                    "scaffolding_mismatch",
                    format!("is {} but input_parameters.{parameter_key} is {}", describe(got), describe(want)),
                ),
                (Some(_), None) => findings.error(&metadata_path.key(key), "missing_key", format!("`{key}` is missing but input_parameters.{parameter_key} is set")),
                _ => {}
            },
            ExpectedScaffolding::Keys(expected) => {
                if let (Some(Value::String(want)), Some(got)) = (expected.get(key), actual) {
                    if !want.is_empty() && got.as_str() != Some(want) {
                        findings.error(&metadata_path.key(key), "scaffolding_mismatch", format!("is {} but the conversation's scaffolding says {want:?}", describe(got)));
                    }
                }
            }
            ExpectedScaffolding::Legacy => {
                if actual.is_none() {
                    findings.warning(&metadata_path.key(key), "missing_scaffolding", format!("`{key}` is missing (a file from before scaffolding)"));
                }
            }
        }
    }
}

/// Rule 6: null targets are user messages; the conversation's shape.
fn check_roles(findings: &mut Findings, facts: &[PairFacts], path: &JsonPath) {
    // The role of turn k is stated by any later pair's history entry k.
    let mut stated: Vec<Option<&str>> = vec![None; facts.last().map_or(0, |f| f.index + 1)];
    for pair in facts {
        for (k, entry) in pair.history.into_iter().flatten().enumerate() {
            if let (Some(role), Some(slot)) = (entry.as_object().and_then(|e| e.get("role")).and_then(Value::as_str), stated.get_mut(k)) {
                slot.get_or_insert(role);
            }
        }
    }
    for pair in facts {
        let (Some(target), Some(role)) = (pair.target, stated.get(pair.index).copied().flatten()) else { continue };
        if target.is_none() != (role == "user") {
            findings.error(
                &path.index(pair.index).key("target_response"),
                "target_role_mismatch",
                format!("is {} but later histories say turn {} is a {role} message", if target.is_none() { "null" } else { "set" }, pair.index + 1),
            );
        }
    }
    let targets: Vec<bool> = facts.iter().filter_map(|f| f.target.map(|t| t.is_some())).collect();
    if targets.len() != facts.len() || targets.is_empty() {
        return;
    }
    if targets[0] {
        findings.warning(&path.index(0), "first_not_user", "the conversation does not start with a user message");
    }
    if let Some(i) = targets.windows(2).position(|w| w[0] == w[1]) {
        findings.warning(&path.index(i + 1), "roles_not_alternating", "two messages in a row come from the same role");
    }
    if !targets[targets.len() - 1] {
        findings.warning(&path.index(targets.len() - 1), "ends_on_user", "the conversation ends on a user message, which gives no training example");
    }
}

fn is_date(text: &str) -> bool {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok() && text.len() == 10
}

pub(crate) fn is_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Checks on one conversation entry of a full file (rules 4–12 and 15), collected
/// as they stream by; `FullFileCheck::finish` adds the file-wide rules 13, 14, 16, 17.
#[derive(Default)]
pub struct FullFileCheck {
    pub findings: Findings,
    conversation_ids: HashSet<String>,
    conversations: usize,
    all_pairs: usize,
    trainable_pairs: usize,
    reviewed_pairs: usize,
    distribution: crate::quality::Distribution,
}

impl FullFileCheck {
    pub fn conversation(&mut self, index: usize, conversation: &Value) {
        let path = JsonPath::root().key("conversations").index(index);
        self.conversations += 1;
        let mut check = Check { findings: &mut self.findings };
        let Some(entry) = check.object(conversation, &path) else { return };
        let meta_path = path.key("conversation_metadata");
        let metadata = check.field(entry, "conversation_metadata", &path).and_then(|v| check.object(v, &meta_path));
        let pairs_path = path.key("training_pairs");
        let pairs = match check.field(entry, "training_pairs", &path) {
            Some(Value::Array(pairs)) => Some(pairs),
            Some(other) => {
                self.findings.error(&pairs_path, "wrong_type", format!("must be an array, found {}", describe(other)));
                None
            }
            None => None,
        };
        let scaffolding = metadata.and_then(|m| m.get("scaffolding")).and_then(Value::as_object);
        if let Some(pairs) = pairs {
            if pairs.is_empty() {
                self.findings.error(&pairs_path, "empty_training_pairs", "must hold at least one training pair");
            }
            let expected = match scaffolding {
                Some(keys) => ExpectedScaffolding::Keys(keys),
                None => ExpectedScaffolding::Legacy,
            };
            check_conversation_pairs(&mut self.findings, pairs, &pairs_path, &expected);
            self.all_pairs += pairs.len();
            self.trainable_pairs += pairs.iter().filter(|p| p.get("target_response").is_some_and(|t| !t.is_null())).count();
            self.reviewed_pairs += pairs.iter().filter(|p| crate::model::is_human_reviewed(p)).count();
        }
        if let Some(metadata) = metadata {
            self.check_conversation_metadata(metadata, &meta_path, pairs.map(Vec::len));
        }
    }

    fn check_conversation_metadata(&mut self, metadata: &Map<String, Value>, path: &JsonPath, pair_count: Option<usize>) {
        let mut check = Check { findings: &mut self.findings };
        if let Some(id) = check.string(metadata, "conversation_id", path) {
            if !is_uuid(id) {
                self.findings.error(&path.key("conversation_id"), "bad_uuid", format!("{id:?} is not a UUID"));
            } else if !self.conversation_ids.insert(id.to_owned()) {
                self.findings.error(&path.key("conversation_id"), "duplicate_conversation", format!("conversation {id} appears twice in this file"));
            }
            let mut check = Check { findings: &mut self.findings };
            if let Some(source) = check.string(metadata, "source_file", path) {
                if source != format!("fp_conversation_{id}.json") {
                    self.findings.error(&path.key("source_file"), "source_file", format!("must be \"fp_conversation_{id}.json\""));
                }
            }
        }
        let mut check = Check { findings: &mut self.findings };
        check.string(metadata, "created_date", path);
        if let (Some(turns), Some(pairs)) = (check.integer(metadata, "total_turns", path), pair_count) {
            if turns != pairs as i64 {
                self.findings.error(&path.key("total_turns"), "count_mismatch", format!("is {turns} but the conversation has {pairs} pairs"));
            }
        }
        let mut check = Check { findings: &mut self.findings };
        if let Some(tier) = check.string(metadata, "quality_tier", path) {
            if QualityTier::parse(tier).is_none() {
                self.findings.error(&path.key("quality_tier"), "bad_enum", format!("{tier:?} is not seed_dataset, production, experimental or rejected"));
            }
        }
        let mut check = Check { findings: &mut self.findings };
        let scaffolding_path = path.key("scaffolding");
        if let Some(scaffolding) = check.field(metadata, "scaffolding", path).and_then(|v| check.object(v, &scaffolding_path)) {
            for key in ["persona_key", "persona_name", "emotional_arc_key", "emotional_arc", "training_topic_key", "training_topic"] {
                if let Some(text) = check.string(scaffolding, key, &scaffolding_path) {
                    if text.is_empty() {
                        check.findings.warning(&scaffolding_path.key(key), "empty_scaffolding", format!("`{key}` is empty: the conversation states none (a source from before scaffolding)"));
                    }
                }
            }
            self.distribution.count(crate::quality::ScaffoldingKeys::from_scaffolding(scaffolding));
        }
    }

    /// The file-wide rules, once every conversation has been seen.
    pub fn finish(mut self, top: &crate::document::TopLevel) -> Findings {
        let root = JsonPath::root();
        let findings = &mut self.findings;
        for key in &top.keys {
            if !matches!(key.as_str(), "training_file_metadata" | "consultant_profile" | "conversations") {
                findings.error(&root.key(key.clone()), "unknown_key", format!("a full file has exactly three top-level keys; `{key}` is not one"));
            }
        }
        if top.conversations.is_none() {
            findings.error(&root.key("conversations"), "missing_key", "required key `conversations` is missing");
        }
        let mut check = Check { findings };
        if let Some(profile) = check.field(&top.fields, "consultant_profile", &root) {
            check_consultant_profile(&mut check, profile, &root.key("consultant_profile"));
        }
        let path = root.key("training_file_metadata");
        let Some(metadata) = check.field(&top.fields, "training_file_metadata", &root).and_then(|v| check.object(v, &path)) else {
            return self.findings;
        };
        check.non_empty_string(metadata, "file_name", &path);
        if let Some(version) = check.string(metadata, "version", &path) {
            if !is_semver(version) {
                findings.error(&path.key("version"), "bad_version", format!("{version:?} is not a semantic version"));
            }
        }
        let mut check = Check { findings };
        if let Some(spec) = check.string(metadata, "format_spec", &path) {
            if spec != FORMAT_SPEC {
                findings.error(&path.key("format_spec"), "format_spec", format!("must be {FORMAT_SPEC:?}, found {spec:?}"));
            }
        }
        let mut check = Check { findings };
        check.non_empty_string(metadata, "vertical", &path);
        let created = check.string(metadata, "created_date", &path).and_then(|d| parse_timestamp(findings, d, &path.key("created_date")));
        let mut check = Check { findings };
        let updated = check.string(metadata, "last_updated", &path).and_then(|d| parse_timestamp(findings, d, &path.key("last_updated")));
        if let (Some(created), Some(updated)) = (created, updated) {
            if updated < created {
                findings.error(&path.key("last_updated"), "dates_out_of_order", "is earlier than created_date");
            }
        }
        if !metadata.contains_key("target_model") {
            findings.warning(&path.key("target_model"), "missing_target_model", "no target_model is stated (the inputs stated none; `lora-files build --target-model` states one)");
        }
        let mut check = Check { findings };
        if let Some(n) = check.integer(metadata, "total_conversations", &path) {
            if n != self.conversations as i64 {
                findings.error(&path.key("total_conversations"), "count_mismatch", format!("is {n} but the file has {} conversations", self.conversations));
            }
        }
        let mut check = Check { findings };
        if let Some(n) = check.integer(metadata, "total_training_pairs", &path) {
            let n = n as usize;
            if n == self.all_pairs && n != self.trainable_pairs {
                findings.warning(
                    &path.key("total_training_pairs"),
                    "counts_user_pairs",
                    format!("is {n}, which counts user pairs too (as the original did); {} pairs have a target", self.trainable_pairs),
                );
            } else if n != self.trainable_pairs {
                findings.error(&path.key("total_training_pairs"), "count_mismatch", format!("is {n} but {} pairs have a target ({} in all)", self.trainable_pairs, self.all_pairs));
            }
        }
        if let Some(turns) = metadata.get("total_turns") {
            if turns.as_u64() != Some(self.all_pairs as u64) {
                findings.error(&path.key("total_turns"), "count_mismatch", format!("is {turns} but the file has {} pairs", self.all_pairs));
            }
        }
        check_quality_summary(findings, metadata.get("quality_summary"), &path.key("quality_summary"), self.reviewed_pairs);
        self.distribution.check_against(findings, metadata.get("scaffolding_distribution"), &path.key("scaffolding_distribution"), self.conversations);
        self.findings
    }
}

fn parse_timestamp(findings: &mut Findings, text: &str, path: &JsonPath) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(t) => Some(t),
        Err(_) => {
            findings.error(path, "bad_date", format!("{text:?} is not an ISO 8601 date-time"));
            None
        }
    }
}

fn is_semver(text: &str) -> bool {
    let core = text.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Rule 17.
fn check_quality_summary(findings: &mut Findings, value: Option<&Value>, path: &JsonPath, reviewed_pairs: usize) {
    let Some(value) = value else {
        findings.error(path, "missing_key", "required key `quality_summary` is missing");
        return;
    };
    let mut check = Check { findings };
    let Some(summary) = check.object(value, path) else { return };
    let figures: Vec<Option<f64>> = ["avg_quality_score", "min_quality_score", "max_quality_score"]
        .iter()
        .map(|key| match summary.get(key) {
            Some(Value::Null) => None,
            Some(v) if v.is_number() => v.as_f64(),
            Some(other) => {
                findings.error(&path.key(*key), "wrong_type", format!("must be a number or null, found {}", describe(other)));
                None
            }
            None => {
                findings.error(&path.key(*key), "missing_key", format!("required key `{key}` is missing"));
                None
            }
        })
        .collect();
    if let [Some(avg), Some(min), Some(max)] = figures[..] {
        if avg == 0.0 && min == 0.0 && max == 0.0 {
            findings.warning(path, "unscored", "all quality figures are 0: nothing was scored (lora-files writes null)");
        } else {
            for (key, figure) in [("avg_quality_score", avg), ("min_quality_score", min), ("max_quality_score", max)] {
                if !(1.0..=5.0).contains(&figure) {
                    findings.error(&path.key(key), "out_of_range", format!("must be between 1 and 5, found {figure}"));
                }
            }
            if !(min <= avg + 1e-9 && avg <= max + 1e-9) {
                findings.error(path, "quality_order", format!("min {min} ≤ avg {avg} ≤ max {max} does not hold"));
            }
        }
    }
    let mut check = Check { findings };
    if let Some(count) = check.integer(summary, "human_reviewed_count", path) {
        if count != reviewed_pairs as i64 {
            findings.warning(&path.key("human_reviewed_count"), "reviewed_count", format!("is {count} but {reviewed_pairs} pairs are marked human_reviewed"));
        }
    }
    let mut check = Check { findings };
    check.number_in(summary, "human_reviewed_percentage", path, 0.0, 100.0);
}

/// Checks one JSONL record (rules 18–20; the single-line parts of 4–12).
pub fn check_jsonl_record(findings: &mut Findings, record: &Value, seen_ids: &mut HashSet<String>) {
    if check_jsonl_record_alone(findings, record) {
        check_line_id_is_new(findings, record, seen_ids);
    }
}

/// What [`check_jsonl_record`] checks of a record on its own; `true` when
/// its id is then to be checked against the earlier lines' ([`check_line_id_is_new`]).
pub fn check_jsonl_record_alone(findings: &mut Findings, record: &Value) -> bool {
    let root = JsonPath::root();
    let Some(facts) = check_pair(findings, record, &root, 0, PairKind::JsonlRecord) else { return false };
    let Some(map) = record.as_object() else { return false };
    for key in map.keys() {
        if !PAIR_KEYS.contains(&key.as_str()) {
            findings.error(&root.key(key.clone()), "unknown_key", format!("a JSONL record has exactly the 10 pair keys; `{key}` is not one"));
        }
    }
    if facts.target == Some(None) {
        findings.error(&root.key("target_response"), "null_target", "a JSONL record must have a target_response");
    }
    if let Some(conversation_id) = facts.conversation_id {
        if !is_uuid(conversation_id) {
            findings.error(&root.key("conversation_id"), "bad_uuid", format!("{conversation_id:?} is not a UUID"));
        } else if let Some(id) = map.get("id").and_then(Value::as_str) {
            let short = format!("_{}", &conversation_id[..8]);
            let long = format!("_{conversation_id}");
            if !id.ends_with(&short) && !id.ends_with(&long) {
                findings.error(&root.key("id"), "line_id", format!("must end in {short:?} (the conversation id's first 8 characters)"));
            } else if let Some(turn) = facts.turn {
                if !id.contains(&format!("_turn{turn}_")) {
                    findings.error(&root.key("id"), "line_id", format!("must be <category>_turn{turn}_<conversation id prefix>"));
                }
            }
        }
    }
    true
}

/// Rule 20's uniqueness: a record's id on no earlier line.
pub fn check_line_id_is_new(findings: &mut Findings, record: &Value, seen_ids: &mut HashSet<String>) {
    if let Some(id) = record.get("id").and_then(Value::as_str) {
        if !seen_ids.insert(id.to_owned()) {
            findings.error(&JsonPath::root().key("id"), "duplicate_line_id", format!("id {id:?} appears on an earlier line too"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_warnings(text: &str) -> Vec<&'static str> {
        let mut findings = Findings::default();
        check_text(&mut findings, text, &JsonPath::root());
        findings.iter().map(|d| d.code).collect()
    }

    #[test]
    fn a_control_character_is_found_wherever_it_sits_and_line_breaks_are_not_one() {
        let clean = "é line\n\ttab\r\n".repeat(20);
        assert_eq!(text_warnings(&clean), Vec::<&str>::new());
        for at in 0..140 {
            let text = format!("{}\u{7}{}", "x".repeat(at), "y".repeat(70));
            assert_eq!(text_warnings(&text), ["control_character"], "at {at}");
        }
        assert_eq!(text_warnings("cut off \\"), ["truncated_text"]);
        assert_eq!(text_warnings("a literal \\n here"), ["literal_newline"]);
    }
}
