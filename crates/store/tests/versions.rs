//! Versions over shared segments: whatever sequence of changes made a
//! version, its bytes are those of an offline build of its members, and
//! they stay so after later removals and compactions. Run on SQLite and on
//! PostgreSQL (and on S3 when `LORA_FILES_TEST_SERVICE_STORAGE_URL` says so).

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::Bytes;
use lora_files_format::build::{build, BuildOptions};
use lora_files_store::on_both_backends;
use lora_files_store::testing::{enriched_templates, TestStore};
use lora_files_store::training_files::DownloadFormat;
use lora_files_store::TrainingFile;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

/// One change to a file, as the property test draws it.
#[derive(Clone, Debug)]
enum Op {
    /// Add this many new conversations; `shared_short` gives them the
    /// first 8 characters of an earlier member's id (the JSONL line ids
    /// then need their suffix).
    Add { count: usize, shared_short: bool },
    /// Remove the member at this position (modulo the member count).
    Remove(usize),
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..4, proptest::bool::weighted(0.3)).prop_map(|(count, shared_short)| Op::Add { count, shared_short }),
        3 => (0usize..64).prop_map(Op::Remove),
        1 => Just(Op::Compact),
    ]
}

/// Sequences long enough that automatic compaction (after 32 ranges) happens.
fn sequences(cases: u32) -> Vec<(usize, Vec<Op>)> {
    let config = Config { cases, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]));
    let strategy = (1usize..5, proptest::collection::vec(op(), 50..70));
    (0..cases).map(|_| strategy.new_tree(&mut runner).unwrap().current()).collect()
}

/// The conversations the test has imported: id → enriched file text.
struct Sources {
    templates: Vec<(String, String)>,
    texts: HashMap<String, String>,
    next: usize,
}

impl Sources {
    fn new() -> Self {
        Self { templates: enriched_templates(), texts: HashMap::new(), next: 0 }
    }

    async fn import(&mut self, t: &TestStore, short_of: Option<&str>) -> String {
        let (old_id, text) = &self.templates[self.next % self.templates.len()];
        let fresh = uuid::Uuid::new_v4().to_string();
        let id = match short_of {
            Some(other) => format!("{}{}", &other[..8], &fresh[8..]),
            None => fresh,
        };
        let text = text.replace(old_id.as_str(), &id);
        t.store.conversations().import_enriched(&t.alice, &format!("copy-{}.json", self.next), Bytes::from(text.clone())).await.unwrap();
        self.next += 1;
        self.texts.insert(id.clone(), text);
        id
    }
}

/// What `lora-files build` writes for these members, in this order, with
/// the version's clock: (full JSON, JSONL).
fn offline_build(sources: &Sources, members: &[String], file: &TrainingFile, now: chrono::DateTime<chrono::Utc>) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let inputs: Vec<PathBuf> = members
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let path = dir.path().join(format!("{i:06}.json"));
            std::fs::write(&path, &sources.texts[id]).unwrap();
            path
        })
        .collect();
    let out = dir.path().join("out");
    let options = BuildOptions {
        name: file.name.clone(),
        description: file.description.clone(),
        target_model: file.target_model.clone(),
        vertical: Some(file.vertical.clone()),
        jsonl_meta: false,
        now,
    };
    let summary = build(&inputs, &out, &options, |_| {}).unwrap();
    (std::fs::read(summary.json_path).unwrap(), std::fs::read(summary.jsonl_path).unwrap())
}

/// The version's bytes with its creation date set to its last update, so
/// that they compare with a build made at one instant.
fn at_one_instant(json: &[u8]) -> (Vec<u8>, chrono::DateTime<chrono::Utc>) {
    let value: Value = serde_json::from_slice(json).unwrap();
    let metadata = &value["training_file_metadata"];
    let created = metadata["created_date"].as_str().unwrap();
    let updated = metadata["last_updated"].as_str().unwrap();
    let text = String::from_utf8(json.to_vec()).unwrap();
    let needle = format!("\"created_date\": \"{created}\"");
    assert!(text.contains(&needle), "the header states its creation date as {needle}");
    let text = text.replacen(&needle, &format!("\"created_date\": \"{updated}\""), 1);
    (text.into_bytes(), updated.parse().unwrap())
}

async fn assert_is_offline_build(t: &TestStore, sources: &Sources, file: &TrainingFile, members: &[String], history: &str) {
    let json = t.download(&t.alice, &file.id, DownloadFormat::Json, Some(file.version)).await;
    let jsonl = t.download(&t.alice, &file.id, DownloadFormat::Jsonl, Some(file.version)).await;
    if members.is_empty() {
        assert!(jsonl.is_empty(), "{history}");
        return;
    }
    let (json, now) = at_one_instant(&json);
    let (expected_json, expected_jsonl) = offline_build(sources, members, file, now);
    assert!(jsonl[..] == expected_jsonl[..], "JSONL of v{} differs from the offline build after {history}", file.version);
    assert!(json == expected_json, "JSON of v{} differs from the offline build after {history}", file.version);
    // The export figures carried from version to version (stated at commit,
    // not counted on first use) are those of a count over the whole JSONL.
    let mut tx = t.transaction_as(Some(&t.alice)).await;
    let (stated,): (Option<i64>,) = sqlx::query_as("SELECT openai_size FROM training_file_versions WHERE training_file_id = $1 AND version = $2")
        .bind(&file.id)
        .bind(file.version)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    drop(tx);
    assert!(stated.is_some(), "v{} states its export figures at commit after {history}", file.version);
    let carried = t.store.training_files().export_figures(&t.alice, &file.id, Some(file.version)).await.unwrap();
    let counted = lora_files_format::export::ExportFigures::of_jsonl(&jsonl, &lora_files_format::export::Tokenizer::o200k());
    assert_eq!(carried, counted, "export figures of v{} after {history}", file.version);
}

