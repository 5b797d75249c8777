//! `doctor` finds what is missing, misreported or left over, on both backends.

mod common;

use lora_files_store::on_both_backends;

use chrono::Duration;
use common::TestStore;
use lora_files_store::conversations::ImportRequest;

async fn a_consistent_store_is_healthy(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 2).await;
    t.store.training_files().create(&t.alice, "healthy", None, &ids).await.unwrap();
    let report = t.admin().await.doctor(false, Duration::zero()).await;
    assert!(report.healthy(), "{report:#?}");
    let names: Vec<&str> = report.checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        ["database reachable", "database migrated", "storage writable", "no abandoned writes", "no abandoned member rows", "objects present", "versions readable", "no orphans", "no unfinished uploads", "figures agree", "no stalled enrichment"]
    );
}

/// Raw sources are recorded objects (never orphans), and a crashed
/// enrichment run is reported and reset.
async fn raw_sources_are_kept_and_stalled_enrichments_reset(t: &TestStore) {
    let raw = std::fs::read(common::fixture("raw/recent-raw.json")).unwrap();
    let imported = t.store.conversations().import(&t.alice, ImportRequest::new("raw.json", raw)).await.unwrap();
    let id = imported.record().conversation_id.clone();
    let admin = t.admin().await;
    let report = admin.doctor(true, Duration::zero()).await;
    assert!(report.healthy() && report.removed == 0, "{report:#?}");

    t.execute_as_admin("UPDATE conversations SET enrichment_status = 'enrichment_in_progress', enrichment_started_at = '2020-01-01T00:00:00.000Z'").await;
    let report = admin.doctor(false, Duration::zero()).await;
    let stalled = report.checks.iter().find(|c| c.name == "no stalled enrichment").unwrap();
    assert!(!stalled.ok && stalled.detail.contains(&id), "{stalled:?}");
    assert!(admin.doctor(true, Duration::zero()).await.healthy());
    let record = t.store.conversations().get(&t.alice, &id).await.unwrap().unwrap();
    assert_eq!(record.enrichment_status, "not_started");
    assert!(record.enrichment_error.unwrap().contains("interrupted"));
}

async fn missing_objects_and_orphans_are_found_and_orphans_repaired(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 2).await;
    let file = t.store.training_files().create(&t.alice, "broken", None, &ids).await.unwrap();
    let segment = t.objects(&format!("training-files/{}/segments", file.id)).await.into_iter().find(|(key, _)| key.ends_with(".jsonl")).unwrap().0;
    t.delete_object(&segment).await;
    t.put_object("training-files/nobody/left-over.json", b"{}").await;

    let admin = t.admin().await;
    let report = admin.doctor(false, Duration::zero()).await;
    assert!(!report.healthy());
    let present = report.checks.iter().find(|c| c.name == "objects present").unwrap();
    assert!(!present.ok && present.detail.contains(&format!("missing: {segment}")), "{present:?}");
    let readable = report.checks.iter().find(|c| c.name == "versions readable").unwrap();
    assert!(!readable.ok && readable.detail.contains(&segment), "{readable:?}");
    assert_eq!(report.orphans, ["training-files/nobody/left-over.json"]);

    // A young object may belong to a change in flight: it is not an orphan yet.
    assert!(admin.doctor(false, Duration::hours(1)).await.orphans.is_empty());

    let repaired = admin.doctor(true, Duration::zero()).await;
    assert_eq!(repaired.removed, 1);
    assert!(t.objects("training-files/nobody").await.is_empty());
}

