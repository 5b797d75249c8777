//! Enrichment proper (spec `enrichment.md` §2.4): one training pair per
//! turn, built from the conversation's turns and the catalogue's scaffolding,
//! with the original's bugs fixed (see the module docs of [`super`]).

use crate::json;
use crate::value::{Map, Value};

use super::reference::{client_background, input_parameters, Reference};
use super::{Settings, Subject};
use crate::quality::{round2, QualityTier};
use crate::valence;

const DEFAULT_SKILLS: [&str; 2] = ["empathy", "active_listening"];
const DEFAULT_OUTCOME: &str = "Provide emotionally intelligent support";
const DEFAULT_OBJECTIVE: &str = "Provide emotionally intelligent financial guidance";

/// Why a validated conversation could not be enriched.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EnrichError(pub String);

struct Turn<'a> {
    role: &'a str,
    content: &'a str,
    primary: &'a str,
    secondary: Option<&'a str>,
    intensity: Value,
}

fn read_turns(turns: &[Value]) -> Result<Vec<Turn<'_>>, EnrichError> {
    turns
        .iter()
        .enumerate()
        .map(|(index, turn)| {
            let field = |key: &str| turn.get(key).and_then(Value::as_str);
            let context = turn.get("emotional_context");
            let emotion = |key: &str| context.and_then(|c| c.get(key)).and_then(Value::as_str).filter(|s| !s.trim().is_empty());
            let missing = |what: &str| EnrichError(format!("turns[{index}] has no {what}"));
            Ok(Turn {
                role: field("role").ok_or_else(|| missing("role"))?,
                content: field("content").ok_or_else(|| missing("content"))?,
                primary: emotion("primary_emotion").ok_or_else(|| missing("primary_emotion"))?,
                secondary: emotion("secondary_emotion"),
                intensity: context.and_then(|c| c.get("intensity")).filter(|i| i.is_number()).cloned().ok_or_else(|| missing("intensity"))?,
            })
        })
        .collect()
}

