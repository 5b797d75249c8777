//! The TrainingFileService: training files as sequences of immutable versions.
//!
//! Every change writes new objects first — each new conversation's rendered
//! fragment, then the new version's full JSON and JSONL assembled from the
//! stored fragments — and then commits the catalogue in one transaction that
//! only succeeds if the file is still at the version the change started from
//! (otherwise the change starts again on the newer version). A crash or a race
//! therefore never loses or tears a version; it can leave unreferenced
//! objects, which `doctor --repair` removes. An add reads the sources of the
//! conversations it adds and nothing else.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use futures::StreamExt;
use lora_files_format::value::Value;

use lora_files_format::input::read_enriched_bytes;
use lora_files_format::model::Conversation;
use lora_files_format::quality::{ConversationFigures, ScaffoldingKeys, Totals};
use lora_files_format::render::{self, FileHeader, Fragment};

use crate::blobs::StoredObject;
use crate::catalogue::Transaction;
use crate::error::Ineligible;
use crate::owner_cache::{ListKey, ListedPage};
use crate::records::{Member, Page, TrainingFile, Version, MEMBER_COLUMNS, TRAINING_FILE_COLUMNS, VERSION_COLUMNS};
use crate::{new_id, now_text, token, Store, StoreError};

/// How often a change starts again when other changes keep landing first.
const MAX_ATTEMPTS: usize = 16;

/// How many stored fragments a version write reads ahead.
const FETCH_AHEAD: usize = 16;

/// Longest training-file name, in characters.
pub const MAX_NAME_CHARS: usize = 255;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DownloadFormat {
    Json,
    Jsonl,
}

impl DownloadFormat {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "json" => Some(Self::Json),
            "jsonl" => Some(Self::Jsonl),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Jsonl => "jsonl",
        }
    }
}

/// What a download serves: one version's object and the name to save it as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadTarget {
    pub key: String,
    pub filename: String,
    pub size: u64,
    pub content_type: &'static str,
    pub version: i64,
}

/// A change to a file's metadata (`PATCH`).
#[derive(Clone, Debug, Default)]
pub struct FileUpdate {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub status: Option<String>,
}

/// List filters: `status` is a status or `all` (default `active`); `q` a name substring.
#[derive(Clone, Debug, Default)]
pub struct FileFilter {
    pub status: Option<String>,
    pub q: Option<String>,
}

/// Changes to one file made by this process queue on its lock instead of
/// racing (a lost race costs a whole version's writes). Several processes on
/// one catalogue are still kept apart by the version check at commit.
#[derive(Clone, Default)]
pub(crate) struct FileLocks(Arc<Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>>);

