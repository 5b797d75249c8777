//! Quality scores, tiers and scaffolding distribution: the figures a training
//! file states about its conversations, computed one way everywhere.

use serde::Serialize;

use crate::diagnostics::Findings;
use crate::path::JsonPath;
use crate::value::{Map, Value};

/// Tiers on the 1–5 scale (spec `v4-format.md` §2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityTier {
    SeedDataset,
    Production,
    Experimental,
    Rejected,
}

impl QualityTier {
    /// The tier of a score; an unscored conversation is `experimental`, as in the original.
    pub fn of_score(score: Option<f64>) -> Self {
        match score {
            Some(s) if s >= 4.5 => Self::SeedDataset,
            Some(s) if s >= 3.5 => Self::Production,
            Some(s) if s >= 2.5 => Self::Experimental,
            Some(_) => Self::Rejected,
            None => Self::Experimental,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SeedDataset => "seed_dataset",
            Self::Production => "production",
            Self::Experimental => "experimental",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::SeedDataset, Self::Production, Self::Experimental, Self::Rejected]
            .into_iter()
            .find(|tier| tier.as_str() == text)
    }
}

/// Rounds a figure to 2 decimals, so sums in another order state the same number.
pub fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// A conversation's three scaffolding keys; empty keys are absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScaffoldingKeys {
    pub persona: Option<String>,
    pub emotional_arc: Option<String>,
    pub training_topic: Option<String>,
}

impl ScaffoldingKeys {
    /// From a full file's `conversation_metadata.scaffolding` block.
    pub fn from_scaffolding(block: &Map<String, Value>) -> Self {
        let key = |name: &str| block.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        Self { persona: key("persona_key"), emotional_arc: key("emotional_arc_key"), training_topic: key("training_topic_key") }
    }

    /// From an enriched or parsed file's `input_parameters` block (same key names).
    pub fn from_parameters(block: Option<&Value>) -> Self {
        block.and_then(Value::as_object).map(Self::from_scaffolding).unwrap_or_default()
    }

    /// These keys, each falling back to `other`'s.
    pub fn or(self, other: Self) -> Self {
        Self {
            persona: self.persona.or(other.persona),
            emotional_arc: self.emotional_arc.or(other.emotional_arc),
            training_topic: self.training_topic.or(other.training_topic),
        }
    }
}

/// `{personas, emotional_arcs, training_topics}` → `{key: conversation count}`, keys in first-seen order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Distribution {
    personas: Map<String, Value>,
    emotional_arcs: Map<String, Value>,
    training_topics: Map<String, Value>,
}

impl Distribution {
    pub fn count(&mut self, keys: ScaffoldingKeys) {
        for (map, key) in [
            (&mut self.personas, keys.persona),
            (&mut self.emotional_arcs, keys.emotional_arc),
            (&mut self.training_topics, keys.training_topic),
        ] {
            if let Some(key) = key {
                let count = map.get(&key).and_then(Value::as_u64).unwrap_or(0);
                map.insert(key, Value::from(count + 1));
            }
        }
    }

    /// The inverse of [`Distribution::to_value`]; `None` for anything else.
    pub fn from_value(value: &Value) -> Option<Self> {
        let map = |name: &str| value.get(name).and_then(Value::as_object).cloned();
        Some(Self { personas: map("personas")?, emotional_arcs: map("emotional_arcs")?, training_topics: map("training_topics")? })
    }

    pub fn to_value(&self) -> Value {
        let mut out = Map::new();
        out.insert("personas".into(), Value::Object(self.personas.clone()));
        out.insert("emotional_arcs".into(), Value::Object(self.emotional_arcs.clone()));
        out.insert("training_topics".into(), Value::Object(self.training_topics.clone()));
        Value::Object(out)
    }

