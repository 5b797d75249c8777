//! Storage faults: every service operation, run once to count its storage
//! calls and then failed at each of them in turn — the call refused, or
//! carried out with its answer lost — answers an error (or, when the failed
//! call was cleanup after its commit, lands whole), never panics or hangs,
//! leaves the previous version downloading the same bytes with the same
//! SHA-256 and the catalogue as it was, and `doctor --repair` ends clean.
//! Run on SQLite and PostgreSQL (and on S3 when
//! `LORA_FILES_TEST_SERVICE_STORAGE_URL` says so).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{fixture, TestStore};
use futures::TryStreamExt;
use lora_files_store::conversations::{ConversationFilter, ImportRequest};
use lora_files_store::enrichment::EnrichOutcome;
use lora_files_store::scaffolding::ScaffoldingKeys;
use lora_files_store::testing::enriched_templates;
use lora_files_store::testing::faults::{Call, Failure};
use lora_files_store::testing::Backend;
use lora_files_store::training_files::{DownloadFormat, FileFilter};
use lora_files_store::{on_both_backends, Access, ConversationRecord, Member, Store, StoreError, TrainingFile, Version};
use sha2::{Digest, Sha256};

/// Past this many object ranges a change compacts the file (the store's `COMPACT_AFTER_RANGES`).
const COMPACT_AFTER_RANGES: usize = 32;

/// Longer than any operation here takes on a loaded machine: past it, the operation hangs.
const HANG: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Create,
    Add,
    /// Removes the member whose JSONL line ids another member inherits (it is rendered again).
    Remove,
    Compact,
    DeleteFile,
    /// One enriched file.
    Import,
    /// Several enriched files at once (the batched path).
    ImportMany,
    /// Raw LLM output, kept as a source to enrich.
    ImportRaw,
    /// A fixed file replacing an unparsable source.
    ReplaceSource,
    Enrich,
    Download(DownloadFormat),
}

impl Op {
    fn needs_scaffolding(self) -> bool {
        matches!(self, Op::ImportRaw | Op::ReplaceSource | Op::Enrich)
    }

    /// Whether the state a failed run leaves is the one it started from, to run it again on.
    fn retried_after_failure(self) -> bool {
        !matches!(self, Op::ImportMany | Op::Download(_))
    }
}

/// The conversations scenes are made of, imported once per test.
struct Pool {
    /// 0 and 1 share their first 8 characters (JSONL line ids need a suffix).
    ids: Vec<String>,
}

/// The state an operation starts from.
struct Scene {
    /// The file it changes or reads: its current version must survive.
    file: Option<TrainingFile>,
    /// Conversations it adds or removes (training files), or enriches or replaces.
    ids: Vec<String>,
    /// What it imports.
    requests: Vec<ImportRequest>,
    /// The name a create gives.
    name: String,
}

/// What a run did: its error, and the conversations a partly failed batch imported.
#[derive(Debug, Default)]
struct Ran {
    error: Option<String>,
    landed: Vec<String>,
    file: Option<TrainingFile>,
    bytes: Option<Bytes>,
}

fn fresh_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn enriched_copy(i: usize, id: &str) -> String {
    let templates = enriched_templates();
    let (old_id, text) = &templates[i % templates.len()];
    text.replace(old_id.as_str(), id)
}

fn raw_text() -> String {
    std::fs::read_to_string(fixture("raw/single-convo-file-3-raw.json")).unwrap()
}

fn raw_request(text: String, id: &str) -> ImportRequest {
    let keys =
        ScaffoldingKeys { persona: Some("pragmatic_optimist".into()), emotional_arc: Some("shame_to_acceptance".into()), training_topic: Some("grandparent_529".into()) };
    ImportRequest { scaffolding: keys, conversation_id: Some(id.into()), ..ImportRequest::new("raw.json", text) }
}

async fn import_pool(t: &TestStore, count: usize) -> Pool {
    let first = fresh_id();
    let ids: Vec<String> = (0..count)
        .map(|i| {
            if i == 1 {
                format!("{}{}", &first[..8], &fresh_id()[8..])
            } else if i == 0 {
                first.clone()
            } else {
                fresh_id()
            }
        })
        .collect();
    let requests = ids.iter().enumerate().map(|(i, id)| ImportRequest::new(format!("{id}.json"), enriched_copy(i, id))).collect();
    for answer in t.store.conversations().import_many(&t.alice, requests).await {
        answer.unwrap();
    }
    Pool { ids }
}

