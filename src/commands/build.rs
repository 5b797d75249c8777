//! `lora-files build`: the offline build of one training file.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use lora_files_format::build::{self, BuildError, BuildOptions, Stage};

use super::{clock, figure, human_bytes};

#[derive(clap::Args)]
pub struct Args {
    /// Enriched conversation files, folders of them (recursive *.json), or full JSON files to carry over.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// The training file's name; the outputs are OUT/NAME.json and OUT/NAME.jsonl.
    #[arg(long)]
    name: String,
    /// Where to write the outputs.
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    description: Option<String>,
    /// Write the original system's `_meta` first line in the JSONL (for old consumers).
    #[arg(long)]
    jsonl_meta: bool,
    /// The model the file is meant to train (omitted from the file when not given nor carried over).
    #[arg(long, env = "LORA_FILES_TARGET_MODEL")]
    target_model: Option<String>,
    /// The vertical (default: the inputs' `dataset_metadata.vertical`).
    #[arg(long, env = "LORA_FILES_VERTICAL")]
    vertical: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = BuildOptions {
        name: args.name,
        description: args.description,
        target_model: args.target_model,
        vertical: args.vertical,
        jsonl_meta: args.jsonl_meta,
        now: clock()?,
    };
    let started = Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg}").expect("static template"));
        bar
    });
    let result = build::build(&args.inputs, &args.out, &options, |progress| {
        if let Some(bar) = &bar {
            bar.set_length(progress.files_total as u64);
            bar.set_position(progress.files_done as u64);
            bar.set_message(match progress.stage {
                Stage::Counting => "counting".to_owned(),
                Stage::Writing => human_bytes(progress.bytes_done),
            });
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = match result {
        Ok(summary) => summary,
        Err(BuildError::Invalid { path, errors }) => {
            report_invalid(&path, &errors);
            anyhow::bail!("{} is not a valid input ({} error(s)); nothing was written", path.display(), errors.len());
        }
        Err(BuildError::BadInputs(bad)) => {
            for error in &bad {
                match error {
                    BuildError::Invalid { path, errors } => report_invalid(path, errors),
                    other => eprintln!("{other}"),
                }
            }
            anyhow::bail!("{} inputs cannot be built from; nothing was written", bad.len());
        }
        Err(error) => anyhow::bail!("{error}; nothing was written"),
    };
    for notice in &summary.notices {
        eprintln!("warning: {notice}");
    }
    for (path, count) in &summary.files_with_warnings {
        eprintln!("{}: {count} warning(s)", path.display());
    }
    if summary.warning_count > 0 {
        eprintln!("`lora-files validate FILE…` lists each warning with its line and path");
    }
    let elapsed = started.elapsed();
    let quality = &summary.quality;
    println!("wrote {} ({})", summary.json_path.display(), human_bytes(summary.json_bytes));
    println!("wrote {} ({})", summary.jsonl_path.display(), human_bytes(summary.jsonl_bytes));
    println!(
        "{} conversations, {} training pairs ({} turns), quality avg {} min {} max {}, {} warning(s)",
        summary.conversations,
        summary.training_pairs,
        summary.turns,
        figure(quality.avg_quality_score),
        figure(quality.min_quality_score),
        figure(quality.max_quality_score),
        summary.warning_count
    );
    println!("read {} in {:.2} s", human_bytes(summary.input_bytes), elapsed.as_secs_f64());
    print_token_figures(&summary.jsonl_path)?;
    Ok(ExitCode::SUCCESS)
}

/// Each error of an invalid input, as `validate` prints it.
fn report_invalid(path: &std::path::Path, errors: &[lora_files_format::Diagnostic]) {
    for error in errors {
        eprintln!("{}:{error}", path.display());
    }
}

/// The JSONL's token figures (o200k_base), as `validate --stats` gives them.
fn print_token_figures(jsonl: &std::path::Path) -> anyhow::Result<()> {
    let options = lora_files_format::export::ExportOptions {
        format: lora_files_format::export::ExportFormat::Jsonl,
        name: "build".into(),
        with_metadata: false,
        dedup: false,
        split: None,
        tokenizer: Some(lora_files_format::export::Tokenizer::o200k()),
        max_tokens: None,
    };
    let summary = lora_files_format::export::export(&[jsonl.to_owned()], None, &options).map_err(super::export::explain)?;
    if let (Some(tokens), Some(tokenizer)) = (&summary.tokens, &summary.tokenizer) {
        super::export::print_tokens(tokenizer, tokens);
    }
    if !summary.duplicates.is_empty() {
        println!("{} exact duplicate pair(s) (`lora-files export --dedup` drops them)", summary.duplicates.len());
    }
    Ok(())
}
