//! `build` when inputs are bad, large or unlucky: it ends, names every bad
//! input, stays linear, and what it writes validates clean.

mod common;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::fixture;
use lora_files_format::build::{build, BuildError, BuildOptions, BuildSummary};

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

/// Copies of one enriched conversation under ids `PREFIX-…-{i}`, named `{name}{i:04}.json`.
fn copies(dir: &Path, name: &str, id_prefix: &str, count: usize) -> Vec<PathBuf> {
    let template = std::fs::read_to_string(fixture("enriched/enriched-2.json")).unwrap();
    (0..count)
        .map(|i| {
            let path = dir.join(format!("{name}{i:04}.json"));
            std::fs::write(&path, template.replace("2ecd51bd-8dd9-478a-9fb4-de20f69bd441", &format!("{id_prefix}-0000-4000-8000-{i:012x}"))).unwrap();
            path
        })
        .collect()
}

/// Runs `f` on its own thread and fails the test if it has not returned in
/// `limit` (a hang, not a slow machine: the limit is generous).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || sender.send(f()).unwrap());
    receiver.recv_timeout(limit).unwrap_or_else(|_| panic!("still running after {limit:?}: it hangs"))
}

#[test]
fn a_bad_input_behind_a_large_first_one_fails_the_build_instead_of_hanging() {
    // The large full file is streamed by the writer itself, slowly, while the
    // workers run ahead through the small files and wait for it; the bad file
    // then stops the writer with workers parked.
    let inputs = tempfile::tempdir().unwrap();
    let large_source = tempfile::tempdir().unwrap();
    copies(large_source.path(), "", "00000000", 340);
    let staging = tempfile::tempdir().unwrap();
    let large = build_into(&[large_source.path().to_owned()], staging.path(), &options("large"));
    assert!(large.json_bytes > 16 << 20, "the first input is one a worker does not prepare: {}", large.json_bytes);
    std::fs::rename(&large.json_path, inputs.path().join("a-large.json")).unwrap();
    let small = copies(inputs.path(), "b-", "11111111", 120);
    // Valid on its own, so the first pass goes through; the second pass (the
    // writer) fails there: its conversation is already in the large file.
    std::fs::copy(large_source.path().join("0000.json"), &small[9]).unwrap();

    let (dir, out) = (inputs.path().to_owned(), tempfile::tempdir().unwrap());
    let out_path = out.path().to_owned();
    let error = within(Duration::from_secs(300), move || build(&[dir], &out_path, &options("hang"), |_| {}).unwrap_err());
    assert!(matches!(error, BuildError::DuplicateConversation { .. }) && error.to_string().contains("b-0009.json"), "{error}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "a failed build leaves nothing behind");
}

#[test]
fn what_build_writes_warns_only_about_what_its_inputs_warn_about() {
    // Built without a target model, from the examples (some with empty
    // scaffolding keys, cut-off texts and stale objectives).
    let out = tempfile::tempdir().unwrap();
    let options = BuildOptions { target_model: None, ..options("own") };
    let inputs: Vec<PathBuf> = std::fs::read_dir(fixture("enriched")).unwrap().map(|e| e.unwrap().path()).collect();
    let summary = build_into(&[fixture("enriched")], out.path(), &options);
    let input_codes: std::collections::HashSet<&str> =
        inputs.iter().flat_map(|input| common::validate_path(input).findings.into_vec()).map(|d| d.code).collect();
    for output in [&summary.json_path, &summary.jsonl_path] {
        let report = common::validate_path(output);
        assert!(!report.findings.has_errors(), "{:#?}", report.findings);
        for warning in report.findings.iter() {
            // An input without scaffolding keys gives a full file whose keys are empty.
            let input_code = if warning.code == "empty_scaffolding" { "missing_scaffolding" } else { warning.code };
            let about_the_inputs = input_codes.contains(input_code)
                || (warning.code == "missing_target_model" && warning.message.contains("the inputs stated none"));
            assert!(about_the_inputs, "{}: a warning about the build's own choices: {warning}", output.display());
        }
    }
}

#[test]
fn every_bad_input_of_a_folder_is_reported_and_nothing_is_written() {
    let inputs = tempfile::tempdir().unwrap();
    copies(inputs.path(), "", "22222222", 12);
    std::fs::write(inputs.path().join("0003.json"), b"{\"dataset_metadata\": ").unwrap();
    std::fs::write(inputs.path().join("0007.json"), b"[1, 2").unwrap();
    std::fs::write(inputs.path().join("0010.json"), b"not json").unwrap();
    let out = tempfile::tempdir().unwrap();
    let error = build(&[inputs.path().to_owned()], out.path(), &options("bad"), |_| {}).unwrap_err();
    let BuildError::BadInputs(bad) = &error else { panic!("expected every bad input, got {error:?}") };
    let named: Vec<String> = bad
        .iter()
        .map(|e| match e {
            BuildError::Invalid { path, .. } => path.file_name().unwrap().to_string_lossy().into_owned(),
            other => panic!("expected invalid inputs, got {other:?}"),
        })
        .collect();
    assert_eq!(named, ["0003.json", "0007.json", "0010.json"]);
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "a failed build leaves nothing behind");
}

#[test]
fn an_id_in_upper_case_is_the_same_conversation_as_in_lower_case() {
    let inputs = tempfile::tempdir().unwrap();
    let template = std::fs::read_to_string(fixture("enriched/enriched-2.json")).unwrap();
    let id = "2ecd51bd-8dd9-478a-9fb4-de20f69bd441";
    std::fs::write(inputs.path().join("upper.json"), template.replace(id, &id.to_ascii_uppercase())).unwrap();
    let out = tempfile::tempdir().unwrap();
    let summary = build_into(&[inputs.path().join("upper.json")], out.path(), &options("upper"));
    assert_eq!(summary.conversations, 1);
    let jsonl = std::fs::read_to_string(out.path().join("upper.jsonl")).unwrap();
    assert!(jsonl.contains(id) && !jsonl.contains(&id.to_ascii_uppercase()), "the canonical id is the one written");
    std::fs::write(inputs.path().join("lower.json"), &template).unwrap();
    let error = build(&[inputs.path().to_owned()], out.path(), &options("both"), |_| {}).unwrap_err();
    assert!(error.to_string().contains(&format!("conversation {id} appears twice")), "{error}");
}