/// The most object ranges a download of the file's current version reads.
async fn ranges(t: &TestStore, file: &TrainingFile) -> usize {
    let mut most = 0;
    for format in [DownloadFormat::Json, DownloadFormat::Jsonl] {
        let link = t.store.training_files().download(&t.alice, &file.id, format, Some(file.version)).await.unwrap();
        let opened = t.store.training_files().open_link(link.url.rsplit('/').next().unwrap()).await.unwrap();
        most = most.max(opened.ranges());
    }
    most
}

async fn setup(t: &TestStore, pool: &Pool, op: Op) -> Scene {
    let files = t.store.training_files();
    let name = format!("faults {}", &fresh_id()[..8]);
    let mut scene = Scene { file: None, ids: Vec::new(), requests: Vec::new(), name: name.clone() };
    match op {
        Op::Create => scene.ids = pool.ids[2..4].to_vec(),
        Op::Add => {
            scene.file = Some(files.create(&t.alice, &name, Some("before"), &pool.ids[2..4]).await.unwrap());
            scene.ids = pool.ids[4..6].to_vec();
        }
        Op::Remove => {
            let members = [pool.ids[0].clone(), pool.ids[2].clone(), pool.ids[1].clone()];
            scene.file = Some(files.create(&t.alice, &name, None, &members).await.unwrap());
            scene.ids = vec![pool.ids[0].clone()];
        }
        Op::Compact => {
            // Changes compact by themselves past 32 ranges: this scene's adds
            // fail their compaction at its commit, as a crash would leave them.
            let mut file = files.create(&t.alice, &name, None, &pool.ids[2..3]).await.unwrap();
            let commits_allowed = Arc::new(AtomicUsize::new(0));
            let allowed = commits_allowed.clone();
            let uncompacted = t.store.clone().with_before_commit(Arc::new(move || {
                allowed
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .map(drop)
                    .map_err(|_| StoreError::Internal("no compaction in this scene".into()))
            }));
            for id in &pool.ids[3..] {
                if ranges(t, &file).await > COMPACT_AFTER_RANGES {
                    break;
                }
                commits_allowed.store(1, Ordering::SeqCst);
                file = uncompacted.training_files().add(&t.alice, &file.id, std::slice::from_ref(id)).await.unwrap();
            }
            assert!(ranges(t, &file).await > COMPACT_AFTER_RANGES, "the pool is large enough to need compaction");
            scene.file = Some(file);
        }
        Op::DeleteFile => scene.file = Some(files.create(&t.alice, &name, None, &pool.ids[2..5]).await.unwrap()),
        Op::Download(_) => {
            // Two versions' segments: a download reads ranges of several objects.
            let file = files.create(&t.alice, &name, None, &pool.ids[2..4]).await.unwrap();
            scene.file = Some(files.add(&t.alice, &file.id, &pool.ids[4..6]).await.unwrap());
        }
        Op::Import => scene.requests = vec![ImportRequest::new("one.json", enriched_copy(3, &fresh_id()))],
        Op::ImportMany => scene.requests = (0..3).map(|i| ImportRequest::new(format!("batch-{i}.json"), enriched_copy(i, &fresh_id()))).collect(),
        Op::ImportRaw => scene.requests = vec![raw_request(raw_text(), &fresh_id())],
        Op::ReplaceSource => {
            let id = fresh_id();
            let cut = ImportRequest { keep_unparsable: true, conversation_id: Some(id.clone()), ..ImportRequest::new("cut.json", raw_text()[..900].to_owned()) };
            t.store.conversations().import(&t.alice, cut).await.unwrap();
            scene.ids = vec![id.clone()];
            scene.requests = vec![raw_request(raw_text(), &id)];
        }
        Op::Enrich => {
            let id = fresh_id();
            t.store.conversations().import(&t.alice, raw_request(raw_text(), &id)).await.unwrap();
            scene.ids = vec![id];
        }
    }
    scene
}

