//! `lora-files user add|passwd|token|list`.

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
    /// Set or reset a user's password: from --password, or else read from
    /// standard input (one line; asked for when it is a terminal).
    Passwd {
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
        UserCommand::Passwd { email, password, store } => {
            let password = match password {
                Some(password) => password,
                None => read_password(&email)?,
            };
            let store = store.open(Access::Service).await?;
            let user = store.users().set_password(&email, &password).await?;
            println!("password changed for {}", user.email);
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

/// One line of standard input, without its line end; asked for on a terminal.
fn read_password(email: &str) -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("new password for {email}: ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    anyhow::ensure!(!password.is_empty(), "no password given: pass --password or write it to standard input");
    Ok(password)
}
