//! The TrainingFileService, run on SQLite and on PostgreSQL.

mod common;

use lora_files_store::on_both_backends;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::TestStore;
use lora_files_store::training_files::{DownloadFormat, FileFilter, FileUpdate};
use lora_files_store::{StoreError, TrainingFile};
use serde_json::Value;

async fn full_json(t: &TestStore, user: &str, file: &TrainingFile, version: Option<i64>) -> Value {
    serde_json::from_slice(&t.download(user, &file.id, DownloadFormat::Json, version).await).unwrap()
}

async fn jsonl_lines(t: &TestStore, user: &str, file: &TrainingFile) -> Vec<Value> {
    let text = String::from_utf8(t.download(user, &file.id, DownloadFormat::Jsonl, None).await.to_vec()).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'));
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Members, full JSON and JSONL tell the same story, and the catalogue states the JSON's figures.
async fn assert_consistent(t: &TestStore, user: &str, file: &TrainingFile, expected_ids: &[String]) {
    let members = t.store.training_files().members(user, &file.id, 10_000, None).await.unwrap().items;
    let member_ids: Vec<&str> = members.iter().map(|m| m.conversation_id.as_str()).collect();
    assert_eq!(member_ids.len(), expected_ids.len());
    assert_eq!(member_ids.iter().copied().collect::<HashSet<_>>(), expected_ids.iter().map(String::as_str).collect::<HashSet<_>>());
    let full = full_json(t, user, file, None).await;
    let json_ids: Vec<&str> = full["conversations"].as_array().unwrap().iter().map(|c| c["conversation_metadata"]["conversation_id"].as_str().unwrap()).collect();
    assert_eq!(json_ids, member_ids, "JSON order is member order");
    let metadata = &full["training_file_metadata"];
    assert_eq!(metadata["total_conversations"], file.conversation_count);
    assert_eq!(metadata["total_training_pairs"], file.total_training_pairs);
    assert_eq!(metadata["quality_summary"]["avg_quality_score"].as_f64(), file.avg_quality_score);
    assert_eq!(metadata["scaffolding_distribution"], file.scaffolding_distribution.0);
    let lines = jsonl_lines(t, user, file).await;
    assert_eq!(lines.len() as i64, file.total_training_pairs);
    let line_ids: HashSet<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(line_ids.len(), lines.len(), "line ids are unique");
    let bytes = t.download(user, &file.id, DownloadFormat::Json, None).await;
    assert_eq!(Some(bytes.len() as i64), file.json_file_size, "sizes are the bytes served");
}

async fn create_copies_and_download(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 3).await;
    let file = t.store.training_files().create(&t.alice, "  Batch 1  ", Some("first"), &ids).await.unwrap();
    assert_eq!(file.name, "Batch 1");
    assert_eq!((file.version, file.conversation_count, file.status.as_str()), (1, 3, "active"));
    assert_consistent(t, &t.alice, &file, &ids).await;
    let full = full_json(t, &t.alice, &file, None).await;
    assert_eq!(full["training_file_metadata"]["description"], "first");
    assert_eq!(full["training_file_metadata"]["target_model"], "llama-3.1-8b");
    let link = t.store.training_files().download(&t.alice, &file.id, DownloadFormat::Jsonl, None).await.unwrap();
    assert_eq!((link.filename.as_str(), link.version), ("Batch 1.jsonl", 1));
}

async fn add_makes_a_new_version_and_old_versions_still_download(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 4).await;
    let file = t.store.training_files().create(&t.alice, "versions", None, &ids[..2]).await.unwrap();
    let v1_bytes = t.download(&t.alice, &file.id, DownloadFormat::Json, None).await;
    let file = t.store.training_files().add(&t.alice, &file.id, &ids[2..]).await.unwrap();
    assert_eq!((file.version, file.conversation_count), (2, 4));
    assert_consistent(t, &t.alice, &file, &ids).await;
    let pinned = t.store.training_files().download(&t.alice, &file.id, DownloadFormat::Json, Some(1)).await.unwrap();
    assert_eq!(pinned.filename, "versions-v1.json");
    assert_eq!(t.download(&t.alice, &file.id, DownloadFormat::Json, Some(1)).await, v1_bytes, "version 1 is immutable");
    let versions = t.store.training_files().versions(&t.alice, &file.id).await.unwrap();
    let changes: Vec<(i64, &str, i64)> = versions.iter().map(|v| (v.version, v.change.as_str(), v.conversation_count)).collect();
    assert_eq!(changes, [(1, "create", 2), (2, "add", 4)]);
    assert!(versions.iter().all(|v| v.json_sha256.is_none() || v.json_sha256.as_ref().is_some_and(|s| s.len() == 64)));
    match t.store.training_files().download(&t.alice, &file.id, DownloadFormat::Json, Some(3)).await {
        Err(StoreError::Invalid { field, .. }) => assert_eq!(field, "version"),
        other => panic!("expected a bad version, got {other:?}"),
    }
}

