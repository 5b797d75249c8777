//! Import at any stage and the enrichment pipeline's status transitions, on
//! SQLite and on PostgreSQL. No path leaves a row in `enrichment_in_progress`.

mod common;

use std::sync::Arc;

use common::{fixture, TestStore};
use lora_files_format::enrich::reference::{derived_id, SeedKind};
use lora_files_store::conversations::{ImportRequest, Imported};
use lora_files_store::enrichment::EnrichOutcome;
use lora_files_store::scaffolding::ScaffoldingKeys;
use lora_files_store::{on_both_backends, Access, Store, StoreError};
use serde_json::{json, Value};

const DAVID: &str = "330dc058-6d75-4609-96f7-b6e87b39f536";

fn raw_text() -> String {
    std::fs::read_to_string(fixture("raw/single-convo-file-3-raw.json")).unwrap()
}

fn david_keys() -> ScaffoldingKeys {
    ScaffoldingKeys {
        persona: Some("pragmatic_optimist".into()),
        emotional_arc: Some("shame_to_acceptance".into()),
        training_topic: Some("grandparent_529".into()),
    }
}

fn raw_request(text: impl Into<String>, id: &str) -> ImportRequest {
    ImportRequest { scaffolding: david_keys(), conversation_id: Some(id.into()), ..ImportRequest::new("raw.json", text.into()) }
}

async fn status(t: &TestStore, id: &str) -> String {
    t.store.conversations().get(&t.alice, id).await.unwrap().unwrap().enrichment_status
}

async fn set_claim(t: &TestStore, id: &str, started_at: &str) {
    t.execute_as_admin(&format!(
        "UPDATE conversations SET enrichment_status = 'enrichment_in_progress', enrichment_started_at = '{started_at}' WHERE conversation_id = '{id}'"
    ))
    .await;
}

async fn raw_import_then_enrich_completes(t: &TestStore) {
    t.load_scaffolding().await;
    let imported = t.store.conversations().import(&t.alice, raw_request(raw_text(), DAVID)).await.unwrap();
    let Imported::New(record) = imported else { panic!("new") };
    assert_eq!((record.enrichment_status.as_str(), record.source_stage.as_str(), record.turn_count), ("not_started", "raw", 5));
    assert_eq!(record.persona_key.as_deref(), Some("pragmatic_optimist"));
    assert!(record.enriched_file_path.is_none());
    // Not eligible for a training file until enriched.
    match t.store.training_files().create(&t.alice, "Too early", None, &[DAVID.to_owned()]).await {
        Err(StoreError::Ineligible(refused)) => assert_eq!(refused[0].reason, "not_completed"),
        other => panic!("{other:?}"),
    }

    let run = t.store.enrichment().run(&t.alice, DAVID).await.unwrap();
    assert_eq!(run.outcome, EnrichOutcome::Enriched);
    let record = run.conversation;
    assert_eq!(record.enrichment_status, "completed");
    assert!(record.enrichment_error.is_none() && record.enriched_at.is_some());
    assert_eq!((record.turn_count, record.pair_count), (5, 2));
    assert!(run.validation_report.unwrap().is_valid);

    let stored: Value = serde_json::from_slice(&t.object(record.enriched_file_path.as_ref().unwrap()).await).unwrap();
    assert_eq!(stored["training_pairs"][0]["id"], "therapeutic_turn1", "pair ids keep the template category");
    assert_eq!(stored["training_pairs"][0]["conversation_id"], DAVID);
    assert_eq!(stored["training_pairs"][0]["conversation_metadata"]["client_persona"], "David Chen - The Pragmatic Optimist");
    assert_eq!(stored["input_parameters"]["persona_id"], derived_id("persona", "pragmatic_optimist"));
    assert_eq!(stored["input_parameters"]["training_topic_name"], "Grandparent 529 Contributions");

    let file = t.store.training_files().create(&t.alice, "Enriched here", None, &[DAVID.to_owned()]).await.unwrap();
    assert_eq!((file.conversation_count, file.total_training_pairs), (1, 2));
    assert_eq!(t.store.enrichment().run(&t.alice, DAVID).await.unwrap().outcome, EnrichOutcome::Skipped);
    let again = t.store.conversations().import(&t.alice, raw_request(raw_text(), DAVID)).await.unwrap();
    assert!(matches!(again, Imported::Unchanged(_)), "re-importing the same raw file changes nothing");
    let report = t.store.enrichment().report(&t.alice, DAVID).await.unwrap();
    assert!(!report.can_enrich && report.validation_report.unwrap().is_valid);
}

