//! One conversation, read as a curator reads it: its metadata, its turns as a
//! chat with each training pair's target marked beside its emotional context
//! and scores, the validation report when it failed, and the files holding it.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::conversations::{choose, title, Choices};
use super::layout::{self, page, plural, Nav, Notice};
use super::{done, WebResult, WebUser};
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/conversations/{conversation_id}", get(conversation_page))
        .route(
            "/conversations/{conversation_id}/enriched.json",
            get(enriched_json),
        )
        .route(
            "/conversations/{conversation_id}/enrich",
            post(enrich_conversation),
        )
        .route(
            "/conversations/{conversation_id}/delete",
            post(delete_conversation),
        )
        .route(
            "/conversations/{conversation_id}/scaffolding",
            post(set_scaffolding),
        )
        .route(
            "/conversations/{conversation_id}/source",
            post(replace_source),
        )
}

#[derive(Deserialize)]
struct PageQuery {
    done: Option<String>,
}

async fn conversation_page(
    State(state): State<AppState>,
    WebUser(user): WebUser,
    Path(conversation_id): Path<String>,
    Query(query): Query<PageQuery>,
) -> WebResult {
    let conversation_id = crate::http::uuid_param("conversation_id", &conversation_id)?;
    let report = state
        .store
        .enrichment()
        .report(&user, &conversation_id)
        .await?;
    let record = &report.conversation;
    let files = state
        .store
        .conversations()
        .files_holding(&user, &conversation_id)
        .await?;
    let enriched = match state
        .store
        .conversations()
        .enriched_bytes(&user, &conversation_id)
        .await?
    {
        Some(bytes) => serde_json::from_slice::<Value>(&bytes).ok(),
        None => None,
    };
    // A conversation whose text is not JSON or failed, in no file: its
    // source can be fixed here and imported again under the same id.
    let failed = report.parse_error.is_some()
        || matches!(report.enrichment_status.as_str(), "validation_failed" | "normalization_failed");
    let editable = if failed && files.is_empty() && record.enriched_file_path.is_none() {
        let source = state.store.conversations().source_bytes(&user, &conversation_id).await?;
        source.map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    } else {
        None
    };
    let choices = Choices::load(&state).await?;
    let notice = match query.done.as_deref() {
        Some("imported") => Some(Notice::Success(
            "Imported. Enrich it to use it in a training file.".to_owned(),
        )),
        Some("replaced") => Some(Notice::Success(
            "Re-imported from the edited text. Enrich it to use it in a training file.".to_owned(),
        )),
        Some("scaffolding") => Some(Notice::Success(
            "Scaffolding changed: enrichment will use it.".to_owned(),
        )),
        Some("enriched") if report.enrichment_status == "completed" => Some(Notice::Success(
            "Enriched: it can now go into training files.".to_owned(),
        )),
        Some("enriched") => Some(Notice::Error(
            html! { p { "Enrichment did not succeed: see the validation report below." } },
        )),
        _ => None,
    };
    let body = html! {
        dl.meta {
            dt { "Id" } dd { code { (record.conversation_id) } }
            dt { "Status" } dd { (layout::status_words(&report.enrichment_status)) }
            dt { "Persona" } dd { (layout::or_dash(record.persona_key.as_deref())) }
            dt { "Emotional arc" } dd { (layout::or_dash(record.emotional_arc_key.as_deref())) }
            dt { "Topic" } dd { (layout::or_dash(record.topic_key.as_deref())) }
            dt { "Tier" } dd { (layout::or_dash(record.tier.as_deref())) }
            dt { "Quality" } dd { (layout::score(record.quality_score)) }
            dt { "Size" } dd { (plural(record.turn_count, "turn", "turns")) ", " (plural(record.pair_count, "training pair", "training pairs")) }
            dt { "Came as" } dd { (record.source_stage) " text, imported " (layout::when_full(&record.created_at)) }
            @if let Some(at) = &record.enriched_at { dt { "Enriched" } dd { (layout::when_full(at)) } }
        }
        div.actions {
            @if record.enriched_file_path.is_some() {
                a.button.secondary href=(format!("/conversations/{conversation_id}/enriched.json")) download { "Download enriched JSON" }
            }
            @if report.can_enrich && report.parse_error.is_none() {
                form method="post" action=(format!("/conversations/{conversation_id}/enrich")) { button { "Enrich" } }
            }
        }
        @if let Some(error) = &report.parse_error {
            div.notice.failure { p { "This conversation needs review: the imported text is not JSON (" (error) "). Fix the text below and re-import it: the conversation keeps its id." } }
        }
        @if let Some(error) = &report.enrichment_error { div.notice.failure { p { "The last enrichment failed: " (error) } } }
        @if let Some(text) = &editable { (source_form(&conversation_id, text)) }
        @if let Some(validation) = &report.validation_report {
            h2 { "Validation report" }
            p { (validation.summary) " " span.muted { "(" (layout::when(&validation.validated_at)) ")" } }
            @if !validation.blockers.is_empty() || !validation.warnings.is_empty() {
                div.table-wrap { table {
                    thead { tr { th { "Severity" } th { "Field" } th { "Problem" } th { "Suggestion" } } }
                    tbody {
                        @for (kind, issue) in validation.blockers.iter().map(|i| ("blocker", i)).chain(validation.warnings.iter().map(|i| ("warning", i))) {
                            tr { td { span.badge.bad[kind == "blocker"] { (kind) } } td { code { (issue.field) } } td { (issue.message) } td { (issue.suggestion) } }
                        }
                    }
                } }
            }
        }
        h2 { "Training files holding it" }
        @if files.is_empty() {
            p.muted { "None yet. Select it on the " a href="/conversations" { "Conversations" } " page to add it to one." }
        } @else {
            ul { @for f in &files { li { a href=(format!("/training-files/{}", f.id)) { (f.name) } @if f.status != "active" { " " span.badge { (f.status) } } } } }
        }
        @if let Some(document) = &enriched { (chat(document)) }
        @if report.can_enrich {
            h2 { "Scaffolding" }
            form method="post" action=(format!("/conversations/{conversation_id}/scaffolding")) {
                p.muted { "Enrichment uses this persona, arc and topic." }
                (choose("persona_key", "Persona", &choices.personas, record.persona_key.as_deref().unwrap_or_default(), "None"))
                (choose("emotional_arc_key", "Emotional arc", &choices.arcs, record.emotional_arc_key.as_deref().unwrap_or_default(), "None"))
                (choose("topic_key", "Topic", &choices.topics, record.topic_key.as_deref().unwrap_or_default(), "None"))
                button.secondary { "Change scaffolding" }
            }
        }
        h2 { "Delete" }
        form method="post" action=(format!("/conversations/{conversation_id}/delete")) {
            @if !files.is_empty() {
                p { label { input type="checkbox" name="force" value="yes"; " Also remove it from " (plural(files.len() as i64, "training file", "training files")) " that hold it (a new version of each)" } }
            }
            button.danger { "Delete this conversation" }
        }
    };
    Ok(page(
        &format!("Conversation {}", title(record)),
        Nav::Conversations,
        notice,
        body,
    )
    .into_response())
}

