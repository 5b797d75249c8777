//! Writing a change's fragments into segments: objects of bounded size that
//! are never rewritten. Each object is recorded in the catalogue (state
//! `writing`) before its first byte is written, so a change in flight owns
//! what it writes and garbage collection leaves it alone; the change's
//! commit marks them `committed` in the same transaction as its version.
//!
//! The store's CPU pool reads each conversation's enriched file and renders
//! its fragments, several ahead of the writer, so a create runs at the
//! offline build's pace. The new member rows are staged in the catalogue
//! as they are written (`training_file_pending_members`) and moved into the
//! file by the commit: memory holds only the few conversations in flight,
//! whatever the size of the change.

use bytes::Bytes;
use futures::StreamExt;
use lora_files_format::export::{ExportFigures, Tokenizer};
use lora_files_format::input::read_enriched_bytes;
use lora_files_format::quality::{ConversationFigures, Totals};
use lora_files_format::render::{self, Fragment};

use super::manifest::{Location, Manifest};
use super::sql::{MemberRows, NewMember};
use super::DownloadFormat;
use crate::blobs::ObjectWriter;
use crate::records::Member;
use crate::{now_text, token, Store, StoreError, StoredObject};

/// Conversations rendered and waiting for the writer.
const RENDER_AHEAD: usize = 8;

/// A conversation about to join a file, as the catalogue has it.
#[derive(Clone, Debug)]
pub(crate) struct Source {
    pub row_id: String,
    pub conversation_id: String,
    /// Its enriched file.
    pub key: String,
    /// Its catalogue score, which counts over its pairs'.
    pub score: Option<f64>,
}

/// A source with its place in the file.
#[derive(Clone, Debug)]
pub(crate) struct Placed {
    pub source: Source,
    pub position: i64,
    pub line_suffix: String,
}

/// One format's segments of one change.
#[derive(Default)]
struct Sink {
    writer: Option<ObjectWriter>,
    finished: Vec<StoredObject>,
}

/// Both formats' segments of one change, and every object it started.
pub(crate) struct Segments<'s> {
    store: &'s Store,
    file_id: String,
    owner: String,
    json: Sink,
    jsonl: Sink,
    /// Every key this change recorded, finished or not: what a failed attempt deletes.
    started: Vec<String>,
    /// Names the member rows this attempt stages ([`Segments::stage`]).
    attempt: String,
    /// Whether it staged any (a change of at most `member_rows_per_stage` conversations does not).
    staged: bool,
}

impl<'s> Segments<'s> {
    pub fn new(store: &'s Store, file_id: &str, owner: &str) -> Self {
        Self { store, file_id: file_id.to_owned(), owner: owner.to_owned(), json: Sink::default(), jsonl: Sink::default(), started: Vec::new(), attempt: token(), staged: false }
    }

    /// Where the commit finds the member rows this attempt staged, if it staged any.
    pub fn staged(&self) -> Option<&str> {
        self.staged.then_some(self.attempt.as_str())
    }

