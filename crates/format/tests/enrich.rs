//! Enrichment on the original system's real files: the raw → enriched pair
//! of conversation 330dc058 (David Chen, shame_to_acceptance, grandparent_529)
//! and the seed bugs of spec `enrichment.md` §3.

mod common;

use chrono::{DateTime, Utc};
use common::read_fixture;
use lora_files_format::enrich::reference::{EmotionalArc, Persona, Reference, SeedKind, SeedRow, Template, TrainingTopic};
use lora_files_format::enrich::{self, Outcome, Settings, Subject};
use lora_files_format::valence;
use serde_json::{json, Value};

const CONVERSATION: &str = "330dc058-6d75-4609-96f7-b6e87b39f536";

/// A seed row of the bundled scaffolding files, with the production id the
/// spec gives for it (the seed files carry none).
fn seed(file: &str, key: &str, id: &str) -> SeedRow {
    let text = read_fixture(&format!("scaffolding/{file}"));
    let row = text
        .lines()
        .map(|line| SeedRow::from_value(serde_json::from_str(line).unwrap()).unwrap())
        .find(|row| row.key == key)
        .unwrap_or_else(|| panic!("{key} in {file}"));
    SeedRow { id: id.into(), ..row }
}

fn david_reference() -> Reference {
    let persona = seed("personas-seed.ndjson", "pragmatic_optimist", "aa514346-cd61-42ac-adad-498934975402");
    let arc = seed("emotional-arcs-seed.ndjson", "shame_to_acceptance", "d2466485-d5a0-4c54-b9c4-d5ce3cf47ad3");
    let topic = seed("training-topics-seed.ndjson", "grandparent_529", "aa8a0197-da37-43b6-a5b6-6ff581c94b61");
    assert_eq!((persona.kind, arc.kind, topic.kind), (SeedKind::Persona, SeedKind::EmotionalArc, SeedKind::TrainingTopic));
    Reference {
        persona: Some(Persona::from_row(&persona.id, &persona.key, &persona.name, &persona.data)),
        emotional_arc: Some(EmotionalArc::from_row(&arc.id, &arc.key, &arc.name, &arc.data)),
        training_topic: Some(TrainingTopic::from_row(&topic.id, &topic.key, &topic.name, &topic.data)),
        template: Some(Template::from_row(
            &json!({"template_name": "Template - Shame → Acceptance - Financial Trauma", "emotional_arc_type": "shame_to_acceptance", "category": "therapeutic"}).into(),
        )),
    }
}

fn subject(conversation_id: &str) -> Subject<'_> {
    Subject {
        conversation_id,
        created_at: DateTime::parse_from_rfc3339("2025-12-02T10:00:00Z").unwrap().with_timezone(&Utc),
        quality_score: None,
        system_prompt: None,
    }
}

fn enriched(source: &[u8], reference: &Reference, subject: &Subject) -> Value {
    match enrich::run(source, reference, subject, &Settings::default(), 100 << 20, "2025-12-02T10:00:00.000Z") {
        Outcome::Enriched { bytes, report, .. } => {
            assert!(report.is_valid, "{report:?}");
            serde_json::from_slice(&bytes).unwrap()
        }
        other => panic!("not enriched: {other:?}"),
    }
}

fn pairs(document: &Value) -> &Vec<Value> {
    document["training_pairs"].as_array().unwrap()
}

