//! The enrichment pipeline, pure: a raw or parsed conversation is validated
//! ([`check`]), enriched into a v4 file ([`transform`]) and normalised (the
//! bytes that are stored are the pretty-printed document, checked by the v4
//! validator). The store drives it and records each outcome as a status.
//!
//! Decisions where the original went wrong (spec `enrichment.md` §3):
//! scaffolding comes from the catalogue by key and the database persona
//! overrides an LLM-invented `client_persona`; `input_parameters` is always
//! written when any scaffolding is known; the five per-pair scaffolding
//! fields are omitted, not null, when unknown; `client_background` never
//! prints an object as "[object Object]"; `key_learning_objective` is the
//! topic key; `demonstrates_skills` comes from the template's skills, never
//! persona keys; valence is by whole words; scores are never invented or
//! jittered; pairs carry the conversation's real id.

pub mod check;
pub mod reference;
pub mod source;
pub mod transform;

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::input::read_enriched_bytes;
use crate::model::Conversation;
use crate::value::Value;
use check::{Issue, ValidationReport};
use reference::Reference;
use source::Stage;

/// What every enriched file states that is not about the conversation.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Settings {
    /// Used when the conversation's scaffolding snapshot carries no system prompt.
    pub system_prompt: String,
    pub consultant_profile: Value,
    pub consultant_persona: String,
    pub vertical: String,
    pub target_use: String,
}

impl Default for Settings {
    /// The original's constants (Elena Morales, CFP).
    fn default() -> Self {
        static DEFAULTS: OnceLock<Settings> = OnceLock::new();
        DEFAULTS.get_or_init(|| serde_json::from_str(include_str!("defaults.json")).expect("defaults.json is valid")).clone()
    }
}

/// What the catalogue says about the conversation being enriched.
#[derive(Clone, Debug)]
pub struct Subject<'a> {
    pub conversation_id: &'a str,
    pub created_at: DateTime<Utc>,
    /// The catalogue's score on the 1–5 scale, when it has one.
    pub quality_score: Option<f64>,
    /// The scaffolding snapshot's system prompt, when it has one.
    pub system_prompt: Option<&'a str>,
}

/// Where a run of the pipeline ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Blockers were found (or the text is not JSON): nothing was enriched.
    ValidationFailed(ValidationReport),
    /// Enrichment could not build the document.
    EnrichmentFailed { report: ValidationReport, error: String },
    /// The enriched document does not pass the v4 validator or is too large.
    NormalizationFailed { report: ValidationReport, error: String },
    /// The normalised enriched file, ready to store.
    Enriched { report: ValidationReport, bytes: Vec<u8>, conversation: Box<Conversation> },
}

impl Outcome {
    pub fn report(&self) -> &ValidationReport {
        match self {
            Self::ValidationFailed(report)
            | Self::EnrichmentFailed { report, .. }
            | Self::NormalizationFailed { report, .. }
            | Self::Enriched { report, .. } => report,
        }
    }
}

/// Runs validate → enrich → normalise on a stored source. `now` stamps the report.
pub fn run(source: &[u8], reference: &Reference, subject: &Subject, settings: &Settings, max_bytes: u64, now: &str) -> Outcome {
    let (document, repairs) = match source::parse(source) {
        Ok(parsed) => (parsed.document, parsed.repairs),
        Err(error) => return Outcome::ValidationFailed(ValidationReport::new(subject.conversation_id, now, vec![check::syntax_issue(&error.to_string())])),
    };
    let mut issues: Vec<Issue> = check::check_conversation(&document);
    if !repairs.is_empty() {
        issues.push(check::repaired_issue(&repairs));
    }
    if Stage::of(&document) == Some(Stage::Enriched) {
        issues.push(Issue {
            code: "ALREADY_ENRICHED".into(),
            severity: check::IssueSeverity::Blocker,
            field: "$".into(),
            message: "this is an enriched v4 file; import it as it is".into(),
            suggestion: "Import the file; it needs no enrichment".into(),
        });
    }
    let report = ValidationReport::new(subject.conversation_id, now, issues);
    if !report.is_valid {
        return Outcome::ValidationFailed(report);
    }
    let enriched = match transform::enrich(&document, reference, subject, settings) {
        Ok(enriched) => enriched,
        Err(error) => return Outcome::EnrichmentFailed { report, error: error.0 },
    };
    match normalize(&enriched, max_bytes) {
        Ok((bytes, conversation)) => Outcome::Enriched { report, bytes, conversation: Box::new(conversation) },
        Err(error) => Outcome::NormalizationFailed { report, error },
    }
}

/// The stored form of an enriched document: 2-space JSON that the v4
/// validator accepts, no larger than `max_bytes`.
pub fn normalize(document: &Value, max_bytes: u64) -> Result<(Vec<u8>, Conversation), String> {
    let bytes = crate::json::to_pretty_vec(document);
    if bytes.len() as u64 > max_bytes {
        return Err(format!("the enriched file would be {} bytes, above the limit of {max_bytes}", bytes.len()));
    }
    match read_enriched_bytes(&bytes) {
        Ok((conversation, _warnings)) => Ok((bytes, conversation)),
        Err(findings) => {
            let errors: Vec<String> = findings.errors().take(5).map(|d| format!("{}: {}", d.path, d.message)).collect();
            Err(format!("the enriched file fails v4 validation: {}", errors.join("; ")))
        }
    }
}
