//! Training files: the list (search, status, paging), and one file's page —
//! its figures and charts, versions with their downloads, and its members
//! with a multi-select remove.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use lora_files_store::training_files::{DownloadFormat, FileFilter, FileUpdate};
use lora_files_store::TrainingFile;

use super::charts::{self, Bar};
use super::errors::named_in;
use super::layout::{self, human_size, page, plural, short_id, Nav, Notice};
use super::{done, see_other, Fields, WebError, WebResult, WebUser};
use crate::error::ApiError;
use crate::state::AppState;

/// Files on one page of the list.
const PAGE_SIZE: i64 = 50;
/// Members shown on a file's page.
const MEMBERS_SHOWN: i64 = 500;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/training-files", get(files_page).post(create_file))
        .route("/training-files/{id}", get(file_page))
        .route("/training-files/{id}/add", post(add_to_file))
        .route("/training-files/{id}/remove", post(remove_from_file))
        .route("/training-files/{id}/status", post(update_file))
        .route("/training-files/{id}/rename", post(update_file))
        .route("/training-files/{id}/delete", post(delete_file))
        .route("/training-files/{id}/download", get(download))
}

#[derive(Deserialize)]
struct FilesQuery {
    status: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
    done: Option<String>,
}

const FILE_STATUSES: [(&str, &str); 3] = [
    ("active", "Active"),
    ("archived", "Archived"),
    ("all", "All"),
];

/// The distinct keys of one part of a file's scaffolding distribution.
fn distinct(file: &TrainingFile, part: &str) -> usize {
    file.scaffolding_distribution
        .0
        .get(part)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

async fn files_page(
    State(state): State<AppState>,
    WebUser(user): WebUser,
    Query(query): Query<FilesQuery>,
) -> WebResult {
    let status = query
        .status
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "active".to_owned());
    if !FILE_STATUSES.iter().any(|(key, _)| *key == status) {
        return Err(ApiError::field(
            "status",
            format!("{status:?} is not a status to list: choose active, archived or all"),
        )
        .into());
    }
    let q = query
        .q
        .clone()
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty());
    let filter = FileFilter {
        status: Some(status.clone()),
        q: q.clone(),
    };
    let files = state
        .store
        .training_files()
        .list(&user, &filter, PAGE_SIZE, query.cursor.as_deref())
        .await?;
    let archived = if files.items.is_empty() && status == "active" && q.is_none() {
        let filter = FileFilter {
            status: Some("archived".to_owned()),
            q: None,
        };
        state
            .store
            .training_files()
            .list(&user, &filter, 1, None)
            .await?
            .items
            .len()
    } else {
        0
    };
    let notice = match query.done.as_deref() {
        Some("deleted") => Some(Notice::Success(
            "The training file and all its versions were deleted.".to_owned(),
        )),
        _ => None,
    };
    let next = files.next_cursor.as_ref().map(|cursor| {
        let mut link = form_urlencoded::Serializer::new(String::new());
        link.append_pair("status", &status)
            .append_pair("cursor", cursor);
        if let Some(q) = &q {
            link.append_pair("q", q);
        }
        format!("/training-files?{}", link.finish())
    });
    let body = html! {
        form.filters method="get" action="/training-files" role="search" {
            label { "Name contains" input type="search" name="q" value=(q.as_deref().unwrap_or_default()); }
            label { "Status"
                select name="status" { @for (key, words) in FILE_STATUSES { option value=(key) selected[status == key] { (words) } } }
            }
            button.secondary { "Search" }
        }
        @if files.items.is_empty() {
            @if q.is_some() {
                p { "No training files match " strong { (q.as_deref().unwrap_or_default()) } ". " a href="/training-files" { "Show all active files" } "." }
            } @else if archived > 0 {
                p { "No active training files: every file is archived. " a href="/training-files?status=archived" { "Show archived files" } "." }
            } @else if status == "active" {
                p { "No training files yet. Go to " a href="/conversations" { "Conversations" } ", select enriched conversations and create one." }
            } @else {
                p { "No " (status) " training files." }
            }
        } @else {
            div.table-wrap { table.responsive {
                thead { tr {
                    th { "Name" } th.num { "Conversations" } th.num.optional { "Pairs" } th.optional { "Personas · arcs · topics" }
                    th.num { "Quality" } th.num.optional { "Size (JSONL)" } th { "Status" } th.optional { "Updated" } th { "Download" }
                } }
                tbody {
                    @for file in &files.items {
                        tr {
                            td { a href=(format!("/training-files/{}", file.id)) { (file.name) } br; span.muted { "version " (file.version) } }
                            td.num { (file.conversation_count) } td.num.optional { (file.total_training_pairs) }
                            td.optional { (distinct(file, "personas")) " · " (distinct(file, "emotional_arcs")) " · " (distinct(file, "training_topics")) }
                            td.num { (layout::score(file.avg_quality_score)) }
                            td.num.optional { (file.jsonl_file_size.map(human_size).unwrap_or_default()) }
                            td { span.badge.good[file.status == "active"] { (file.status) } }
                            td.optional { (layout::when(&file.updated_at)) }
                            td { (download_links(file, None)) }
                        }
                    }
                }
            } }
            @if let Some(href) = next { p.pager { a href=(href) { "Next page" } } }
        }
    };
    Ok(page("Training files", Nav::Files, notice, body).into_response())
}