async fn run(t: &TestStore, store: &Store, op: Op, scene: &Scene) -> Ran {
    let files = store.training_files();
    let file_id = scene.file.as_ref().map(|f| f.id.clone()).unwrap_or_default();
    let mut ran = Ran::default();
    let result: Result<Option<TrainingFile>, StoreError> = match op {
        Op::Create => files.create(&t.alice, &scene.name, None, &scene.ids).await.map(Some),
        Op::Add => files.add(&t.alice, &file_id, &scene.ids).await.map(Some),
        Op::Remove => files.remove(&t.alice, &file_id, &scene.ids[0]).await.map(Some),
        Op::Compact => files.compact(&t.alice, &file_id).await.map(Some),
        Op::DeleteFile => files.delete(&t.alice, &file_id).await.map(|()| None),
        Op::Import | Op::ImportRaw => store.conversations().import(&t.alice, scene.requests[0].clone()).await.map(|_| None),
        Op::ImportMany => {
            for answer in store.conversations().import_many(&t.alice, scene.requests.clone()).await {
                match answer {
                    Ok(imported) => ran.landed.push(imported.record().conversation_id.clone()),
                    Err(error) => ran.error = Some(error.to_string()),
                }
            }
            Ok(None)
        }
        Op::ReplaceSource => store.conversations().replace_source(&t.alice, &scene.ids[0], scene.requests[0].clone()).await.map(|_| None),
        Op::Enrich => match store.enrichment().run(&t.alice, &scene.ids[0]).await {
            Ok(run) if run.outcome == EnrichOutcome::Enriched => Ok(None),
            Ok(run) => {
                assert_eq!(run.conversation.enrichment_status, "not_started", "a failed run goes back to where it started");
                Err(StoreError::Internal(run.conversation.enrichment_error.unwrap_or_else(|| "failed without saying why".into())))
            }
            Err(error) => Err(error),
        },
        Op::Download(format) => {
            let read = async {
                let link = files.download(&t.alice, &file_id, format, None).await?;
                let opened = files.open_link(link.url.rsplit('/').next().unwrap()).await?;
                let chunks: Vec<Bytes> = opened.body(None).try_collect().await?;
                Ok::<_, StoreError>(Bytes::from(chunks.concat()))
            };
            read.await.map(|bytes| {
                ran.bytes = Some(bytes);
                None
            })
        }
    };
    match result {
        Ok(file) => ran.file = file,
        Err(error) => ran.error = Some(error.to_string()),
    }
    ran
}

/// What must not change when an operation fails.
#[derive(Debug, PartialEq)]
struct Catalogue {
    files: Vec<(TrainingFile, Vec<Member>, Vec<Version>)>,
    conversations: Vec<ConversationRecord>,
}

impl Catalogue {
    /// Read without the read caches, so nothing a cache still holds hides a change.
    async fn read(reader: &Store, user: &str) -> Self {
        let everything = FileFilter { status: Some("all".into()), q: None };
        let listed = reader.training_files().list(user, &everything, 10_000, None).await.unwrap();
        let mut files = Vec::new();
        for file in listed.items.iter() {
            let members = reader.training_files().members(user, &file.id, 10_000, None).await.unwrap().items;
            let mut versions = reader.training_files().versions(user, &file.id).await.unwrap();
            // Recorded by the first whole download, in the background; checked by `Kept`.
            for version in &mut versions {
                (version.json_sha256, version.jsonl_sha256) = (None, None);
            }
            files.push((file.clone(), members, versions));
        }
        let conversations = reader.conversations().list(user, &ConversationFilter::default(), 10_000, None).await.unwrap().items;
        Self { files, conversations }
    }

    /// As compared after a failed `op`: an enrichment that failed says why
    /// (and goes back to its status); a batch keeps what it did import.
    fn comparable(mut self, op: Op, scene: &Scene, ran: &Ran) -> Self {
        self.conversations.retain(|c| !ran.landed.contains(&c.conversation_id));
        if op == Op::Enrich {
            for c in self.conversations.iter_mut().filter(|c| scene.ids.contains(&c.conversation_id)) {
                c.enrichment_error = None;
            }
        }
        self
    }
}

