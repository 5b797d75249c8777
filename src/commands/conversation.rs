//! `lora-files conversation delete`: curating the catalogue's conversations.

use std::process::ExitCode;

use lora_files_store::Access;

use super::import::resolve_owner;
use super::StoreArgs;

#[derive(clap::Subcommand)]
pub enum ConversationCommand {
    /// Delete a conversation and its stored files. One that training files
    /// hold is refused, naming them, unless --force (which removes it from
    /// each first, as a new version).
    Delete {
        conversation_id: String,
        #[arg(long)]
        force: bool,
        /// Whose conversation it is (may be left out when there is exactly one user).
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: ConversationCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConversationCommand::Delete {
            conversation_id,
            force,
            owner,
            store: args,
        } => {
            let owner = resolve_owner(&args, owner.as_deref()).await?;
            let store = args.open(Access::Service).await?;
            let id = uuid_text(&conversation_id)?;
            match store.conversations().delete(&owner, &id, force).await {
                Ok(()) => println!("deleted conversation {id}"),
                Err(lora_files_store::StoreError::NotFound) => {
                    anyhow::bail!("no such conversation: {id}")
                }
                Err(lora_files_store::StoreError::Invalid { message, .. }) => {
                    anyhow::bail!("{id}: {message} (--force)")
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The id in canonical (lower-case, hyphenated) form.
fn uuid_text(id: &str) -> anyhow::Result<String> {
    let uuid = uuid::Uuid::parse_str(id)
        .map_err(|_| anyhow::anyhow!("{id:?} is not a conversation id (a UUID)"))?;
    Ok(uuid.hyphenated().to_string())
}
