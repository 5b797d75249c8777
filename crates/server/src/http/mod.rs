//! The router: one module per resource merged here, with the layers every
//! request passes (request id, trace, body limit, timeout), JSON answers for
//! unknown routes, and extractors whose rejections name the bad field.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::de::DeserializeOwned;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::error::{ApiError, InternalError};
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application.
pub fn app(state: AppState) -> Router {
    let settings = state.settings.clone();
    Router::new()
        .merge(crate::health::router())
        .merge(crate::openapi::router())
        .merge(crate::auth::router())
        .merge(crate::training_files::router())
        .merge(crate::jobs::router())
        .merge(crate::metrics::router())
        .merge(crate::conversations::router())
        .merge(crate::scaffolding::router())
        .merge(crate::downloads::router())
        .merge(crate::web::router())
        .fallback(crate::web::not_found)
        .method_not_allowed_fallback(crate::web::method_not_allowed)
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), crate::web::protect))
        .layer(middleware::from_fn_with_state(state.clone(), crate::metrics::track))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
                    let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path())
                }))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(middleware::from_fn(request_id_in_errors))
                .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, settings.request_timeout)),
        )
        .with_state(state)
}

/// Puts the request id into the body of every internal error, so a user can
/// quote it and an operator find the log lines.
async fn request_id_in_errors(request: Request, next: Next) -> Response {
    let id = request.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).map(str::to_owned);
    let response = next.run(request).await;
    if response.extensions().get::<InternalError>().is_none() {
        return response;
    }
    let (parts, _) = response.into_parts();
    let body = serde_json::json!({"error": "internal error", "code": "internal", "details": {"request_id": id}});
    (parts.status, axum::Json(body)).into_response()
}

/// A JSON body; a bad one is a 400 naming the field (`conversation_ids[2]`),
/// an oversized one a 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
        if !is_json {
            return Err(ApiError::field("body", "send the body as JSON, with Content-Type: application/json"));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(body_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

pub(crate) fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large("the request body is over the size limit")
    } else {
        ApiError::new(StatusCode::BAD_REQUEST, "validation_error", rejection.body_text())
    }
}

/// Parses JSON, naming the path of the first problem. Text holding NUL
/// (U+0000) is refused wherever it is: no field of a request body is data
/// the catalogue could store with it (PostgreSQL text cannot).
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // NUL can only arrive escaped; only then is the body walked to name where.
    if memchr_u0000(bytes) {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
            if let Some(path) = nul_path(&value, String::new()) {
                return Err(ApiError::field(if path.is_empty() { "body".to_owned() } else { path }, "must not contain the NUL character (U+0000)"));
            }
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => format!("the body is not JSON: {inner}"),
            _ => strip_position(&inner.to_string()),
        };
        ApiError::field(if path == "." { "body".to_owned() } else { path }, message)
    })
}

fn memchr_u0000(bytes: &[u8]) -> bool {
    bytes.windows(6).any(|w| w == b"\\u0000")
}

/// The path (`conversation_ids[2]`, `a.b`) of the first string or key holding NUL.
fn nul_path(value: &serde_json::Value, at: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(text) => text.contains('\0').then_some(at),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| nul_path(item, format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let path = if at.is_empty() { key.clone() } else { format!("{at}.{key}") };
            if key.contains('\0') { Some(path) } else { nul_path(item, path) }
        }),
        _ => None,
    }
}

fn strip_position(message: &str) -> String {
    message.rfind(" at line ").map_or(message, |i| &message[..i]).to_owned()
}

/// Query parameters; a bad one is a 400 naming it.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        // Filters and keys are matched against catalogue text, which cannot hold NUL on PostgreSQL.
        if let Some((name, _)) = form_urlencoded::parse(query.as_bytes()).find(|(name, value)| name.contains('\0') || value.contains('\0')) {
            return Err(ApiError::field(name.replace('\0', "\\u0000"), "must not contain the NUL character (U+0000)"));
        }
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(ApiQuery).map_err(|error| {
            let path = error.path().to_string();
            ApiError::field(if path == "." { "query".to_owned() } else { path }, error.into_inner().to_string())
        })
    }
}

/// A parameter that must be a UUID, in its canonical lower-case form (any
/// case, braces or `urn:uuid:` accepted); a 400 naming it otherwise.
pub fn uuid_param(name: &str, value: &str) -> Result<String, ApiError> {
    lora_files_store::ids::canonical_uuid(value).ok_or_else(|| ApiError::field(name, format!("{value:?} is not a UUID")))
}

/// The limit of a list: default 50, at most 500.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=500).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::field("limit", format!("must be between 1 and 500, not {n}"))),
    }
}


/// At most the configured number of ids in one request.
pub(crate) fn check_id_count(state: &AppState, ids: &[String]) -> Result<(), ApiError> {
    let max = state.settings.max_ids_per_request;
    if ids.len() > max {
        return Err(ApiError::field("conversation_ids", format!("names {} conversations; at most {max} per request", ids.len())));
    }
    Ok(())
}
