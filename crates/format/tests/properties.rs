//! Property tests on the readers that take untrusted text: the fast parser
//! against serde_json, the validator, and the raw-conversation repair. Inputs
//! are the fixtures, cut and edited at random, and small JSON-like strings;
//! sizes are capped so `cargo test` stays quick. Each test prints how many
//! cases it ran (`cargo test --test properties -- --nocapture`).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use lora_files_format::enrich::source;
use lora_files_format::input::read_enriched_bytes;
use lora_files_format::parse;
use lora_files_format::value::Value;
use lora_files_format::Position;
use proptest::prelude::*;

const CASES: u32 = 300;

/// The fixture texts the edits start from (the smaller ones: each case reads one whole).
fn seeds() -> &'static [String] {
    static SEEDS: OnceLock<Vec<String>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        ["enriched/single-convo-file-1.json", "enriched/single-convo-file-3.json", "raw/single-convo-file-3-raw.json", "raw/recent-raw.json", "full/full-file-1.json"]
            .iter()
            .map(|name| common::read_fixture(name))
            .collect()
    })
}

/// One edit of a text: cut it, or put a JSON-significant string somewhere.
#[derive(Clone, Debug)]
enum Edit {
    Truncate(usize),
    Insert(usize, String),
    Delete(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let piece = prop_oneof![
        Just("\"".to_owned()),
        Just("\\".to_owned()),
        Just(",".to_owned()),
        Just("}".to_owned()),
        Just("]".to_owned()),
        Just("{".to_owned()),
        Just("\u{0}".to_owned()),
        Just("\\u00".to_owned()),
        Just("\\ud800".to_owned()),
        Just("é".to_owned()),
        Just("1e999".to_owned()),
        Just("-0".to_owned()),
        Just("null".to_owned()),
        "[\\[\\]{}\",:0-9a-z\\\\ .eE+-]{1,12}",
    ];
    prop_oneof![
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), piece).prop_map(|(at, text)| Edit::Insert(at, text)),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Edit::Delete(at, len)),
    ]
}

/// A fixture with up to four edits applied (at character boundaries).
fn edited_fixture() -> impl Strategy<Value = String> {
    (0..seeds().len(), prop::collection::vec(edit(), 0..4)).prop_map(|(seed, edits)| {
        let mut text = seeds()[seed].clone();
        for edit in edits {
            let boundary = |at: usize, text: &str| {
                let mut at = at % (text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                at
            };
            match edit {
                Edit::Truncate(at) => text.truncate(boundary(at, &text)),
                Edit::Insert(at, piece) => text.insert_str(boundary(at, &text), &piece),
                Edit::Delete(at, len) => {
                    let start = boundary(at, &text);
                    let end = boundary(start + len, &text).max(start);
                    text.replace_range(start..end, "");
                }
            }
        }
        text
    })
}

/// Small documents made of JSON's own characters.
fn json_like() -> impl Strategy<Value = String> {
    "[\\[\\]{}\",:0-9a-z\\\\ .eE+\\-\\n\u{e9}]{0,80}"
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![edited_fixture(), json_like()]
}

/// Whether `position` lies within `text` (1-based; one past the last line's end at most).
fn is_within(text: &[u8], position: Position) -> bool {
    let lines = 1 + text.iter().filter(|&&b| b == b'\n').count();
    let line_length = String::from_utf8_lossy(text).split('\n').nth(position.line - 1).map_or(0, |line| line.chars().count());
    position.line >= 1 && position.line <= lines && position.column >= 1 && position.column <= line_length + 1
}

fn counted(counter: &AtomicUsize, name: &str) {
    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
    if n == CASES as usize {
        eprintln!("{name}: {n} cases");
    }
}

static PARSER_CASES: AtomicUsize = AtomicUsize::new(0);
static VALIDATOR_CASES: AtomicUsize = AtomicUsize::new(0);
static REPAIR_CASES: AtomicUsize = AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_fast_parser_reads_what_serde_json_reads_or_gives_up(text in any_text()) {
        let reference = serde_json::from_str::<Value>(&text);
        // When it gives up (anything unusual), serde_json is the reference.
        if let Some(value) = parse::parse(&text, None) {
            prop_assert_eq!(Some(value), reference.ok(), "the fast parser accepted what serde_json reads differently");
        }
        counted(&PARSER_CASES, "fast parser vs serde_json");
    }

    #[test]
    fn the_validator_never_panics_and_places_every_finding_in_the_text(text in any_text()) {
        let findings = match read_enriched_bytes(text.as_bytes()) {
            Ok((_, findings)) | Err(findings) => findings,
        };
        for finding in findings.iter() {
            let position = finding.position.expect("every finding is placed");
            prop_assert!(is_within(text.as_bytes(), position), "{finding} is outside the text");
        }
        counted(&VALIDATOR_CASES, "validator");
    }

    #[test]
    fn the_raw_conversation_repair_never_panics_and_errors_point_into_the_text(text in any_text()) {
        if let Err(error) = source::parse(text.as_bytes()) {
            prop_assert!(error.offset <= text.len());
            prop_assert!(is_within(text.as_bytes(), error.position), "{error:?} is outside the text");
        }
        counted(&REPAIR_CASES, "raw-conversation repair");
    }
}
