//! A build's first pass: what each input contributes to the header of the
//! training file (figures, consultant profile, vertical, target model), read
//! without copying the texts. With the header known first, the full JSON is
//! written front to back in one go instead of being assembled from a
//! temporary body.
//!
//! A document is skimmed ([`parse::skim`]): each pair keeps only what the
//! figures depend on. The skimmed document then goes through the full
//! reader's own code ([`Conversation::from_enriched`],
//! [`Conversation::figures`]), so both passes compute every figure the same
//! way. The survey reads well-formed documents of the two kinds and says
//! `None` for anything else; the caller then reads the file the full way.
//! Nor is it trusted blindly: the second pass recomputes every figure from
//! the parsed conversations, and the two must agree.

use crate::model::Conversation;
use crate::parse::{self, Keep, Shape};
use crate::quality::ConversationFigures;
use crate::value::{Map, Value};

/// What the figures depend on in a pair: whether its target is a string,
/// its scores, whether it was reviewed, and its scaffolding keys (an
/// enriched file falls back on the first pair's). The rest, the texts above
/// all, is skipped.
const PAIR_SHAPE: Shape = &[
    ("target_response", Keep::Kind),
    ("training_metadata", Keep::Only(&[("quality_score", Keep::All), ("human_reviewed", Keep::All)])),
    ("conversation_metadata", Keep::Only(&[("persona_archetype", Keep::All), ("emotional_arc_key", Keep::All), ("training_topic_key", Keep::All)])),
];

/// What one conversation says about the training file it goes into.
#[derive(Clone, Debug, PartialEq)]
pub struct Contribution {
    pub conversation_id: String,
    pub figures: ConversationFigures,
    pub consultant_profile: Option<Value>,
    pub vertical: Option<String>,
}

impl Contribution {
    pub fn of(conversation: &Conversation) -> Self {
        Self { conversation_id: conversation.conversation_id.clone(), figures: conversation.figures(), consultant_profile: conversation.consultant_profile.clone(), vertical: conversation.vertical.clone() }
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
/// memory; `None` when `text` is anything else (read it the full way: that
/// also explains what is wrong with it).
pub fn survey(text: &[u8]) -> Option<Survey> {
    let Value::Object(mut document) = parse::skim(simdutf8::basic::from_utf8(text).ok()?, PAIR_SHAPE)? else { return None };
    // The kinds told apart as the full reader tells them: by the keys present.
    if document.contains_key("conversations") || document.contains_key("training_file_metadata") {
        let entries = match document.remove("conversations") {
            Some(Value::Array(entries)) => entries,
            None => Vec::new(),
            Some(_) => return None,
        };
        let conversations = entries.into_iter().map(|entry| Contribution::of(&Conversation::from_full_entry(entry, None, None))).collect();
        return Some(Survey { conversations, file: FileFacts::of_full_file(&document) });
    }
    if document.contains_key("turns") && !document.contains_key("training_pairs") {
        return None; // a raw conversation
    }
    Some(Survey { conversations: vec![Contribution::of(&Conversation::from_enriched(document))], file: FileFacts::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anything_but_the_two_kinds_is_left_to_the_full_reader() {
        assert_eq!(survey(b"[]"), None);
        assert_eq!(survey(b"{\"training_pairs\": [], } "), None);
        assert_eq!(survey(b"{\"conversation_metadata\": {}, \"turns\": []}"), None);
        assert_eq!(survey(b"{\"conversations\": {}}"), None);
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
