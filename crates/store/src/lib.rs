//! Catalogue (SQLite / PostgreSQL) and object storage (local disk / S3) for
//! lora-files, and the services on them. Knows nothing of HTTP.
//!
//! A [`Store`] hands out one service per noun — [`Store::training_files`],
//! [`Store::conversations`], [`Store::enrichment`], [`Store::users`],
//! [`Store::scaffolding`] — over its private catalogue and blob handles;
//! [`Store::health`] and [`Store::doctor`] are for operators.

pub mod blobs;
mod catalogue;
mod cpu;
pub mod conversations;
pub mod doctor;
pub mod enrichment;
mod error;
pub mod ids;
pub mod jobs;
pub mod links;
mod owner_cache;
mod paging;
pub mod progress;
pub mod records;
pub mod scaffolding;
#[cfg(feature = "testing")]
pub mod testing;
pub mod training_files;
pub mod users;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use blobs::{Blobs, ObjectKind, StoredObject, DEFAULT_MAX_OBJECT_BYTES};
pub use catalogue::{redact, Access, Backend};
pub use conversations::Conversations;
pub use enrichment::Enrichment;
pub use jobs::{Job, JobKind, JobState, Jobs};
pub use error::{Ineligible, StoreError};
pub use links::LinkSettings;
pub use owner_cache::ListedPage;
pub use records::{ConversationRecord, Member, Page, TrainingFile, User, Version};
pub use scaffolding::Scaffolding;
pub use training_files::TrainingFiles;
pub use users::Users;

use catalogue::Catalogue;

/// Where the catalogue and the objects live, and what files state.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    /// `postgres://…`; the embedded SQLite of `data_dir` when absent.
    pub database_url: Option<String>,
    /// `s3://bucket/prefix`; `data_dir/objects` when absent.
    pub storage_url: Option<String>,
    /// The largest object written: bounds one upload (a segment), not a file.
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
    /// Where download links point and how they are signed.
    pub links: LinkSettings,
    /// New member rows a change holds before it stages them in the
    /// catalogue (memory against statements; tests set it low so changes
    /// of a few conversations take the staging path too).
    pub member_rows_per_stage: usize,
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
            links: LinkSettings::default(),
            member_rows_per_stage: 2048,
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
/// Cloning is cheap: clones share the pool, the object store and the caches.
#[derive(Clone)]
pub struct Store {
    catalogue: Catalogue,
    blobs: Blobs,
    config: Arc<StoreConfig>,
    signer: Arc<links::Signer>,
    before_commit: Option<BeforeCommit>,
    files: training_files::Shared,
    cpu: cpu::CpuPool,
}

/// What `health` found: each part answers or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    pub database: bool,
    pub storage: bool,
}

impl Store {
    pub async fn open(config: StoreConfig, access: Access) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| StoreError::Config(format!("cannot create {}: {e}", config.data_dir.display())))?;
        let catalogue = Catalogue::connect(&config.database_url(), access).await?;
        let blobs = Blobs::from_config(config.storage_url.as_deref(), &config.data_dir, config.max_object_bytes)?;
        let signer = Arc::new(links::Signer::new(&config.links.secret));
        let files = training_files::Shared::new(config.read_cache_ttl);
        Ok(Self { catalogue, blobs, config: Arc::new(config), signer, before_commit: None, files, cpu: cpu::CpuPool::new()? })
    }

    /// The same store with a hook run before every commit (tests).
    pub fn with_before_commit(mut self, hook: BeforeCommit) -> Self {
        self.before_commit = Some(hook);
        self
    }

    pub fn training_files(&self) -> TrainingFiles<'_> {
        TrainingFiles::new(self)
    }

    pub fn conversations(&self) -> Conversations<'_> {
        Conversations::new(self)
    }

    pub fn enrichment(&self) -> Enrichment<'_> {
        Enrichment::new(self)
    }

    pub fn jobs(&self) -> Jobs<'_> {
        Jobs::new(self)
    }

    pub fn users(&self) -> Users<'_> {
        Users::new(self)
    }

    pub fn scaffolding(&self) -> Scaffolding<'_> {
        Scaffolding::new(self)
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Where the objects are, for messages (`local folder …`, `S3 s3://…`).
    pub fn describe_storage(&self) -> &str {
        self.blobs.describe()
    }

    /// The catalogue's URL without its password, for messages.
    pub fn describe_catalogue(&self) -> String {
        redact(&self.config.database_url())
    }

    pub fn backend(&self) -> Backend {
        self.catalogue.backend()
    }

    /// Whether the catalogue and the storage answer (cheap: one query, one listing).
    pub async fn health(&self) -> Health {
        let (database, storage) = futures::join!(self.catalogue.ping(), self.blobs.list_with_age("doctor"));
        Health { database: database.is_ok(), storage: storage.is_ok() }
    }

    /// The migrations applied, and how many this build knows.
    pub async fn migrations(&self) -> Result<(usize, usize), StoreError> {
        Ok((self.catalogue.applied_migrations().await?.len(), self.catalogue.known_migrations()))
    }

    /// Closes the catalogue's connections (tests drop their databases after).
    pub async fn close(&self) {
        self.catalogue.pool().close().await;
    }

    pub(crate) fn run_before_commit(&self) -> Result<(), StoreError> {
        self.before_commit.as_ref().map_or(Ok(()), |hook| hook())
    }
}

impl Store {
    /// Deletes every object under `prefix`. Best effort: what is left is
    /// found by `doctor`.
    pub(crate) async fn delete_prefix(&self, prefix: &str) {
        match self.blobs.list(prefix).await {
            Ok(objects) => {
                for (key, _) in objects {
                    if let Err(error) = self.blobs.delete(&key).await {
                        tracing::warn!(%key, %error, "could not delete an object; `lora-files doctor --repair` will");
                    }
                }
            }
            Err(error) => tracing::warn!(%prefix, %error, "could not list objects to delete; `lora-files doctor --repair` will"),
        }
    }
}

/// PostgreSQL text cannot hold NUL (U+0000) while SQLite can: both backends
/// refuse it alike in anything stored or matched as text, naming the field.
pub fn refuse_nul(field: &str, value: Option<&str>) -> Result<(), StoreError> {
    match value {
        Some(text) if text.contains('\0') => Err(StoreError::invalid(field, "must not contain the NUL character (U+0000)")),
        _ => Ok(()),
    }
}

/// Scaffolding keys as stored: [`refuse_nul`] for each, named as `fields` (persona, arc, topic) say.
pub(crate) fn refuse_nul_keys(keys: &scaffolding::ScaffoldingKeys, fields: [&str; 3]) -> Result<(), StoreError> {
    refuse_nul(fields[0], keys.persona.as_deref())?;
    refuse_nul(fields[1], keys.emotional_arc.as_deref())?;
    refuse_nul(fields[2], keys.training_topic.as_deref())
}

/// JSON as the catalogue keeps it in text columns.
pub(crate) fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("values serialise")
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
