//! The web UI: server-rendered pages (maud escapes every value) over the same
//! store calls as the API. A browser session is the API's access token in an
//! HttpOnly, SameSite=Strict cookie, so cross-site forms cannot use it; pages
//! work without JavaScript.

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;
use serde_json::Value;

use lora_files_format::enrich::reference::SeedKind;
use lora_files_store::conversations::{ConversationFilter, ImportRequest};
use lora_files_store::training_files::{DownloadFormat, FileFilter, FileUpdate};
use lora_files_store::scaffolding::ScaffoldingKeys;
use lora_files_store::TrainingFile;

use crate::auth::{AuthUser, SESSION_COOKIE};
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/training-files", get(files_page).post(create_file))
        .route("/training-files/{id}", get(file_page))
        .route("/training-files/{id}/add", post(add_to_file))
        .route("/training-files/{id}/remove/{conversation_id}", post(remove_from_file))
        .route("/training-files/{id}/status", post(update_file))
        .route("/training-files/{id}/rename", post(update_file))
        .route("/training-files/{id}/delete", post(delete_file))
        .route("/training-files/{id}/download", get(download))
        .route("/conversations", get(conversations_page))
        .route("/conversations/import", post(import_conversation))
        .route("/conversations/{conversation_id}", get(conversation_page))
        .route("/conversations/{conversation_id}/enrich", post(enrich_conversation))
}

/// The signed-in user of a page; without a valid session, the login page.
pub struct WebUser(String);

impl FromRequestParts<AppState> for WebUser {
    type Rejection = Redirect;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        AuthUser::from_request_parts(parts, state).await.map(|AuthUser(user)| WebUser(user)).map_err(|_| Redirect::to("/"))
    }
}

/// A failed page: the API's error, shown as HTML with its status.
pub struct WebError(ApiError);

impl<E: Into<ApiError>> From<E> for WebError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let ApiError { status, message, details, .. } = self.0;
        let body = html! {
            p.error { (message) }
            @if let Some(details) = &details { (details_list(details)) }
            p { a href="/training-files" { "Training files" } " · " a href="/conversations" { "Conversations" } }
        };
        (status, page("Something went wrong", true, body)).into_response()
    }
}

type WebResult<T = Response> = Result<T, WebError>;

/// The items of an error's `details`: refused conversations, bad fields, ids already in a file.
fn details_list(details: &Value) -> Markup {
    let lines: Vec<String> = if let Some(refused) = details.get("conversations").and_then(Value::as_array) {
        refused.iter().map(|c| format!("{}: {}", text(&c["conversation_id"]), text(&c["reason"]))).collect()
    } else if let Some(fields) = details.get("fields").and_then(Value::as_array) {
        fields.iter().map(|f| format!("{}: {}", text(&f["path"]), text(&f["message"]))).collect()
    } else if let Some(ids) = details.get("conversation_ids").and_then(Value::as_array) {
        ids.iter().map(|id| format!("{} is already in the file", text(id))).collect()
    } else {
        Vec::new()
    };
    html! { ul { @for line in &lines { li { (line) } } } }
}

fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2430}\
header{background:#1d2430;color:#fff;padding:.6rem 1.5rem;display:flex;gap:1.5rem;align-items:center}\
header a{color:#fff;text-decoration:none}header form{margin-left:auto}main{padding:1rem 1.5rem;max-width:80rem}\
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #dde}\
th{background:#f3f4f8}textarea{width:100%;font-family:monospace}.error{color:#a40000;font-weight:600}\
fieldset{border:1px solid #dde;margin:1rem 0}button{cursor:pointer}.muted{color:#667}form.inline{display:inline}";

fn page(title: &str, signed_in: bool, body: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · lora-files" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "lora-files" }
                    @if signed_in {
                        a href="/training-files" { "Training files" }
                        a href="/conversations" { "Conversations" }
                        a href="/api/openapi.json" { "API" }
                        form method="post" action="/logout" { button { "Sign out" } }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    };
    Html(markup.into_string())
}

/// "Nothing here" under an empty list; a link to the next page when there is one.
fn page_footer(empty: bool, nothing: &str, next: Option<String>) -> Markup {
    html! {
        @if empty { p.muted { (nothing) } }
        @if let Some(href) = next { p { a href=(href) { "More…" } } }
    }
}

fn see_other(location: &str) -> Response {
    Redirect::to(location).into_response()
}

fn figure(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"))
}

/// Conversation ids from a textarea: separated by white space or commas.
fn ids_from(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

// ---- session ----

async fn home(State(state): State<AppState>, mut parts: Parts) -> Response {
    if AuthUser::from_request_parts(&mut parts, &state).await.is_ok() {
        return see_other("/training-files");
    }
    login_page(None, StatusCode::OK)
}

fn login_page(error: Option<&str>, status: StatusCode) -> Response {
    let body = html! {
        @if let Some(error) = error { p.error { (error) } }
        form method="post" action="/login" {
            p { label { "Email " input type="email" name="email" required autofocus; } }
            p { label { "Password " input type="password" name="password" required; } }
            button { "Sign in" }
        }
        p.muted { "Programs use the HTTP API with a bearer token: " a href="/api/openapi.json" { "OpenAPI document" } "." }
    };
    (status, page("Sign in", false, body)).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
}

async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> WebResult {
    let Some(user) = state.store.users().authenticate(&form.email, &form.password).await? else {
        return Ok(login_page(Some("Wrong email or password."), StatusCode::UNAUTHORIZED));
    };
    let lifetime = state.settings.token_lifetime;
    let token = state.tokens.issue(&user.id, Some(&user.email), lifetime);
    let secure = if state.store.config().links.public_url.starts_with("https://") { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}", lifetime.as_secs());
    let mut response = see_other("/training-files");
    response.headers_mut().insert(SET_COOKIE, HeaderValue::from_str(&cookie).map_err(ApiError::internal)?);
    Ok(response)
}

async fn logout() -> Response {
    let mut response = see_other("/");
    let expired = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    response.headers_mut().insert(SET_COOKIE, HeaderValue::from_str(&expired).expect("an ASCII cookie"));
    response
}

// ---- training files ----

#[derive(Deserialize)]
struct FilesQuery {
    status: Option<String>,
    cursor: Option<String>,
}

async fn files_page(State(state): State<AppState>, WebUser(user): WebUser, Query(query): Query<FilesQuery>) -> WebResult {
    let filter = FileFilter { status: query.status.clone(), q: None };
    let files = state.store.training_files().list(&user, &filter, 100, query.cursor.as_deref()).await?;
    let showing_all = query.status.as_deref() == Some("all");
    let body = html! {
        p {
            @if showing_all { a href="/training-files" { "Active files only" } } @else { a href="/training-files?status=all" { "Include archived files" } }
        }
        table {
            tr { th { "Name" } th { "Version" } th { "Conversations" } th { "Training pairs" } th { "Quality avg" } th { "Status" } th { "Updated" } th { "Download" } }
            @for file in &files.items {
                tr {
                    td { a href=(format!("/training-files/{}", file.id)) { (file.name) } }
                    td { (file.version) } td { (file.conversation_count) } td { (file.total_training_pairs) }
                    td { (figure(file.avg_quality_score)) } td { (file.status) } td { (file.updated_at) }
                    td { (download_links(file, None)) }
                }
            }
        }
        (page_footer(files.items.is_empty(), "No training files yet.", files.next_cursor.as_ref().map(|cursor| {
            format!("/training-files?status={}&cursor={cursor}", query.status.as_deref().unwrap_or("active"))
        })))
        form method="post" action="/training-files" {
            fieldset {
                legend { "New training file" }
                p { label { "Name " input name="name" required maxlength="255"; } }
                p { label { "Description " input name="description"; } }
                p { label { "Conversation ids (enriched conversations; one per line) " textarea name="conversation_ids" rows="4" required {} } }
                button { "Create" }
            }
        }
    };
    Ok(page("Training files", true, body).into_response())
}

fn download_links(file: &TrainingFile, version: Option<i64>) -> Markup {
    let query = version.map(|v| format!("&version={v}")).unwrap_or_default();
    html! {
        a href=(format!("/training-files/{}/download?format=json{query}", file.id)) { "JSON" } " · "
        a href=(format!("/training-files/{}/download?format=jsonl{query}", file.id)) { "JSONL" }
    }
}

#[derive(Deserialize)]
struct CreateForm {
    name: String,
    description: Option<String>,
    conversation_ids: String,
}

async fn create_file(State(state): State<AppState>, WebUser(user): WebUser, Form(form): Form<CreateForm>) -> WebResult {
    let ids = ids_from(&form.conversation_ids);
    let description = form.description.as_deref().map(str::trim).filter(|d| !d.is_empty());
    let file = state.store.training_files().create(&user, &form.name, description, &ids).await?;
    Ok(see_other(&format!("/training-files/{}", file.id)))
}

async fn file_page(State(state): State<AppState>, WebUser(user): WebUser, Path(id): Path<String>) -> WebResult {
    crate::http::uuid_param("id", &id)?;
    let file = state.store.training_files().get(&user, &id).await?;
    let members = state.store.training_files().members(&user, &id, 500, None).await?;
    let versions = state.store.training_files().versions(&user, &id).await?;
    let active = file.status == "active";
    let body = html! {
        @if let Some(description) = &file.description { p { (description) } }
        p {
            "Version " (file.version) " · " (file.conversation_count) " conversations · " (file.total_training_pairs) " training pairs · quality "
            (figure(file.avg_quality_score)) " (min " (figure(file.min_quality_score)) ", max " (figure(file.max_quality_score)) ") · " (file.status)
        }
        p { "Download the current version: " (download_links(&file, None)) }
        form.inline method="post" action=(format!("/training-files/{}/status", file.id)) {
            input type="hidden" name="status" value=(if active { "archived" } else { "active" });
            button { (if active { "Archive" } else { "Unarchive" }) }
        }
        h2 { "Conversations" }
        table {
            tr { th { "Conversation" } th { "Persona" } th { "Arc" } th { "Topic" } th { "Quality" } th { "Pairs" } th { "Added" } th {} }
            @for member in &members.items {
                tr {
                    td { a href=(format!("/conversations/{}", member.conversation_id)) { (member.conversation_id) } }
                    td { (member.persona_key.as_deref().unwrap_or("–")) } td { (member.emotional_arc_key.as_deref().unwrap_or("–")) }
                    td { (member.topic_key.as_deref().unwrap_or("–")) } td { (figure(member.quality_score)) } td { (member.pairs) } td { (member.added_at) }
                    td {
                        @if active && members.items.len() > 1 {
                            form.inline method="post" action=(format!("/training-files/{}/remove/{}", file.id, member.conversation_id)) { button { "Remove" } }
                        }
                    }
                }
            }
        }
        @if members.next_cursor.is_some() { p.muted { "Showing the first 500 conversations." } }
        @if active {
            form method="post" action=(format!("/training-files/{}/add", file.id)) {
                fieldset {
                    legend { "Add conversations (a new version)" }
                    textarea name="conversation_ids" rows="3" required {}
                    button { "Add" }
                }
            }
        }
        form method="post" action=(format!("/training-files/{}/rename", file.id)) {
            fieldset {
                legend { "Rename" }
                input name="name" value=(file.name) required maxlength="255";
                " " button { "Rename" }
            }
        }
        form method="post" action=(format!("/training-files/{}/delete", file.id)) {
            fieldset {
                legend { "Delete this file and all its versions" }
                label { "Type the file's name to confirm " input name="confirm" required; }
                " " button { "Delete" }
            }
        }
        h2 { "Versions" }
        table {
            tr { th { "Version" } th { "Change" } th { "Created" } th { "Conversations" } th { "Pairs" } th { "JSON / JSONL bytes" } th { "Download" } }
            @for version in versions.iter().rev() {
                tr {
                    td { (version.version) } td { (version.change) } td { (version.created_at) } td { (version.conversation_count) }
                    td { (version.total_training_pairs) } td { (version.json_file_size) " / " (version.jsonl_file_size) }
                    td { (download_links(&file, Some(version.version))) }
                }
            }
        }
    };
    Ok(page(&file.name, true, body).into_response())
}

#[derive(Deserialize)]
struct IdsForm {
    conversation_ids: String,
}

async fn add_to_file(State(state): State<AppState>, WebUser(user): WebUser, Path(id): Path<String>, Form(form): Form<IdsForm>) -> WebResult {
    crate::http::uuid_param("id", &id)?;
    state.store.training_files().add(&user, &id, &ids_from(&form.conversation_ids)).await?;
    Ok(see_other(&format!("/training-files/{id}")))
}

async fn remove_from_file(State(state): State<AppState>, WebUser(user): WebUser, Path((id, conversation_id)): Path<(String, String)>) -> WebResult {
    crate::http::uuid_param("id", &id)?;
    state.store.training_files().remove(&user, &id, &conversation_id).await?;
    Ok(see_other(&format!("/training-files/{id}")))
}

/// The rename form sends `name`, the archive button `status`.
#[derive(Deserialize)]
struct UpdateForm {
    name: Option<String>,
    status: Option<String>,
}

async fn update_file(State(state): State<AppState>, WebUser(user): WebUser, Path(id): Path<String>, Form(form): Form<UpdateForm>) -> WebResult {
    crate::http::uuid_param("id", &id)?;
    state.store.training_files().update(&user, &id, &FileUpdate { name: form.name, status: form.status, ..Default::default() }).await?;
    Ok(see_other(&format!("/training-files/{id}")))
}

#[derive(Deserialize)]
struct DeleteForm {
    confirm: String,
}

/// Deletes a file once its name is typed back, so a stray click cannot.
async fn delete_file(State(state): State<AppState>, WebUser(user): WebUser, Path(id): Path<String>, Form(form): Form<DeleteForm>) -> WebResult {
    crate::http::uuid_param("id", &id)?;
    let file = state.store.training_files().get(&user, &id).await?;
    if form.confirm.trim() != file.name {
        return Err(ApiError::field("confirm", format!("type the file's name, {:?}, to delete it", file.name)).into());
    }
    state.store.training_files().delete(&user, &id).await?;
    Ok(see_other("/training-files"))
}

#[derive(Deserialize)]
struct DownloadQuery {
    format: String,
    version: Option<i64>,
}

/// Sends the browser to a signed URL of the version's bytes.
async fn download(State(state): State<AppState>, WebUser(user): WebUser, Path(id): Path<String>, Query(query): Query<DownloadQuery>) -> WebResult {
    crate::http::uuid_param("id", &id)?;
    let format = DownloadFormat::parse(&query.format).ok_or_else(|| ApiError::field("format", "must be json or jsonl"))?;
    let link = state.store.training_files().download(&user, &id, format, query.version).await?;
    Ok(see_other(&link.url))
}

// ---- conversations ----

#[derive(Deserialize)]
struct ConversationsQuery {
    enrichment_status: Option<String>,
    cursor: Option<String>,
}

const STATUSES: [&str; 5] = ["not_started", "validation_failed", "normalization_failed", "validated", "completed"];

async fn conversations_page(State(state): State<AppState>, WebUser(user): WebUser, Query(query): Query<ConversationsQuery>) -> WebResult {
    let filter = ConversationFilter { enrichment_status: query.enrichment_status.clone().filter(|s| !s.is_empty()), ..Default::default() };
    let conversations = state.store.conversations().list(&user, &filter, 100, query.cursor.as_deref()).await?;
    let personas = state.store.scaffolding().list(SeedKind::Persona).await?;
    let arcs = state.store.scaffolding().list(SeedKind::EmotionalArc).await?;
    let topics = state.store.scaffolding().list(SeedKind::TrainingTopic).await?;
    let choose = |name: &str, label: &str, rows: &[lora_files_store::scaffolding::ScaffoldingRow]| {
        html! {
            label { (label) " "
                select name=(name) {
                    option value="" { "–" }
                    @for row in rows { option value=(row.key) { (row.name) " (" (row.key) ")" } }
                }
            }
            " "
        }
    };
    let body = html! {
        p {
            a href="/conversations" { "All" }
            @for status in STATUSES { " · " a href=(format!("/conversations?enrichment_status={status}")) { (status) } }
        }
        table {
            tr { th { "Conversation" } th { "Status" } th { "Came as" } th { "Persona" } th { "Arc" } th { "Topic" } th { "Turns" } th { "Pairs" } th { "Quality" } th {} }
            @for c in &conversations.items {
                tr {
                    td { a href=(format!("/conversations/{}", c.conversation_id)) { (c.conversation_id) } }
                    td { (c.enrichment_status) } td { (c.source_stage) }
                    td { (c.persona_key.as_deref().unwrap_or("–")) } td { (c.emotional_arc_key.as_deref().unwrap_or("–")) } td { (c.topic_key.as_deref().unwrap_or("–")) }
                    td { (c.turn_count) } td { (c.pair_count) } td { (figure(c.quality_score)) }
                    td {
                        @if c.enrichment_status != "completed" {
                            form.inline method="post" action=(format!("/conversations/{}/enrich", c.conversation_id)) { button { "Enrich" } }
                        }
                    }
                }
            }
        }
        (page_footer(conversations.items.is_empty(), "No conversations here.", conversations.next_cursor.as_ref().map(|cursor| {
            format!("/conversations?enrichment_status={}&cursor={cursor}", query.enrichment_status.as_deref().unwrap_or(""))
        })))
        form method="post" action="/conversations/import" {
            fieldset {
                legend { "Import a conversation (raw LLM output, parsed, or enriched v4)" }
                textarea name="text" rows="8" required placeholder="{\"conversation_metadata\": {…}, \"turns\": […]}" {}
                p { (choose("persona_key", "Persona", &personas)) (choose("emotional_arc_key", "Arc", &arcs)) (choose("topic_key", "Topic", &topics)) }
                p { label { "Conversation id (optional) " input name="conversation_id" size="38"; } }
                button { "Import" }
            }
        }
    };
    Ok(page("Conversations", true, body).into_response())
}

#[derive(Deserialize)]
struct ImportForm {
    text: String,
    persona_key: Option<String>,
    emotional_arc_key: Option<String>,
    topic_key: Option<String>,
    conversation_id: Option<String>,
}

async fn import_conversation(State(state): State<AppState>, WebUser(user): WebUser, Form(form): Form<ImportForm>) -> WebResult {
    let chosen = |value: Option<String>| value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let request = ImportRequest {
        scaffolding: ScaffoldingKeys { persona: chosen(form.persona_key), emotional_arc: chosen(form.emotional_arc_key), training_topic: chosen(form.topic_key) },
        conversation_id: chosen(form.conversation_id),
        keep_unparsable: true,
        ..ImportRequest::new("the pasted text", form.text)
    };
    let imported = state.store.conversations().import(&user, request).await?;
    Ok(see_other(&format!("/conversations/{}", imported.record().conversation_id)))
}

async fn conversation_page(State(state): State<AppState>, WebUser(user): WebUser, Path(conversation_id): Path<String>) -> WebResult {
    crate::http::uuid_param("conversation_id", &conversation_id)?;
    let report = state.store.enrichment().report(&user, &conversation_id).await?;
    let record = &report.conversation;
    let body = html! {
        p {
            "Status " strong { (report.enrichment_status) } " · came as " (report.source_stage)
            " · persona " (record.persona_key.as_deref().unwrap_or("–")) " · arc " (record.emotional_arc_key.as_deref().unwrap_or("–"))
            " · topic " (record.topic_key.as_deref().unwrap_or("–")) " · " (record.turn_count) " turns, " (record.pair_count) " training pairs"
        }
        @if let Some(error) = &report.parse_error { p.error { "Needs review — the text is not JSON: " (error) } }
        @if let Some(error) = &report.enrichment_error { p.error { (error) } }
        @if report.can_enrich {
            form method="post" action=(format!("/conversations/{conversation_id}/enrich")) { button { "Enrich" } }
        }
        @if let Some(validation) = &report.validation_report {
            h2 { "Validation" }
            p { (validation.summary) " (" (validation.validated_at) ")" }
            @if !validation.blockers.is_empty() || !validation.warnings.is_empty() {
                table {
                    tr { th { "" } th { "Code" } th { "Field" } th { "Message" } th { "Suggestion" } }
                    @for (kind, issue) in validation.blockers.iter().map(|i| ("blocker", i)).chain(validation.warnings.iter().map(|i| ("warning", i))) {
                        tr { td { (kind) } td { (issue.code) } td { code { (issue.field) } } td { (issue.message) } td { (issue.suggestion) } }
                    }
                }
            }
        }
    };
    Ok(page(&format!("Conversation {conversation_id}"), true, body).into_response())
}

async fn enrich_conversation(State(state): State<AppState>, WebUser(user): WebUser, Path(conversation_id): Path<String>) -> WebResult {
    crate::http::uuid_param("conversation_id", &conversation_id)?;
    state.store.enrichment().run(&user, &conversation_id).await?;
    Ok(see_other(&format!("/conversations/{conversation_id}")))
}
