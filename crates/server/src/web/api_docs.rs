//! `/api/docs`: the OpenAPI document rendered for people on the server — no
//! script and no assets from elsewhere, so it works offline and under the CSP.

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use serde_json::Value;

use super::layout::{page, Nav};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/docs", get(api_docs))
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn api_docs() -> Response {
    let document = crate::openapi::document();
    page("API reference", Nav::Other, None, render(&document)).into_response()
}

fn render(document: &Value) -> Markup {
    let paths = document["paths"].as_object().cloned().unwrap_or_default();
    let schemas = document["components"]["schemas"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let operations: Vec<(String, &str, Value)> = paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter_map(move |m| item.get(*m).map(|op| (path.clone(), *m, op.clone())))
        })
        .collect();
    html! {
        p { (text(&document["info"]["description"])) }
        p {
            "Programs sign in with " code { "POST /api/auth/token" } " and send " code { "Authorization: Bearer TOKEN" } ". "
            "Every error is " code { "{\"error\", \"code\", \"details\"}" } ". The machine-readable document is "
            a href="/api/openapi.json" { "/api/openapi.json" } "."
        }
        nav aria-label="Operations" {
            ul { @for (path, method, op) in &operations { li { a href=(format!("#{}", anchor(method, path))) { code { (method.to_uppercase()) " " (path) } } " — " (summary(op)) } } }
        }
        @for (path, method, op) in &operations {
            section id=(anchor(method, path)) {
                h2 { code { (method.to_uppercase()) " " (path) } }
                p { (summary(op)) }
                @if let Some(description) = op["description"].as_str() { p.muted { (description) } }
                @if op.get("security").is_some() { p { span.badge { "needs a bearer token" } } }
                @if let Some(params) = op["parameters"].as_array() {
                    h3 { "Parameters" }
                    div.table-wrap { table {
                        thead { tr { th { "Name" } th { "In" } th { "Type" } th { "Required" } th { "Description" } } }
                        tbody { @for p in params {
                            tr { td { code { (text(&p["name"])) } } td { (text(&p["in"])) } td { (type_of(&p["schema"])) }
                                td { (if p["required"].as_bool() == Some(true) { "yes" } else { "no" }) } td { (text(&p["description"])) } }
                        } }
                    } }
                }
                @if let Some(body) = op["requestBody"]["content"].as_object() {
                    h3 { "Body" }
                    ul { @for (media, content) in body { li { code { (media) } " — " (type_of(&content["schema"])) } } }
                }
                @if let Some(responses) = op["responses"].as_object() {
                    h3 { "Responses" }
                    ul { @for (status, response) in responses {
                        li { strong { (status) } " " (text(&response["description"]))
                            @if let Some(content) = response["content"].as_object() { @for (_, c) in content { " — " (type_of(&c["schema"])) } } }
                    } }
                }
            }
        }
        h2 #schemas { "Schemas" }
        @for (name, schema) in &schemas {
            section id=(format!("schema-{name}")) {
                h3 { (name) }
                @if let Some(description) = schema["description"].as_str() { p { (description) } }
                @if let Some(properties) = schema["properties"].as_object() {
                    @let required: Vec<&str> = schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
                    div.table-wrap { table {
                        thead { tr { th { "Field" } th { "Type" } th { "Required" } th { "Description" } } }
                        tbody { @for (field, property) in properties {
                            tr { td { code { (field) } } td { (type_of(property)) } td { (if required.contains(&field.as_str()) { "yes" } else { "no" }) } td { (text(&property["description"])) } }
                        } }
                    } }
                }
            }
        }
    }
}

fn anchor(method: &str, path: &str) -> String {
    let slug: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{method}{slug}")
}

fn summary(op: &Value) -> String {
    op["summary"]
        .as_str()
        .or(op["description"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// A schema in a few words: a link to a named schema, `array of …`, or its type.
fn type_of(schema: &Value) -> Markup {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return html! { a href=(format!("#schema-{name}")) { (name) } };
    }
    if let Some(options) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let shown: Vec<Markup> = options
            .iter()
            .filter(|o| o["type"] != "null")
            .map(type_of)
            .collect();
        return html! { @for (i, m) in shown.iter().enumerate() { @if i > 0 { " or " } (m) } };
    }
    let kind = match &schema["type"] {
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .filter(|k| *k != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        Value::String(kind) => kind.clone(),
        _ => "any".to_owned(),
    };
    html! {
        @if kind == "array" { "array of " (type_of(&schema["items"])) } @else { (kind) }
        @if let Some(format) = schema["format"].as_str() { " (" (format) ")" }
    }
}
