//! Signing in and out: the session is an access token in an HttpOnly,
//! SameSite=Strict cookie.

use axum::extract::{FromRequestParts, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::html;

use super::layout::{page, Nav, Notice};
use super::{see_other, Fields, WebResult};
use crate::auth::{AuthUser, ClientAddress, SESSION_COOKIE};
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(home).post(login))
        .route("/logout", post(logout))
}

async fn home(State(state): State<AppState>, mut parts: Parts) -> Response {
    if AuthUser::from_request_parts(&mut parts, &state)
        .await
        .is_ok()
    {
        return see_other("/conversations");
    }
    login_page(None, "", StatusCode::OK)
}

fn login_page(error: Option<&str>, email: &str, status: StatusCode) -> Response {
    let body = html! {
        form method="post" action="/login" {
            p { label { "Email" br; input type="email" name="email" value=(email) required autocomplete="username" autofocus; } }
            p { label { "Password" br; input type="password" name="password" required autocomplete="current-password"; } }
            button { "Sign in" }
        }
        p.muted { "No account yet? An operator adds one with " code { "lora-files user add EMAIL" } ". Programs use the HTTP API with a bearer token: see the " a href="/api/docs" { "API reference" } "." }
    };
    let notice = error.map(|e| Notice::Error(html! { p { (e) } }));
    (status, page("Sign in", Nav::SignedOut, notice, body)).into_response()
}

async fn login(State(state): State<AppState>, ClientAddress(address): ClientAddress, form: Fields) -> WebResult {
    let email = form.get("email").unwrap_or_default();
    let password = form.raw("password");
    // The same budget as `POST /api/auth/token`: the form is no way around it.
    if let Err(throttled) = state.logins.attempt(email, address) {
        let seconds = throttled.0.as_secs_f64().ceil().max(1.0) as u64;
        let mut response = login_page(
            Some(&format!("Too many sign-in attempts for this account or from this address. Try again in {seconds} s.")),
            email,
            StatusCode::TOO_MANY_REQUESTS,
        );
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
        return Ok(response);
    }
    let Some(user) = state.store.users().authenticate(email, password).await? else {
        return Ok(login_page(
            Some("Wrong email or password. Check both and try again."),
            email,
            StatusCode::UNAUTHORIZED,
        ));
    };
    let lifetime = state.settings.token_lifetime;
    let token = state.tokens.issue(&user.id, Some(&user.email), lifetime);
    let secure = if state
        .store
        .config()
        .links
        .public_url
        .starts_with("https://")
    {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        lifetime.as_secs()
    );
    let mut response = see_other("/conversations");
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(response)
}

async fn logout() -> Response {
    let mut response = see_other("/");
    let expired = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&expired).expect("an ASCII cookie"),
    );
    response
}
