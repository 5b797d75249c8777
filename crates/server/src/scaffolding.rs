//! `/api/personas`, `/api/emotional-arcs`, `/api/training-topics`: the
//! scaffolding reference data enrichment reads (shared by all users).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value};

use lora_files_format::enrich::reference::SeedKind;

use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::openapi::ErrorBody;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/personas", get(list_personas))
        .route("/api/emotional-arcs", get(list_emotional_arcs))
        .route("/api/training-topics", get(list_training_topics))
}

/// `{<field>: [row…]}`, each row the seed object with its `id`, by key.
async fn list(state: &AppState, kind: SeedKind, field: &str) -> ApiResult<Json<Value>> {
    let rows = state.store.scaffolding().list(kind).await?;
    let mut body = Map::new();
    body.insert(field.into(), rows.iter().map(|r| r.to_value()).collect());
    Ok(Json(Value::Object(body)))
}

/// Personas (`{"personas": [{persona_key, id, name, archetype, demographics, …}]}`).
#[utoipa::path(get, path = "/api/personas", tag = "scaffolding",
    responses((status = 200, body = Object, description = "`{\"personas\": [persona…]}`"), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_personas(State(state): State<AppState>, _user: AuthUser) -> ApiResult<Json<Value>> {
    list(&state, SeedKind::Persona, "personas").await
}

/// Emotional arcs (`{"emotional_arcs": [{arc_key, id, name, starting_emotion, …}]}`).
#[utoipa::path(get, path = "/api/emotional-arcs", tag = "scaffolding",
    responses((status = 200, body = Object, description = "`{\"emotional_arcs\": [arc…]}`"), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_emotional_arcs(State(state): State<AppState>, _user: AuthUser) -> ApiResult<Json<Value>> {
    list(&state, SeedKind::EmotionalArc, "emotional_arcs").await
}

/// Training topics (`{"training_topics": [{topic_key, id, name, complexity_level, …}]}`).
#[utoipa::path(get, path = "/api/training-topics", tag = "scaffolding",
    responses((status = 200, body = Object, description = "`{\"training_topics\": [topic…]}`"), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_training_topics(State(state): State<AppState>, _user: AuthUser) -> ApiResult<Json<Value>> {
    list(&state, SeedKind::TrainingTopic, "training_topics").await
}
