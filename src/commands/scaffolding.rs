//! `lora-files scaffolding`: the personas, emotional arcs, training topics and
//! prompt templates enrichment reads.

use std::path::PathBuf;
use std::process::ExitCode;

use lora_files_format::enrich::reference::{SeedKind, SeedRow};
use lora_files_store::Access;

use super::StoreArgs;

#[derive(clap::Subcommand)]
pub enum ScaffoldingCommand {
    /// Load seed files (NDJSON, one object per line), inserting or replacing
    /// rows by key; loading the same file twice changes nothing.
    Load {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List what is loaded.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

const KINDS: [(SeedKind, &str); 4] = [
    (SeedKind::Persona, "personas"),
    (SeedKind::EmotionalArc, "emotional arcs"),
    (SeedKind::TrainingTopic, "training topics"),
    (SeedKind::Template, "prompt templates"),
];

pub async fn run(command: ScaffoldingCommand) -> anyhow::Result<ExitCode> {
    match command {
        ScaffoldingCommand::Load { files, store } => load(&files, &store).await,
        ScaffoldingCommand::List { store } => {
            let store = store.open(Access::Service).await?;
            for (kind, label) in KINDS {
                let rows = store.scaffolding(kind).await?;
                println!("{label} ({}):", rows.len());
                for row in rows {
                    println!("  {:<36} {}", row.key, row.name);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads every row of every file first: one bad line loads nothing.
async fn load(files: &[PathBuf], args: &StoreArgs) -> anyhow::Result<ExitCode> {
    let mut rows = Vec::new();
    let mut errors = 0;
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        for (index, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let row = serde_json::from_str(line).map_err(|e| e.to_string()).and_then(SeedRow::from_value);
            match row {
                Ok(row) => rows.push(row),
                Err(error) => {
                    errors += 1;
                    eprintln!("{}:{}: {error}", file.display(), index + 1);
                }
            }
        }
    }
    anyhow::ensure!(errors == 0, "{errors} bad line(s); nothing was loaded");
    let store = args.open(Access::Admin).await?;
    store.load_scaffolding(&rows).await?;
    let counts: Vec<String> = KINDS
        .iter()
        .map(|(kind, label)| (rows.iter().filter(|r| r.kind == *kind).count(), label))
        .filter(|(count, _)| *count > 0)
        .map(|(count, label)| format!("{count} {label}"))
        .collect();
    println!("loaded {}", counts.join(", "));
    Ok(ExitCode::SUCCESS)
}
