//! Batched imports answer each file as a single import would, on both
//! backends, and lose or leave nothing when they race each other.

mod common;

use bytes::Bytes;
use chrono::Duration;
use common::TestStore;
use lora_files_store::conversations::{ImportRequest, Imported};
use lora_files_store::testing::enriched_templates;
use lora_files_store::{on_both_backends, StoreError};

/// A copy of the `i`-th enriched template under `id`.
fn copy(i: usize, id: &str) -> Bytes {
    let templates = enriched_templates();
    let (old_id, text) = &templates[i % templates.len()];
    Bytes::from(text.replace(old_id.as_str(), id))
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn a_batch_answers_each_file_as_a_single_import_would(t: &TestStore) {
    let (before, conflicting, fresh, twice, upper) = (new_id(), new_id(), new_id(), new_id(), new_id());
    for id in [&before, &conflicting] {
        t.store.conversations().import_enriched(&t.alice, "earlier.json", copy(0, id)).await.unwrap();
    }
    // The same conversation with other bytes (a trailing space).
    let edited = Bytes::from([&copy(0, &conflicting)[..], b" "].concat());
    let raw = std::fs::read(common::fixture("raw/recent-raw.json")).unwrap();
    let requests = vec![
        ImportRequest::new("before.json", copy(0, &before)),
        ImportRequest::new("conflicting.json", edited),
        ImportRequest::new("fresh.json", copy(1, &fresh)),
        ImportRequest::new("twice-1.json", copy(2, &twice)),
        ImportRequest::new("twice-2.json", copy(2, &twice)),
        ImportRequest::new("broken.json", Bytes::from_static(b"{\"dataset_metadata\": ")),
        ImportRequest::new("raw.json", raw),
        ImportRequest::new("upper.json", copy(3, &upper.to_uppercase())),
    ];
    let answers = t.store.conversations().import_many(&t.alice, requests).await;
    assert_eq!(answers.len(), 8);
    assert!(matches!(&answers[0], Ok(Imported::Unchanged(r)) if r.conversation_id == before), "{:?}", answers[0]);
    assert!(matches!(&answers[1], Err(StoreError::ConflictingImport(id)) if *id == conflicting), "{:?}", answers[1]);
    assert!(matches!(&answers[2], Ok(Imported::New(r)) if r.conversation_id == fresh && r.enrichment_status == "completed"), "{:?}", answers[2]);
    assert!(matches!(&answers[3], Ok(Imported::New(r)) if r.conversation_id == twice), "{:?}", answers[3]);
    assert!(matches!(&answers[4], Ok(Imported::Unchanged(r)) if r.conversation_id == twice), "{:?}", answers[4]);
    match &answers[5] {
        Err(StoreError::InvalidSource { path, errors }) => assert!(path == "broken.json" && !errors.is_empty(), "{errors:?}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(&answers[6], Ok(Imported::New(r)) if r.enrichment_status == "not_started" && r.source_stage == "raw"), "{:?}", answers[6]);
    assert!(matches!(&answers[7], Ok(Imported::New(r)) if r.conversation_id == upper), "ids are stored in canonical form: {:?}", answers[7]);

    // What the batch stored is what a single import stores.
    let single = new_id();
    t.store.conversations().import_enriched(&t.alice, "single.json", copy(1, &single)).await.unwrap();
    let (batched, alone) = (t.store.conversations().get(&t.alice, &fresh).await.unwrap().unwrap(), t.store.conversations().get(&t.alice, &single).await.unwrap().unwrap());
    assert_eq!(
        (batched.enriched_file_size, batched.quality_score, batched.turn_count, batched.pair_count, &batched.persona_key, &batched.scaffolding_snapshot),
        (alone.enriched_file_size, alone.quality_score, alone.turn_count, alone.pair_count, &alone.persona_key, &alone.scaffolding_snapshot)
    );
    assert_eq!(t.store.conversations().enriched_bytes(&t.alice, &fresh).await.unwrap().unwrap(), copy(1, &fresh));
    // Bob sees none of it.
    assert!(t.store.conversations().get(&t.bob, &fresh).await.unwrap().is_none());
    let report = t.admin().await.doctor(false, Duration::zero()).await;
    assert!(report.healthy() && report.orphans.is_empty(), "{report:#?}");
}

/// More files than one INSERT or one `IN (…)` list holds.
async fn a_large_batch_is_stored_whole(t: &TestStore) {
    let ids: Vec<String> = (0..1200).map(|_| new_id()).collect();
    let requests = ids.iter().enumerate().map(|(i, id)| ImportRequest::new(format!("copy-{i}.json"), copy(i, id))).collect();
    let answers = t.store.conversations().import_many(&t.alice, requests).await;
    assert!(answers.iter().all(|a| matches!(a, Ok(Imported::New(_)))));
    let file = t.store.training_files().create(&t.alice, "all of them", None, &ids).await.unwrap();
    assert_eq!(file.conversation_count, 1200);
    let again = t.store.conversations().import_many(&t.alice, ids.iter().enumerate().map(|(i, id)| ImportRequest::new("again", copy(i, id))).collect()).await;
    assert!(again.iter().all(|a| matches!(a, Ok(Imported::Unchanged(_)))));
}

/// Two batches over the same new ids at once: every id is stored once,
/// each answer is `New` or `Unchanged`, and no object is left over.
async fn racing_batches_store_each_conversation_once(t: &TestStore) {
    let ids: Vec<String> = (0..300).map(|_| new_id()).collect();
    let batch = |offset: usize| ids.iter().enumerate().cycle().skip(offset).take(ids.len()).map(|(i, id)| ImportRequest::new("race", copy(i, id))).collect::<Vec<_>>();
    let (first, second) = tokio::join!(t.store.conversations().import_many(&t.alice, batch(0)), t.store.conversations().import_many(&t.alice, batch(150)));
    for answer in first.iter().chain(&second) {
        assert!(matches!(answer, Ok(Imported::New(_) | Imported::Unchanged(_))), "{answer:?}");
    }
    let new = first.iter().chain(&second).filter(|a| matches!(a, Ok(Imported::New(_)))).count();
    assert_eq!(new, ids.len(), "each conversation is new exactly once");
    let report = t.admin().await.doctor(false, Duration::zero()).await;
    assert!(report.healthy() && report.orphans.is_empty(), "{report:#?}");
}

on_both_backends!(a_batch_answers_each_file_as_a_single_import_would, a_large_batch_is_stored_whole, racing_batches_store_each_conversation_once);
