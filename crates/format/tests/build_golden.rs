//! Golden tests of `build` on the original system's real files.

mod common;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use common::{fixture, fixtures};
use lora_files_format::build::{build, BuildError, BuildOptions, BuildSummary, Stage};
use lora_files_format::json;
use lora_files_format::value::Value;

fn options(name: &str) -> BuildOptions {
    BuildOptions {
        name: name.into(),
        description: None,
        target_model: Some("llama-3.1-8b".into()),
        vertical: None,
        jsonl_meta: false,
        now: DateTime::<Utc>::from_timestamp(1_764_000_000, 0).unwrap(),
    }
}

fn build_into(inputs: &[PathBuf], out: &Path, options: &BuildOptions) -> BuildSummary {
    build(inputs, out, options, |_| {}).unwrap_or_else(|e| panic!("build failed: {e} ({e:?})"))
}

/// `count` copies of one enriched conversation, each under its own id, in file order.
fn copies_of_a_conversation(dir: &Path, count: usize) -> Vec<PathBuf> {
    let template = std::fs::read_to_string(fixture("enriched/enriched-2.json")).unwrap();
    (0..count)
        .map(|i| {
            let path = dir.join(format!("{i:04}.json"));
            std::fs::write(&path, template.replace("2ecd51bd-8dd9-478a-9fb4-de20f69bd441", &format!("00000000-0000-4000-8000-{i:012x}"))).unwrap();
            path
        })
        .collect()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn jsonl_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "every JSONL line ends with a newline");
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn building_the_examples_carries_every_pair_and_states_hand_counted_metadata() {
    let out = tempfile::tempdir().unwrap();
    let summary = build_into(&[fixtures().join("enriched")], out.path(), &options("examples"));
    let full = read_json(&summary.json_path);

    // Each conversation's pairs equal its input's, value for value (unknown keys included).
    for entry in std::fs::read_dir(fixtures().join("enriched")).unwrap() {
        let input = read_json(&entry.unwrap().path());
        let name = input["dataset_metadata"]["dataset_name"].as_str().unwrap();
        let id = name.strip_prefix("fp_conversation_").unwrap();
        let conversation = full["conversations"].as_array().unwrap().iter().find(|c| c["conversation_metadata"]["conversation_id"] == id).unwrap();
        assert_eq!(conversation["training_pairs"], input["training_pairs"], "{name}");
    }

    // Counted by hand from the seven files (pairs, pairs with a target):
    // david 6/3, enriched-1 8/4, enriched-2 6/3, jennifer 6/3, single-1..3 5/2 each.
    let metadata = &full["training_file_metadata"];
    assert_eq!(metadata["total_conversations"], 7);
    assert_eq!(metadata["total_training_pairs"], 19);
    assert_eq!(metadata["total_turns"], 41);
    assert_eq!(metadata["target_model"], "llama-3.1-8b");
    assert_eq!(metadata["vertical"], "financial_planning_consultant");
    assert_eq!(metadata["created_date"], "2025-11-24T16:00:00.000Z");
    assert_eq!(
        metadata["quality_summary"],
        json!({"avg_quality_score": 3, "min_quality_score": 3, "max_quality_score": 3, "human_reviewed_count": 0, "human_reviewed_percentage": 0})
    );
    // The two pre-scaffolding examples have no keys and are not counted.
    assert_eq!(
        metadata["scaffolding_distribution"],
        json!({
            "personas": {"anxious_planner": 3, "overwhelmed_avoider": 1, "pragmatic_optimist": 1},
            "emotional_arcs": {"fear_to_confidence": 1, "couple_conflict_to_alignment": 1, "shame_to_acceptance": 3},
            "training_topics": {"eldercare_costs": 2, "grandparent_529": 3}
        })
    );
    assert_eq!(full["consultant_profile"], read_json(&fixture("enriched/enriched-1.json"))["consultant_profile"]);

    let lines = jsonl_lines(&summary.jsonl_path);
    assert_eq!(lines.len(), 19, "one JSONL line per pair with a target, no header");
    let ids: std::collections::HashSet<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), lines.len(), "line ids are unique");
    for line in &lines {
        assert_eq!(line.as_object().unwrap().keys().collect::<Vec<_>>(), lora_files_format::validate::PAIR_KEYS.iter().collect::<Vec<_>>());
        let conversation_id = line["conversation_id"].as_str().unwrap();
        assert!(line["id"].as_str().unwrap().ends_with(&format!("_{}", &conversation_id[..8])));
        assert!(line["target_response"].is_string());
    }

    // What we write validates.
    for path in [&summary.json_path, &summary.jsonl_path] {
        let report = common::validate_path(path);
        assert!(!report.findings.has_errors(), "{}: {:#?}", path.display(), report.findings.errors().collect::<Vec<_>>());
    }
}

