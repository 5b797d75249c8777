//! `lora-files export`: a training file (or what `build` takes) as files a
//! trainer takes as they are, with token figures, dedup, splits and a card.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use lora_files_format::export::{self, ExportError, ExportFormat, ExportOptions, ExportSummary, Split, TokenSummary, Tokenizer};

use super::human_bytes;

#[derive(clap::Args)]
pub struct Args {
    /// A v4 full JSON, a JSONL, enriched conversations or folders of them.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// openai (chat messages), sharegpt, alpaca, or jsonl (the build's lines).
    #[arg(long, value_parser = parse_format)]
    format: ExportFormat,
    /// The folder the files and the dataset card (README.md) go to.
    #[arg(long)]
    out: PathBuf,
    /// Names the files NAME.train.jsonl and NAME.<split>.jsonl (default: the first input's name).
    #[arg(long)]
    name: Option<String>,
    /// Hold out a share of the conversations, e.g. validation=0.1 (no conversation is in two files).
    #[arg(long)]
    split: Option<String>,
    /// The seed that decides which conversations are held out.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Drop later exact duplicates (same normalised user input and target) and list them.
    #[arg(long)]
    dedup: bool,
    /// A Hugging Face tokenizer.json to count tokens with (default: OpenAI's o200k_base).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Warn about examples over this many tokens (they are written all the same).
    #[arg(long)]
    max_tokens: Option<usize>,
    /// OpenAI lines carry the original's `metadata` object (conversation id, persona, arc, topic, quality, tier).
    #[arg(long)]
    with_metadata: bool,
}

fn parse_format(text: &str) -> Result<ExportFormat, String> {
    ExportFormat::parse(text).ok_or_else(|| format!("{text:?} is not one of openai, sharegpt, alpaca, jsonl"))
}

/// The tokenizer asked for: a `tokenizer.json`, else o200k_base.
pub fn tokenizer(path: Option<&Path>) -> anyhow::Result<Tokenizer> {
    match path {
        Some(path) => Tokenizer::from_file(path).map_err(anyhow::Error::msg),
        None => Ok(Tokenizer::o200k()),
    }
}

/// A name from the first input: `file.json` → `file`, a folder → its name.
fn default_name(input: &Path) -> String {
    let stem = if input.is_dir() { input.file_name() } else { input.file_stem() };
    stem.map(|s| s.to_string_lossy().into_owned()).filter(|s| !s.is_empty() && !s.starts_with('.')).unwrap_or_else(|| "export".to_owned())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.format == ExportFormat::OpenAi || !args.with_metadata, "--with-metadata applies to --format openai only");
    let split = args.split.as_deref().map(|text| Split::parse(text, args.seed)).transpose().map_err(anyhow::Error::msg)?;
    let options = ExportOptions {
        format: args.format,
        name: args.name.unwrap_or_else(|| default_name(&args.inputs[0])),
        with_metadata: args.with_metadata,
        dedup: args.dedup,
        split,
        tokenizer: Some(tokenizer(args.tokenizer.as_deref())?),
        max_tokens: args.max_tokens,
    };
    let started = Instant::now();
    let summary = export::export(&args.inputs, Some(&args.out), &options).map_err(explain)?;
    print_warnings(&summary);
    for file in &summary.files {
        println!("wrote {} ({}): {} examples from {} conversations", file.path.display(), human_bytes(file.bytes), file.examples, file.conversations);
    }
    if let Some(card) = &summary.card {
        println!("wrote {}", card.display());
    }
    print_figures(&summary);
    println!("read {} in {:.2} s", human_bytes(summary.input_bytes), started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

/// Each error of an invalid input on its own line (file:line:column: path: …), then the summary.
pub fn explain(error: ExportError) -> anyhow::Error {
    match error {
        ExportError::Invalid { path, errors } => {
            for error in &errors {
                eprintln!("{}:{error}", path.display());
            }
            anyhow::anyhow!("{} is not a valid input ({} error(s)); nothing was written", path.display(), errors.len())
        }
        other => anyhow::anyhow!("{other}; nothing was written"),
    }
}

/// Duplicates and examples over the limit, first few by id, on stderr.
pub fn print_warnings(summary: &ExportSummary) {
    const SHOWN: usize = 20;
    for duplicate in summary.duplicates.iter().take(SHOWN) {
        let verb = if summary.dedup { "dropped" } else { "kept" };
        eprintln!("duplicate {verb}: {} repeats {}", duplicate.id, duplicate.first);
    }
    if summary.duplicates.len() > SHOWN {
        eprintln!("… and {} more duplicates", summary.duplicates.len() - SHOWN);
    }
    for (id, tokens) in summary.over_max_tokens.iter().take(SHOWN) {
        eprintln!("warning: {id} has {tokens} tokens, over --max-tokens (written all the same)");
    }
    if summary.over_max_tokens.len() > SHOWN {
        eprintln!("warning: … and {} more examples over --max-tokens", summary.over_max_tokens.len() - SHOWN);
    }
}

pub fn print_figures(summary: &ExportSummary) {
    let totals = &summary.totals;
    println!(
        "{} conversations, {} training pairs, {} {} lines; {} duplicate(s){}",
        totals.conversations,
        totals.training_pairs,
        summary.examples,
        summary.format.as_str(),
        summary.duplicates.len(),
        if summary.dedup { " dropped" } else { "" }
    );
    if let (Some(tokens), Some(tokenizer)) = (&summary.tokens, &summary.tokenizer) {
        print_tokens(tokenizer, tokens);
    }
}

pub fn print_tokens(tokenizer: &str, tokens: &TokenSummary) {
    println!("tokens ({tokenizer}): {tokens}");
}
