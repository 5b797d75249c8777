//! What every handler shares: the store, the token keys and the limits.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use lora_files_store::Store;

use crate::auth::TokenKeys;

/// The server's settings beyond the store's.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Most conversation ids one request may name.
    pub max_ids_per_request: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// How long an access token from `POST /api/auth/token` lives.
    pub token_lifetime: Duration,
    /// Longest a request may take before it is answered 503.
    pub request_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self::new()
    }
}

impl Settings {
    pub fn new() -> Self {
        Self {
            max_ids_per_request: 10_000,
            max_body_bytes: 32 * 1024 * 1024,
            token_lifetime: Duration::from_secs(12 * 3600),
            request_timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub tokens: Arc<TokenKeys>,
    pub settings: Arc<Settings>,
    /// Users known to exist, so a valid token costs no query after the first.
    pub(crate) known_users: Arc<RwLock<HashSet<String>>>,
}

impl AppState {
    /// `secret` signs access tokens (HS256); the store signs download links with its own key.
    pub fn new(store: Store, secret: &[u8], settings: Settings) -> Self {
        Self {
            store,
            tokens: Arc::new(TokenKeys::new(secret)),
            settings: Arc::new(settings),
            known_users: Arc::default(),
        }
    }
}