async fn validation_failure_is_recorded_and_retryable(t: &TestStore) {
    let mut raw: Value = serde_json::from_str(&raw_text()).unwrap();
    raw["turns"][2]["content"] = json!("");
    let id = uuid::Uuid::new_v4().to_string();
    t.store.conversations().import(&t.alice, ImportRequest { conversation_id: Some(id.clone()), ..ImportRequest::new("bad.json", raw.to_string()) }).await.unwrap();
    for _ in 0..2 {
        let run = t.store.enrichment().run(&t.alice, &id).await.unwrap();
        assert_eq!(run.outcome, EnrichOutcome::Failed);
        assert_eq!(run.conversation.enrichment_status, "validation_failed");
        let error = run.conversation.enrichment_error.unwrap();
        assert!(error.contains("MISSING_CONTENT at turns[2].content"), "{error}");
    }
    let report = t.store.enrichment().report(&t.alice, &id).await.unwrap();
    let validation = report.validation_report.unwrap();
    assert_eq!(validation.blockers[0].field, "turns[2].content");
    assert_eq!(validation.summary, "Validation failed: 1 blocking error(s)");
    assert!(report.can_enrich, "a retry is always possible");
}

async fn unparsable_text_is_kept_for_review(t: &TestStore) {
    let text = raw_text();
    let truncated = &text[..900];
    let last_line = 1 + truncated.matches('\n').count();
    let refused = t.store.conversations().import(&t.alice, ImportRequest::new("cut.json", truncated.to_owned())).await;
    match refused {
        Err(StoreError::InvalidSource { errors, .. }) => assert_eq!(errors[0].position.unwrap().line, last_line),
        other => panic!("{other:?}"),
    }
    let empty = ImportRequest { keep_unparsable: true, ..ImportRequest::new("empty.json", " \n") };
    assert!(matches!(t.store.conversations().import(&t.alice, empty).await, Err(StoreError::InvalidSource { .. })), "nothing to review");
    let request = ImportRequest { keep_unparsable: true, ..ImportRequest::new("cut.json", truncated.to_owned()) };
    let Imported::New(record) = t.store.conversations().import(&t.alice, request.clone()).await.unwrap() else { panic!("new") };
    assert_eq!((record.source_stage.as_str(), record.enrichment_status.as_str()), ("unparsable", "not_started"));
    assert!(record.parse_error.as_deref().unwrap().contains(&format!("line {last_line}")), "{:?}", record.parse_error);
    assert!(matches!(t.store.conversations().import(&t.alice, request).await.unwrap(), Imported::Unchanged(_)));
    let run = t.store.enrichment().run(&t.alice, &record.conversation_id).await.unwrap();
    assert_eq!(run.conversation.enrichment_status, "validation_failed");
    assert_eq!(run.validation_report.unwrap().blockers[0].code, "INVALID_JSON_SYNTAX");
    assert!(t.store.enrichment().report(&t.alice, &record.conversation_id).await.unwrap().requires_manual_review);
}

async fn normalization_failure_then_retry(t: &TestStore) {
    t.load_scaffolding().await;
    let mut small = t.config.clone();
    small.max_object_bytes = 10_000;
    let tight = Store::open(small, Access::Service).await.unwrap();
    tight.conversations().import(&t.alice, raw_request(raw_text(), DAVID)).await.unwrap();
    let run = tight.enrichment().run(&t.alice, DAVID).await.unwrap();
    assert_eq!(run.conversation.enrichment_status, "normalization_failed");
    assert!(run.conversation.enrichment_error.unwrap().contains("above the limit of 10000"));
    assert!(run.conversation.enriched_file_path.is_none(), "no file is stored");
    let retry = t.store.enrichment().run(&t.alice, DAVID).await.unwrap();
    assert_eq!(retry.conversation.enrichment_status, "completed");
    assert!(retry.conversation.enrichment_error.is_none(), "the error is cleared on success");
}

