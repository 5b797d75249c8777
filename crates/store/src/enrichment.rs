//! The enrichment pipeline over the catalogue: claim a conversation, run the
//! pure pipeline of `lora_files_format::enrich` on its stored source, store
//! the normalised file, and record where it ended.
//!
//! Every run ends in a defined status: `completed` (error cleared),
//! `validation_failed` or `normalization_failed` (with the reasons), or the
//! status it started from with `enrichment_error` when enrichment or storage
//! failed. `enrichment_in_progress` is only a claim: a claim older than
//! [`STALE_AFTER`] (a crashed worker) may be taken over, and a worker whose
//! claim was taken over writes nothing.

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use lora_files_format::enrich::check::ValidationReport;
use lora_files_format::enrich::{self, Outcome, Subject};

use crate::records::{ConversationRecord, CONVERSATION_COLUMNS};
use crate::scaffolding::ScaffoldingKeys;
use crate::{now_text, timestamp_text, Store, StoreError};

/// How long a claim lasts before another run may take it over.
pub const STALE_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Conversations enriched at once by the bulk calls: enough to overlap one
/// run's catalogue and storage waits with another's work.
pub const ENRICH_CONCURRENCY: usize = 4;

/// Statuses from which a run may start (besides a stale claim).
const STARTABLE: &str = "('not_started', 'validated', 'validation_failed', 'normalization_failed', 'enriched')";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EnrichOutcome {
    Enriched,
    Failed,
    /// Nothing to do: the conversation is already enriched.
    Skipped,
}

/// What one run did, and the conversation as it now is.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EnrichmentRun {
    pub outcome: EnrichOutcome,
    pub conversation: ConversationRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_report: Option<ValidationReport>,
}

/// What a conversation's last validation and enrichment said.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrichmentReport {
    pub conversation_id: String,
    pub enrichment_status: String,
    pub source_stage: String,
    pub requires_manual_review: bool,
    pub parse_error: Option<String>,
    /// `{is_valid, has_blockers, has_warnings, blockers, warnings, conversation_id, validated_at, summary}`;
    /// each issue is `{code, severity, field, message, suggestion}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub validation_report: Option<ValidationReport>,
    pub enrichment_error: Option<String>,
    pub enriched_at: Option<String>,
    /// Whether `enrich` would run now.
    pub can_enrich: bool,
    /// The conversation the report is about, as the catalogue has it now.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub conversation: ConversationRecord,
}

/// How a run ends, before it is written.
struct Finish {
    status: String,
    report: Option<ValidationReport>,
    error: Option<String>,
    file: Option<EnrichedFile>,
}

struct EnrichedFile {
    key: String,
    size: i64,
    sha256: String,
    quality_score: Option<f64>,
    turns: i64,
    pairs: i64,
}

fn stored_report(text: Option<&str>) -> Option<ValidationReport> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

/// The enrichment service; get one with [`Store::enrichment`].
#[derive(Clone, Copy)]
pub struct Enrichment<'s> {
    store: &'s Store,
}

