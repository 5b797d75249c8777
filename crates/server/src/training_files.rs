//! `/api/training-files`: the original system's four endpoints (list, create,
//! add conversations, download URL) with their paths and bodies, and ours
//! (get, rename/archive, delete, members, remove a member, versions).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use lora_files_store::training_files::{DownloadFormat, ExportFigures, FileFilter, FileUpdate};
use lora_files_store::{Member, TrainingFile, Version};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::jobs;
use crate::http::{check_id_count, page_limit, uuid_param, ApiJson, ApiQuery};
use crate::openapi::ErrorBody;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/training-files", get(list_files).post(create_file))
        .route("/api/training-files/{id}", get(get_file).patch(update_file).delete(delete_file))
        .route("/api/training-files/{id}/add-conversations", post(add_conversations))
        .route("/api/training-files/{id}/download", get(download_url))
        .route("/api/training-files/{id}/conversations", get(list_members))
        .route("/api/training-files/{id}/conversations/{conversation_id}", delete(remove_member))
        .route("/api/training-files/{id}/versions", get(list_versions))
}

/// `{"trainingFile": …}`, the name the original clients expect.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TrainingFileBody {
    #[serde(rename = "trainingFile")]
    pub training_file: TrainingFile,
    /// The current version's exports (in the file detail only; absent while
    /// a large change's are being counted, which follows its commit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exports: Option<ExportFiguresBody>,
}

impl From<TrainingFile> for TrainingFileBody {
    fn from(training_file: TrainingFile) -> Self {
        Self { training_file, exports: None }
    }
}

/// A version's trainer-ready exports: their sizes, and the `o200k_base`
/// tokens of its OpenAI export (one example per conversation with a target;
/// each text counted on its own, without a chat template). Computed once
/// per version.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ExportFiguresBody {
    pub tokenizer: String,
    /// Context and training tokens together.
    pub total_tokens: u64,
    /// The assistant turns, what the model is trained to write.
    pub training_tokens: u64,
    /// System prompts and user turns.
    pub context_tokens: u64,
    pub examples: u64,
    /// Tokens of the largest example.
    pub max_example_tokens: u64,
    /// Bytes of each export: `openai`, `sharegpt`, `alpaca`.
    pub sizes: ExportSizes,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ExportSizes {
    pub openai: u64,
    pub sharegpt: u64,
    pub alpaca: u64,
}

impl From<ExportFigures> for ExportFiguresBody {
    fn from(f: ExportFigures) -> Self {
        Self {
            tokenizer: "o200k_base".to_owned(),
            total_tokens: f.total_tokens(),
            training_tokens: f.training_tokens,
            context_tokens: f.context_tokens,
            examples: f.examples,
            max_example_tokens: f.max_example_tokens,
            sizes: ExportSizes { openai: f.openai_bytes, sharegpt: f.sharegpt_bytes, alpaca: f.alpaca_bytes },
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FileList {
    pub files: Vec<TrainingFile>,
    pub next_cursor: Option<String>,
}

/// A [`FileList`] serialised from a borrowed (cached) page.
#[derive(Serialize)]
struct FileListRef<'a> {
    files: &'a [TrainingFile],
    next_cursor: &'a Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `active` (default), `archived`, `processing`, `failed` or `all`.
    #[param(pattern = "^(active|archived|processing|failed|all)$")]
    pub status: Option<String>,
    /// 1–500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// A substring of the name (case-insensitive).
    pub q: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateRequest {
    /// 1–255 characters after trimming, no control characters; unique among the caller's files.
    #[schema(min_length = 1, max_length = 255, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$")]
    pub name: String,
    /// At most 10 000 characters.
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    /// Conversation ids (UUIDs), each once, in the order the file should hold them.
    #[schema(value_type = Vec<uuid::Uuid>, min_items = 1, max_items = 10000)]
    pub conversation_ids: Vec<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct AddRequest {
    /// Conversation ids (UUIDs), each once.
    #[schema(value_type = Vec<uuid::Uuid>, min_items = 1, max_items = 10000)]
    pub conversation_ids: Vec<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct UpdateRequest {
    /// As when the file was created.
    #[schema(min_length = 1, max_length = 255, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$")]
    pub name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 10000)]
    pub description: Option<Option<String>>,
    /// `active` or `archived`.
    #[schema(pattern = "^(active|archived)$")]
    pub status: Option<String>,
}

/// Tells `"description": null` (clear it) from no `description` (keep it).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// `json` (default) or `jsonl`, this system's own shapes, or a
    /// trainer-ready export rendered from the JSONL: `openai` (chat
    /// `messages`), `sharegpt` (`conversations`) or `alpaca`
    /// (`instruction / input / output`), one JSON object a line.
    #[param(schema_with = format_schema)]
    pub format: Option<String>,
    /// A version number; the current version when absent.
    #[param(pattern = "^[1-9][0-9]*$")]
    pub version: Option<String>,
}

/// The `format` values, as an enum in the OpenAPI document.
fn format_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(DownloadFormat::ALL.map(DownloadFormat::as_str)))
        .build()
}

