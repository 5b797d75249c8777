//! Two `lora-files worker` processes on one PostgreSQL and one S3 store
//! drain 200 queued jobs (creates and adds on 20 files): every job runs
//! once, and every file's latest version is byte-equal to an offline build of
//! its members. Needs `LORA_FILES_TEST_S3_URL` (scripts/test.sh starts moto).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use lora_files_format::build::{build, BuildOptions};
use lora_files_store::testing::{enriched_templates, Backend, TestStore};
use lora_files_store::training_files::DownloadFormat;
use lora_files_store::{Access, JobState, Store, TrainingFile};
use serde_json::Value;

const FILES: usize = 20;
const ADDS_PER_FILE: usize = 9;

/// Whether this run must include S3: `CI` or `LORA_FILES_REQUIRE_S3` set to anything but empty, `0` or `false`.
fn s3_required() -> bool {
    ["CI", "LORA_FILES_REQUIRE_S3"].iter().any(|name| std::env::var(name).is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false")))
}

fn worker(t: &TestStore, storage_url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_lora-files"))
        .args(["worker", "--workers", "2", "--job-claim-seconds", "10", "--data-dir"])
        .arg(t.dir.path())
        .args(["--database-url", t.config.database_url.as_deref().unwrap(), "--storage-url", storage_url])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap()
}

/// The bytes a download link of the file's current version serves.
async fn download(store: &Store, owner: &str, file_id: &str, format: DownloadFormat) -> Vec<u8> {
    let link = store.training_files().download(owner, file_id, format, None).await.unwrap();
    let opened = store.training_files().open_link(link.url.rsplit('/').next().unwrap()).await.unwrap();
    let chunks: Vec<Bytes> = opened.body(None).try_collect().await.unwrap();
    chunks.concat()
}

/// What `lora-files build` writes for these members with the version's clock: (full JSON, JSONL).
fn offline_build(texts: &HashMap<String, String>, members: &[String], file: &TrainingFile, now: chrono::DateTime<chrono::Utc>) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let inputs: Vec<PathBuf> = members
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let path = dir.path().join(format!("{i:06}.json"));
            std::fs::write(&path, &texts[id]).unwrap();
            path
        })
        .collect();
    let options = BuildOptions {
        name: file.name.clone(),
        description: file.description.clone(),
        target_model: file.target_model.clone(),
        vertical: Some(file.vertical.clone()),
        jsonl_meta: false,
        now,
    };
    let summary = build(&inputs, &dir.path().join("out"), &options, |_| {}).unwrap();
    (std::fs::read(summary.json_path).unwrap(), std::fs::read(summary.jsonl_path).unwrap())
}