/// Every field the spec says is derived the same way equals the original's
/// output; the fields listed in `ON_PURPOSE` differ, each for a reason.
#[test]
fn the_raw_fixture_reproduces_the_original_enriched_output() {
    // (pair field, why it differs)
    const ON_PURPOSE: [(&str, &str); 5] = [
        ("/conversation_id", "the conversation's real UUID, not the template category (ids collided across conversations)"),
        ("/training_metadata/key_learning_objective", "the topic key; the original's fixture predates fix bcbdbf9 (stale `no_retirement_at_45`)"),
        ("/training_metadata/demonstrates_skills", "real skills or the default, never the template's persona keys"),
        ("/training_metadata/quality_score", "a missing score stays missing (null), not an invented 3"),
        ("/training_metadata/quality_criteria", "no random ±0.2 jitter on an invented score"),
    ];
    let ours = enriched(read_fixture("raw/single-convo-file-3-raw.json").as_bytes(), &david_reference(), &subject(CONVERSATION));
    let original: Value = serde_json::from_str(&read_fixture("raw/single-convo-file-3-enriched.json")).unwrap();

    for key in ["dataset_metadata", "consultant_profile", "input_parameters"] {
        assert_eq!(ours[key], original[key], "{key}");
    }
    let (ours_pairs, original_pairs) = (pairs(&ours), pairs(&original));
    assert_eq!(ours_pairs.len(), original_pairs.len());
    for (index, (mine, theirs)) in ours_pairs.iter().zip(original_pairs).enumerate() {
        let keys = |pair: &Value| pair.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(mine), keys(theirs), "pair {index} key order");
        let mut mine = mine.clone();
        let mut theirs = theirs.clone();
        for (pointer, _why) in ON_PURPOSE {
            *mine.pointer_mut(pointer).unwrap() = Value::Null;
            *theirs.pointer_mut(pointer).unwrap() = Value::Null;
        }
        // Valence differs on purpose where substrings and whole words disagree
        // ("acceptance" is positive here, "mixed" to the original).
        let valence = "/emotional_context/detected_emotions/valence";
        let primary = mine["emotional_context"]["detected_emotions"]["primary"].as_str().unwrap().to_owned();
        assert_eq!(mine.pointer(valence).unwrap(), valence::of_label(&primary));
        assert_eq!(theirs.pointer(valence).unwrap(), valence::original_rule(&primary));
        *mine.pointer_mut(valence).unwrap() = Value::Null;
        *theirs.pointer_mut(valence).unwrap() = Value::Null;
        assert_eq!(mine, theirs, "pair {index}");
    }
    let first = &ours_pairs[1];
    assert_eq!(first["conversation_id"], CONVERSATION);
    assert_eq!(first["training_metadata"]["key_learning_objective"], "grandparent_529");
    assert_eq!(first["training_metadata"]["demonstrates_skills"], json!(["empathy", "active_listening"]));
    assert_eq!(first["training_metadata"]["quality_score"], Value::Null);
}

#[test]
fn enrichment_is_deterministic() {
    let source = read_fixture("raw/single-convo-file-3-raw.json");
    let run = || match enrich::run(source.as_bytes(), &david_reference(), &subject(CONVERSATION), &Settings::default(), 1 << 30, "t") {
        Outcome::Enriched { bytes, .. } => bytes,
        other => panic!("{other:?}"),
    };
    assert_eq!(run(), run());
}

/// Bug (a): `input_parameters` from the parsed file reaches the output,
/// all nine fields, whichever path the conversation came by.
#[test]
fn input_parameters_are_carried_from_a_parsed_file() {
    let mut parsed: Value = serde_json::from_str(&read_fixture("raw/single-convo-file-3-raw.json")).unwrap();
    let block = json!({
        "persona_id": "5a4a6042-5bb7-4da6-b2e2-119b6f97be6f", "persona_key": "overwhelmed_avoider", "persona_name": "Marcus Chen",
        "emotional_arc_id": "d2466485-d5a0-4c54-b9c4-d5ce3cf47ad3", "emotional_arc_key": "shame_to_acceptance", "emotional_arc_name": "Shame → Acceptance",
        "training_topic_id": "a04a104f-96a6-4d0c-b0ea-5f44f4a2203d", "training_topic_key": "mortgage_payoff_strategy", "training_topic_name": "Accelerated Mortgage Payoff",
    });
    parsed["input_parameters"] = block.clone();
    let out = enriched(&serde_json::to_vec(&parsed).unwrap(), &Reference::default(), &subject(CONVERSATION));
    assert_eq!(out["input_parameters"], block);

    // Raw, with nothing known: no block and no per-pair scaffolding.
    let raw = read_fixture("raw/single-convo-file-3-raw.json");
    let out = enriched(raw.as_bytes(), &Reference::default(), &subject(CONVERSATION));
    assert!(out.get("input_parameters").is_none());
    for pair in pairs(&out) {
        for key in ["persona_archetype", "emotional_arc", "emotional_arc_key", "training_topic", "training_topic_key"] {
            assert!(pair["conversation_metadata"].get(key).is_none(), "{key}");
        }
    }
}

