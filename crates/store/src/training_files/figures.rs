//! A version's export figures: the bytes of its OpenAI, ShareGPT and Alpaca
//! exports and the `o200k_base` tokens of its OpenAI export, summed over its
//! members at commit (each member's were counted when it was added), so a
//! change costs what it adds; a version whose members predate the figures
//! gets them on first use, from one pass over its JSONL, kept in its row.

use futures::TryStreamExt;
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

/// States the new version's figures: the sums over the members it holds,
/// unless one of them has none (added before figures were kept).
pub(super) async fn sum_members(tx: &mut Transaction, file_id: &str, version: i64) -> Result<(), StoreError> {
    let (members, counted): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(openai_size) FROM training_file_conversations WHERE training_file_id = $1").bind(file_id).fetch_one(&mut **tx).await?;
    if members != counted {
        return Ok(());
    }
    sqlx::query(
        "UPDATE training_file_versions SET \
         openai_size = (SELECT CAST(COALESCE(SUM(openai_size), 0) AS BIGINT) FROM training_file_conversations WHERE training_file_id = $1), \
         sharegpt_size = (SELECT CAST(COALESCE(SUM(sharegpt_size), 0) AS BIGINT) FROM training_file_conversations WHERE training_file_id = $1), \
         alpaca_size = (SELECT CAST(COALESCE(SUM(alpaca_size), 0) AS BIGINT) FROM training_file_conversations WHERE training_file_id = $1), \
         context_tokens = (SELECT CAST(COALESCE(SUM(context_tokens), 0) AS BIGINT) FROM training_file_conversations WHERE training_file_id = $1), \
         training_tokens = (SELECT CAST(COALESCE(SUM(training_tokens), 0) AS BIGINT) FROM training_file_conversations WHERE training_file_id = $1), \
         token_examples = (SELECT CAST(COALESCE(SUM(token_examples), 0) AS BIGINT) FROM training_file_conversations WHERE training_file_id = $1), \
         max_example_tokens = (SELECT COALESCE(MAX(max_example_tokens), 0) FROM training_file_conversations WHERE training_file_id = $1) \
         WHERE training_file_id = $1 AND version = $2",
    )
    .bind(file_id)
    .bind(version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl TrainingFiles<'_> {
    /// The export figures of a version (the current one when `None`).
    pub async fn export_figures(self, user: &str, file_id: &str, version: Option<i64>) -> Result<ExportFigures, StoreError> {
        let version = match version {
            Some(version) => version,
            None => self.get(user, file_id).await?.version,
        };
        let mut tx = self.store.catalogue.begin_as(user).await?;
        let row: Option<Row> = sqlx::query_as(
            "SELECT openai_size, sharegpt_size, alpaca_size, context_tokens, training_tokens, token_examples, max_example_tokens \
             FROM training_file_versions WHERE training_file_id = $1 AND version = $2 AND owner_id = $3",
        )
        .bind(file_id)
        .bind(version)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let row = row.ok_or(StoreError::NotFound)?;
        if let Some(figures) = from_row(row) {
            return Ok(figures);
        }
        let figures = self.count_version(user, file_id, version).await?;
        let mut tx = self.store.catalogue.begin_as(user).await?;
        let mut query = sqlx::query(
            "UPDATE training_file_versions SET openai_size = $1, sharegpt_size = $2, alpaca_size = $3, context_tokens = $4, training_tokens = $5, \
             token_examples = $6, max_example_tokens = $7 WHERE training_file_id = $8 AND version = $9 AND owner_id = $10",
        );
        for value in [figures.openai_bytes, figures.sharegpt_bytes, figures.alpaca_bytes, figures.context_tokens, figures.training_tokens, figures.examples, figures.max_example_tokens] {
            query = query.bind(value as i64);
        }
        query.bind(file_id).bind(version).bind(user).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(figures)
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
