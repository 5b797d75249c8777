//! `lora-files worker`: runs background jobs only (no HTTP), for more
//! machines on the same catalogue and storage; stops on SIGTERM or Ctrl-C,
//! giving back the jobs it holds.

use std::process::ExitCode;
use std::time::Duration;

use lora_files_store::jobs::worker::{WorkerSettings, Workers};
use lora_files_store::Access;

use super::StoreArgs;

/// How many jobs run at once and how long a claim lasts (shared with `serve`).
#[derive(clap::Args, Clone, Debug)]
pub struct WorkerArgs {
    /// Jobs this process runs at once (0: none).
    #[arg(long, env = "LORA_FILES_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// How long a claim on a job lasts unless renewed (renewed every third of it), in seconds.
    #[arg(long, env = "LORA_FILES_JOB_CLAIM_SECONDS", default_value_t = 60)]
    pub job_claim_seconds: u64,
}

impl WorkerArgs {
    pub fn settings(&self) -> WorkerSettings {
        WorkerSettings { workers: self.workers, lease: Duration::from_secs(self.job_claim_seconds.max(1)), ..WorkerSettings::default() }
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    worker: WorkerArgs,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into()))
        .with_writer(std::io::stderr)
        .init();
    anyhow::ensure!(args.worker.workers > 0, "--workers must be at least 1 for `lora-files worker`");
    let store = args.store.open(Access::Service).await?;
    let workers = Workers::spawn(store.clone(), args.worker.settings(), None);
    tracing::info!(workers = args.worker.workers, catalogue = %store.describe_catalogue(), "lora-files worker is running");
    super::serve::shutdown_signal().await;
    workers.shutdown().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