async fn add_refuses_conversations_already_in_file(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 4).await;
    let file = t.store.training_files().create(&t.alice, "dups", None, &ids[..2]).await.unwrap();
    let request = vec![ids[2].clone(), ids[0].clone(), ids[1].clone()];
    match t.store.training_files().add(&t.alice, &file.id, &request).await {
        Err(StoreError::AlreadyInFile(already)) => assert_eq!(already, [ids[0].clone(), ids[1].clone()]),
        other => panic!("expected already_in_file, got {other:?}"),
    }
    assert_eq!(t.store.training_files().get(&t.alice, &file.id).await.unwrap().version, 1, "nothing was written");
}

async fn a_retried_add_answers_already_in_file(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 3).await;
    let file = t.store.training_files().create(&t.alice, "retry", None, &ids[..1]).await.unwrap();
    t.store.training_files().add(&t.alice, &file.id, &ids[1..]).await.unwrap();
    assert!(matches!(t.store.training_files().add(&t.alice, &file.id, &ids[1..]).await, Err(StoreError::AlreadyInFile(_))));
    let file = t.store.training_files().get(&t.alice, &file.id).await.unwrap();
    assert_eq!(file.conversation_count, 3);
}

async fn unknown_and_ineligible_ids_are_each_reported(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 2).await;
    let mut tx = t.transaction_as(Some(&t.alice)).await;
    sqlx::query("UPDATE conversations SET enrichment_status = 'validated' WHERE conversation_id = $1").bind(&ids[1]).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let unknown = uuid::Uuid::new_v4().to_string();
    let request = vec![ids[0].clone(), ids[1].clone(), unknown.clone()];
    match t.store.training_files().create(&t.alice, "ineligible", None, &request).await {
        Err(StoreError::Ineligible(refused)) => {
            let reasons: Vec<(&str, &str, Option<&str>)> = refused.iter().map(|r| (r.conversation_id.as_str(), r.reason, r.enrichment_status.as_deref())).collect();
            assert_eq!(reasons, [(ids[1].as_str(), "not_completed", Some("validated")), (unknown.as_str(), "not_found", None)]);
        }
        other => panic!("expected ineligible, got {other:?}"),
    }
    let page = t.store.training_files().list(&t.alice, &FileFilter::default(), 50, None).await.unwrap();
    assert!(page.items.is_empty(), "a refused create leaves no file");
}

async fn bad_requests_name_the_field(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 1).await;
    let too_long = "x".repeat(256);
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        ("", ids.clone(), "name"),
        (&too_long, ids.clone(), "name"),
        ("ok", vec![], "conversation_ids"),
        ("ok", vec![ids[0].clone(), ids[0].clone()], "conversation_ids[1]"),
        ("ok", vec!["not-a-uuid".into()], "conversation_ids[0]"),
    ];
    for (name, request, expected) in cases {
        match t.store.training_files().create(&t.alice, name, None, &request).await {
            Err(StoreError::Invalid { field, .. }) => assert_eq!(field, expected),
            Err(StoreError::RequestedIds(problems)) => assert_eq!(format!("conversation_ids[{}]", problems[0].index), expected),
            other => panic!("expected invalid {expected}, got {other:?}"),
        }
    }
    let ok = t.store.training_files().create(&t.alice, &"é".repeat(255), None, &ids).await.unwrap();
    assert_eq!(ok.name.chars().count(), 255);
}

async fn names_are_unique_per_owner(t: &TestStore) {
    let alice_ids = t.import_copies(&t.alice, 1).await;
    let bob_ids = t.import_copies(&t.bob, 1).await;
    t.store.training_files().create(&t.alice, "Shared name", None, &alice_ids).await.unwrap();
    assert!(matches!(t.store.training_files().create(&t.alice, "Shared name", None, &alice_ids).await, Err(StoreError::NameTaken(_))));
    t.store.training_files().create(&t.bob, "Shared name", None, &bob_ids).await.unwrap();
}

