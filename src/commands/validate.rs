//! `lora-files validate`: findings for each file, by kind detected from content.

use std::path::PathBuf;
use std::process::ExitCode;

use lora_files_format::input::{self, FileKind, Mode, ReadFailure};
use lora_files_format::export::{self, ExportError, ExportFormat, ExportOptions, TokenSummary};
use lora_files_format::{Diagnostic, JsonPath, Severity};
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
    /// Also count each valid file's tokens and exact duplicates (as `export --format jsonl` would).
    #[arg(long)]
    stats: bool,
    /// With --stats: a Hugging Face tokenizer.json (default: OpenAI's o200k_base).
    #[arg(long, requires = "stats")]
    tokenizer: Option<PathBuf>,
    /// With --stats: count the examples over this many tokens.
    #[arg(long, requires = "stats")]
    max_tokens: Option<usize>,
}

/// What `--stats` found in one valid file.
#[derive(Serialize)]
struct FileStats {
    tokenizer: String,
    tokens: TokenSummary,
    duplicates: usize,
}

#[derive(Serialize)]
struct FileResult {
    file: PathBuf,
    kind: Option<FileKind>,
    errors: usize,
    warnings: usize,
    diagnostics: Vec<Diagnostic>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<FileStats>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut results = Vec::new();
    // Folders are walked for their *.json files; a path that is missing,
    // unreadable or loops is one failed result, and the others are still checked.
    let gathered = lora_files_format::io::gather_input_files(&args.files);
    for problem in gathered.problems {
        results.push(unreadable(problem.path, &problem.error));
    }
    for file in &gathered.files {
        let report = match input::read_file(file, Mode::Validate, |_| Ok::<(), ()>(())) {
            Ok(report) => report,
            Err(ReadFailure::Io { source, .. }) => {
                results.push(unreadable(file.clone(), &source));
                continue;
            }
            Err(ReadFailure::Sink(())) => unreachable!("validation never refuses a conversation"),
        };
        let (errors, warnings) = (report.findings.error_count(), report.findings.warning_count());
        results.push(FileResult { file: file.clone(), kind: report.kind, errors, warnings, diagnostics: report.findings.into_vec(), stats: None });
    }
    cross_check_pairs(&mut results)?;
    if args.stats {
        add_stats(&mut results, args.tokenizer, args.max_tokens)?;
    }
    let errors: usize = results.iter().map(|r| r.errors).sum();
    let warnings: usize = results.iter().map(|r| r.warnings).sum();
    if args.json {
        let out = serde_json::json!({"files": results, "errors": errors, "warnings": warnings});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for result in &results {
            for diagnostic in &result.diagnostics {
                println!("{}:{diagnostic}", result.file.display());
            }
        }
        for result in &results {
            let kind = result.kind.map_or("unreadable".to_owned(), |k| format!("{k:?}").to_lowercase());
            println!("{}: {kind}, {} error(s), {} warning(s)", result.file.display(), result.errors, result.warnings);
            if let Some(stats) = &result.stats {
                println!("{}: tokens ({}): {}; {} exact duplicate(s)", result.file.display(), stats.tokenizer, stats.tokens, stats.duplicates);
            }
        }
        println!("{} file(s): {errors} error(s), {warnings} warning(s)", results.len());
    }
    Ok(if errors > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// A path that could not be read, as one error of its own.
fn unreadable(file: PathBuf, error: &std::io::Error) -> FileResult {
    let diagnostic = Diagnostic {
        severity: Severity::Error,
        code: "unreadable",
        path: JsonPath::root(),
        message: format!("cannot read it: {error}"),
        position: None,
    };
    FileResult { file, kind: None, errors: 1, warnings: 0, diagnostics: vec![diagnostic], stats: None }
}

/// Token figures and duplicates of each file without errors, counted over
/// its pairs with a target as the build's JSONL holds them.
fn add_stats(results: &mut [FileResult], tokenizer: Option<PathBuf>, max_tokens: Option<usize>) -> anyhow::Result<()> {
    let options = ExportOptions {
        format: ExportFormat::Jsonl,
        name: "stats".into(),
        with_metadata: false,
        dedup: false,
        split: None,
        tokenizer: Some(super::export::tokenizer(tokenizer.as_deref())?),
        max_tokens,
    };
    for result in results.iter_mut().filter(|r| r.errors == 0 && matches!(r.kind, Some(FileKind::Full | FileKind::Enriched | FileKind::Jsonl))) {
        let summary = match export::export(std::slice::from_ref(&result.file), None, &options) {
            Ok(summary) => summary,
            Err(ExportError::NoConversations) => continue,
            Err(error) => return Err(super::export::explain(error)),
        };
        if let (Some(tokens), Some(tokenizer)) = (summary.tokens, summary.tokenizer) {
            result.stats = Some(FileStats { tokenizer, tokens, duplicates: summary.duplicates.len() });
        }
    }
    Ok(())
}

/// A JSONL given with its full JSON (`NAME.jsonl` beside `NAME.json`) must
/// hold exactly that file's pairs with a target, in order.
fn cross_check_pairs(results: &mut [FileResult]) -> anyhow::Result<()> {
    let clean_full: Vec<PathBuf> = results.iter().filter(|r| r.kind == Some(FileKind::Full) && r.errors == 0).map(|r| r.file.clone()).collect();
    for result in results.iter_mut().filter(|r| r.kind == Some(FileKind::Jsonl) && r.errors == 0) {
        let Some(full) = clean_full.iter().find(|f| f.with_extension("jsonl") == result.file) else { continue };
        let findings = input::check_jsonl_against_full(full, &result.file).map_err(|e| anyhow::anyhow!("{}: {e}", result.file.display()))?;
        result.errors += findings.error_count();
        result.diagnostics.extend(findings.into_vec());
    }
    Ok(())
}
