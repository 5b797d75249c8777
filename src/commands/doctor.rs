//! `lora-files doctor [--repair]`: a checklist; exits 1 on any failure.

use std::process::ExitCode;

use lora_files_store::doctor::ORPHAN_GRACE;
use lora_files_store::Access;

use super::StoreArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Remove unreferenced objects (older than an hour, so changes in flight are safe).
    #[arg(long)]
    repair: bool,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = match args.store.open(Access::Admin).await {
        Ok(store) => store,
        Err(error) => {
            println!("[FAIL] database reachable: {error:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let report = store.doctor(args.repair, ORPHAN_GRACE).await;
    for check in &report.checks {
        println!("[{}] {}: {}", if check.ok { " OK " } else { "FAIL" }, check.name, check.detail);
    }
    Ok(if report.healthy() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