/// `1234567` as `1 234 567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// A version's downloads, one per format, as a menu that opens without
/// script (`details`); each link is a signed download once followed.
fn download_links(file: &TrainingFile, version: Option<i64>) -> Markup {
    let query = version.map(|v| format!("&version={v}")).unwrap_or_default();
    let what = version.map_or_else(
        || "the current version".to_owned(),
        |v| format!("version {v}"),
    );
    html! {
        details.download-menu {
            summary aria-label=(format!("Download {what}")) { "Download" }
            ul {
                @for format in DownloadFormat::ALL {
                    // The visible text stays the format's name alone: it must be part of the link's accessible name.
                    li { a href=(format!("/training-files/{}/download?format={}{query}", file.id, format.as_str()))
                        aria-label=(format!("Download {what} as {}", format_label(format))) title=(format_hint(format)) {
                        (format_label(format))
                    } }
                }
            }
        }
    }
}

fn format_label(format: DownloadFormat) -> &'static str {
    match format {
        DownloadFormat::Json => "JSON",
        DownloadFormat::Jsonl => "JSONL",
        DownloadFormat::OpenAi => "OpenAI",
        DownloadFormat::ShareGpt => "ShareGPT",
        DownloadFormat::Alpaca => "Alpaca",
    }
}

/// What a format is for, in a few words.
fn format_hint(format: DownloadFormat) -> &'static str {
    match format {
        DownloadFormat::Json => "the full file",
        DownloadFormat::Jsonl => "a pair a line",
        DownloadFormat::OpenAi => "chat messages",
        DownloadFormat::ShareGpt => "conversations",
        DownloadFormat::Alpaca => "instruction, input, output",
    }
}

/// Conversation ids from a text box (white space or commas between) and from checkboxes.
fn ids_from(fields: &Fields) -> Vec<String> {
    let typed = fields
        .raw("conversation_ids")
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty());
    typed.chain(fields.all("pick")).map(str::to_owned).collect()
}

/// Creates a file from ids typed or picked (the Conversations page is the usual way).
async fn create_file(
    State(state): State<AppState>,
    WebUser(user): WebUser,
    fields: Fields,
) -> WebResult {
    let ids = ids_from(&fields);
    crate::http::check_id_count(&state, &ids)?;
    let name = fields.required("name", "a name")?;
    let description = fields.get("description");
    if state.settings.job_workers > 0 {
        return create_as_job(&state, &user, name, description, &ids).await;
    }
    let file = state
        .store
        .training_files()
        .create(&user, name, description, &ids)
        .await
        .map_err(ApiError::from);
    match file {
        Ok(file) => Ok(done(&format!("/training-files/{}", file.id), "created")),
        Err(error) => Err(with_titles(&state, &user, error).await),
    }
}

/// How long the create form waits for its job before it shows the file's
/// page with the job's progress instead of the finished file.
const FORM_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// With workers in this process the form's create is a job: a quick one
/// answers as a direct create does; a long one goes to the file's page,
/// which follows its progress.
async fn create_as_job(state: &AppState, user: &str, name: &str, description: Option<&str>, ids: &[String]) -> WebResult {
    let (job, file) = match state.store.jobs().enqueue_create(user, name, description, ids).await {
        Ok(queued) => queued,
        Err(error) => return Err(with_titles(state, user, error.into()).await),
    };
    let job = state.store.jobs().wait(user, &job.id, FORM_WAIT).await.map_err(ApiError::from)?;
    let page = format!("/training-files/{}", file.id);
    match job.state {
        lora_files_store::JobState::Succeeded => Ok(done(&page, "created")),
        lora_files_store::JobState::Failed => Err(ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "job_failed", job.error.unwrap_or_else(|| "the job failed".to_owned())).into()),
        _ => Ok(see_other(&page)),
    }
}