async fn archived_files_refuse_adds_until_unarchived(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 2).await;
    let file = t.store.training_files().create(&t.alice, "archive me", None, &ids[..1]).await.unwrap();
    let archived = t.store.training_files().update(&t.alice, &file.id, &FileUpdate { status: Some("archived".into()), ..Default::default() }).await.unwrap();
    assert_eq!(archived.status, "archived");
    assert!(matches!(t.store.training_files().add(&t.alice, &file.id, &ids[1..]).await, Err(StoreError::NotActive(_))));
    let default_list = t.store.training_files().list(&t.alice, &FileFilter::default(), 50, None).await.unwrap();
    assert!(default_list.items.is_empty(), "the default list shows active files");
    let all = t.store.training_files().list(&t.alice, &FileFilter { status: Some("all".into()), q: None }, 50, None).await.unwrap();
    assert_eq!(all.items.len(), 1);
    t.store.training_files().update(&t.alice, &file.id, &FileUpdate { status: Some("active".into()), ..Default::default() }).await.unwrap();
    t.store.training_files().add(&t.alice, &file.id, &ids[1..]).await.unwrap();
}

/// Lists are served from memory between changes, but every change shows at once.
async fn lists_show_every_change_at_once(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 2).await;
    let filter = FileFilter::default();
    let list = || t.store.training_files().list(&t.alice, &filter, 50, None);
    let versions = |page: &lora_files_store::Page<TrainingFile>| page.items.iter().map(|f| (f.name.clone(), f.version)).collect::<Vec<_>>();
    assert!(list().await.unwrap().items.is_empty());
    let file = t.store.training_files().create(&t.alice, "first", None, &ids[..1]).await.unwrap();
    assert_eq!(versions(&list().await.unwrap()), [("first".to_owned(), 1)]);
    t.store.training_files().add(&t.alice, &file.id, &ids[1..]).await.unwrap();
    assert_eq!(versions(&list().await.unwrap()), [("first".to_owned(), 2)]);
    t.store.training_files().remove(&t.alice, &file.id, &ids[0]).await.unwrap();
    assert_eq!(versions(&list().await.unwrap()), [("first".to_owned(), 3)]);
    t.store.training_files().update(&t.alice, &file.id, &FileUpdate { name: Some("renamed".into()), ..Default::default() }).await.unwrap();
    assert_eq!(versions(&list().await.unwrap()), [("renamed".to_owned(), 3)]);
    t.store.training_files().delete(&t.alice, &file.id).await.unwrap();
    assert!(list().await.unwrap().items.is_empty());
}

async fn concurrent_adds_of_disjoint_sets_all_land(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 33).await;
    let file = t.store.training_files().create(&t.alice, "concurrent", None, &ids[..1]).await.unwrap();
    let mut tasks = Vec::new();
    for id in &ids[1..] {
        let (store, alice, file_id, id) = (t.store.clone(), t.alice.clone(), file.id.clone(), id.clone());
        tasks.push(tokio::spawn(async move { store.training_files().add(&alice, &file_id, &[id]).await }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let file = t.store.training_files().get(&t.alice, &file.id).await.unwrap();
    // 33 changes, then a compaction of the 33 small ranges they left.
    assert_eq!((file.conversation_count, file.version), (33, 34));
    let versions = t.store.training_files().versions(&t.alice, &file.id).await.unwrap();
    assert_eq!(versions.last().unwrap().change, "compact");
    assert_consistent(t, &t.alice, &file, &ids).await;
}

async fn the_same_add_twice_at_once_lands_once(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 3).await;
    let file = t.store.training_files().create(&t.alice, "race", None, &ids[..1]).await.unwrap();
    let request = ids[1..].to_vec();
    let (a, b) = tokio::join!(t.store.training_files().add(&t.alice, &file.id, &request), t.store.training_files().add(&t.alice, &file.id, &request));
    let failure = match (a, b) {
        (Ok(_), Err(failure)) | (Err(failure), Ok(_)) => failure,
        (a, b) => panic!("exactly one must succeed: {a:?} {b:?}"),
    };
    assert!(matches!(failure, StoreError::AlreadyInFile(_)), "{failure:?}");
    let file = t.store.training_files().get(&t.alice, &file.id).await.unwrap();
    assert_consistent(t, &t.alice, &file, &ids).await;
}

async fn a_failure_before_commit_leaves_the_previous_version_intact(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 3).await;
    let file = t.store.training_files().create(&t.alice, "crash", None, &ids[..2]).await.unwrap();
    let before = full_json(t, &t.alice, &file, None).await;
    let objects_before = t.objects("").await.len();
    let failing = Arc::new(AtomicBool::new(true));
    let flag = failing.clone();
    let crashing = t.store.clone().with_before_commit(Arc::new(move || {
        if flag.load(Ordering::SeqCst) { Err(StoreError::Internal("injected failure".into())) } else { Ok(()) }
    }));
    assert!(crashing.training_files().add(&t.alice, &file.id, &ids[2..]).await.is_err());
    let after = t.store.training_files().get(&t.alice, &file.id).await.unwrap();
    assert_eq!(after, file, "the catalogue did not move");
    assert_eq!(full_json(t, &t.alice, &after, None).await, before, "version 1 still downloads");
    assert_eq!(t.objects("").await.len(), objects_before, "the attempt's objects were removed");
    failing.store(false, Ordering::SeqCst);
    let file = crashing.training_files().add(&t.alice, &file.id, &ids[2..]).await.unwrap();
    assert_consistent(t, &t.alice, &file, &ids).await;
}

