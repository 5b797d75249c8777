//! `lora-files create NAME --from IDS-FILE|-`: queues the creation of a
//! training file as a job, runs it (or waits for the workers elsewhere) with
//! a progress bar, and exits non-zero with the job's error.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use lora_files_store::jobs::worker::{WorkerSettings, Workers};
use lora_files_store::{Access, JobState};

use super::import::resolve_owner;
use super::StoreArgs;

#[derive(clap::Args)]
pub struct Args {
    /// The training file's name.
    name: String,
    /// Conversation ids, in the order the file should hold them.
    #[arg(required_unless_present = "from", conflicts_with = "from")]
    conversation_ids: Vec<String>,
    /// A file with one conversation id a line (`-`: standard input); blank lines and `#` comments are skipped.
    #[arg(long, value_name = "IDS-FILE")]
    from: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// Whose conversations these are (may be left out when there is exactly one user).
    #[arg(long)]
    owner: Option<String>,
    /// Workers this command runs while it waits (0: leave the job to `serve` or `lora-files worker`).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let ids = match &args.from {
        None => args.conversation_ids.clone(),
        Some(path) => read_ids(path)?,
    };
    let owner = resolve_owner(&args.store, args.owner.as_deref()).await?;
    let store = args.store.open(Access::Service).await?;
    let (job, file) = store.jobs().enqueue_create(&owner, &args.name, args.description.as_deref(), &ids).await?;
    let workers = (args.workers > 0).then(|| Workers::spawn(store.clone(), WorkerSettings { workers: args.workers, ..WorkerSettings::default() }, None));
    let bar = if std::io::stderr().is_terminal() { ProgressBar::new(job.total.max(0) as u64) } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template("{msg:>11} {bar:40} {pos}/{len} conversations, {eta} left").expect("static template"));
    let job = loop {
        let job = store.jobs().get(&owner, &job.id).await?;
        bar.set_length(job.total.max(0) as u64);
        bar.set_position(job.done.max(0) as u64);
        bar.set_message(job.phase.clone());
        if job.is_final() {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    bar.finish_and_clear();
    if let Some(workers) = workers {
        workers.shutdown().await;
    }
    match job.state {
        JobState::Succeeded => {
            let file = store.training_files().get(&owner, &file.id).await?;
            println!("created {:?} ({}): version {}, {} conversations, {} training pairs", file.name, file.id, file.version, file.conversation_count, file.total_training_pairs);
            Ok(ExitCode::SUCCESS)
        }
        state => {
            eprintln!("job {} {}: {}", job.id, state.as_str(), job.error.as_deref().unwrap_or("no error recorded"));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// One id a line; a bad line is named by file and line.
fn read_ids(path: &str) -> anyhow::Result<Vec<String>> {
    let reader: Box<dyn BufRead> = if path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(std::fs::File::open(path).with_context(|| format!("{path}: cannot open"))?))
    };
    let mut ids = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{path}:{}: cannot read", number + 1))?;
        let id = line.split('#').next().unwrap_or_default().trim();
        if id.is_empty() {
            continue;
        }
        anyhow::ensure!(lora_files_store::ids::canonical_uuid(id).is_some(), "{path}:{}: {id:?} is not a conversation id (a UUID)", number + 1);
        ids.push(id.to_owned());
    }
    anyhow::ensure!(!ids.is_empty(), "{path}: no conversation ids");
    Ok(ids)
}