#[test]
fn quality_figures_average_conversations_not_pairs() {
    // Give one conversation pair scores of 5 (and matching criteria): its mean is 5.
    let inputs = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures().join("enriched")).unwrap() {
        let path = entry.unwrap().path();
        let mut document = read_json(&path);
        if path.ends_with("enriched-1.json") {
            for pair in document["training_pairs"].as_array_mut().unwrap() {
                pair["training_metadata"]["quality_score"] = json!(5);
                for criterion in pair["training_metadata"]["quality_criteria"].as_object_mut().unwrap().values_mut() {
                    *criterion = json!(4.8);
                }
            }
        }
        std::fs::write(inputs.path().join(path.file_name().unwrap()), lora_files_format::json::to_pretty_vec(&document)).unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    let summary = build_into(&[inputs.path().to_owned()], out.path(), &options("scored"));
    // Six conversations at 3 and one at 5: (6 × 3 + 5) / 7 = 3.2857… → 3.29.
    let quality = &read_json(&summary.json_path)["training_file_metadata"]["quality_summary"];
    assert_eq!(quality["avg_quality_score"], json!(3.29));
    assert_eq!(quality["min_quality_score"], json!(3));
    assert_eq!(quality["max_quality_score"], json!(5));
    let full = read_json(&summary.json_path);
    let scored = full["conversations"].as_array().unwrap().iter().find(|c| c["conversation_metadata"]["quality_score"] == 5).unwrap();
    assert_eq!(scored["conversation_metadata"]["quality_tier"], "seed_dataset");
}

#[test]
fn the_original_golden_pair_keeps_its_conversations_verbatim() {
    // full-file-1.json was built by the original from single-convo-file-1..3.
    let out = tempfile::tempdir().unwrap();
    let inputs: Vec<PathBuf> = (1..=3).map(|i| fixture(&format!("enriched/single-convo-file-{i}.json"))).collect();
    let summary = build_into(&inputs, out.path(), &options("File 2a"));
    let ours = read_json(&summary.json_path);
    let original = read_json(&fixture("full/full-file-1.json"));
    for conversation in original["conversations"].as_array().unwrap() {
        let id = &conversation["conversation_metadata"]["conversation_id"];
        let mine = ours["conversations"].as_array().unwrap().iter().find(|c| &c["conversation_metadata"]["conversation_id"] == id).unwrap();
        assert_eq!(mine["training_pairs"], conversation["training_pairs"]);
        assert_eq!(mine["conversation_metadata"]["total_turns"], conversation["conversation_metadata"]["total_turns"]);
        // Where the original wrote "" we state the keys the files carry.
        assert_ne!(mine["conversation_metadata"]["scaffolding"]["persona_key"], "");
    }
    // The original said 15 (user pairs included); a trainer gets 6 pairs.
    assert_eq!(ours["training_file_metadata"]["total_training_pairs"], 6);
    assert_eq!(jsonl_lines(&summary.jsonl_path).len(), 6);
}

#[test]
fn rebuilding_from_a_full_file_plus_new_conversations_equals_building_from_all() {
    let enriched = |name: &str| fixture(&format!("enriched/{name}.json"));
    let first = tempfile::tempdir().unwrap();
    let partial = build_into(&[enriched("enriched-1"), enriched("single-convo-file-2")], first.path(), &options("set"));
    let second = tempfile::tempdir().unwrap();
    let rebuilt = build_into(&[partial.json_path.clone(), enriched("single-convo-file-3")], second.path(), &options("set"));
    let third = tempfile::tempdir().unwrap();
    let direct = build_into(&[enriched("enriched-1"), enriched("single-convo-file-2"), enriched("single-convo-file-3")], third.path(), &options("set"));
    assert_eq!(std::fs::read(&rebuilt.json_path).unwrap(), std::fs::read(&direct.json_path).unwrap());
    assert_eq!(std::fs::read(&rebuilt.jsonl_path).unwrap(), std::fs::read(&direct.jsonl_path).unwrap());
}

#[test]
fn a_full_file_too_large_to_hold_is_streamed_in_both_passes_and_rebuilds_to_the_same_bytes() {
    let inputs = tempfile::tempdir().unwrap();
    copies_of_a_conversation(inputs.path(), 340);
    let first = tempfile::tempdir().unwrap();
    let direct = build_into(&[inputs.path().to_owned()], first.path(), &options("large"));
    assert!(direct.json_bytes > 16 << 20, "over the size a worker prepares in memory: {}", direct.json_bytes);
    let second = tempfile::tempdir().unwrap();
    let rebuilt = build_into(std::slice::from_ref(&direct.json_path), second.path(), &options("large"));
    assert_eq!(rebuilt.conversations, 340);
    assert_eq!(std::fs::read(&rebuilt.json_path).unwrap(), std::fs::read(&direct.json_path).unwrap());
    assert_eq!(std::fs::read(&rebuilt.jsonl_path).unwrap(), std::fs::read(&direct.jsonl_path).unwrap());
}

#[test]
fn the_same_inputs_and_clock_give_the_same_bytes() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = build_into(&[fixtures().join("enriched")], a.path(), &options("same"));
    let two = build_into(&[fixtures().join("enriched")], b.path(), &options("same"));
    assert_eq!(std::fs::read(one.json_path).unwrap(), std::fs::read(two.json_path).unwrap());
    assert_eq!(std::fs::read(one.jsonl_path).unwrap(), std::fs::read(two.jsonl_path).unwrap());
}

