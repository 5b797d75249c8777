//! What every handler shares: the store, the token keys and the limits.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use lora_files_store::Store;

use crate::auth::TokenKeys;
use crate::throttle::LoginThrottle;

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
    /// Sign-in attempts a minute for one email (then 429 with `Retry-After`).
    pub login_attempts_per_account: NonZeroU32,
    /// Sign-in attempts a minute from one client address.
    pub login_attempts_per_address: NonZeroU32,
    /// How long a create, add or remove waits for its job before it answers 202 (`--sync-wait`).
    pub sync_wait: Duration,
    /// Workers this process runs (`--workers`); with none, changes not asked
    /// for with `Prefer: respond-async` run in the request (see `jobs`).
    pub job_workers: usize,
    /// Whether `GET /metrics` answers (`--metrics`); requests are counted only then.
    pub metrics: bool,
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
            login_attempts_per_account: NonZeroU32::new(10).expect("not zero"),
            login_attempts_per_address: NonZeroU32::new(60).expect("not zero"),
            sync_wait: Duration::from_secs(30),
            job_workers: 0,
            metrics: false,
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
    /// Sign-in attempts per account and per client address.
    pub logins: Arc<LoginThrottle>,
    /// What `GET /metrics` shows.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AppState {
    /// `secret` signs access tokens (HS256); the store signs download links with its own key.
    pub fn new(store: Store, secret: &[u8], settings: Settings) -> Self {
        Self {
            store,
            tokens: Arc::new(TokenKeys::new(secret)),
            logins: Arc::new(LoginThrottle::new(settings.login_attempts_per_account, settings.login_attempts_per_address)),
            settings: Arc::new(settings),
            known_users: Arc::default(),
            metrics: Arc::default(),
        }
    }
}