/// A version's bytes as they downloaded before the operation, and their recorded SHA-256.
struct Kept {
    file: TrainingFile,
    json: Bytes,
    jsonl: Bytes,
}

impl Kept {
    async fn of(t: &TestStore, reader: &Store, file: &TrainingFile) -> Self {
        let json = t.download(&t.alice, &file.id, DownloadFormat::Json, Some(file.version)).await;
        let jsonl = t.download(&t.alice, &file.id, DownloadFormat::Jsonl, Some(file.version)).await;
        let kept = Self { file: file.clone(), json, jsonl };
        kept.digests_recorded(reader, "before the operation").await;
        kept
    }

    /// Waits for the digests a whole download records, and checks they are the bytes'.
    async fn digests_recorded(&self, reader: &Store, context: &str) {
        let expected = (Some(sha256(&self.json)), Some(sha256(&self.jsonl)));
        for _ in 0..200 {
            let versions = reader.training_files().versions(&self.file.owner_id, &self.file.id).await.unwrap();
            let version = versions.into_iter().find(|v| v.version == self.file.version).expect("the version is kept");
            let recorded = (version.json_sha256.clone(), version.jsonl_sha256.clone());
            if recorded.0.is_some() && recorded.1.is_some() {
                assert_eq!(recorded, expected, "the recorded SHA-256 is the bytes': {context}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no SHA-256 recorded after whole downloads: {context}");
    }

    async fn still_downloads(&self, t: &TestStore, reader: &Store, context: &str) {
        assert!(self.json.len() as i64 == self.file.json_file_size.unwrap() && self.jsonl.len() as i64 == self.file.jsonl_file_size.unwrap(), "{context}");
        assert!(t.download(&t.alice, &self.file.id, DownloadFormat::Json, Some(self.file.version)).await == self.json, "the JSON is as it was: {context}");
        assert!(t.download(&t.alice, &self.file.id, DownloadFormat::Jsonl, Some(self.file.version)).await == self.jsonl, "the JSONL is as it was: {context}");
        self.digests_recorded(reader, context).await;
    }
}

/// A file's current version tells one story: members, full JSON, JSONL and stated figures.
async fn assert_consistent(t: &TestStore, file: &TrainingFile, members: &[String], context: &str) {
    let listed: Vec<String> = t.store.training_files().members(&t.alice, &file.id, 10_000, None).await.unwrap().items.into_iter().map(|m| m.conversation_id).collect();
    assert_eq!(listed, members, "{context}");
    let json = t.download(&t.alice, &file.id, DownloadFormat::Json, Some(file.version)).await;
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap_or_else(|e| panic!("the JSON parses ({e}): {context}"));
    let in_json: Vec<&str> = value["conversations"].as_array().unwrap().iter().map(|c| c["conversation_metadata"]["conversation_id"].as_str().unwrap()).collect();
    assert_eq!(in_json, members, "{context}");
    assert_eq!(value["training_file_metadata"]["total_conversations"], file.conversation_count, "{context}");
    let jsonl = t.download(&t.alice, &file.id, DownloadFormat::Jsonl, Some(file.version)).await;
    let lines = String::from_utf8(jsonl.to_vec()).unwrap();
    let parsed: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a JSONL line parses ({e}): {context}"))).collect();
    assert_eq!(parsed.len() as i64, file.total_training_pairs, "{context}");
    assert_eq!((Some(json.len() as i64), Some(jsonl.len() as i64)), (file.json_file_size, file.jsonl_file_size), "{context}");
}

async fn members_of(t: &TestStore, file: &TrainingFile) -> Vec<String> {
    t.store.training_files().members(&t.alice, &file.id, 10_000, None).await.unwrap().items.into_iter().map(|m| m.conversation_id).collect()
}

/// The operation landed whole.
async fn assert_done(t: &TestStore, op: Op, scene: &Scene, before: &[String], ran: &Ran, context: &str) {
    let conversations = t.store.conversations();
    match op {
        Op::Create | Op::Add | Op::Remove | Op::Compact => {
            let file = ran.file.as_ref().expect("a change answers the file");
            let expected: Vec<String> = match op {
                Op::Create => scene.ids.clone(),
                Op::Add => before.iter().chain(&scene.ids).cloned().collect(),
                Op::Remove => before.iter().filter(|id| !scene.ids.contains(id)).cloned().collect(),
                _ => before.to_vec(),
            };
            let started_at = scene.file.as_ref().map_or(0, |f| f.version);
            assert_eq!(file.version, started_at + 1, "one new version: {context}");
            assert_consistent(t, file, &expected, context).await;
            if op == Op::Compact {
                assert!(ranges(t, file).await <= COMPACT_AFTER_RANGES, "{context}");
                let previous = scene.file.as_ref().unwrap();
                let jsonl = |v| t.download(&t.alice, &file.id, DownloadFormat::Jsonl, Some(v));
                assert!(jsonl(file.version).await == jsonl(previous.version).await, "a compaction keeps the content: {context}");
            }
        }
        Op::DeleteFile => {
            let gone = t.store.training_files().get(&t.alice, &scene.file.as_ref().unwrap().id).await;
            assert!(matches!(gone, Err(StoreError::NotFound)), "{context}: {gone:?}");
        }
        Op::Import | Op::ImportMany | Op::ImportRaw => {
            for request in &scene.requests {
                let id = request.conversation_id.clone().unwrap_or_else(|| {
                    let value: serde_json::Value = serde_json::from_slice(&request.bytes).unwrap();
                    value["dataset_metadata"]["dataset_name"].as_str().unwrap().trim_start_matches("fp_conversation_").to_owned()
                });
                let record = conversations.get(&t.alice, &id).await.unwrap().unwrap_or_else(|| panic!("{id} imported: {context}"));
                assert_eq!(record.source_sha256.as_deref(), Some(sha256(&request.bytes).as_str()), "{context}");
                assert!(conversations.source_bytes(&t.alice, &id).await.unwrap().unwrap() == request.bytes, "{context}");
            }
        }
        Op::ReplaceSource => {
            let id = &scene.ids[0];
            let record = conversations.get(&t.alice, id).await.unwrap().unwrap();
            assert_eq!((record.source_stage.as_str(), record.source_sha256.clone()), ("raw", Some(sha256(&scene.requests[0].bytes))), "{context}");
            assert!(conversations.source_bytes(&t.alice, id).await.unwrap().unwrap() == scene.requests[0].bytes, "{context}");
        }
        Op::Enrich => {
            let id = &scene.ids[0];
            assert_eq!(conversations.get(&t.alice, id).await.unwrap().unwrap().enrichment_status, "completed", "{context}");
            assert!(conversations.enriched_bytes(&t.alice, id).await.unwrap().is_some(), "{context}");
        }
        Op::Download(format) => {
            let file = scene.file.as_ref().unwrap();
            let clean = t.download(&t.alice, &file.id, format, Some(file.version)).await;
            assert!(ran.bytes.as_ref() == Some(&clean), "a download that ends well sends every byte: {context}");
        }
    }
}

/// `doctor` is healthy, or finds only what a failed change left (orphans,
/// abandoned writes, uploads whose abort failed) and `--repair` clears it.
async fn assert_doctor_ends_clean(admin: &Store, context: &str) -> usize {
    let report = admin.doctor(false, chrono::Duration::zero()).await;
    if report.healthy() {
        return 0;
    }
    let failing: Vec<&str> = report.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    assert!(failing.iter().all(|name| ["no orphans", "no abandoned writes", "no abandoned member rows", "no unfinished uploads"].contains(name)), "only left-overs, nothing lost: {context}\n{report:#?}");
    let repaired = admin.doctor(true, chrono::Duration::zero()).await;
    assert!(repaired.healthy() && repaired.removed > 0, "{context}\n{repaired:#?}");
    let again = admin.doctor(false, chrono::Duration::zero()).await;
    assert!(again.healthy(), "{context}\n{again:#?}");
    repaired.removed
}

async fn survives_storage_faults(t: &TestStore, op: Op) {
    if op.needs_scaffolding() {
        t.load_scaffolding().await;
    }
    let pool = import_pool(t, if op == Op::Compact { 40 } else { 6 }).await;
    let mut config = t.config.clone();
    config.read_cache_ttl = Duration::ZERO;
    let reader = Store::open(config, Access::Service).await.unwrap();
    let admin = t.admin().await;
    let (faulty, faults) = t.faulty();

    let scene = setup(t, &pool, op).await;
    let before = match &scene.file {
        Some(file) => members_of(t, file).await,
        None => Vec::new(),
    };
    faults.count();
    let ran = tokio::time::timeout(HANG, run(t, &faulty, op, &scene)).await.expect("no hang");
    let steps = faults.calls();
    let context = format!("{op:?} without faults; calls: {:?}", faults.log());
    assert!(ran.error.is_none(), "{context}: {:?}", ran.error);
    assert!(steps > 0, "{context}");
    assert_done(t, op, &scene, &before, &ran, &context).await;
    assert_eq!(assert_doctor_ends_clean(&admin, &context).await, 0, "a change that lands leaves nothing behind: {context}");

    let (mut injected, mut absorbed, mut repaired) = (0, Vec::new(), 0);
    for failure in Failure::ALL {
        let mut reused = None;
        for n in 1..=steps {
            let scene = match reused.take() {
                Some(scene) => scene,
                None => setup(t, &pool, op).await,
            };
            let members = match &scene.file {
                Some(file) => members_of(t, file).await,
                None => Vec::new(),
            };
            let kept = match (&scene.file, op) {
                // The first whole download records the digest: the faulty one must not record a wrong one.
                (Some(_), Op::Download(_)) | (None, _) => None,
                (Some(file), _) => Some(Kept::of(t, &reader, file).await),
            };
            let catalogue = Catalogue::read(&reader, &t.alice).await;
            faults.fail_at(n, failure);
            let ran = tokio::time::timeout(HANG, run(t, &faulty, op, &scene)).await.unwrap_or_else(|_| panic!("{op:?} hangs after {failure:?} at call {n}"));
            faults.disarm();
            let Some(hit) = faults.fired() else {
                // Fewer calls this time (an object an earlier attempt left was there already).
                assert!(ran.error.is_none(), "{op:?}, {failure:?} at call {n}: failed with no fault: {:?}", ran.error);
                assert_done(t, op, &scene, &members, &ran, &format!("{op:?} with fewer calls")).await;
                assert_doctor_ends_clean(&admin, &format!("{op:?} with fewer calls")).await;
                continue;
            };
            injected += 1;
            let context = format!("{op:?}, {failure:?} at call {n} of {steps} ({hit:?}) → {:?}; calls: {:?}", ran.error, faults.log());
            let kept = match (op, &scene.file) {
                (Op::Download(_), Some(file)) => {
                    let json = t.download(&t.alice, &file.id, DownloadFormat::Json, Some(file.version)).await;
                    let jsonl = t.download(&t.alice, &file.id, DownloadFormat::Jsonl, Some(file.version)).await;
                    Some(Kept { file: file.clone(), json, jsonl })
                }
                _ => kept,
            };
            match &ran.error {
                Some(error) => {
                    // The injected failure, or what the storage says next (an upload whose
                    // completion answer was lost cannot be aborted any more).
                    assert!(error.contains("storage: "), "the error is the storage's: {context}");
                    let after = Catalogue::read(&reader, &t.alice).await;
                    assert_eq!(after.comparable(op, &scene, &ran), catalogue.comparable(op, &scene, &ran), "the catalogue is as it was: {context}");
                    for id in &ran.landed {
                        assert!(t.store.conversations().get(&t.alice, id).await.unwrap().is_some(), "{context}");
                    }
                    if let Some(kept) = &kept {
                        kept.still_downloads(t, &reader, &context).await;
                    }
                    repaired += assert_doctor_ends_clean(&admin, &context).await;
                    if op.retried_after_failure() {
                        reused = Some(scene);
                    }
                }
                None => {
                    // The failed call was cleanup after the commit: the change stands.
                    absorbed.push(format!("{failure:?} {:?}", hit.0));
                    assert_done(t, op, &scene, &members, &ran, &context).await;
                    if let Some(kept) = kept.filter(|_| op != Op::DeleteFile) {
                        kept.still_downloads(t, &reader, &context).await;
                    }
                    repaired += assert_doctor_ends_clean(&admin, &context).await;
                }
            }
        }
    }
    eprintln!("{op:?}: {steps} storage calls; {injected} faults injected, {} absorbed {absorbed:?}; doctor --repair removed {repaired} object(s)", absorbed.len());
    reader.close().await;
    admin.close().await;
}

async fn create_survives_storage_faults(t: &TestStore) {
    survives_storage_faults(t, Op::Create).await;
}

async fn add_survives_storage_faults(t: &TestStore) {
    survives_storage_faults(t, Op::Add).await;
}

async fn remove_survives_storage_faults(t: &TestStore) {
    survives_storage_faults(t, Op::Remove).await;
}

async fn compact_survives_storage_faults(t: &TestStore) {
    survives_storage_faults(t, Op::Compact).await;
}

async fn delete_file_survives_storage_faults(t: &TestStore) {
    survives_storage_faults(t, Op::DeleteFile).await;
}

async fn import_survives_storage_faults(t: &TestStore) {
    survives_storage_faults(t, Op::Import).await;
}

async fn import_many_survives_storage_faults(t: &TestStore) {
    survives_storage_faults(t, Op::ImportMany).await;
}

async fn raw_import_survives_storage_faults(t: &TestStore) {
    survives_storage_faults(t, Op::ImportRaw).await;
}

async fn replace_source_survives_storage_faults(t: &TestStore) {
    survives_storage_faults(t, Op::ReplaceSource).await;
}

async fn enrichment_survives_storage_faults(t: &TestStore) {
    survives_storage_faults(t, Op::Enrich).await;
}

async fn json_download_survives_storage_faults(t: &TestStore) {
    survives_storage_faults(t, Op::Download(DownloadFormat::Json)).await;
}

async fn jsonl_download_survives_storage_faults(t: &TestStore) {
    survives_storage_faults(t, Op::Download(DownloadFormat::Jsonl)).await;
}

async fn export_download_survives_storage_faults(t: &TestStore) {
    survives_storage_faults(t, Op::Download(DownloadFormat::OpenAi)).await;
}

/// Two replacements of one source with the same bytes (a client retrying
/// one that timed out): the one that loses the race must not delete the
/// object the winner's row now names.
async fn a_replacement_that_loses_to_the_same_bytes_keeps_the_winners_source(t: &TestStore) {
    t.load_scaffolding().await;
    let id = fresh_id();
    let cut = ImportRequest { keep_unparsable: true, conversation_id: Some(id.clone()), ..ImportRequest::new("cut.json", raw_text()[..900].to_owned()) };
    t.store.conversations().import(&t.alice, cut).await.unwrap();
    let (late_store, faults) = t.faulty();
    // Call 1 is the late replacement's first storage call: it has read the row and checked it.
    let hold = faults.hold_at(1);
    let (owner, late_id) = (t.alice.clone(), id.clone());
    let late = tokio::spawn(async move { late_store.conversations().replace_source(&owner, &late_id, raw_request(raw_text(), &late_id)).await });
    tokio::time::timeout(HANG, hold.reached()).await.expect("the late replacement reaches the storage");
    let winner = t.store.conversations().replace_source(&t.alice, &id, raw_request(raw_text(), &id)).await.unwrap();
    hold.release();
    let late = tokio::time::timeout(HANG, late).await.expect("no hang").unwrap();

    let conversations = t.store.conversations();
    let now = conversations.get(&t.alice, &id).await.unwrap().unwrap();
    assert_eq!(now, winner, "the winner's replacement stands");
    assert!(conversations.source_bytes(&t.alice, &id).await.map(|b| b.as_deref() == Some(raw_text().as_bytes())).unwrap_or(false), "the source it names is stored");
    // What it asked for is in place: the late replacement answers it, as the same bytes again do.
    assert_eq!(late.unwrap(), now);
    let report = t.admin().await.doctor(false, chrono::Duration::zero()).await;
    assert!(report.healthy(), "{report:#?}");
}

/// A conversation deleted while the same file is imported again (by another
/// client): the new row must not name the object the delete is removing.
async fn an_import_racing_the_delete_of_its_conversation_keeps_its_object(t: &TestStore) {
    for batched in [false, true] {
        let id = fresh_id();
        let text = enriched_copy(0, &id);
        let conversations = t.store.conversations();
        conversations.import(&t.alice, ImportRequest::new("first.json", text.clone())).await.unwrap();
        let (deleting, faults) = t.faulty();
        // The delete's first storage call: its row is gone, its object not yet.
        let hold = faults.hold_at(1);
        let (owner, deleted_id) = (t.alice.clone(), id.clone());
        let delete = tokio::spawn(async move { deleting.conversations().delete(&owner, &deleted_id, false).await });
        tokio::time::timeout(HANG, hold.reached()).await.expect("the delete reaches the storage");
        let again = ImportRequest::new("again.json", text.clone());
        let imported = match batched {
            false => conversations.import(&t.alice, again).await,
            true => conversations.import_many(&t.alice, vec![again]).await.pop().unwrap(),
        };
        assert!(matches!(imported, Ok(lora_files_store::conversations::Imported::New(_))), "{imported:?}");
        hold.release();
        tokio::time::timeout(HANG, delete).await.expect("no hang").unwrap().unwrap();

        let stored = conversations.source_bytes(&t.alice, &id).await;
        assert!(matches!(&stored, Ok(Some(bytes)) if *bytes == text.as_bytes()), "batched: {batched}: the object the new row names is stored: {stored:?}");
        let report = t.admin().await.doctor(false, chrono::Duration::zero()).await;
        assert!(report.healthy(), "batched: {batched}: {report:#?}");
    }
}

/// Finding 18: a change that fails at a step of an upload — a part refused
/// or its answer lost, the completion refused or its answer lost — leaves
/// no upload open: no staging file on a local folder, no multipart upload
/// on S3 (where nothing else would ever find it).
async fn a_change_failed_mid_upload_leaves_no_upload_open(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 2).await;
    let (faulty, faults) = t.faulty();
    faults.count();
    faulty.training_files().create(&t.alice, "counted", None, &ids).await.unwrap();
    let log = faults.log();
    let steps: Vec<(usize, Call)> =
        log.iter().enumerate().filter(|(_, (call, _))| matches!(call, Call::UploadPart | Call::UploadComplete)).map(|(i, (call, _))| (i + 1, *call)).collect();
    assert!(steps.iter().any(|(_, call)| *call == Call::UploadPart), "a create uploads parts: {log:?}");
    for (n, call) in steps {
        for failure in [Failure::Refused, Failure::Lost] {
            faults.fail_at(n, failure);
            let created = faulty.training_files().create(&t.alice, &format!("{failure:?} at {n}"), None, &ids).await;
            faults.disarm();
            let context = format!("{failure:?} at call {n} ({call:?}); calls: {:?}", faults.log());
            assert_eq!(faults.fired().map(|(fired, _)| fired), Some(call), "{context}");
            assert!(created.is_err(), "{context}");
            // A dropped writer aborts on the runtime, a moment later.
            let mut open = t.unfinished_uploads().await;
            for _ in 0..100 {
                if open.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                open = t.unfinished_uploads().await;
            }
            assert!(open.is_empty(), "left open: {open:?}; {context}");
        }
    }
}

/// The same on S3 in every run that has an S3 server, whatever storage the
/// other tests use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_failed_mid_upload_leaves_no_upload_open_on_s3() {
    let Some(t) = TestStore::on_s3(Backend::Sqlite).await else { return };
    a_change_failed_mid_upload_leaves_no_upload_open(&t).await;
    t.cleanup().await;
}

on_both_backends!(
    a_change_failed_mid_upload_leaves_no_upload_open,
    a_replacement_that_loses_to_the_same_bytes_keeps_the_winners_source,
    an_import_racing_the_delete_of_its_conversation_keeps_its_object,
    create_survives_storage_faults,
    add_survives_storage_faults,
    remove_survives_storage_faults,
    compact_survives_storage_faults,
    delete_file_survives_storage_faults,
    import_survives_storage_faults,
    import_many_survives_storage_faults,
    raw_import_survives_storage_faults,
    replace_source_survives_storage_faults,
    enrichment_survives_storage_faults,
    json_download_survives_storage_faults,
    jsonl_download_survives_storage_faults,
    export_download_survives_storage_faults,
);