/// Finding 18 and 13: what a crash leaves that listings do not show (a
/// local upload's staging file; on S3 doctor says it cannot look), young
/// objects, and a size mismatch with its remedy, each said by `doctor`.
async fn unfinished_uploads_young_orphans_and_wrong_sizes_are_reported(t: &TestStore) {
    let check = |report: &lora_files_store::doctor::DoctorReport, name: &str| report.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("{name}: {report:#?}")).clone();
    let admin = t.admin().await;
    if t.config.storage_url.is_some() {
        // object_store cannot list S3's open multipart uploads (a writer
        // that fails or is dropped aborts its own: faults.rs, storage.rs).
        let uploads = check(&admin.doctor(false, Duration::zero()).await, "no unfinished uploads");
        assert!(uploads.ok && uploads.detail.starts_with("not checked: S3 multipart uploads"), "{uploads:?}");
    } else {
        // A writer killed mid-way leaves `<key>#<n>`, which object_store's listing skips.
        let staging = t.dir.path().join("objects/training-files/killed/segments");
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(staging.join("s.jsonl#1"), b"{\"half\": ").unwrap();
        let young = check(&admin.doctor(false, Duration::hours(1)).await, "no unfinished uploads");
        assert!(young.ok && young.detail.contains("1 recent upload(s) may still be written"), "{young:?}");
        let found = check(&admin.doctor(false, Duration::zero()).await, "no unfinished uploads");
        assert!(!found.ok && found.detail.contains("s.jsonl#1") && found.detail.contains("--repair"), "{found:?}");
        let repaired = admin.doctor(true, Duration::zero()).await;
        assert!(check(&repaired, "no unfinished uploads").ok && repaired.removed == 1, "{repaired:#?}");
        assert!(!staging.join("s.jsonl#1").exists());
    }

    t.put_object("training-files/nobody/young.json", b"{}").await;
    let orphans = check(&admin.doctor(false, Duration::hours(1)).await, "no orphans");
    assert!(orphans.ok && orphans.detail.contains("1 recent object(s) not yet counted as orphans"), "{orphans:?}");
    admin.doctor(true, Duration::zero()).await;

    let ids = t.import_copies(&t.alice, 1).await;
    let key = t.store.conversations().get(&t.alice, &ids[0]).await.unwrap().unwrap().enriched_file_path.unwrap();
    t.delete_object(&key).await;
    t.put_object(&key, b"{}").await;
    let present = check(&admin.doctor(false, Duration::zero()).await, "objects present");
    assert!(!present.ok && present.detail.contains("the catalogue says") && present.detail.contains("restore it from a backup"), "{present:?}");
}

/// A change stages its member rows as it writes; a crash before its commit
/// leaves them, which `doctor` reports once they are older than the grace
/// period and `--repair` deletes, leaving the file as it was.
async fn member_rows_of_a_change_that_never_committed_are_repaired(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 3).await;
    let file = t.store.training_files().create(&t.alice, "staged", None, &ids).await.unwrap();
    let columns = "id, training_file_id, conversation_row_id, conversation_id, owner_id, position, added_at, added_by, fragment_json_path, \
                   fragment_json_offset, fragment_json_size, fragment_json_framed, fragment_jsonl_path, fragment_jsonl_offset, fragment_jsonl_size, \
                   line_id_suffix, short_id, turns, pairs, human_reviewed_pairs, quality_score, persona_key, emotional_arc_key, topic_key";
    // What a process killed mid-change leaves: rows staged under an attempt that will never commit.
    t.execute_as_admin(&format!(
        "INSERT INTO training_file_pending_members (attempt, {columns}) SELECT 'killed', {} FROM training_file_conversations",
        columns.replace("id, training_file_id", "id || '-staged', training_file_id").replace("added_at", "'2020-01-01T00:00:00.000Z'")
    ))
    .await;
    let check = |report: &lora_files_store::doctor::DoctorReport| report.checks.iter().find(|c| c.name == "no abandoned member rows").unwrap().clone();
    let admin = t.admin().await;
    let found = check(&admin.doctor(false, Duration::zero()).await);
    assert!(!found.ok && found.detail.starts_with("3 member row(s) of changes that never committed") && found.detail.contains("--repair"), "{found:?}");

    let repaired = admin.doctor(true, Duration::zero()).await;
    assert!(check(&repaired).ok && repaired.removed == 3, "{repaired:#?}");
    assert!(admin.doctor(false, Duration::zero()).await.healthy());
    let members = t.store.training_files().members(&t.alice, &file.id, 10, None).await.unwrap();
    assert_eq!(members.items.len(), 3, "the file keeps its members");
}

on_both_backends!(
    a_consistent_store_is_healthy,
    member_rows_of_a_change_that_never_committed_are_repaired,
    missing_objects_and_orphans_are_found_and_orphans_repaired,
    unfinished_uploads_young_orphans_and_wrong_sizes_are_reported,
    raw_sources_are_kept_and_stalled_enrichments_reset,
);
