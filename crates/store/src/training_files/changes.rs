//! The change pipeline: every change — create, add, remove, compact — reads
//! the file's current version, writes new segments holding only what it
//! adds, and commits a new version only if the file is still at the version
//! it read; otherwise it starts again on the newer one. A create is the
//! first change: it reserves the name with a row at version 0 (`processing`)
//! and then runs like an add.

use lora_files_format::quality::Totals;
use lora_files_format::render::{self, FileHeader};
use lora_files_format::value::Value;

use super::manifest::{Location, Manifest, Piece};
use super::queries::locations;
use super::segments::{self, Added, Placed, Segments, Source};
use super::sql::{self, NewVersion};
use super::{check_name, parse_time, short_of, DownloadFormat, FileUpdate, TrainingFiles};
use crate::records::{JsonText, TrainingFile};
use crate::{new_id, now_text, StoreError, StoredObject};

/// How often a change starts again when other changes keep landing first.
const MAX_ATTEMPTS: usize = 16;

/// Ranges of objects a version's body may hold (per format) before a
/// compaction merges its small ones: bounds the reads a download makes.
pub const COMPACT_AFTER_RANGES: usize = 32;

/// Ranges shorter than this are merged by a compaction; longer ones stay
/// where they are (copying them would cost what the file holds).
pub const SMALL_RANGE_BYTES: u64 = 8 * 1024 * 1024;

/// Longest description, in characters (it is sent with every list).
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;

/// A change that makes a new version of a file.
enum Change {
    Create(Vec<Source>),
    Add(Vec<String>),
    Remove(String),
    Compact,
}

impl Change {
    /// As `training_file_versions.change` records it.
    fn kind(&self) -> &'static str {
        match self {
            Self::Create(_) => "create",
            Self::Add(_) => "add",
            Self::Remove(_) => "remove",
            Self::Compact => "compact",
        }
    }

    /// The status the file must be in for the change to apply.
    fn expects(&self) -> &'static str {
        match self {
            Self::Create(_) => "processing",
            _ => "active",
        }
    }
}

/// What one attempt wrote and will commit.
struct Prepared {
    now: String,
    manifest: Manifest,
    totals: Totals,
    /// What the change adds; its member rows are staged under the attempt.
    added: Added,
    removed: Option<String>,
    /// A member re-rendered under a new line-id suffix: (conversation id, suffix, JSON, JSONL).
    moved: Option<(String, String, Location, Location)>,
    relocated: Vec<Relocation>,
    removed_count: i64,
}

/// Bytes a compaction copied: `length` bytes of `from` at `offset` are now in `to` at `to_offset`.
struct Relocation {
    format: DownloadFormat,
    from: String,
    offset: u64,
    length: u64,
    to: String,
    to_offset: u64,
}

