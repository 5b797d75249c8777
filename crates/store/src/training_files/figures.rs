//! A version's export figures: the bytes of its OpenAI, ShareGPT and Alpaca
//! exports and the `o200k_base` tokens of its OpenAI export.
//!
//! Each member's figures are kept in its row. A small change counts what it
//! adds and carries the version's figures from the previous version's at
//! commit, so it costs what it adds. A large one (a create of thousands)
//! commits without them: tokenizing costs many times what rendering does,
//! so its members are counted after the commit ([`TrainingFiles::settle_figures`],
//! in the background), and the version's figures are then their sums. Until
//! then the file detail has none; a download of an export waits for them.
//! An older version without figures gets them on first use, from one pass
//! over its JSONL, kept in its row.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use lora_files_format::export::{ExportFigures, FiguresCounter, Tokenizer};

use super::TrainingFiles;
use crate::catalogue::Transaction;
use crate::StoreError;

/// The figures columns (members and versions name them alike), in [`ExportFigures`]' order.
type Row = (Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>);

fn from_row(row: Row) -> Option<ExportFigures> {
    let (openai, sharegpt, alpaca, context, training, examples, max) = row;
    let n = |v: i64| v.max(0) as u64;
    Some(ExportFigures {
        openai_bytes: n(openai?),
        sharegpt_bytes: n(sharegpt?),
        alpaca_bytes: n(alpaca?),
        context_tokens: n(context?),
        training_tokens: n(training?),
        examples: n(examples?),
        max_example_tokens: n(max?),
    })
}

/// A change adding more members than this leaves their figures to
/// [`TrainingFiles::settle_figures`], after it commits.
pub(super) const COUNT_INLINE_UP_TO: usize = 64;

/// Members counted per round of [`TrainingFiles::settle_figures`] (bounds its memory).
const SETTLE_BATCH: i64 = 256;

/// Members read and counted at once (on the blocking pool).
const SETTLE_AHEAD: usize = 4;

/// Rounds of stating the current version's figures while changes keep landing.
const STATE_ATTEMPTS: usize = 16;

/// Members without figures, then the sums of [`COLUMNS`] over the rest.
type Sums = (i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>);

/// The figures as [`COLUMNS`] hold them.
fn columns(figures: &ExportFigures) -> [i64; 7] {
    [figures.openai_bytes, figures.sharegpt_bytes, figures.alpaca_bytes, figures.context_tokens, figures.training_tokens, figures.examples, figures.max_example_tokens]
        .map(|value| value as i64)
}

const COLUMNS: &str = "openai_size, sharegpt_size, alpaca_size, context_tokens, training_tokens, token_examples, max_example_tokens";

/// The new version's figures, carried from the previous version's: plus
/// what the added members bring, less what the removed one took, so a
/// change costs what it adds (only removing the member with the largest
/// example looks for the next largest). `None` when the previous version or
/// a member has none (kept from before figures were): the version then gets
/// them on first use. Runs before the removed member's row is deleted.
pub(super) async fn carried(tx: &mut Transaction, file_id: &str, previous: i64, added: Option<&ExportFigures>, removed: Option<&str>) -> Result<Option<ExportFigures>, StoreError> {
    let mut figures = if previous == 0 {
        ExportFigures::default()
    } else {
        match version_row(tx, file_id, previous).await?.flatten() {
            Some(figures) => figures,
            None => return Ok(None),
        }
    };
    let Some(added) = added else { return Ok(None) };
    figures = figures.plus(added);
    if let Some(conversation_id) = removed {
        let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM training_file_conversations WHERE training_file_id = $1 AND conversation_id = $2"))
            .bind(file_id)
            .bind(conversation_id)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(gone) = row.and_then(from_row) else { return Ok(None) };
        figures.openai_bytes = figures.openai_bytes.saturating_sub(gone.openai_bytes);
        figures.sharegpt_bytes = figures.sharegpt_bytes.saturating_sub(gone.sharegpt_bytes);
        figures.alpaca_bytes = figures.alpaca_bytes.saturating_sub(gone.alpaca_bytes);
        figures.context_tokens = figures.context_tokens.saturating_sub(gone.context_tokens);
        figures.training_tokens = figures.training_tokens.saturating_sub(gone.training_tokens);
        figures.examples = figures.examples.saturating_sub(gone.examples);
        if gone.max_example_tokens >= figures.max_example_tokens {
            let (max,): (Option<i64>,) =
                sqlx::query_as("SELECT MAX(max_example_tokens) FROM training_file_conversations WHERE training_file_id = $1 AND conversation_id <> $2")
                    .bind(file_id)
                    .bind(conversation_id)
                    .fetch_one(&mut **tx)
                    .await?;
            figures.max_example_tokens = max.unwrap_or(0).max(0) as u64;
        }
    }
    Ok(Some(figures))
}

