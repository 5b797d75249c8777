//! The `lora-files` binary as a user runs it: exit codes, messages, outputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn lora_files(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lora-files")).args(args).env("SOURCE_DATE_EPOCH", "1764000000").output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn validate_prints_file_line_column_path_and_exits_1_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    let original = std::fs::read_to_string(fixtures().join("enriched/single-convo-file-3.json")).unwrap();
    std::fs::write(&bad, original.replacen("\"turn_number\": 3,", "\"turn_number\": 4,", 1)).unwrap();
    let output = lora_files(&["validate", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    let expected = format!("{}:164:22: training_pairs[2].turn_number: error: turn_number is 4", bad.display());
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(stdout.contains("1 file(s): "), "{stdout}");
}

#[test]
fn validate_json_reports_the_same_findings_as_data() {
    let output = lora_files(&["validate", "--json", fixtures().join("full/full-file-1.json").to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["errors"], 0);
    let first = &report["files"][0];
    assert_eq!(first["kind"], "full");
    let diagnostic = &first["diagnostics"][0];
    for key in ["severity", "code", "path", "message", "line", "column"] {
        assert!(diagnostic.get(key).is_some(), "{key} missing from {diagnostic}");
    }
}

#[test]
fn build_writes_both_files_and_a_summary() {
    let out = tempfile::tempdir().unwrap();
    let output = lora_files(&["build", fixtures().join("enriched").to_str().unwrap(), "--name", "Batch 1", "--out", out.path().to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("7 conversations, 19 training pairs (41 turns)"), "{stdout}");
    assert!(out.path().join("Batch 1.json").exists() && out.path().join("Batch 1.jsonl").exists());
    let validate = lora_files(&["validate", out.path().join("Batch 1.json").to_str().unwrap(), out.path().join("Batch 1.jsonl").to_str().unwrap()]);
    assert_eq!(validate.status.code(), Some(0), "{}", text(&validate.stdout));
}

#[test]
fn build_failure_names_the_file_and_writes_nothing() {
    let inputs = tempfile::tempdir().unwrap();
    std::fs::write(inputs.path().join("empty.json"), b"").unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = lora_files(&["build", inputs.path().to_str().unwrap(), "--name", "x", "--out", out.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("empty.json:1:1: $: error: the file is empty"), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn no_input_makes_it_panic() {
    // Every prefix-cut of a real file, plus bytes that are not text at all.
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read(fixtures().join("enriched/single-convo-file-1.json")).unwrap();
    let mut paths = Vec::new();
    for (i, cut) in (0..original.len()).step_by(997).enumerate() {
        let path = dir.path().join(format!("cut-{i}.json"));
        std::fs::write(&path, &original[..cut]).unwrap();
        paths.push(path);
    }
    let noise: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    for (name, bytes) in [("noise.json", &noise[..]), ("nul.json", b"\0\0\0"), ("deep.json", &[b'['; 100_000][..]), ("lines.jsonl", b"{}\n[1]\n\"x\"\n{\"_meta\":1}\n")] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        paths.push(path);
    }
    let mut args = vec!["validate"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let output = lora_files(&args);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(!text(&output.stderr).contains("panicked"), "{}", text(&output.stderr));
    let out = tempfile::tempdir().unwrap();
    for path in &paths {
        let output = lora_files(&["build", path.to_str().unwrap(), "--name", "x", "--out", out.path().to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(1), "{}: {}", path.display(), text(&output.stderr));
        assert!(!text(&output.stderr).contains("panicked"), "{}", text(&output.stderr));
    }
}

#[test]
fn validate_checks_a_jsonl_against_its_full_json() {
    let out = tempfile::tempdir().unwrap();
    let build = lora_files(&["build", fixtures().join("enriched").to_str().unwrap(), "--name", "pair", "--out", out.path().to_str().unwrap()]);
    assert!(build.status.success(), "{}", text(&build.stderr));
    let (json, jsonl) = (out.path().join("pair.json"), out.path().join("pair.jsonl"));
    let ok = lora_files(&["validate", json.to_str().unwrap(), jsonl.to_str().unwrap()]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stdout));

    // Swap two lines: each is still a valid record, but not in the full file's order.
    let original = std::fs::read_to_string(&jsonl).unwrap();
    let mut lines: Vec<&str> = original.lines().collect();
    lines.swap(2, 3);
    std::fs::write(&jsonl, lines.join("\n") + "\n").unwrap();
    let swapped = lora_files(&["validate", json.to_str().unwrap(), jsonl.to_str().unwrap()]);
    assert_eq!(swapped.status.code(), Some(1));
    let stdout = text(&swapped.stdout);
    assert!(stdout.contains(&format!("{}:3:", jsonl.display())) && stdout.contains("differs from conversations["), "{stdout}");
}

fn with_data_dir(args: &[&str], data_dir: &Path) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--data-dir", data_dir.to_str().unwrap()]);
    lora_files(&all)
}

#[test]
fn import_needs_a_user_then_imports_folders_and_reports_bad_files() {
    let data = tempfile::tempdir().unwrap();
    let enriched = fixtures().join("enriched");
    let none = with_data_dir(&["import", enriched.to_str().unwrap()], data.path());
    assert_eq!(none.status.code(), Some(1));
    assert!(text(&none.stderr).contains("lora-files user add EMAIL"), "{}", text(&none.stderr));

    let added = with_data_dir(&["user", "add", "coach@example.com", "--password", "a long password"], data.path());
    assert!(added.status.success(), "{}", text(&added.stderr));
    let inputs = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures().join("enriched/enriched-1.json"), inputs.path().join("good.json")).unwrap();
    std::fs::write(inputs.path().join("bad.json"), b"{\"training_pairs\": [").unwrap();
    let first = with_data_dir(&["import", inputs.path().to_str().unwrap()], data.path());
    assert_eq!(first.status.code(), Some(1), "one file failed");
    assert!(text(&first.stdout).contains("imported 2e6e3685-eb74-46c9-b11d-13a3e162a4b5"), "{}", text(&first.stdout));
    // Line, column and JSON path, once each, as `validate` gives them.
    assert!(text(&first.stderr).contains("bad.json:1:20: training_pairs: EOF while parsing a list (not valid JSON"), "{}", text(&first.stderr));
    assert!(text(&first.stderr).contains("(not valid JSON, kept for review as "), "{}", text(&first.stderr));
    assert!(!text(&first.stderr).contains(" at line "), "the position is not repeated: {}", text(&first.stderr));
    assert!(text(&first.stdout).contains("1 imported, 0 unchanged, 1 kept for review, 0 failed"), "{}", text(&first.stdout));

    let again = with_data_dir(&["import", enriched.to_str().unwrap(), "--owner", "COACH@example.com"], data.path());
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stdout).contains("6 imported, 1 unchanged, 0 kept for review, 0 failed"), "{}", text(&again.stdout));
    let unknown = with_data_dir(&["import", enriched.to_str().unwrap(), "--owner", "who@example.com"], data.path());
    assert!(text(&unknown.stderr).contains("no user who@example.com; add one with `lora-files user add who@example.com`"));

    let list = with_data_dir(&["user", "list"], data.path());
    assert!(text(&list.stdout).contains("coach@example.com") && text(&list.stdout).contains("1 user(s)"));
    let doctor = with_data_dir(&["doctor"], data.path());
    assert!(doctor.status.success(), "{}", text(&doctor.stdout));
    assert_eq!(text(&doctor.stdout).matches("[ OK ]").count(), 11, "{}", text(&doctor.stdout));
}

#[test]
fn raw_conversations_are_imported_with_their_scaffolding_and_enriched() {
    let data = tempfile::tempdir().unwrap();
    let dir = |args: &[&str]| with_data_dir(args, data.path());
    assert!(dir(&["user", "add", "coach@example.com", "--password", "a long password"]).status.success());
    let raw = fixtures().join("raw/single-convo-file-3-raw.json");
    let raw = raw.to_str().unwrap();
    let flags = ["--persona", "pragmatic_optimist", "--arc", "shame_to_acceptance", "--topic", "grandparent_529"];
    let id = "330dc058-6d75-4609-96f7-b6e87b39f536";

    let unknown = dir(&[&["import", raw][..], &flags, &["--conversation-id", id]].concat());
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("no persona \"pragmatic_optimist\" in the catalogue"), "{}", text(&unknown.stderr));

    let seeds: Vec<String> = ["personas", "emotional-arcs", "training-topics"]
        .iter()
        .map(|kind| fixtures().join(format!("scaffolding/{kind}-seed.ndjson")).display().to_string())
        .collect();
    let load = dir(&[&["scaffolding", "load"][..], &seeds.iter().map(String::as_str).collect::<Vec<_>>()].concat());
    assert!(load.status.success(), "{}", text(&load.stderr));
    assert_eq!(text(&load.stdout).trim(), "loaded 3 personas, 7 emotional arcs, 65 training topics");
    let bundled = dir(&["scaffolding", "load", "--bundled"]);
    assert_eq!(text(&bundled.stdout).trim(), "loaded 3 personas, 7 emotional arcs, 65 training topics", "the same seeds, loaded again: no change");
    let list = dir(&["scaffolding", "list"]);
    assert!(text(&list.stdout).contains("personas (3):") && text(&list.stdout).contains("prompt templates (7):"), "{}", text(&list.stdout));
    let bad_seed = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad_seed.path(), "{\"persona_key\": \"x\", \"name\": \"X\"}\n{\"nothing\": 1}\n").unwrap();
    let refused = dir(&["scaffolding", "load", bad_seed.path().to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains(&format!("{}:2: the row has none of", bad_seed.path().display())), "{}", text(&refused.stderr));

    let imported = dir(&[&["import", raw][..], &flags, &["--conversation-id", id]].concat());
    assert!(imported.status.success(), "{}", text(&imported.stderr));
    assert!(text(&imported.stdout).contains(&format!("imported {id} from {raw} (raw, not_started)")), "{}", text(&imported.stdout));
    let enriched = dir(&["enrich", "--all-pending"]);
    assert!(enriched.status.success(), "{}", text(&enriched.stderr));
    assert!(text(&enriched.stdout).starts_with("1 enriched, 0 failed, 0 skipped"), "{}", text(&enriched.stdout));
    let again = dir(&["enrich", id, "00000000-0000-4000-8000-000000000000"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stdout).starts_with("0 enriched, 1 failed, 1 skipped"), "{}", text(&again.stdout));
    assert!(text(&again.stderr).contains("failed 00000000-0000-4000-8000-000000000000: no such conversation"));
}

#[test]
fn doctor_fails_when_an_object_is_missing() {
    let data = tempfile::tempdir().unwrap();
    with_data_dir(&["user", "add", "coach@example.com"], data.path());
    with_data_dir(&["import", fixtures().join("enriched/enriched-2.json").to_str().unwrap()], data.path());
    let objects = data.path().join("objects/conversations");
    let enriched = walk_files(&objects).pop().expect("the imported file is stored");
    std::fs::remove_file(&enriched).unwrap();
    let doctor = with_data_dir(&["doctor"], data.path());
    assert_eq!(doctor.status.code(), Some(1));
    assert!(text(&doctor.stdout).contains("[FAIL] objects present: 1 problem(s): missing: conversations/"), "{}", text(&doctor.stdout));
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { found.extend(walk_files(&path)) } else { found.push(path) }
    }
    found
}