#[test]
fn the_jsonl_meta_option_writes_the_original_header_with_the_true_count() {
    let out = tempfile::tempdir().unwrap();
    let options = BuildOptions { jsonl_meta: true, ..options("with meta") };
    let summary = build_into(&[fixtures().join("enriched")], out.path(), &options);
    let lines = jsonl_lines(&summary.jsonl_path);
    assert_eq!(lines[0], json!({"_meta": {"file_name": "with meta", "total_pairs": 19, "version": "4.0.0"}}));
    assert_eq!(lines.len(), 20);
}

#[test]
fn the_same_conversation_in_two_inputs_names_both_and_writes_nothing() {
    let inputs = tempfile::tempdir().unwrap();
    let (a, b) = (inputs.path().join("a.json"), inputs.path().join("b.json"));
    std::fs::copy(fixture("enriched/enriched-2.json"), &a).unwrap();
    std::fs::copy(fixture("enriched/enriched-2.json"), &b).unwrap();
    let out = tempfile::tempdir().unwrap();
    let error = build(&[a.clone(), b.clone()], out.path(), &options("dup"), |_| {}).unwrap_err();
    match &error {
        BuildError::DuplicateConversation { conversation_id, first, second } => {
            assert_eq!(conversation_id, "2ecd51bd-8dd9-478a-9fb4-de20f69bd441");
            assert_eq!((first, second), (&a, &b));
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "a failed build leaves nothing behind");
}

#[test]
fn an_invalid_input_fails_the_build_with_its_errors_and_writes_nothing() {
    let inputs = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("enriched/enriched-1.json"), inputs.path().join("good.json")).unwrap();
    std::fs::write(inputs.path().join("bad.json"), b"{\"dataset_metadata\": {").unwrap();
    let out = tempfile::tempdir().unwrap();
    let error = build(&[inputs.path().to_owned()], out.path(), &options("bad"), |_| {}).unwrap_err();
    match &error {
        BuildError::Invalid { path, errors } => {
            assert!(path.ends_with("bad.json"));
            assert_eq!(errors[0].code, "syntax");
            assert_eq!(errors[0].path.to_string(), "dataset_metadata");
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn line_ids_stay_unique_when_two_conversation_ids_share_their_first_8_characters() {
    // Two copies of one conversation whose ids differ only after the 8th character:
    // the short suffix alone would give both the same line ids.
    let inputs = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("enriched/enriched-2.json")).unwrap();
    let (id, twin) = ("2ecd51bd-8dd9-478a-9fb4-de20f69bd441", "2ecd51bd-0000-4000-8000-000000000001");
    std::fs::write(inputs.path().join("a.json"), &text).unwrap();
    std::fs::write(inputs.path().join("b.json"), text.replace(id, twin)).unwrap();
    let out = tempfile::tempdir().unwrap();
    let summary = build_into(&[inputs.path().to_owned()], out.path(), &options("twins"));
    let lines = jsonl_lines(&summary.jsonl_path);
    let ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    let unique: std::collections::HashSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    assert!(ids[..3].iter().all(|i| i.ends_with("_2ecd51bd")), "the first conversation keeps the short form: {ids:?}");
    assert!(ids[3..].iter().all(|i| i.ends_with(&format!("_{twin}"))), "the later one uses its full id: {ids:?}");
    assert!(!common::validate_path(&summary.jsonl_path).findings.has_errors());
}

#[test]
fn an_input_that_changes_between_the_two_passes_fails_the_build_and_writes_nothing() {
    // Enough copies that the last is read by the second pass well after the first is written.
    let inputs = tempfile::tempdir().unwrap();
    let last = copies_of_a_conversation(inputs.path(), 200).pop().unwrap();
    let out = tempfile::tempdir().unwrap();
    let error = build(&[inputs.path().to_owned()], out.path(), &options("changing"), |progress| {
        if progress.stage == Stage::Writing && progress.files_done == 1 {
            // Still valid, but one more reviewed pair than the first pass counted.
            let text = std::fs::read_to_string(&last).unwrap();
            std::fs::write(&last, text.replacen("\"human_reviewed\": false", "\"human_reviewed\": true", 1)).unwrap();
        }
    })
    .unwrap_err();
    assert!(matches!(error, BuildError::InputsChanged), "{error:?}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "a failed build leaves nothing behind");
}

#[test]
fn progress_counts_every_file_in_each_pass_in_order() {
    let out = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    build(&[fixtures().join("enriched")], out.path(), &options("progress"), |p| seen.push((p.stage, p.files_done, p.files_total))).unwrap();
    let n = std::fs::read_dir(fixtures().join("enriched")).unwrap().count();
    let expected: Vec<_> = [Stage::Counting, Stage::Writing].into_iter().flat_map(|stage| (1..=n).map(move |done| (stage, done, n))).collect();
    assert_eq!(seen, expected);
}
