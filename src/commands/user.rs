//! `lora-files user add|list`.

use std::process::ExitCode;

use lora_files_store::Access;

use super::StoreArgs;

#[derive(clap::Subcommand)]
pub enum UserCommand {
    /// Add a user (the password may be left out for token-only accounts).
    Add {
        email: String,
        #[arg(long, env = "LORA_FILES_PASSWORD")]
        password: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print an access token for a user (valid 12 hours).
    Token {
        email: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the users.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: UserCommand) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::Add { email, password, store } => {
            let store = store.open(Access::Service).await?;
            let user = store.users().add(&email, password.as_deref()).await?;
            println!("added {} ({})", user.email, user.id);
        }
        UserCommand::Token { email, store: args } => {
            let store = args.open(Access::Service).await?;
            let Some(user) = store.users().by_email(&email).await? else {
                anyhow::bail!("no user {email}; add one with `lora-files user add {email}`");
            };
            let keys = lora_files_server::auth::TokenKeys::new(&super::server_secret(&args.data_dir)?);
            println!("{}", keys.issue(&user.id, Some(&user.email), lora_files_server::Settings::new().token_lifetime));
        }
        UserCommand::List { store } => {
            let store = store.open(Access::Admin).await?;
            let users = store.users().list().await?;
            for user in &users {
                println!("{}  {}  {}", user.id, user.email, user.created_at);
            }
            println!("{} user(s)", users.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}
