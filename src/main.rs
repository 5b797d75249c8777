//! The `lora-files` command: parses arguments and hands each subcommand to its module.

mod allocator;
mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's allocator: the API's hot paths and the build's
/// parse-render-free cycle are allocation-heavy (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: allocator::MiMalloc = allocator::MiMalloc;

#[derive(Parser)]
#[command(name = "lora-files", version, about = "Assemble LoRA fine-tuning data sets from enriched coaching conversations")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (embedded SQLite and local storage unless told otherwise).
    Serve(commands::serve::Args),
    /// Run background jobs only (no HTTP), beside `serve` on other machines.
    Worker(commands::worker::Args),
    /// Build a full JSON training file and its JSONL from enriched conversations.
    Build(commands::build::Args),
    /// Write a training file as trainer-ready lines (openai, sharegpt, alpaca, jsonl) with token figures, dedup, splits and a dataset card.
    Export(commands::export::Args),
    /// Check enriched, full JSON and JSONL files; exits 1 when any has errors.
    Validate(commands::validate::Args),
    /// Load conversation files (raw, parsed or enriched; folders recursively) into the catalogue.
    Import(commands::import::Args),
    /// Enrich imported raw or parsed conversations into v4 files.
    Enrich(commands::enrich::Args),
    /// Create a training file from imported conversations as a background job, with a progress bar.
    Create(commands::create::Args),
    /// Curate imported conversations (delete).
    #[command(subcommand)]
    Conversation(commands::conversation::ConversationCommand),
    /// Manage the scaffolding reference data (personas, arcs, topics, templates).
    #[command(subcommand)]
    Scaffolding(commands::scaffolding::ScaffoldingCommand),
    /// Manage users.
    #[command(subcommand)]
    User(commands::user::UserCommand),
    /// Create or update the catalogue's tables.
    Migrate(commands::StoreArgs),
    /// Check that the catalogue and the stored objects agree.
    Doctor(commands::doctor::Args),
    /// Measure lora-files on generated data and print the figures.
    #[command(subcommand)]
    Bench(commands::bench::Bench),
}

fn main() -> ExitCode {
    allocator::refuse_transparent_huge_pages();
    allocator::return_freed_memory_at_once();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => commands::run_async(commands::serve::run(args)),
        Command::Worker(args) => commands::run_async(commands::worker::run(args)),
        Command::Build(args) => commands::build::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Validate(args) => commands::validate::run(args),
        Command::Import(args) => commands::run_async(commands::import::run(args)),
        Command::Enrich(args) => commands::run_async(commands::enrich::run(args)),
        Command::Create(args) => commands::run_async(commands::create::run(args)),
        Command::Conversation(command) => commands::run_async(commands::conversation::run(command)),
        Command::Scaffolding(command) => commands::run_async(commands::scaffolding::run(command)),
        Command::User(command) => commands::run_async(commands::user::run(command)),
        Command::Migrate(args) => commands::run_async(commands::migrate(args)),
        Command::Doctor(args) => commands::run_async(commands::doctor::run(args)),
        Command::Bench(bench) => commands::bench::run(bench),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