/// "Edit and re-import": the stored source in a textarea, posted back to
/// replace it.
fn source_form(conversation_id: &str, text: &str) -> Markup {
    html! {
        h2 #source { "Edit and re-import" }
        form method="post" action=(format!("/conversations/{conversation_id}/source")) {
            p.muted { "The text this conversation was imported from. Fix it and re-import: it keeps its id and can be enriched again." }
            label.visually-hidden for="source-text" { "Conversation text" }
            textarea #source-text name="text" rows="16" required { (text) }
            button { "Re-import" }
        }
    }
}

/// Replaces a conversation's source with the edited text; text that is
/// still not JSON is shown again with where it breaks.
async fn replace_source(
    State(state): State<AppState>,
    WebUser(user): WebUser,
    Path(conversation_id): Path<String>,
    fields: super::Fields,
) -> WebResult<Response> {
    let conversation_id = crate::http::uuid_param("conversation_id", &conversation_id)?;
    let text = fields.raw("text").to_owned();
    let request = lora_files_store::conversations::ImportRequest::new("the edited text", text.clone());
    match state.store.conversations().replace_source(&user, &conversation_id, request).await {
        Ok(_) => Ok(done(&format!("/conversations/{conversation_id}"), "replaced")),
        Err(error) => {
            let error = ApiError::from(error);
            let notice = Notice::Error(super::errors::explain(&error, &[]));
            let body = html! {
                p { a href=(format!("/conversations/{conversation_id}")) { "Back to the conversation" } }
                (source_form(&conversation_id, &text))
            };
            Ok((error.status, page("Edit and re-import", Nav::Conversations, Some(notice), body)).into_response())
        }
    }
}

