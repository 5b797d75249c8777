//! Bad input gets an error that names the exact place: path and line.
//! Each test edits a real enriched file (single-convo-file-3) the way users break files.

mod common;

use common::{error_with_code, line_of, read_fixture, validate_bytes};

const FILE: &str = "enriched/single-convo-file-3.json";

/// Replaces the `nth` (0-based) occurrence of `from` with `to`.
fn replace_nth(text: &str, from: &str, to: &str, nth: usize) -> String {
    let (offset, _) = text.match_indices(from).nth(nth).expect("occurrence present");
    format!("{}{to}{}", &text[..offset], &text[offset + from.len()..])
}

#[test]
fn truncated_json_names_the_value_it_stopped_in() {
    let text = read_fixture(FILE);
    let cut = text.match_indices("\"current_user_input\": \"").nth(2).unwrap().0 + 30;
    let report = validate_bytes("cut.json", &text.as_bytes()[..cut]);
    let error = error_with_code(&report, "syntax");
    assert_eq!(error.path.to_string(), "training_pairs[2].current_user_input");
    assert_eq!(error.position.unwrap().line, 1 + text[..cut].matches('\n').count());
    assert!(error.message.contains("EOF"), "{}", error.message);
}

#[test]
fn zero_byte_and_whitespace_files_are_empty() {
    for bytes in [&b""[..], b"  \n\n"] {
        let report = validate_bytes("empty.json", bytes);
        let error = error_with_code(&report, "empty_file");
        assert_eq!(error.path.to_string(), "$");
        assert_eq!(error.position.unwrap().line, 1 + bytes.iter().filter(|&&b| b == b'\n').count());
    }
}

#[test]
fn text_that_is_not_utf8_is_located() {
    let text = read_fixture(FILE);
    let offset = text.match_indices("\"target_response\": \"").next().unwrap().0 + 25;
    let mut bytes = text.into_bytes();
    bytes[offset] = 0xFF;
    let report = validate_bytes("latin1.json", &bytes);
    let error = error_with_code(&report, "not_utf8");
    assert_eq!(error.path.to_string(), "training_pairs[1].target_response");
    assert_eq!(error.position.unwrap().line, 1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count());
}

#[test]
fn an_array_at_the_top_is_refused() {
    let text = format!("[{}]", read_fixture(FILE));
    let report = validate_bytes("array.json", text.as_bytes());
    let error = error_with_code(&report, "syntax");
    assert_eq!(error.path.to_string(), "$");
    assert_eq!(error.position.unwrap().line, 1);
    assert!(error.message.contains("expected a JSON object at the top level"), "{}", error.message);
}

#[test]
fn turn_number_as_a_string_is_a_type_error() {
    let text = replace_nth(&read_fixture(FILE), "\"turn_number\": 2,", "\"turn_number\": \"2\",", 0);
    let report = validate_bytes("string-turn.json", text.as_bytes());
    let error = report.findings.errors().find(|d| d.path.to_string() == "training_pairs[1].turn_number").expect("turn_number error");
    assert_eq!(error.code, "wrong_type");
    assert!(error.message.contains("string \"2\""), "{}", error.message);
    assert_eq!(error.position.unwrap().line, line_of(&text, "\"turn_number\": \"2\"", None));
}

#[test]
fn a_missing_target_response_key_is_an_error_but_null_is_legal() {
    let original = read_fixture(FILE);
    assert!(!validate_bytes("ok.json", original.as_bytes()).findings.has_errors(), "null targets on user turns are legal");
    let text = replace_nth(&original, "\"target_response\": null,", "", 0);
    let report = validate_bytes("no-target.json", text.as_bytes());
    let error = error_with_code(&report, "missing_key");
    assert_eq!(error.path.to_string(), "training_pairs[0].target_response");
    // A missing key is placed on its object: the first pair.
    assert_eq!(error.position.unwrap().line, line_of(&text, "{", Some("\"training_pairs\"")));
}

#[test]
fn duplicate_pair_ids_name_both_pairs() {
    let text = replace_nth(&read_fixture(FILE), "\"therapeutic_turn3\"", "\"therapeutic_turn2\"", 0);
    let report = validate_bytes("dup.json", text.as_bytes());
    let error = error_with_code(&report, "duplicate_pair_id");
    assert_eq!(error.path.to_string(), "training_pairs[2].id");
    assert!(error.message.contains("training_pairs[1]"), "{}", error.message);
    assert_eq!(error.position.unwrap().line, line_of(&text, "\"therapeutic_turn2\"", Some("\"turn_number\": 2,")));
}

#[test]
fn non_consecutive_turns_are_refused() {
    let text = replace_nth(&read_fixture(FILE), "\"turn_number\": 3,", "\"turn_number\": 4,", 0);
    let report = validate_bytes("gap.json", text.as_bytes());
    let error = error_with_code(&report, "turn_sequence");
    assert_eq!(error.path.to_string(), "training_pairs[2].turn_number");
    assert_eq!(error.position.unwrap().line, line_of(&text, "\"turn_number\": 4,", None));
}

#[test]
fn a_history_shorter_than_the_turn_is_refused() {
    let mut document: serde_json::Value = serde_json::from_str(&read_fixture(FILE)).unwrap();
    document["training_pairs"][3]["conversation_history"].as_array_mut().unwrap().pop();
    let text = String::from_utf8(lora_files_format::json::to_pretty_vec(&document)).unwrap();
    let report = validate_bytes("history.json", text.as_bytes());
    let error = error_with_code(&report, "history_length");
    assert_eq!(error.path.to_string(), "training_pairs[3].conversation_history");
    assert!(error.message.contains("has 2 entries but turn 4 must have 3"), "{}", error.message);
    assert_eq!(error.position.unwrap().line, line_of(&text, "\"conversation_history\"", Some("\"turn_number\": 4,")));
}

#[test]
fn a_score_outside_one_to_five_is_refused() {
    let text = replace_nth(&read_fixture(FILE), "\"quality_score\": 3,", "\"quality_score\": 7,", 1);
    let report = validate_bytes("score.json", text.as_bytes());
    let error = error_with_code(&report, "out_of_range");
    assert_eq!(error.path.to_string(), "training_pairs[1].training_metadata.quality_score");
    assert_eq!(error.position.unwrap().line, line_of(&text, "\"quality_score\": 7,", None));
}

#[test]
fn diagnostics_print_as_line_column_path_message() {
    let text = replace_nth(&read_fixture(FILE), "\"turn_number\": 3,", "\"turn_number\": 4,", 0);
    let report = validate_bytes("gap.json", text.as_bytes());
    let printed = error_with_code(&report, "turn_sequence").to_string();
    let line = line_of(&text, "\"turn_number\": 4,", None);
    assert!(printed.starts_with(&format!("{line}:22: training_pairs[2].turn_number: error: ")), "{printed}");
}
