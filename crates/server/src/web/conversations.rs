//! The conversations page as a selector: filters, paging, a checkbox per
//! usable row, and a selection that survives paging and filtering, carried in
//! the page's own form (no JavaScript, no server-side state). The selection
//! creates a training file or adds to one; refusals name each conversation.

use std::collections::HashSet;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;

use lora_files_format::enrich::reference::SeedKind;
use lora_files_store::conversations::{ConversationFilter, ImportRequest};
use lora_files_store::records::ConversationRecord;
use lora_files_store::scaffolding::{ScaffoldingKeys, ScaffoldingRow};
use lora_files_store::training_files::FileFilter;

use super::errors::{explain, named_in};
use super::layout::{self, page, plural, short_id, Nav, Notice};
use super::{done, Fields, WebResult, WebUser};
use crate::error::ApiError;
use crate::state::AppState;

/// Rows on one page of the selector.
pub const PAGE_SIZE: i64 = 50;
/// The most rows a page may be asked for (`per`).
const MAX_PAGE_SIZE: i64 = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/conversations", get(conversations_page))
        .route("/conversations/selection", post(use_selection))
        .route("/conversations/import", post(import_conversation))
}

/// A short title for a conversation: its persona and topic.
pub fn title(record: &ConversationRecord) -> String {
    match (record.persona_key.as_deref(), record.topic_key.as_deref()) {
        (Some(persona), Some(topic)) => format!("{persona} · {topic}"),
        (Some(one), None) | (None, Some(one)) => one.to_owned(),
        (None, None) => format!("{} conversation", record.source_stage),
    }
}

/// Why a conversation cannot go into a training file, if it cannot.
pub fn ineligible_reason(record: &ConversationRecord) -> Option<String> {
    if record.parse_error.is_some() {
        return Some("needs review: the text is not JSON".to_owned());
    }
    match record.enrichment_status.as_str() {
        "completed" if record.enriched_file_path.is_some() => None,
        "completed" => Some("has no enriched file".to_owned()),
        status => Some(format!("{}: enrich it first", layout::status_words(status))),
    }
}

/// What the selector shows: the filter, the page, the selection and the
/// values typed into the create form, from a query string or a posted form.
#[derive(Default)]
struct View {
    /// `completed` by default; "any" shows every status.
    status: String,
    persona: String,
    arc: String,
    topic: String,
    min_quality: String,
    q: String,
    cursor: Option<String>,
    /// Rows per page.
    per: i64,
    selection: Vec<String>,
    name: String,
    description: String,
    file: String,
}

/// A selection is carried as the ids' 32 hex digits, concatenated.
fn encode_ids<'a>(ids: impl Iterator<Item = &'a String>) -> String {
    ids.map(|id| id.replace('-', "")).collect()
}

fn decode_ids(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    bytes
        .chunks(32)
        .filter_map(|chunk| std::str::from_utf8(chunk).ok())
        .filter_map(|hex| uuid::Uuid::try_parse(hex).ok())
        .map(|id| id.hyphenated().to_string())
        .collect()
}