async fn any_sequence_of_changes_gives_the_offline_build(t: &TestStore) {
    for (case, (initial, ops)) in sequences(3).into_iter().enumerate() {
        let mut sources = Sources::new();
        let mut members = Vec::new();
        for _ in 0..initial {
            members.push(sources.import(t, None).await);
        }
        let files = t.store.training_files();
        let mut file = files.create(&t.alice, &format!("property {case}"), Some("drawn changes"), &members).await.unwrap();
        let mut history = format!("create({initial})");
        assert_is_offline_build(t, &sources, &file, &members, &history).await;
        // Every version's bytes as first served: later changes must not alter them.
        let mut served: Vec<(i64, Bytes, Bytes)> = Vec::new();
        let snapshot = |file: &TrainingFile| (file.id.clone(), file.version);
        for op in ops {
            let (id, version) = snapshot(&file);
            served.push((version, t.download(&t.alice, &id, DownloadFormat::Json, Some(version)).await, t.download(&t.alice, &id, DownloadFormat::Jsonl, Some(version)).await));
            history.push_str(&format!(", {op:?}"));
            file = match op {
                Op::Add { count, shared_short } => {
                    let mut added = Vec::new();
                    for _ in 0..count {
                        let short_of = if shared_short { members.first().cloned() } else { None };
                        added.push(sources.import(t, short_of.as_deref()).await);
                    }
                    let file = files.add(&t.alice, &file.id, &added).await.unwrap();
                    members.extend(added);
                    file
                }
                Op::Remove(_) if members.len() <= 1 => continue,
                Op::Remove(at) => {
                    let gone = members.remove(at % members.len());
                    files.remove(&t.alice, &file.id, &gone).await.unwrap()
                }
                Op::Compact => files.compact(&t.alice, &file.id).await.unwrap(),
            };
            assert_eq!(file.conversation_count as usize, members.len(), "{history}");
            assert_is_offline_build(t, &sources, &file, &members, &history).await;
        }
        let versions = files.versions(&t.alice, &file.id).await.unwrap();
        assert!(versions.iter().any(|v| v.change == "compact"), "the sequence compacted at least once: {history}");
        for (version, json, jsonl) in served {
            assert_eq!(t.download(&t.alice, &file.id, DownloadFormat::Json, Some(version)).await, json, "v{version} JSON changed after {history}");
            assert_eq!(t.download(&t.alice, &file.id, DownloadFormat::Jsonl, Some(version)).await, jsonl, "v{version} JSONL changed after {history}");
        }
    }
}


/// A create of more than 64 conversations commits without its export
/// figures (tokenizing costs many times what rendering does) and counts
/// them after: every version's figures then equal a count of its JSONL,
/// whether a small add landed before the counting was done or after.
async fn a_large_change_counts_its_export_figures_after_it_commits(t: &TestStore) {
    use lora_files_format::export::{ExportFigures, Tokenizer};
    let ids = t.import_copies(&t.alice, 70).await;
    let files = t.store.training_files();
    let created = files.create(&t.alice, "large", None, &ids[..66]).await.unwrap();
    let added = files.add(&t.alice, &created.id, &ids[66..68]).await.unwrap();
    let settled = files.settle_figures(&t.alice, &created.id).await.unwrap().expect("every member is counted");
    let counted = |jsonl: Bytes| ExportFigures::of_jsonl(&jsonl, &Tokenizer::o200k());
    assert_eq!(settled, counted(t.download(&t.alice, &created.id, DownloadFormat::Jsonl, Some(added.version)).await));
    assert_eq!(files.known_export_figures(&t.alice, &created.id, added.version).await.unwrap(), Some(settled));
    let first = files.export_figures(&t.alice, &created.id, Some(created.version)).await.unwrap();
    assert_eq!(first, counted(t.download(&t.alice, &created.id, DownloadFormat::Jsonl, Some(created.version)).await));
    let mut tx = t.transaction_as(Some(&t.alice)).await;
    let (uncounted,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM training_file_conversations WHERE training_file_id = $1 AND openai_size IS NULL")
        .bind(&created.id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    drop(tx);
    assert_eq!(uncounted, 0, "every member keeps its own figures");
    // A small add now carries them at commit, and a removal subtracts.
    let latest = files.add(&t.alice, &created.id, &ids[68..]).await.unwrap();
    let latest = files.remove(&t.alice, &latest.id, &ids[0]).await.unwrap();
    let known = files.known_export_figures(&t.alice, &created.id, latest.version).await.unwrap();
    assert_eq!(known, Some(counted(t.download(&t.alice, &created.id, DownloadFormat::Jsonl, Some(latest.version)).await)));
}

on_both_backends!(any_sequence_of_changes_gives_the_offline_build, a_large_change_counts_its_export_figures_after_it_commits);
