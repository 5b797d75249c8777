//! `/api/conversations`: list, read and import conversations.

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use lora_files_store::conversations::{ConversationFilter, Imported};
use lora_files_store::ConversationRecord;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::http::{body_rejection, page_limit, uuid_param, ApiQuery};
use crate::openapi::ErrorBody;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/conversations", get(list_conversations).post(import_conversation))
        .route("/api/conversations/{conversation_id}", get(get_conversation))
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
    let page = state.store.list_conversations(&user, &filter, limit, query.cursor.as_deref()).await?;
    Ok(Json(ConversationList { conversations: page.items, next_cursor: page.next_cursor }))
}

/// One conversation.
#[utoipa::path(get, path = "/api/conversations/{conversation_id}", tag = "conversations", params(("conversation_id" = String, Path, format = Uuid)),
    responses((status = 200, body = ConversationBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_conversation(State(state): State<AppState>, AuthUser(user): AuthUser, Path(conversation_id): Path<String>) -> ApiResult<Json<ConversationBody>> {
    uuid_param("conversation_id", &conversation_id)?;
    let conversation = state.store.conversation(&user, &conversation_id).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(ConversationBody { conversation }))
}

/// Imports an enriched v4 conversation file, stored as sent (status `completed`).
/// Importing the same file again answers 200 with the stored conversation.
#[utoipa::path(post, path = "/api/conversations", tag = "conversations", request_body(content = Object, description = "an enriched v4 conversation file"),
    responses((status = 201, body = ConversationBody), (status = 200, body = ConversationBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)), security(("bearer" = [])))]
pub async fn import_conversation(State(state): State<AppState>, AuthUser(user): AuthUser, request: Request) -> ApiResult<(StatusCode, Json<ConversationBody>)> {
    let bytes = Bytes::from_request(request, &state).await.map_err(body_rejection)?;
    match state.store.import_enriched(&user, "body", bytes).await? {
        Imported::New(conversation) => Ok((StatusCode::CREATED, Json(ConversationBody { conversation }))),
        Imported::Unchanged(conversation) => Ok((StatusCode::OK, Json(ConversationBody { conversation }))),
    }
}
