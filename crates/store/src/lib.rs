//! Catalogue (SQLite / PostgreSQL) and object storage (local disk / S3) for
//! lora-files, and the services on them. Knows nothing of HTTP.
//!
//! [`Store`] holds the [`catalogue::Catalogue`] and the [`blobs::Blobs`];
//! [`files`] is the TrainingFileService (create, add, remove, versions,
//! downloads), [`conversations`] imports conversations at any stage,
//! [`enrichment`] runs the enrichment pipeline on them, [`scaffolding`] keeps
//! the reference data it reads, [`users`] keeps accounts, [`doctor`] checks
//! that catalogue and storage agree.

pub mod blobs;
pub mod catalogue;
pub mod conversations;
pub mod doctor;
pub mod error;
pub mod enrichment;
pub mod files;
pub mod owner_cache;
pub mod records;
pub mod scaffolding;
#[cfg(feature = "testing")]
pub mod testing;
pub mod users;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use blobs::Blobs;
pub use catalogue::{Access, Catalogue};
pub use error::{Ineligible, StoreError};
pub use records::{ConversationRecord, Member, Page, TrainingFile, User, Version};

/// Where the catalogue and the objects live, and what files state.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    /// `postgres://…`; the embedded SQLite of `data_dir` when absent.
    pub database_url: Option<String>,
    /// `s3://bucket/prefix`; `data_dir/objects` when absent.
    pub storage_url: Option<String>,
    pub max_object_bytes: u64,
    /// Written as `target_model` in training files (omitted when absent).
    pub target_model: Option<String>,
    /// The vertical when conversations do not state one.
    pub default_vertical: Option<String>,
    /// What enriched files state besides the conversation (system prompt, consultant).
    pub enrichment: lora_files_format::enrich::Settings,
    /// How long list pages and download targets may be served from memory
    /// (changes made through this store drop them at once; zero: off).
    pub read_cache_ttl: std::time::Duration,
}

impl StoreConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            storage_url: None,
            max_object_bytes: blobs::DEFAULT_MAX_OBJECT_BYTES,
            target_model: None,
            default_vertical: None,
            enrichment: lora_files_format::enrich::Settings::default(),
            read_cache_ttl: std::time::Duration::from_secs(1),
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| Catalogue::sqlite_url(&self.data_dir))
    }
}

/// Called after a change's objects are written and before its catalogue
/// commit; tests use it to inject a failure at the worst moment.
pub type BeforeCommit = Arc<dyn Fn() -> Result<(), StoreError> + Send + Sync>;

/// The catalogue and the objects, with the settings every service needs.
#[derive(Clone)]
pub struct Store {
    pub catalogue: Catalogue,
    pub blobs: Blobs,
    pub config: StoreConfig,
    before_commit: Option<BeforeCommit>,
    file_locks: files::FileLocks,
    file_lists: owner_cache::OwnerCache<owner_cache::ListKey, Arc<owner_cache::ListedPage>>,
    download_targets: owner_cache::OwnerCache<(String, files::DownloadFormat, Option<i64>), files::DownloadTarget>,
}

impl Store {
    pub async fn open(config: StoreConfig, access: Access) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| StoreError::Config(format!("cannot create {}: {e}", config.data_dir.display())))?;
        let catalogue = Catalogue::connect(&config.database_url(), access).await?;
        let blobs = Blobs::from_config(config.storage_url.as_deref(), &config.data_dir, config.max_object_bytes)?;
        let (file_lists, download_targets) = (owner_cache::OwnerCache::new(config.read_cache_ttl), owner_cache::OwnerCache::new(config.read_cache_ttl));
        Ok(Self { catalogue, blobs, config, before_commit: None, file_locks: files::FileLocks::default(), file_lists, download_targets })
    }

    /// The same store with a hook run before every commit (tests).
    pub fn with_before_commit(mut self, hook: BeforeCommit) -> Self {
        self.before_commit = Some(hook);
        self
    }

    /// Drops what is cached about `owner`'s files; called after every committed change.
    pub(crate) fn files_changed(&self, owner: &str) {
        self.file_lists.invalidate(owner);
        self.download_targets.invalidate(owner);
    }

    pub(crate) fn run_before_commit(&self) -> Result<(), StoreError> {
        self.before_commit.as_ref().map_or(Ok(()), |hook| hook())
    }
}

/// Now as the catalogue writes it: RFC 3339, UTC, milliseconds (sorts as text).
pub(crate) fn now_text() -> String {
    timestamp_text(Utc::now())
}

pub(crate) fn timestamp_text(time: DateTime<Utc>) -> String {
    lora_files_format::render::timestamp(time)
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A short random token that keeps object keys of racing writers apart.
pub(crate) fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}
