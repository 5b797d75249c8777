//! The OpenAPI 3.1 document, generated from the handlers' annotations, at
//! `/api/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::openapi::link::{Link, LinkBuilder};
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
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
    modifiers(&BearerAuth, &Links, &AsValidated),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()));
    }
}

/// Where the ids that other operations take come from (OpenAPI links): a
/// client — and the stateful phase of the schemathesis run in
/// `scripts/test.sh` — follows them to real files, conversations and jobs
/// instead of guessing ids that are not there.
struct Links;

/// Operations that take a training file's `id`.
const FILE_TARGETS: [&str; 7] = ["get_file", "update_file", "delete_file", "list_members", "list_versions", "download_url", "add_conversations"];
/// Operations that take a `conversation_id`.
const CONVERSATION_TARGETS: [&str; 5] = ["get_conversation", "validation_report", "enrich_conversation", "replace_source", "delete_conversation"];
/// Operations that take a job's `id`.
const JOB_TARGETS: [&str; 3] = ["get_job", "job_events", "cancel_job"];

/// (operation, status, link name, link): every link the document states.
fn links() -> Vec<(&'static str, &'static str, String, Link)> {
    let to = |target: &str, parameters: &[(&str, &str)]| {
        parameters.iter().fold(LinkBuilder::new().operation_id(target), |link, (name, value)| link.parameter(*name, *value)).build()
    };
    let mut links = Vec::new();
    // A file's id: in a file's answer, a change still running (202), and a list.
    let file_answers: [(&str, &str, &str); 9] = [
        ("create_file", "201", "$response.body#/trainingFile/id"),
        ("create_file", "202", "$response.body#/trainingFile/id"),
        ("get_file", "200", "$response.body#/trainingFile/id"),
        ("update_file", "200", "$response.body#/trainingFile/id"),
        ("add_conversations", "200", "$response.body#/trainingFile/id"),
        ("add_conversations", "202", "$response.body#/trainingFile/id"),
        ("remove_member", "200", "$response.body#/trainingFile/id"),
        ("remove_member", "202", "$response.body#/trainingFile/id"),
        ("list_files", "200", "$response.body#/files/0/id"),
    ];
    for (source, status, id) in file_answers {
        for target in FILE_TARGETS {
            links.push((source, status, target.to_owned(), to(target, &[("path.id", id)])));
        }
    }
    // A member to remove: the first of a new file, the first of a page of members.
    links.push((
        "create_file",
        "201",
        "remove_member".into(),
        to("remove_member", &[("path.id", "$response.body#/trainingFile/id"), ("path.conversation_id", "$request.body#/conversation_ids/0")]),
    ));
    links.push((
        "list_members",
        "200",
        "remove_member".into(),
        to("remove_member", &[("path.id", "$request.path.id"), ("path.conversation_id", "$response.body#/conversations/0/conversation_id")]),
    ));
    // A conversation's id: in a conversation's answer and a list; a file or a bulk enrichment can be made of it.
    let conversation_answers: [(&str, &str, &str); 6] = [
        ("import_conversation", "201", "$response.body#/conversation/conversation_id"),
        ("import_conversation", "200", "$response.body#/conversation/conversation_id"),
        ("get_conversation", "200", "$response.body#/conversation/conversation_id"),
        ("enrich_conversation", "200", "$response.body#/conversation/conversation_id"),
        ("replace_source", "200", "$response.body#/conversation/conversation_id"),
        ("list_conversations", "200", "$response.body#/conversations/0/conversation_id"),
    ];
    for (source, status, id) in conversation_answers {
        for target in CONVERSATION_TARGETS {
            links.push((source, status, target.to_owned(), to(target, &[("path.conversation_id", id)])));
        }
        for target in ["create_file", "enrich_many"] {
            let mut link = to(target, &[]);
            link.request_body = Some(serde_json::json!({ "conversation_ids": [id] }));
            links.push((source, status, target.to_owned(), link));
        }
    }
    // A job's id: in the answer of a change still running, and a list.
    let job_answers: [(&str, &str, &str); 4] = [
        ("create_file", "202", "$response.body#/job/id"),
        ("add_conversations", "202", "$response.body#/job/id"),
        ("remove_member", "202", "$response.body#/job/id"),
        ("list_jobs", "200", "$response.body#/jobs/0/id"),
    ];
    for (source, status, id) in job_answers {
        for target in JOB_TARGETS {
            links.push((source, status, target.to_owned(), to(target, &[("path.id", id)])));
        }
    }
    links
}

