//! Conversations in the catalogue: importing them at any stage (enriched
//! files stored as they came, status `completed`; raw or parsed LLM output
//! kept as its source, status `not_started`), listing and reading them.

use bytes::Bytes;
use lora_files_format::json;
use lora_files_format::value::Value;
use sha2::{Digest, Sha256};

use lora_files_format::enrich::reference::input_parameters;
use lora_files_format::enrich::source::{self, Stage};
use lora_files_format::{Diagnostic, Findings, JsonPath, Severity};

use crate::records::{ConversationRecord, Page, CONVERSATION_COLUMNS};
use crate::scaffolding::{require_known, ScaffoldingKeys};
use crate::{new_id, now_text, Store, StoreError};

mod batch;

use batch::Enriched;

/// What an import did.
#[derive(Clone, Debug, PartialEq)]
pub enum Imported {
    New(ConversationRecord),
    /// The same bytes were imported before: nothing changed.
    Unchanged(ConversationRecord),
}

impl Imported {
    pub fn record(&self) -> &ConversationRecord {
        match self {
            Self::New(record) | Self::Unchanged(record) => record,
        }
    }
}

/// Filters of the conversation list.
#[derive(Clone, Debug, Default)]
pub struct ConversationFilter {
    pub enrichment_status: Option<String>,
    pub persona_key: Option<String>,
    pub emotional_arc_key: Option<String>,
    pub topic_key: Option<String>,
    pub min_quality: Option<f64>,
    /// A substring (any case) of the conversation id or of its persona,
    /// emotional arc or topic key (what its title shows).
    pub q: Option<String>,
}

/// `scaffolding_snapshot` as the original keeps it, from `input_parameters`,
/// with the system prompt the conversation was generated with, when known.
fn snapshot(parameters: Option<&Value>, system_prompt: Option<&Value>) -> Option<String> {
    let p = parameters?.as_object()?;
    let field = |key: &str| p.get(key).cloned().unwrap_or(Value::Null);
    let mut snapshot = json!({
        "persona": {"id": field("persona_id"), "name": field("persona_name"), "persona_key": field("persona_key")},
        "emotional_arc": {"id": field("emotional_arc_id"), "name": field("emotional_arc_name"), "arc_key": field("emotional_arc_key")},
        "training_topic": {"id": field("training_topic_id"), "name": field("training_topic_name"), "topic_key": field("training_topic_key")},
    });
    if let Some(prompt) = system_prompt.filter(|p| p.is_string()) {
        snapshot["system_prompt"] = prompt.clone();
    }
    Some(snapshot.to_string())
}

/// A conversation file to import, at any stage.
#[derive(Clone, Debug)]
pub struct ImportRequest {
    /// Names the source in errors (a file path, "body").
    pub source: String,
    pub bytes: Bytes,
    /// Scaffolding named alongside the file; each key wins over the file's
    /// own `input_parameters` and must exist in the catalogue.
    pub scaffolding: ScaffoldingKeys,
    /// The conversation's id when the file does not carry one.
    pub conversation_id: Option<String>,
    /// Keep text that is not JSON (and has no unambiguous repair) as a
    /// conversation that needs review, instead of refusing it.
    pub keep_unparsable: bool,
}

impl ImportRequest {
    pub fn new(source: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        Self { source: source.into(), bytes: bytes.into(), scaffolding: ScaffoldingKeys::default(), conversation_id: None, keep_unparsable: false }
    }
}

/// What an import's bytes are.
enum Prepared {
    Enriched,
    Pending(Pending),
}

/// A conversation that is not enriched yet, as it will be inserted.
struct Pending {
    conversation_id: String,
    stage: &'static str,
    parse_error: Option<String>,
    keys: ScaffoldingKeys,
    snapshot: Option<String>,
    turn_count: i64,
}

/// The conversation service; get one with [`Store::conversations`].
#[derive(Clone, Copy)]
pub struct Conversations<'s> {
    store: &'s Store,
}

