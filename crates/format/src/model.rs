//! A conversation as a training file holds it: its id, dates, scaffolding and
//! verbatim training pairs, read from an enriched file or a full file's entry.

use crate::quality::{ConversationFigures, ScaffoldingKeys};
use crate::validate::is_uuid;
use crate::value::{Map, Value};

/// The `scaffolding` block of a full file's conversation: keys and display names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scaffolding {
    pub persona_key: String,
    pub persona_name: String,
    pub emotional_arc_key: String,
    pub emotional_arc: String,
    pub training_topic_key: String,
    pub training_topic: String,
}

impl Scaffolding {
    pub fn keys(&self) -> ScaffoldingKeys {
        let key = |s: &String| (!s.is_empty()).then(|| s.clone());
        ScaffoldingKeys {
            persona: key(&self.persona_key),
            emotional_arc: key(&self.emotional_arc_key),
            training_topic: key(&self.training_topic_key),
        }
    }

    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        for (key, value) in [
            ("persona_key", &self.persona_key),
            ("persona_name", &self.persona_name),
            ("emotional_arc_key", &self.emotional_arc_key),
            ("emotional_arc", &self.emotional_arc),
            ("training_topic_key", &self.training_topic_key),
            ("training_topic", &self.training_topic),
        ] {
            map.insert(key.into(), Value::String(value.clone()));
        }
        Value::Object(map)
    }

    /// From `input_parameters` (the snapshot's names), falling back per field to
    /// the first pair's metadata, as the original aggregator does.
    fn from_enriched(parameters: Option<&Map<String, Value>>, first_pair: Option<&Value>) -> Self {
        let parameter = |key: &str| text(parameters.and_then(|p| p.get(key)));
        let pair = |key: &str| text(first_pair.and_then(|p| p.pointer(&format!("/conversation_metadata/{key}"))));
        let either = |a: String, b: String| if a.is_empty() { b } else { a };
        Self {
            persona_key: either(parameter("persona_key"), pair("persona_archetype")),
            persona_name: either(parameter("persona_name"), pair("client_persona")),
            emotional_arc_key: either(parameter("emotional_arc_key"), pair("emotional_arc_key")),
            emotional_arc: either(parameter("emotional_arc_name"), pair("emotional_arc")),
            training_topic_key: either(parameter("training_topic_key"), pair("training_topic_key")),
            training_topic: either(parameter("training_topic_name"), pair("training_topic")),
        }
    }

    fn from_block(block: Option<&Map<String, Value>>) -> Self {
        let field = |key: &str| text(block.and_then(|b| b.get(key)));
        Self {
            persona_key: field("persona_key"),
            persona_name: field("persona_name"),
            emotional_arc_key: field("emotional_arc_key"),
            emotional_arc: field("emotional_arc"),
            training_topic_key: field("training_topic_key"),
            training_topic: field("training_topic"),
        }
    }
}

fn text(value: Option<&Value>) -> String {
    value.and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// One conversation, ready to be rendered into a training file.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversation {
    pub conversation_id: String,
    /// `YYYY-MM-DD`.
    pub created_date: String,
    pub scaffolding: Scaffolding,
    /// The catalogue's score when known; otherwise the pairs' scores decide.
    pub quality_score: Option<f64>,
    pub training_pairs: Vec<Value>,
    pub consultant_profile: Option<Value>,
    pub vertical: Option<String>,
    /// The enriched file's `input_parameters` block, when it has one (the
    /// catalogue keeps its ids as the scaffolding snapshot).
    pub input_parameters: Option<Value>,
}

/// `fp_conversation_<uuid>` → `<uuid>`.
pub fn conversation_id_from_dataset_name(name: &str) -> Option<&str> {
    name.strip_prefix("fp_conversation_").filter(|id| is_uuid(id))
}

/// A stable id for a file whose `dataset_name` carries none: the same name
/// always gives the same UUID (nothing in a build is random).
pub fn derived_conversation_id(dataset_name: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("lora-files:dataset_name:{dataset_name}").as_bytes()).to_string()
}