fn operation_mut<'a>(openapi: &'a mut utoipa::openapi::OpenApi, operation_id: &str) -> Option<&'a mut Operation> {
    openapi
        .paths
        .paths
        .values_mut()
        .flat_map(|item| [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch])
        .filter_map(Option::as_mut)
        .find(|operation| operation.operation_id.as_deref() == Some(operation_id))
}

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (source, status, name, link) in links() {
            let operation = operation_mut(openapi, source).unwrap_or_else(|| panic!("a link from {source}, which is not in the document"));
            match operation.responses.responses.get_mut(status) {
                Some(RefOr::T(response)) => {
                    response.links.insert(name, RefOr::T(link));
                }
                _ => panic!("a link from {source} {status}, which it does not answer"),
            }
        }
    }
}

/// The document says what the handlers check, so that what it allows is
/// accepted (schemathesis warns when most schema-valid requests are refused):
/// no text may hold NUL (U+0000, refused everywhere as PostgreSQL cannot store
/// it), ids are listed once, and an email is an address.
struct AsValidated;

/// Text without NUL.
const NO_NUL: &str = "^[^\\u0000]*$";

fn is_text(schema_type: &SchemaType) -> bool {
    match schema_type {
        SchemaType::Type(Type::String) => true,
        SchemaType::Array(types) => types.contains(&Type::String),
        _ => false,
    }
}

/// A string with no other pattern nor format refuses NUL.
fn refuse_nul(schema: &mut RefOr<Schema>) {
    if let RefOr::T(Schema::Object(object)) = schema {
        if is_text(&object.schema_type) && object.pattern.is_none() && object.format.is_none() {
            object.pattern = Some(NO_NUL.to_owned());
        }
    }
}

impl Modify for AsValidated {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, schema) in components.schemas.iter_mut() {
            let RefOr::T(Schema::Object(object)) = schema else { continue };
            if !name.ends_with("Request") {
                continue;
            }
            for (field, property) in object.properties.iter_mut() {
                refuse_nul(property);
                if let (RefOr::T(Schema::Array(array)), "conversation_ids") = (&mut *property, field.as_str()) {
                    array.unique_items = true;
                }
            }
        }
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().filter_map(Option::as_mut) {
                for parameter in operation.parameters.iter_mut().flatten() {
                    if let Some(schema) = parameter.schema.as_mut() {
                        refuse_nul(schema);
                    }
                }
            }
        }
    }
}

/// The document as served. utoipa 5 writes a link's fields as Rust names
/// them (`operation_id`, `request_body`); OpenAPI names them in camelCase.
pub fn document() -> serde_json::Value {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOCUMENT
        .get_or_init(|| {
            let mut document = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
            let links = document["paths"]
                .as_object_mut()
                .into_iter()
                .flat_map(|paths| paths.values_mut())
                .filter_map(serde_json::Value::as_object_mut)
                .flat_map(|item| item.values_mut())
                .filter_map(|operation| operation.get_mut("responses").and_then(serde_json::Value::as_object_mut))
                .flat_map(|responses| responses.values_mut())
                .filter_map(|response| response.get_mut("links").and_then(serde_json::Value::as_object_mut))
                .flat_map(|links| links.values_mut())
                .filter_map(serde_json::Value::as_object_mut);
            for link in links {
                for (from, to) in [("operation_id", "operationId"), ("operation_ref", "operationRef"), ("request_body", "requestBody")] {
                    if let Some(value) = link.remove(from) {
                        link.insert(to.to_owned(), value);
                    }
                }
            }
            document
        })
        .clone()
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(|| async { Json(document()) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every link names an operation of the document and only parameters it takes.
    #[test]
    fn links_lead_to_operations_and_their_parameters() {
        let mut openapi = ApiDoc::openapi();
        for (source, status, name, link) in links() {
            let target = operation_mut(&mut openapi, &link.operation_id).unwrap_or_else(|| panic!("{source} {status} {name}: no operation {}", link.operation_id));
            let taken: Vec<String> = target.parameters.iter().flatten().map(|p| format!("path.{}", p.name)).collect();
            for parameter in link.parameters.keys() {
                assert!(taken.contains(parameter), "{source} {status} → {}: it takes no {parameter} ({taken:?})", link.operation_id);
            }
            assert!(link.request_body.is_none() || target.request_body.is_some(), "{source} → {}: a body for an operation that takes none", link.operation_id);
        }
    }

    /// As served, links name their target as OpenAPI spells it.
    #[test]
    fn served_links_say_operation_id() {
        let document = document();
        let text = document.to_string();
        assert!(!text.contains("\"operation_id\"") && !text.contains("\"request_body\""));
        let links = &document["paths"]["/api/training-files"]["post"]["responses"]["201"]["links"];
        assert_eq!(links["get_file"]["operationId"], "get_file");
        assert_eq!(links["get_file"]["parameters"]["path.id"], "$response.body#/trainingFile/id");
        assert_eq!(
            document["paths"]["/api/conversations"]["get"]["responses"]["200"]["links"]["create_file"]["requestBody"]["conversation_ids"][0],
            "$response.body#/conversations/0/conversation_id"
        );
    }
}
