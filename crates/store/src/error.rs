//! The store's one error type: each variant is something a caller can act on
//! (the server maps them to HTTP statuses), internal failures are wrapped.

/// Why a conversation cannot go into a training file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ineligible {
    pub conversation_id: String,
    /// `not_found`, `not_completed` or `no_enriched_file`.
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrichment_status: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("a training file named {0:?} already exists")]
    NameTaken(String),
    #[error("already in the training file: {}", .0.join(", "))]
    AlreadyInFile(Vec<String>),
    #[error("{} conversation(s) cannot be used: {}", .0.len(), .0.iter().map(|i| format!("{} ({})", i.conversation_id, i.reason)).collect::<Vec<_>>().join(", "))]
    Ineligible(Vec<Ineligible>),
    /// Several things wrong with a request's `conversation_ids`, every one of them.
    #[error("{}", .0.iter().map(|p| format!("conversation_ids[{}]: {}", p.index, p.message())).collect::<Vec<_>>().join("; "))]
    RequestedIds(Vec<crate::ids::IdProblem>),
    #[error("the training file is {0}, not active")]
    NotActive(String),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{what} would be {size} bytes, over the limit of {limit}")]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("{0}")]
    Config(String),
    #[error("the training file changed under this request too many times; try again")]
    Contention,
    #[error("{path}: not a valid enriched conversation ({} error(s)); first: {}", errors.len(), errors.first().map(ToString::to_string).unwrap_or_default())]
    InvalidSource { path: String, errors: Vec<lora_files_format::Diagnostic> },
    #[error("conversation {0} was already imported with different content")]
    ConflictingImport(String),
    #[error("the source of conversation {conversation_id} cannot be replaced: {reason}")]
    SourceLocked { conversation_id: String, reason: String },
    #[error("conversation {0} is being enriched right now; try again when that run ends")]
    EnrichmentInProgress(String),
    #[error("{0}")]
    Link(crate::links::LinkError),
    /// The job running the work was cancelled (or lost its claim) before it committed.
    #[error("cancelled: {0}")]
    Cancelled(&'static str),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("storage: {0}")]
    Storage(#[from] object_store::Error),
    #[error("{0}")]
    Internal(String),
}

impl StoreError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), message: message.into() }
    }

    /// A row that a unique constraint refused (someone else holds the key).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(db)) if db.is_unique_violation())
    }

    /// The database's constraint names, mapped to what they mean to a user.
    pub(crate) fn from_constraint(error: sqlx::Error, name: &str) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.constraint() == Some("training_files_owner_name_key") => Self::NameTaken(name.to_owned()),
            sqlx::Error::Database(db) if db.message().contains("training_files.owner_id, training_files.name") => Self::NameTaken(name.to_owned()),
            _ => Self::Database(error),
        }
    }
}