/// The version's bytes with its creation date set to its last update, to compare with a build made at one instant.
fn at_one_instant(json: &[u8]) -> (Vec<u8>, chrono::DateTime<chrono::Utc>) {
    let value: Value = serde_json::from_slice(json).unwrap();
    let created = value["training_file_metadata"]["created_date"].as_str().unwrap().to_owned();
    let updated = value["training_file_metadata"]["last_updated"].as_str().unwrap().to_owned();
    let text = String::from_utf8(json.to_vec()).unwrap();
    let needle = format!("\"created_date\": \"{created}\"");
    assert!(text.contains(&needle));
    (text.replacen(&needle, &format!("\"created_date\": \"{updated}\""), 1).into_bytes(), updated.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_drain_200_jobs_on_postgres_and_s3_each_once() {
    let Ok(base) = std::env::var("LORA_FILES_TEST_S3_URL") else {
        assert!(!s3_required(), "LORA_FILES_TEST_S3_URL is not set but S3 tests are required (CI or LORA_FILES_REQUIRE_S3)");
        eprintln!("LORA_FILES_TEST_S3_URL is not set: skipping the two-worker test on S3 (run scripts/test.sh, which starts moto)");
        return;
    };
    let t = TestStore::new(Backend::Postgres).await;
    let storage_url = format!("{base}/{}", uuid::Uuid::new_v4().simple());
    let mut config = t.config.clone();
    config.storage_url = Some(storage_url.clone());
    let store = Store::open(config, Access::Service).await.unwrap();
    let owner = t.alice.clone();

    let templates = enriched_templates();
    let mut texts = HashMap::new();
    let mut ids = Vec::new();
    for i in 0..FILES * (1 + ADDS_PER_FILE) {
        let (old_id, text) = &templates[i % templates.len()];
        let id = uuid::Uuid::new_v4().to_string();
        let text = text.replace(old_id.as_str(), &id);
        store.conversations().import_enriched(&owner, &format!("copy-{i}.json"), Bytes::from(text.clone())).await.unwrap();
        texts.insert(id.clone(), text);
        ids.push(id);
    }
    let (first, added) = ids.split_at(FILES);

    let mut jobs = Vec::new();
    let mut files = Vec::new();
    for (i, id) in first.iter().enumerate() {
        let (job, file) = store.jobs().enqueue_create(&owner, &format!("file {i}"), None, std::slice::from_ref(id)).await.unwrap();
        jobs.push(job.id);
        files.push(file.id);
    }
    let mut workers = [worker(&t, &storage_url), worker(&t, &storage_url)];
    for job in &jobs {
        assert_eq!(store.jobs().wait(&owner, job, Duration::from_secs(120)).await.unwrap().state, JobState::Succeeded);
    }
    // Adds are accepted on active files only: queued once the creates are done, all at once, while both workers poll.
    let mut expected: Vec<Vec<String>> = first.iter().map(|id| vec![id.clone()]).collect();
    for round in 0..ADDS_PER_FILE {
        for (f, file_id) in files.iter().enumerate() {
            let id = &added[round * FILES + f];
            let (job, _) = store.jobs().enqueue_add(&owner, file_id, std::slice::from_ref(id)).await.unwrap();
            jobs.push(job.id);
            expected[f].push(id.clone());
        }
    }
    assert_eq!(jobs.len(), 200);
    let mut finished = Vec::new();
    for job in &jobs {
        finished.push(store.jobs().wait(&owner, job, Duration::from_secs(300)).await.unwrap());
    }
    for child in &mut workers {
        child.kill().unwrap();
        child.wait().unwrap();
    }

    let mut versions_by_file: HashMap<String, HashSet<i64>> = HashMap::new();
    let mut claimed_by = HashSet::new();
    for job in &finished {
        assert_eq!((job.state, job.attempts), (JobState::Succeeded, 1), "{job:?}");
        let result = job.result.as_ref().unwrap();
        assert!(versions_by_file.entry(result["training_file_id"].as_str().unwrap().to_owned()).or_default().insert(result["version"].as_i64().unwrap()), "one version per job: {job:?}");
        claimed_by.insert(job.claimed_by.clone().unwrap().split(':').nth(1).unwrap().to_owned());
    }
    assert_eq!(claimed_by.len(), 2, "both processes worked: {claimed_by:?}");
    for (f, file_id) in files.iter().enumerate() {
        assert_eq!(versions_by_file[file_id], (1..=1 + ADDS_PER_FILE as i64).collect::<HashSet<_>>());
        let file = store.training_files().get(&owner, file_id).await.unwrap();
        assert_eq!((file.version, file.conversation_count, file.status.as_str()), (1 + ADDS_PER_FILE as i64, expected[f].len() as i64, "active"));
        let members: Vec<String> = store.training_files().members(&owner, file_id, 500, None).await.unwrap().items.into_iter().map(|m| m.conversation_id).collect();
        assert_eq!(members.iter().collect::<HashSet<_>>(), expected[f].iter().collect::<HashSet<_>>());
        let (json, now) = at_one_instant(&download(&store, &owner, file_id, DownloadFormat::Json).await);
        let jsonl = download(&store, &owner, file_id, DownloadFormat::Jsonl).await;
        let (expected_json, expected_jsonl) = offline_build(&texts, &members, &file, now);
        assert!(jsonl == expected_jsonl, "JSONL of {file_id} differs from the offline build");
        assert!(json == expected_json, "JSON of {file_id} differs from the offline build");
    }
    store.close().await;
    t.cleanup().await;
}