impl View {
    /// Reads the view from a form (GET query or POST body) and applies its action.
    async fn from_fields(state: &AppState, user: &str, fields: &Fields) -> Result<Self, WebError> {
        let text = |name: &str| fields.get(name).unwrap_or_default().to_owned();
        let mut view = View {
            status: fields.get("status").unwrap_or("completed").to_owned(),
            persona: text("persona"),
            arc: text("arc"),
            topic: text("topic"),
            min_quality: text("min_quality"),
            q: text("q"),
            // Selecting or using the selection stays on the page shown ("at");
            // the filter and "First page" buttons start again from the top.
            cursor: fields
                .get("cursor")
                .or_else(|| fields.get("act").or(fields.get("do")).and(fields.get("at")))
                .map(str::to_owned),
            name: text("name"),
            description: fields.raw("description").to_owned(),
            file: text("file"),
            per: match fields.get("per") {
                None => PAGE_SIZE,
                Some(text) => text.parse().ok().filter(|n| (1..=MAX_PAGE_SIZE).contains(n)).ok_or_else(|| {
                    WebError::from(ApiError::field("per", format!("rows per page must be a number from 1 to {MAX_PAGE_SIZE}, not {text:?}")))
                })?,
            },
            selection: Vec::new(),
        };
        let mut seen = HashSet::new();
        let mut select = |view: &mut View, id: String| {
            if seen.insert(id.clone()) {
                view.selection.push(id);
            }
        };
        for id in decode_ids(fields.raw("sel")) {
            select(&mut view, id);
        }
        for id in fields.all("pick") {
            if let Ok(uuid) = uuid::Uuid::parse_str(id) {
                select(&mut view, uuid.hyphenated().to_string());
            }
        }
        match fields.get("act") {
            Some("page") => {
                for id in decode_ids(fields.raw("shown")) {
                    select(&mut view, id);
                }
            }
            Some("all") => {
                let mut filter = view.filter()?;
                filter.enrichment_status = Some("completed".to_owned());
                let limit = state.settings.max_ids_per_request as i64;
                for id in state
                    .store
                    .conversations()
                    .matching_ids(user, &filter, limit)
                    .await?
                {
                    select(&mut view, id);
                }
            }
            Some("clear") => view.selection.clear(),
            _ => {}
        }
        Ok(view)
    }

    fn filter(&self) -> Result<ConversationFilter, WebError> {
        let chosen = |v: &str| Some(v.to_owned()).filter(|v| !v.is_empty());
        let min_quality = match self.min_quality.as_str() {
            "" => None,
            text => match text.parse::<f64>() {
                Ok(q) if (0.0..=5.0).contains(&q) => Some(q),
                _ => {
                    return Err(ApiError::field(
                        "min_quality",
                        format!("the minimum quality must be a number from 0 to 5, not {text:?}"),
                    )
                    .into())
                }
            },
        };
        let status = match self.status.as_str() {
            "any" | "" => None,
            s if STATUSES.iter().any(|(key, _)| *key == s) => Some(s.to_owned()),
            s => {
                return Err(
                    ApiError::field("status", format!("{s:?} is not an enrichment status")).into(),
                )
            }
        };
        Ok(ConversationFilter {
            enrichment_status: status,
            persona_key: chosen(&self.persona),
            emotional_arc_key: chosen(&self.arc),
            topic_key: chosen(&self.topic),
            min_quality,
            q: chosen(&self.q),
        })
    }
}

use super::WebError;

const STATUSES: [(&str, &str); 6] = [
    ("completed", "Enriched"),
    ("not_started", "Not enriched yet"),
    ("validation_failed", "Failed validation"),
    ("normalization_failed", "Failed normalisation"),
    ("validated", "Validated"),
    ("enrichment_in_progress", "Being enriched"),
];

#[derive(Deserialize)]
struct PageQuery {
    done: Option<String>,
}

async fn conversations_page(
    State(state): State<AppState>,
    WebUser(user): WebUser,
    Query(query): Query<PageQuery>,
    uri: axum::http::Uri,
) -> WebResult {
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let fields = Fields::from_pairs(pairs);
    let view = View::from_fields(&state, &user, &fields).await?;
    let notice = match query.done.as_deref() {
        Some("imported") => Some(Notice::Success("Imported.".to_owned())),
        Some("deleted") => Some(Notice::Success("The conversation was deleted.".to_owned())),
        _ => None,
    };
    render(&state, &user, &view, notice, StatusCode::OK).await
}

