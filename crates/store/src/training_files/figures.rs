//! A version's export figures: the bytes of its OpenAI, ShareGPT and Alpaca
//! exports and the `o200k_base` tokens of its OpenAI export, summed over its
//! members at commit (each member's were counted when it was added), so a
//! change costs what it adds; a version whose members predate the figures
//! gets them on first use, from one pass over its JSONL, kept in its row.

use futures::TryStreamExt;
use lora_files_format::export::{ExportFigures, FiguresCounter, Tokenizer};

use super::sql::NewMember;
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

const COLUMNS: &str = "openai_size, sharegpt_size, alpaca_size, context_tokens, training_tokens, token_examples, max_example_tokens";

/// The new version's figures, carried from the previous version's: plus
/// what the added members bring, less what the removed one took, so a
/// change costs what it adds (only removing the member with the largest
/// example looks for the next largest). `None` when the previous version or
/// a member has none (kept from before figures were): the version then gets
/// them on first use. Runs before the removed member's row is deleted.
pub(super) async fn carried(tx: &mut Transaction, file_id: &str, previous: i64, added: &[NewMember], removed: Option<&str>) -> Result<Option<ExportFigures>, StoreError> {
    let mut figures = if previous == 0 {
        ExportFigures::default()
    } else {
        let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM training_file_versions WHERE training_file_id = $1 AND version = $2"))
            .bind(file_id)
            .bind(previous)
            .fetch_optional(&mut **tx)
            .await?;
        match row.and_then(from_row) {
            Some(figures) => figures,
            None => return Ok(None),
        }
    };
    for member in added {
        let Some(more) = &member.exports else { return Ok(None) };
        figures.openai_bytes += more.openai_bytes;
        figures.sharegpt_bytes += more.sharegpt_bytes;
        figures.alpaca_bytes += more.alpaca_bytes;
        figures.context_tokens += more.context_tokens;
        figures.training_tokens += more.training_tokens;
        figures.examples += more.examples;
        figures.max_example_tokens = figures.max_example_tokens.max(more.max_example_tokens);
    }
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

/// Writes a version's figures into its row.
pub(super) async fn state(tx: &mut Transaction, file_id: &str, version: i64, figures: &ExportFigures) -> Result<(), StoreError> {
    let n = |v: u64| v as i64;
    sqlx::query(
        "UPDATE training_file_versions SET openai_size = $3, sharegpt_size = $4, alpaca_size = $5, context_tokens = $6, training_tokens = $7, \
         token_examples = $8, max_example_tokens = $9 WHERE training_file_id = $1 AND version = $2",
    )
    .bind(file_id)
    .bind(version)
    .bind(n(figures.openai_bytes))
    .bind(n(figures.sharegpt_bytes))
    .bind(n(figures.alpaca_bytes))
    .bind(n(figures.context_tokens))
    .bind(n(figures.training_tokens))
    .bind(n(figures.examples))
    .bind(n(figures.max_example_tokens))
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
