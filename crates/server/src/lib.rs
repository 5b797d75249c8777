//! The lora-files HTTP API (axum): training files, conversations, auth,
//! signed downloads, health and the OpenAPI document. Turns HTTP into store
//! calls; the rules live in `lora-files-store`.
//!
//! [`http::app`] builds the router from one module per resource;
//! [`state::AppState`] is what every handler shares; [`error::ApiError`] is
//! the one error type, mapped to a status and a JSON body.

pub mod auth;
pub mod conversations;
pub mod downloads;
pub mod error;
pub mod health;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod openapi;
pub mod scaffolding;
pub mod state;
pub mod throttle;
pub mod training_files;
pub mod web;

pub use http::app;
pub use state::{AppState, Settings};
