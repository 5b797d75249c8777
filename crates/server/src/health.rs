//! `/api/health`: whether the catalogue and the storage answer.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/health", get(health))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: &'static str,
    pub database: &'static str,
    pub storage: &'static str,
}

/// 200 when the database and the storage answer, 503 otherwise.
#[utoipa::path(get, path = "/api/health", tag = "health", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let health = state.store.health().await;
    let (database, storage) = (health.database, health.storage);
    let label = |ok: bool| if ok { "ok" } else { "unavailable" };
    let status = if database && storage { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = Health { status: if status == StatusCode::OK { "ok" } else { "degraded" }, database: label(database), storage: label(storage) };
    (status, Json(body))
}