impl<'s> Conversations<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Imports a conversation file of any stage, detected by content: an
    /// enriched v4 file (status `completed`), or raw / parsed LLM output
    /// (status `not_started`, enriched later). Importing the same bytes again
    /// changes nothing; other bytes under the same id are refused.
    pub async fn import(self, owner: &str, request: ImportRequest) -> Result<Imported, StoreError> {
        match self.prepare(&request, &ScaffoldingKeys::default()).await? {
            Prepared::Enriched => self.import_enriched(owner, &request.source, request.bytes).await,
            Prepared::Pending(pending) => self.insert_pending(owner, &request, pending).await,
        }
    }

    /// Reads an import's bytes: an enriched file, or the row of a
    /// conversation not enriched yet. Its scaffolding keys are those the
    /// request names, else the file's own, else `fallback`'s.
    async fn prepare(self, request: &ImportRequest, fallback: &ScaffoldingKeys) -> Result<Prepared, StoreError> {
        if request.bytes.iter().all(u8::is_ascii_whitespace) {
            let mut findings = Findings::default();
            findings.error(&JsonPath::root(), "empty_file", "there is nothing to import: the text is empty");
            return Err(StoreError::InvalidSource { path: request.source.clone(), errors: findings.into_vec() });
        }
        // Parsing up to the request's body limit is CPU work: off the async workers.
        let bytes = request.bytes.clone();
        let parsed = tokio::task::spawn_blocking(move || source::parse(&bytes))
            .await
            .map_err(|error| StoreError::Internal(format!("reading an import failed: {error}")))?;
        let parsed = match parsed {
            Ok(parsed) => parsed.document,
            Err(error) if request.keep_unparsable => {
                crate::refuse_nul_keys(&request.scaffolding, ["persona_key", "emotional_arc_key", "topic_key"])?;
                self.store.scaffolding().check_keys(&request.scaffolding).await?;
                let pending = Pending {
                    conversation_id: conversation_id_for(request, None)?,
                    stage: "unparsable",
                    parse_error: Some(error.to_string()),
                    keys: request.scaffolding.clone().or(fallback.clone()),
                    snapshot: None,
                    turn_count: 0,
                };
                return Ok(Prepared::Pending(pending));
            }
            Err(error) => {
                let diagnostic = Diagnostic {
                    severity: Severity::Error,
                    code: "syntax",
                    path: lora_files_format::position::path_at(&request.bytes, error.offset),
                    message: error.message,
                    position: Some(error.position),
                };
                return Err(StoreError::InvalidSource { path: request.source.clone(), errors: vec![diagnostic] });
            }
        };
        let stage = match Stage::of(&parsed) {
            Some(Stage::Enriched) => {
                crate::refuse_nul_keys(&request.scaffolding, ["persona_key", "emotional_arc_key", "topic_key"])?;
                self.store.scaffolding().check_keys(&request.scaffolding).await?;
                return Ok(Prepared::Enriched);
            }
            Some(Stage::Raw) => "raw",
            Some(Stage::Parsed) => "parsed",
            None => {
                let mut findings = Findings::default();
                findings.error(
                    &JsonPath::root(),
                    "unknown_stage",
                    "neither raw LLM output (conversation_metadata + turns), a parsed conversation (+ input_parameters), nor an enriched v4 file (dataset_metadata + training_pairs)",
                );
                findings.locate_in(&request.bytes);
                return Err(StoreError::InvalidSource { path: request.source.clone(), errors: findings.into_vec() });
            }
        };
        crate::refuse_nul_keys(&request.scaffolding, ["persona_key", "emotional_arc_key", "topic_key"])?;
        let keys = request.scaffolding.clone().or(ScaffoldingKeys::from_parameters(parsed.get("input_parameters"))).or(fallback.clone());
        crate::refuse_nul_keys(&keys, ["input_parameters.persona_key", "input_parameters.emotional_arc_key", "input_parameters.training_topic_key"])?;
        // The explicit keys win the merge, so the reference says whether they exist.
        let reference = self.store.scaffolding().reference(&keys).await?;
        require_known(&request.scaffolding, &reference)?;
        let parameters = input_parameters(&reference, parsed.get("input_parameters").and_then(Value::as_object)).map(Value::Object);
        let pending = Pending {
            conversation_id: conversation_id_for(request, Some(&parsed))?,
            stage,
            parse_error: None,
            keys,
            snapshot: snapshot(parameters.as_ref(), parsed.pointer("/scaffolding_snapshot/system_prompt")),
            turn_count: parsed.get("turns").and_then(Value::as_array).map_or(0, Vec::len) as i64,
        };
        Ok(Prepared::Pending(pending))
    }

    /// Replaces the source of a conversation that is not enriched (kept as
    /// unparsable text, raw or parsed output, or whose enrichment failed)
    /// with new bytes, read as [`Self::import`] reads them: the fixed file
    /// of a conversation that could not be parsed or enriched. Its id stays;
    /// its stage, scaffolding keys and turn count follow the new bytes, and
    /// it is ready to be enriched again (`not_started`). Keys neither the
    /// request nor the new bytes name stay as they were. An enriched
    /// conversation, one being enriched, or one a training file holds is
    /// refused ([`StoreError::SourceLocked`]); so are enriched bytes.
    pub async fn replace_source(self, owner: &str, conversation_id: &str, mut request: ImportRequest) -> Result<ConversationRecord, StoreError> {
        let existing = self.get(owner, conversation_id).await?.ok_or(StoreError::NotFound)?;
        let conversation_id = existing.conversation_id.clone();
        check_replaceable(&existing, &self.files_holding(owner, &conversation_id).await?)?;
        request.conversation_id = Some(conversation_id.clone());
        let kept = ScaffoldingKeys { persona: existing.persona_key.clone(), emotional_arc: existing.emotional_arc_key.clone(), training_topic: existing.topic_key.clone() };
        let pending = match self.prepare(&request, &kept).await? {
            Prepared::Pending(pending) => pending,
            Prepared::Enriched => {
                return Err(StoreError::invalid("body", "this is an enriched file; it cannot replace the source of a conversation that is not enriched: delete the conversation and import the file"));
            }
        };
        let sha256 = hex::encode(Sha256::digest(&request.bytes));
        if existing.source_sha256.as_deref() == Some(sha256.as_str()) {
            return Ok(existing);
        }
        // A replacement racing this one with the same bytes (a client retrying
        // one that timed out) writes an object of its own, so the one that
        // loses deletes nothing the winner's row names.
        let key = own_key(owner, &conversation_id, "source", &sha256);
        self.put_own(&key, request.bytes.clone()).await?;
        let mut tx = match self.store.catalogue.begin_as(owner).await {
            Ok(tx) => tx,
            Err(error) => {
                self.forget_object(&key).await;
                return Err(error);
            }
        };
        // The conditions again, in the statement: an enrichment or a training
        // file that took the conversation since the check wins.
        let changed = sqlx::query(
            "UPDATE conversations SET enrichment_status = 'not_started', source_stage = $3, parse_error = $4, persona_key = $5, emotional_arc_key = $6, \
             topic_key = $7, scaffolding_snapshot = $8, turn_count = $9, pair_count = 0, source_path = $10, source_sha256 = $11, updated_at = $12, \
             validation_report = NULL, enrichment_error = NULL, enrichment_started_at = NULL, quality_score = NULL, tier = NULL \
             WHERE owner_id = $1 AND conversation_id = $2 AND enrichment_status NOT IN ('completed', 'enriched', 'enrichment_in_progress') \
             AND enriched_file_path IS NULL AND COALESCE(source_sha256, '') = COALESCE($13, '') \
             AND NOT EXISTS (SELECT 1 FROM training_file_conversations m WHERE m.owner_id = $1 AND m.conversation_id = $2)",
        )
        .bind(owner)
        .bind(&conversation_id)
        .bind(pending.stage)
        .bind(&pending.parse_error)
        .bind(&pending.keys.persona)
        .bind(&pending.keys.emotional_arc)
        .bind(&pending.keys.training_topic)
        .bind(&pending.snapshot)
        .bind(pending.turn_count)
        .bind(&key)
        .bind(&sha256)
        .bind(now_text())
        .bind(&existing.source_sha256)
        .execute(&mut *tx)
        .await;
        let changed = match changed {
            Ok(done) => done.rows_affected() == 1,
            Err(error) => {
                drop(tx);
                self.forget_object(&key).await;
                return Err(error.into());
            }
        };
        if !changed {
            drop(tx);
            self.forget_object(&key).await;
            let now = self.get(owner, &conversation_id).await?.ok_or(StoreError::NotFound)?;
            check_replaceable(&now, &self.files_holding(owner, &conversation_id).await?)?;
            // Another replacement with these bytes landed first: what was asked for is in place.
            if now.source_sha256.as_deref() == Some(sha256.as_str()) {
                return Ok(now);
            }
            return Err(StoreError::ConflictingImport(conversation_id));
        }
        if let Err(error) = tx.commit().await {
            self.forget_object(&key).await;
            return Err(error.into());
        }
        if let Some(old) = existing.source_path.as_deref().filter(|old| *old != key) {
            // The row no longer names it; a failed delete leaves an orphan for `doctor`.
            if let Err(error) = self.store.blobs.delete(old).await {
                tracing::warn!(key = old, %error, "could not delete a replaced source's object");
            }
        }
        self.get(owner, &conversation_id).await?.ok_or(StoreError::NotFound)
    }

    /// Stores `bytes` at an attempt's own key ([`own_key`]); a failed write
    /// deletes what it may have stored (a lost answer) before it answers.
    async fn put_own(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        if let Err(error) = self.store.blobs.put_new(key, bytes).await {
            self.forget_object(key).await;
            return Err(error);
        }
        Ok(())
    }

    /// Deletes the object an attempt stored and did not land (its key is
    /// the attempt's own: no other row names it).
    async fn forget_object(&self, key: &str) {
        if let Err(error) = self.store.blobs.delete(key).await {
            tracing::warn!(key, %error, "could not delete a failed attempt's object; `lora-files doctor --repair` will");
        }
    }

    async fn insert_pending(self, owner: &str, request: &ImportRequest, pending: Pending) -> Result<Imported, StoreError> {
        let sha256 = hex::encode(Sha256::digest(&request.bytes));
        if let Some(existing) = self.get(owner, &pending.conversation_id).await? {
            let imported = judge_reimport(existing, &sha256)?;
            return self.apply_named_scaffolding(owner, imported, &request.scaffolding).await;
        }
        let key = own_key(owner, &pending.conversation_id, "source", &sha256);
        self.put_own(&key, request.bytes.clone()).await?;
        let now = now_text();
        let mut tx = match self.store.catalogue.begin_as(owner).await {
            Ok(tx) => tx,
            Err(error) => {
                self.forget_object(&key).await;
                return Err(error);
            }
        };
        let inserted = sqlx::query(
            "INSERT INTO conversations (id, conversation_id, owner_id, enrichment_status, persona_key, emotional_arc_key, topic_key, \
             scaffolding_snapshot, turn_count, pair_count, created_at, updated_at, source_path, source_sha256, source_stage, parse_error) \
             VALUES ($1, $2, $3, 'not_started', $4, $5, $6, $7, $8, 0, $9, $9, $10, $11, $12, $13)",
        )
        .bind(new_id())
        .bind(&pending.conversation_id)
        .bind(owner)
        .bind(&pending.keys.persona)
        .bind(&pending.keys.emotional_arc)
        .bind(&pending.keys.training_topic)
        .bind(&pending.snapshot)
        .bind(pending.turn_count)
        .bind(&now)
        .bind(&key)
        .bind(&sha256)
        .bind(pending.stage)
        .bind(&pending.parse_error)
        .execute(&mut *tx)
        .await
        .map(drop);
        self.finish_insert(owner, &pending.conversation_id, &sha256, &key, tx, inserted).await
    }

    /// The same bytes imported again with scaffolding named alongside: the
    /// named keys are applied (not dropped silently) while the conversation
    /// is not enriched; an enriched one refuses keys other than its own.
    async fn apply_named_scaffolding(self, owner: &str, imported: Imported, named: &ScaffoldingKeys) -> Result<Imported, StoreError> {
        let Imported::Unchanged(record) = imported else { return Ok(imported) };
        let keys = ScaffoldingKeys {
            persona: named.persona.clone().or_else(|| record.persona_key.clone()),
            emotional_arc: named.emotional_arc.clone().or_else(|| record.emotional_arc_key.clone()),
            training_topic: named.training_topic.clone().or_else(|| record.topic_key.clone()),
        };
        if keys.persona == record.persona_key && keys.emotional_arc == record.emotional_arc_key && keys.training_topic == record.topic_key {
            return Ok(Imported::Unchanged(record));
        }
        let updated = self.set_scaffolding(owner, &record.conversation_id, &keys).await?;
        Ok(Imported::Unchanged(updated))
    }

    /// Commits an import's insert; when a concurrent import of the same id
    /// won the race, judges this one against it. An attempt that did not
    /// land deletes the object it stored (`key`) unless the row that did
    /// land refers to it (the same bytes): nothing else can.
    async fn finish_insert(
        &self,
        owner: &str,
        conversation_id: &str,
        sha256: &str,
        key: &str,
        tx: crate::catalogue::Transaction,
        inserted: Result<(), sqlx::Error>,
    ) -> Result<Imported, StoreError> {
        let failed = match inserted {
            Ok(_) => match tx.commit().await {
                Ok(()) => {
                    let record = self.get(owner, conversation_id).await?.ok_or(StoreError::NotFound)?;
                    return Ok(Imported::New(record));
                }
                Err(error) => StoreError::from(error),
            },
            Err(error) => {
                drop(tx);
                StoreError::from(error)
            }
        };
        let lost_race = failed.is_unique_violation();
        let existing = if lost_race { self.get(owner, conversation_id).await? } else { None };
        let referred = existing.as_ref().is_some_and(|e| e.source_path.as_deref() == Some(key) || e.enriched_file_path.as_deref() == Some(key));
        if !referred {
            if let Err(error) = self.store.blobs.delete(key).await {
                tracing::warn!(key, %error, "could not delete a failed import's object; `lora-files doctor --repair` will");
            }
        }
        match existing {
            Some(existing) => judge_reimport(existing, sha256),
            None if lost_race => Err(StoreError::NotFound),
            None => Err(failed),
        }
    }

    /// Imports one enriched conversation file for `owner`. `source` names it in errors.
    pub async fn import_enriched(self, owner: &str, source: &str, bytes: Bytes) -> Result<Imported, StoreError> {
        let (owner_text, source_text) = (owner.to_owned(), source.to_owned());
        let enriched = tokio::task::spawn_blocking(move || Enriched::read(&owner_text, &source_text, bytes))
            .await
            .map_err(|error| StoreError::Internal(format!("reading an import failed: {error}")))??;
        if let Some(existing) = self.get(owner, &enriched.conversation_id).await? {
            return judge_reimport(existing, &enriched.sha256);
        }
        self.put_own(&enriched.key, enriched.bytes.clone()).await?;
        let mut tx = match self.store.catalogue.begin_as(owner).await {
            Ok(tx) => tx,
            Err(error) => {
                self.forget_object(&enriched.key).await;
                return Err(error);
            }
        };
        let inserted = batch::insert_enriched(&mut tx, owner, std::slice::from_ref(&enriched), &now_text()).await;
        self.finish_insert(owner, &enriched.conversation_id, &enriched.sha256, &enriched.key, tx, inserted).await
    }

    /// The conversation `conversation_id` of `owner`.
    pub async fn get(self, owner: &str, conversation_id: &str) -> Result<Option<ConversationRecord>, StoreError> {
        let conversation_id = &crate::ids::canonical_or_same(conversation_id);
        let mut tx = self.store.catalogue.begin_as(owner).await?;
        let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE owner_id = $1 AND conversation_id = $2");
        let record = sqlx::query_as(&sql).bind(owner).bind(conversation_id).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// `owner`'s conversations, newest first.
    pub async fn list(self, owner: &str, filter: &ConversationFilter, limit: i64, cursor: Option<&str>) -> Result<Page<ConversationRecord>, StoreError> {
        for (field, value) in [
            ("enrichment_status", &filter.enrichment_status),
            ("persona_key", &filter.persona_key),
            ("emotional_arc_key", &filter.emotional_arc_key),
            ("topic_key", &filter.topic_key),
            ("q", &filter.q),
        ] {
            crate::refuse_nul(field, value.as_deref())?;
        }
        let (after_time, after_id) = crate::paging::decode_cursor(cursor)?;
        let q = filter.q.as_deref().map(crate::paging::contains_pattern);
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE owner_id = $1 \
             AND ($2 IS NULL OR enrichment_status = $2) AND ($3 IS NULL OR persona_key = $3) \
             AND ($4 IS NULL OR emotional_arc_key = $4) AND ($5 IS NULL OR topic_key = $5) \
             AND ($6 IS NULL OR quality_score >= $6) AND ($7 IS NULL OR lower(conversation_id) LIKE $7 ESCAPE '\\' OR lower(COALESCE(persona_key, '')) LIKE $7 ESCAPE '\\' \
     OR lower(COALESCE(emotional_arc_key, '')) LIKE $7 ESCAPE '\\' OR lower(COALESCE(topic_key, '')) LIKE $7 ESCAPE '\\') \
             AND ($8 IS NULL OR created_at < $8 OR (created_at = $8 AND id < $9)) \
             ORDER BY created_at DESC, id DESC LIMIT $10"
        );
        let mut tx = self.store.catalogue.begin_as(owner).await?;
        let mut items: Vec<ConversationRecord> = sqlx::query_as(&sql)
            .bind(owner)
            .bind(&filter.enrichment_status)
            .bind(&filter.persona_key)
            .bind(&filter.emotional_arc_key)
            .bind(&filter.topic_key)
            .bind(filter.min_quality)
            .bind(q)
            .bind(after_time)
            .bind(after_id)
            .bind(limit + 1)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(crate::paging::page(&mut items, limit, |c| (c.created_at.clone(), c.id.clone())))
    }

    /// How many of `owner`'s conversations match `filter`.
    pub async fn count(self, owner: &str, filter: &ConversationFilter) -> Result<i64, StoreError> {
        let sql = format!("SELECT count(*) FROM conversations WHERE owner_id = $1 AND {FILTER_SQL}");
        let mut tx = self.store.catalogue.begin_as(owner).await?;
        let (count,): (i64,) = bind_filter(sqlx::query_as(&sql).bind(owner), filter).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(count)
    }

    /// The ids of at most `limit` of `owner`'s conversations matching `filter`,
    /// newest first (what "select all matching" selects).
    pub async fn matching_ids(self, owner: &str, filter: &ConversationFilter, limit: i64) -> Result<Vec<String>, StoreError> {
        let sql = format!("SELECT conversation_id FROM conversations WHERE owner_id = $1 AND {FILTER_SQL} ORDER BY created_at DESC, id DESC LIMIT $8");
        let mut tx = self.store.catalogue.begin_as(owner).await?;
        let rows: Vec<(String,)> = bind_filter(sqlx::query_as(&sql).bind(owner), filter).bind(limit).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// The training files of `owner` whose current version holds the conversation, by name.
    pub async fn files_holding(self, owner: &str, conversation_id: &str) -> Result<Vec<FileHolding>, StoreError> {
        let mut tx = self.store.catalogue.begin_as(owner).await?;
        let files = sqlx::query_as(
            "SELECT f.id, f.name, f.status FROM training_file_conversations m JOIN training_files f ON f.id = m.training_file_id \
             WHERE m.owner_id = $1 AND m.conversation_id = $2 ORDER BY f.name",
        )
        .bind(owner)
        .bind(conversation_id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(files)
    }

    /// Changes the scaffolding (persona, arc, topic) a conversation will be
    /// enriched with; each key must exist in the catalogue. An enriched
    /// conversation's file states its own scaffolding, so it is refused.
    pub async fn set_scaffolding(self, owner: &str, conversation_id: &str, keys: &ScaffoldingKeys) -> Result<ConversationRecord, StoreError> {
        self.store.scaffolding().check_keys(keys).await?;
        let mut tx = self.store.catalogue.begin_as(owner).await?;
        let changed = sqlx::query(
            "UPDATE conversations SET persona_key = $3, emotional_arc_key = $4, topic_key = $5, updated_at = $6 \
             WHERE owner_id = $1 AND conversation_id = $2 AND enrichment_status NOT IN ('completed', 'enrichment_in_progress')",
        )
        .bind(owner)
        .bind(conversation_id)
        .bind(&keys.persona)
        .bind(&keys.emotional_arc)
        .bind(&keys.training_topic)
        .bind(now_text())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let record = self.get(owner, conversation_id).await?.ok_or(StoreError::NotFound)?;
        if changed.rows_affected() == 0 {
            return Err(StoreError::invalid(
                "scaffolding",
                "the conversation is enriched (or being enriched) and its file states its scaffolding; delete it and import it again to change it",
            ));
        }
        Ok(record)
    }

    /// Deletes a conversation and its stored files. A conversation that
    /// training files hold is refused, naming them, unless `force`: then it
    /// is first removed from each (a new version of each file). Earlier
    /// versions keep their bytes, which do not depend on the conversation.
    pub async fn delete(self, owner: &str, conversation_id: &str, force: bool) -> Result<(), StoreError> {
        let record = self.get(owner, conversation_id).await?.ok_or(StoreError::NotFound)?;
        let holding = self.files_holding(owner, conversation_id).await?;
        if !holding.is_empty() && !force {
            return Err(held_by(&holding));
        }
        for file in &holding {
            self.store.training_files().remove(owner, &file.id, conversation_id).await?;
        }
        let mut tx = self.store.catalogue.begin_as(owner).await?;
        let deleted = sqlx::query("DELETE FROM conversations WHERE owner_id = $1 AND conversation_id = $2").bind(owner).bind(conversation_id).execute(&mut *tx).await;
        if let Err(error) = deleted {
            drop(tx);
            // Added to a file since the check: the membership's foreign key refused the delete.
            let holding = self.files_holding(owner, conversation_id).await?;
            return Err(if holding.is_empty() { error.into() } else { held_by(&holding) });
        }
        tx.commit().await?;
        let mut keys: Vec<String> = [record.source_path, record.enriched_file_path].into_iter().flatten().collect();
        keys.dedup();
        for key in keys {
            // The catalogue no longer names it; a failed delete leaves an orphan for `doctor`.
            if let Err(error) = self.store.blobs.delete(&key).await {
                tracing::warn!(%key, %error, "could not delete a deleted conversation's object");
            }
        }
        Ok(())
    }

    /// The stored source of a conversation, as it was imported (`None` when
    /// none is recorded).
    pub async fn source_bytes(self, owner: &str, conversation_id: &str) -> Result<Option<Bytes>, StoreError> {
        let record = self.get(owner, conversation_id).await?.ok_or(StoreError::NotFound)?;
        match record.source_path {
            Some(key) => Ok(Some(self.store.blobs.get(&key).await?)),
            None => Ok(None),
        }
    }

    /// The stored enriched file of a conversation, as it was written (`None`
    /// before it is enriched).
    pub async fn enriched_bytes(self, owner: &str, conversation_id: &str) -> Result<Option<Bytes>, StoreError> {
        let record = self.get(owner, conversation_id).await?.ok_or(StoreError::NotFound)?;
        match record.enriched_file_path {
            Some(key) => Ok(Some(self.store.blobs.get(&key).await?)),
            None => Ok(None),
        }
    }
}

/// Whether a conversation's source may be replaced: not while it is
/// enriched (or being enriched), nor while a training file holds it.
fn check_replaceable(record: &ConversationRecord, files: &[FileHolding]) -> Result<(), StoreError> {
    let reason = match record.enrichment_status.as_str() {
        "enrichment_in_progress" => "it is being enriched right now".to_string(),
        "completed" | "enriched" => "it is enriched; delete it and import the new file instead".to_string(),
        _ if record.enriched_file_path.is_some() => "it is enriched; delete it and import the new file instead".to_string(),
        _ if !files.is_empty() => {
            let names: Vec<String> = files.iter().map(|f| format!("{:?}", f.name)).collect();
            format!("it is in the training file(s) {}; remove it from them first", names.join(", "))
        }
        _ => return Ok(()),
    };
    Err(StoreError::SourceLocked { conversation_id: record.conversation_id.clone(), reason })
}

fn held_by(files: &[FileHolding]) -> StoreError {
    let names: Vec<String> = files.iter().map(|f| format!("{:?}", f.name)).collect();
    StoreError::invalid("force", format!("the conversation is in the training file(s) {}; remove it from them first, or force the delete", names.join(", ")))
}

/// A training file that holds a conversation.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileHolding {
    pub id: String,
    pub name: String,
    pub status: String,
}