/// The message a bad `format` gets.
pub fn format_choices() -> String {
    let names: Vec<&str> = DownloadFormat::ALL.map(DownloadFormat::as_str).into();
    format!("must be one of {}", names.join(", "))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DownloadResponse {
    /// Works without other credentials until it expires; supports `Range`.
    pub download_url: String,
    pub filename: String,
    pub expires_in_seconds: u64,
    /// The version it downloads.
    pub version: i64,
    /// Bytes it downloads.
    pub size: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberList {
    pub conversations: Vec<Member>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VersionList {
    pub versions: Vec<Version>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The caller's training files, newest first.
#[utoipa::path(get, path = "/api/training-files", tag = "training files", params(ListQuery),
    responses((status = 200, body = FileList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_files(State(state): State<AppState>, AuthUser(user): AuthUser, ApiQuery(query): ApiQuery<ListQuery>) -> ApiResult<Response> {
    let limit = page_limit(query.limit)?;
    if let Some(status) = &query.status {
        if !["active", "archived", "processing", "failed", "all"].contains(&status.as_str()) {
            return Err(ApiError::field("status", "must be active, archived, processing, failed or all"));
        }
    }
    let filter = FileFilter { status: query.status, q: query.q };
    let page = state.store.training_files().list(&user, &filter, limit, query.cursor.as_deref()).await?;
    // A cached page is serialised once and its bytes shared by later requests.
    let body = page.rendered(|page| {
        let list = FileListRef { files: &page.items, next_cursor: &page.next_cursor };
        serde_json::to_vec(&list).expect("a file list serialises").into()
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Creates a training file from enriched conversations.
#[utoipa::path(post, path = "/api/training-files", tag = "training files", request_body = CreateRequest,
    params(("Prefer" = Option<String>, Header, description = "`respond-async`: answer 202 with the job at once")),
    responses((status = 201, body = TrainingFileBody), (status = 202, body = crate::jobs::JobAccepted, description = "Still running: follow `Location` (/api/jobs/{id})"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody, description = "The job failed (`job_failed`)")), security(("bearer" = [])))]
pub async fn create_file(State(state): State<AppState>, AuthUser(user): AuthUser, headers: HeaderMap, ApiJson(request): ApiJson<CreateRequest>) -> ApiResult<Response> {
    check_id_count(&state, &request.conversation_ids)?;
    if !jobs::queued(&state, &headers) {
        let file = state.store.training_files().create(&user, &request.name, request.description.as_deref(), &request.conversation_ids).await?;
        return Ok((StatusCode::CREATED, Json(TrainingFileBody::from(file))).into_response());
    }
    let (job, _) = state.store.jobs().enqueue_create(&user, &request.name, request.description.as_deref(), &request.conversation_ids).await?;
    jobs::answer(&state, &user, job, StatusCode::CREATED, &headers).await
}

/// One training file.
#[utoipa::path(get, path = "/api/training-files/{id}", tag = "training files", params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = TrainingFileBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_file(State(state): State<AppState>, AuthUser(user): AuthUser, Path(id): Path<String>) -> ApiResult<Json<TrainingFileBody>> {
    let id = uuid_param("id", &id)?;
    let files = state.store.training_files();
    let file = files.get(&user, &id).await?;
    // A file still being created has no version to count, and a large
    // change's figures are counted after it commits.
    let exports = match file.version {
        0 => None,
        version => files.known_export_figures(&user, &id, version).await?.map(Into::into),
    };
    Ok(Json(TrainingFileBody { training_file: file, exports }))
}

/// Renames, describes, archives or unarchives a file.
#[utoipa::path(patch, path = "/api/training-files/{id}", tag = "training files", params(("id" = String, Path, format = Uuid)), request_body = UpdateRequest,
    responses((status = 200, body = TrainingFileBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn update_file(State(state): State<AppState>, AuthUser(user): AuthUser, Path(id): Path<String>, ApiJson(request): ApiJson<UpdateRequest>) -> ApiResult<Json<TrainingFileBody>> {
    let id = uuid_param("id", &id)?;
    let update = FileUpdate { name: request.name, description: request.description, status: request.status };
    Ok(Json(state.store.training_files().update(&user, &id, &update).await?.into()))
}

/// Deletes a file, its versions and their objects.
#[utoipa::path(delete, path = "/api/training-files/{id}", tag = "training files", params(("id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_file(State(state): State<AppState>, AuthUser(user): AuthUser, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let id = uuid_param("id", &id)?;
    state.store.training_files().delete(&user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds conversations as a new version; refused whole if any is already in the file.
#[utoipa::path(post, path = "/api/training-files/{id}/add-conversations", tag = "training files",
    params(("id" = String, Path, format = Uuid), ("Prefer" = Option<String>, Header, description = "`respond-async`: answer 202 with the job at once")), request_body = AddRequest,
    responses((status = 200, body = TrainingFileBody), (status = 202, body = crate::jobs::JobAccepted), (status = 422, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)), security(("bearer" = [])))]
pub async fn add_conversations(State(state): State<AppState>, AuthUser(user): AuthUser, Path(id): Path<String>, headers: HeaderMap, ApiJson(request): ApiJson<AddRequest>) -> ApiResult<Response> {
    let id = uuid_param("id", &id)?;
    check_id_count(&state, &request.conversation_ids)?;
    if !jobs::queued(&state, &headers) {
        return Ok(Json(TrainingFileBody::from(state.store.training_files().add(&user, &id, &request.conversation_ids).await?)).into_response());
    }
    let (job, _) = state.store.jobs().enqueue_add(&user, &id, &request.conversation_ids).await?;
    jobs::answer(&state, &user, job, StatusCode::OK, &headers).await
}

/// A URL that downloads one version's JSON, JSONL or a trainer-ready export for an hour, without other credentials.
#[utoipa::path(get, path = "/api/training-files/{id}/download", tag = "training files", params(("id" = String, Path, format = Uuid), DownloadQuery),
    responses((status = 200, body = DownloadResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn download_url(State(state): State<AppState>, AuthUser(user): AuthUser, Path(id): Path<String>, ApiQuery(query): ApiQuery<DownloadQuery>) -> ApiResult<Json<DownloadResponse>> {
    let id = uuid_param("id", &id)?;
    let format = DownloadFormat::parse(query.format.as_deref().unwrap_or("json")).ok_or_else(|| ApiError::field("format", format_choices()))?;
    let version = match query.version.as_deref() {
        None => None,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n >= 1 => Some(n),
            _ => return Err(ApiError::field("version", format!("{text:?} is not a version number (1, 2, …)"))),
        },
    };
    let link = state.store.training_files().download(&user, &id, format, version).await?;
    Ok(Json(DownloadResponse { download_url: link.url, filename: link.filename, expires_in_seconds: link.expires_in_seconds, version: link.version, size: link.size }))
}

/// The file's conversations, in file order.
#[utoipa::path(get, path = "/api/training-files/{id}/conversations", tag = "training files", params(("id" = String, Path, format = Uuid), PageQuery),
    responses((status = 200, body = MemberList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_members(State(state): State<AppState>, AuthUser(user): AuthUser, Path(id): Path<String>, ApiQuery(query): ApiQuery<PageQuery>) -> ApiResult<Json<MemberList>> {
    let id = uuid_param("id", &id)?;
    let page = state.store.training_files().members(&user, &id, page_limit(query.limit)?, query.cursor.as_deref()).await?;
    Ok(Json(MemberList { conversations: page.items, next_cursor: page.next_cursor }))
}

/// A new version without one conversation.
#[utoipa::path(delete, path = "/api/training-files/{id}/conversations/{conversation_id}", tag = "training files",
    params(("id" = String, Path, format = Uuid), ("conversation_id" = String, Path, format = Uuid), ("Prefer" = Option<String>, Header, description = "`respond-async`: answer 202 with the job at once")),
    responses((status = 200, body = TrainingFileBody), (status = 202, body = crate::jobs::JobAccepted), (status = 422, body = ErrorBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn remove_member(State(state): State<AppState>, AuthUser(user): AuthUser, Path((id, conversation_id)): Path<(String, String)>, headers: HeaderMap) -> ApiResult<Response> {
    let id = uuid_param("id", &id)?;
    let conversation_id = uuid_param("conversation_id", &conversation_id)?;
    if !jobs::queued(&state, &headers) {
        return Ok(Json(TrainingFileBody::from(state.store.training_files().remove(&user, &id, &conversation_id).await?)).into_response());
    }
    let (job, _) = state.store.jobs().enqueue_remove(&user, &id, &conversation_id).await?;
    jobs::answer(&state, &user, job, StatusCode::OK, &headers).await
}

/// Every version of the file, oldest first.
#[utoipa::path(get, path = "/api/training-files/{id}/versions", tag = "training files", params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = VersionList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_versions(State(state): State<AppState>, AuthUser(user): AuthUser, Path(id): Path<String>) -> ApiResult<Json<VersionList>> {
    let id = uuid_param("id", &id)?;
    Ok(Json(VersionList { versions: state.store.training_files().versions(&user, &id).await? }))
}