#[test]
fn validate_reports_a_missing_path_and_checks_the_others() {
    let missing = fixtures().join("enriched/no-such-file.json");
    let good = fixtures().join("enriched/single-convo-file-3.json");
    let output = lora_files(&["validate", missing.to_str().unwrap(), good.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "the missing path fails the run");
    let stdout = text(&output.stdout);
    assert!(stdout.contains(&format!("{}:1:1: $: error: cannot read it", missing.display())), "{stdout}");
    assert!(stdout.contains(&format!("{}: enriched, 0 error(s)", good.display())), "the other file is still checked: {stdout}");
    assert!(stdout.contains("2 file(s): 1 error(s)"), "{stdout}");
}

#[cfg(unix)]
#[test]
fn import_reports_a_missing_path_and_a_link_loop_and_imports_the_rest_once() {
    let data = tempfile::tempdir().unwrap();
    let added = with_data_dir(&["user", "add", "coach@example.com", "--password", "a long password"], data.path());
    assert!(added.status.success(), "{}", text(&added.stderr));
    let inputs = tempfile::tempdir().unwrap();
    let nested = inputs.path().join("nested");
    std::fs::create_dir(&nested).unwrap();
    std::fs::copy(fixtures().join("enriched/enriched-1.json"), nested.join("good.json")).unwrap();
    std::os::unix::fs::symlink(inputs.path(), nested.join("back-to-the-top")).unwrap();
    let missing = inputs.path().join("missing.json");

    let output = with_data_dir(&["import", missing.to_str().unwrap(), inputs.path().to_str().unwrap()], data.path());
    assert_eq!(output.status.code(), Some(1), "the bad paths fail the run");
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(stderr.contains(&format!("{}: ", missing.display())), "{stderr}");
    assert!(stderr.contains("back-to-the-top: a link back to a folder it is inside of (a loop)"), "{stderr}");
    assert_eq!(stdout.matches("imported 2e6e3685-eb74-46c9-b11d-13a3e162a4b5").count(), 1, "imported once: {stdout}");
    assert!(stdout.contains("1 imported, 0 unchanged, 0 kept for review, 2 failed"), "{stdout}");
}

#[cfg(unix)]
#[test]
fn build_outputs_are_created_as_the_umask_allows() {
    use std::os::unix::fs::PermissionsExt;
    let out = tempfile::tempdir().unwrap();
    // The test runner's umask is usually 022; whatever it is, the outputs get 0666 less it.
    let probe = out.path().join("probe");
    std::fs::write(&probe, b"").unwrap();
    let expected = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
    std::fs::remove_file(&probe).unwrap();
    let output = lora_files(&["build", fixtures().join("enriched").to_str().unwrap(), "--name", "modes", "--out", out.path().to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    for name in ["modes.json", "modes.jsonl"] {
        let mode = std::fs::metadata(out.path().join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, expected, "{name}: {mode:o}, not {expected:o} like any new file");
    }
}

#[test]
fn validate_states_a_syntax_error_position_once() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.jsonl");
    std::fs::write(&broken, "{\"id\": \"a\"}\n{\"id\": tru}\n").unwrap();
    let output = lora_files(&["validate", broken.to_str().unwrap()]);
    let stdout = text(&output.stdout);
    assert!(stdout.contains(&format!("{}:2:11: id: error: line is not a JSON value: expected ident", broken.display())), "{stdout}");
    assert!(!stdout.contains(" at line "), "the position is stated once: {stdout}");
}

#[test]
fn export_writes_split_files_and_a_card_and_prints_token_figures() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let enriched = fixtures().join("enriched");
    let args = ["export", enriched.to_str().unwrap(), "--format", "openai", "--out", out.to_str().unwrap(), "--split", "validation=0.3", "--name", "coach"];
    let output = lora_files(&args);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("tokens (o200k_base): "), "{stdout}");
    let ids = |split: &str| -> Vec<String> {
        std::fs::read_to_string(out.join(format!("coach.{split}.jsonl"))).unwrap().lines().map(str::to_owned).collect()
    };
    let (train, validation) = (ids("train"), ids("validation"));
    assert_eq!((train.len(), validation.len()), (5, 2));
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(card.starts_with("---\n") && card.contains("  - split: validation\n    path: \"coach.validation.jsonl\"\n"), "{card}");
}