impl TrainingFiles<'_> {
    /// Creates a training file from `conversation_ids` (in that order).
    pub async fn create(self, user: &str, name: &str, description: Option<&str>, conversation_ids: &[String]) -> Result<TrainingFile, StoreError> {
        let file = self.reserve(user, name, description, conversation_ids).await?;
        let created = self.fill(user, &file.id, conversation_ids).await;
        if created.is_err() {
            self.forget_failed_create(user, &file.id).await;
        }
        created
    }

    /// The first half of a create: checks the request and reserves the name
    /// with a row at version 0, `processing`. [`TrainingFiles::fill`] writes
    /// its first version (a background job does, so the file can be shown
    /// at once).
    pub async fn reserve(self, user: &str, name: &str, description: Option<&str>, conversation_ids: &[String]) -> Result<TrainingFile, StoreError> {
        let name = check_name(name)?;
        let description = check_description(description)?;
        let conversation_ids = self.checked_ids(user, None, conversation_ids).await?;
        if self.by_name(user, &name).await?.is_some() {
            return Err(StoreError::NameTaken(name));
        }
        let sources = self.eligible(user, &conversation_ids).await?;
        // The file states the consultant and vertical of its first conversation.
        let first = self.store.blobs.get(&sources[0].key).await?;
        let (first, _) = lora_files_format::input::read_enriched_bytes(&first)
            .map_err(|findings| StoreError::InvalidSource { path: sources[0].key.clone(), errors: findings.into_iter().filter(|d| d.is_error()).collect() })?;
        let profile = first.consultant_profile.clone().unwrap_or(Value::Object(Default::default()));
        let vertical = self
            .store
            .config
            .default_vertical
            .clone()
            .or(first.vertical.clone())
            .ok_or_else(|| StoreError::invalid("conversation_ids", "the conversations state no vertical and none is configured"))?;
        let now = now_text();
        let file = TrainingFile {
            id: new_id(),
            name: name.clone(),
            description,
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
            scaffolding_distribution: JsonText(serde_json::Value::Object(Default::default())),
            status: "processing".into(),
            last_updated_at: Some(now.clone()),
            created_by: Some(user.to_owned()),
            created_at: now.clone(),
            updated_at: now,
            version: 0,
            owner_id: user.to_owned(),
            vertical,
            target_model: self.store.config.target_model.clone(),
        };
        let mut tx = self.store.catalogue.begin_as(user).await?;
        sql::insert_file(&mut tx, &file, &profile).await.map_err(|e| StoreError::from_constraint(e, &name))?;
        tx.commit().await.map_err(|e| StoreError::from_constraint(e, &name))?;
        self.changed(user);
        Ok(file)
    }

    /// The second half of a create: the first version of a reserved file.
    /// Done already (a job run again after its worker died): the file as it is.
    pub async fn fill(self, user: &str, file_id: &str, conversation_ids: &[String]) -> Result<TrainingFile, StoreError> {
        let file = self.get(user, file_id).await?;
        if file.version > 0 {
            return Ok(file);
        }
        let conversation_ids: Vec<String> = conversation_ids.iter().map(|id| crate::ids::canonical_or_same(id)).collect();
        let sources = self.eligible(user, &conversation_ids).await?;
        match self.change(user, file_id, Change::Create(sources)).await {
            // Another run of the same job landed first.
            Err(StoreError::NotActive(_)) => match self.get(user, file_id).await? {
                file if file.version > 0 => Ok(file),
                file => Err(StoreError::NotActive(file.status)),
            },
            other => other,
        }
    }

    /// A reserved file whose first version will not be written: `failed`
    /// keeps it (and its name) so its owner sees why; otherwise it is taken
    /// back, leaving nothing behind.
    pub async fn abandon_create(self, user: &str, file_id: &str, keep_as_failed: bool) -> Result<(), StoreError> {
        if !keep_as_failed {
            self.forget_failed_create(user, file_id).await;
            return Ok(());
        }
        let mut tx = self.store.catalogue.begin_as(user).await?;
        sqlx::query("UPDATE training_files SET status = 'failed', updated_at = $1 WHERE id = $2 AND owner_id = $3 AND status = 'processing' AND current_version = 0")
            .bind(now_text())
            .bind(file_id)
            .bind(user)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.changed(user);
        Ok(())
    }

    /// Checks an add before it is queued, so its caller hears at once what
    /// it would be refused for: the file must be active and hold none of the
    /// ids. The file, and the ids in canonical form.
    pub async fn check_add(self, user: &str, file_id: &str, conversation_ids: &[String]) -> Result<(TrainingFile, Vec<String>), StoreError> {
        let conversation_ids = &self.checked_ids(user, Some(file_id), conversation_ids).await?;
        let file = self.get(user, file_id).await?;
        if file.status != "active" {
            return Err(StoreError::NotActive(file.status));
        }
        let present = self.present(user, file_id, "conversation_id", conversation_ids).await?;
        if !present.is_empty() {
            return Err(StoreError::AlreadyInFile(conversation_ids.iter().filter(|id| present.contains(*id)).cloned().collect()));
        }
        self.eligible(user, conversation_ids).await?;
        Ok((file, conversation_ids.clone()))
    }

    /// Whether the file holds each of `conversation_ids` (an add run again
    /// after its worker died finds them all there).
    pub async fn holds_all(self, user: &str, file_id: &str, conversation_ids: &[String]) -> Result<bool, StoreError> {
        Ok(self.present(user, file_id, "conversation_id", conversation_ids).await?.len() == conversation_ids.len())
    }

    /// Whether the file holds `conversation_id`.
    pub async fn holds(self, user: &str, file_id: &str, conversation_id: &str) -> Result<bool, StoreError> {
        Ok(self.member(user, file_id, conversation_id).await?.is_some())
    }

    /// Adds conversations to a file as a new version; refuses the whole
    /// request when any of them is already in the file.
    pub async fn add(self, user: &str, file_id: &str, conversation_ids: &[String]) -> Result<TrainingFile, StoreError> {
        let conversation_ids = self.checked_ids(user, Some(file_id), conversation_ids).await?;
        self.change(user, file_id, Change::Add(conversation_ids)).await
    }

    /// A new version without `conversation_id`.
    pub async fn remove(self, user: &str, file_id: &str, conversation_id: &str) -> Result<TrainingFile, StoreError> {
        self.change(user, file_id, Change::Remove(crate::ids::canonical_or_same(conversation_id))).await
    }

    /// Merges the current version's small ranges into one segment as a new
    /// version with the same content (done by itself after a change leaves
    /// more than [`COMPACT_AFTER_RANGES`] ranges). Nothing to merge: no version.
    pub async fn compact(self, user: &str, file_id: &str) -> Result<TrainingFile, StoreError> {
        let _queued = self.shared().locks.lock(file_id).await;
        self.change_queued(user, file_id, &Change::Compact).await
    }

    /// Renames, describes, archives or unarchives a file (no new version).
    pub async fn update(self, user: &str, file_id: &str, update: &FileUpdate) -> Result<TrainingFile, StoreError> {
        let file = self.get(user, file_id).await?;
        let name = match &update.name {
            Some(name) => check_name(name)?,
            None => file.name.clone(),
        };
        let description = match &update.description {
            Some(description) => check_description(description.as_deref())?,
            None => file.description.clone(),
        };
        let status = match update.status.as_deref() {
            None => file.status.clone(),
            Some(status @ ("active" | "archived")) if matches!(file.status.as_str(), "active" | "archived") => status.to_owned(),
            Some("active" | "archived") => return Err(StoreError::NotActive(file.status)),
            Some(other) => return Err(StoreError::invalid("status", format!("must be active or archived, not {other:?}"))),
        };
        let mut tx = self.store.catalogue.begin_as(user).await?;
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
        self.changed(user);
        self.get(user, file_id).await
    }

    /// Deletes a file, its history and every segment it stored (segments
    /// belong to one file, so no other file loses anything).
    pub async fn delete(self, user: &str, file_id: &str) -> Result<(), StoreError> {
        self.get(user, file_id).await?;
        let mut tx = self.store.catalogue.begin_as(user).await?;
        sqlx::query("DELETE FROM training_files WHERE id = $1 AND owner_id = $2").bind(file_id).bind(user).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM training_file_segments WHERE training_file_id = $1 AND owner_id = $2").bind(file_id).bind(user).execute(&mut *tx).await?;
        tx.commit().await?;
        self.changed(user);
        // The catalogue no longer points at these; a failure here leaves orphans for `doctor --repair`.
        self.store.delete_prefix(&format!("training-files/{file_id}/")).await;
        Ok(())
    }

    /// Runs a change until it lands. Changes to one file in this process
    /// queue on its lock; an attempt that another process beat to the commit
    /// deletes what it wrote and starts again on the newer version.
    async fn change(self, user: &str, file_id: &str, change: Change) -> Result<TrainingFile, StoreError> {
        let _queued = self.shared().locks.lock(file_id).await;
        let file = self.change_queued(user, file_id, &change).await?;
        let added = match &change {
            Change::Create(sources) => sources.len(),
            Change::Add(ids) => ids.len(),
            Change::Remove(_) => 0,
            Change::Compact => return Ok(file),
        };
        if added > super::figures::COUNT_INLINE_UP_TO {
            self.settle_figures_later(user, file_id);
        }
        // Keeping the ranges few keeps downloads fast; the file is already
        // changed, so a failed compaction is only logged.
        crate::progress::phase(self.progress, "compacting");
        match self.change_queued(user, file_id, &Change::Compact).await {
            Ok(compacted) => Ok(compacted),
            Err(error) => {
                tracing::warn!(file_id, %error, "compacting the file failed; it stays as it is");
                Ok(file)
            }
        }
    }

    async fn change_queued(self, user: &str, file_id: &str, change: &Change) -> Result<TrainingFile, StoreError> {
        for round in 0..MAX_ATTEMPTS {
            if round > 0 {
                back_off(round).await;
            }
            let file = self.get(user, file_id).await?;
            if file.status != change.expects() {
                return Err(StoreError::NotActive(file.status));
            }
            let mut segments = Segments::new(self.store, file_id, user);
            match self.attempt(user, &file, change, &mut segments).await {
                Ok(Some(true)) => {
                    self.changed(user);
                    return self.get(user, file_id).await;
                }
                Ok(None) => return Ok(file),
                Ok(Some(false)) => segments.discard().await,
                // Another process added the same conversation first: the next round says so.
                Err(StoreError::Database(sqlx::Error::Database(db))) if db.is_unique_violation() => segments.discard().await,
                Err(error) => {
                    segments.discard().await;
                    return Err(error);
                }
            }
        }
        Err(StoreError::Contention)
    }

    /// One attempt: `Some(true)` committed, `Some(false)` another change
    /// landed first, `None` nothing to do.
    async fn attempt(self, user: &str, file: &TrainingFile, change: &Change, segments: &mut Segments<'_>) -> Result<Option<bool>, StoreError> {
        let started = std::time::Instant::now();
        let prepared = match change {
            Change::Create(sources) => self.prepare_add(user, file, sources, segments).await?,
            Change::Add(ids) => {
                let present = self.present(user, &file.id, "conversation_id", ids).await?;
                if !present.is_empty() {
                    // Report the others' problems in the same answer.
                    let indexed: Vec<(usize, String)> = ids.iter().cloned().enumerate().collect();
                    let problems = self.problems_of(user, Some(&file.id), &indexed).await?;
                    if problems.iter().any(|p| p.reason != "already_in_file") {
                        return Err(StoreError::RequestedIds(problems));
                    }
                    return Err(StoreError::AlreadyInFile(ids.iter().filter(|id| present.contains(*id)).cloned().collect()));
                }
                let sources = self.eligible(user, ids).await?;
                self.prepare_add(user, file, &sources, segments).await?
            }
            Change::Remove(conversation_id) => self.prepare_remove(user, file, conversation_id, segments).await?,
            Change::Compact => match self.prepare_compact(user, file, segments).await? {
                Some(prepared) => prepared,
                None => return Ok(None),
            },
        };
        let rendered = started.elapsed();
        let objects = segments.finish().await?;
        let written = started.elapsed();
        if !matches!(change, Change::Compact) {
            crate::progress::check(self.progress)?;
            crate::progress::phase(self.progress, "committing");
        }
        self.store.run_before_commit()?;
        let committed = self.commit(user, file, change.kind(), prepared, segments.staged(), &objects).await.map(Some);
        tracing::debug!(
            file_id = %file.id,
            change = change.kind(),
            rendered_ms = rendered.as_millis() as u64,
            written_ms = written.as_millis() as u64,
            committed_ms = started.elapsed().as_millis() as u64,
            "a change's attempt"
        );
        committed
    }

    async fn prepare_add(self, user: &str, file: &TrainingFile, sources: &[Source], segments: &mut Segments<'_>) -> Result<Prepared, StoreError> {
        crate::progress::phase(self.progress, "rendering");
        let now = now_text();
        let state = self.version_state(user, file).await?;
        let mut taken = if file.version == 0 {
            Default::default()
        } else {
            let shorts: Vec<String> = sources.iter().map(|s| short_of(&s.conversation_id)).collect();
            self.present(user, &file.id, "short_id", &shorts).await?
        };
        let start = self.next_position(user, &file.id).await?;
        // Placed one by one as the writer takes them: nothing per source is held for the whole change.
        let placed = sources.iter().enumerate().map(move |(i, source)| {
            let line_suffix = render::line_id_suffix(&source.conversation_id, |short| !taken.insert(short.to_owned()));
            Placed { source: source.clone(), position: start + i as i64, line_suffix }
        });
        let (mut totals, mut manifest) = (state.totals, state.manifest);
        let added = segments::write_members(self.store, segments, placed, user, (&mut totals, &mut manifest), self.progress).await?;
        Ok(Prepared { now, manifest, totals, added, removed: None, moved: None, relocated: Vec::new(), removed_count: 0 })
    }

    async fn prepare_remove(self, user: &str, file: &TrainingFile, conversation_id: &str, segments: &mut Segments<'_>) -> Result<Prepared, StoreError> {
        let now = now_text();
        let member = self.member(user, &file.id, conversation_id).await?.ok_or(StoreError::NotFound)?;
        if file.conversation_count <= 1 {
            return Err(StoreError::invalid("conversation_id", "a training file keeps at least one conversation; delete the file instead"));
        }
        let mut manifest = self.version_state(user, file).await?.manifest;
        let (json, jsonl) = locations(&member);
        manifest.remove_member(&json, &jsonl)?;
        // JSONL ids use the first 8 characters of a conversation id unless an
        // earlier conversation of the file has them; when the one that had
        // them goes, the next one that shares them gets them, as a build of
        // the conversations left would give it: it is rendered again.
        let mut moved = None;
        if member.line_id_suffix == member.short_id {
            let heir = self.members_with_short(user, &file.id, &member.short_id).await?.into_iter().find(|m| m.conversation_id != conversation_id);
            if let Some(heir) = heir {
                let source = self.source_of_member(user, &file.id, &heir.conversation_id).await?;
                let bytes = self.store.blobs.get(&source.key).await?;
                // Its exports hold no line ids: what it adds to them is unchanged.
                let (fragment, _) = segments::render_one(self.store, bytes, source, member.short_id.clone(), false).await?;
                let (new_json, new_jsonl) = segments.append(&fragment.json, &fragment.jsonl).await?;
                let (old_json, old_jsonl) = locations(&heir);
                manifest.move_member((&old_json, &new_json), (&old_jsonl, &new_jsonl))?;
                moved = Some((heir.conversation_id, member.short_id.clone(), new_json, new_jsonl));
            }
        }
        let totals = self.recount(user, &file.id, Some(conversation_id)).await?;
        Ok(Prepared { now, manifest, totals, added: Added::none(), removed: Some(conversation_id.to_owned()), moved, relocated: Vec::new(), removed_count: 1 })
    }

    /// Copies each run of small ranges of the current version into one new
    /// range; `None` when the version has few ranges.
    async fn prepare_compact(self, user: &str, file: &TrainingFile, segments: &mut Segments<'_>) -> Result<Option<Prepared>, StoreError> {
        let state = self.version_state(user, file).await?;
        let mut manifest = state.manifest;
        if manifest.json.ranges() <= COMPACT_AFTER_RANGES && manifest.jsonl.ranges() <= COMPACT_AFTER_RANGES {
            return Ok(None);
        }
        let mut relocated = Vec::new();
        for format in [DownloadFormat::Json, DownloadFormat::Jsonl] {
            let layout = match format {
                DownloadFormat::Json => &mut manifest.json,
                _ => &mut manifest.jsonl,
            };
            let body = std::mem::take(&mut layout.body);
            for run in runs(body) {
                if !run.merge {
                    for piece in run.pieces {
                        layout.push(piece);
                    }
                    continue;
                }
                // A literal and the range after it (a fragment stored before
                // segments, with its separator) are copied together.
                let mut unit: Vec<u8> = Vec::new();
                for piece in run.pieces {
                    match piece {
                        Piece::Literal { bytes } => unit.extend_from_slice(bytes.as_bytes()),
                        Piece::Range { key, offset, length } => {
                            let literal = unit.len() as u64;
                            unit.extend_from_slice(&self.store.blobs.get_range(&key, offset..offset + length).await?);
                            let to = segments.append_raw(format, &unit).await?;
                            relocated.push(Relocation { format, from: key, offset, length, to: to.key.clone(), to_offset: to.offset + literal });
                            layout.push(Piece::Range { key: to.key, offset: to.offset, length: to.length });
                            unit.clear();
                        }
                    }
                }
                if !unit.is_empty() {
                    let to = segments.append_raw(format, &unit).await?;
                    layout.push(Piece::Range { key: to.key, offset: to.offset, length: to.length });
                }
            }
        }
        if relocated.is_empty() {
            return Ok(None);
        }
        Ok(Some(Prepared { now: now_text(), manifest, totals: state.totals, added: Added::none(), removed: None, moved: None, relocated, removed_count: 0 }))
    }

    /// Commits a prepared change if the file is still at the version it read.
    async fn commit(self, user: &str, file: &TrainingFile, change: &str, mut prepared: Prepared, staged: Option<&str>, objects: &[StoredObject]) -> Result<bool, StoreError> {
        let profile = self.consultant_profile(user, &file.id).await?;
        self.frame(file, &profile, &mut prepared)?;
        let new = NewVersion {
            version: file.version + 1,
            change,
            now: &prepared.now,
            manifest: &prepared.manifest,
            totals: &prepared.totals,
            added: prepared.added.count as i64,
            removed: prepared.removed_count,
        };
        let mut tx = self.store.catalogue.begin_as(user).await?;
        if !sql::advance_file(&mut tx, file, &new).await? {
            return Ok(false);
        }
        let figures = super::figures::carried(&mut tx, &file.id, file.version, prepared.added.exports.as_ref(), prepared.removed.as_deref()).await?;
        if let Some(attempt) = staged {
            sql::commit_members(&mut tx, attempt).await?;
        }
        sql::insert_members(&mut tx, sql::MemberRows::InFile, &file.id, user, &prepared.added.rows).await?;
        if let Some(removed) = &prepared.removed {
            sql::delete_member(&mut tx, &file.id, removed).await?;
        }
        if let Some((conversation_id, suffix, json, jsonl)) = &prepared.moved {
            sql::move_member(&mut tx, &file.id, conversation_id, suffix, json, jsonl).await?;
        }
        for r in &prepared.relocated {
            sql::relocate(&mut tx, &file.id, r.format == DownloadFormat::Jsonl, &r.from, r.offset, r.length, &r.to, r.to_offset).await?;
        }
        sql::commit_segments(&mut tx, objects).await?;
        sql::insert_version(&mut tx, file, &new).await?;
        if let Some(figures) = &figures {
            super::figures::state(&mut tx, &file.id, new.version, figures).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Gives the version its head and tail: the full JSON's header states
    /// the totals; the JSONL has neither.
    fn frame(self, file: &TrainingFile, profile: &Value, prepared: &mut Prepared) -> Result<(), StoreError> {
        let header = FileHeader {
            file_name: file.name.clone(),
            description: file.description.clone(),
            created: parse_time(&file.created_at)?,
            last_updated: parse_time(&prepared.now)?,
            target_model: file.target_model.clone(),
            vertical: file.vertical.clone(),
            consultant_profile: profile.clone(),
        };
        let count = prepared.totals.conversations;
        let json = &mut prepared.manifest.json;
        json.head = String::from_utf8(render::full_json_prefix(&header, &prepared.totals)).expect("rendered JSON is UTF-8");
        json.skip = u64::from(count > 0);
        json.tail = String::from_utf8(render::full_json_suffix(count).to_vec()).expect("rendered JSON is UTF-8");
        Ok(())
    }

    /// Takes back the row of a create that failed (a create either lands
    /// whole or leaves nothing).
    async fn forget_failed_create(self, user: &str, file_id: &str) {
        let forget = async {
            let mut tx = self.store.catalogue.begin_as(user).await?;
            sqlx::query("DELETE FROM training_files WHERE id = $1 AND owner_id = $2 AND status = 'processing' AND current_version = 0")
                .bind(file_id)
                .bind(user)
                .execute(&mut *tx)
                .await?;
            tx.commit().await.map_err(StoreError::from)
        };
        if let Err(error) = forget.await {
            tracing::warn!(file_id, %error, "could not take back a failed create");
        }
        self.changed(user);
    }
}

/// A stretch of a body: small pieces a compaction merges, or pieces it keeps.
struct Run {
    merge: bool,
    pieces: Vec<Piece>,
}

/// Splits a body into runs: consecutive small pieces (two or more ranges,
/// or a fragment stored before segments) are merged; the rest stay. A
/// literal separator goes with the range after it, so a fragment and its
/// separator are never parted.
fn runs(body: Vec<Piece>) -> Vec<Run> {
    let mut items: Vec<Vec<Piece>> = Vec::new();
    for piece in body {
        match items.last_mut() {
            Some(item) if matches!(item.last(), Some(Piece::Literal { .. })) => item.push(piece),
            _ => items.push(vec![piece]),
        }
    }
    let mut runs: Vec<Run> = Vec::new();
    for item in items {
        let small = item.iter().all(|piece| !matches!(piece, Piece::Range { length, .. } if *length >= SMALL_RANGE_BYTES));
        match runs.last_mut() {
            Some(run) if run.merge == small => run.pieces.extend(item),
            _ => runs.push(Run { merge: small, pieces: item }),
        }
    }
    for run in &mut runs {
        let ranges = run.pieces.iter().filter(|p| matches!(p, Piece::Range { .. })).count();
        run.merge &= ranges >= 2 || ranges < run.pieces.len();
    }
    runs
}

fn check_description(description: Option<&str>) -> Result<Option<String>, StoreError> {
    match description {
        Some(text) if text.chars().count() > MAX_DESCRIPTION_CHARS => {
            Err(StoreError::invalid("description", format!("must be at most {MAX_DESCRIPTION_CHARS} characters")))
        }
        other => Ok(other.map(str::to_owned)),
    }
}

/// A pause before trying a change again, longer each time, jittered so
/// competing processes spread out.
async fn back_off(attempt: usize) {
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 20;
    tokio::time::sleep(std::time::Duration::from_millis(10 * attempt as u64 + jitter)).await;
}