impl FileLocks {
    async fn lock(&self, file_id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.0.lock().expect("no panics while holding the lock");
            locks.retain(|_, weak| weak.strong_count() > 0);
            match locks.get(file_id).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(file_id.to_owned(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

/// A pause before trying a change again, longer each time, jittered so
/// competing processes spread out.
async fn back_off(attempt: usize) {
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 20;
    tokio::time::sleep(std::time::Duration::from_millis(10 * attempt as u64 + jitter)).await;
}

/// A version with the name of its file, for downloads.
#[derive(sqlx::FromRow)]
struct VersionOfFile {
    #[sqlx(flatten)]
    version: Version,
    name: String,
}

/// A change that makes a new version of a file.
enum Change<'a> {
    Add(&'a [String]),
    Remove(&'a str),
}

impl Change<'_> {
    /// As `training_file_versions.change` records it.
    fn kind(&self) -> &'static str {
        match self {
            Self::Add(_) => "add",
            Self::Remove(_) => "remove",
        }
    }
}

/// How one attempt at a change ended.
enum Attempt {
    Committed,
    /// Another change landed first; this one starts again.
    Superseded,
}

/// A member about to be added: its rendered fragment, stored.
struct NewMember {
    row_id: String,
    member: Member,
}

impl Store {
    /// Creates a training file from `conversation_ids` (in that order).
    pub async fn create_training_file(&self, user: &str, name: &str, description: Option<&str>, conversation_ids: &[String]) -> Result<TrainingFile, StoreError> {
        let name = check_name(name)?;
        check_ids(conversation_ids)?;
        if self.file_by_name(user, &name).await?.is_some() {
            return Err(StoreError::NameTaken(name));
        }
        let sources = self.eligible(user, conversation_ids).await?;
        let file_id = new_id();
        let now = now_text();
        let mut written = Vec::new();
        let result = async {
            let mut taken = HashSet::new();
            let mut members = Vec::new();
            let mut first: Option<Conversation> = None;
            for (position, (row_id, record_score, key)) in sources.iter().enumerate() {
                let conversation = self.load_source(key, *record_score).await?;
                let member = self.store_fragment(&file_id, &conversation, position as i64, &mut taken, user, &now, &mut written).await?;
                members.push(NewMember { row_id: row_id.clone(), member });
                if first.is_none() {
                    first = Some(conversation);
                }
            }
            let first = first.expect("at least one conversation (checked above)");
            let profile = first.consultant_profile.clone().unwrap_or(Value::Object(Default::default()));
            let vertical = self
                .config
                .default_vertical
                .clone()
                .or(first.vertical.clone())
                .ok_or_else(|| StoreError::invalid("conversation_ids", "the conversations state no vertical and none is configured"))?;
            let file = TrainingFile {
                id: file_id.clone(),
                name: name.clone(),
                description: description.map(str::to_owned),
                json_file_path: String::new(),
                jsonl_file_path: String::new(),
                storage_bucket: "training-files".into(),
                conversation_count: 0,
                total_training_pairs: 0,
                total_turns: 0,
                json_file_size: None,
                jsonl_file_size: None,
                avg_quality_score: None,
                min_quality_score: None,
                max_quality_score: None,
                human_reviewed_count: 0,
                scaffolding_distribution: crate::records::JsonText(serde_json::Value::Object(Default::default())),
                status: "active".into(),
                last_updated_at: Some(now.clone()),
                created_by: Some(user.to_owned()),
                created_at: now.clone(),
                updated_at: now.clone(),
                version: 0,
                owner_id: user.to_owned(),
                vertical,
                target_model: self.config.target_model.clone(),
            };
            let all: Vec<Member> = members.iter().map(|m| m.member.clone()).collect();
            let (json, jsonl, totals) = self.write_version(&file, &profile, 1, &now, &all, &mut written).await?;
            self.run_before_commit()?;
            let mut tx = self.catalogue.begin_as(user).await?;
            insert_file(&mut tx, &file, &profile).await.map_err(|e| StoreError::from_constraint(e, &name))?;
            if !advance_file(&mut tx, &file, 1, &now, &json, &jsonl, &totals).await? {
                return Err(StoreError::Internal(format!("training file {file_id} was not at version 0 inside its own create")));
            }
            insert_members(&mut tx, &file_id, user, &members).await?;
            insert_version(&mut tx, &file_id, user, 1, "create", &now, &json, &jsonl, &totals).await?;
            tx.commit().await.map_err(|e| StoreError::from_constraint(e, &name))?;
            self.files_changed(user);
            Ok(())
        }
        .await;
        if let Err(error) = result {
            self.delete_objects(&written).await;
            return Err(error);
        }
        self.training_file(user, &file_id).await
    }

    /// Adds conversations to a file as a new version; refuses the whole
    /// request when any of them is already in the file.
    pub async fn add_conversations(&self, user: &str, file_id: &str, conversation_ids: &[String]) -> Result<TrainingFile, StoreError> {
        check_ids(conversation_ids)?;
        self.change_file(user, file_id, Change::Add(conversation_ids)).await
    }

    /// A new version without `conversation_id`.
    pub async fn remove_conversation(&self, user: &str, file_id: &str, conversation_id: &str) -> Result<TrainingFile, StoreError> {
        self.change_file(user, file_id, Change::Remove(conversation_id)).await
    }

    /// Runs a change to an active file until it lands. Changes to one file in
    /// this process queue on its lock; an attempt that another process beat
    /// to the commit deletes its objects and starts again on the newer version.
    async fn change_file(&self, user: &str, file_id: &str, change: Change<'_>) -> Result<TrainingFile, StoreError> {
        let _queued = self.file_locks.lock(file_id).await;
        for round in 0..MAX_ATTEMPTS {
            if round > 0 {
                back_off(round).await;
            }
            let file = self.training_file(user, file_id).await?;
            if file.status != "active" {
                return Err(StoreError::NotActive(file.status));
            }
            let members = self.all_members(user, file_id).await?;
            let mut written = Vec::new();
            match self.attempt_change(user, &file, members, &change, &mut written).await {
                Ok(Attempt::Committed) => return self.training_file(user, &file.id).await,
                Ok(Attempt::Superseded) => self.delete_objects(&written).await,
                // Another process added the same conversation first: the next round says so.
                Err(StoreError::Database(sqlx::Error::Database(db))) if db.is_unique_violation() => self.delete_objects(&written).await,
                Err(error) => {
                    self.delete_objects(&written).await;
                    return Err(error);
                }
            }
        }
        Err(StoreError::Contention)
    }

    /// One attempt: checks `change` against the file as it is now, writes the
    /// new version's objects (their keys go to `written`), then commits only
    /// if the file is still at the version read.
    async fn attempt_change(&self, user: &str, file: &TrainingFile, members: Vec<Member>, change: &Change<'_>, written: &mut Vec<String>) -> Result<Attempt, StoreError> {
        let now = now_text();
        let (all, added, removed) = match *change {
            Change::Add(ids) => {
                let present: HashSet<&str> = members.iter().map(|m| m.conversation_id.as_str()).collect();
                let already: Vec<String> = ids.iter().filter(|id| present.contains(id.as_str())).cloned().collect();
                if !already.is_empty() {
                    return Err(StoreError::AlreadyInFile(already));
                }
                let sources = self.eligible(user, ids).await?;
                let mut taken: HashSet<String> = members.iter().map(|m| short_of(&m.conversation_id)).collect();
                let next_position = members.last().map_or(0, |m| m.position + 1);
                let mut added = Vec::new();
                for (i, (row_id, score, key)) in sources.iter().enumerate() {
                    let conversation = self.load_source(key, *score).await?;
                    let member = self.store_fragment(&file.id, &conversation, next_position + i as i64, &mut taken, user, &now, written).await?;
                    added.push(NewMember { row_id: row_id.clone(), member });
                }
                let all: Vec<Member> = members.into_iter().chain(added.iter().map(|m| m.member.clone())).collect();
                (all, added, None)
            }
            Change::Remove(conversation_id) => {
                let Some(removed) = members.iter().find(|m| m.conversation_id == conversation_id).cloned() else {
                    return Err(StoreError::NotFound);
                };
                if members.len() == 1 {
                    return Err(StoreError::invalid("conversation_id", "a training file keeps at least one conversation; delete the file instead"));
                }
                let kept: Vec<Member> = members.into_iter().filter(|m| m.conversation_id != conversation_id).collect();
                (kept, Vec::new(), Some(removed))
            }
        };
        let version = file.version + 1;
        let profile = self.consultant_profile(user, &file.id).await?;
        let (json, jsonl, totals) = self.write_version(file, &profile, version, &now, &all, written).await?;
        self.run_before_commit()?;
        let mut tx = self.catalogue.begin_as(user).await?;
        if !advance_file(&mut tx, file, version, &now, &json, &jsonl, &totals).await? {
            return Ok(Attempt::Superseded);
        }
        insert_members(&mut tx, &file.id, user, &added).await?;
        if let Some(removed) = &removed {
            sqlx::query("DELETE FROM training_file_conversations WHERE training_file_id = $1 AND conversation_id = $2")
                .bind(&file.id)
                .bind(&removed.conversation_id)
                .execute(&mut *tx)
                .await?;
        }
        insert_version(&mut tx, &file.id, user, version, change.kind(), &now, &json, &jsonl, &totals).await?;
        tx.commit().await?;
        self.files_changed(user);
        if let Some(removed) = removed {
            self.delete_objects(&[removed.fragment_json_path, removed.fragment_jsonl_path]).await;
        }
        Ok(Attempt::Committed)
    }

    /// One of `user`'s files; other users' files are `NotFound`.
    pub async fn training_file(&self, user: &str, file_id: &str) -> Result<TrainingFile, StoreError> {
        let sql = format!("SELECT {TRAINING_FILE_COLUMNS} FROM training_files WHERE id = $1 AND owner_id = $2");
        let mut tx = self.catalogue.begin_as(user).await?;
        let file = sqlx::query_as(&sql).bind(file_id).bind(user).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        file.ok_or(StoreError::NotFound)
    }

    /// The consultant profile every version of the file states (kept out of
    /// `TrainingFile`: lists would copy it for every row and never show it).
    async fn consultant_profile(&self, user: &str, file_id: &str) -> Result<Value, StoreError> {
        let mut tx = self.catalogue.begin_as(user).await?;
        let row: Option<(String,)> = sqlx::query_as("SELECT consultant_profile FROM training_files WHERE id = $1 AND owner_id = $2").bind(file_id).bind(user).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        let (text,) = row.ok_or(StoreError::NotFound)?;
        serde_json::from_str(&text).map_err(|e| StoreError::Internal(format!("the consultant profile of {file_id} is not JSON: {e}")))
    }

    async fn file_by_name(&self, user: &str, name: &str) -> Result<Option<TrainingFile>, StoreError> {
        let sql = format!("SELECT {TRAINING_FILE_COLUMNS} FROM training_files WHERE owner_id = $1 AND name = $2");
        let mut tx = self.catalogue.begin_as(user).await?;
        let file = sqlx::query_as(&sql).bind(user).bind(name).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        Ok(file)
    }

    /// `user`'s files, newest first.
    pub async fn list_training_files(&self, user: &str, filter: &FileFilter, limit: i64, cursor: Option<&str>) -> Result<Arc<ListedPage>, StoreError> {
        let status = filter.status.clone().unwrap_or_else(|| "active".into());
        let (after_time, after_id) = decode_cursor(cursor)?;
        let key = ListKey { status: status.clone(), q: filter.q.clone(), limit, cursor: cursor.map(str::to_owned) };
        let generation = match self.file_lists.get(user, &key) {
            Ok(page) => return Ok(page),
            Err(generation) => generation,
        };
        let q = filter.q.as_deref().map(|q| format!("%{}%", escape_like(&q.to_lowercase())));
        let sql = format!(
            "SELECT {TRAINING_FILE_COLUMNS} FROM training_files WHERE owner_id = $1 AND ($2 = 'all' OR status = $2) \
             AND ($3 IS NULL OR lower(name) LIKE $3 ESCAPE '\\') \
             AND ($4 IS NULL OR created_at < $4 OR (created_at = $4 AND id < $5)) \
             ORDER BY created_at DESC, id DESC LIMIT $6"
        );
        let mut tx = self.catalogue.begin_as(user).await?;
        let mut items: Vec<TrainingFile> = sqlx::query_as(&sql)
            .bind(user)
            .bind(status)
            .bind(q)
            .bind(after_time)
            .bind(after_id)
            .bind(limit + 1)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let page = Arc::new(ListedPage::new(page(&mut items, limit, |f| (f.created_at.clone(), f.id.clone()))));
        self.file_lists.put(user, key, generation, Arc::clone(&page));
        Ok(page)
    }

    /// A page of a file's conversations, in file order.
    pub async fn members(&self, user: &str, file_id: &str, limit: i64, cursor: Option<&str>) -> Result<Page<Member>, StoreError> {
        self.training_file(user, file_id).await?;
        let after: i64 = match cursor {
            None => -1,
            Some(text) => text.parse().map_err(|_| StoreError::invalid("cursor", "not a cursor from this list"))?,
        };
        let sql = format!("SELECT {MEMBER_COLUMNS} FROM training_file_conversations WHERE training_file_id = $1 AND position > $2 ORDER BY position LIMIT $3");
        let mut tx = self.catalogue.begin_as(user).await?;
        let mut items: Vec<Member> = sqlx::query_as(&sql).bind(file_id).bind(after).bind(limit + 1).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        let next_cursor = more.then(|| items.last().map(|m| m.position.to_string())).flatten();
        Ok(Page { items, next_cursor })
    }

    async fn all_members(&self, user: &str, file_id: &str) -> Result<Vec<Member>, StoreError> {
        let sql = format!("SELECT {MEMBER_COLUMNS} FROM training_file_conversations WHERE training_file_id = $1 ORDER BY position");
        let mut tx = self.catalogue.begin_as(user).await?;
        let members = sqlx::query_as(&sql).bind(file_id).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(members)
    }

    /// Every version of a file, oldest first.
    pub async fn versions(&self, user: &str, file_id: &str) -> Result<Vec<Version>, StoreError> {
        self.training_file(user, file_id).await?;
        let sql = format!("SELECT {VERSION_COLUMNS} FROM training_file_versions WHERE training_file_id = $1 ORDER BY version");
        let mut tx = self.catalogue.begin_as(user).await?;
        let versions = sqlx::query_as(&sql).bind(file_id).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(versions)
    }

    /// Renames, describes, archives or unarchives a file (no new version).
    pub async fn update_training_file(&self, user: &str, file_id: &str, update: &FileUpdate) -> Result<TrainingFile, StoreError> {
        let file = self.training_file(user, file_id).await?;
        let name = match &update.name {
            Some(name) => check_name(name)?,
            None => file.name.clone(),
        };
        let description = update.description.clone().unwrap_or(file.description.clone());
        let status = match update.status.as_deref() {
            None => file.status.clone(),
            Some(status @ ("active" | "archived")) => status.to_owned(),
            Some(other) => return Err(StoreError::invalid("status", format!("must be active or archived, not {other:?}"))),
        };
        let mut tx = self.catalogue.begin_as(user).await?;
        sqlx::query("UPDATE training_files SET name = $1, description = $2, status = $3, updated_at = $4 WHERE id = $5 AND owner_id = $6")
            .bind(&name)
            .bind(&description)
            .bind(&status)
            .bind(now_text())
            .bind(file_id)
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::from_constraint(e, &name))?;
        tx.commit().await.map_err(|e| StoreError::from_constraint(e, &name))?;
        self.files_changed(user);
        self.training_file(user, file_id).await
    }

    /// Deletes a file, its history and its objects.
    pub async fn delete_training_file(&self, user: &str, file_id: &str) -> Result<(), StoreError> {
        self.training_file(user, file_id).await?;
        let mut tx = self.catalogue.begin_as(user).await?;
        sqlx::query("DELETE FROM training_files WHERE id = $1 AND owner_id = $2").bind(file_id).bind(user).execute(&mut *tx).await?;
        tx.commit().await?;
        self.files_changed(user);
        // The catalogue no longer points at these; a failure here leaves orphans for `doctor --repair`.
        if let Ok(objects) = self.blobs.list(&format!("training-files/{file_id}")).await {
            self.delete_objects(&objects.into_iter().map(|(key, _)| key).collect::<Vec<_>>()).await;
        }
        Ok(())
    }

    /// The object of `format` for the current version, or a pinned one.
    pub async fn download_target(&self, user: &str, file_id: &str, format: DownloadFormat, version: Option<i64>) -> Result<DownloadTarget, StoreError> {
        let key = (file_id.to_owned(), format, version);
        let generation = match self.download_targets.get(user, &key) {
            Ok(target) => return Ok(target),
            Err(generation) => generation,
        };
        let target = self.read_download_target(user, file_id, format, version).await?;
        self.download_targets.put(user, key, generation, target.clone());
        Ok(target)
    }

    async fn read_download_target(&self, user: &str, file_id: &str, format: DownloadFormat, version: Option<i64>) -> Result<DownloadTarget, StoreError> {
        // One query in the usual case; only a miss asks which part was missing.
        let mut tx = self.catalogue.begin_as(user).await?;
        let found: Option<VersionOfFile> = sqlx::query_as(
            "SELECT v.version, v.created_at, v.created_by, v.change, v.conversation_count, v.total_training_pairs, v.json_file_size, \
             v.jsonl_file_size, v.json_sha256, v.jsonl_sha256, v.json_file_path, v.jsonl_file_path, f.name \
             FROM training_file_versions v JOIN training_files f ON f.id = v.training_file_id \
             WHERE f.id = $1 AND f.owner_id = $2 AND v.version = COALESCE($3, f.current_version)",
        )
        .bind(file_id)
        .bind(user)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(VersionOfFile { version: found, name }) = found else {
            let file = self.training_file(user, file_id).await?;
            return Err(StoreError::invalid("version", format!("this file has versions 1 to {}", file.version)));
        };
        let stem = safe_filename(&name);
        let filename = match version {
            Some(v) => format!("{stem}-v{v}.{}", format.extension()),
            None => format!("{stem}.{}", format.extension()),
        };
        let (key, size) = match format {
            DownloadFormat::Json => (found.json_file_path, found.json_file_size),
            DownloadFormat::Jsonl => (found.jsonl_file_path, found.jsonl_file_size),
        };
        let kind = crate::blobs::ObjectKind::of_key(&key).ok_or_else(|| StoreError::Internal(format!("version object {key} is not JSON")))?;
        Ok(DownloadTarget { key, filename, size: size as u64, content_type: kind.content_type(), version: found.version })
    }

    /// For each id in order: its row id, catalogue score and enriched file;
    /// every id that cannot be used is reported with its reason.
    async fn eligible(&self, user: &str, ids: &[String]) -> Result<Vec<(String, Option<f64>, String)>, StoreError> {
        let mut usable = Vec::with_capacity(ids.len());
        let mut refused = Vec::new();
        let mut tx = self.catalogue.begin_as(user).await?;
        for id in ids {
            let row: Option<(String, String, Option<String>, Option<f64>)> = sqlx::query_as(
                "SELECT id, enrichment_status, enriched_file_path, quality_score FROM conversations WHERE owner_id = $1 AND conversation_id = $2",
            )
            .bind(user)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                None => refused.push(Ineligible { conversation_id: id.clone(), reason: "not_found", enrichment_status: None }),
                Some((_, status, _, _)) if status != "completed" => {
                    refused.push(Ineligible { conversation_id: id.clone(), reason: "not_completed", enrichment_status: Some(status) })
                }
                Some((_, _, None, _)) => refused.push(Ineligible { conversation_id: id.clone(), reason: "no_enriched_file", enrichment_status: None }),
                Some((row_id, _, Some(path), score)) => usable.push((row_id, score, path)),
            }
        }
        tx.commit().await?;
        if refused.is_empty() { Ok(usable) } else { Err(StoreError::Ineligible(refused)) }
    }

    /// Reads and checks one enriched source; its catalogue score counts over its pairs'.
    async fn load_source(&self, key: &str, catalogue_score: Option<f64>) -> Result<Conversation, StoreError> {
        let bytes = self.blobs.get(key).await?;
        let (mut conversation, _) = read_enriched_bytes(&bytes).map_err(|findings| StoreError::InvalidSource {
            path: key.to_owned(),
            errors: findings.into_iter().filter(|d| d.is_error()).collect(),
        })?;
        conversation.quality_score = catalogue_score.or(conversation.quality_score);
        Ok(conversation)
    }

    /// Renders a conversation for `file_id` and stores its fragment objects.
    #[allow(clippy::too_many_arguments)]
    async fn store_fragment(
        &self,
        file_id: &str,
        conversation: &Conversation,
        position: i64,
        taken: &mut HashSet<String>,
        user: &str,
        now: &str,
        written: &mut Vec<String>,
    ) -> Result<Member, StoreError> {
        let suffix = render::line_id_suffix(&conversation.conversation_id, |short| !taken.insert(short.to_owned()));
        let Fragment { json, jsonl, figures, .. } = render::render_conversation_fragment(conversation, &suffix);
        let base = format!("training-files/{file_id}/fragments/{}-{}", conversation.conversation_id, token());
        let json = self.put_recorded(&format!("{base}.json"), json, written).await?;
        let jsonl = self.put_recorded(&format!("{base}.jsonl"), jsonl, written).await?;
        let keys = figures.scaffolding.clone();
        Ok(Member {
            conversation_id: conversation.conversation_id.clone(),
            added_at: now.to_owned(),
            added_by: Some(user.to_owned()),
            persona_key: keys.persona,
            emotional_arc_key: keys.emotional_arc,
            topic_key: keys.training_topic,
            quality_score: figures.quality_score,
            pairs: figures.training_pairs as i64,
            turns: figures.turns as i64,
            human_reviewed_pairs: figures.human_reviewed_pairs as i64,
            position,
            line_id_suffix: suffix,
            fragment_json_path: json.key,
            fragment_jsonl_path: jsonl.key,
            fragment_json_size: json.size as i64,
            fragment_jsonl_size: jsonl.size as i64,
        })
    }

    async fn put_recorded(&self, key: &str, bytes: Vec<u8>, written: &mut Vec<String>) -> Result<StoredObject, StoreError> {
        let stored = self.blobs.put_new(key, Bytes::from(bytes)).await?;
        written.push(stored.key.clone());
        Ok(stored)
    }

    /// Writes version `version` of `file` from its members' stored fragments:
    /// the full JSON and the JSONL, streamed, sizes checked before writing.
    #[allow(clippy::too_many_arguments)]
    async fn write_version(
        &self,
        file: &TrainingFile,
        consultant_profile: &Value,
        version: i64,
        now: &str,
        members: &[Member],
        written: &mut Vec<String>,
    ) -> Result<(StoredObject, StoredObject, Totals), StoreError> {
        let totals = totals_of(members);
        let header = FileHeader {
            file_name: file.name.clone(),
            description: file.description.clone(),
            created: parse_time(&file.created_at)?,
            last_updated: parse_time(now)?,
            target_model: file.target_model.clone(),
            vertical: file.vertical.clone(),
            consultant_profile: consultant_profile.clone(),
        };
        let prefix = render::full_json_prefix(&header, &totals);
        let suffix = render::full_json_suffix(members.len());
        let json_size = prefix.len() as u64
            + members.iter().enumerate().map(|(i, m)| (render::fragment_separator(i).len() + m.fragment_json_size as usize) as u64).sum::<u64>()
            + suffix.len() as u64;
        let jsonl_size: u64 = members.iter().map(|m| m.fragment_jsonl_size as u64).sum();
        let base = format!("training-files/{}/v{version}-{}", file.id, token());

        let json_key = format!("{base}.json");
        let mut writer = self.blobs.writer(&json_key, json_size).await?;
        written.push(json_key.clone());
        writer.write(&prefix);
        let mut fragments = self.fetch_in_order(members.iter().map(|m| m.fragment_json_path.clone()).collect());
        let mut index = 0;
        while let Some(fragment) = fragments.next().await {
            writer.write(render::fragment_separator(index));
            writer.write(&fragment?);
            index += 1;
        }
        writer.write(suffix);
        let json = writer.finish().await?;

        let jsonl_key = format!("{base}.jsonl");
        let mut writer = self.blobs.writer(&jsonl_key, jsonl_size).await?;
        written.push(jsonl_key.clone());
        let mut fragments = self.fetch_in_order(members.iter().map(|m| m.fragment_jsonl_path.clone()).collect());
        while let Some(fragment) = fragments.next().await {
            writer.write(&fragment?);
        }
        let jsonl = writer.finish().await?;
        if json.size != json_size || jsonl.size != jsonl_size {
            return Err(StoreError::Internal(format!("version {version} of {} came out at {}/{} bytes, not {json_size}/{jsonl_size}: a fragment changed", file.id, json.size, jsonl.size)));
        }
        Ok((json, jsonl, totals))
    }

    /// The objects' bytes in the given order, a few fetched ahead: on S3 each
    /// read is a round trip, so one at a time would make adds latency-bound.
    /// Memory stays at `FETCH_AHEAD` fragments.
    fn fetch_in_order(&self, keys: Vec<String>) -> impl futures::Stream<Item = Result<Bytes, StoreError>> + Send + 'static {
        let blobs = self.blobs.clone();
        futures::stream::iter(keys)
            .map(move |key| {
                let blobs = blobs.clone();
                async move { blobs.get(&key).await }
            })
            .buffered(FETCH_AHEAD)
    }

