//! The catalogue writes of a change, each one plain SQL on both backends.
//! Every function runs inside the change's transaction.

use lora_files_format::quality::Totals;
use lora_files_format::value::Value;

use super::manifest::{Location, Manifest};
use crate::catalogue::Transaction;
use crate::records::{Member, TrainingFile};
use crate::{new_id, StoreError};

/// Values one multi-row INSERT binds: far under both backends' limits
/// (SQLite 32 766, PostgreSQL 65 535), because sqlx-sqlite asks SQLite the
/// name of each parameter as it binds it, a linear lookup, so a statement
/// costs the square of its parameters: at 256 rows of 31 columns binding
/// took a sixth of an import's time.
const VALUES_PER_INSERT: usize = 512;

/// Rows of `columns` values one multi-row INSERT carries.
pub(crate) const fn rows_per_insert(columns: usize) -> usize {
    let rows = VALUES_PER_INSERT / columns;
    if rows == 0 { 1 } else { rows }
}

/// Ids per `IN (…)` list.
pub(crate) const IDS_PER_QUERY: usize = 500;

/// `($1, $2, …), (…)`: placeholders for `rows` rows of `columns` values
/// (only the number of rows varies; the statement text has no data in it).
pub(crate) fn placeholders(rows: usize, columns: usize) -> String {
    let mut text = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            text.push_str(", ");
        }
        text.push('(');
        for column in 0..columns {
            if column > 0 {
                text.push_str(", ");
            }
            text.push('$');
            text.push_str(&(row * columns + column + 1).to_string());
        }
        text.push(')');
    }
    text
}