/// Bug (b): the five per-pair scaffolding fields, in order, after `expected_outcome`;
/// an empty arc key omits only that key.
#[test]
fn per_pair_scaffolding_fields() {
    let mut parsed: Value = serde_json::from_str(&read_fixture("raw/single-convo-file-3-raw.json")).unwrap();
    parsed["input_parameters"] = json!({
        "persona_id": "p", "persona_key": "overwhelmed_avoider", "persona_name": "Marcus Chen",
        "emotional_arc_id": "a", "emotional_arc_key": "shame_to_acceptance", "emotional_arc_name": "Shame → Acceptance",
        "training_topic_id": "t", "training_topic_key": "mortgage_payoff_strategy", "training_topic_name": "Accelerated Mortgage Payoff",
    });
    let out = enriched(&serde_json::to_vec(&parsed).unwrap(), &Reference::default(), &subject(CONVERSATION));
    for pair in pairs(&out) {
        let metadata = pair["conversation_metadata"].as_object().unwrap();
        let tail: Vec<(&str, &str)> = metadata.iter().skip(5).map(|(k, v)| (k.as_str(), v.as_str().unwrap())).collect();
        assert_eq!(metadata.keys().nth(4).unwrap(), "expected_outcome");
        assert_eq!(
            tail,
            [
                ("persona_archetype", "overwhelmed_avoider"),
                ("emotional_arc", "Shame → Acceptance"),
                ("emotional_arc_key", "shame_to_acceptance"),
                ("training_topic", "Accelerated Mortgage Payoff"),
                ("training_topic_key", "mortgage_payoff_strategy"),
            ]
        );
    }
    parsed["input_parameters"]["emotional_arc_key"] = json!("");
    let out = enriched(&serde_json::to_vec(&parsed).unwrap(), &Reference::default(), &subject(CONVERSATION));
    let metadata = pairs(&out)[0]["conversation_metadata"].as_object().unwrap();
    assert!(metadata.get("emotional_arc_key").is_none());
    assert_eq!(metadata.len(), 9);
    // The topic key is the objective (fix bcbdbf9), e.g. grandparent_529 → grandparent_529.
    assert_eq!(pairs(&out)[0]["training_metadata"]["key_learning_objective"], "mortgage_payoff_strategy");
}

/// Bug (c) on real data and the persona mismatch (#5/#6): a raw file naming
/// "Marcus Chen" enriched for David's persona shows David on every pair.
#[test]
fn the_database_persona_overrides_the_llm_persona() {
    let mut raw: Value = serde_json::from_str(&read_fixture("raw/single-convo-file-3-raw.json")).unwrap();
    raw["conversation_metadata"]["client_persona"] = json!("Marcus Chen - Tech Professional Couple navigating shared finances");
    let out = enriched(&serde_json::to_vec(&raw).unwrap(), &david_reference(), &subject(CONVERSATION));
    for pair in pairs(&out) {
        assert_eq!(pair["conversation_metadata"]["client_persona"], "David Chen - The Pragmatic Optimist");
        let background = pair["conversation_metadata"]["client_background"].as_str().unwrap();
        assert!(background.starts_with("Age 35, male, Urban/Suburban, married or partnership; "), "{background}");
        assert!(!background.contains("[object Object]"));
    }
}