/// Creates a training file from the selection, or adds it to one; any other
/// button of the form (filters, paging, select all) only redraws the page.
async fn use_selection(
    State(state): State<AppState>,
    WebUser(user): WebUser,
    fields: Fields,
) -> WebResult {
    let view = View::from_fields(&state, &user, &fields).await?;
    let action = fields.get("do").unwrap_or_default();
    if view.selection.is_empty() && (action == "create" || action == "add") {
        let notice = Notice::Error(
            html! { p { "Select at least one conversation first: tick the boxes in the list." } },
        );
        return render(&state, &user, &view, Some(notice), StatusCode::BAD_REQUEST).await;
    }
    let result = match action {
        "create" => create(&state, &user, &view).await,
        "add" => add(&state, &user, &view).await,
        _ => return render(&state, &user, &view, None, StatusCode::OK).await,
    };
    match result {
        Ok(response) => Ok(response),
        Err(error) => {
            let named = named_in(&state, &user, &error).await;
            let status = error.status;
            render(
                &state,
                &user,
                &view,
                Some(Notice::Error(explain(&error, &named))),
                status,
            )
            .await
        }
    }
}

async fn create(state: &AppState, user: &str, view: &View) -> Result<Response, ApiError> {
    crate::http::check_id_count(state, &view.selection)?;
    if view.name.is_empty() {
        return Err(ApiError::field("name", "give the new training file a name"));
    }
    let description = Some(view.description.trim()).filter(|d| !d.is_empty());
    let file = state
        .store
        .training_files()
        .create(user, &view.name, description, &view.selection)
        .await?;
    Ok(done(&format!("/training-files/{}", file.id), "created"))
}

async fn add(state: &AppState, user: &str, view: &View) -> Result<Response, ApiError> {
    crate::http::check_id_count(state, &view.selection)?;
    if uuid::Uuid::parse_str(&view.file).is_err() {
        return Err(ApiError::field(
            "file",
            "choose the training file to add to",
        ));
    }
    let file = state
        .store
        .training_files()
        .add(user, &view.file, &view.selection)
        .await?;
    Ok(done(&format!("/training-files/{}", file.id), "added"))
}

/// The scaffolding of the filters and of the import form.
pub(super) struct Choices {
    pub(super) personas: Vec<ScaffoldingRow>,
    pub(super) arcs: Vec<ScaffoldingRow>,
    pub(super) topics: Vec<ScaffoldingRow>,
}

impl Choices {
    pub(super) async fn load(state: &AppState) -> Result<Self, WebError> {
        Ok(Self {
            personas: state.store.scaffolding().list(SeedKind::Persona).await?,
            arcs: state
                .store
                .scaffolding()
                .list(SeedKind::EmotionalArc)
                .await?,
            topics: state
                .store
                .scaffolding()
                .list(SeedKind::TrainingTopic)
                .await?,
        })
    }
}

pub(super) fn choose(
    name: &str,
    label: &str,
    rows: &[ScaffoldingRow],
    chosen: &str,
    any: &str,
) -> Markup {
    html! {
        label {
            (label)
            select name=(name) {
                option value="" { (any) }
                @for row in rows { option value=(row.key) selected[row.key == chosen] { (row.name) " (" (row.key) ")" } }
            }
        }
    }
}