#[test]
fn export_names_the_file_line_and_path_of_bad_input_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    let original = std::fs::read_to_string(fixtures().join("enriched/single-convo-file-3.json")).unwrap();
    std::fs::write(&bad, original.replacen("\"turn_number\": 3,", "\"turn_number\": 4,", 1)).unwrap();
    let out = dir.path().join("out");
    let output = lora_files(&["export", bad.to_str().unwrap(), "--format", "alpaca", "--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains(&format!("{}:164:22: training_pairs[2].turn_number: error:", bad.display())), "{stderr}");
    assert!(!out.join("bad.train.jsonl").exists());
    let output = lora_files(&["export", bad.to_str().unwrap(), "--format", "xml", "--out", out.to_str().unwrap()]);
    assert!(text(&output.stderr).contains("not one of openai, sharegpt, alpaca, jsonl"));
}

#[test]
fn validate_stats_counts_tokens_and_duplicates() {
    let output = lora_files(&["validate", "--stats", "--max-tokens", "1000", fixtures().join("full/full-file-1.json").to_str().unwrap()]);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("tokens (o200k_base): 4631 tokens (1275 training, 3356 context) over 6 examples"), "{stdout}");
    assert!(stdout.contains("; 1 over 1000; 0 exact duplicate(s)"), "{stdout}");
}

