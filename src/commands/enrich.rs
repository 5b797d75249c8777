//! `lora-files enrich`: runs the enrichment pipeline on imported conversations.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use lora_files_store::enrichment::EnrichOutcome;
use lora_files_store::Access;

use super::import::resolve_owner;
use super::StoreArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Conversation ids to enrich.
    #[arg(required_unless_present = "all_pending", conflicts_with = "all_pending")]
    conversation_ids: Vec<String>,
    /// Every conversation not enriched yet (not started, or stopped by a failure).
    #[arg(long)]
    all_pending: bool,
    /// Whose conversations these are (may be left out when there is exactly one user).
    #[arg(long)]
    owner: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let owner = resolve_owner(&args.store, args.owner.as_deref()).await?;
    let store = args.store.open(Access::Service).await?;
    let ids = if args.all_pending { store.enrichment().pending(&owner).await? } else { args.conversation_ids };
    let started = Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(ids.len() as u64);
        bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} conversations {msg}").expect("static template"));
        bar
    });
    let (mut enriched, mut skipped, mut failures) = (0, 0, Vec::new());
    let mut runs = std::pin::pin!(store.enrichment().run_each(&owner, &ids));
    while let Some((id, result)) = runs.next().await {
        match result {
            Ok(run) => match run.outcome {
                EnrichOutcome::Enriched => enriched += 1,
                EnrichOutcome::Skipped => skipped += 1,
                EnrichOutcome::Failed => {
                    let reason = run.conversation.enrichment_error.unwrap_or_default();
                    failures.push(format!("{id}: {} — {reason}", run.conversation.enrichment_status));
                }
            },
            Err(lora_files_store::StoreError::NotFound) => failures.push(format!("{id}: no such conversation")),
            Err(error) => failures.push(format!("{id}: {error}")),
        }
        if let Some(bar) = &bar {
            bar.inc(1);
            bar.set_message(format!("{} failed", failures.len()));
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for failure in &failures {
        eprintln!("failed {failure}");
    }
    println!(
        "{enriched} enriched, {} failed, {skipped} skipped (already enriched) in {:.2} s",
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
