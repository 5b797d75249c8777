//! What the catalogue holds, as the API shows it: training files, their
//! members and versions, conversations, users.

use serde::Serialize;
use serde_json::Value;

/// A training file: every column of the original table plus `version` (and `total_turns`).
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrainingFile {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub json_file_path: String,
    pub jsonl_file_path: String,
    pub storage_bucket: String,
    pub conversation_count: i64,
    pub total_training_pairs: i64,
    pub total_turns: i64,
    pub json_file_size: Option<i64>,
    pub jsonl_file_size: Option<i64>,
    pub avg_quality_score: Option<f64>,
    pub min_quality_score: Option<f64>,
    pub max_quality_score: Option<f64>,
    pub human_reviewed_count: i64,
    /// `{personas, emotional_arcs, training_topics}` → `{key: conversation count}`.
    #[sqlx(try_from = "String")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub scaffolding_distribution: JsonText,
    pub status: String,
    pub last_updated_at: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[sqlx(rename = "current_version")]
    pub version: i64,
    #[serde(skip)]
    pub owner_id: String,
    #[serde(skip)]
    pub vertical: String,
    #[serde(skip)]
    pub target_model: Option<String>,
}

/// The columns `TrainingFile` reads, for `SELECT`s.
pub(crate) const TRAINING_FILE_COLUMNS: &str = "id, name, description, json_file_path, jsonl_file_path, storage_bucket, \
    conversation_count, total_training_pairs, total_turns, json_file_size, jsonl_file_size, avg_quality_score, \
    min_quality_score, max_quality_score, human_reviewed_count, scaffolding_distribution, status, last_updated_at, \
    created_by, created_at, updated_at, current_version, owner_id, vertical, target_model";

/// JSON kept as text in the catalogue, parsed on the way out.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct JsonText(pub Value);

impl TryFrom<String> for JsonText {
    type Error = serde_json::Error;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&text).map(JsonText)
    }
}

/// A conversation's place in a training file, with what its fragment contributes.
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    pub conversation_id: String,
    pub added_at: String,
    pub added_by: Option<String>,
    pub persona_key: Option<String>,
    pub emotional_arc_key: Option<String>,
    pub topic_key: Option<String>,
    pub quality_score: Option<f64>,
    pub pairs: i64,
    #[serde(skip)]
    pub turns: i64,
    #[serde(skip)]
    pub human_reviewed_pairs: i64,
    #[serde(skip)]
    pub position: i64,
    #[serde(skip)]
    pub line_id_suffix: String,
    /// The first 8 characters of the conversation id.
    #[serde(skip)]
    pub short_id: String,
    /// Where its JSON fragment is stored: an object (a segment), offset and length.
    #[serde(skip)]
    pub fragment_json_path: String,
    #[serde(skip)]
    pub fragment_json_offset: i64,
    #[serde(skip)]
    pub fragment_json_size: i64,
    /// 1 when the stored JSON bytes begin with their separator (segments).
    #[serde(skip)]
    pub fragment_json_framed: i64,
    #[serde(skip)]
    pub fragment_jsonl_path: String,
    #[serde(skip)]
    pub fragment_jsonl_offset: i64,
    #[serde(skip)]
    pub fragment_jsonl_size: i64,
}

pub(crate) const MEMBER_COLUMNS: &str = "conversation_id, added_at, added_by, persona_key, emotional_arc_key, topic_key, \
    quality_score, pairs, turns, human_reviewed_pairs, position, line_id_suffix, short_id, fragment_json_path, fragment_json_offset, \
    fragment_json_size, fragment_json_framed, fragment_jsonl_path, fragment_jsonl_offset, fragment_jsonl_size";

/// One immutable version of a training file.
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Version {
    pub version: i64,
    pub created_at: String,
    pub created_by: Option<String>,
    /// `create`, `add`, `remove`, or `compact` (the same content, stored in fewer pieces).
    pub change: String,
    pub conversation_count: i64,
    pub total_training_pairs: i64,
    /// Conversations this version added and removed.
    #[sqlx(rename = "added_count")]
    pub added: i64,
    #[sqlx(rename = "removed_count")]
    pub removed: i64,
    pub json_file_size: i64,
    pub jsonl_file_size: i64,
    /// Known once the version has been downloaded whole (computing it costs a read of the file).
    pub json_sha256: Option<String>,
    pub jsonl_sha256: Option<String>,
}

pub(crate) const VERSION_COLUMNS: &str = "version, created_at, created_by, change, conversation_count, total_training_pairs, \
    added_count, removed_count, json_file_size, jsonl_file_size, json_sha256, jsonl_sha256";

/// A conversation in the catalogue.
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationRecord {
    #[serde(skip)]
    pub id: String,
    pub conversation_id: String,
    pub enrichment_status: String,
    pub enriched_file_path: Option<String>,
    pub enriched_file_size: Option<i64>,
    #[serde(skip)]
    pub enriched_sha256: Option<String>,
    pub persona_key: Option<String>,
    pub emotional_arc_key: Option<String>,
    pub topic_key: Option<String>,
    pub quality_score: Option<f64>,
    pub tier: Option<String>,
    pub turn_count: i64,
    pub pair_count: i64,
    pub created_at: String,
    #[serde(rename = "owner")]
    pub owner_id: String,
    /// What the conversation was imported as: `raw`, `parsed`, `enriched`, or
    /// `unparsable` (kept for review, with `parse_error`).
    pub source_stage: String,
    /// Why the imported text is not JSON; such a conversation needs review.
    pub parse_error: Option<String>,
    /// The last enrichment failure; cleared when enrichment succeeds.
    pub enrichment_error: Option<String>,
    pub enriched_at: Option<String>,
    #[serde(skip)]
    pub source_path: Option<String>,
    #[serde(skip)]
    pub source_sha256: Option<String>,
    #[serde(skip)]
    pub enrichment_started_at: Option<String>,
    #[serde(skip)]
    pub scaffolding_snapshot: Option<String>,
}

pub(crate) const CONVERSATION_COLUMNS: &str = "id, conversation_id, enrichment_status, enriched_file_path, enriched_file_size, \
    enriched_sha256, persona_key, emotional_arc_key, topic_key, quality_score, tier, turn_count, pair_count, created_at, owner_id, \
    source_stage, parse_error, enrichment_error, enriched_at, source_path, source_sha256, enrichment_started_at, scaffolding_snapshot";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: String,
    pub email: String,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub created_at: String,
}

/// A page of a list and the cursor of the next page (`None` at the end).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}