async fn render(
    state: &AppState,
    user: &str,
    view: &View,
    notice: Option<Notice>,
    status: StatusCode,
) -> WebResult {
    let filter = view.filter()?;
    let conversations = state
        .store
        .conversations()
        .list(user, &filter, view.per, view.cursor.as_deref())
        .await?;
    let matching = state.store.conversations().count(user, &filter).await?;
    let choices = Choices::load(state).await?;
    let files = state
        .store
        .training_files()
        .list(
            user,
            &FileFilter {
                status: Some("active".to_owned()),
                q: None,
            },
            200,
            None,
        )
        .await?;
    let selected: HashSet<&str> = view.selection.iter().map(String::as_str).collect();
    let eligible: Vec<&ConversationRecord> = conversations
        .items
        .iter()
        .filter(|c| ineligible_reason(c).is_none())
        .collect();
    let on_page: HashSet<&str> = eligible
        .iter()
        .map(|c| c.conversation_id.as_str())
        .collect();
    let carried = encode_ids(
        view.selection
            .iter()
            .filter(|id| !on_page.contains(id.as_str())),
    );
    let shown = encode_ids(eligible.iter().map(|c| &c.conversation_id));
    let count = view.selection.len() as i64;
    let nothing_at_all = matching == 0
        && filter.enrichment_status.as_deref() == Some("completed")
        && view.q.is_empty();

    let body = html! {
        form #selector method="get" action="/conversations" {
            input type="hidden" name="sel" value=(carried);
            input type="hidden" name="shown" value=(shown);
            @if view.per != PAGE_SIZE { input type="hidden" name="per" value=(view.per); }
            div.filters role="search" {
                label { "Status"
                    select name="status" {
                        option value="any" selected[view.status == "any"] { "Any status" }
                        @for (key, words) in STATUSES { option value=(key) selected[view.status == key] { (words) } }
                    }
                }
                (choose("persona", "Persona", &choices.personas, &view.persona, "Any persona"))
                (choose("arc", "Emotional arc", &choices.arcs, &view.arc, "Any arc"))
                (choose("topic", "Topic", &choices.topics, &view.topic, "Any topic"))
                label { "Min. quality" input type="number" name="min_quality" min="0" max="5" step="0.1" value=(view.min_quality); }
                label { "Search (id, persona, arc, topic)" input type="search" name="q" value=(view.q); }
                button.secondary type="submit" formnovalidate { "Apply filters" }
            }
            p.muted { (plural(matching, "conversation matches", "conversations match")) " these filters." }
            @if conversations.items.is_empty() {
                @if nothing_at_all {
                    p { "No enriched conversations yet. Import conversations below, then enrich them (" code { "lora-files enrich --all" } ", or the Enrich button on each)." }
                } @else {
                    p { "No conversations match these filters. " a href="/conversations?status=any" { "Show every conversation" } "." }
                }
            } @else {
                div.actions {
                    button.secondary type="submit" name="act" value="page" formnovalidate { "Select all on this page" }
                    button.secondary type="submit" name="act" value="all" formnovalidate { "Select all " (matching) " matching" }
                    @if count > 0 { button.secondary type="submit" name="act" value="clear" formnovalidate { "Clear selection" } }
                }
                div.table-wrap {
                    table.responsive {
                        thead { tr {
                            th { span.visually-hidden { "Select" } }
                            th { "Conversation" } th { "Status" } th { "Persona" } th.optional { "Arc" } th { "Topic" }
                            th.num.optional { "Turns" } th.num { "Pairs" } th.num { "Quality" } th.optional { "Imported" }
                        } }
                        tbody {
                            @for c in &conversations.items {
                                @let reason = ineligible_reason(c);
                                tr {
                                    td {
                                        @if reason.is_none() {
                                            input type="checkbox" name="pick" value=(c.conversation_id) id=(format!("pick-{}", c.conversation_id))
                                                checked[selected.contains(c.conversation_id.as_str())] aria-label=(format!("Select {}", title(c)));
                                        }
                                    }
                                    td { a href=(format!("/conversations/{}", c.conversation_id)) { (short_id(&c.conversation_id)) } }
                                    td {
                                        (layout::status_words(&c.enrichment_status))
                                        @if let Some(reason) = &reason { br; span.reason { "Cannot be selected: " (reason) } }
                                    }
                                    td { (layout::or_dash(c.persona_key.as_deref())) } td.optional { (layout::or_dash(c.emotional_arc_key.as_deref())) }
                                    td { (layout::or_dash(c.topic_key.as_deref())) }
                                    td.num.optional { (c.turn_count) } td.num { (c.pair_count) } td.num { (layout::score(c.quality_score)) }
                                    td.optional { (layout::when(&c.created_at)) }
                                }
                            }
                        }
                    }
                }
                div.pager {
                    @if view.cursor.is_some() { button.secondary type="submit" formnovalidate { "First page" } }
                    @if let Some(next) = &conversations.next_cursor {
                        button.secondary type="submit" name="cursor" value=(next) formnovalidate { "Next page" }
                    }
                }
            }
            @if let Some(cursor) = &view.cursor { input type="hidden" name="at" value=(cursor); }
            section.selection aria-label="Selection" {
                span.count data-selected-count=(count) { (plural(count, "conversation selected", "conversations selected")) }
                label { "New file name" input name="name" value=(view.name) maxlength="255"; }
                label { "Description (optional)" input name="description" value=(view.description); }
                button type="submit" name="do" value="create" formmethod="post" formaction="/conversations/selection" { "Create training file" }
                @if !files.items.is_empty() {
                    label { "Add to…"
                        select name="file" {
                            @for f in &files.items {
                                option value=(f.id) selected[f.id == view.file] { (f.name) " (" (plural(f.conversation_count, "conversation", "conversations")) ")" }
                            }
                        }
                    }
                    button type="submit" name="do" value="add" formmethod="post" formaction="/conversations/selection" formnovalidate { "Add to file" }
                }
            }
        }
        (import_form(&choices, &ImportValues::default()))
    };
    Ok((
        status,
        page("Conversations", Nav::Conversations, notice, body),
    )
        .into_response())
}