impl<'s> Enrichment<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Enriches one conversation of `owner` (see the module docs). The run
    /// is its own task: a caller that goes away (a client hanging up, a
    /// request timing out) does not cut it short between claim and result.
    pub async fn run(self, owner: &str, conversation_id: &str) -> Result<EnrichmentRun, StoreError> {
        let (store, owner, conversation_id) = (self.store.clone(), owner.to_owned(), crate::ids::canonical_or_same(conversation_id));
        tokio::spawn(async move { store.enrichment().enrich_to_the_end(&owner, &conversation_id).await })
            .await
            .map_err(|error| StoreError::Internal(format!("the enrichment task failed: {error}")))?
    }

    async fn enrich_to_the_end(self, owner: &str, conversation_id: &str) -> Result<EnrichmentRun, StoreError> {
        let record = self.store.conversations().get(owner, conversation_id).await?.ok_or(StoreError::NotFound)?;
        if record.enrichment_status == "completed" {
            return Ok(EnrichmentRun { outcome: EnrichOutcome::Skipped, validation_report: None, conversation: record });
        }
        let claimed_at = now_text();
        let stale_before = timestamp_text(Utc::now() - STALE_AFTER);
        let mut tx = self.store.catalogue.begin_as(owner).await?;
        let claimed = sqlx::query(&format!(
            "UPDATE conversations SET enrichment_status = 'enrichment_in_progress', enrichment_started_at = $1, updated_at = $1 \
             WHERE owner_id = $2 AND conversation_id = $3 \
             AND (enrichment_status IN {STARTABLE} OR (enrichment_status = 'enrichment_in_progress' AND enrichment_started_at < $4))"
        ))
        .bind(&claimed_at)
        .bind(owner)
        .bind(conversation_id)
        .bind(&stale_before)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if claimed.rows_affected() == 0 {
            let now = self.store.conversations().get(owner, conversation_id).await?.ok_or(StoreError::NotFound)?;
            return match now.enrichment_status.as_str() {
                "completed" => Ok(EnrichmentRun { outcome: EnrichOutcome::Skipped, validation_report: None, conversation: now }),
                _ => Err(StoreError::EnrichmentInProgress(conversation_id.to_owned())),
            };
        }
        let finish = match self.run_pipeline(owner, &record).await {
            Ok(finish) => finish,
            Err(error) => {
                tracing::warn!(conversation_id, %error, "enrichment failed");
                let back_to = match record.enrichment_status.as_str() {
                    "enrichment_in_progress" => "not_started".to_owned(),
                    other => other.to_owned(),
                };
                Finish { status: back_to, report: None, error: Some(format!("enrichment failed: {error}; try again")), file: None }
            }
        };
        let outcome = if finish.file.is_some() { EnrichOutcome::Enriched } else { EnrichOutcome::Failed };
        let report = finish.report.clone();
        self.finish_enrichment(owner, conversation_id, &claimed_at, finish).await?;
        let conversation = self.store.conversations().get(owner, conversation_id).await?.ok_or(StoreError::NotFound)?;
        Ok(EnrichmentRun { outcome, conversation, validation_report: report })
    }

    /// Validate → enrich → normalise → store. Errors are storage or database
    /// failures; the pipeline's own failures are a [`Finish`].
    async fn run_pipeline(self, owner: &str, record: &ConversationRecord) -> Result<Finish, StoreError> {
        let source_path = record.source_path.as_deref().ok_or_else(|| StoreError::Internal("the conversation has no stored source".into()))?;
        let source = self.store.blobs.get(source_path).await?;
        let keys = ScaffoldingKeys {
            persona: record.persona_key.clone(),
            emotional_arc: record.emotional_arc_key.clone(),
            training_topic: record.topic_key.clone(),
        };
        let reference = self.store.scaffolding().reference(&keys).await?;
        let snapshot: Option<Value> = record.scaffolding_snapshot.as_deref().and_then(|s| serde_json::from_str(s).ok());
        let created_at = DateTime::parse_from_rfc3339(&record.created_at).map(|t| t.with_timezone(&Utc)).unwrap_or_else(|_| Utc::now());
        let system_prompt = snapshot.as_ref().and_then(|s| s.get("system_prompt")).and_then(Value::as_str).map(str::to_owned);
        let (conversation_id, quality_score) = (record.conversation_id.clone(), record.quality_score);
        let (settings, max_object_bytes, now) = (self.store.config.enrichment.clone(), self.store.blobs.max_object_bytes(), now_text());
        // Parsing, enriching and rendering a conversation is CPU work of up to
        // seconds: it runs off the async workers so health checks and reads
        // keep answering while a batch enriches (issue 16, finding 19).
        let outcome = tokio::task::spawn_blocking(move || {
            let subject = Subject { conversation_id: &conversation_id, created_at, quality_score, system_prompt: system_prompt.as_deref() };
            enrich::run(&source, &reference, &subject, &settings, max_object_bytes, &now)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("enrichment stopped: {e}")))?;
        let failed = |status: &str, report: ValidationReport, error: String| Finish { status: status.into(), report: Some(report), error: Some(error), file: None };
        Ok(match outcome {
            Outcome::ValidationFailed(report) => {
                let error = format!("{}: {}", report.summary, report.blocker_lines().join("; "));
                failed("validation_failed", report, error)
            }
            Outcome::EnrichmentFailed { report, error } => failed("validated", report, error),
            Outcome::NormalizationFailed { report, error } => failed("normalization_failed", report, error),
            Outcome::Enriched { report, bytes, conversation } => {
                let sha256 = hex::encode(Sha256::digest(&bytes));
                let key = crate::conversations::own_key(owner, &record.conversation_id, "enriched", &sha256);
                let size = bytes.len() as i64;
                let stored = async {
                    self.store.blobs.put_new(&key, bytes.into()).await?;
                    self.store.run_before_commit()
                };
                if let Err(error) = stored.await {
                    // The key is this run's own (a lost answer may have stored it): nothing names it.
                    self.forget(&key).await;
                    return Err(error);
                }
                let figures = conversation.figures();
                let file = EnrichedFile {
                    key,
                    size,
                    sha256,
                    quality_score: figures.quality_score.map(lora_files_format::quality::round2),
                    turns: figures.turns as i64,
                    pairs: figures.training_pairs as i64,
                };
                Finish { status: "completed".into(), report: Some(report), error: None, file: Some(file) }
            }
        })
    }

    /// Writes how a run ended, if its claim still holds.
    async fn finish_enrichment(self, owner: &str, conversation_id: &str, claimed_at: &str, finish: Finish) -> Result<(), StoreError> {
        let now = now_text();
        let file = finish.file.as_ref();
        let report = finish.report.as_ref().map(|r| serde_json::to_string(r).expect("a report serialises"));
        let mut tx = self.store.catalogue.begin_as(owner).await?;
        let written = sqlx::query(
            "UPDATE conversations SET enrichment_status = $1, validation_report = COALESCE($2, validation_report), \
             enrichment_error = $3, enrichment_started_at = NULL, updated_at = $4, \
             enriched_file_path = COALESCE($5, enriched_file_path), enriched_file_size = COALESCE($6, enriched_file_size), \
             enriched_sha256 = COALESCE($7, enriched_sha256), enriched_at = COALESCE($8, enriched_at), \
             quality_score = COALESCE($9, quality_score), turn_count = COALESCE($10, turn_count), pair_count = COALESCE($11, pair_count) \
             WHERE owner_id = $12 AND conversation_id = $13 AND enrichment_status = 'enrichment_in_progress' AND enrichment_started_at = $14",
        )
        .bind(&finish.status)
        .bind(report)
        .bind(&finish.error)
        .bind(&now)
        .bind(file.map(|f| f.key.clone()))
        .bind(file.map(|f| f.size))
        .bind(file.map(|f| f.sha256.clone()))
        .bind(file.map(|_| now.clone()))
        .bind(file.and_then(|f| f.quality_score))
        .bind(file.map(|f| f.turns))
        .bind(file.map(|f| f.pairs))
        .bind(owner)
        .bind(conversation_id)
        .bind(claimed_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if written.rows_affected() == 0 {
            tracing::warn!(conversation_id, "another run took over this enrichment; its result stands");
            if let Some(file) = file {
                self.forget(&file.key).await;
            }
        }
        Ok(())
    }

    /// Deletes an enriched file this run stored and no row names.
    async fn forget(self, key: &str) {
        if let Err(error) = self.store.blobs.delete(key).await {
            tracing::warn!(key, %error, "could not delete an enrichment's unused object; `lora-files doctor --repair` will");
        }
    }

    /// Enriches `conversation_ids`, [`ENRICH_CONCURRENCY`] at a time (each run
    /// claims its own row), yielding results in the order of the ids; an
    /// unknown id is reported, not fatal.
    pub fn run_each<'a>(self, owner: &'a str, conversation_ids: &'a [String]) -> impl Stream<Item = (String, Result<EnrichmentRun, StoreError>)> + 'a
    where
        's: 'a,
    {
        futures::stream::iter(conversation_ids)
            .map(move |id| async move { (id.clone(), self.run(owner, id).await) })
            .buffered(ENRICH_CONCURRENCY)
    }

    /// [`Enrichment::run_each`], collected.
    pub async fn run_many(self, owner: &str, conversation_ids: &[String]) -> Vec<(String, Result<EnrichmentRun, StoreError>)> {
        self.run_each(owner, conversation_ids).collect().await
    }

    /// `owner`'s conversations that enrichment would work on, oldest first:
    /// not started, or stopped short of `completed` by a failure.
    pub async fn pending(self, owner: &str) -> Result<Vec<String>, StoreError> {
        let mut tx = self.store.catalogue.begin_as(owner).await?;
        let ids: Vec<(String,)> = sqlx::query_as(&format!(
            "SELECT conversation_id FROM conversations WHERE owner_id = $1 AND enrichment_status IN {STARTABLE} ORDER BY created_at, id"
        ))
        .bind(owner)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// What the conversation's last validation and enrichment said.
    pub async fn report(self, owner: &str, conversation_id: &str) -> Result<EnrichmentReport, StoreError> {
        let conversation_id = &crate::ids::canonical_or_same(conversation_id);
        #[derive(sqlx::FromRow)]
        struct WithReport {
            #[sqlx(flatten)]
            record: ConversationRecord,
            validation_report: Option<String>,
        }
        let sql = format!("SELECT {CONVERSATION_COLUMNS}, validation_report FROM conversations WHERE owner_id = $1 AND conversation_id = $2");
        let mut tx = self.store.catalogue.begin_as(owner).await?;
        let found: Option<WithReport> = sqlx::query_as(&sql).bind(owner).bind(conversation_id).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        let WithReport { record, validation_report: report } = found.ok_or(StoreError::NotFound)?;
        Ok(EnrichmentReport {
            can_enrich: record.enrichment_status != "completed" && record.enrichment_status != "enrichment_in_progress",
            requires_manual_review: record.parse_error.is_some(),
            conversation_id: record.conversation_id.clone(),
            enrichment_status: record.enrichment_status.clone(),
            source_stage: record.source_stage.clone(),
            parse_error: record.parse_error.clone(),
            validation_report: stored_report(report.as_deref()),
            enrichment_error: record.enrichment_error.clone(),
            enriched_at: record.enriched_at.clone(),
            conversation: record,
        })
    }
}
