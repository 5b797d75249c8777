//! Conversations in the catalogue: importing enriched files (stored as they
//! came, status `completed`), listing and reading them.

use bytes::Bytes;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use lora_files_format::input::read_enriched_bytes;
use lora_files_format::model::Conversation;

use crate::records::{ConversationRecord, Page, CONVERSATION_COLUMNS};
use crate::{new_id, now_text, Store, StoreError};

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
    /// A substring of the conversation id.
    pub q: Option<String>,
}

/// `scaffolding_snapshot` as the original keeps it, from `input_parameters`.
fn snapshot(parameters: Option<&Value>) -> Option<String> {
    let p = parameters?.as_object()?;
    let field = |key: &str| p.get(key).cloned().unwrap_or(Value::Null);
    Some(
        json!({
            "persona": {"id": field("persona_id"), "name": field("persona_name"), "persona_key": field("persona_key")},
            "emotional_arc": {"id": field("emotional_arc_id"), "name": field("emotional_arc_name"), "arc_key": field("emotional_arc_key")},
            "training_topic": {"id": field("training_topic_id"), "name": field("training_topic_name"), "topic_key": field("training_topic_key")},
        })
        .to_string(),
    )
}

impl Store {
    /// Imports one enriched conversation file for `owner`. `source` names it in errors.
    pub async fn import_enriched(&self, owner: &str, source: &str, bytes: Bytes) -> Result<Imported, StoreError> {
        let (conversation, _warnings) = read_enriched_bytes(&bytes).map_err(|findings| StoreError::InvalidSource {
            path: source.to_owned(),
            errors: findings.into_iter().filter(|d| d.is_error()).collect(),
        })?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if let Some(existing) = self.conversation(owner, &conversation.conversation_id).await? {
            return match existing.enriched_sha256.as_deref() == Some(sha256.as_str()) {
                true => Ok(Imported::Unchanged(existing)),
                false => Err(StoreError::ConflictingImport(conversation.conversation_id)),
            };
        }
        let key = format!("conversations/{owner}/{}/enriched-{}.json", conversation.conversation_id, &sha256[..12]);
        if !self.blobs.exists(&key).await? {
            self.blobs.put_new(&key, bytes.clone()).await?;
        }
        let record = new_record(owner, &conversation, key, bytes.len() as i64, sha256);
        let mut tx = self.catalogue.begin_as(owner).await?;
        let inserted = sqlx::query(
            "INSERT INTO conversations (id, conversation_id, owner_id, enrichment_status, enriched_file_path, enriched_file_size, \
             enriched_sha256, persona_key, emotional_arc_key, topic_key, scaffolding_snapshot, quality_score, tier, turn_count, \
             pair_count, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)",
        )
        .bind(&record.id)
        .bind(&record.conversation_id)
        .bind(owner)
        .bind(&record.enrichment_status)
        .bind(&record.enriched_file_path)
        .bind(record.enriched_file_size)
        .bind(&record.enriched_sha256)
        .bind(&record.persona_key)
        .bind(&record.emotional_arc_key)
        .bind(&record.topic_key)
        .bind(snapshot(conversation.input_parameters.as_ref()))
        .bind(record.quality_score)
        .bind(&record.tier)
        .bind(record.turn_count)
        .bind(record.pair_count)
        .bind(&record.created_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                Ok(Imported::New(record))
            }
            // A concurrent import of the same conversation won: judge against it.
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                drop(tx);
                let existing = self.conversation(owner, &record.conversation_id).await?.ok_or(StoreError::NotFound)?;
                match existing.enriched_sha256 == record.enriched_sha256 {
                    true => Ok(Imported::Unchanged(existing)),
                    false => Err(StoreError::ConflictingImport(record.conversation_id)),
                }
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The conversation `conversation_id` of `owner`.
    pub async fn conversation(&self, owner: &str, conversation_id: &str) -> Result<Option<ConversationRecord>, StoreError> {
        let mut tx = self.catalogue.begin_as(owner).await?;
        let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE owner_id = $1 AND conversation_id = $2");
        let record = sqlx::query_as(&sql).bind(owner).bind(conversation_id).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// `owner`'s conversations, newest first.
    pub async fn list_conversations(&self, owner: &str, filter: &ConversationFilter, limit: i64, cursor: Option<&str>) -> Result<Page<ConversationRecord>, StoreError> {
        let (after_time, after_id) = crate::files::decode_cursor(cursor)?;
        let q = filter.q.as_deref().map(|q| format!("%{}%", crate::files::escape_like(&q.to_lowercase())));
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE owner_id = $1 \
             AND ($2 IS NULL OR enrichment_status = $2) AND ($3 IS NULL OR persona_key = $3) \
             AND ($4 IS NULL OR emotional_arc_key = $4) AND ($5 IS NULL OR topic_key = $5) \
             AND ($6 IS NULL OR quality_score >= $6) AND ($7 IS NULL OR lower(conversation_id) LIKE $7 ESCAPE '\\') \
             AND ($8 IS NULL OR created_at < $8 OR (created_at = $8 AND id < $9)) \
             ORDER BY created_at DESC, id DESC LIMIT $10"
        );
        let mut tx = self.catalogue.begin_as(owner).await?;
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
        Ok(crate::files::page(&mut items, limit, |c| (c.created_at.clone(), c.id.clone())))
    }
}

fn new_record(owner: &str, conversation: &Conversation, key: String, size: i64, sha256: String) -> ConversationRecord {
    let figures = conversation.figures();
    let keys = conversation.scaffolding.keys();
    ConversationRecord {
        id: new_id(),
        conversation_id: conversation.conversation_id.clone(),
        enrichment_status: "completed".into(),
        enriched_file_path: Some(key),
        enriched_file_size: Some(size),
        enriched_sha256: Some(sha256),
        persona_key: keys.persona,
        emotional_arc_key: keys.emotional_arc,
        topic_key: keys.training_topic,
        quality_score: figures.quality_score.map(lora_files_format::quality::round2),
        tier: None,
        turn_count: figures.turns as i64,
        pair_count: figures.training_pairs as i64,
        created_at: now_text(),
        owner_id: owner.to_owned(),
    }
}