/// An error page whose conversations are named by short id and title.
async fn with_titles(state: &AppState, user: &str, error: ApiError) -> WebError {
    let named = named_in(state, user, &error).await;
    WebError::titled(error, named)
}

#[derive(Deserialize)]
struct FileQuery {
    done: Option<String>,
}

async fn file_page(
    State(state): State<AppState>,
    WebUser(user): WebUser,
    Path(id): Path<String>,
    Query(query): Query<FileQuery>,
) -> WebResult {
    let id = crate::http::uuid_param("id", &id)?;
    let file = state.store.training_files().get(&user, &id).await?;
    let members = state
        .store
        .training_files()
        .members(&user, &id, MEMBERS_SHOWN, None)
        .await?;
    let versions = state.store.training_files().versions(&user, &id).await?;
    let running = state.store.jobs().list(&user, None, Some(&id), 1).await?.into_iter().find(|job| !job.is_final());
    let exports = match file.version {
        0 => None,
        version => state.store.training_files().known_export_figures(&user, &id, version).await?,
    };
    let notice = match query.done.as_deref() {
        Some("created") => Some(format!(
            "Created {} with {}.",
            file.name,
            plural(file.conversation_count, "conversation", "conversations")
        )),
        Some("added") => Some(format!(
            "Added: version {} holds {}.",
            file.version,
            plural(file.conversation_count, "conversation", "conversations")
        )),
        Some("removed") => Some(format!(
            "Removed: version {} holds {}.",
            file.version,
            plural(file.conversation_count, "conversation", "conversations")
        )),
        Some("renamed") => Some(format!("Renamed to {}.", file.name)),
        Some("archived") => {
            Some("Archived: it is kept, but no longer listed among active files.".to_owned())
        }
        Some("active") => Some("Unarchived: conversations can be added again.".to_owned()),
        _ => None,
    }
    .map(Notice::Success);
    let active = file.status == "active";
    let distribution = |part: &str| -> Vec<Bar> {
        let mut bars: Vec<Bar> = file
            .scaffolding_distribution
            .0
            .get(part)
            .and_then(Value::as_object)
            .map_or_else(Vec::new, |m| {
                m.iter()
                    .map(|(label, count)| Bar {
                        label: label.clone(),
                        value: count.as_i64().unwrap_or(0),
                    })
                    .collect()
            });
        bars.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.label.cmp(&b.label)));
        bars
    };
    let body = html! {
        @if let Some(job) = &running { (job_progress(job)) }
        @if let Some(description) = &file.description { p { (description) } }
        div.cards {
            div.card { div.figure { (file.conversation_count) } div.label { (if file.conversation_count == 1 { "conversation" } else { "conversations" }) } }
            div.card { div.figure { (file.total_training_pairs) } div.label { "training pairs" } }
            div.card { div.figure { (file.total_turns) } div.label { "turns" } }
            div.card { div.figure { (layout::score(file.avg_quality_score)) } div.label { "average quality" @if file.min_quality_score.is_some() { " (" (layout::score(file.min_quality_score)) "–" (layout::score(file.max_quality_score)) ")" } } }
            div.card { div.figure { (file.json_file_size.map(human_size).unwrap_or_else(|| "–".to_owned())) } div.label { "JSON · JSONL " (file.jsonl_file_size.map(human_size).unwrap_or_else(|| "–".to_owned())) } }
            div.card { div.figure { "v" (file.version) } div.label { span.badge.good[active] { (file.status) } " · updated " (layout::when(&file.updated_at)) } }
        }
        @if let Some(tokens) = &exports {
            div.cards {
                div.card { div.figure { (thousands(tokens.total_tokens())) } div.label { "tokens (o200k_base)" } }
                div.card { div.figure { (thousands(tokens.training_tokens)) } div.label { "training tokens · context " (thousands(tokens.context_tokens)) } }
                div.card { div.figure { (thousands(tokens.max_example_tokens)) } div.label { "tokens in the largest of " (plural(tokens.examples as i64, "example", "examples")) } }
                div.card { div.figure { (human_size(tokens.openai_bytes as i64)) } div.label { "OpenAI · ShareGPT " (human_size(tokens.sharegpt_bytes as i64)) " · Alpaca " (human_size(tokens.alpaca_bytes as i64)) } }
            }
        } @else if file.version > 0 {
            p.muted { "Counting this version's tokens and export sizes; reload in a moment to see them." }
        }
        @if file.version > 0 {
            p { "Current version: " (download_links(&file, None)) " · created " (layout::when_full(&file.created_at)) }
        } @else {
            p.muted { "Nothing to download yet: the file's first version is not written." }
        }
        h2 { "What it holds" }
        div.charts {
            (charts::bars("Personas", &distribution("personas")))
            (charts::bars("Emotional arcs", &distribution("emotional_arcs")))
            (charts::bars("Topics", &distribution("training_topics")))
            (charts::bars("Quality spread", &charts::quality_spread(members.items.iter().filter_map(|m| m.quality_score))))
        }
        h2 { "Conversations" }
        form method="post" action=(format!("/training-files/{}/remove", file.id)) {
            div.table-wrap { table.responsive {
                thead { tr {
                    th { span.visually-hidden { "Select" } } th { "Conversation" } th { "Persona" } th.optional { "Arc" } th { "Topic" }
                    th.num { "Quality" } th.num { "Pairs" } th.optional { "Added" }
                } }
                tbody {
                    @for member in &members.items {
                        tr {
                            td { @if active { input type="checkbox" name="pick" value=(member.conversation_id) aria-label=(format!("Select {}", member.conversation_id)); } }
                            td { a href=(format!("/conversations/{}", member.conversation_id)) { (short_id(&member.conversation_id)) } }
                            td { (layout::or_dash(member.persona_key.as_deref())) } td.optional { (layout::or_dash(member.emotional_arc_key.as_deref())) }
                            td { (layout::or_dash(member.topic_key.as_deref())) } td.num { (layout::score(member.quality_score)) } td.num { (member.pairs) }
                            td.optional { (layout::when(&member.added_at)) }
                        }
                    }
                }
            } }
            @if members.next_cursor.is_some() { p.muted { "Showing the first " (MEMBERS_SHOWN) " conversations." } }
            @if active { button.secondary { "Remove selected conversations" } }
        }
        @if active {
            details {
                summary { "Add conversations by id" }
                form method="post" action=(format!("/training-files/{}/add", file.id)) {
                    p.muted { "Usually you select conversations on the " a href="/conversations" { "Conversations" } " page and use “Add to…”. Or paste ids here, one per line." }
                    label.visually-hidden for="add-ids" { "Conversation ids" }
                    textarea #add-ids name="conversation_ids" rows="3" required {}
                    button { "Add" }
                }
            }
        }
        h2 { "Versions" }
        div.table-wrap { table.responsive {
            thead { tr { th { "Version" } th { "Change" } th { "Created" } th.num { "Conversations" } th.num.optional { "Pairs" } th.num.optional { "JSON" } th.num.optional { "JSONL" } th { "Download" } } }
            tbody {
                @for version in versions.iter().rev() {
                    tr {
                        td { "v" (version.version) } td { (change(&version.change, version.added, version.removed)) }
                        td { (layout::when(&version.created_at)) } td.num { (version.conversation_count) } td.num.optional { (version.total_training_pairs) }
                        td.num.optional { (human_size(version.json_file_size)) } td.num.optional { (human_size(version.jsonl_file_size)) }
                        td { (download_links(&file, Some(version.version))) }
                    }
                }
            }
        } }
        h2 { "Manage" }
        div.actions {
            form method="post" action=(format!("/training-files/{}/rename", file.id)) {
                label { "Name" br; input name="name" value=(file.name) required maxlength="255"; }
                " " button.secondary { "Rename" }
            }
            form method="post" action=(format!("/training-files/{}/status", file.id)) {
                input type="hidden" name="status" value=(if active { "archived" } else { "active" });
                button.secondary { (if active { "Archive" } else { "Unarchive" }) }
            }
            form method="post" action=(format!("/training-files/{}/delete", file.id)) {
                label { "Type the name to delete it and all its versions" br; input name="confirm" required autocomplete="off"; }
                " " button.danger { "Delete" }
            }
        }
    };
    Ok(page(&file.name, Nav::Files, notice, body).into_response())
}