/// Valence by whole words on the original's edge cases.
#[test]
fn valence_edge_cases() {
    let mut raw: Value = serde_json::from_str(&read_fixture("raw/recent-raw.json")).unwrap();
    let labels = [("hopeless", "negative"), ("worried", "negative"), ("fearful", "negative"), ("hope", "positive"), ("curious but wary", "positive")];
    for (index, (label, _)) in labels.iter().enumerate() {
        raw["turns"][index]["emotional_context"]["primary_emotion"] = json!(label);
    }
    let out = enriched(&serde_json::to_vec(&raw).unwrap(), &Reference::default(), &subject(CONVERSATION));
    for (index, (label, valence)) in labels.iter().enumerate() {
        let detected = &pairs(&out)[index]["emotional_context"]["detected_emotions"];
        assert_eq!(detected["primary"], *label);
        assert_eq!(detected["valence"], *valence, "{label}");
    }
    // A persona the catalogue does not know keeps the LLM's name and the fallback background.
    let metadata = &pairs(&out)[0]["conversation_metadata"];
    assert_eq!(metadata["client_background"], format!("Client profile: {}", metadata["client_persona"].as_str().unwrap()));
}

#[test]
fn a_catalogue_score_gives_deterministic_scores_and_tier() {
    let raw = read_fixture("raw/recent-raw.json");
    let scored = Subject { quality_score: Some(4.56), ..subject(CONVERSATION) };
    let out = enriched(raw.as_bytes(), &Reference::default(), &scored);
    assert_eq!(out["dataset_metadata"]["quality_tier"], "seed_dataset");
    for pair in pairs(&out) {
        assert_eq!(pair["training_metadata"]["quality_score"], json!(4.56));
        assert_eq!(pair["training_metadata"]["quality_criteria"]["empathy_score"], json!(4.56));
    }
}

#[test]
fn a_snapshot_system_prompt_wins_over_the_default() {
    let raw = read_fixture("raw/recent-raw.json");
    let with_prompt = Subject { system_prompt: Some("You are a careful coach who always listens before advising the client."), ..subject(CONVERSATION) };
    let out = enriched(raw.as_bytes(), &Reference::default(), &with_prompt);
    assert_eq!(pairs(&out)[0]["system_prompt"], with_prompt.system_prompt.unwrap());
    let out = enriched(raw.as_bytes(), &Reference::default(), &subject(CONVERSATION));
    assert_eq!(pairs(&out)[0]["system_prompt"], Settings::default().system_prompt);
}

#[test]
fn a_repaired_text_is_enriched_with_a_warning_naming_the_repairs() {
    let raw = read_fixture("raw/recent-raw.json");
    let fenced = format!("```json\n{}\n```\n", raw.trim_end().strip_suffix('}').unwrap().to_owned() + ",}");
    match enrich::run(fenced.as_bytes(), &Reference::default(), &subject(CONVERSATION), &Settings::default(), 1 << 30, "t") {
        Outcome::Enriched { report, .. } => {
            let warning = report.warnings.iter().find(|w| w.code == "JSON_REPAIRED").expect("a repair warning");
            assert_eq!(warning.message, "the text was not valid JSON; repaired: a Markdown code fence removed, commas before a closing bracket removed");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn failures_end_in_a_defined_outcome() {
    let report_of = |text: &[u8]| match enrich::run(text, &Reference::default(), &subject(CONVERSATION), &Settings::default(), 1 << 30, "t") {
        Outcome::ValidationFailed(report) => report,
        other => panic!("{other:?}"),
    };
    let report = report_of(b"{\"conversation_metadata\": {");
    assert_eq!(report.blockers.len(), 1);
    assert_eq!(report.blockers[0].code, "INVALID_JSON_SYNTAX");
    let report = report_of(read_fixture("enriched/single-convo-file-3.json").as_bytes());
    assert!(report.blockers.iter().any(|b| b.code == "ALREADY_ENRICHED"));

    let raw = read_fixture("raw/recent-raw.json");
    match enrich::run(raw.as_bytes(), &Reference::default(), &subject(CONVERSATION), &Settings::default(), 1000, "t") {
        Outcome::NormalizationFailed { error, .. } => assert!(error.contains("above the limit of 1000"), "{error}"),
        other => panic!("{other:?}"),
    }
}