    /// Rule 16: a stated distribution must equal this recount.
    pub fn check_against(&self, findings: &mut Findings, stated: Option<&Value>, path: &JsonPath, conversations: usize) {
        let Some(stated) = stated.and_then(Value::as_object) else {
            findings.error(path, "missing_key", "must be an object of three maps");
            return;
        };
        for (name, recount) in [("personas", &self.personas), ("emotional_arcs", &self.emotional_arcs), ("training_topics", &self.training_topics)] {
            let Some(map) = stated.get(name).and_then(Value::as_object) else {
                findings.error(&path.key(name), "missing_key", format!("`{name}` must be a map of key to count"));
                continue;
            };
            let same = map.len() == recount.len() && recount.iter().all(|(k, v)| map.get(k).and_then(Value::as_u64) == v.as_u64());
            // A sum below the conversation count is no finding of its own
            // (spec §2.4: empty keys are skipped); each conversation without
            // its key is already reported, on that conversation.
            if !same {
                let sum: u64 = map.values().filter_map(Value::as_u64).sum();
                findings.error(
                    &path.key(name),
                    "distribution_mismatch",
                    format!("does not match a recount of the conversations' scaffolding (counts add up to {sum} of {conversations} conversations): {}", Value::Object(recount.clone())),
                );
            }
        }
    }
}

/// What one conversation contributes to a training file's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationFigures {
    /// All pair records (user and assistant).
    pub turns: usize,
    /// Pairs with a target: the JSONL lines.
    pub training_pairs: usize,
    pub human_reviewed_pairs: usize,
    /// The catalogue score when known, else the mean of the pair scores; `None` when unscored.
    pub quality_score: Option<f64>,
    pub scaffolding: ScaffoldingKeys,
}

/// Running totals over a file's conversations: everything its metadata states.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub conversations: usize,
    pub turns: usize,
    pub training_pairs: usize,
    pub human_reviewed_pairs: usize,
    scored: usize,
    score_sum: f64,
    score_min: Option<f64>,
    score_max: Option<f64>,
    pub distribution: Distribution,
}

impl Totals {
    pub fn add(&mut self, figures: &ConversationFigures) {
        self.conversations += 1;
        self.turns += figures.turns;
        self.training_pairs += figures.training_pairs;
        self.human_reviewed_pairs += figures.human_reviewed_pairs;
        if let Some(score) = figures.quality_score {
            self.scored += 1;
            self.score_sum += score;
            self.score_min = Some(self.score_min.map_or(score, |m| m.min(score)));
            self.score_max = Some(self.score_max.map_or(score, |m| m.max(score)));
        }
        self.distribution.count(figures.scaffolding.clone());
    }

    /// The totals as the catalogue keeps them between versions: every field,
    /// the score sum exactly (floats round-trip), so adding to them later
    /// gives the figures a build of all the conversations in order gives.
    pub fn to_value(&self) -> Value {
        crate::json!({
            "conversations": self.conversations, "turns": self.turns, "training_pairs": self.training_pairs,
            "human_reviewed_pairs": self.human_reviewed_pairs, "scored": self.scored, "score_sum": self.score_sum,
            "score_min": self.score_min, "score_max": self.score_max, "distribution": self.distribution.to_value(),
        })
    }

    /// The inverse of [`Totals::to_value`]; `None` for anything else.
    pub fn from_value(value: &Value) -> Option<Self> {
        let count = |name: &str| value.get(name).and_then(Value::as_u64).map(|n| n as usize);
        let score = |name: &str| match value.get(name)? {
            Value::Null => Some(None),
            other => other.as_f64().map(Some),
        };
        Some(Self {
            conversations: count("conversations")?,
            turns: count("turns")?,
            training_pairs: count("training_pairs")?,
            human_reviewed_pairs: count("human_reviewed_pairs")?,
            scored: count("scored")?,
            score_sum: value.get("score_sum")?.as_f64()?,
            score_min: score("score_min")?,
            score_max: score("score_max")?,
            distribution: Distribution::from_value(value.get("distribution")?)?,
        })
    }

