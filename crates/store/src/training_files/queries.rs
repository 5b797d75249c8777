//! Reads: files, lists, members, versions, and what a change needs to know
//! about the version it starts from.

use std::collections::HashSet;
use std::sync::Arc;

use futures::TryStreamExt;
use lora_files_format::quality::{ConversationFigures, ScaffoldingKeys, Totals};
use lora_files_format::value::Value;

use super::manifest::{Location, Manifest};
use super::segments::Source;
use super::sql::{in_list, IDS_PER_QUERY};
use super::{FileFilter, TrainingFiles};
use crate::error::Ineligible;
use crate::owner_cache::{ListKey, ListedPage};
use crate::paging::{contains_pattern, decode_cursor, page};
use crate::records::{Member, Page, TrainingFile, Version, MEMBER_COLUMNS, TRAINING_FILE_COLUMNS, VERSION_COLUMNS};
use crate::StoreError;


/// A version as a change starts from it: its layout and its running totals.
pub(super) struct VersionState {
    pub manifest: Manifest,
    pub totals: Totals,
}

impl TrainingFiles<'_> {
    /// One of `user`'s files; other users' files are `NotFound`.
    pub async fn get(self, user: &str, file_id: &str) -> Result<TrainingFile, StoreError> {
        let sql = format!("SELECT {TRAINING_FILE_COLUMNS} FROM training_files WHERE id = $1 AND owner_id = $2");
        let mut tx = self.store.catalogue.begin_as(user).await?;
        let file = sqlx::query_as(&sql).bind(file_id).bind(user).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        file.ok_or(StoreError::NotFound)
    }

    pub(super) async fn by_name(self, user: &str, name: &str) -> Result<Option<TrainingFile>, StoreError> {
        let sql = format!("SELECT {TRAINING_FILE_COLUMNS} FROM training_files WHERE owner_id = $1 AND name = $2");
        let mut tx = self.store.catalogue.begin_as(user).await?;
        let file = sqlx::query_as(&sql).bind(user).bind(name).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        Ok(file)
    }

    /// The consultant profile every version of the file states (kept out of
    /// `TrainingFile`: lists would copy it for every row and never show it).
    pub(super) async fn consultant_profile(self, user: &str, file_id: &str) -> Result<Value, StoreError> {
        let mut tx = self.store.catalogue.begin_as(user).await?;
        let row: Option<(String,)> =
            sqlx::query_as("SELECT consultant_profile FROM training_files WHERE id = $1 AND owner_id = $2").bind(file_id).bind(user).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        let (text,) = row.ok_or(StoreError::NotFound)?;
        serde_json::from_str(&text).map_err(|e| StoreError::Internal(format!("the consultant profile of {file_id} is not JSON: {e}")))
    }

    /// `user`'s files, newest first.
    pub async fn list(self, user: &str, filter: &FileFilter, limit: i64, cursor: Option<&str>) -> Result<Arc<ListedPage>, StoreError> {
        crate::refuse_nul("q", filter.q.as_deref())?;
        let status = filter.status.clone().unwrap_or_else(|| "active".into());
        let (after_time, after_id) = decode_cursor(cursor)?;
        let key = ListKey { status: status.clone(), q: filter.q.clone(), limit, cursor: cursor.map(str::to_owned) };
        let generation = match self.shared().lists.get(user, &key) {
            Ok(page) => return Ok(page),
            Err(generation) => generation,
        };
        let sql = format!(
            "SELECT {TRAINING_FILE_COLUMNS} FROM training_files WHERE owner_id = $1 AND ($2 = 'all' OR status = $2) \
             AND ($3 IS NULL OR lower(name) LIKE $3 ESCAPE '\\') \
             AND ($4 IS NULL OR created_at < $4 OR (created_at = $4 AND id < $5)) \
             ORDER BY created_at DESC, id DESC LIMIT $6"
        );
        let mut tx = self.store.catalogue.begin_as(user).await?;
        let mut items: Vec<TrainingFile> = sqlx::query_as(&sql)
            .bind(user)
            .bind(status)
            .bind(filter.q.as_deref().map(contains_pattern))
            .bind(after_time)
            .bind(after_id)
            .bind(limit + 1)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let page = Arc::new(ListedPage::new(page(&mut items, limit, |f| (f.created_at.clone(), f.id.clone()))));
        self.shared().lists.put(user, key, generation, Arc::clone(&page));
        Ok(page)
    }

    /// A page of a file's conversations, in file order.
    pub async fn members(self, user: &str, file_id: &str, limit: i64, cursor: Option<&str>) -> Result<Page<Member>, StoreError> {
        self.get(user, file_id).await?;
        let after: i64 = match cursor {
            None => -1,
            Some(text) => text.parse().map_err(|_| StoreError::invalid("cursor", "not a cursor from this list"))?,
        };
        let sql = format!("SELECT {MEMBER_COLUMNS} FROM training_file_conversations WHERE training_file_id = $1 AND position > $2 ORDER BY position LIMIT $3");
        let mut tx = self.store.catalogue.begin_as(user).await?;
        let mut items: Vec<Member> = sqlx::query_as(&sql).bind(file_id).bind(after).bind(limit + 1).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        let next_cursor = more.then(|| items.last().map(|m| m.position.to_string())).flatten();
        Ok(Page { items, next_cursor })
    }

    /// Every version of a file, oldest first.
    pub async fn versions(self, user: &str, file_id: &str) -> Result<Vec<Version>, StoreError> {
        self.get(user, file_id).await?;
        let sql = format!("SELECT {VERSION_COLUMNS} FROM training_file_versions WHERE training_file_id = $1 ORDER BY version");
        let mut tx = self.store.catalogue.begin_as(user).await?;
        let versions = sqlx::query_as(&sql).bind(file_id).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(versions)
    }

    /// One member of the file.
    pub(super) async fn member(self, user: &str, file_id: &str, conversation_id: &str) -> Result<Option<Member>, StoreError> {
        let sql = format!("SELECT {MEMBER_COLUMNS} FROM training_file_conversations WHERE training_file_id = $1 AND conversation_id = $2");
        let mut tx = self.store.catalogue.begin_as(user).await?;
        let member = sqlx::query_as(&sql).bind(file_id).bind(conversation_id).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        Ok(member)
    }

    /// The members whose ids start with `short`, in file order.
    pub(super) async fn members_with_short(self, user: &str, file_id: &str, short: &str) -> Result<Vec<Member>, StoreError> {
        let sql = format!("SELECT {MEMBER_COLUMNS} FROM training_file_conversations WHERE training_file_id = $1 AND short_id = $2 ORDER BY position");
        let mut tx = self.store.catalogue.begin_as(user).await?;
        let members = sqlx::query_as(&sql).bind(file_id).bind(short).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(members)
    }

    /// Which of `values` some member of the file has in `column`
    /// (`conversation_id` or `short_id`).
    pub(super) async fn present(self, user: &str, file_id: &str, column: &'static str, values: &[String]) -> Result<HashSet<String>, StoreError> {
        let mut found = HashSet::new();
        let mut tx = self.store.catalogue.begin_as(user).await?;
        for chunk in values.chunks(IDS_PER_QUERY) {
            let sql = format!("SELECT {column} FROM training_file_conversations WHERE training_file_id = $1 AND {column} IN ({})", in_list(2, chunk.len()));
            let mut query = sqlx::query_as::<_, (String,)>(&sql).bind(file_id);
            for value in chunk {
                query = query.bind(value);
            }
            found.extend(query.fetch_all(&mut *tx).await?.into_iter().map(|(value,)| value));
        }
        tx.commit().await?;
        Ok(found)
    }

    /// The conversation a member was made from, as it is now.
    pub(super) async fn source_of_member(self, user: &str, file_id: &str, conversation_id: &str) -> Result<Source, StoreError> {
        let mut tx = self.store.catalogue.begin_as(user).await?;
        let row: Option<(String, String, Option<String>, Option<f64>)> = sqlx::query_as(
            "SELECT c.id, c.conversation_id, c.enriched_file_path, c.quality_score FROM conversations c \
             JOIN training_file_conversations m ON m.conversation_row_id = c.id WHERE m.training_file_id = $1 AND m.conversation_id = $2",
        )
        .bind(file_id)
        .bind(conversation_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        match row {
            Some((row_id, conversation_id, Some(key), score)) => Ok(Source { row_id, conversation_id, key, score }),
            _ => Err(StoreError::Internal(format!("the conversation {conversation_id} of {file_id} has no enriched file"))),
        }
    }

    /// The position after the file's last member.
    pub(super) async fn next_position(self, user: &str, file_id: &str) -> Result<i64, StoreError> {
        let mut tx = self.store.catalogue.begin_as(user).await?;
        let (last,): (Option<i64>,) = sqlx::query_as("SELECT MAX(position) FROM training_file_conversations WHERE training_file_id = $1").bind(file_id).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(last.map_or(0, |p| p + 1))
    }

    /// The layout and totals of `file`'s current version (empty at version 0).
    /// Versions written before manifests are read from the members.
    pub(super) async fn version_state(self, user: &str, file: &TrainingFile) -> Result<VersionState, StoreError> {
        if file.version == 0 {
            return Ok(VersionState { manifest: Manifest::default(), totals: Totals::default() });
        }
        let mut tx = self.store.catalogue.begin_as(user).await?;
        let row: Option<(Option<String>, Option<String>)> =
            sqlx::query_as("SELECT manifest, totals FROM training_file_versions WHERE training_file_id = $1 AND version = $2")
                .bind(&file.id)
                .bind(file.version)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        let (manifest, totals) = row.ok_or_else(|| StoreError::Internal(format!("version {} of {} has no row", file.version, file.id)))?;
        let manifest = match manifest {
            Some(text) => Manifest::from_text(&text)?,
            None => self.layout_of_members(user, &file.id).await?,
        };
        let totals = match totals.as_deref().map(serde_json::from_str::<Value>) {
            Some(Ok(value)) => Totals::from_value(&value).ok_or_else(|| StoreError::Internal(format!("the totals of {} are not readable", file.id)))?,
            _ => self.recount(user, &file.id, None).await?,
        };
        Ok(VersionState { manifest, totals })
    }

    /// The body of a version written before manifests, from its members in order.
    async fn layout_of_members(self, user: &str, file_id: &str) -> Result<Manifest, StoreError> {
        let sql = format!("SELECT {MEMBER_COLUMNS} FROM training_file_conversations WHERE training_file_id = $1 ORDER BY position");
        let mut tx = self.store.catalogue.begin_as(user).await?;
        let mut manifest = Manifest::default();
        let mut rows = sqlx::query_as::<_, Member>(&sql).bind(file_id).fetch(&mut *tx);
        while let Some(member) = rows.try_next().await? {
            let (json, jsonl) = locations(&member);
            manifest.push_member(&json, &jsonl);
        }
        drop(rows);
        tx.commit().await?;
        Ok(manifest)
    }

    /// The file's figures recounted from its members in order, leaving out
    /// `except` (streamed: memory does not grow with the file).
    pub(super) async fn recount(self, user: &str, file_id: &str, except: Option<&str>) -> Result<Totals, StoreError> {
        let mut tx = self.store.catalogue.begin_as(user).await?;
        let mut totals = Totals::default();
        let mut rows = sqlx::query_as::<_, (i64, i64, i64, Option<f64>, Option<String>, Option<String>, Option<String>)>(
            "SELECT turns, pairs, human_reviewed_pairs, quality_score, persona_key, emotional_arc_key, topic_key \
             FROM training_file_conversations WHERE training_file_id = $1 AND conversation_id <> $2 ORDER BY position",
        )
        .bind(file_id)
        .bind(except.unwrap_or(""))
        .fetch(&mut *tx);
        while let Some((turns, pairs, human_reviewed, score, persona, arc, topic)) = rows.try_next().await? {
            totals.add(&ConversationFigures {
                turns: turns as usize,
                training_pairs: pairs as usize,
                human_reviewed_pairs: human_reviewed as usize,
                quality_score: score,
                scaffolding: ScaffoldingKeys { persona, emotional_arc: arc, training_topic: topic },
            });
        }
        drop(rows);
        tx.commit().await?;
        Ok(totals)
    }

    /// For each id in order, the conversation it names; every id that cannot
    /// be used is reported with its reason.
    pub(super) async fn eligible(self, user: &str, ids: &[String]) -> Result<Vec<Source>, StoreError> {
        type Row = (String, String, String, Option<String>, Option<f64>);
        let mut usable = Vec::with_capacity(ids.len());
        let mut refused = Vec::new();
        let mut tx = self.store.catalogue.begin_as(user).await?;
        // One chunk's rows at a time: a create of 100 000 holds its sources, not every row twice.
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let sql = format!(
                "SELECT id, conversation_id, enrichment_status, enriched_file_path, quality_score FROM conversations \
                 WHERE owner_id = $1 AND conversation_id IN ({})",
                in_list(2, chunk.len())
            );
            let mut query = sqlx::query_as::<_, Row>(&sql).bind(user);
            for id in chunk {
                query = query.bind(id);
            }
            let mut found: std::collections::HashMap<String, Row> = query.fetch_all(&mut *tx).await?.into_iter().map(|row| (row.1.clone(), row)).collect();
            for id in chunk {
                match found.remove(id) {
                    None => refused.push(Ineligible { conversation_id: id.clone(), reason: "not_found", enrichment_status: None }),
                    Some((_, _, status, _, _)) if status != "completed" => {
                        refused.push(Ineligible { conversation_id: id.clone(), reason: "not_completed", enrichment_status: Some(status) })
                    }
                    Some((_, _, _, None, _)) => refused.push(Ineligible { conversation_id: id.clone(), reason: "no_enriched_file", enrichment_status: None }),
                    Some((row_id, conversation_id, _, Some(key), score)) => usable.push(Source { row_id, conversation_id, key, score }),
                }
            }
        }
        tx.commit().await?;
        if refused.is_empty() { Ok(usable) } else { Err(StoreError::Ineligible(refused)) }
    }
}

/// Where a member's bytes of each format are stored.
pub(super) fn locations(member: &Member) -> (Location, Location) {
    let json = Location {
        key: member.fragment_json_path.clone(),
        offset: member.fragment_json_offset as u64,
        length: member.fragment_json_size as u64,
        framed: member.fragment_json_framed == 1,
    };
    let jsonl = Location { key: member.fragment_jsonl_path.clone(), offset: member.fragment_jsonl_offset as u64, length: member.fragment_jsonl_size as u64, framed: false };
    (json, jsonl)
}
