//! The build's light first pass states exactly what the full reader finds:
//! the header of every training file depends on it.

mod common;

use common::{fixture, fixtures};
use lora_files_format::input::{self, FileKind, Mode};
use lora_files_format::survey::{survey, Contribution, FileFacts, Survey};
use serde_json::Value;

/// The survey the full reader gives for `text` (written to a temporary file).
fn full_reader_survey(text: &[u8]) -> Survey {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.json");
    std::fs::write(&path, text).unwrap();
    let mut conversations = Vec::new();
    let report = input::read_file(&path, Mode::Build, |conversation| {
        conversations.push(Contribution::of(&conversation));
        Ok::<(), ()>(())
    })
    .unwrap();
    assert!(!report.findings.has_errors(), "{:#?}", report.findings.errors().collect::<Vec<_>>());
    let file = if report.kind == Some(FileKind::Full) { FileFacts::of_full_file(&report.top.fields) } else { FileFacts::default() };
    Survey { conversations, file }
}

fn assert_agree(name: &str, text: &[u8]) {
    let light = survey(text).unwrap_or_else(|| panic!("{name}: the survey refused a valid file"));
    assert_eq!(light, full_reader_survey(text), "{name}");
}

#[test]
fn the_survey_agrees_with_the_full_reader_on_every_fixture() {
    for folder in ["enriched", "full"] {
        for entry in std::fs::read_dir(fixtures().join(folder)).unwrap() {
            let path = entry.unwrap().path();
            assert_agree(&path.display().to_string(), &std::fs::read(&path).unwrap());
        }
    }
}

#[test]
fn the_survey_agrees_on_edited_enriched_files() {
    let original: Value = serde_json::from_slice(&std::fs::read(fixture("enriched/enriched-1.json")).unwrap()).unwrap();
    type Edit = fn(&mut Value);
    let edits: [(&str, Edit); 5] = [
        ("keys from the first pair", |doc| {
            doc.as_object_mut().unwrap().remove("input_parameters");
        }),
        ("an empty persona key", |doc| doc["input_parameters"]["persona_key"] = "".into()),
        ("no scores", |doc| {
            for pair in doc["training_pairs"].as_array_mut().unwrap() {
                pair["training_metadata"]["quality_score"] = Value::Null;
            }
        }),
        ("reviewed pairs", |doc| doc["training_pairs"][0]["training_metadata"]["human_reviewed"] = true.into()),
        ("another profile", |doc| doc["consultant_profile"]["name"] = "Another Consultant".into()),
    ];
    for (name, edit) in edits {
        let mut document = original.clone();
        edit(&mut document);
        assert_agree(name, &serde_json::to_vec_pretty(&document).unwrap());
    }
}

#[test]
fn the_survey_agrees_on_full_files_whose_metadata_is_null() {
    let mut document: Value = serde_json::from_slice(&std::fs::read(fixture("full/training-file-test-4.json")).unwrap()).unwrap();
    document["training_file_metadata"] = Value::Null;
    assert_agree("null training_file_metadata", &serde_json::to_vec_pretty(&document).unwrap());
    // With no conversations either, only the null key says it is a full file.
    document.as_object_mut().unwrap().remove("conversations");
    assert_agree("null training_file_metadata, no conversations", &serde_json::to_vec_pretty(&document).unwrap());
}

#[test]
fn what_the_survey_cannot_read_is_left_to_the_full_reader() {
    let text = std::fs::read(fixture("enriched/enriched-1.json")).unwrap();
    let mut with_bom = b"\xEF\xBB\xBF".to_vec();
    with_bom.extend_from_slice(&text);
    assert_eq!(survey(&with_bom), None, "a byte-order mark");
    assert_eq!(survey(&std::fs::read(fixture("raw/recent-raw.json")).unwrap()), None, "a raw conversation");
    assert_eq!(survey(&text[..text.len() / 2]), None, "a truncated file");
}
