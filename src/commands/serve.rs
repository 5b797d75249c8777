//! `lora-files serve`: the HTTP API until SIGTERM or Ctrl-C, finishing the
//! requests in flight.

use std::net::SocketAddr;
use std::process::ExitCode;

use lora_files_server::{AppState, Settings};
use lora_files_store::{Access, LinkSettings, Store};

use super::StoreArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "LORA_FILES_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The URL clients use to reach this server (download links are built on it).
    #[arg(long, env = "LORA_FILES_PUBLIC_URL")]
    public_url: Option<String>,
    /// Largest request body, in bytes.
    #[arg(long, env = "LORA_FILES_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Most conversation ids one request may name.
    #[arg(long, env = "LORA_FILES_MAX_IDS_PER_REQUEST", default_value_t = 10_000)]
    max_ids_per_request: usize,
    /// How long a create, add or remove waits for its job before it answers 202 with the job, in seconds.
    #[arg(long, env = "LORA_FILES_SYNC_WAIT", default_value_t = 30)]
    sync_wait: u64,
    /// Serve `GET /metrics` (Prometheus text format; aggregates only, no token needed).
    #[arg(long, env = "LORA_FILES_METRICS")]
    metrics: bool,
    #[command(flatten)]
    worker: super::worker::WorkerArgs,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let secret = super::server_secret(&args.store.data_dir)?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let address = listener.local_addr()?;
    let mut config = args.store.config();
    config.links = LinkSettings {
        public_url: args.public_url.unwrap_or_else(|| format!("http://{address}")),
        secret: secret.clone(),
        lifetime: std::time::Duration::from_secs(3600),
    };
    let store = Store::open(config, Access::Service).await?;
    first_run_login(&args.store).await?;

    let mut settings = Settings::new();
    settings.max_body_bytes = args.max_body_bytes;
    settings.max_ids_per_request = args.max_ids_per_request;
    settings.sync_wait = std::time::Duration::from_secs(args.sync_wait);
    settings.job_workers = args.worker.workers;
    settings.metrics = args.metrics;
    let state = AppState::new(store.clone(), &secret, settings);
    let on_finished = state.metrics.on_finished();
    let app = lora_files_server::app(state);
    tracing::info!(%address, catalogue = %store.describe_catalogue(), "lora-files is serving");
    println!("lora-files is serving on http://{address} (web UI at /, API under /api, OpenAPI at /api/openapi.json)");
    let workers = lora_files_store::jobs::worker::Workers::spawn(store.clone(), args.worker.settings(), Some(on_finished));
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).with_graceful_shutdown(shutdown_signal()).await?;
    workers.shutdown().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// With no user at all, creates one and prints its password once: the server
/// never runs without authentication, and a first user can still log in.
async fn first_run_login(args: &StoreArgs) -> anyhow::Result<()> {
    let admin = args.open(Access::Admin).await?;
    if !admin.users().list().await?.is_empty() {
        return Ok(());
    }
    let password = hex::encode(rand::random::<[u8; 12]>());
    let user = admin.users().add("admin@localhost", Some(&password)).await?;
    println!("No users yet: created {} with password {password}", user.email);
    println!("Sign in on the web UI, or POST /api/auth/token {{\"email\": \"{}\", \"password\": \"…\"}}; this password is not shown again.", user.email);
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