/// What was typed into the import form, kept when it is refused.
#[derive(Default)]
struct ImportValues {
    text: String,
    persona: String,
    arc: String,
    topic: String,
    conversation_id: String,
}

fn import_form(choices: &Choices, values: &ImportValues) -> Markup {
    let no_scaffolding =
        choices.personas.is_empty() && choices.arcs.is_empty() && choices.topics.is_empty();
    html! {
        h2 #import { "Import a conversation" }
        form method="post" action="/conversations/import" {
            p.muted { "Paste raw LLM output, a parsed conversation or an enriched v4 file. Text that is not JSON is kept for review." }
            label.visually-hidden for="import-text" { "Conversation text" }
            textarea #import-text name="text" rows="8" required placeholder="{\"conversation_metadata\": {…}, \"turns\": […]}" { (values.text) }
            @if no_scaffolding {
                p.muted { "No scaffolding is loaded, so persona, arc and topic cannot be chosen. Load it with " code { "lora-files scaffolding load" } "." }
            } @else {
                p {
                    (choose("persona_key", "Persona", &choices.personas, &values.persona, "From the file"))
                    (choose("emotional_arc_key", "Emotional arc", &choices.arcs, &values.arc, "From the file"))
                    (choose("topic_key", "Topic", &choices.topics, &values.topic, "From the file"))
                }
            }
            p { label { "Conversation id (optional)" br; input name="conversation_id" size="38" value=(values.conversation_id); } }
            button { "Import" }
        }
    }
}

async fn import_conversation(
    State(state): State<AppState>,
    WebUser(user): WebUser,
    fields: Fields,
) -> WebResult {
    let values = ImportValues {
        text: fields.raw("text").to_owned(),
        persona: fields.get("persona_key").unwrap_or_default().to_owned(),
        arc: fields
            .get("emotional_arc_key")
            .unwrap_or_default()
            .to_owned(),
        topic: fields.get("topic_key").unwrap_or_default().to_owned(),
        conversation_id: fields.get("conversation_id").unwrap_or_default().to_owned(),
    };
    let chosen = |v: &str| Some(v.to_owned()).filter(|v| !v.is_empty());
    let request = ImportRequest {
        scaffolding: ScaffoldingKeys {
            persona: chosen(&values.persona),
            emotional_arc: chosen(&values.arc),
            training_topic: chosen(&values.topic),
        },
        conversation_id: chosen(&values.conversation_id),
        keep_unparsable: true,
        ..ImportRequest::new("the pasted text", values.text.clone())
    };
    match state.store.conversations().import(&user, request).await {
        Ok(imported) => Ok(done(
            &format!("/conversations/{}", imported.record().conversation_id),
            "imported",
        )),
        Err(error) => {
            let error = ApiError::from(error);
            let choices = Choices::load(&state).await?;
            let body = html! { (import_form(&choices, &values)) };
            let notice = Notice::Error(explain(&error, &[]));
            Ok((
                error.status,
                page(
                    "Import a conversation",
                    Nav::Conversations,
                    Some(notice),
                    body,
                ),
            )
                .into_response())
        }
    }
}