/// The training pairs as a chat: the user's message, then the target reply
/// the model is trained towards, with the pair's emotions and scores beside.
fn chat(document: &Value) -> Markup {
    let pairs = document
        .get("training_pairs")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    html! {
        h2 { "Turns and training pairs" }
        @if pairs.is_empty() { p.muted { "The enriched file holds no training pairs." } }
        @for (index, pair) in pairs.iter().enumerate() {
            section.pair aria-label=(format!("Training pair {}", index + 1)) {
                div {
                    @if let Some(input) = pair.get("current_user_input").and_then(Value::as_str) {
                        div.bubble.user { span.who { "User · turn " (number(pair.get("turn_number"))) } (input) }
                    }
                    @match pair.get("target_response").and_then(Value::as_str) {
                        Some(target) => div.bubble.assistant.target { span.who { "Assistant · training target" } (target) },
                        None => p.muted { "No target response for this pair." },
                    }
                }
                aside.aside { (pair_facts(pair)) }
            }
        }
    }
}

fn number(value: Option<&Value>) -> String {
    value.map_or_else(|| "?".to_owned(), |v| v.to_string())
}

fn pair_facts(pair: &Value) -> Markup {
    let emotions = &pair["emotional_context"]["detected_emotions"];
    let metadata = &pair["training_metadata"];
    let figure = |v: &Value| match v {
        Value::Number(n) => n.as_f64().map_or_else(
            || n.to_string(),
            |f| {
                format!("{f:.2}")
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_owned()
            },
        ),
        Value::String(s) => s.clone(),
        Value::Null => "–".to_owned(),
        other => other.to_string(),
    };
    html! {
        dl {
            @if !emotions.is_null() {
                dt { "Emotion" } dd { (figure(&emotions["primary"])) @if !emotions["secondary"].is_null() { ", " (figure(&emotions["secondary"])) } }
                dt { "Intensity" } dd { (figure(&emotions["intensity"])) }
                @if !emotions["valence"].is_null() { dt { "Valence" } dd { (figure(&emotions["valence"])) } }
            }
            dt { "Quality" } dd { (figure(&metadata["quality_score"])) }
            @if let Some(criteria) = metadata["quality_criteria"].as_object() {
                @for (name, value) in criteria { dt { (name.trim_end_matches("_score").replace('_', " ")) } dd { (figure(value)) } }
            }
            @if metadata["human_reviewed"].as_bool() == Some(true) { dt { "Reviewed" } dd { "by a person" } }
        }
    }
}

/// The conversation's enriched file, as stored.
async fn enriched_json(
    State(state): State<AppState>,
    WebUser(user): WebUser,
    Path(conversation_id): Path<String>,
) -> WebResult {
    let conversation_id = crate::http::uuid_param("conversation_id", &conversation_id)?;
    let bytes = state
        .store
        .conversations()
        .enriched_bytes(&user, &conversation_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let disposition =
        format!("attachment; filename=\"conversation-{conversation_id}-enriched.json\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

async fn enrich_conversation(
    State(state): State<AppState>,
    WebUser(user): WebUser,
    Path(conversation_id): Path<String>,
) -> WebResult<Response> {
    let conversation_id = crate::http::uuid_param("conversation_id", &conversation_id)?;
    state
        .store
        .enrichment()
        .run(&user, &conversation_id)
        .await?;
    Ok(done(
        &format!("/conversations/{conversation_id}"),
        "enriched",
    ))
}

/// Deletes a conversation; one that files hold needs "force" ticked.
async fn delete_conversation(
    State(state): State<AppState>,
    WebUser(user): WebUser,
    Path(conversation_id): Path<String>,
    fields: super::Fields,
) -> WebResult<Response> {
    let conversation_id = crate::http::uuid_param("conversation_id", &conversation_id)?;
    let force = fields.get("force").is_some();
    state
        .store
        .conversations()
        .delete(&user, &conversation_id, force)
        .await?;
    Ok(done("/conversations", "deleted"))
}

/// Changes the persona, arc and topic enrichment will use.
async fn set_scaffolding(
    State(state): State<AppState>,
    WebUser(user): WebUser,
    Path(conversation_id): Path<String>,
    fields: super::Fields,
) -> WebResult<Response> {
    let conversation_id = crate::http::uuid_param("conversation_id", &conversation_id)?;
    let key = |name: &str| fields.get(name).map(str::to_owned);
    let keys = lora_files_store::scaffolding::ScaffoldingKeys {
        persona: key("persona_key"),
        emotional_arc: key("emotional_arc_key"),
        training_topic: key("topic_key"),
    };
    state
        .store
        .conversations()
        .set_scaffolding(&user, &conversation_id, &keys)
        .await?;
    Ok(done(
        &format!("/conversations/{conversation_id}"),
        "scaffolding",
    ))
}
