//! `lora-files import`: enriched conversation files into the catalogue and storage.

use std::path::PathBuf;
use std::process::ExitCode;

use lora_files_store::conversations::Imported;
use lora_files_store::{Access, Store, StoreError};

use super::StoreArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Enriched conversation files, or folders of them (recursive *.json).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Whose conversations these are (may be left out when there is exactly one user).
    #[arg(long)]
    owner: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let files = lora_files_format::input::collect_input_files(&args.paths)?;
    let owner = resolve_owner(&args.store, args.owner.as_deref()).await?;
    let store = args.store.open(Access::Service).await?;
    let (mut imported, mut unchanged, mut failed) = (0, 0, 0);
    for file in &files {
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(error) => {
                eprintln!("{}: {error}", file.display());
                failed += 1;
                continue;
            }
        };
        match store.import_enriched(&owner, &file.display().to_string(), bytes.into()).await {
            Ok(Imported::New(record)) => {
                imported += 1;
                println!("imported {} from {}", record.conversation_id, file.display());
            }
            Ok(Imported::Unchanged(record)) => {
                unchanged += 1;
                println!("unchanged {} ({} was imported before)", record.conversation_id, file.display());
            }
            Err(StoreError::InvalidSource { path, errors }) => {
                failed += 1;
                for error in errors {
                    eprintln!("{path}:{error}");
                }
            }
            Err(error) => {
                failed += 1;
                eprintln!("{}: {error}", file.display());
            }
        }
    }
    println!("{imported} imported, {unchanged} unchanged, {failed} failed");
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The user named by `--owner`, or the only user there is.
async fn resolve_owner(args: &StoreArgs, owner: Option<&str>) -> anyhow::Result<String> {
    let store: Store = args.open(Access::Admin).await?;
    match owner {
        Some(email) => match store.find_user_by_email(email).await? {
            Some(user) => Ok(user.id),
            None => anyhow::bail!("no user {email}; add one with `lora-files user add {email}`"),
        },
        None => {
            let users = store.list_users().await?;
            match users.as_slice() {
                [only] => Ok(only.id.clone()),
                [] => anyhow::bail!("there are no users yet; add one with `lora-files user add EMAIL`"),
                _ => anyhow::bail!("there are {} users; say whose conversations these are with --owner EMAIL", users.len()),
            }
        }
    }
}