/// `$first, $first+1, …`: `count` placeholders for an `IN (…)` list.
pub(crate) fn in_list(first: usize, count: usize) -> String {
    (first..first + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// The file's row, at version 0 with no content, status `processing`: a
/// create's first step, which reserves the name before anything is written.
pub(super) async fn insert_file(tx: &mut Transaction, file: &TrainingFile, consultant_profile: &Value) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO training_files (id, owner_id, name, description, json_file_path, jsonl_file_path, storage_bucket, status, \
         current_version, consultant_profile, vertical, target_model, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, '', '', $5, 'processing', 0, $6, $7, $8, $9, $10, $10)",
    )
    .bind(&file.id)
    .bind(&file.owner_id)
    .bind(&file.name)
    .bind(&file.description)
    .bind(&file.storage_bucket)
    .bind(crate::json_text(consultant_profile))
    .bind(&file.vertical)
    .bind(&file.target_model)
    .bind(&file.created_by)
    .bind(&file.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What a new version states, for the file's row and the version's.
pub(super) struct NewVersion<'a> {
    pub version: i64,
    pub change: &'a str,
    pub now: &'a str,
    pub manifest: &'a Manifest,
    pub totals: &'a Totals,
    pub added: i64,
    pub removed: i64,
}

/// The path the API states for a version (no such object exists: versions
/// are manifests; the path names the version a download serves).
pub(super) fn version_path(file_id: &str, version: i64, extension: &str) -> String {
    format!("training-files/{file_id}/v{version}.{extension}")
}

/// Moves the file to the new version if it is still at the version this
/// change read, in the status it had. Its first statement writes, so on
/// SQLite it takes the write lock at once.
pub(super) async fn advance_file(tx: &mut Transaction, file: &TrainingFile, new: &NewVersion<'_>) -> Result<bool, StoreError> {
    let quality = new.totals.quality();
    let result = sqlx::query(
        "UPDATE training_files SET current_version = $1, json_file_path = $2, jsonl_file_path = $3, conversation_count = $4, \
         total_training_pairs = $5, total_turns = $6, json_file_size = $7, jsonl_file_size = $8, avg_quality_score = $9, \
         min_quality_score = $10, max_quality_score = $11, human_reviewed_count = $12, scaffolding_distribution = $13, \
         last_updated_at = $14, updated_at = $14, status = 'active' \
         WHERE id = $15 AND owner_id = $16 AND current_version = $17 AND status = $18",
    )
    .bind(new.version)
    .bind(version_path(&file.id, new.version, "json"))
    .bind(version_path(&file.id, new.version, "jsonl"))
    .bind(new.totals.conversations as i64)
    .bind(new.totals.training_pairs as i64)
    .bind(new.totals.turns as i64)
    .bind(new.manifest.json.len() as i64)
    .bind(new.manifest.jsonl.len() as i64)
    .bind(quality.avg_quality_score)
    .bind(quality.min_quality_score)
    .bind(quality.max_quality_score)
    .bind(quality.human_reviewed_count as i64)
    .bind(crate::json_text(&new.totals.distribution.to_value()))
    .bind(new.now)
    .bind(&file.id)
    .bind(&file.owner_id)
    .bind(file.version)
    .bind(&file.status)
    .execute(&mut **tx)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub(super) async fn insert_version(tx: &mut Transaction, file: &TrainingFile, new: &NewVersion<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO training_file_versions (training_file_id, version, owner_id, change, created_at, created_by, conversation_count, \
         total_training_pairs, json_file_size, jsonl_file_size, added_count, removed_count, manifest, totals) \
         VALUES ($1, $2, $3, $4, $5, $3, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&file.id)
    .bind(new.version)
    .bind(&file.owner_id)
    .bind(new.change)
    .bind(new.now)
    .bind(new.totals.conversations as i64)
    .bind(new.totals.training_pairs as i64)
    .bind(new.manifest.json.len() as i64)
    .bind(new.manifest.jsonl.len() as i64)
    .bind(new.added)
    .bind(new.removed)
    .bind(new.manifest.to_text())
    .bind(crate::json_text(&new.totals.to_value()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A member about to be inserted, with the conversation row it comes from.
pub(super) struct NewMember {
    pub row_id: String,
    pub member: Member,
    /// What it adds to the exports.
    pub exports: Option<lora_files_format::export::ExportFigures>,
}

/// A member row's columns, as both member tables have them.
const MEMBER_COLUMNS: &str = "id, training_file_id, conversation_row_id, conversation_id, owner_id, position, added_at, added_by, \
     fragment_json_path, fragment_json_offset, fragment_json_size, fragment_json_framed, fragment_jsonl_path, fragment_jsonl_offset, \
     fragment_jsonl_size, line_id_suffix, short_id, turns, pairs, human_reviewed_pairs, quality_score, persona_key, emotional_arc_key, \
     topic_key, openai_size, sharegpt_size, alpaca_size, context_tokens, training_tokens, token_examples, max_example_tokens";

/// Where new member rows go.
#[derive(Clone, Copy)]
pub(super) enum MemberRows<'a> {
    /// Staged under the change `attempt`, which its commit moves into the file ([`commit_members`]).
    Staged(&'a str),
    /// Into the file (in the commit's transaction).
    InFile,
}

/// Inserts members in multi-row statements.
pub(super) async fn insert_members(tx: &mut Transaction, rows: MemberRows<'_>, file_id: &str, owner: &str, members: &[NewMember]) -> Result<(), StoreError> {
    let (table, attempt) = match rows {
        MemberRows::Staged(attempt) => ("training_file_pending_members (attempt, ", Some(attempt)),
        MemberRows::InFile => ("training_file_conversations (", None),
    };
    let columns = 31 + usize::from(attempt.is_some());
    for chunk in members.chunks(rows_per_insert(columns)) {
        let sql = format!("INSERT INTO {table}{MEMBER_COLUMNS}) VALUES {}", placeholders(chunk.len(), columns));
        let mut query = sqlx::query(&sql);
        for NewMember { row_id, member, exports } in chunk {
            let figure = |f: fn(&lora_files_format::export::ExportFigures) -> u64| exports.as_ref().map(|e| f(e) as i64);
            if let Some(attempt) = attempt {
                query = query.bind(attempt);
            }
            query = query
                .bind(new_id())
                .bind(file_id)
                .bind(row_id)
                .bind(&member.conversation_id)
                .bind(owner)
                .bind(member.position)
                .bind(&member.added_at)
                .bind(&member.added_by)
                .bind(&member.fragment_json_path)
                .bind(member.fragment_json_offset)
                .bind(member.fragment_json_size)
                .bind(member.fragment_json_framed)
                .bind(&member.fragment_jsonl_path)
                .bind(member.fragment_jsonl_offset)
                .bind(member.fragment_jsonl_size)
                .bind(&member.line_id_suffix)
                .bind(&member.short_id)
                .bind(member.turns)
                .bind(member.pairs)
                .bind(member.human_reviewed_pairs)
                .bind(member.quality_score)
                .bind(&member.persona_key)
                .bind(&member.emotional_arc_key)
                .bind(&member.topic_key)
                .bind(figure(|e| e.openai_bytes))
                .bind(figure(|e| e.sharegpt_bytes))
                .bind(figure(|e| e.alpaca_bytes))
                .bind(figure(|e| e.context_tokens))
                .bind(figure(|e| e.training_tokens))
                .bind(figure(|e| e.examples))
                .bind(figure(|e| e.max_example_tokens));
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Moves the members `attempt` staged into its file (a unique violation:
/// another change added one of them first).
pub(super) async fn commit_members(tx: &mut Transaction, attempt: &str) -> Result<(), StoreError> {
    sqlx::query(&format!("INSERT INTO training_file_conversations ({MEMBER_COLUMNS}) SELECT {MEMBER_COLUMNS} FROM training_file_pending_members WHERE attempt = $1"))
        .bind(attempt)
        .execute(&mut **tx)
        .await?;
    forget_members(tx, attempt).await
}

/// Deletes the members `attempt` staged.
pub(super) async fn forget_members(tx: &mut Transaction, attempt: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM training_file_pending_members WHERE attempt = $1").bind(attempt).execute(&mut **tx).await?;
    Ok(())
}

pub(super) async fn delete_member(tx: &mut Transaction, file_id: &str, conversation_id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM training_file_conversations WHERE training_file_id = $1 AND conversation_id = $2")
        .bind(file_id)
        .bind(conversation_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A member re-rendered (its line-id suffix changed): its new fragments.
pub(super) async fn move_member(tx: &mut Transaction, file_id: &str, conversation_id: &str, suffix: &str, json: &Location, jsonl: &Location) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE training_file_conversations SET line_id_suffix = $1, fragment_json_path = $2, fragment_json_offset = $3, \
         fragment_json_size = $4, fragment_json_framed = 1, fragment_jsonl_path = $5, fragment_jsonl_offset = $6, fragment_jsonl_size = $7 \
         WHERE training_file_id = $8 AND conversation_id = $9",
    )
    .bind(suffix)
    .bind(&json.key)
    .bind(json.offset as i64)
    .bind(json.length as i64)
    .bind(&jsonl.key)
    .bind(jsonl.offset as i64)
    .bind(jsonl.length as i64)
    .bind(file_id)
    .bind(conversation_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The members whose JSON (or JSONL) bytes were at `from` bytes
/// `range_start..range_start + length` are now at `to` from `to_offset`
/// (a compaction copied them there, in order). Fragments stored before
/// segments (unframed) gained their separator in the copy.
pub(super) async fn relocate(tx: &mut Transaction, file_id: &str, jsonl: bool, from: &str, range_start: u64, length: u64, to: &str, to_offset: u64) -> Result<(), StoreError> {
    let sql = if jsonl {
        "UPDATE training_file_conversations SET fragment_jsonl_path = $1, fragment_jsonl_offset = fragment_jsonl_offset - $2 + $3 \
         WHERE training_file_id = $4 AND fragment_jsonl_path = $5 AND fragment_jsonl_offset >= $2 AND fragment_jsonl_offset < $2 + $6"
    } else {
        "UPDATE training_file_conversations SET fragment_json_path = $1, \
         fragment_json_offset = CASE WHEN fragment_json_framed = 1 THEN fragment_json_offset - $2 + $3 ELSE $3 - 2 END, \
         fragment_json_size = CASE WHEN fragment_json_framed = 1 THEN fragment_json_size ELSE fragment_json_size + 2 END, \
         fragment_json_framed = 1 \
         WHERE training_file_id = $4 AND fragment_json_path = $5 AND fragment_json_offset >= $2 AND fragment_json_offset < $2 + $6"
    };
    sqlx::query(sql)
        .bind(to)
        .bind(range_start as i64)
        .bind(to_offset as i64)
        .bind(file_id)
        .bind(from)
        .bind(length as i64)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Marks segment objects as part of a committed version.
pub(super) async fn commit_segments(tx: &mut Transaction, objects: &[crate::StoredObject]) -> Result<(), StoreError> {
    for object in objects {
        sqlx::query("UPDATE training_file_segments SET state = 'committed', size = $1 WHERE object_key = $2")
            .bind(object.size as i64)
            .bind(&object.key)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