    /// Best effort: what is left behind is found by `doctor`.
    async fn delete_objects(&self, keys: &[String]) {
        for key in keys {
            if let Err(error) = self.blobs.delete(key).await {
                tracing::warn!(%key, %error, "could not delete an object; `lora-files doctor --repair` will");
            }
        }
    }
}

/// The figures of a file with these members: the running aggregates, recounted.
pub fn totals_of(members: &[Member]) -> Totals {
    let mut totals = Totals::default();
    for member in members {
        totals.add(&ConversationFigures {
            turns: member.turns as usize,
            training_pairs: member.pairs as usize,
            human_reviewed_pairs: member.human_reviewed_pairs as usize,
            quality_score: member.quality_score,
            scaffolding: ScaffoldingKeys {
                persona: member.persona_key.clone(),
                emotional_arc: member.emotional_arc_key.clone(),
                training_topic: member.topic_key.clone(),
            },
        });
    }
    totals
}

fn short_of(conversation_id: &str) -> String {
    conversation_id.chars().take(8).collect()
}

fn parse_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    chrono::DateTime::parse_from_rfc3339(text).map(|t| t.to_utc()).map_err(|e| StoreError::Internal(format!("bad timestamp {text:?} in the catalogue: {e}")))
}

fn check_name(name: &str) -> Result<String, StoreError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(StoreError::invalid("name", "must not be empty"));
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(StoreError::invalid("name", format!("must be at most {MAX_NAME_CHARS} characters")));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(StoreError::invalid("name", "must not contain control characters"));
    }
    Ok(trimmed.to_owned())
}

