//! `lora-files conversation delete | replace`: curating the catalogue's conversations.

use std::path::PathBuf;
use std::process::ExitCode;

use lora_files_store::conversations::ImportRequest;
use lora_files_store::scaffolding::ScaffoldingKeys;
use lora_files_store::{Access, StoreError};

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
    /// Replace the source of a conversation that is not enriched (text that
    /// was not JSON, raw or parsed output, or one whose enrichment failed)
    /// with a fixed file; it keeps its id and is ready to be enriched again.
    /// An enriched conversation, or one a training file holds, is refused.
    Replace {
        conversation_id: String,
        /// The fixed file: raw LLM output or a parsed conversation.
        file: PathBuf,
        /// The persona (a key of the loaded scaffolding); wins over the file's own.
        #[arg(long)]
        persona: Option<String>,
        /// The emotional arc.
        #[arg(long)]
        arc: Option<String>,
        /// The training topic.
        #[arg(long)]
        topic: Option<String>,
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
        ConversationCommand::Replace { conversation_id, file, persona, arc, topic, owner, store: args } => {
            let id = uuid_text(&conversation_id)?;
            let bytes = std::fs::read(&file).map_err(|error| anyhow::anyhow!("{}: {error}", file.display()))?;
            let owner = resolve_owner(&args, owner.as_deref()).await?;
            let store = args.open(Access::Service).await?;
            let request = ImportRequest {
                scaffolding: ScaffoldingKeys { persona, emotional_arc: arc, training_topic: topic },
                ..ImportRequest::new(file.display().to_string(), bytes)
            };
            match store.conversations().replace_source(&owner, &id, request).await {
                Ok(record) => println!("replaced the source of {id} from {} ({}, {})", file.display(), record.source_stage, record.enrichment_status),
                Err(StoreError::NotFound) => anyhow::bail!("no such conversation: {id}"),
                // Where the file breaks: file, line, column and JSON path.
                Err(StoreError::InvalidSource { path, errors }) => {
                    for error in errors {
                        eprintln!("{path}:{error}");
                    }
                    return Ok(ExitCode::FAILURE);
                }
                Err(error) => anyhow::bail!("{}: {error}", file.display()),
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