async fn an_add_never_reads_the_sources_already_in_the_file(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 3).await;
    let file = t.store.training_files().create(&t.alice, "sources", None, &ids[..2]).await.unwrap();
    for id in &ids[..2] {
        let record = t.store.conversations().get(&t.alice, id).await.unwrap().unwrap();
        t.delete_object(record.enriched_file_path.as_deref().unwrap()).await;
    }
    let file = t.store.training_files().add(&t.alice, &file.id, &ids[2..]).await.unwrap();
    assert_consistent(t, &t.alice, &file, &ids).await;
}

async fn removing_a_conversation_writes_a_version_without_it(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 3).await;
    let file = t.store.training_files().create(&t.alice, "remove", None, &ids).await.unwrap();
    let file = t.store.training_files().remove(&t.alice, &file.id, &ids[1]).await.unwrap();
    assert_eq!((file.version, file.conversation_count), (2, 2));
    assert_consistent(t, &t.alice, &file, &[ids[0].clone(), ids[2].clone()]).await;
    assert!(matches!(t.store.training_files().remove(&t.alice, &file.id, &ids[1]).await, Err(StoreError::NotFound)));
    let versions = t.store.training_files().versions(&t.alice, &file.id).await.unwrap();
    assert_eq!(versions.last().unwrap().change, "remove");
}

/// Deleting a file removes every segment it wrote (through all its
/// versions) and nothing another file or a conversation uses.
async fn delete_removes_the_file_and_its_objects(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 3).await;
    let file = t.store.training_files().create(&t.alice, "gone", None, &ids[..2]).await.unwrap();
    t.store.training_files().add(&t.alice, &file.id, &ids[2..]).await.unwrap();
    t.store.training_files().remove(&t.alice, &file.id, &ids[0]).await.unwrap();
    let other = t.store.training_files().create(&t.alice, "kept", None, &ids).await.unwrap();
    let kept = (t.download(&t.alice, &other.id, DownloadFormat::Json, None).await, t.download(&t.alice, &other.id, DownloadFormat::Jsonl, None).await);
    assert!(!t.objects(&format!("training-files/{}", file.id)).await.is_empty());
    t.store.training_files().delete(&t.alice, &file.id).await.unwrap();
    assert!(matches!(t.store.training_files().get(&t.alice, &file.id).await, Err(StoreError::NotFound)));
    assert!(t.objects(&format!("training-files/{}", file.id)).await.is_empty());
    assert_eq!(kept, (t.download(&t.alice, &other.id, DownloadFormat::Json, None).await, t.download(&t.alice, &other.id, DownloadFormat::Jsonl, None).await));
    for id in &ids {
        assert!(t.store.conversations().enriched_bytes(&t.alice, id).await.unwrap().is_some(), "the conversations stay");
    }
    let report = t.admin().await.doctor(false, chrono::Duration::zero()).await;
    assert!(report.healthy() && report.orphans.is_empty(), "{report:#?}");
}

