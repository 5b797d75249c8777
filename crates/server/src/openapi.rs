//! The OpenAPI 3.1 document, generated from the handlers' annotations, at
//! `/api/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::state::AppState;

/// Every error: `{"error", "code", "details"?}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A sentence for people.
    pub error: String,
    /// A stable snake_case code for programs: validation_error, ineligible_conversations,
    /// unauthorized, not_found, name_taken, already_in_file, not_active, too_large, internal, …
    pub code: String,
    /// `fields: [{path, message}]`, `conversations: [{conversation_id, reason}]`,
    /// `conversation_ids: […]` or `request_id`, depending on `code`.
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "lora-files", description = "Assemble LoRA fine-tuning data sets from enriched coaching conversations."),
    paths(
        crate::health::health,
        crate::auth::issue_token,
        crate::training_files::list_files,
        crate::training_files::create_file,
        crate::training_files::get_file,
        crate::training_files::update_file,
        crate::training_files::delete_file,
        crate::training_files::add_conversations,
        crate::training_files::download_url,
        crate::training_files::list_members,
        crate::training_files::remove_member,
        crate::training_files::list_versions,
        crate::conversations::list_conversations,
        crate::conversations::get_conversation,
        crate::conversations::delete_conversation,
        crate::conversations::import_conversation,
        crate::conversations::replace_source,
        crate::conversations::enrich_conversation,
        crate::conversations::enrich_many,
        crate::conversations::validation_report,
        crate::scaffolding::list_personas,
        crate::scaffolding::list_emotional_arcs,
        crate::scaffolding::list_training_topics,
        crate::jobs::get_job,
        crate::jobs::list_jobs,
        crate::jobs::cancel_job,
        crate::jobs::job_events,
    ),
    components(schemas(ErrorBody, lora_files_store::Ineligible)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()));
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
