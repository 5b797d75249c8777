//! One module per subcommand; each has `Args` (or a subcommand enum) and `run`.

pub mod bench;
pub mod build;
pub mod conversation;
pub mod create;
pub mod doctor;
pub mod enrich;
pub mod export;
pub mod import;
pub mod scaffolding;
pub mod serve;
pub mod user;
pub mod validate;
pub mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use lora_files_store::{Access, Store, StoreConfig};

/// Where the catalogue and the objects are: flags, or `LORA_FILES_*` variables.
#[derive(clap::Args, Clone, Debug)]
pub struct StoreArgs {
    /// The embedded catalogue and local objects live here.
    #[arg(long, env = "LORA_FILES_DATA_DIR", default_value = "./lora-files-data")]
    pub data_dir: PathBuf,
    /// A PostgreSQL catalogue instead of the embedded SQLite (postgres://…).
    #[arg(long, env = "LORA_FILES_DATABASE_URL")]
    pub database_url: Option<String>,
    /// S3 storage instead of the local folder (s3://bucket/prefix; AWS_* variables for credentials).
    #[arg(long, env = "LORA_FILES_STORAGE_URL")]
    pub storage_url: Option<String>,
    /// Largest object the store writes, in bytes.
    #[arg(long, env = "LORA_FILES_MAX_OBJECT_BYTES", default_value_t = lora_files_store::DEFAULT_MAX_OBJECT_BYTES)]
    pub max_object_bytes: u64,
    /// Stated as `target_model` in the training files written.
    #[arg(long, env = "LORA_FILES_TARGET_MODEL")]
    pub target_model: Option<String>,
    /// The vertical when conversations do not state one.
    #[arg(long, env = "LORA_FILES_VERTICAL")]
    pub vertical: Option<String>,
    /// The system prompt enrichment writes when a conversation's scaffolding
    /// snapshot has none (default: the original's Elena Morales prompt).
    #[arg(long, env = "LORA_FILES_DEFAULT_SYSTEM_PROMPT")]
    pub default_system_prompt: Option<String>,
    /// How long training-file list pages and download targets may be served
    /// from memory, in milliseconds; changes made through this process drop
    /// them at once, changes made by other processes show within this time (0: off).
    #[arg(long, env = "LORA_FILES_READ_CACHE_MS", default_value_t = 1000)]
    pub read_cache_ms: u64,
}

impl StoreArgs {
    pub fn config(&self) -> StoreConfig {
        StoreConfig {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            storage_url: self.storage_url.clone(),
            max_object_bytes: self.max_object_bytes,
            target_model: self.target_model.clone(),
            default_vertical: self.vertical.clone(),
            enrichment: {
                let mut settings = lora_files_format::enrich::Settings::default();
                if let Some(prompt) = &self.default_system_prompt {
                    settings.system_prompt = prompt.clone();
                }
                settings
            },
            read_cache_ttl: std::time::Duration::from_millis(self.read_cache_ms),
            links: lora_files_store::LinkSettings::default(),
            ..StoreConfig::new(&self.data_dir)
        }
    }

    pub async fn open(&self, access: Access) -> anyhow::Result<Store> {
        Ok(Store::open(self.config(), access).await?)
    }
}

/// Runs an async command on a fresh runtime.
pub fn run_async(command: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(command)
}

/// `lora-files migrate`.
pub async fn migrate(args: StoreArgs) -> anyhow::Result<ExitCode> {
    let store = args.open(Access::Admin).await?;
    let (applied, _) = store.migrations().await?;
    println!("catalogue {}: {applied} migration(s) applied", store.describe_catalogue());
    Ok(ExitCode::SUCCESS)
}

/// Now, or `SOURCE_DATE_EPOCH` when set, so builds can be reproduced byte for byte.
pub fn clock() -> anyhow::Result<DateTime<Utc>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(seconds) => {
            let seconds: i64 = seconds.trim().parse().map_err(|_| anyhow::anyhow!("SOURCE_DATE_EPOCH must be whole seconds, found {seconds:?}"))?;
            DateTime::from_timestamp(seconds, 0).ok_or_else(|| anyhow::anyhow!("SOURCE_DATE_EPOCH {seconds} is out of range"))
        }
        Err(_) => Ok(Utc::now()),
    }
}

/// `1234567` → `1.2 MB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// `Some(3.25)` → `3.25`, `None` → `n/a`.
pub fn figure(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"))
}

/// The server secret: `LORA_FILES_JWT_SECRET`, else one generated on first
/// use and kept in the data directory (readable by its owner only).
pub fn server_secret(data_dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(secret) = std::env::var("LORA_FILES_JWT_SECRET") {
        anyhow::ensure!(secret.len() >= 32, "LORA_FILES_JWT_SECRET must be at least 32 characters");
        return Ok(secret.into_bytes());
    }
    let path = data_dir.join("jwt-secret");
    if let Ok(secret) = std::fs::read_to_string(&path) {
        return Ok(secret.trim().as_bytes().to_vec());
    }
    std::fs::create_dir_all(data_dir)?;
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(&path)?, secret.as_bytes())?;
    Ok(secret.into_bytes())
}