async fn other_users_cannot_see_add_to_download_or_delete(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 2).await;
    let bob_ids = t.import_copies(&t.bob, 1).await;
    let file = t.store.training_files().create(&t.alice, "private", None, &ids[..1]).await.unwrap();
    let bob = &t.bob;
    assert!(matches!(t.store.training_files().get(bob, &file.id).await, Err(StoreError::NotFound)));
    assert!(matches!(t.store.training_files().add(bob, &file.id, &bob_ids).await, Err(StoreError::NotFound)));
    assert!(matches!(t.store.training_files().download(bob, &file.id, DownloadFormat::Json, None).await, Err(StoreError::NotFound)));
    assert!(matches!(t.store.training_files().delete(bob, &file.id).await, Err(StoreError::NotFound)));
    assert!(matches!(t.store.training_files().members(bob, &file.id, 10, None).await, Err(StoreError::NotFound)));
    assert!(t.store.training_files().list(bob, &FileFilter::default(), 50, None).await.unwrap().items.is_empty());
    // Nor can Bob put Alice's conversations in his own file.
    match t.store.training_files().create(bob, "theft", None, &ids[1..]).await {
        Err(StoreError::Ineligible(refused)) => assert_eq!(refused[0].reason, "not_found"),
        other => panic!("expected not_found, got {other:?}"),
    }
    assert!(t.store.training_files().get(&t.alice, &file.id).await.is_ok());
}

async fn lists_page_newest_first_and_filter_by_name(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 5).await;
    for (i, id) in ids.iter().enumerate() {
        t.store.training_files().create(&t.alice, &format!("File {i} {}", if i % 2 == 0 { "even" } else { "odd" }), None, std::slice::from_ref(id)).await.unwrap();
    }
    let first = t.store.training_files().list(&t.alice, &FileFilter::default(), 2, None).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let second = t.store.training_files().list(&t.alice, &FileFilter::default(), 2, first.next_cursor.as_deref()).await.unwrap();
    let third = t.store.training_files().list(&t.alice, &FileFilter::default(), 2, second.next_cursor.as_deref()).await.unwrap();
    assert_eq!(third.items.len(), 1);
    assert_eq!(third.next_cursor, None);
    let names: Vec<String> = first.items.iter().chain(&second.items).chain(&third.items).map(|f| f.name.clone()).collect();
    assert_eq!(names.iter().collect::<HashSet<_>>().len(), 5, "no file twice across pages");
    let created: Vec<&str> = first.items.iter().chain(&second.items).map(|f| f.created_at.as_str()).collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let odd = t.store.training_files().list(&t.alice, &FileFilter { status: None, q: Some("ODD".into()) }, 50, None).await.unwrap();
    assert_eq!(odd.items.len(), 2);
    let none = t.store.training_files().list(&t.alice, &FileFilter { status: None, q: Some("%".into()) }, 50, None).await.unwrap();
    assert!(none.items.is_empty(), "LIKE wildcards in q are literal");
    assert!(matches!(t.store.training_files().list(&t.alice, &FileFilter::default(), 2, Some("zz")).await, Err(StoreError::Invalid { .. })));
}