async fn storage_failure_returns_to_the_previous_status(t: &TestStore) {
    t.load_scaffolding().await;
    t.store.conversations().import(&t.alice, raw_request(raw_text(), DAVID)).await.unwrap();
    let failing = t.store.clone().with_before_commit(Arc::new(|| Err(StoreError::Internal("disk on fire".into()))));
    let run = failing.enrichment().run(&t.alice, DAVID).await.unwrap();
    assert_eq!(run.outcome, EnrichOutcome::Failed);
    assert_eq!(run.conversation.enrichment_status, "not_started", "never stuck in progress");
    assert!(run.conversation.enrichment_error.as_deref().unwrap().contains("disk on fire"));
    let retry = t.store.enrichment().run(&t.alice, DAVID).await.unwrap();
    assert_eq!((retry.outcome, retry.conversation.enrichment_status.as_str()), (EnrichOutcome::Enriched, "completed"));
    assert!(retry.conversation.enrichment_error.is_none());
}

/// A caller that gives up (a timed-out request) does not cut a run short.
async fn a_run_outlives_its_caller(t: &TestStore) {
    t.load_scaffolding().await;
    t.store.conversations().import(&t.alice, raw_request(raw_text(), DAVID)).await.unwrap();
    let slow = t.store.clone().with_before_commit(Arc::new(|| {
        std::thread::sleep(std::time::Duration::from_millis(300));
        Ok(())
    }));
    assert!(tokio::time::timeout(std::time::Duration::from_millis(50), slow.enrichment().run(&t.alice, DAVID)).await.is_err());
    // Up to 30 s: a margin for a loaded machine, not a race with the run.
    for _ in 0..600 {
        if status(t, DAVID).await == "completed" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the run stopped with its caller: {}", status(t, DAVID).await);
}

async fn a_live_claim_refuses_and_a_stale_one_is_taken_over(t: &TestStore) {
    t.load_scaffolding().await;
    t.store.conversations().import(&t.alice, raw_request(raw_text(), DAVID)).await.unwrap();
    set_claim(t, DAVID, &lora_files_format::render::timestamp(chrono::Utc::now())).await;
    assert!(matches!(t.store.enrichment().run(&t.alice, DAVID).await, Err(StoreError::EnrichmentInProgress(_))));
    assert_eq!(status(t, DAVID).await, "enrichment_in_progress");
    set_claim(t, DAVID, "2020-01-01T00:00:00.000Z").await;
    assert_eq!(t.store.enrichment().run(&t.alice, DAVID).await.unwrap().conversation.enrichment_status, "completed");
}

async fn parsed_files_and_explicit_keys(t: &TestStore) {
    // A parsed file whose scaffolding the catalogue does not know: its own block is used.
    let mut parsed: Value = serde_json::from_str(&raw_text()).unwrap();
    parsed["input_parameters"] = json!({"persona_id": "p1", "persona_key": "someone", "persona_name": "Someone", "emotional_arc_id": "",
        "emotional_arc_key": "", "emotional_arc_name": "", "training_topic_id": "t1", "training_topic_key": "budgeting", "training_topic_name": "Budgeting"});
    parsed["conversation_id"] = json!("0f8e5a4c-1111-4222-8333-944455556666");
    let Imported::New(record) = t.store.conversations().import(&t.alice, ImportRequest::new("p.json", parsed.to_string())).await.unwrap() else { panic!() };
    assert_eq!((record.source_stage.as_str(), record.topic_key.as_deref()), ("parsed", Some("budgeting")));
    assert_eq!(record.conversation_id, "0f8e5a4c-1111-4222-8333-944455556666", "the file's own id");
    let run = t.store.enrichment().run(&t.alice, &record.conversation_id).await.unwrap();
    let stored: Value = serde_json::from_slice(&t.object(run.conversation.enriched_file_path.as_ref().unwrap()).await).unwrap();
    assert_eq!(stored["input_parameters"], parsed["input_parameters"]);
    assert_eq!(stored["training_pairs"][0]["id"], "fp_conversation_turn1", "no template: the original's default category");
    assert_eq!(stored["training_pairs"][0]["training_metadata"]["key_learning_objective"], "budgeting");

    // Keys named explicitly must exist; an id is derived from the bytes when none is given.
    match t.store.conversations().import(&t.alice, ImportRequest { scaffolding: david_keys(), ..ImportRequest::new("r.json", raw_text()) }).await {
        Err(StoreError::Invalid { field, message }) => assert_eq!((field.as_str(), message.contains("scaffolding load")), ("persona_key", true)),
        other => panic!("{other:?}"),
    }
    let first = t.store.conversations().import(&t.alice, ImportRequest::new("r.json", raw_text())).await.unwrap();
    let second = t.store.conversations().import(&t.alice, ImportRequest::new("copy.json", raw_text())).await.unwrap();
    assert!(matches!(second, Imported::Unchanged(_)));
    assert_eq!(first.record().conversation_id, second.record().conversation_id);
    assert!(matches!(t.store.conversations().import(&t.alice, ImportRequest::new("x.json", "{\"hello\": 1}")).await, Err(StoreError::InvalidSource { .. })));
    assert!(matches!(t.store.enrichment().run(&t.bob, DAVID).await, Err(StoreError::NotFound)), "other owners see nothing");
}

async fn bulk_enrichment_reports_each_id(t: &TestStore) {
    t.load_scaffolding().await;
    t.store.conversations().import(&t.alice, raw_request(raw_text(), DAVID)).await.unwrap();
    let mut broken: Value = serde_json::from_str(&raw_text()).unwrap();
    broken["turns"][0]["role"] = json!("narrator");
    let broken_id = uuid::Uuid::new_v4().to_string();
    t.store.conversations().import(&t.alice, raw_request(broken.to_string(), &broken_id)).await.unwrap();
    let enriched = t.import_copies(&t.alice, 1).await;
    let pending = t.store.enrichment().pending(&t.alice).await.unwrap();
    assert_eq!(pending, [DAVID.to_owned(), broken_id.clone()]);

    let unknown = uuid::Uuid::new_v4().to_string();
    let results = t.store.enrichment().run_many(&t.alice, &[DAVID.into(), broken_id.clone(), enriched[0].clone(), unknown.clone()]).await;
    let outcomes: Vec<_> = results.iter().map(|(_, r)| r.as_ref().map(|e| e.outcome).map_err(ToString::to_string)).collect();
    assert_eq!(outcomes, [Ok(EnrichOutcome::Enriched), Ok(EnrichOutcome::Failed), Ok(EnrichOutcome::Skipped), Err("not found".into())]);
    assert_eq!(t.store.enrichment().pending(&t.alice).await.unwrap(), [broken_id]);
}

async fn scaffolding_loads_idempotently(t: &TestStore) {
    t.load_scaffolding().await;
    t.load_scaffolding().await;
    let counts = [SeedKind::Persona, SeedKind::EmotionalArc, SeedKind::TrainingTopic, SeedKind::Template];
    let mut found = Vec::new();
    for kind in counts {
        found.push(t.store.scaffolding().list(kind).await.unwrap().len());
    }
    assert_eq!(found, [3, 7, 65, 7]);
    let personas = t.store.scaffolding().list(SeedKind::Persona).await.unwrap();
    let david = personas.iter().find(|p| p.key == "pragmatic_optimist").unwrap().to_value();
    assert_eq!((david["name"].as_str(), david["id"].as_str()), (Some("David Chen"), Some(derived_id("persona", "pragmatic_optimist").as_str())));
}

async fn a_fixed_file_replaces_a_broken_source(t: &TestStore) {
    t.load_scaffolding().await;
    let conversations = t.store.conversations();
    let text = raw_text();
    let cut = ImportRequest { keep_unparsable: true, conversation_id: Some(DAVID.into()), ..ImportRequest::new("cut.json", text[..900].to_owned()) };
    let Imported::New(broken) = conversations.import(&t.alice, cut).await.unwrap() else { panic!("new") };
    assert_eq!(broken.source_stage, "unparsable");
    let old_key = broken.source_path.clone().unwrap();
    assert_eq!(t.store.enrichment().run(&t.alice, DAVID).await.unwrap().conversation.enrichment_status, "validation_failed");
    // A plain import of other bytes under the id is still refused.
    assert!(matches!(conversations.import(&t.alice, raw_request(raw_text(), DAVID)).await, Err(StoreError::ConflictingImport(_))));

    // Still broken text is refused with where it breaks, and changes nothing.
    let still_cut = conversations.replace_source(&t.alice, DAVID, ImportRequest::new("body", text[..1000].to_owned())).await;
    assert!(matches!(still_cut, Err(StoreError::InvalidSource { .. })), "{still_cut:?}");
    let fixed = conversations.replace_source(&t.alice, DAVID, raw_request(text.clone(), DAVID)).await.unwrap();
    assert_eq!((fixed.conversation_id.as_str(), fixed.id.as_str()), (DAVID, broken.id.as_str()), "the same row");
    assert_eq!((fixed.source_stage.as_str(), fixed.enrichment_status.as_str(), fixed.turn_count), ("raw", "not_started", 5));
    assert!(fixed.parse_error.is_none() && fixed.enrichment_error.is_none());
    assert_eq!(fixed.persona_key.as_deref(), Some("pragmatic_optimist"));
    assert_ne!(fixed.source_sha256, broken.source_sha256);
    assert_eq!(t.object(fixed.source_path.as_ref().unwrap()).await, text.as_bytes());
    let objects: Vec<String> = t.objects("conversations/").await.into_iter().map(|(key, _)| key).collect();
    assert!(!objects.contains(&old_key), "the old source is deleted: {objects:?}");
    assert!(objects.contains(fixed.source_path.as_ref().unwrap()));
    // The same bytes again change nothing.
    assert_eq!(conversations.replace_source(&t.alice, DAVID, raw_request(text.clone(), DAVID)).await.unwrap(), fixed);

    // Enriched bytes cannot replace a source.
    let enriched = lora_files_store::testing::enriched_templates()[0].1.clone();
    assert!(matches!(conversations.replace_source(&t.alice, DAVID, ImportRequest::new("body", enriched)).await, Err(StoreError::Invalid { .. })));
    // Enriched, then in a training file: refused, naming why.
    assert_eq!(t.store.enrichment().run(&t.alice, DAVID).await.unwrap().conversation.enrichment_status, "completed");
    match conversations.replace_source(&t.alice, DAVID, ImportRequest::new("body", text.replace("  ", " "))).await {
        Err(StoreError::SourceLocked { reason, .. }) => assert!(reason.contains("enriched"), "{reason}"),
        other => panic!("{other:?}"),
    }
    t.store.training_files().create(&t.alice, "Holds David", None, &[DAVID.to_owned()]).await.unwrap();
    t.execute_as_admin(&format!("UPDATE conversations SET enrichment_status = 'validation_failed', enriched_file_path = NULL WHERE conversation_id = '{DAVID}'")).await;
    match conversations.replace_source(&t.alice, DAVID, ImportRequest::new("body", text.replace("  ", " "))).await {
        Err(StoreError::SourceLocked { reason, .. }) => assert!(reason.contains("\"Holds David\""), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(conversations.replace_source(&t.alice, &uuid::Uuid::new_v4().to_string(), raw_request(text, DAVID)).await, Err(StoreError::NotFound)));
}

on_both_backends!(
    a_fixed_file_replaces_a_broken_source,
    raw_import_then_enrich_completes,
    validation_failure_is_recorded_and_retryable,
    unparsable_text_is_kept_for_review,
    normalization_failure_then_retry,
    storage_failure_returns_to_the_previous_status,
    a_live_claim_refuses_and_a_stale_one_is_taken_over,
    a_run_outlives_its_caller,
    parsed_files_and_explicit_keys,
    bulk_enrichment_reports_each_id,
    scaffolding_loads_idempotently,
);