/// What a version's change did: "created with 3", "+2", "−1".
/// A queued or running job on the file: its phase, a bar and an ETA, which
/// app.js keeps up to date from `/api/jobs/{id}/events` (reloading the page
/// when it ends); without JavaScript the refresh link shows the latest.
fn job_progress(job: &lora_files_store::Job) -> Markup {
    let eta = job.eta_seconds.map_or_else(|| "–".to_owned(), |s| format!("about {} s left", s.ceil() as i64));
    html! {
        section.job-progress data-job=(job.id) {
            h2 { "A " (job.kind.as_str()) " job is " span data-job-state { (job.state.as_str()) } }
            p {
                span data-job-phase { (job.phase) } " · "
                span data-job-done { (job.done) } " of " span data-job-total { (job.total) } " conversations · "
                span data-job-eta { (eta) }
            }
            progress data-job-bar max=(job.total.max(1)) value=(job.done) { (job.done) " of " (job.total) }
            p { a href="" { "Refresh" } " to see the latest progress." }
        }
    }
}

fn change(kind: &str, added: i64, removed: i64) -> String {
    match kind {
        "create" => format!(
            "created with {}",
            plural(added, "conversation", "conversations")
        ),
        "compact" => "compacted (same content)".to_owned(),
        _ => {
            let mut parts = Vec::new();
            if added > 0 {
                parts.push(format!("+{added}"));
            }
            if removed > 0 {
                parts.push(format!("−{removed}"));
            }
            if parts.is_empty() {
                kind.to_owned()
            } else {
                format!("{} conversations", parts.join(" "))
            }
        }
    }
}

