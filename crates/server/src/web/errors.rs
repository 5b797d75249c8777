//! Failed pages: the API's error told in sentences a person can act on, with
//! the conversations it concerns named by short id and title.

use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde_json::Value;

use super::layout::{self, Nav, Notice};
use crate::error::ApiError;
use crate::state::AppState;

/// Lines of an error's list shown before "and N more".
const SHOWN: usize = 50;

/// A failed page: the API's error, shown as HTML with its status.
pub struct WebError(Box<ApiError>, Vec<Named>);

impl WebError {
    /// An error whose conversations are shown with their titles.
    pub fn titled(error: ApiError, named: Vec<Named>) -> Self {
        Self(Box::new(error), named)
    }
}

impl<E: Into<ApiError>> From<E> for WebError {
    fn from(error: E) -> Self {
        Self(Box::new(error.into()), Vec::new())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.0.status;
        let title = match status.as_u16() {
            404 => "Not found",
            403 => "Refused",
            413 => "Too large",
            500..=599 => "Something went wrong",
            _ => "That did not work",
        };
        let body = html! {
            p { "Use your browser's Back button to return to what you typed, or go to " a href="/conversations" { "Conversations" } " or " a href="/training-files" { "Training files" } "." }
        };
        let mut response = (
            status,
            layout::page(
                title,
                Nav::Other,
                Some(Notice::Error(explain(&self.0, &self.1))),
                body,
            ),
        )
            .into_response();
        if status.is_server_error() {
            response
                .extensions_mut()
                .insert(crate::error::InternalError);
        }
        response
    }
}

/// A conversation named in an error: its id and a short title.
pub struct Named {
    pub id: String,
    pub title: String,
}

/// The error in sentences; `named` gives titles to the conversations it lists.
pub fn explain(error: &ApiError, named: &[Named]) -> Markup {
    let title_of = |id: &str| named.iter().find(|n| n.id == id).map(|n| n.title.as_str());
    let conversation = |id: &str| {
        html! { (layout::short_id(id)) @if let Some(title) = title_of(id) { " " (title) } }
    };
    let details = error.details.as_ref();
    let list = |items: Vec<Markup>| {
        let more = items.len().saturating_sub(SHOWN);
        html! {
            ul { @for item in items.into_iter().take(SHOWN) { li { (item) } } }
            @if more > 0 { p { "…and " (more) " more." } }
        }
    };
    match error.code {
        "not_found" => html! { p { "There is no such page, or it belongs to another account." } },
        "internal" => {
            html! { p { "The server failed to do this. Nothing was changed; try again, and if it keeps failing, tell the operator." } }
        }
        "already_in_file" => {
            let ids = ids_in(details, "conversation_ids");
            html! {
                p { (layout::plural(ids.len() as i64, "conversation is", "conversations are")) " already in the training file, so nothing was added:" }
                (list(ids.iter().map(|id| conversation(id)).collect()))
                p { "Leave them out of the selection and try again." }
            }
        }
        "ineligible_conversations" => {
            let refused: Vec<&Value> = details
                .and_then(|d| d.get("conversations"))
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            html! {
                p { (layout::plural(refused.len() as i64, "conversation cannot", "conversations cannot")) " go into a training file, so nothing was changed:" }
                (list(refused.iter().map(|c| {
                    let id = c["conversation_id"].as_str().unwrap_or_default();
                    html! { (conversation(id)) " — " (reason(c)) }
                }).collect()))
            }
        }
        "validation_error" => {
            let fields: Vec<&Value> = details
                .and_then(|d| d.get("fields"))
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            if fields.len() <= 1 {
                html! { p { (sentence(&error.message)) } }
            } else {
                html! {
                    p { "Some of what was sent needs fixing:" }
                    (list(fields.iter().map(|f| html! { code { (text(&f["path"])) } ": " (text(&f["message"])) }).collect()))
                }
            }
        }
        "too_large" => {
            html! { p { "What you sent is larger than this server accepts. Send less at once (for example, fewer conversations or a smaller file)." } }
        }
        _ => html! { p { (sentence(&error.message)) } },
    }
}

/// Why a conversation cannot be used, in words.
fn reason(refused: &Value) -> String {
    match refused["reason"].as_str() {
        Some("not_found") => "there is no such conversation".to_owned(),
        Some("not_completed") => {
            let status = refused["enrichment_status"]
                .as_str()
                .unwrap_or("not enriched");
            format!(
                "it is not enriched yet ({}); enrich it first",
                layout::status_words(status)
            )
        }
        Some("no_enriched_file") => "it has no enriched file; enrich it again".to_owned(),
        Some(other) => other.replace('_', " "),
        None => "it cannot be used".to_owned(),
    }
}

fn ids_in(details: Option<&Value>, key: &str) -> Vec<String> {
    details
        .and_then(|d| d.get(key))
        .and_then(Value::as_array)
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default()
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// An API message as a sentence: capitalised, ending in a full stop.
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// The conversations an error names, with their titles (persona · topic).
pub async fn named_in(state: &AppState, user: &str, error: &ApiError) -> Vec<Named> {
    let details = error.details.as_ref();
    let mut ids = ids_in(details, "conversation_ids");
    if let Some(refused) = details
        .and_then(|d| d.get("conversations"))
        .and_then(Value::as_array)
    {
        ids.extend(refused.iter().map(|c| text(&c["conversation_id"])));
    }
    let mut named = Vec::new();
    for id in ids.into_iter().take(SHOWN) {
        if let Ok(Some(record)) = state.store.conversations().get(user, &id).await {
            named.push(Named {
                title: super::conversations::title(&record),
                id,
            });
        }
    }
    named
}
