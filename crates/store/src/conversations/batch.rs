//! Importing many conversation files at once, at the offline build's pace:
//! enriched files are read once each on blocking threads, their objects
//! written concurrently and their rows inserted in one transaction. Anything
//! the fast path does not take — raw or parsed output, a broken file, named
//! scaffolding or ids, an id already seen in the batch, a race with another
//! importer — goes through [`Conversations::import`] one by one, with the
//! same answers and the same guarantees as a single import.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use lora_files_format::input::read_enriched_bytes;
use sha2::{Digest, Sha256};

use super::{judge_reimport, own_key, snapshot, Conversations, ImportRequest, Imported};
use crate::catalogue::Transaction;
use crate::records::{ConversationRecord, CONVERSATION_COLUMNS};
use crate::scaffolding::ScaffoldingKeys;
use crate::training_files::sql::{in_list, placeholders, rows_per_insert, IDS_PER_QUERY};
use crate::{new_id, now_text, StoreError};

/// Object writes in flight at once.
const CONCURRENT_PUTS: usize = 16;

/// An enriched conversation file, read and checked, as it will be stored.
pub(super) struct Enriched {
    pub conversation_id: String,
    pub key: String,
    pub sha256: String,
    pub bytes: Bytes,
    keys: ScaffoldingKeys,
    snapshot: Option<String>,
    quality_score: Option<f64>,
    turns: i64,
    pairs: i64,
}

impl Enriched {
    /// Reads `bytes` as an enriched v4 file of `owner`'s; `source` names it in errors.
    pub fn read(owner: &str, source: &str, bytes: Bytes) -> Result<Self, StoreError> {
        let (conversation, _warnings) = read_enriched_bytes(&bytes).map_err(|findings| StoreError::InvalidSource {
            path: source.to_owned(),
            errors: findings.into_iter().filter(|d| d.is_error()).collect(),
        })?;
        let keys = conversation.scaffolding.keys();
        crate::refuse_nul_keys(&keys, ["persona_key", "emotional_arc_key", "training_topic_key"])?;
        let conversation_id = crate::ids::canonical_or_same(&conversation.conversation_id);
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let figures = conversation.figures();
        Ok(Self {
            key: own_key(owner, &conversation_id, "enriched", &sha256),
            conversation_id,
            sha256,
            bytes,
            keys,
            snapshot: snapshot(conversation.input_parameters.as_ref(), None),
            quality_score: figures.quality_score.map(lora_files_format::quality::round2),
            turns: figures.turns as i64,
            pairs: figures.training_pairs as i64,
        })
    }
}

