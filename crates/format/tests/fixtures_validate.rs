//! Every real file of the original system reads and validates as the spec says.

mod common;

use common::{error_with_code, fixture, fixtures, line_of, read_fixture, validate_bytes, validate_path};
use lora_files_format::input::FileKind;

#[test]
fn every_enriched_fixture_is_valid_with_warnings_only() {
    for entry in std::fs::read_dir(fixtures().join("enriched")).unwrap() {
        let path = entry.unwrap().path();
        let report = validate_path(&path);
        assert_eq!(report.kind, Some(FileKind::Enriched), "{}", path.display());
        assert!(!report.findings.has_errors(), "{}: {:#?}", path.display(), report.findings.errors().collect::<Vec<_>>());
    }
}

#[test]
fn every_original_full_file_is_valid_and_its_pair_total_is_flagged() {
    for name in ["full-file-1.json", "training-file-test-4.json", "full-file-training-json-18-conversations.json", "full-file-training-json-36-conversations.json"] {
        let report = validate_path(&fixture(&format!("full/{name}")));
        assert_eq!(report.kind, Some(FileKind::Full), "{name}");
        assert!(!report.findings.has_errors(), "{name}: {:#?}", report.findings.errors().collect::<Vec<_>>());
        // Decision 1 of the spec README: the original counted user pairs too; that is a warning.
        let total = report.findings.iter().find(|d| d.code == "counts_user_pairs").unwrap_or_else(|| panic!("{name}"));
        assert_eq!(total.path.to_string(), "training_file_metadata.total_training_pairs");
    }
}

#[test]
fn the_earliest_full_file_is_flagged_for_zero_scores_and_empty_keys() {
    let report = validate_path(&fixture("full/full-file-1.json"));
    let codes: Vec<&str> = report.findings.iter().map(|d| d.code).collect();
    assert!(codes.contains(&"unscored"));
    assert!(codes.contains(&"empty_scaffolding"));
    assert!(codes.contains(&"missing_target_model"));
    assert!(codes.contains(&"truncated_text"), "full-file-1 has texts cut at a backslash");
}

#[test]
fn the_hand_made_examples_show_their_known_defects() {
    // v4-format.md §6: the example full JSON says total_turns 3 for 2 pairs.
    let report = validate_path(&fixture("schemas/c-alpha-build_v3.4_emotional-dataset-JSON-example_v4.json"));
    let errors: Vec<_> = report.findings.errors().collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].path.to_string(), "conversations[0].conversation_metadata.total_turns");
    // The example JSONL trims training_metadata to 7 keys and says total_pairs 4 over 3 lines.
    let report = validate_path(&fixture("schemas/c-alpha-build_v3.4_emotional-dataset-full-JSON-format_v4.jsonl"));
    assert_eq!(report.kind, Some(FileKind::Jsonl));
    assert!(report.findings.errors().all(|d| d.path.to_string().starts_with("training_metadata.")));
    assert!(report.findings.iter().any(|d| d.code == "meta_total"));
}

#[test]
fn raw_llm_output_is_checked_as_enrichment_would_check_it() {
    for name in ["raw/single-convo-file-3-raw.json", "raw/recent-raw.json"] {
        let report = validate_path(&fixture(name));
        assert_eq!(report.kind, Some(FileKind::Raw), "{name}");
        assert_eq!(report.findings.error_count(), 0, "{:#?}", report.findings);
    }
    // A blocker of the enrichment checks is an error with its line and path.
    let text = read_fixture("raw/recent-raw.json").replacen("\"intensity\": 0.65", "\"intensity\": 3", 1);
    let report = validate_bytes("raw.json", text.as_bytes());
    let error = error_with_code(&report, "INTENSITY_OUT_OF_RANGE");
    assert_eq!(error.path.to_string(), "turns[1].emotional_context.intensity");
    assert_eq!(error.position.unwrap().line, line_of(&text, "\"intensity\": 3", None));
    // Building still refuses it: it must be enriched first.
    let dir = tempfile::tempdir().unwrap();
    let options = lora_files_format::build::BuildOptions {
        name: "x".into(),
        description: None,
        target_model: None,
        vertical: None,
        jsonl_meta: false,
        now: chrono::Utc::now(),
    };
    let error = lora_files_format::build::build(&[fixture("raw/recent-raw.json")], dir.path(), &options, |_| {}).unwrap_err();
    assert!(format!("{error:?}").contains("not_enriched"), "{error:?}");
}