/// The conditions of [`ConversationFilter`], over parameters $2–$7.
const FILTER_SQL: &str = "($2 IS NULL OR enrichment_status = $2) AND ($3 IS NULL OR persona_key = $3) \
     AND ($4 IS NULL OR emotional_arc_key = $4) AND ($5 IS NULL OR topic_key = $5) \
     AND ($6 IS NULL OR quality_score >= $6) AND ($7 IS NULL OR lower(conversation_id) LIKE $7 ESCAPE '\\' OR lower(COALESCE(persona_key, '')) LIKE $7 ESCAPE '\\' \
     OR lower(COALESCE(emotional_arc_key, '')) LIKE $7 ESCAPE '\\' OR lower(COALESCE(topic_key, '')) LIKE $7 ESCAPE '\\')";

type AnyQueryAs<'q, O> = sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>>;

fn bind_filter<'q, O>(query: AnyQueryAs<'q, O>, filter: &'q ConversationFilter) -> AnyQueryAs<'q, O> {
    query
        .bind(&filter.enrichment_status)
        .bind(&filter.persona_key)
        .bind(&filter.emotional_arc_key)
        .bind(&filter.topic_key)
        .bind(filter.min_quality)
        .bind(filter.q.as_deref().map(crate::paging::contains_pattern))
}