impl Conversation {
    /// From a validated enriched file.
    pub fn from_enriched(mut document: Map<String, Value>) -> Self {
        let dataset = document.get("dataset_metadata").and_then(Value::as_object);
        let dataset_name = dataset.and_then(|d| d.get("dataset_name")).and_then(Value::as_str).unwrap_or_default();
        // A UUID in upper case names the same conversation as in lower case:
        // the canonical (lower-case) form is the one rendered and compared.
        let conversation_id = conversation_id_from_dataset_name(dataset_name)
            .map(str::to_ascii_lowercase)
            .unwrap_or_else(|| derived_conversation_id(dataset_name));
        let created_date = text(dataset.and_then(|d| d.get("created_date")));
        let vertical = dataset.and_then(|d| d.get("vertical")).and_then(Value::as_str).map(str::to_owned);
        let training_pairs = match document.remove("training_pairs") {
            Some(Value::Array(pairs)) => pairs,
            _ => Vec::new(),
        };
        let input_parameters = document.remove("input_parameters");
        let scaffolding = Scaffolding::from_enriched(input_parameters.as_ref().and_then(Value::as_object), training_pairs.first());
        Self {
            conversation_id,
            created_date,
            scaffolding,
            quality_score: None,
            training_pairs,
            consultant_profile: document.remove("consultant_profile"),
            vertical,
            input_parameters,
        }
    }

    /// From a validated entry of a full file's `conversations`.
    pub fn from_full_entry(entry: Value, consultant_profile: Option<&Value>, vertical: Option<&str>) -> Self {
        let Value::Object(mut entry) = entry else { return Self::empty() };
        let metadata = entry.get("conversation_metadata").and_then(Value::as_object);
        let conversation_id = text(metadata.and_then(|m| m.get("conversation_id")));
        let created_date = text(metadata.and_then(|m| m.get("created_date")));
        let scaffolding = Scaffolding::from_block(metadata.and_then(|m| m.get("scaffolding")).and_then(Value::as_object));
        let quality_score = metadata.and_then(|m| m.get("quality_score")).and_then(Value::as_f64);
        let training_pairs = match entry.remove("training_pairs") {
            Some(Value::Array(pairs)) => pairs,
            _ => Vec::new(),
        };
        Self {
            conversation_id,
            created_date,
            scaffolding,
            quality_score,
            training_pairs,
            consultant_profile: consultant_profile.cloned(),
            vertical: vertical.map(str::to_owned),
            input_parameters: None,
        }
    }

    fn empty() -> Self {
        Self {
            conversation_id: String::new(),
            created_date: String::new(),
            scaffolding: Scaffolding::default(),
            quality_score: None,
            training_pairs: Vec::new(),
            consultant_profile: None,
            vertical: None,
            input_parameters: None,
        }
    }

    /// The score that counts for this conversation: the catalogue's, else the
    /// mean of its pairs' `quality_score`s, else none.
    pub fn effective_score(&self) -> Option<f64> {
        self.quality_score.or_else(|| {
            let scores: Vec<f64> = self
                .training_pairs
                .iter()
                .filter_map(|p| training(p, "quality_score").and_then(Value::as_f64))
                .collect();
            mean_score(&scores)
        })
    }

    pub fn figures(&self) -> ConversationFigures {
        ConversationFigures {
            turns: self.training_pairs.len(),
            training_pairs: self.training_pairs.iter().filter(|p| has_target(p)).count(),
            human_reviewed_pairs: self.training_pairs.iter().filter(|p| is_human_reviewed(p)).count(),
            // Rounded as the file states it, so a rebuild from a full file and
            // the catalogue (which keeps it rounded) count the same figures.
            quality_score: self.effective_score().map(crate::quality::round2),
            scaffolding: self.scaffolding.keys(),
        }
    }
}

/// The mean of a conversation's pair scores; `None` when none is scored.
pub fn mean_score(scores: &[f64]) -> Option<f64> {
    (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64)
}

/// `training_metadata.<key>` of a pair.
fn training<'p>(pair: &'p Value, key: &str) -> Option<&'p Value> {
    pair.get("training_metadata")?.get(key)
}

/// A pair whose `training_metadata.human_reviewed` is `true`.
pub fn is_human_reviewed(pair: &Value) -> bool {
    training(pair, "human_reviewed") == Some(&Value::Bool(true))
}

/// A pair a trainer receives: its `target_response` is a string.
pub fn has_target(pair: &Value) -> bool {
    pair.get("target_response").is_some_and(Value::is_string)
}
