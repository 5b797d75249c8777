//! `/api/conversations`: list, read and import conversations (at any
//! stage), enrich them and read what validation said.

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use lora_files_store::conversations::{ConversationFilter, ImportRequest, Imported};
use lora_files_store::enrichment::{EnrichOutcome, EnrichmentReport, EnrichmentRun};
use lora_files_store::scaffolding::ScaffoldingKeys;
use lora_files_store::{ConversationRecord, StoreError};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::http::{body_rejection, check_id_count, page_limit, uuid_param, ApiJson, ApiQuery};
use crate::openapi::ErrorBody;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/conversations", get(list_conversations).post(import_conversation))
        .route("/api/conversations/enrich", post(enrich_many))
        .route("/api/conversations/{conversation_id}", get(get_conversation).delete(delete_conversation))
        .route("/api/conversations/{conversation_id}/enrich", post(enrich_conversation))
        .route("/api/conversations/{conversation_id}/source", put(replace_source))
        .route("/api/conversations/{conversation_id}/validation-report", get(validation_report))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConversationList {
    pub conversations: Vec<ConversationRecord>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConversationBody {
    pub conversation: ConversationRecord,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationQuery {
    pub enrichment_status: Option<String>,
    pub persona_key: Option<String>,
    pub emotional_arc_key: Option<String>,
    pub topic_key: Option<String>,
    pub min_quality: Option<f64>,
    /// A substring of the conversation id.
    pub q: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The caller's conversations, newest first.
#[utoipa::path(get, path = "/api/conversations", tag = "conversations", params(ConversationQuery),
    responses((status = 200, body = ConversationList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_conversations(State(state): State<AppState>, AuthUser(user): AuthUser, ApiQuery(query): ApiQuery<ConversationQuery>) -> ApiResult<Json<ConversationList>> {
    let limit = page_limit(query.limit)?;
    if query.min_quality.is_some_and(|q| !q.is_finite()) {
        return Err(ApiError::field("min_quality", "must be a number"));
    }
    let filter = ConversationFilter {
        enrichment_status: query.enrichment_status,
        persona_key: query.persona_key,
        emotional_arc_key: query.emotional_arc_key,
        topic_key: query.topic_key,
        min_quality: query.min_quality,
        q: query.q,
    };
    let page = state.store.conversations().list(&user, &filter, limit, query.cursor.as_deref()).await?;
    Ok(Json(ConversationList { conversations: page.items, next_cursor: page.next_cursor }))
}

/// One conversation.
#[utoipa::path(get, path = "/api/conversations/{conversation_id}", tag = "conversations", params(("conversation_id" = String, Path, format = Uuid)),
    responses((status = 200, body = ConversationBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_conversation(State(state): State<AppState>, AuthUser(user): AuthUser, Path(conversation_id): Path<String>) -> ApiResult<Json<ConversationBody>> {
    let conversation_id = uuid_param("conversation_id", &conversation_id)?;
    let conversation = state.store.conversations().get(&user, &conversation_id).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(ConversationBody { conversation }))
}

/// A conversation file as the import tells its stage apart: the keys each
/// stage must have (what is inside them is checked by the import itself).
pub struct ConversationFile;

impl utoipa::PartialSchema for ConversationFile {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
        let stage = |description: &str, keys: [(&str, Type); 2]| {
            keys.into_iter()
                .fold(ObjectBuilder::new().schema_type(Type::Object).description(Some(description)), |stage, (key, kind)| {
                    stage.property(key, ObjectBuilder::new().schema_type(kind)).required(key)
                })
                .build()
        };
        AnyOfBuilder::new()
            .item(stage("an enriched v4 file", [("dataset_metadata", Type::Object), ("training_pairs", Type::Array)]))
            .item(stage("raw LLM output; a parsed conversation also has `input_parameters`", [("conversation_metadata", Type::Object), ("turns", Type::Array)]))
            .into()
    }
}

impl utoipa::ToSchema for ConversationFile {}

/// Scaffolding and id for a raw or parsed conversation.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// The persona (a key of `/api/personas`); wins over the file's `input_parameters`.
    pub persona_key: Option<String>,
    /// The emotional arc (a key of `/api/emotional-arcs`).
    pub emotional_arc_key: Option<String>,
    /// The training topic (a key of `/api/training-topics`).
    pub topic_key: Option<String>,
    /// The conversation's id when the file carries none (else derived from the bytes).
    #[param(format = Uuid)]
    pub conversation_id: Option<String>,
}

/// Imports a conversation at any stage, detected by content: an enriched v4
/// file (stored as sent, status `completed`), or raw / parsed LLM output
/// (status `not_started`, to be enriched). A `text/plain` body that is not
/// JSON is kept for review with its parse error. Importing the same bytes
/// again answers 200 with the stored conversation.
#[utoipa::path(post, path = "/api/conversations", tag = "conversations", params(ImportQuery),
    request_body(content((ConversationFile = "application/json"), (String = "text/plain")),
        description = "an enriched v4 file, raw LLM output (conversation_metadata + turns) or a parsed conversation (+ input_parameters); as text/plain, text that is not JSON is kept for review"),
    responses((status = 201, body = ConversationBody), (status = 200, body = ConversationBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)), security(("bearer" = [])))]
pub async fn import_conversation(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(query): ApiQuery<ImportQuery>,
    request: Request,
) -> ApiResult<(StatusCode, Json<ConversationBody>)> {
    let conversation_id = query.conversation_id.as_deref().map(|id| uuid_param("conversation_id", id)).transpose()?;
    let plain_text = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/plain"));
    let bytes = Bytes::from_request(request, &state).await.map_err(body_rejection)?;
    let request = ImportRequest {
        scaffolding: ScaffoldingKeys { persona: query.persona_key, emotional_arc: query.emotional_arc_key, training_topic: query.topic_key },
        conversation_id,
        keep_unparsable: plain_text,
        ..ImportRequest::new("body", bytes)
    };
    match state.store.conversations().import(&user, request).await? {
        Imported::New(conversation) => Ok((StatusCode::CREATED, Json(ConversationBody { conversation }))),
        Imported::Unchanged(conversation) => Ok((StatusCode::OK, Json(ConversationBody { conversation }))),
    }
}

/// Scaffolding for a replaced source.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplaceQuery {
    /// The persona (a key of `/api/personas`); wins over the file's `input_parameters`.
    pub persona_key: Option<String>,
    /// The emotional arc (a key of `/api/emotional-arcs`).
    pub emotional_arc_key: Option<String>,
    /// The training topic (a key of `/api/training-topics`).
    pub topic_key: Option<String>,
}

/// Replaces the source of a conversation that is not enriched (kept as
/// unparsable text, raw or parsed output, or whose enrichment failed) with
/// fixed text, read as `POST /api/conversations` reads it; the conversation
/// keeps its id and is ready to be enriched again (`not_started`). An
/// enriched conversation, one being enriched or one a training file holds
/// answers 409 `source_locked`. A `text/plain` body that is still not JSON
/// is kept for review with its parse error.
#[utoipa::path(put, path = "/api/conversations/{conversation_id}/source", tag = "conversations", params(("conversation_id" = String, Path, format = Uuid), ReplaceQuery),
    request_body(content((ConversationFile = "application/json"), (String = "text/plain")),
        description = "raw LLM output (conversation_metadata + turns) or a parsed conversation (+ input_parameters); as text/plain, text that is not JSON is kept for review"),
    responses((status = 200, body = ConversationBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the conversation is enriched, being enriched, or in a training file"), (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replace_source(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(conversation_id): Path<String>,
    ApiQuery(query): ApiQuery<ReplaceQuery>,
    request: Request,
) -> ApiResult<Json<ConversationBody>> {
    let conversation_id = uuid_param("conversation_id", &conversation_id)?;
    let plain_text = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/plain"));
    let bytes = Bytes::from_request(request, &state).await.map_err(body_rejection)?;
    let request = ImportRequest {
        scaffolding: ScaffoldingKeys { persona: query.persona_key, emotional_arc: query.emotional_arc_key, training_topic: query.topic_key },
        keep_unparsable: plain_text,
        ..ImportRequest::new("body", bytes)
    };
    let conversation = state.store.conversations().replace_source(&user, &conversation_id, request).await?;
    Ok(Json(ConversationBody { conversation }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EnrichResponse {
    /// `enriched`, `failed` (the conversation's status and `enrichment_error` say why) or `skipped` (already enriched).
    pub outcome: EnrichOutcome,
    pub conversation: ConversationRecord,
    /// This run's validation report (absent when skipped).
    #[schema(value_type = Option<Object>)]
    pub validation_report: Option<Value>,
}

impl From<EnrichmentRun> for EnrichResponse {
    fn from(run: EnrichmentRun) -> Self {
        let validation_report = run.validation_report.map(|r| serde_json::to_value(r).expect("a report serialises"));
        Self { outcome: run.outcome, conversation: run.conversation, validation_report }
    }
}

/// Runs validate → enrich → normalise → store on one conversation. Failures
/// answer 200 too: the conversation's status (`validation_failed`,
/// `normalization_failed`, …) and `enrichment_error` say what went wrong.
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/enrich", tag = "conversations", params(("conversation_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EnrichResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "another run is enriching it right now")), security(("bearer" = [])))]
pub async fn enrich_conversation(State(state): State<AppState>, AuthUser(user): AuthUser, Path(conversation_id): Path<String>) -> ApiResult<Json<EnrichResponse>> {
    let conversation_id = uuid_param("conversation_id", &conversation_id)?;
    Ok(Json(state.store.enrichment().run(&user, &conversation_id).await?.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct BulkEnrichRequest {
    /// Conversation ids (UUIDs), each once.
    #[schema(value_type = Vec<uuid::Uuid>, min_items = 1, max_items = 10000)]
    pub conversation_ids: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkSummary {
    pub total: usize,
    pub enriched: usize,
    pub failed: usize,
    pub skipped: usize,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkResult {
    pub conversation_id: String,
    /// `enriched`, `failed`, `skipped`, `not_found` or `busy` (another run holds it).
    pub outcome: String,
    pub enrichment_status: Option<String>,
    pub error: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkEnrichResponse {
    pub summary: BulkSummary,
    pub results: Vec<BulkResult>,
}

/// Enriches several conversations, one after another, and reports on each.
#[utoipa::path(post, path = "/api/conversations/enrich", tag = "conversations", request_body = BulkEnrichRequest,
    responses((status = 200, body = BulkEnrichResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn enrich_many(State(state): State<AppState>, AuthUser(user): AuthUser, ApiJson(request): ApiJson<BulkEnrichRequest>) -> ApiResult<Json<BulkEnrichResponse>> {
    check_id_count(&state, &request.conversation_ids)?;
    let conversation_ids = lora_files_store::training_files::check_ids(&request.conversation_ids)?;
    let mut summary = BulkSummary { total: request.conversation_ids.len(), enriched: 0, failed: 0, skipped: 0 };
    let mut results = Vec::with_capacity(summary.total);
    for (conversation_id, result) in state.store.enrichment().run_many(&user, &conversation_ids).await {
        let (outcome, enrichment_status, error) = match result {
            Ok(run) => {
                let outcome = match run.outcome {
                    EnrichOutcome::Enriched => "enriched",
                    EnrichOutcome::Failed => "failed",
                    EnrichOutcome::Skipped => "skipped",
                };
                (outcome, Some(run.conversation.enrichment_status), run.conversation.enrichment_error)
            }
            Err(StoreError::NotFound) => ("not_found", None, Some("no such conversation".to_owned())),
            Err(error @ StoreError::EnrichmentInProgress(_)) => ("busy", Some("enrichment_in_progress".to_owned()), Some(error.to_string())),
            Err(error) => return Err(error.into()),
        };
        match outcome {
            "enriched" => summary.enriched += 1,
            "skipped" => summary.skipped += 1,
            _ => summary.failed += 1,
        }
        results.push(BulkResult { conversation_id, outcome: outcome.to_owned(), enrichment_status, error });
    }
    Ok(Json(BulkEnrichResponse { summary, results }))
}

/// What the conversation's last validation and enrichment said.
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/validation-report", tag = "conversations", params(("conversation_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EnrichmentReport), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn validation_report(State(state): State<AppState>, AuthUser(user): AuthUser, Path(conversation_id): Path<String>) -> ApiResult<Json<EnrichmentReport>> {
    let conversation_id = uuid_param("conversation_id", &conversation_id)?;
    Ok(Json(state.store.enrichment().report(&user, &conversation_id).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// `true` removes the conversation from the training files that hold it first
    /// (a new version of each); without it such a conversation is refused (400, `force`).
    #[param(pattern = "^(true|false)$")]
    pub force: Option<String>,
}

/// Deletes a conversation and its stored files.
#[utoipa::path(delete, path = "/api/conversations/{conversation_id}", tag = "conversations", params(("conversation_id" = String, Path, format = Uuid), DeleteQuery),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_conversation(State(state): State<AppState>, AuthUser(user): AuthUser, Path(conversation_id): Path<String>, ApiQuery(query): ApiQuery<DeleteQuery>) -> ApiResult<StatusCode> {
    uuid_param("conversation_id", &conversation_id)?;
    let force = match query.force.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(ApiError::field("force", format!("must be true or false, not {other:?}"))),
    };
    state.store.conversations().delete(&user, &conversation_id, force).await?;
    Ok(StatusCode::NO_CONTENT)
}
