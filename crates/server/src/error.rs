//! The one error type of the API: each variant knows its status, `code` and
//! JSON body (`{"error", "code", "details"}`). Internal failures are logged
//! with the request id, which their body carries; their text never leaves.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use lora_files_store::links::LinkError;
use lora_files_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// Set on 500 responses; the request-id middleware adds the id to their body.
#[derive(Clone, Debug)]
pub struct InternalError;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: None }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 400 `validation_error` naming the field (`conversation_ids[3]`, `limit`).
    pub fn field(path: impl Into<String>, message: impl Into<String>) -> Self {
        let (path, message) = (path.into(), message.into());
        Self::new(StatusCode::BAD_REQUEST, "validation_error", format!("{path}: {message}"))
            .with_details(json!({"fields": [{"path": path, "message": message}]}))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "not found")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// Every problem with a request's `conversation_ids`, in one answer:
    /// `details.conversations` lists each (`index`, `conversation_id`,
    /// `reason`). The code is that of the gravest kind: malformed ids
    /// (`validation_error`, with `details.fields`), then conversations that
    /// cannot be used (`ineligible_conversations`), then `already_in_file` (409).
    fn requested_ids(problems: Vec<lora_files_store::ids::IdProblem>) -> Self {
        let message = problems.iter().map(|p| format!("conversation_ids[{}]: {}", p.index, p.message())).collect::<Vec<_>>().join("; ");
        let conversations = json!(problems);
        if problems.iter().any(|p| p.is_malformed()) {
            let fields: Vec<Value> = problems.iter().filter(|p| p.is_malformed()).map(|p| json!({"path": format!("conversation_ids[{}]", p.index), "message": p.message()})).collect();
            return Self::new(StatusCode::BAD_REQUEST, "validation_error", message).with_details(json!({"fields": fields, "conversations": conversations}));
        }
        if problems.iter().any(|p| p.reason != "already_in_file") {
            return Self::new(StatusCode::BAD_REQUEST, "ineligible_conversations", message).with_details(json!({"conversations": conversations}));
        }
        let ids: Vec<&str> = problems.iter().map(|p| p.conversation_id.as_str()).collect();
        Self::new(StatusCode::CONFLICT, "already_in_file", message).with_details(json!({"conversation_ids": ids, "conversations": conversations}))
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Self::not_found(),
            StoreError::NameTaken(name) => Self::new(StatusCode::CONFLICT, "name_taken", format!("a training file named {name:?} already exists")),
            StoreError::AlreadyInFile(ids) => Self::new(StatusCode::CONFLICT, "already_in_file", format!("already in the training file: {}", ids.join(", ")))
                .with_details(json!({"conversation_ids": ids})),
            StoreError::Ineligible(refused) => {
                let message = format!("{} conversation(s) cannot be used", refused.len());
                Self::new(StatusCode::BAD_REQUEST, "ineligible_conversations", message).with_details(json!({"conversations": refused}))
            }
            StoreError::RequestedIds(problems) => Self::requested_ids(problems),
            StoreError::NotActive(status) => Self::new(StatusCode::CONFLICT, "not_active", format!("the training file is {status}; unarchive it to add conversations")),
            StoreError::Invalid { field, message } => Self::field(field, message),
            error @ StoreError::TooLarge { .. } => Self::too_large(error.to_string()),
            StoreError::InvalidSource { errors, .. } => {
                let fields: Vec<Value> = errors
                    .iter()
                    .map(|d| json!({"path": d.path.to_string(), "message": d.message, "line": d.position.map(|p| p.line), "column": d.position.map(|p| p.column)}))
                    .collect();
                Self::new(StatusCode::BAD_REQUEST, "validation_error", "the body is not a conversation lora-files can import").with_details(json!({"fields": fields}))
            }
            error @ StoreError::ConflictingImport(_) => Self::new(StatusCode::CONFLICT, "conflict", error.to_string()),
            error @ StoreError::EnrichmentInProgress(_) => Self::new(StatusCode::CONFLICT, "enrichment_in_progress", error.to_string()),
            error @ StoreError::SourceLocked { .. } => Self::new(StatusCode::CONFLICT, "source_locked", error.to_string()),
            StoreError::Link(LinkError::Gone) => Self::new(StatusCode::NOT_FOUND, "not_found", LinkError::Gone.to_string()),
            StoreError::Link(error) => Self::forbidden(error.to_string()),
            error @ StoreError::Cancelled(_) => Self::new(StatusCode::CONFLICT, "cancelled", error.to_string()),
            error @ StoreError::Contention => Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", error.to_string()),
            error => Self::internal(error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.message, "code": self.code});
        if let Some(details) = self.details {
            body["details"] = details;
        }
        let mut response = (self.status, Json(body)).into_response();
        if self.status.is_server_error() {
            response.extensions_mut().insert(InternalError);
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
