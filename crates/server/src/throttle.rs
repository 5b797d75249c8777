//! Login throttling: attempts per account and per client address, each a
//! token bucket (`governor`); over either, a login is answered 429 with
//! `Retry-After` before any password is checked.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};

use crate::error::ApiError;

type Keyed<K> = RateLimiter<K, governor::state::keyed::HashMapStateStore<K>, DefaultClock>;

pub struct LoginThrottle {
    accounts: Keyed<String>,
    addresses: Keyed<IpAddr>,
    clock: DefaultClock,
}

/// A login refused for too many attempts: 429 with `Retry-After`.
#[derive(Debug)]
pub struct Throttled(pub Duration);

impl IntoResponse for Throttled {
    fn into_response(self) -> Response {
        let seconds = self.0.as_secs_f64().ceil().max(1.0) as u64;
        let error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", format!("too many sign-in attempts; try again in {seconds} s"));
        let mut response = error.into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        response
    }
}

impl LoginThrottle {
    /// At most `per_account` attempts a minute for one email and `per_address` from one client address.
    pub fn new(per_account: NonZeroU32, per_address: NonZeroU32) -> Self {
        Self {
            accounts: RateLimiter::hashmap(Quota::per_minute(per_account)),
            addresses: RateLimiter::hashmap(Quota::per_minute(per_address)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one attempt for `email` from `address`; `Err` with the wait when either is over its limit.
    pub fn attempt(&self, email: &str, address: Option<IpAddr>) -> Result<(), Throttled> {
        let now = self.clock.now();
        if let Some(address) = address {
            self.addresses.check_key(&address).map_err(|not_until| Throttled(not_until.wait_time_from(now)))?;
        }
        self.accounts.check_key(&email.trim().to_lowercase()).map_err(|not_until| Throttled(not_until.wait_time_from(now)))?;
        // The maps keep one entry per key seen; drop the ones that are full again.
        if self.accounts.len() > 100_000 {
            self.accounts.retain_recent();
        }
        if self.addresses.len() > 100_000 {
            self.addresses.retain_recent();
        }
        Ok(())
    }
}

/// The client's address when the server was started with connect info.
pub fn client_address(parts: &Parts) -> Option<IpAddr> {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(address)| address.ip())
}