    pub fn quality(&self) -> QualitySummary {
        let avg = (self.scored > 0).then(|| round2(self.score_sum / self.scored as f64));
        let percentage = if self.turns == 0 { 0.0 } else { round2(self.human_reviewed_pairs as f64 * 100.0 / self.turns as f64) };
        QualitySummary {
            avg_quality_score: avg,
            min_quality_score: self.score_min.map(round2),
            max_quality_score: self.score_max.map(round2),
            human_reviewed_count: self.human_reviewed_pairs,
            human_reviewed_percentage: percentage,
        }
    }
}

/// The `quality_summary` block; figures are null when nothing is scored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QualitySummary {
    #[serde(serialize_with = "figure")]
    pub avg_quality_score: Option<f64>,
    #[serde(serialize_with = "figure")]
    pub min_quality_score: Option<f64>,
    #[serde(serialize_with = "figure")]
    pub max_quality_score: Option<f64>,
    pub human_reviewed_count: usize,
    #[serde(serialize_with = "figure")]
    pub human_reviewed_percentage: f64,
}

/// A figure as JavaScript writes numbers: `3`, not `3.0` (the original's files say `3`).
pub fn js_number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        Value::from(value as i64)
    } else {
        Value::from(value)
    }
}

fn figure<S: serde::Serializer, F: Into<Option<f64>> + Copy>(value: &F, serializer: S) -> Result<S::Ok, S::Error> {
    let value: Option<f64> = (*value).into();
    value.map(js_number).serialize(serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_use_the_one_to_five_scale() {
        assert_eq!(QualityTier::of_score(Some(4.5)), QualityTier::SeedDataset);
        assert_eq!(QualityTier::of_score(Some(3.5)), QualityTier::Production);
        assert_eq!(QualityTier::of_score(Some(2.5)), QualityTier::Experimental);
        assert_eq!(QualityTier::of_score(Some(2.49)), QualityTier::Rejected);
        assert_eq!(QualityTier::of_score(None), QualityTier::Experimental);
    }

    #[test]
    fn quality_is_null_when_nothing_is_scored_never_zero() {
        let mut totals = Totals::default();
        totals.add(&ConversationFigures { turns: 2, training_pairs: 1, human_reviewed_pairs: 0, quality_score: None, scaffolding: ScaffoldingKeys::default() });
        let quality = totals.quality();
        assert_eq!((quality.avg_quality_score, quality.min_quality_score, quality.max_quality_score), (None, None, None));
    }

    #[test]
    fn totals_round_trip_exactly() {
        let mut totals = Totals::default();
        for (score, persona) in [(Some(0.1), "a"), (None, "b"), (Some(0.2), "a"), (Some(4.675), "c")] {
            let scaffolding = ScaffoldingKeys { persona: Some(persona.into()), ..ScaffoldingKeys::default() };
            totals.add(&ConversationFigures { turns: 3, training_pairs: 1, human_reviewed_pairs: 1, quality_score: score, scaffolding });
        }
        let text = serde_json::to_string(&totals.to_value()).unwrap();
        let back = Totals::from_value(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back, totals);
        assert_eq!(back.distribution.to_value(), totals.distribution.to_value(), "keys keep their first-seen order");
    }

    #[test]
    fn averages_over_conversations_and_rounds_to_two_decimals() {
        let mut totals = Totals::default();
        for score in [3.0, 4.0, 4.0] {
            totals.add(&ConversationFigures { turns: 4, training_pairs: 2, human_reviewed_pairs: 1, quality_score: Some(score), scaffolding: ScaffoldingKeys::default() });
        }
        let quality = totals.quality();
        assert_eq!(quality.avg_quality_score, Some(3.67));
        assert_eq!((quality.min_quality_score, quality.max_quality_score), (Some(3.0), Some(4.0)));
        assert_eq!(quality.human_reviewed_percentage, 25.0);
    }
}