async fn import_is_idempotent_and_refuses_changed_content(t: &TestStore) {
    let text = std::fs::read(common::fixture("enriched/single-convo-file-3.json")).unwrap();
    let first = t.store.conversations().import_enriched(&t.alice, "a.json", text.clone().into()).await.unwrap();
    assert!(matches!(first, lora_files_store::conversations::Imported::New(_)));
    let record = first.record();
    assert_eq!(record.conversation_id, "330dc058-6d75-4609-96f7-b6e87b39f536");
    assert_eq!((record.turn_count, record.pair_count, record.enrichment_status.as_str()), (5, 2, "completed"));
    assert_eq!(record.persona_key.as_deref(), Some("pragmatic_optimist"));
    let mut tx = t.transaction_as(Some(&t.alice)).await;
    let (snapshot,): (String,) = sqlx::query_as("SELECT scaffolding_snapshot FROM conversations WHERE id = $1").bind(&record.id).fetch_one(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let snapshot: serde_json::Value = serde_json::from_str(&snapshot).unwrap();
    assert_eq!(snapshot["persona"]["persona_key"], "pragmatic_optimist", "the snapshot comes from input_parameters");
    assert_eq!(snapshot["training_topic"]["topic_key"], "grandparent_529");
    let again = t.store.conversations().import_enriched(&t.alice, "a.json", text.clone().into()).await.unwrap();
    assert!(matches!(again, lora_files_store::conversations::Imported::Unchanged(_)));
    let changed = String::from_utf8(text.clone()).unwrap().replacen("\"quality_score\": 3,", "\"quality_score\": 4,", 1);
    assert!(matches!(t.store.conversations().import_enriched(&t.alice, "b.json", changed.into()).await, Err(StoreError::ConflictingImport(_))));
    // Bob may import the same conversation: ids are unique per owner.
    t.store.conversations().import_enriched(&t.bob, "a.json", text.into()).await.unwrap();
    match t.store.conversations().import_enriched(&t.alice, "broken.json", b"{\"dataset_metadata\": ".to_vec().into()).await {
        Err(StoreError::InvalidSource { path, errors }) => {
            assert_eq!(path, "broken.json");
            assert_eq!(errors[0].path.to_string(), "dataset_metadata");
        }
        other => panic!("expected an invalid source, got {other:?}"),
    }
}

async fn concurrent_imports_of_different_content_leave_only_the_winners_object(t: &TestStore) {
    let text = std::fs::read_to_string(common::fixture("enriched/single-convo-file-3.json")).unwrap();
    let id = "330dc058-6d75-4609-96f7-b6e87b39f536";
    // Sixteen versions of one conversation that differ only in trailing spaces (other bytes, the same id).
    let imports: Vec<_> = (0..16)
        .map(|i| {
            let (store, owner, bytes) = (t.store.clone(), t.alice.clone(), format!("{text}{}", " ".repeat(i)));
            tokio::spawn(async move { store.conversations().import_enriched(&owner, "racing.json", bytes.into()).await })
        })
        .collect();
    let mut landed = 0;
    for import in imports {
        match import.await.unwrap() {
            Ok(lora_files_store::conversations::Imported::New(_)) => landed += 1,
            Err(StoreError::ConflictingImport(conflicting)) => assert_eq!(conflicting, id),
            other => panic!("expected new or conflicting, got {other:?}"),
        }
    }
    assert_eq!(landed, 1);
    let record = t.store.conversations().get(&t.alice, id).await.unwrap().unwrap();
    let objects = t.objects(&format!("conversations/{}/{id}/", t.alice)).await;
    let keys: Vec<&str> = objects.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, [record.enriched_file_path.as_deref().unwrap()], "the losers' objects are deleted");
}

async fn users_authenticate_by_email_and_password(t: &TestStore) {
    let user = t.store.users().authenticate("Alice@Example.com", "correct horse battery").await.unwrap().unwrap();
    assert_eq!(user.id, t.alice);
    assert!(t.store.users().authenticate("alice@example.com", "wrong password").await.unwrap().is_none());
    assert!(t.store.users().authenticate("nobody@example.com", "correct horse battery").await.unwrap().is_none());
    assert!(matches!(t.store.users().add("alice@example.com", None).await, Err(StoreError::Invalid { .. })));
    let admin = t.admin().await;
    assert_eq!(admin.users().list().await.unwrap().len(), 2);
}

on_both_backends!(
    create_copies_and_download,
    lists_show_every_change_at_once,
    add_makes_a_new_version_and_old_versions_still_download,
    add_refuses_conversations_already_in_file,
    a_retried_add_answers_already_in_file,
    unknown_and_ineligible_ids_are_each_reported,
    bad_requests_name_the_field,
    names_are_unique_per_owner,
    archived_files_refuse_adds_until_unarchived,
    concurrent_adds_of_disjoint_sets_all_land,
    concurrent_imports_of_different_content_leave_only_the_winners_object,
    the_same_add_twice_at_once_lands_once,
    a_failure_before_commit_leaves_the_previous_version_intact,
    an_add_never_reads_the_sources_already_in_the_file,
    removing_a_conversation_writes_a_version_without_it,
    delete_removes_the_file_and_its_objects,
    other_users_cannot_see_add_to_download_or_delete,
    lists_page_newest_first_and_filter_by_name,
    import_is_idempotent_and_refuses_changed_content,
    users_authenticate_by_email_and_password,
);