/// A version's row: `None` without it, `Some(None)` when it states no figures.
async fn version_row(tx: &mut Transaction, file_id: &str, version: i64) -> Result<Option<Option<ExportFigures>>, StoreError> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM training_file_versions WHERE training_file_id = $1 AND version = $2"))
        .bind(file_id)
        .bind(version)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(from_row))
}

/// Writes a version's figures into its row.
pub(super) async fn state(tx: &mut Transaction, file_id: &str, version: i64, figures: &ExportFigures) -> Result<(), StoreError> {
    let sql = format!("UPDATE training_file_versions SET ({COLUMNS}) = ($1, $2, $3, $4, $5, $6, $7) WHERE training_file_id = $8 AND version = $9");
    let mut query = sqlx::query(&sql);
    for value in columns(figures) {
        query = query.bind(value);
    }
    query.bind(file_id).bind(version).execute(&mut **tx).await?;
    Ok(())
}

/// A member without figures: conversation id, position, and where its JSONL is (key, offset, size).
type Uncounted = (String, i64, String, i64, i64);

/// A member's JSONL within one segment: conversation id, offset, size.
type Span = (String, u64, u64);

/// Members as `settle_figures` reads them, grouped by segment in order.
fn by_segment(members: Vec<Uncounted>) -> Vec<(String, Vec<Span>)> {
    let mut groups: Vec<(String, Vec<Span>)> = Vec::new();
    for (conversation_id, _, key, offset, size) in members {
        let member = (conversation_id, offset.max(0) as u64, size.max(0) as u64);
        match groups.last_mut() {
            Some((last, group)) if *last == key => group.push(member),
            _ => groups.push((key, vec![member])),
        }
    }
    groups
}

