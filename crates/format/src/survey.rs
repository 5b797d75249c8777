//! A build's first pass: what each input contributes to the header of the
//! training file (figures, consultant profile, vertical, target model), read
//! without building values for the texts. With the header known first, the
//! full JSON is written front to back in one go instead of being assembled
//! from a temporary body.
//!
//! The survey reads only documents of the expected shape and says `None` for
//! anything else; the caller then reads the file the full way. Its findings
//! are not trusted blindly either: the second pass recomputes every figure
//! from the parsed conversations, and the two must agree.

use std::borrow::Cow;

use serde::de::{Deserializer, IgnoredAny};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::model::{mean_score, Conversation};
use crate::quality::{ConversationFigures, ScaffoldingKeys};
use crate::value::{Map, Value};

/// What one conversation says about the training file it goes into.
#[derive(Clone, Debug, PartialEq)]
pub struct Contribution {
    pub figures: ConversationFigures,
    pub consultant_profile: Option<Value>,
    pub vertical: Option<String>,
}

impl Contribution {
    pub fn of(conversation: &Conversation) -> Self {
        Self { figures: conversation.figures(), consultant_profile: conversation.consultant_profile.clone(), vertical: conversation.vertical.clone() }
    }
}

/// What a full training file states about itself (an enriched file states nothing).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileFacts {
    pub consultant_profile: Option<Value>,
    pub vertical: Option<String>,
    pub target_model: Option<String>,
}

impl FileFacts {
    /// From the top-level fields of a full file, as the full reader gives them.
    pub fn of_full_file(fields: &Map<String, Value>) -> Self {
        let metadata = fields.get("training_file_metadata");
        let text = |key: &str| metadata.and_then(|m| m.get(key)).and_then(Value::as_str).map(str::to_owned);
        Self { consultant_profile: fields.get("consultant_profile").cloned(), vertical: text("vertical"), target_model: text("target_model") }
    }
}

/// One input file's survey: its conversations in order, and its own facts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Survey {
    pub conversations: Vec<Contribution>,
    pub file: FileFacts,
}

/// Surveys an enriched conversation file or a full training file held in
/// memory; `None` when `text` is anything else or not of the expected types
/// (read it the full way: that also explains what is wrong with it).
pub fn survey(text: &[u8]) -> Option<Survey> {
    // Checked as UTF-8 once, with a vectorised check, instead of serde_json
    // checking each key it reads; text that is not UTF-8 is the second
    // pass's to explain.
    let document: Document = serde_json::from_str(simdutf8::basic::from_utf8(text).ok()?).ok()?;
    if document.conversations.is_some() || document.training_file_metadata.is_some() {
        return Some(document.full_file_survey());
    }
    if document.turns.is_some() && document.training_pairs.is_none() {
        return None; // a raw conversation
    }
    Some(document.enriched_survey())
}

/// Both document kinds in one shape; every field the survey does not need is skipped.
///
/// A key the full reader tells the kinds apart by counts as present even
/// when it is `null` (`Some(None)`), as the full reader sees it.
#[derive(Deserialize)]
struct Document<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    training_file_metadata: Option<Option<FileMetadata<'a>>>,
    #[serde(borrow)]
    conversations: Option<Vec<Entry<'a>>>,
    #[serde(borrow)]
    dataset_metadata: Option<DatasetMetadata<'a>>,
    #[serde(borrow)]
    input_parameters: Option<KeyBlock<'a>>,
    #[serde(borrow)]
    training_pairs: Option<Vec<Pair<'a>>>,
    #[serde(default, deserialize_with = "present")]
    consultant_profile: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    turns: Option<IgnoredAny>,
}

/// `Some` whenever the key is there, whatever its value.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
struct FileMetadata<'a> {
    #[serde(borrow)]
    vertical: Option<Cow<'a, str>>,
    #[serde(borrow)]
    target_model: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct DatasetMetadata<'a> {
    #[serde(borrow)]
    vertical: Option<Cow<'a, str>>,
}

/// The three scaffolding keys, as `input_parameters` and a full file's
/// `conversation_metadata.scaffolding` both name them.
#[derive(Default, Deserialize)]
struct KeyBlock<'a> {
    #[serde(borrow)]
    persona_key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    emotional_arc_key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    training_topic_key: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow)]
    conversation_metadata: Option<EntryMetadata<'a>>,
    #[serde(borrow)]
    training_pairs: Option<Vec<Pair<'a>>>,
}

#[derive(Deserialize)]
struct EntryMetadata<'a> {
    quality_score: Option<f64>,
    #[serde(borrow)]
    scaffolding: Option<KeyBlock<'a>>,
}

#[derive(Deserialize)]
struct Pair<'a> {
    /// Kept as its raw text: only whether it is a string matters.
    #[serde(borrow)]
    target_response: Option<&'a RawValue>,
    training_metadata: Option<PairTraining>,
    #[serde(borrow)]
    conversation_metadata: Option<PairScaffolding<'a>>,
}

#[derive(Deserialize)]
struct PairTraining {
    quality_score: Option<f64>,
    human_reviewed: Option<bool>,
}