/// Inserts the rows of `conversations`, status `completed`, inside `tx`.
/// They share one `created_at`; their row ids ascend in the order given, so
/// the newest-first lists (by `created_at`, then id) keep the import order.
pub(super) async fn insert_enriched(tx: &mut Transaction, owner: &str, conversations: &[Enriched], now: &str) -> Result<(), sqlx::Error> {
    const COLUMNS: usize = 20;
    let mut row_ids: Vec<String> = conversations.iter().map(|_| new_id()).collect();
    row_ids.sort();
    let mut row_ids = row_ids.into_iter();
    for chunk in conversations.chunks(rows_per_insert(COLUMNS)) {
        let sql = format!(
            "INSERT INTO conversations (id, conversation_id, owner_id, enrichment_status, enriched_file_path, enriched_file_size, \
             enriched_sha256, persona_key, emotional_arc_key, topic_key, scaffolding_snapshot, quality_score, turn_count, \
             pair_count, created_at, updated_at, source_path, source_sha256, source_stage, enriched_at) VALUES {}",
            placeholders(chunk.len(), COLUMNS)
        );
        let mut query = sqlx::query(&sql);
        for c in chunk {
            query = query
                .bind(row_ids.next())
                .bind(&c.conversation_id)
                .bind(owner)
                .bind("completed")
                .bind(&c.key)
                .bind(c.bytes.len() as i64)
                .bind(&c.sha256)
                .bind(&c.keys.persona)
                .bind(&c.keys.emotional_arc)
                .bind(&c.keys.training_topic)
                .bind(&c.snapshot)
                .bind(c.quality_score)
                .bind(c.turns)
                .bind(c.pairs)
                .bind(now)
                .bind(now)
                .bind(&c.key)
                .bind(&c.sha256)
                .bind("enriched")
                .bind(now);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Conversations<'_> {
    /// Imports many conversation files for `owner`: one answer per request,
    /// in order, each what [`Conversations::import`] would give for it.
    pub async fn import_many(self, owner: &str, requests: Vec<ImportRequest>) -> Vec<Result<Imported, StoreError>> {
        let mut answers: Vec<Option<Result<Imported, StoreError>>> = requests.iter().map(|_| None).collect();
        let read = read_all(owner, &requests).await;
        let mut fast = Vec::new();
        let mut seen = HashSet::new();
        for (index, enriched) in read.into_iter().enumerate() {
            if let Some(enriched) = enriched.filter(|e| seen.insert(e.conversation_id.clone())) {
                fast.push((index, enriched));
            }
        }
        if let Err(error) = self.import_fast(owner, fast, &mut answers).await {
            tracing::debug!(%error, "a batched import fell back to one import per file");
        }
        let mut results = Vec::with_capacity(requests.len());
        for (request, answer) in requests.into_iter().zip(answers) {
            results.push(match answer {
                Some(answer) => answer,
                None => self.import(owner, request).await,
            });
        }
        results
    }

    /// The fast path: settles the answers of the conversations it stores
    /// (and of those imported before); on any error it leaves the rest
    /// unanswered for the one-by-one path, which judges each one again.
    async fn import_fast(self, owner: &str, fast: Vec<(usize, Enriched)>, answers: &mut [Option<Result<Imported, StoreError>>]) -> Result<(), StoreError> {
        let ids: Vec<String> = fast.iter().map(|(_, e)| e.conversation_id.clone()).collect();
        let mut existing = self.by_ids(owner, &ids).await?;
        let mut new = Vec::with_capacity(fast.len());
        for (index, enriched) in fast {
            match existing.remove(&enriched.conversation_id) {
                Some(record) => answers[index] = Some(judge_reimport(record, &enriched.sha256)),
                None => new.push((index, enriched)),
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        let (indexes, conversations): (Vec<usize>, Vec<Enriched>) = new.into_iter().unzip();
        let stored = async {
            futures::stream::iter(conversations.iter().map(|enriched| self.store.blobs.put_new(&enriched.key, enriched.bytes.clone())))
                .buffer_unordered(CONCURRENT_PUTS)
                .try_collect::<Vec<_>>()
                .await?;
            let mut tx = self.store.catalogue.begin_as(owner).await?;
            insert_enriched(&mut tx, owner, &conversations, &now_text()).await?;
            tx.commit().await.map_err(StoreError::from)
        };
        if let Err(error) = stored.await {
            self.forget_unnamed(owner, &conversations).await;
            return Err(error);
        }
        let ids: Vec<String> = conversations.iter().map(|e| e.conversation_id.clone()).collect();
        let mut stored = self.by_ids(owner, &ids).await?;
        for (index, id) in indexes.into_iter().zip(ids) {
            answers[index] = Some(stored.remove(&id).map(Imported::New).ok_or(StoreError::NotFound));
        }
        Ok(())
    }

    /// Deletes the objects of a fast path that failed, but for any a row
    /// names (a commit whose answer was lost may have landed); the
    /// one-by-one path stores each file again under a key of its own.
    async fn forget_unnamed(self, owner: &str, conversations: &[Enriched]) {
        let ids: Vec<String> = conversations.iter().map(|e| e.conversation_id.clone()).collect();
        let rows = match self.by_ids(owner, &ids).await {
            Ok(rows) => rows,
            Err(error) => return tracing::warn!(%error, "could not tell which objects a failed batch left; `lora-files doctor --repair` will"),
        };
        for enriched in conversations {
            let named = rows.get(&enriched.conversation_id).is_some_and(|row| row.enriched_file_path.as_deref() == Some(enriched.key.as_str()));
            if !named {
                if let Err(error) = self.store.blobs.delete(&enriched.key).await {
                    tracing::warn!(key = %enriched.key, %error, "could not delete a failed batch's object; `lora-files doctor --repair` will");
                }
            }
        }
    }

    /// `owner`'s conversations among `ids`, by id.
    async fn by_ids(self, owner: &str, ids: &[String]) -> Result<HashMap<String, ConversationRecord>, StoreError> {
        let mut found = HashMap::with_capacity(ids.len());
        let mut tx = self.store.catalogue.begin_as(owner).await?;
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE owner_id = $1 AND conversation_id IN ({})", in_list(2, chunk.len()));
            let mut query = sqlx::query_as::<_, ConversationRecord>(&sql).bind(owner);
            for id in chunk {
                query = query.bind(id);
            }
            found.extend(query.fetch_all(&mut *tx).await?.into_iter().map(|record| (record.conversation_id.clone(), record)));
        }
        tx.commit().await?;
        Ok(found)
    }
}

/// Each request the fast path may take, read as an enriched file on blocking
/// threads; `None` for the rest (not enriched, broken, or with named
/// scaffolding or id, which the one-by-one path checks).
async fn read_all(owner: &str, requests: &[ImportRequest]) -> Vec<Option<Enriched>> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let per_worker = requests.len().div_ceil(workers).max(1);
    let tasks: Vec<_> = requests
        .chunks(per_worker)
        .map(|chunk| {
            let owner = owner.to_owned();
            let work: Vec<(String, Bytes, bool)> = chunk
                .iter()
                .map(|r| (r.source.clone(), r.bytes.clone(), r.scaffolding == ScaffoldingKeys::default() && r.conversation_id.is_none()))
                .collect();
            let len = work.len();
            let task = tokio::task::spawn_blocking(move || {
                work.into_iter().map(|(source, bytes, takes)| if takes { Enriched::read(&owner, &source, bytes).ok() } else { None }).collect::<Vec<_>>()
            });
            (len, task)
        })
        .collect();
    let mut read = Vec::with_capacity(requests.len());
    for (len, task) in tasks {
        match task.await {
            Ok(chunk) => read.extend(chunk),
            // A reader that panicked leaves its files to the one-by-one path.
            Err(_) => read.extend((0..len).map(|_| None)),
        }
    }
    read
}
