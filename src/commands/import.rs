//! `lora-files import`: conversation files at any stage (raw LLM output,
//! parsed, enriched) into the catalogue and storage.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use lora_files_store::conversations::{ImportRequest, Imported};
use lora_files_store::scaffolding::ScaffoldingKeys;
use lora_files_store::{Access, Store, StoreError};

use super::StoreArgs;

/// Files read and handed to the store at once: bounds memory, amortises
/// the catalogue's transaction.
const IMPORT_BATCH: usize = 512;

#[derive(clap::Args)]
pub struct Args {
    /// Conversation files, or folders of them (recursive *.json): raw LLM
    /// output, parsed conversations or enriched v4 files, told apart by content.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Whose conversations these are (may be left out when there is exactly one user).
    #[arg(long)]
    owner: Option<String>,
    /// The persona of raw conversations (a key of the loaded scaffolding).
    #[arg(long)]
    persona: Option<String>,
    /// The emotional arc of raw conversations.
    #[arg(long)]
    arc: Option<String>,
    /// The training topic of raw conversations.
    #[arg(long)]
    topic: Option<String>,
    /// The conversation's id, when importing one raw file that carries none
    /// (otherwise one is derived from the file's bytes).
    #[arg(long)]
    conversation_id: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    // A path that is missing or loops is reported and the rest imported; the run then exits 1.
    let gathered = lora_files_format::io::gather_input_files(&args.paths);
    let files = gathered.files;
    anyhow::ensure!(args.conversation_id.is_none() || files.len() == 1, "--conversation-id names one conversation, but {} files were given", files.len());
    let owner = resolve_owner(&args.store, args.owner.as_deref()).await?;
    let store = args.store.open(Access::Service).await?;
    let scaffolding = ScaffoldingKeys { persona: args.persona, emotional_arc: args.arc, training_topic: args.topic };
    store.scaffolding().check_keys(&scaffolding).await?;
    let (mut imported, mut unchanged, mut failed, mut review) = (0, 0, gathered.problems.len(), 0);
    for problem in &gathered.problems {
        eprintln!("{problem}");
    }
    // Files go to the store in batches: enriched ones are stored together
    // (one transaction per batch), the rest one by one, each answered in order.
    // On a terminal only; lines printed meanwhile go above it.
    let bar = if std::io::stderr().is_terminal() { ProgressBar::new(files.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} files, {eta} left").expect("static template"));
    for batch in files.chunks(IMPORT_BATCH) {
        let mut read = Vec::with_capacity(batch.len());
        for file in batch {
            match std::fs::read(file) {
                Ok(bytes) => read.push((file, bytes::Bytes::from(bytes))),
                Err(error) => {
                    bar.suspend(|| eprintln!("{}: {error}", file.display()));
                    failed += 1;
                }
            }
        }
        let requests = read
            .iter()
            .map(|(file, bytes)| ImportRequest {
                scaffolding: scaffolding.clone(),
                conversation_id: args.conversation_id.clone(),
                keep_unparsable: true,
                ..ImportRequest::new(file.display().to_string(), bytes.clone())
            })
            .collect();
        let answers = store.conversations().import_many(&owner, requests).await;
        for ((file, bytes), answer) in read.iter().zip(answers) {
            match answer {
                Ok(Imported::New(record)) if record.parse_error.is_some() => {
                    review += 1;
                    // Where it broke, as `validate` says it: line, column and JSON path.
                    let place = match lora_files_format::enrich::source::parse(bytes) {
                        Err(error) => {
                            let path = lora_files_format::position::path_at(bytes, error.offset);
                            format!("{}:{}: {path}: {}", error.position.line, error.position.column, error.message)
                        }
                        Ok(_) => record.parse_error.clone().unwrap_or_default(),
                    };
                    bar.suspend(|| eprintln!("{}:{place} (not valid JSON, kept for review as {})", file.display(), record.conversation_id));
                }
                Ok(Imported::New(record)) => {
                    imported += 1;
                    bar.suspend(|| println!("imported {} from {} ({}, {})", record.conversation_id, file.display(), record.source_stage, record.enrichment_status));
                }
                Ok(Imported::Unchanged(record)) => {
                    unchanged += 1;
                    bar.suspend(|| println!("unchanged {} ({} was imported before)", record.conversation_id, file.display()));
                }
                Err(StoreError::InvalidSource { path, errors }) => {
                    failed += 1;
                    for error in errors {
                        bar.suspend(|| eprintln!("{path}:{error}"));
                    }
                }
                Err(error) => {
                    failed += 1;
                    bar.suspend(|| eprintln!("{}: {error}", file.display()));
                }
            }
        }
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    println!("{imported} imported, {unchanged} unchanged, {review} kept for review, {failed} failed");
    Ok(if failed + review > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The user named by `--owner`, or the only user there is.
pub async fn resolve_owner(args: &StoreArgs, owner: Option<&str>) -> anyhow::Result<String> {
    let store: Store = args.open(Access::Admin).await?;
    match owner {
        Some(email) => match store.users().by_email(email).await? {
            Some(user) => Ok(user.id),
            None => anyhow::bail!("no user {email}; add one with `lora-files user add {email}`"),
        },
        None => {
            let users = store.users().list().await?;
            match users.as_slice() {
                [only] => Ok(only.id.clone()),
                [] => anyhow::bail!("there are no users yet; add one with `lora-files user add EMAIL`"),
                _ => anyhow::bail!("there are {} users; say whose conversations these are with --owner EMAIL", users.len()),
            }
        }
    }
}