/// At least one id, each a UUID, none twice.
pub fn check_ids(ids: &[String]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Err(StoreError::invalid("conversation_ids", "must name at least one conversation"));
    }
    let mut seen = HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        if uuid::Uuid::parse_str(id).is_err() || id.len() != 36 {
            return Err(StoreError::invalid(format!("conversation_ids[{i}]"), format!("{id:?} is not a UUID")));
        }
        if !seen.insert(id.as_str()) {
            return Err(StoreError::invalid(format!("conversation_ids[{i}]"), format!("{id} is named twice")));
        }
    }
    Ok(())
}

/// A name fit for `Content-Disposition` and file systems.
fn safe_filename(name: &str) -> String {
    let cleaned: String = name.chars().map(|c| if c.is_control() || "/\\\"".contains(c) { '_' } else { c }).collect();
    let cleaned = cleaned.trim_start_matches('.').trim();
    if cleaned.is_empty() { "training-file".into() } else { cleaned.to_owned() }
}

pub(crate) fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Cursors are opaque to clients: hex of `created_at|id` of the last item.
pub(crate) fn encode_cursor(created_at: &str, id: &str) -> String {
    hex::encode(format!("{created_at}|{id}"))
}

pub(crate) fn decode_cursor(cursor: Option<&str>) -> Result<(Option<String>, Option<String>), StoreError> {
    let Some(cursor) = cursor else { return Ok((None, None)) };
    let bad = || StoreError::invalid("cursor", "not a cursor from this list");
    let text = String::from_utf8(hex::decode(cursor).map_err(|_| bad())?).map_err(|_| bad())?;
    let (time, id) = text.split_once('|').ok_or_else(bad)?;
    Ok((Some(time.to_owned()), Some(id.to_owned())))
}

