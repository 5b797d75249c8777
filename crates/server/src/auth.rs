//! Authentication: HS256 access tokens (compatible with Supabase access tokens
//! when given that project's secret), argon2 passwords, and the `AuthUser`
//! extractor — a handler that takes one cannot forget to check the caller.

use axum::extract::{FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::http::ApiJson;
use crate::state::AppState;

/// The cookie a browser session may carry the token in.
pub const SESSION_COOKIE: &str = "lora_files_session";

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id (UUID).
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Supabase tokens carry `aud: "authenticated"`; ours none. The signature is what counts.
        validation.validate_aud = false;
        validation.leeway = 0;
        // A token that is not valid yet is refused like an expired one.
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation }
    }

    /// A token for `user_id` valid for `lifetime`.
    pub fn issue(&self, user_id: &str, email: Option<&str>, lifetime: std::time::Duration) -> String {
        let exp = chrono::Utc::now().timestamp() as u64 + lifetime.as_secs();
        let claims = Claims { sub: user_id.to_owned(), exp, email: email.map(str::to_owned) };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).expect("HS256 signing cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map(|data| data.claims).map_err(|error| {
            let reason = match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired",
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                jsonwebtoken::errors::ErrorKind::InvalidSignature => "the token's signature is not valid",
                _ => "the token is not valid",
            };
            ApiError::unauthorized(reason)
        })
    }
}

/// The client's address (when the server runs with connect info).
pub struct ClientAddress(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(crate::throttle::client_address(parts)))
    }
}

/// The authenticated caller: the id of the user a valid token names.
#[derive(Clone, Debug)]
pub struct AuthUser(pub String);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).or_else(|| session_cookie(parts)).ok_or_else(|| ApiError::unauthorized("a bearer token is required"))?;
        let claims = state.tokens.verify(&token)?;
        // One user however the id is written (upper case, braces, urn:uuid:).
        let user = lora_files_store::ids::canonical_uuid(&claims.sub).ok_or_else(|| ApiError::unauthorized("the token's subject is not a user id"))?;
        ensure_user(state, &user, claims.email.as_deref()).await?;
        Ok(AuthUser(user))
    }
}

/// A valid token whose user is unknown provisions that user (Supabase
/// tokens). Its `email` must not be another user's: accounts are never
/// linked by email (a token issuer could otherwise claim anyone's), so such a
/// token is refused with 401.
async fn ensure_user(state: &AppState, user: &str, email: Option<&str>) -> Result<(), ApiError> {
    if state.known_users.read().expect("no panics while holding the lock").contains(user) {
        return Ok(());
    }
    if state.store.users().get(user).await?.is_none() {
        let email = email.filter(|e| !e.trim().is_empty());
        if email.is_some_and(|e| e.contains(|c: char| c.is_control())) {
            return Err(ApiError::unauthorized("the token's email claim is not an email address"));
        }
        let taken = || ApiError::unauthorized("the token's email belongs to another account; accounts are not linked by email");
        if let Some(email) = email {
            if state.store.users().by_email(email).await?.is_some_and(|other| other.id != user) {
                return Err(taken());
            }
        }
        match state.store.users().provision(user, email).await {
            Ok(_) => tracing::info!(user, "provisioned a user from a valid token"),
            // Two first requests at once: the other one created it.
            Err(_) if state.store.users().get(user).await?.is_some() => {}
            // Another token took the email between the check and the insert.
            Err(error) if error.is_unique_violation() => return Err(taken()),
            Err(error) => return Err(error.into()),
        }
    }
    state.known_users.write().expect("no panics while holding the lock").insert(user.to_owned());
    Ok(())
}