impl TrainingFiles<'_> {
    /// The export figures of a version, when they are known without
    /// waiting: `None` while a large change's are being counted (this starts
    /// the counting again if a crash stopped it). An older version without
    /// figures is counted now.
    pub async fn known_export_figures(self, user: &str, file_id: &str, version: i64) -> Result<Option<ExportFigures>, StoreError> {
        if let Some(figures) = self.stated_figures(user, file_id, version).await? {
            return Ok(Some(figures));
        }
        if version != self.get(user, file_id).await?.version {
            return self.export_figures(user, file_id, Some(version)).await.map(Some);
        }
        if !self.shared().settling.is_taken(file_id) {
            self.settle_figures_later(user, file_id);
        }
        Ok(None)
    }

    /// Counts the figures of the file's members that have none in the
    /// background; a failure is logged (the figures are then counted on
    /// first use).
    pub(super) fn settle_figures_later(self, user: &str, file_id: &str) {
        let store = self.store.clone();
        let (user, file_id) = (user.to_owned(), file_id.to_owned());
        tokio::spawn(async move {
            if let Err(error) = store.training_files().settle_figures(&user, &file_id).await {
                tracing::warn!(file_id, %error, "counting a file's export figures failed; they are counted on first use");
            }
        });
    }

    /// Counts the export figures of the file's members that have none (a
    /// large change left them), then states the current version's as their
    /// sums. One run at a time per file in this process; another process
    /// doing the same costs only time (every write is conditional). The
    /// current version's figures, or `None` when a member still has none
    /// (a large change committed meanwhile, and counts its own).
    pub async fn settle_figures(self, user: &str, file_id: &str) -> Result<Option<ExportFigures>, StoreError> {
        let _settling = self.shared().settling.lock(file_id).await;
        let tokenizer = Arc::new(Tokenizer::o200k());
        let mut after = i64::MIN;
        loop {
            let mut tx = self.store.catalogue.begin_as(user).await?;
            let missing: Vec<Uncounted> = sqlx::query_as(
                "SELECT conversation_id, position, fragment_jsonl_path, fragment_jsonl_offset, fragment_jsonl_size FROM training_file_conversations \
                 WHERE training_file_id = $1 AND openai_size IS NULL AND position > $2 ORDER BY position LIMIT $3",
            )
            .bind(file_id)
            .bind(after)
            .bind(SETTLE_BATCH)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            let Some(last) = missing.last() else { break };
            after = last.1;
            let mut jsonl = Vec::with_capacity(missing.len());
            for (key, members) in by_segment(missing) {
                jsonl.extend(self.read_members(&key, members).await?);
            }
            let counted: Vec<(String, ExportFigures)> = futures::stream::iter(jsonl)
                .map(|(conversation_id, jsonl)| {
                    let tokenizer = tokenizer.clone();
                    self.store.cpu.compute(move || (conversation_id, ExportFigures::of_jsonl(&jsonl, &tokenizer)))
                })
                .buffered(SETTLE_AHEAD)
                .try_collect()
                .await?;
            let mut tx = self.store.catalogue.begin_as(user).await?;
            for (conversation_id, figures) in &counted {
                let sql = format!(
                    "UPDATE training_file_conversations SET ({COLUMNS}) = ($1, $2, $3, $4, $5, $6, $7) \
                     WHERE training_file_id = $8 AND conversation_id = $9 AND openai_size IS NULL"
                );
                let mut query = sqlx::query(&sql);
                for value in columns(figures) {
                    query = query.bind(value);
                }
                query.bind(file_id).bind(conversation_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        self.state_current_figures(user, file_id).await
    }

    /// The JSONL bytes of members of one segment (conversation id, offset,
    /// size): one read of the span they lie in when they lie close together
    /// (a create's members do), else one read each.
    async fn read_members(self, key: &str, members: Vec<Span>) -> Result<Vec<(String, bytes::Bytes)>, StoreError> {
        let start = members.iter().map(|m| m.1).min().unwrap_or(0);
        let end = members.iter().map(|m| m.1 + m.2).max().unwrap_or(0);
        let wanted: u64 = members.iter().map(|m| m.2).sum();
        if end - start <= 2 * wanted + (1 << 20) {
            let span = self.store.blobs.get_range(key, start..end).await?;
            return Ok(members.into_iter().map(|(id, offset, size)| (id, span.slice((offset - start) as usize..(offset - start + size) as usize))).collect());
        }
        let mut read = Vec::with_capacity(members.len());
        for (id, offset, size) in members {
            read.push((id, self.store.blobs.get_range(key, offset..offset + size).await?));
        }
        Ok(read)
    }

    /// States the current version's figures as the sums of its members'
    /// when every member has its own. Each attempt reads the version, sums,
    /// and writes only if the file is still at that version.
    async fn state_current_figures(self, user: &str, file_id: &str) -> Result<Option<ExportFigures>, StoreError> {
        for _ in 0..STATE_ATTEMPTS {
            let mut tx = self.store.catalogue.begin_as(user).await?;
            let (version,): (i64,) = sqlx::query_as("SELECT current_version FROM training_files WHERE id = $1 AND owner_id = $2")
                .bind(file_id)
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
            if let Some(figures) = version_row(&mut tx, file_id, version).await?.flatten() {
                tx.commit().await?;
                return Ok(Some(figures));
            }
            let (missing, openai, sharegpt, alpaca, context, training, examples, max): Sums =
                sqlx::query_as(
                    "SELECT COUNT(*) - COUNT(openai_size), CAST(SUM(openai_size) AS BIGINT), CAST(SUM(sharegpt_size) AS BIGINT), CAST(SUM(alpaca_size) AS BIGINT), \
                     CAST(SUM(context_tokens) AS BIGINT), CAST(SUM(training_tokens) AS BIGINT), CAST(SUM(token_examples) AS BIGINT), MAX(max_example_tokens) \
                     FROM training_file_conversations WHERE training_file_id = $1",
                )
                .bind(file_id)
                .fetch_one(&mut *tx)
                .await?;
            if missing > 0 {
                tx.commit().await?;
                return Ok(None);
            }
            let zero = Some(0);
            let figures = from_row((openai.or(zero), sharegpt.or(zero), alpaca.or(zero), context.or(zero), training.or(zero), examples.or(zero), max.or(zero)))
                .expect("every figure is given");
            let sql = format!(
                "UPDATE training_file_versions SET ({COLUMNS}) = ($1, $2, $3, $4, $5, $6, $7) \
                 WHERE training_file_id = $8 AND version = $9 AND openai_size IS NULL \
                 AND (SELECT current_version FROM training_files WHERE id = $8) = $9"
            );
            let mut query = sqlx::query(&sql);
            for value in columns(&figures) {
                query = query.bind(value);
            }
            query.bind(file_id).bind(version).execute(&mut *tx).await?;
            tx.commit().await?;
        }
        Ok(None)
    }

    /// The export figures of a version (the current one when `None`).
    pub async fn export_figures(self, user: &str, file_id: &str, version: Option<i64>) -> Result<ExportFigures, StoreError> {
        let version = match version {
            Some(version) => version,
            None => self.get(user, file_id).await?.version,
        };
        if let Some(figures) = self.stated_figures(user, file_id, version).await? {
            return Ok(figures);
        }
        if version == self.get(user, file_id).await?.version {
            if let Some(figures) = self.settle_figures(user, file_id).await? {
                return Ok(figures);
            }
        }
        let figures = self.count_version(user, file_id, version).await?;
        let mut tx = self.store.catalogue.begin_as(user).await?;
        state(&mut tx, file_id, version, &figures).await?;
        tx.commit().await?;
        Ok(figures)
    }

    /// A version's figures as its row states them (`NotFound` without the row).
    async fn stated_figures(self, user: &str, file_id: &str, version: i64) -> Result<Option<ExportFigures>, StoreError> {
        let mut tx = self.store.catalogue.begin_as(user).await?;
        let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM training_file_versions WHERE training_file_id = $1 AND version = $2 AND owner_id = $3"))
            .bind(file_id)
            .bind(version)
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(from_row(row.ok_or(StoreError::NotFound)?))
    }

    /// One pass over a version's JSONL, counting on the blocking pool.
    async fn count_version(self, user: &str, file_id: &str, version: i64) -> Result<ExportFigures, StoreError> {
        let opened = self.open_version(user, file_id, version, super::DownloadFormat::Jsonl).await?;
        let mut body = opened.stored_body(None);
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
        let counting = tokio::task::spawn_blocking(move || {
            let tokenizer = Tokenizer::o200k();
            let mut counter = FiguresCounter::new(&tokenizer);
            while let Some(chunk) = receiver.blocking_recv() {
                counter.feed(&chunk);
            }
            counter.finish()
        });
        while let Some(chunk) = body.try_next().await? {
            if sender.send(chunk).await.is_err() {
                break;
            }
        }
        drop(sender);
        counting.await.map_err(|error| StoreError::Internal(format!("counting a version's exports failed: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_with_any_figure_missing_has_none() {
        assert_eq!(from_row((Some(1), Some(2), Some(3), Some(4), Some(5), Some(1), Some(9))).map(|f| f.total_tokens()), Some(9));
        assert_eq!(from_row((Some(1), None, Some(3), Some(4), Some(5), Some(1), Some(9))), None);
    }
}
