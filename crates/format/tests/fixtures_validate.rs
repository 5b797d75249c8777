//! Every real file of the original system reads and validates as the spec says.

mod common;

use common::{fixture, fixtures, validate_path};
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
fn raw_llm_output_is_recognised_and_refused_with_one_clear_error() {
    for name in ["raw/single-convo-file-3-raw.json", "raw/recent-raw.json"] {
        let report = validate_path(&fixture(name));
        assert_eq!(report.kind, Some(FileKind::Raw), "{name}");
        let errors: Vec<_> = report.findings.errors().collect();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].code, "not_enriched");
        assert_eq!(errors[0].path.to_string(), "turns");
    }
}
