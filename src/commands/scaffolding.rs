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
        #[arg(required_unless_present = "bundled")]
        files: Vec<PathBuf>,
        /// Also load the seeds bundled with lora-files (the original system's
        /// 3 personas, 7 emotional arcs and 65 training topics).
        #[arg(long)]
        bundled: bool,
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
        ScaffoldingCommand::Load { files, bundled, store } => load(&files, bundled, &store).await,
        ScaffoldingCommand::List { store } => {
            let store = store.open(Access::Service).await?;
            for (kind, label) in KINDS {
                let rows = store.scaffolding().list(kind).await?;
                println!("{label} ({}):", rows.len());
                for row in rows {
                    println!("  {:<36} {}", row.key, row.name);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The seed files of the original system, compiled in.
const BUNDLED: [(&str, &str); 3] = [
    ("personas-seed.ndjson", include_str!("../../tests/fixtures/scaffolding/personas-seed.ndjson")),
    ("emotional-arcs-seed.ndjson", include_str!("../../tests/fixtures/scaffolding/emotional-arcs-seed.ndjson")),
    ("training-topics-seed.ndjson", include_str!("../../tests/fixtures/scaffolding/training-topics-seed.ndjson")),
];

/// Reads every row of every file first: one bad line loads nothing.
async fn load(files: &[PathBuf], bundled: bool, args: &StoreArgs) -> anyhow::Result<ExitCode> {
    let mut sources = Vec::new();
    if bundled {
        sources.extend(BUNDLED.iter().map(|(name, text)| (format!("(bundled) {name}"), text.to_string())));
    }
    for file in files {
        sources.push((file.display().to_string(), std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?));
    }
    let mut rows = Vec::new();
    let mut errors = 0;
    for (name, text) in &sources {
        for (index, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let row = serde_json::from_str(line).map_err(|e| e.to_string()).and_then(SeedRow::from_value);
            match row {
                Ok(row) => rows.push(row),
                Err(error) => {
                    errors += 1;
                    eprintln!("{name}:{}: {error}", index + 1);
                }
            }
        }
    }
    anyhow::ensure!(errors == 0, "{errors} bad line(s); nothing was loaded");
    let store = args.open(Access::Admin).await?;
    store.scaffolding().load(&rows).await?;
    let counts: Vec<String> = KINDS
        .iter()
        .map(|(kind, label)| (rows.iter().filter(|r| r.kind == *kind).count(), label))
        .filter(|(count, _)| *count > 0)
        .map(|(count, label)| format!("{count} {label}"))
        .collect();
    println!("loaded {}", counts.join(", "));
    Ok(ExitCode::SUCCESS)
}
