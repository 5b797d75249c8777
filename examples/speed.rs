//! Times one step of `bench export` / `bench validate` on files already made,
//! for profiling (`perf record`) without the bench's generation and builds:
//! `speed count FILE.jsonl`, `speed export DIR OUT`, `speed validate FILE.json`.

#[path = "../src/allocator.rs"]
mod allocator;

use std::path::PathBuf;
use std::time::Instant;

use lora_files_format::export::{self, ExportFormat, ExportOptions, Tokenizer};
use lora_files_format::input::{self, Mode};

/// The binary's allocator, so times and profiles are the binary's.
#[global_allocator]
static ALLOCATOR: allocator::MiMalloc = allocator::MiMalloc;

fn main() {
    allocator::refuse_transparent_huge_pages();
    let args: Vec<String> = std::env::args().collect();
    let options = |format, tokenizer: bool| ExportOptions {
        format,
        name: "speed".into(),
        with_metadata: false,
        dedup: false,
        split: None,
        tokenizer: tokenizer.then(Tokenizer::o200k),
        max_tokens: None,
    };
    let started = Instant::now();
    match args[1].as_str() {
        "count" => {
            let summary = export::export(&[PathBuf::from(&args[2])], None, &options(ExportFormat::Jsonl, true)).unwrap();
            println!("{}", summary.tokens.unwrap());
        }
        "export" | "export-plain" => {
            let summary = export::export(&[PathBuf::from(&args[2])], Some(PathBuf::from(&args[3]).as_path()), &options(ExportFormat::OpenAi, args[1] == "export")).unwrap();
            println!("{} lines, {:?}", summary.examples, summary.tokens);
        }
        "validate" => {
            let report = input::read_file(std::path::Path::new(&args[2]), Mode::Validate, |_| Ok::<(), ()>(())).unwrap();
            println!("{} errors, {} warnings", report.findings.error_count(), report.findings.warning_count());
            if args.get(3).is_some_and(|a| a == "print") {
                for finding in report.findings.iter() {
                    println!("{finding}");
                }
            }
        }
        other => panic!("unknown step {other}"),
    }
    eprintln!("{:.3} s", started.elapsed().as_secs_f64());
}