/// The enriched v4 document for a validated raw or parsed conversation.
pub fn enrich(document: &Value, reference: &Reference, subject: &Subject, settings: &Settings) -> Result<Value, EnrichError> {
    let metadata = document.get("conversation_metadata").and_then(Value::as_object).ok_or_else(|| EnrichError("no conversation_metadata".into()))?;
    let turns = read_turns(document.get("turns").and_then(Value::as_array).ok_or_else(|| EnrichError("no turns".into()))?)?;
    let llm_text = |key: &str| metadata.get(key).and_then(Value::as_str).filter(|s| !s.trim().is_empty());
    let parameters = input_parameters(reference, document.get("input_parameters").and_then(Value::as_object));
    let parameter = |key: &str| parameters.as_ref().and_then(|p| p.get(key)).and_then(Value::as_str).filter(|s| !s.is_empty());

    // The database persona wins over a name the LLM invented (persona-mismatch fix).
    let client_persona = match &reference.persona {
        Some(persona) => persona.client_persona(),
        None => llm_text("client_persona").unwrap_or_default().to_owned(),
    };
    let mut conversation_metadata = Map::new();
    conversation_metadata.insert("client_persona".into(), client_persona.clone().into());
    conversation_metadata.insert("client_background".into(), client_background(reference.persona.as_ref(), &client_persona).into());
    for key in ["session_context", "conversation_phase"] {
        conversation_metadata.insert(key.into(), llm_text(key).unwrap_or_default().into());
    }
    conversation_metadata.insert("expected_outcome".into(), llm_text("expected_outcome").unwrap_or(DEFAULT_OUTCOME).into());
    for (pair_key, parameter_key) in crate::validate::SCAFFOLDING_PAIR_KEYS {
        if let Some(value) = parameter(parameter_key) {
            conversation_metadata.insert(pair_key.into(), value.into());
        }
    }

    let category = reference.template.as_ref().map(|t| t.category.as_str()).filter(|c| !c.is_empty()).unwrap_or("fp_conversation");
    let system_prompt = subject.system_prompt.filter(|p| !p.trim().is_empty()).unwrap_or(&settings.system_prompt);
    let complexity = reference.training_topic.as_ref().and_then(|t| t.complexity_level.as_deref()).unwrap_or("intermediate");
    let objective = parameter("training_topic_key").or_else(|| reference.training_topic.as_ref().map(|t| t.name.as_str())).unwrap_or(DEFAULT_OBJECTIVE);
    let skills: Vec<&str> = match reference.template.as_ref().and_then(|t| t.skills.as_ref()) {
        Some(skills) => skills.iter().map(String::as_str).collect(),
        None => DEFAULT_SKILLS.to_vec(),
    };
    let progression = reference
        .emotional_arc
        .as_ref()
        .and_then(|arc| Some(format!("{}(0.8) → {}(0.8)", arc.starting_emotion.as_deref()?, arc.ending_emotion.as_deref()?)))
        .unwrap_or_default();
    // A missing score stays missing: no invented 3.0, no random jitter.
    let score = subject.quality_score.map(round2);

    let mut pairs = Vec::with_capacity(turns.len());
    for (index, turn) in turns.iter().enumerate() {
        let n = index + 1;
        let history: Vec<Value> = turns[..index]
            .iter()
            .enumerate()
            .map(|(k, earlier)| {
                let mut state = Map::new();
                state.insert("primary".into(), earlier.primary.into());
                if let Some(secondary) = earlier.secondary {
                    state.insert("secondary".into(), secondary.into());
                }
                state.insert("intensity".into(), earlier.intensity.clone());
                json!({"turn": k + 1, "role": earlier.role, "content": earlier.content, "emotional_state": state})
            })
            .collect();
        let current_user_input = match turn.role {
            "user" => turn.content,
            _ => turns[..index].iter().rev().find(|t| t.role == "user").map_or("", |t| t.content),
        };
        let mut detected = Map::new();
        detected.insert("primary".into(), turn.primary.into());
        detected.insert("primary_confidence".into(), json!(0.8));
        if let Some(secondary) = turn.secondary {
            detected.insert("secondary".into(), secondary.into());
            detected.insert("secondary_confidence".into(), json!(0.7));
        }
        detected.insert("intensity".into(), turn.intensity.clone());
        detected.insert("valence".into(), valence::of_label(turn.primary).into());
        let target = (turn.role == "assistant").then_some(turn.content);
        pairs.push(json!({
            "id": format!("{category}_turn{n}"),
            "conversation_id": subject.conversation_id,
            "turn_number": n,
            "conversation_metadata": conversation_metadata,
            "system_prompt": system_prompt,
            "conversation_history": history,
            "current_user_input": current_user_input,
            "emotional_context": {"detected_emotions": detected},
            "target_response": target,
            "training_metadata": {
                "difficulty_level": format!("{complexity}_conversation_turn_{n}"),
                "key_learning_objective": objective,
                "demonstrates_skills": skills,
                "conversation_turn": n,
                "emotional_progression_target": progression,
                "quality_score": score,
                "quality_criteria": {"empathy_score": score, "clarity_score": score, "appropriateness_score": score, "brand_voice_alignment": score},
                "human_reviewed": false,
                "reviewer_notes": null,
                "use_as_seed_example": false,
                "generate_variations_count": 0,
            },
        }));
    }

    let template_name = reference.template.as_ref().and_then(|t| t.name.as_deref()).unwrap_or("unknown");
    let mut out = Map::new();
    out.insert(
        "dataset_metadata".into(),
        json!({
            "dataset_name": format!("fp_conversation_{}", subject.conversation_id),
            "version": "1.0.0",
            "created_date": subject.created_at.format("%Y-%m-%d").to_string(),
            "vertical": settings.vertical,
            "consultant_persona": settings.consultant_persona,
            "target_use": settings.target_use,
            "conversation_source": "synthetic_platform_generated",
            "quality_tier": QualityTier::of_score(score).as_str(),
            "total_conversations": 1,
            "total_turns": turns.len(),
            "notes": format!("Generated via template: {template_name}"),
        }),
    );
    out.insert("consultant_profile".into(), settings.consultant_profile.clone());
    out.insert("training_pairs".into(), Value::Array(pairs));
    if let Some(parameters) = parameters {
        out.insert("input_parameters".into(), Value::Object(parameters));
    }
    Ok(Value::Object(out))
}
