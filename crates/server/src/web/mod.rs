//! The web UI: server-rendered pages (maud escapes every value) over the same
//! store calls as the API, one module per page; they work without JavaScript.
//!
//! A browser session is the API's access token in an HttpOnly, SameSite=Strict
//! cookie. [`protect`] adds the defences a cookie alone does not give: every
//! state-changing request from another origin is refused (CSRF), and every
//! answer carries a Content-Security-Policy that forbids framing and foreign
//! scripts.

mod api_docs;
mod charts;
mod conversation;
mod conversations;
mod errors;
mod files;
mod layout;
mod session;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::auth::{AuthUser, SESSION_COOKIE};
use crate::error::ApiError;
use crate::state::AppState;

pub use errors::WebError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/static/app.css",
            get(|| async { static_asset("text/css; charset=utf-8", layout::STYLE) }),
        )
        .route(
            "/static/app.js",
            get(|| async { static_asset("text/javascript; charset=utf-8", layout::SCRIPT) }),
        )
        .merge(api_docs::router())
        .merge(session::router())
        .merge(files::router())
        .merge(conversations::router())
        .merge(conversation::router())
}

fn static_asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

type WebResult<T = Response> = Result<T, WebError>;

/// The signed-in user of a page; without a valid session, the sign-in page.
pub struct WebUser(String);

impl FromRequestParts<AppState> for WebUser {
    type Rejection = Redirect;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        AuthUser::from_request_parts(parts, state)
            .await
            .map(|AuthUser(user)| WebUser(user))
            .map_err(|_| Redirect::to("/"))
    }
}

/// A submitted form as its name/value pairs, in order (checkboxes repeat a
/// name). A body that is not a form, or too large, is the UI's error page.
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The value of `name` as sent (not trimmed), or "".
    pub fn raw(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// A value the form must carry.
    pub fn required(&self, name: &str, what: &str) -> Result<&str, WebError> {
        self.get(name)
            .ok_or_else(|| ApiError::field(name, format!("{what} is required")).into())
    }

    /// Every value of `name` (checkboxes), blank ones left out.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The pairs as a query string, to carry a page's state into a link.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }
}

impl FromRequest<AppState> for Fields {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            let message = "The form did not arrive as a form (application/x-www-form-urlencoded). Go back and send it from the page again.";
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                message,
            )
            .into());
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(crate::http::body_rejection)?;
        Ok(Self(form_urlencoded::parse(&bytes).into_owned().collect()))
    }
}

/// Whether a request's `Sec-Fetch-Site` and `Origin` say it came from one of
/// our own pages. A request with neither (curl, an old browser) passes: the
/// SameSite=Strict cookie still keeps other sites' forms from using a session.
fn same_origin(headers: &HeaderMap, public_url: &str) -> Result<(), String> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return Err(format!("the browser says it came from a {site} page"));
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("null");
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    let public = public_url.trim_end_matches('/');
    if origin_host.is_some_and(|h| !host.is_empty() && h.eq_ignore_ascii_case(host))
        || origin.eq_ignore_ascii_case(public)
    {
        Ok(())
    } else {
        Err(format!("it came from {origin}"))
    }
}

fn has_session_cookie(headers: &HeaderMap) -> bool {
    let prefix = format!("{SESSION_COOKIE}=");
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|pair| pair.trim().starts_with(&prefix))
}

const PAGE_POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Refuses state-changing requests from other origins (CSRF) and sends the
/// security headers on every answer. API calls with a bearer token are not
/// ambient credentials and pass; API calls riding on the session cookie do not.
pub async fn protect(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let unsafe_method = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let headers = request.headers();
    let is_api = request.uri().path().starts_with("/api/");
    let cookie_only = has_session_cookie(headers) && !headers.contains_key(header::AUTHORIZATION);
    let mut response = if unsafe_method && (!is_api || cookie_only) {
        match same_origin(headers, &state.store.config().links.public_url) {
            Ok(()) => next.run(request).await,
            Err(why) => {
                tracing::warn!(%why, path = %request.uri().path(), "refused a cross-origin form");
                let error = ApiError::forbidden(format!(
                    "This form was not sent from a lora-files page ({why}), so it was refused to protect your account. \
                     Open the page in lora-files and send it again."
                ));
                if is_api {
                    error.into_response()
                } else {
                    WebError::from(error).into_response()
                }
            }
        }
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    let defaults = [
        (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in defaults {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

/// Unknown routes: a page for browsers, JSON for programs and under `/api`.
pub async fn not_found(request: Request) -> Response {
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if request.uri().path().starts_with("/api/") || request.uri().path() == "/api" || !wants_html {
        return ApiError::not_found().into_response();
    }
    WebError::from(ApiError::not_found()).into_response()
}

/// Wrong method: a page for browsers, JSON for programs and under `/api`.
pub async fn method_not_allowed(request: Request) -> Response {
    let error = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    );
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if request.uri().path().starts_with("/api/") || !wants_html {
        return error.into_response();
    }
    WebError::from(error).into_response()
}

fn see_other(location: &str) -> Response {
    Redirect::to(location).into_response()
}

/// A redirect to a page that says what just happened: `code` is one of the
/// page's own messages (never text from the request, so a link cannot make
/// the page say something false).
fn done(location: &str, code: &str) -> Response {
    let separator = if location.contains('?') { '&' } else { '?' };
    see_other(&format!("{location}{separator}done={code}"))
}