/// Cuts a `limit + 1` fetch to a page and its next cursor.
pub(crate) fn page<T>(items: &mut Vec<T>, limit: i64, key: impl Fn(&T) -> (String, String)) -> Page<T> {
    let more = items.len() as i64 > limit;
    items.truncate(limit.max(0) as usize);
    let next_cursor = if more { items.last().map(|last| { let (time, id) = key(last); encode_cursor(&time, &id) }) } else { None };
    Page { items: std::mem::take(items), next_cursor }
}

/// The file's own columns, at version 0 with no objects: only ever seen inside
/// the create's transaction, which moves it to version 1 with `advance_file`.
async fn insert_file(tx: &mut Transaction, file: &TrainingFile, consultant_profile: &Value) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO training_files (id, owner_id, name, description, json_file_path, jsonl_file_path, storage_bucket, status, \
         current_version, consultant_profile, vertical, target_model, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, '', '', $5, 'active', 0, $6, $7, $8, $9, $10, $10)",
    )
    .bind(&file.id)
    .bind(&file.owner_id)
    .bind(&file.name)
    .bind(&file.description)
    .bind(&file.storage_bucket)
    .bind(consultant_profile.to_string())
    .bind(&file.vertical)
    .bind(&file.target_model)
    .bind(&file.created_by)
    .bind(&file.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves the file to `version` if it is still at the version this change read.
/// Its first statement writes, so on SQLite it takes the write lock at once.
async fn advance_file(tx: &mut Transaction, file: &TrainingFile, version: i64, now: &str, json: &StoredObject, jsonl: &StoredObject, totals: &Totals) -> Result<bool, StoreError> {
    let quality = totals.quality();
    let result = sqlx::query(
        "UPDATE training_files SET current_version = $1, json_file_path = $2, jsonl_file_path = $3, conversation_count = $4, \
         total_training_pairs = $5, total_turns = $6, json_file_size = $7, jsonl_file_size = $8, avg_quality_score = $9, \
         min_quality_score = $10, max_quality_score = $11, human_reviewed_count = $12, scaffolding_distribution = $13, \
         last_updated_at = $14, updated_at = $14 \
         WHERE id = $15 AND owner_id = $16 AND current_version = $17 AND status = 'active'",
    )
    .bind(version)
    .bind(&json.key)
    .bind(&jsonl.key)
    .bind(totals.conversations as i64)
    .bind(totals.training_pairs as i64)
    .bind(totals.turns as i64)
    .bind(json.size as i64)
    .bind(jsonl.size as i64)
    .bind(quality.avg_quality_score)
    .bind(quality.min_quality_score)
    .bind(quality.max_quality_score)
    .bind(quality.human_reviewed_count as i64)
    .bind(totals.distribution.to_value().to_string())
    .bind(now)
    .bind(&file.id)
    .bind(&file.owner_id)
    .bind(file.version)
    .execute(&mut **tx)
    .await?;
    Ok(result.rows_affected() == 1)
}

async fn insert_members(tx: &mut Transaction, file_id: &str, owner: &str, members: &[NewMember]) -> Result<(), StoreError> {
    for NewMember { row_id, member } in members {
        sqlx::query(
            "INSERT INTO training_file_conversations (id, training_file_id, conversation_row_id, conversation_id, owner_id, position, \
             added_at, added_by, fragment_json_path, fragment_jsonl_path, fragment_json_size, fragment_jsonl_size, line_id_suffix, \
             turns, pairs, human_reviewed_pairs, quality_score, persona_key, emotional_arc_key, topic_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        )
        .bind(new_id())
        .bind(file_id)
        .bind(row_id)
        .bind(&member.conversation_id)
        .bind(owner)
        .bind(member.position)
        .bind(&member.added_at)
        .bind(&member.added_by)
        .bind(&member.fragment_json_path)
        .bind(&member.fragment_jsonl_path)
        .bind(member.fragment_json_size)
        .bind(member.fragment_jsonl_size)
        .bind(&member.line_id_suffix)
        .bind(member.turns)
        .bind(member.pairs)
        .bind(member.human_reviewed_pairs)
        .bind(member.quality_score)
        .bind(&member.persona_key)
        .bind(&member.emotional_arc_key)
        .bind(&member.topic_key)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn insert_version(tx: &mut Transaction, file_id: &str, owner: &str, version: i64, change: &str, now: &str, json: &StoredObject, jsonl: &StoredObject, totals: &Totals) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO training_file_versions (training_file_id, version, owner_id, change, created_at, created_by, conversation_count, \
         total_training_pairs, json_file_path, jsonl_file_path, json_file_size, jsonl_file_size, json_sha256, jsonl_sha256) \
         VALUES ($1, $2, $3, $4, $5, $3, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(file_id)
    .bind(version)
    .bind(owner)
    .bind(change)
    .bind(now)
    .bind(totals.conversations as i64)
    .bind(totals.training_pairs as i64)
    .bind(&json.key)
    .bind(&jsonl.key)
    .bind(json.size as i64)
    .bind(jsonl.size as i64)
    .bind(&json.sha256)
    .bind(&jsonl.sha256)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
