//! The training-file service: files as sequences of immutable versions, each
//! a small manifest over stored segments that versions share.
//!
//! A change (create, add, remove, compact) writes new segment objects holding
//! only the fragments it adds, then commits the catalogue in one transaction
//! that succeeds only if the file is still at the version the change read.
//! A version is its [`manifest::Manifest`]: a rendered header, byte ranges of
//! segments, and a footer; downloads stream it ([`download`]). Nothing a
//! committed version refers to is deleted while the version exists, so a crash
//! or a race never loses or tears a version; objects a failed attempt wrote
//! are deleted, and what a crash left is what `doctor --repair` removes.
//!
//! Modules: [`changes`] the change pipeline, [`segments`] writing fragments
//! into segments, [`manifest`] the layout of a version, [`queries`] reads,
//! [`sql`] the catalogue writes, [`download`] links and streamed reads,
//! [`requested`] every problem with a request's conversation ids, [`figures`]
//! the exports' sizes and tokens of a version.

mod changes;
pub mod download;
mod figures;
pub(crate) mod manifest;
mod queries;
mod requested;
mod segments;
pub(crate) mod sql;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use serde::{Deserialize, Serialize};

use crate::owner_cache::{ListKey, ListedPage, OwnerCache};
use crate::{Store, StoreError};

pub use download::{DownloadLink, OpenedDownload};
pub use lora_files_format::export::ExportFigures;

/// Longest training-file name, in characters.
pub const MAX_NAME_CHARS: usize = 255;

/// The formats a version can be downloaded in: the two it stores, and the
/// trainer-ready exports rendered from its JSONL as they are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DownloadFormat {
    Json,
    Jsonl,
    OpenAi,
    ShareGpt,
    Alpaca,
}

impl DownloadFormat {
    pub const ALL: [DownloadFormat; 5] = [Self::Json, Self::Jsonl, Self::OpenAi, Self::ShareGpt, Self::Alpaca];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|format| format.as_str() == text)
    }

    /// As the API names it (`format=`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Jsonl => "jsonl",
            Self::OpenAi => "openai",
            Self::ShareGpt => "sharegpt",
            Self::Alpaca => "alpaca",
        }
    }

    /// What a downloaded file's name ends with.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Jsonl => "jsonl",
            Self::OpenAi => "openai.jsonl",
            Self::ShareGpt => "sharegpt.jsonl",
            Self::Alpaca => "alpaca.jsonl",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            _ => "application/x-ndjson",
        }
    }

    /// The export it renders, for the formats rendered from the JSONL.
    pub fn export(self) -> Option<lora_files_format::export::ExportFormat> {
        use lora_files_format::export::ExportFormat;
        match self {
            Self::Json | Self::Jsonl => None,
            Self::OpenAi => Some(ExportFormat::OpenAi),
            Self::ShareGpt => Some(ExportFormat::ShareGpt),
            Self::Alpaca => Some(ExportFormat::Alpaca),
        }
    }
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

/// The service; get one with [`Store::training_files`].
#[derive(Clone, Copy)]
pub struct TrainingFiles<'s> {
    store: &'s Store,
    /// Told what a change does as it goes (background jobs); none by default.
    progress: Option<&'s dyn crate::progress::Progress>,
}

/// What the service keeps between calls: per-file locks and read caches.
#[derive(Clone)]
pub(crate) struct Shared {
    locks: FileLocks,
    /// Counting a file's export figures after a large change: one at a time.
    settling: FileLocks,
    lists: OwnerCache<ListKey, Arc<ListedPage>>,
    downloads: OwnerCache<(String, DownloadFormat, Option<i64>), download::Described>,
}

impl Shared {
    pub(crate) fn new(ttl: std::time::Duration) -> Self {
        Self { locks: FileLocks::default(), settling: FileLocks::default(), lists: OwnerCache::new(ttl), downloads: OwnerCache::new(ttl) }
    }
}

impl<'s> TrainingFiles<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store, progress: None }
    }

    /// The same service, reporting the progress of its changes to `progress`
    /// and stopping them, before they commit, when it says so.
    pub fn with_progress(self, progress: &'s dyn crate::progress::Progress) -> Self {
        Self { progress: Some(progress), ..self }
    }

    fn shared(self) -> &'s Shared {
        &self.store.files
    }

    /// Drops what is cached about `owner`'s files; called after every committed change.
    fn changed(self, owner: &str) {
        self.shared().lists.invalidate(owner);
        self.shared().downloads.invalidate(owner);
    }
}

/// Changes to one file made by this process queue on its lock instead of
/// racing (a lost race costs a whole attempt's writes). Several processes on
/// one catalogue are still kept apart by the version check at commit.
#[derive(Clone, Default)]
struct FileLocks(Arc<Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>>);

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

    /// Whether someone in this process holds or waits for `file_id`'s lock.
    fn is_taken(&self, file_id: &str) -> bool {
        let locks = self.0.lock().expect("no panics while holding the lock");
        locks.get(file_id).is_some_and(|lock| lock.strong_count() > 0)
    }
}

/// The name as stored: trimmed, 1–255 characters, no control characters.
pub(crate) fn check_name(name: &str) -> Result<String, StoreError> {
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

/// At least one id, each a UUID, none twice: the ids in canonical form, or
/// every malformed one at once.
pub fn check_ids(ids: &[String]) -> Result<Vec<String>, StoreError> {
    if ids.is_empty() {
        return Err(StoreError::invalid("conversation_ids", "must name at least one conversation"));
    }
    let (valid, problems) = crate::ids::requested(ids);
    if !problems.is_empty() {
        return Err(StoreError::RequestedIds(problems));
    }
    Ok(valid.into_iter().map(|(_, id)| id).collect())
}

/// The first 8 characters of a conversation id: its JSONL line-id suffix
/// unless another conversation of the file already uses them.
pub(crate) fn short_of(conversation_id: &str) -> String {
    conversation_id.chars().take(8).collect()
}

/// A name fit for `Content-Disposition` and file systems.
pub(crate) fn safe_filename(name: &str) -> String {
    let cleaned: String = name.chars().map(|c| if c.is_control() || "/\\\"".contains(c) { '_' } else { c }).collect();
    let cleaned = cleaned.trim_start_matches('.').trim();
    if cleaned.is_empty() { "training-file".into() } else { cleaned.to_owned() }
}

pub(crate) fn parse_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    chrono::DateTime::parse_from_rfc3339(text).map(|t| t.to_utc()).map_err(|e| StoreError::Internal(format!("bad timestamp {text:?} in the catalogue: {e}")))
}