/// The request's id, else the file's own `conversation_id`, else one
/// derived from the bytes (the same file always gets the same id).
fn conversation_id_for(request: &ImportRequest, document: Option<&Value>) -> Result<String, StoreError> {
    if let Some(id) = &request.conversation_id {
        return crate::ids::canonical_id("conversation_id", id);
    }
    let own = document.and_then(|d| d.get("conversation_id")).and_then(Value::as_str).and_then(|id| uuid::Uuid::parse_str(id).ok());
    let id = own.unwrap_or_else(|| uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("lora-files:source:{}", hex::encode(Sha256::digest(&request.bytes))).as_bytes()));
    Ok(id.hyphenated().to_string())
}

/// Where an attempt to store a conversation's `kind` of file (`source`,
/// `enriched`) puts it: its content's digest and a token of the attempt's
/// own. No writer reuses an object another attempt stored, so none can
/// delete one that a row committed by another names (a delete of the
/// conversation racing its import again, two replacements racing).
pub(crate) fn own_key(owner: &str, conversation_id: &str, kind: &str, sha256: &str) -> String {
    format!("conversations/{owner}/{conversation_id}/{kind}-{}-{}.json", &sha256[..12], crate::token())
}

/// The same bytes again change nothing; other bytes under the same id are refused.
fn judge_reimport(existing: ConversationRecord, sha256: &str) -> Result<Imported, StoreError> {
    match existing.source_sha256.as_deref() == Some(sha256) {
        true => Ok(Imported::Unchanged(existing)),
        false => Err(StoreError::ConflictingImport(existing.conversation_id)),
    }
}