#[test]
fn a_fixed_file_replaces_the_source_of_a_conversation_kept_for_review() {
    let data = tempfile::tempdir().unwrap();
    let dir = |args: &[&str]| with_data_dir(args, data.path());
    assert!(dir(&["user", "add", "coach@example.com", "--password", "a long password"]).status.success());
    assert!(dir(&["scaffolding", "load", "--bundled"]).status.success());
    let raw_path = fixtures().join("raw/single-convo-file-3-raw.json");
    let raw = std::fs::read_to_string(&raw_path).unwrap();
    let id = "330dc058-6d75-4609-96f7-b6e87b39f536";
    let inputs = tempfile::tempdir().unwrap();
    let cut = inputs.path().join("cut.json");
    std::fs::write(&cut, &raw[..900]).unwrap();
    let kept = dir(&["import", cut.to_str().unwrap(), "--conversation-id", id]);
    assert!(text(&kept.stderr).contains("kept for review as 330dc058"), "{}", text(&kept.stderr));

    let still_cut = inputs.path().join("still-cut.json");
    std::fs::write(&still_cut, &raw[..1000]).unwrap();
    let refused = dir(&["conversation", "replace", id, still_cut.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    let line = 1 + raw[..1000].matches('\n').count();
    assert!(text(&refused.stderr).contains(&format!("{}:{line}:", still_cut.display())), "file and line: {}", text(&refused.stderr));

    let flags = ["--persona", "pragmatic_optimist", "--arc", "shame_to_acceptance", "--topic", "grandparent_529"];
    let replaced = dir(&[&["conversation", "replace", &id.to_uppercase(), raw_path.to_str().unwrap()][..], &flags].concat());
    assert!(replaced.status.success(), "{}", text(&replaced.stderr));
    assert!(text(&replaced.stdout).contains(&format!("replaced the source of {id} from {} (raw, not_started)", raw_path.display())), "{}", text(&replaced.stdout));
    let enriched = dir(&["enrich", id]);
    assert!(text(&enriched.stdout).starts_with("1 enriched, 0 failed"), "{}{}", text(&enriched.stdout), text(&enriched.stderr));
    let locked = dir(&["conversation", "replace", id, cut.to_str().unwrap()]);
    assert_eq!(locked.status.code(), Some(1));
    assert!(text(&locked.stderr).contains("cannot be replaced: it is enriched"), "{}", text(&locked.stderr));
    let doctor = dir(&["doctor"]);
    assert!(doctor.status.success(), "the row names the new source, which is stored: {}", text(&doctor.stdout));
}

#[test]
fn conversations_are_deleted_by_id_in_any_case() {
    let data = tempfile::tempdir().unwrap();
    let dir = |args: &[&str]| with_data_dir(args, data.path());
    assert!(dir(&["user", "add", "coach@example.com", "--password", "a long password"]).status.success());
    assert!(dir(&["import", fixtures().join("enriched/enriched-1.json").to_str().unwrap()]).status.success());
    let deleted = dir(&["conversation", "delete", "2E6E3685-EB74-46C9-B11D-13A3E162A4B5"]);
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    assert!(text(&deleted.stdout).contains("deleted conversation 2e6e3685-eb74-46c9-b11d-13a3e162a4b5"));
    let again = dir(&["conversation", "delete", "2e6e3685-eb74-46c9-b11d-13a3e162a4b5"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("no such conversation: 2e6e3685-eb74-46c9-b11d-13a3e162a4b5"), "{}", text(&again.stderr));
    let doctor = dir(&["doctor"]);
    assert!(doctor.status.success(), "its objects went with it: {}", text(&doctor.stdout));
}

#[test]
fn create_queues_a_job_runs_it_and_exits_non_zero_when_refused() {
    let data = tempfile::tempdir().unwrap();
    assert!(with_data_dir(&["user", "add", "coach@example.com", "--password", "a long password"], data.path()).status.success());
    let imported = with_data_dir(&["import", fixtures().join("enriched").to_str().unwrap()], data.path());
    assert!(imported.status.success(), "{}", text(&imported.stderr));
    let ids: Vec<String> = text(&imported.stdout).lines().filter_map(|l| l.strip_prefix("imported ")).map(|l| l.split_whitespace().next().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 7, "{}", text(&imported.stdout));
    let list = data.path().join("ids.txt");
    std::fs::write(&list, format!("# the first three\n{}\n\n{}\n{}\n", ids[0], ids[1], ids[2])).unwrap();

    let created = with_data_dir(&["create", "From a list", "--from", list.to_str().unwrap()], data.path());
    assert_eq!(created.status.code(), Some(0), "{}", text(&created.stderr));
    assert!(text(&created.stdout).starts_with("created \"From a list\" ("), "{}", text(&created.stdout));
    assert!(text(&created.stdout).contains("version 1, 3 conversations"), "{}", text(&created.stdout));
    assert!(!text(&created.stderr).contains("conversations,"), "no progress bar when stderr is not a terminal: {}", text(&created.stderr));
    let by_args = with_data_dir(&["create", "From args", &ids[3], &ids[4]], data.path());
    assert!(text(&by_args.stdout).contains("version 1, 2 conversations"), "{}", text(&by_args.stderr));

    // Refusals exit 1 naming what is wrong, and queue nothing.
    let taken = with_data_dir(&["create", "From a list", &ids[5]], data.path());
    assert_eq!(taken.status.code(), Some(1));
    assert!(text(&taken.stderr).contains("\"From a list\" already exists"), "{}", text(&taken.stderr));
    std::fs::write(&list, format!("{}\nnot-an-id\n", ids[0])).unwrap();
    let bad = with_data_dir(&["create", "Bad list", "--from", list.to_str().unwrap()], data.path());
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains(&format!("{}:2: \"not-an-id\" is not a conversation id", list.display())), "{}", text(&bad.stderr));
    let unknown = with_data_dir(&["create", "Unknown", "00000000-0000-4000-8000-000000000000"], data.path());
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("00000000-0000-4000-8000-000000000000"), "{}", text(&unknown.stderr));
}
