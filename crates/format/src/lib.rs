//! The v4 training-data formats of lora-files: types, validation, streaming
//! aggregation into full JSON and JSONL, and metadata. No database, no network.
//!
//! The pieces, in the order data flows through them:
//! [`input`] reads and [`validate`]s files into [`model::Conversation`]s;
//! [`render`] turns each into a [`render::Fragment`]; [`build`] streams
//! fragments into the two output files; [`quality`] computes what a file
//! states about its conversations.

pub mod batch;
pub mod build;
pub mod diagnostics;
pub mod document;
pub mod enrich;
pub mod export;
pub mod input;
pub mod io;
pub mod json;
pub mod model;
pub mod parse;
pub mod path;
pub mod position;
pub mod quality;
pub mod render;
pub mod survey;
pub mod valence;
pub mod value;
pub mod validate;

pub use diagnostics::{Diagnostic, Findings, Severity};
pub use model::Conversation;
pub use path::JsonPath;
pub use position::Position;