/// A pair's scaffolding keys, which an enriched file falls back on.
#[derive(Deserialize)]
struct PairScaffolding<'a> {
    #[serde(borrow)]
    persona_archetype: Option<Cow<'a, str>>,
    #[serde(borrow)]
    emotional_arc_key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    training_topic_key: Option<Cow<'a, str>>,
}

impl Document<'_> {
    fn enriched_survey(self) -> Survey {
        let pairs = self.training_pairs.unwrap_or_default();
        let first = pairs.first().and_then(|p| p.conversation_metadata.as_ref());
        let parameters = self.input_parameters.unwrap_or_default();
        // Each key from `input_parameters`, else from the first pair, as `Scaffolding::from_enriched`.
        let scaffolding = ScaffoldingKeys {
            persona: key(&parameters.persona_key).or_else(|| key(&first?.persona_archetype)),
            emotional_arc: key(&parameters.emotional_arc_key).or_else(|| key(&first?.emotional_arc_key)),
            training_topic: key(&parameters.training_topic_key).or_else(|| key(&first?.training_topic_key)),
        };
        let contribution = Contribution {
            figures: figures(&pairs, None, scaffolding),
            consultant_profile: self.consultant_profile,
            vertical: self.dataset_metadata.and_then(|d| d.vertical).map(Cow::into_owned),
        };
        Survey { conversations: vec![contribution], file: FileFacts::default() }
    }

    fn full_file_survey(self) -> Survey {
        let conversations = self
            .conversations
            .unwrap_or_default()
            .into_iter()
            .map(|entry| {
                let metadata = entry.conversation_metadata;
                let score = metadata.as_ref().and_then(|m| m.quality_score);
                let block = metadata.and_then(|m| m.scaffolding).unwrap_or_default();
                let scaffolding = ScaffoldingKeys {
                    persona: key(&block.persona_key),
                    emotional_arc: key(&block.emotional_arc_key),
                    training_topic: key(&block.training_topic_key),
                };
                let figures = figures(&entry.training_pairs.unwrap_or_default(), score, scaffolding);
                Contribution { figures, consultant_profile: None, vertical: None }
            })
            .collect();
        let metadata = self.training_file_metadata.flatten();
        let (vertical, target_model) = metadata.map_or((None, None), |m| (m.vertical, m.target_model));
        let file = FileFacts {
            consultant_profile: self.consultant_profile,
            vertical: vertical.map(Cow::into_owned),
            target_model: target_model.map(Cow::into_owned),
        };
        Survey { conversations, file }
    }
}

/// A key that is present and not empty.
fn key(value: &Option<Cow<'_, str>>) -> Option<String> {
    value.as_deref().filter(|k| !k.is_empty()).map(str::to_owned)
}

/// [`Conversation::figures`] of these pairs.
fn figures(pairs: &[Pair], catalogue_score: Option<f64>, scaffolding: ScaffoldingKeys) -> ConversationFigures {
    let training = || pairs.iter().filter_map(|p| p.training_metadata.as_ref());
    let scores: Vec<f64> = training().filter_map(|t| t.quality_score).collect();
    ConversationFigures {
        turns: pairs.len(),
        training_pairs: pairs.iter().filter(|p| p.target_response.is_some_and(|t| t.get().starts_with('"'))).count(),
        human_reviewed_pairs: training().filter(|t| t.human_reviewed == Some(true)).count(),
        quality_score: catalogue_score.or_else(|| mean_score(&scores)),
        scaffolding,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anything_but_the_two_kinds_is_left_to_the_full_reader() {
        assert_eq!(survey(b"[]"), None);
        assert_eq!(survey(b"{\"training_pairs\": [], } "), None);
        assert_eq!(survey(b"{\"conversation_metadata\": {}, \"turns\": []}"), None);
        // A type the full reader would report on.
        assert_eq!(survey(b"{\"training_pairs\": [{\"training_metadata\": {\"quality_score\": \"high\"}}]}"), None);
    }

    #[test]
    fn a_null_file_metadata_still_makes_a_full_file() {
        let survey = survey(br#"{"training_file_metadata": null, "consultant_profile": {}}"#).unwrap();
        assert!(survey.conversations.is_empty(), "a full file without conversations, not one empty conversation");
        assert_eq!(survey.file.consultant_profile, Some(crate::json!({})));
    }

    #[test]
    fn a_null_target_is_no_training_pair_and_a_null_profile_is_still_a_profile() {
        let text = br#"{"consultant_profile": null, "training_pairs": [
            {"target_response": null, "training_metadata": {"quality_score": 4, "human_reviewed": true}},
            {"target_response": "Yes.", "training_metadata": {"quality_score": 5}}]}"#;
        let survey = survey(text).unwrap();
        let contribution = &survey.conversations[0];
        assert_eq!(contribution.consultant_profile, Some(Value::Null));
        assert_eq!((contribution.figures.turns, contribution.figures.training_pairs), (2, 1));
        assert_eq!(contribution.figures.human_reviewed_pairs, 1);
        assert_eq!(contribution.figures.quality_score, Some(4.5));
    }
}