fn bearer_token(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

fn session_cookie(parts: &Parts) -> Option<String> {
    parts.headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == SESSION_COOKIE).then(|| value.to_owned())
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenRequest {
    /// An address: one `@`, no spaces or control characters (surrounding spaces are trimmed).
    #[schema(max_length = 254, pattern = r"^\s*[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f.][^@\s\x00-\x1f\x7f-\x9f]*\s*$")]
    pub email: String,
    pub password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/auth/token", post(issue_token))
}

/// Exchanges an email and password for an access token.
#[utoipa::path(post, path = "/api/auth/token", tag = "auth", request_body = TokenRequest,
    responses((status = 200, body = TokenResponse), (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 429, body = crate::openapi::ErrorBody, description = "too many attempts for this email or from this address; `Retry-After` says when to try again")))]
pub async fn issue_token(State(state): State<AppState>, ClientAddress(address): ClientAddress, ApiJson(request): ApiJson<TokenRequest>) -> Result<Json<TokenResponse>, Response> {
    state.logins.attempt(&request.email, address).map_err(IntoResponse::into_response)?;
    issue_checked_token(&state, &request).await.map_err(IntoResponse::into_response)
}

async fn issue_checked_token(state: &AppState, request: &TokenRequest) -> ApiResult<Json<TokenResponse>> {
    // The same answer for an unknown email and a wrong password.
    let user = state.store.users().authenticate(&request.email, &request.password).await?.ok_or_else(|| ApiError::unauthorized("wrong email or password"))?;
    let lifetime = state.settings.token_lifetime;
    let access_token = state.tokens.issue(&user.id, Some(&user.email), lifetime);
    Ok(Json(TokenResponse { access_token, token_type: "bearer", expires_in: lifetime.as_secs() }))
}

/// Property tests (proptest, run by `cargo test`): token parsing never
/// panics, and only an untouched token signed with our key verifies.
#[cfg(test)]
mod properties {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use proptest::prelude::*;

    use super::*;

    const SECRET: &[u8] = b"a test secret that is long enough for HS256";

    fn b64(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    fn keys() -> TokenKeys {
        TokenKeys::new(SECRET)
    }

    /// Any JSON a header or a claims segment may hold (bounded depth and size).
    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            "\\PC{0,20}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from), prop::collection::hash_map("(sub|exp|nbf|email|alg|typ|\\PC{0,6})", inner, 0..6).prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn random_text_never_verifies(token in "\\PC{0,300}|[A-Za-z0-9_.-]{0,400}") {
            prop_assert!(keys().verify(&token).is_err());
        }

        #[test]
        fn unsigned_segments_of_any_json_never_verify(header in any_json(), claims in any_json(), signature in "[A-Za-z0-9_-]{0,64}") {
            let token = format!("{}.{}.{signature}", b64(&header.to_string()), b64(&claims.to_string()));
            prop_assert!(keys().verify(&token).is_err());
        }

        #[test]
        fn any_signed_claims_parse_without_panicking(claims in any_json()) {
            let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).unwrap();
            if let Ok(verified) = keys().verify(&token) {
                // Only a string `sub` and a future numeric `exp` get through.
                prop_assert_eq!(Some(verified.sub.as_str()), claims.get("sub").and_then(|s| s.as_str()));
                prop_assert!(verified.exp >= chrono::Utc::now().timestamp() as u64);
            }
        }

        #[test]
        fn a_changed_or_cut_token_never_verifies(sub in "[0-9a-f-]{36}", at in any::<prop::sample::Index>(), with in "[A-Za-z0-9_-]", cut in any::<prop::sample::Index>()) {
            let token = keys().issue(&sub, Some("x@example.com"), std::time::Duration::from_secs(600));
            prop_assert!(keys().verify(&token).is_ok());
            let at = at.index(token.len());
            let mut changed = token.clone();
            if changed[at..at + 1] != with {
                changed.replace_range(at..at + 1, &with);
                prop_assert!(keys().verify(&changed).is_err(), "{}", changed);
            }
            let cut = cut.index(token.len());
            prop_assert!(keys().verify(&token[..cut]).is_err());
        }
    }
}