async fn add_to_file(
    State(state): State<AppState>,
    WebUser(user): WebUser,
    Path(id): Path<String>,
    fields: Fields,
) -> WebResult {
    let id = crate::http::uuid_param("id", &id)?;
    let ids = ids_from(&fields);
    crate::http::check_id_count(&state, &ids)?;
    match state.store.training_files().add(&user, &id, &ids).await {
        Ok(_) => Ok(done(&format!("/training-files/{id}"), "added")),
        Err(error) => Err(with_titles(&state, &user, error.into()).await),
    }
}

/// Removes the ticked members, one new version each.
async fn remove_from_file(
    State(state): State<AppState>,
    WebUser(user): WebUser,
    Path(id): Path<String>,
    fields: Fields,
) -> WebResult {
    let id = crate::http::uuid_param("id", &id)?;
    let ids: Vec<String> = fields.all("pick").map(str::to_owned).collect();
    crate::http::check_id_count(&state, &ids)?;
    if ids.is_empty() {
        return Err(ApiError::field("pick", "tick the conversations to remove first").into());
    }
    for conversation_id in &ids {
        state
            .store
            .training_files()
            .remove(&user, &id, conversation_id)
            .await?;
    }
    Ok(done(&format!("/training-files/{id}"), "removed"))
}

/// The rename form sends `name`, the archive button `status`.
async fn update_file(
    State(state): State<AppState>,
    WebUser(user): WebUser,
    Path(id): Path<String>,
    fields: Fields,
) -> WebResult {
    let id = crate::http::uuid_param("id", &id)?;
    let update = FileUpdate {
        name: fields.get("name").map(str::to_owned),
        status: fields.get("status").map(str::to_owned),
        ..Default::default()
    };
    if update.name.is_none() && update.status.is_none() {
        return Err(ApiError::field("name", "a name is required").into());
    }
    let file = state
        .store
        .training_files()
        .update(&user, &id, &update)
        .await?;
    let code = if update.name.is_some() {
        "renamed"
    } else if file.status == "active" {
        "active"
    } else {
        "archived"
    };
    Ok(done(&format!("/training-files/{id}"), code))
}

/// Deletes a file once its name is typed back, so a stray click cannot.
async fn delete_file(
    State(state): State<AppState>,
    WebUser(user): WebUser,
    Path(id): Path<String>,
    fields: Fields,
) -> WebResult {
    let id = crate::http::uuid_param("id", &id)?;
    let file = state.store.training_files().get(&user, &id).await?;
    if fields.get("confirm") != Some(file.name.as_str()) {
        return Err(ApiError::field(
            "confirm",
            format!(
                "type the file's name, {:?}, exactly to delete it",
                file.name
            ),
        )
        .into());
    }
    state.store.training_files().delete(&user, &id).await?;
    Ok(done("/training-files", "deleted"))
}

#[derive(Deserialize)]
struct DownloadQuery {
    format: Option<String>,
    version: Option<String>,
}

/// Sends the browser to a signed URL of the version's bytes.
async fn download(
    State(state): State<AppState>,
    WebUser(user): WebUser,
    Path(id): Path<String>,
    Query(query): Query<DownloadQuery>,
) -> WebResult<Response> {
    let id = crate::http::uuid_param("id", &id)?;
    let format = DownloadFormat::parse(query.format.as_deref().unwrap_or("json"))
        .ok_or_else(|| ApiError::field("format", crate::training_files::format_choices()))?;
    let version = match query.version.as_deref() {
        None | Some("") => None,
        Some(text) => Some(text.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
            ApiError::field("version", format!("{text:?} is not a version number"))
        })?),
    };
    let link = state
        .store
        .training_files()
        .download(&user, &id, format, version)
        .await?;
    Ok(see_other(&link.url))
}