    /// Stages new member rows (pending until the change commits), so a
    /// change holds only the rows of its last few conversations.
    pub async fn stage(&mut self, members: &[NewMember]) -> Result<(), StoreError> {
        self.staged = true;
        let mut tx = self.store.catalogue.begin_as(&self.owner).await?;
        super::sql::insert_members(&mut tx, MemberRows::Staged(&self.attempt), &self.file_id, &self.owner, members).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Appends one member's fragments: the JSON framed by its separator.
    pub async fn append(&mut self, json: &[u8], jsonl: &[u8]) -> Result<(Location, Location), StoreError> {
        let json = self.append_to(DownloadFormat::Json, &[b",\n", json]).await?;
        let jsonl = self.append_to(DownloadFormat::Jsonl, &[jsonl]).await?;
        Ok((json, jsonl))
    }

    /// Appends bytes already framed (a compaction's copy) to one format.
    pub async fn append_raw(&mut self, format: DownloadFormat, bytes: &[u8]) -> Result<Location, StoreError> {
        self.append_to(format, &[bytes]).await
    }

    async fn append_to(&mut self, format: DownloadFormat, parts: &[&[u8]]) -> Result<Location, StoreError> {
        let length: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let limit = self.store.blobs.max_object_bytes();
        if length > limit {
            return Err(StoreError::TooLarge { what: "one conversation's fragment".into(), size: length, limit });
        }
        if self.sink(format).writer.as_ref().is_some_and(|w| w.size() + length > limit) {
            self.roll(format).await?;
        }
        if self.sink(format).writer.is_none() {
            let writer = self.start(format).await?;
            self.sink(format).writer = Some(writer);
        }
        let writer = self.sink(format).writer.as_mut().expect("started above");
        let offset = writer.size();
        for part in parts {
            writer.write(part).await?;
        }
        Ok(Location { key: writer.key().to_owned(), offset, length, framed: format == DownloadFormat::Json })
    }

    fn sink(&mut self, format: DownloadFormat) -> &mut Sink {
        match format {
            DownloadFormat::Json => &mut self.json,
            // Segments hold the two stored formats; the exports are rendered from the JSONL.
            _ => &mut self.jsonl,
        }
    }

    /// Records a new segment object in the catalogue, then opens it.
    async fn start(&mut self, format: DownloadFormat) -> Result<ObjectWriter, StoreError> {
        let key = format!("training-files/{}/segments/{}.{}", self.file_id, token(), format.extension());
        let mut tx = self.store.catalogue.begin_as(&self.owner).await?;
        sqlx::query(
            "INSERT INTO training_file_segments (object_key, training_file_id, owner_id, format, state, created_at) VALUES ($1, $2, $3, $4, 'writing', $5)",
        )
        .bind(&key)
        .bind(&self.file_id)
        .bind(&self.owner)
        .bind(format.extension())
        .bind(now_text())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.started.push(key.clone());
        self.store.blobs.writer(&key).await
    }

    /// Finishes the open segment of `format`; the next append starts another.
    async fn roll(&mut self, format: DownloadFormat) -> Result<(), StoreError> {
        let sink = self.sink(format);
        if let Some(writer) = sink.writer.take() {
            sink.finished.push(writer.finish().await?);
        }
        Ok(())
    }

    /// Finishes every open segment: the objects this change wrote.
    pub async fn finish(&mut self) -> Result<Vec<StoredObject>, StoreError> {
        self.roll(DownloadFormat::Json).await?;
        self.roll(DownloadFormat::Jsonl).await?;
        Ok(self.json.finished.iter().chain(&self.jsonl.finished).cloned().collect())
    }

    /// Undoes a change that will not commit: aborts open uploads, deletes
    /// the member rows it staged, what was written and its catalogue
    /// records. Best effort: what is left is found by `doctor`.
    pub async fn discard(mut self) {
        for sink in [&mut self.json, &mut self.jsonl] {
            if let Some(writer) = sink.writer.take() {
                writer.abort().await;
            }
        }
        if self.staged {
            let forget = async {
                let mut tx = self.store.catalogue.begin_as(&self.owner).await?;
                super::sql::forget_members(&mut tx, &self.attempt).await?;
                tx.commit().await.map_err(StoreError::from)
            };
            if let Err(error) = forget.await {
                tracing::warn!(attempt = %self.attempt, %error, "could not delete the member rows a change staged; `lora-files doctor --repair` will");
            }
        }
        for key in &self.started {
            if let Err(error) = self.store.blobs.delete(key).await {
                tracing::warn!(%key, %error, "could not delete a segment; `lora-files doctor --repair` will");
                continue;
            }
            let forget = async {
                let mut tx = self.store.catalogue.begin_as(&self.owner).await?;
                sqlx::query("DELETE FROM training_file_segments WHERE object_key = $1 AND state = 'writing'").bind(key).execute(&mut *tx).await?;
                tx.commit().await.map_err(StoreError::from)
            };
            if let Err(error) = forget.await {
                tracing::warn!(%key, %error, "could not forget a deleted segment; `lora-files doctor --repair` will");
            }
        }
    }
}

/// What a change's new members add up to.
pub(crate) struct Added {
    pub count: usize,
    /// What they add to the exports; `None` when some were not counted.
    pub exports: Option<ExportFigures>,
    /// The rows written since the last staged batch, which the commit inserts.
    pub rows: Vec<NewMember>,
}

impl Added {
    /// Nothing added.
    pub fn none() -> Self {
        Self { count: 0, exports: Some(ExportFigures::default()), rows: Vec::new() }
    }
}

/// Reads, checks and renders `placed` in order, appending
/// each fragment to `segments` and the `manifest`, its figures to `totals`
/// and its member row to the rows `segments` stages.
pub(crate) async fn write_members(
    store: &Store,
    segments: &mut Segments<'_>,
    placed: impl ExactSizeIterator<Item = Placed> + Send,
    user: &str,
    (totals, manifest): (&mut Totals, &mut Manifest),
    progress: Option<&dyn crate::progress::Progress>,
) -> Result<Added, StoreError> {
    let now = now_text();
    let count = placed.len();
    // A large change leaves its members' export figures to be counted after
    // it commits (tokenizing costs many times what rendering does).
    let count_exports = count <= super::figures::COUNT_INLINE_UP_TO;
    let (pool, blobs, runtime) = (&store.cpu, &store.blobs, tokio::runtime::Handle::current());
    let mut rendered = futures::stream::iter(placed)
        .map(|placed| {
            let (blobs, runtime) = (blobs.clone(), runtime.clone());
            pool.compute(move || {
                let bytes = blobs.get_outside_runtime(&runtime, &placed.source.key)?;
                let (fragment, exports) = render(&bytes, &placed.source, &placed.line_suffix, count_exports)?;
                Ok::<_, StoreError>((placed, fragment, exports))
            })
        })
        .buffered(RENDER_AHEAD)
        // Boxed: states the stream is `Send` for the lifetimes it has, which
        // the compiler cannot prove for every lifetime of the borrowed sources.
        .boxed();
    let mut added = Added::none();
    // Staged a batch at a time; a change of fewer keeps them for its commit
    // to insert (an add of 10 writes them once).
    let stage_rows = store.config.member_rows_per_stage.max(1);
    let mut rows = Vec::with_capacity(stage_rows.min(count));
    while let Some(next) = rendered.next().await {
        let (placed, fragment, exports) = next??;
        crate::progress::check(progress)?;
        let (json, jsonl) = segments.append(&fragment.json, &fragment.jsonl).await?;
        crate::progress::advanced(progress, 1, (fragment.json.len() + fragment.jsonl.len()) as u64);
        totals.add(&fragment.figures);
        manifest.push_member(&json, &jsonl);
        added.count += 1;
        added.exports = added.exports.zip(exports).map(|(sum, more)| sum.plus(&more));
        rows.push(NewMember { member: member_row(&placed, &fragment.figures, &json, &jsonl, user, &now), row_id: placed.source.row_id, exports });
        if rows.len() == stage_rows {
            segments.stage(&rows).await?;
            rows.clear();
        }
    }
    added.rows = rows;
    Ok(added)
}

/// One conversation's fragment, rendered on the CPU pool.
/// With `exports`, also what the conversation adds to the exports (its
/// lines rendered from its JSONL, as a download renders them, and counted).
pub(crate) async fn render_one(store: &Store, bytes: Bytes, source: Source, line_suffix: String, exports: bool) -> Result<(Fragment, Option<ExportFigures>), StoreError> {
    store.cpu.compute(move || render(&bytes, &source, &line_suffix, exports)).await?
}

fn render(bytes: &[u8], source: &Source, line_suffix: &str, exports: bool) -> Result<(Fragment, Option<ExportFigures>), StoreError> {
    let (mut conversation, _) = read_enriched_bytes(bytes)
        .map_err(|findings| StoreError::InvalidSource { path: source.key.clone(), errors: findings.into_iter().filter(|d| d.is_error()).collect() })?;
    conversation.quality_score = source.score.or(conversation.quality_score);
    let fragment = render::render_conversation_fragment(&conversation, line_suffix);
    let figures = exports.then(|| ExportFigures::of_jsonl(&fragment.jsonl, &Tokenizer::o200k()));
    Ok((fragment, figures))
}

fn member_row(placed: &Placed, figures: &ConversationFigures, json: &Location, jsonl: &Location, user: &str, now: &str) -> Member {
    let keys = figures.scaffolding.clone();
    Member {
        conversation_id: placed.source.conversation_id.clone(),
        added_at: now.to_owned(),
        added_by: Some(user.to_owned()),
        persona_key: keys.persona,
        emotional_arc_key: keys.emotional_arc,
        topic_key: keys.training_topic,
        quality_score: figures.quality_score,
        pairs: figures.training_pairs as i64,
        turns: figures.turns as i64,
        human_reviewed_pairs: figures.human_reviewed_pairs as i64,
        position: placed.position,
        line_id_suffix: placed.line_suffix.clone(),
        short_id: super::short_of(&placed.source.conversation_id),
        fragment_json_path: json.key.clone(),
        fragment_json_offset: json.offset as i64,
        fragment_json_size: json.length as i64,
        fragment_json_framed: 1,
        fragment_jsonl_path: jsonl.key.clone(),
        fragment_jsonl_offset: jsonl.offset as i64,
        fragment_jsonl_size: jsonl.length as i64,
    }
}
