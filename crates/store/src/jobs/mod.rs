//! Long work as background jobs: a queue in the catalogue that any number of
//! workers, in any number of processes, claim from with a renewed lease.
//!
//! A job is enqueued by the request that wants the work done (the training
//! file a create will fill is reserved first, so the job's input names it and
//! a second run finds it). A [`worker::Worker`] claims the oldest job that is
//! queued or whose lease ran out — on PostgreSQL with `FOR UPDATE SKIP
//! LOCKED`, in a function that may see every owner's jobs; on SQLite with one
//! `UPDATE … WHERE id = (SELECT … LIMIT 1)` — and renews the lease while the
//! job runs. A worker that dies stops renewing and the job is claimed again;
//! the job bodies are idempotent and every version commit is conditional on
//! the version it read, so nothing is done twice. Every write after the claim
//! is conditional on the claim still being this worker's.

pub mod worker;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalogue::Backend;
use crate::records::TrainingFile;
use crate::{json_text, new_id, now_text, timestamp_text, Store, StoreError};

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum JobKind {
    Create,
    Add,
    Remove,
    Import,
    Enrich,
    Compact,
}

impl JobKind {
    pub const ALL: [JobKind; 6] = [Self::Create, Self::Add, Self::Remove, Self::Import, Self::Enrich, Self::Compact];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Import => "import",
            Self::Enrich => "enrich",
            Self::Compact => "compact",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// Where a job is in its life; the last three are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [Self::Queued, Self::Running, Self::Succeeded, Self::Failed, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// A job as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    pub state: JobState,
    /// `queued`, `rendering`, `committing`, `compacting`, `enriching`, `done`.
    pub phase: String,
    /// The training file it changes (create, add, remove, compact).
    pub training_file_id: Option<String>,
    /// Conversations done of `total`.
    pub done: i64,
    pub total: i64,
    /// Bytes written so far.
    pub bytes: i64,
    /// Claims so far: more than one when a worker died or let go mid-job.
    pub attempts: i64,
    /// What failed, for people.
    pub error: Option<String>,
    /// What it made: `{"training_file_id", "version"}` for file jobs, counts for enrich.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<Value>,
    /// The work asked for: the file, the conversation removed, and for a
    /// create or add `conversation_count` in place of the ids (the file's
    /// members list them; a create of 100 000 named 3.7 MB of ids, which
    /// went out with every answer about the job).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    #[serde(serialize_with = "input_as_shown")]
    pub input: Value,
    /// Whether a cancel was asked for while it ran (it stops before it commits).
    pub cancel_requested: bool,
    /// Seconds left at the pace so far, while it runs.
    pub eta_seconds: Option<f64>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub updated_at: String,
    #[serde(skip)]
    pub owner_id: String,
    #[serde(skip)]
    pub claimed_by: Option<String>,
}

impl Job {
    pub fn is_final(&self) -> bool {
        self.state.is_final()
    }
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    kind: String,
    owner_id: String,
    training_file_id: Option<String>,
    input: String,
    state: String,
    phase: String,
    done: i64,
    total: i64,
    bytes: i64,
    attempts: i64,
    error: Option<String>,
    result: Option<String>,
    cancel_requested: i64,
    claimed_by: Option<String>,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    updated_at: String,
}

const JOB_COLUMNS: &str = "id, kind, owner_id, training_file_id, input, state, phase, done, total, bytes, attempts, error, result, \
    cancel_requested, claimed_by, created_at, started_at, finished_at, updated_at";

impl TryFrom<JobRow> for Job {
    type Error = StoreError;

    fn try_from(row: JobRow) -> Result<Self, StoreError> {
        let bad = |what: &str, text: &str| StoreError::Internal(format!("job {}: bad {what} {text:?} in the catalogue", row.id));
        let kind = JobKind::parse(&row.kind).ok_or_else(|| bad("kind", &row.kind))?;
        let state = JobState::parse(&row.state).ok_or_else(|| bad("state", &row.state))?;
        let input = serde_json::from_str(&row.input).map_err(|_| bad("input", &row.input))?;
        let result = row.result.as_deref().map(serde_json::from_str).transpose().map_err(|_| bad("result", row.result.as_deref().unwrap_or("")))?;
        let eta_seconds = match (&row.started_at, state) {
            (Some(started), JobState::Running) if row.done > 0 && row.total > row.done => {
                let elapsed = (chrono::Utc::now() - crate::training_files::parse_time(started)?).num_milliseconds().max(0) as f64 / 1000.0;
                Some((elapsed / row.done as f64 * (row.total - row.done) as f64 * 10.0).round() / 10.0)
            }
            _ => None,
        };
        Ok(Self {
            id: row.id,
            kind,
            state,
            phase: row.phase,
            training_file_id: row.training_file_id,
            done: row.done,
            total: row.total,
            bytes: row.bytes,
            attempts: row.attempts,
            error: row.error,
            result,
            input,
            cancel_requested: row.cancel_requested != 0,
            eta_seconds,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            updated_at: row.updated_at,
            owner_id: row.owner_id,
            claimed_by: row.claimed_by,
        })
    }
}

/// A job's input as the API shows it: `conversation_ids` as their count.
fn input_as_shown<S: serde::Serializer>(input: &Value, serializer: S) -> Result<S::Ok, S::Error> {
    let Value::Object(fields) = input else { return input.serialize(serializer) };
    let mut shown = serde_json::Map::with_capacity(fields.len());
    for (name, value) in fields {
        match (name.as_str(), value) {
            ("conversation_ids", Value::Array(ids)) => {
                shown.insert("conversation_count".to_owned(), Value::from(ids.len()));
            }
            _ => {
                shown.insert(name.clone(), value.clone());
            }
        }
    }
    shown.serialize(serializer)
}

/// The input of the jobs that change a training file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct FileInput {
    pub training_file_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conversation_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
}

/// The input of an enrich job.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct EnrichInput {
    pub conversation_ids: Vec<String>,
}

/// A job this worker holds: what it runs and the claim its writes are conditional on.
#[derive(Clone, Debug)]
pub struct Claim {
    pub job: Job,
    pub worker: String,
    pub lease: Duration,
}

/// What a renewal found: the claim is still ours or not; a cancel was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    Held { cancel_requested: bool },
    Lost,
}

/// Progress as the worker writes it with each renewal.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub phase: String,
    pub done: i64,
    pub total: i64,
    pub bytes: i64,
}

/// The job service; get one with [`Store::jobs`].
#[derive(Clone, Copy)]
pub struct Jobs<'s> {
    store: &'s Store,
}

impl<'s> Jobs<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Reserves the file (checked as a direct create checks it: name, ids,
    /// eligibility) and queues the job that writes its first version.
    pub async fn enqueue_create(self, owner: &str, name: &str, description: Option<&str>, conversation_ids: &[String]) -> Result<(Job, TrainingFile), StoreError> {
        let files = self.store.training_files();
        let file = files.reserve(owner, name, description, conversation_ids).await?;
        let conversation_ids: Vec<String> = conversation_ids.iter().map(|id| crate::ids::canonical_or_same(id)).collect();
        let input = FileInput { training_file_id: file.id.clone(), conversation_ids, conversation_id: None };
        match self.enqueue(owner, JobKind::Create, Some(&file.id), &input, input.conversation_ids.len()).await {
            Ok(job) => Ok((job, file)),
            Err(error) => {
                files.abandon_create(owner, &file.id, false).await?;
                Err(error)
            }
        }
    }

    /// Checks an add (refused at once as a direct add would be) and queues it.
    pub async fn enqueue_add(self, owner: &str, file_id: &str, conversation_ids: &[String]) -> Result<(Job, TrainingFile), StoreError> {
        let (file, conversation_ids) = self.store.training_files().check_add(owner, file_id, conversation_ids).await?;
        let total = conversation_ids.len();
        let input = FileInput { training_file_id: file.id.clone(), conversation_ids, conversation_id: None };
        Ok((self.enqueue(owner, JobKind::Add, Some(&file.id), &input, total).await?, file))
    }

    /// Queues the removal of a member (404 at once when it is not one).
    pub async fn enqueue_remove(self, owner: &str, file_id: &str, conversation_id: &str) -> Result<(Job, TrainingFile), StoreError> {
        let files = self.store.training_files();
        let file = files.get(owner, file_id).await?;
        let conversation_id = &crate::ids::canonical_or_same(conversation_id);
        if !files.holds(owner, file_id, conversation_id).await? {
            return Err(StoreError::NotFound);
        }
        if file.conversation_count <= 1 {
            return Err(StoreError::invalid("conversation_id", "a training file keeps at least one conversation; delete the file instead"));
        }
        let input = FileInput { training_file_id: file.id.clone(), conversation_ids: Vec::new(), conversation_id: Some(conversation_id.to_owned()) };
        Ok((self.enqueue(owner, JobKind::Remove, Some(file_id), &input, 1).await?, file))
    }

    /// Queues a compaction of the file's current version.
    pub async fn enqueue_compact(self, owner: &str, file_id: &str) -> Result<(Job, TrainingFile), StoreError> {
        let file = self.store.training_files().get(owner, file_id).await?;
        let input = FileInput { training_file_id: file.id.clone(), conversation_ids: Vec::new(), conversation_id: None };
        Ok((self.enqueue(owner, JobKind::Compact, Some(file_id), &input, 0).await?, file))
    }

    /// Queues the enrichment of `conversation_ids`.
    pub async fn enqueue_enrich(self, owner: &str, conversation_ids: &[String]) -> Result<Job, StoreError> {
        if conversation_ids.is_empty() {
            return Err(StoreError::invalid("conversation_ids", "must name at least one conversation"));
        }
        self.enqueue(owner, JobKind::Enrich, None, &EnrichInput { conversation_ids: conversation_ids.to_vec() }, conversation_ids.len()).await
    }

    async fn enqueue(self, owner: &str, kind: JobKind, file_id: Option<&str>, input: &impl Serialize, total: usize) -> Result<Job, StoreError> {
        let (id, now) = (new_id(), now_text());
        let mut tx = self.store.catalogue.begin_as(owner).await?;
        sqlx::query(
            "INSERT INTO jobs (id, kind, owner_id, training_file_id, input, state, phase, total, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'queued', 'queued', $6, $7, $7)",
        )
        .bind(&id)
        .bind(kind.as_str())
        .bind(owner)
        .bind(file_id)
        .bind(json_text(input))
        .bind(total as i64)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.get(owner, &id).await
    }

    pub async fn get(self, owner: &str, id: &str) -> Result<Job, StoreError> {
        let mut tx = self.store.catalogue.begin_as(owner).await?;
        let row: Option<JobRow> = sqlx::query_as(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND owner_id = $2"))
            .bind(id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// `owner`'s jobs, newest first; only those in `state` when given, only
    /// those on `file_id` when given.
    pub async fn list(self, owner: &str, state: Option<JobState>, file_id: Option<&str>, limit: i64) -> Result<Vec<Job>, StoreError> {
        let mut tx = self.store.catalogue.begin_as(owner).await?;
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE owner_id = $1 AND (CAST($2 AS TEXT) IS NULL OR state = $2) AND (CAST($3 AS TEXT) IS NULL OR training_file_id = $3) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        ))
        .bind(owner)
        .bind(state.map(JobState::as_str))
        .bind(file_id)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter().map(Job::try_from).collect()
    }

    /// A page of `owner`'s jobs, newest first (only those in `state` when
    /// given), continuing after `cursor` as the other lists do.
    pub async fn page(self, owner: &str, state: Option<JobState>, limit: i64, cursor: Option<&str>) -> Result<crate::records::Page<Job>, StoreError> {
        let (after_time, after_id) = crate::paging::decode_cursor(cursor)?;
        let mut tx = self.store.catalogue.begin_as(owner).await?;
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE owner_id = $1 AND (CAST($2 AS TEXT) IS NULL OR state = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR created_at < $3 OR (created_at = $3 AND id < $4)) \
             ORDER BY created_at DESC, id DESC LIMIT $5"
        ))
        .bind(owner)
        .bind(state.map(JobState::as_str))
        .bind(after_time)
        .bind(after_id)
        .bind(limit + 1)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut jobs = rows.into_iter().map(Job::try_from).collect::<Result<Vec<_>, _>>()?;
        Ok(crate::paging::page(&mut jobs, limit, |job| (job.created_at.clone(), job.id.clone())))
    }

    /// Cancels a job: a queued one at once (a reserved file is taken back);
    /// a running one is asked to stop, which it does before it commits.
    /// A finished job is returned as it is.
    pub async fn cancel(self, owner: &str, id: &str) -> Result<Job, StoreError> {
        let now = now_text();
        let mut tx = self.store.catalogue.begin_as(owner).await?;
        let cancelled = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', phase = 'done', cancel_requested = 1, finished_at = $1, updated_at = $1 \
             WHERE id = $2 AND owner_id = $3 AND state = 'queued'",
        )
        .bind(&now)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !cancelled {
            sqlx::query("UPDATE jobs SET cancel_requested = 1, updated_at = $1 WHERE id = $2 AND owner_id = $3 AND state = 'running'")
                .bind(&now)
                .bind(id)
                .bind(owner)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let job = self.get(owner, id).await?;
        if cancelled && job.kind == JobKind::Create {
            if let Some(file_id) = &job.training_file_id {
                self.store.training_files().abandon_create(owner, file_id, false).await?;
            }
        }
        Ok(job)
    }

    /// The job once it is final, or as it is after `timeout`.
    pub async fn wait(self, owner: &str, id: &str, timeout: Duration) -> Result<Job, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job = self.get(owner, id).await?;
            if job.is_final() || tokio::time::Instant::now() >= deadline {
                return Ok(job);
            }
            tokio::time::sleep_until((tokio::time::Instant::now() + POLL).min(deadline)).await;
        }
    }

    /// Takes the oldest job that is queued or whose lease ran out, for
    /// `lease`; `None` when there is none.
    pub async fn claim(self, worker: &str, lease: Duration) -> Result<Option<Claim>, StoreError> {
        let now = chrono::Utc::now();
        let until = timestamp_text(now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX));
        let now = timestamp_text(now);
        let sql = match self.store.catalogue.backend() {
            Backend::Postgres => format!("SELECT {JOB_COLUMNS} FROM lora_files_claim_job($1, $2, $3)"),
            Backend::Sqlite => format!(
                "UPDATE jobs SET state = 'running', claimed_by = $1, lease_until = $3, attempts = attempts + 1, \
                 started_at = COALESCE(started_at, $2), updated_at = $2 \
                 WHERE id = (SELECT j.id FROM jobs j WHERE j.state = 'queued' OR (j.state = 'running' AND j.lease_until < $2) \
                             ORDER BY j.created_at, j.id LIMIT 1) \
                 RETURNING {JOB_COLUMNS}"
            ),
        };
        let row: Option<JobRow> = sqlx::query_as(&sql).bind(worker).bind(&now).bind(&until).fetch_optional(self.store.catalogue.pool()).await?;
        Ok(match row {
            Some(row) => Some(Claim { job: row.try_into()?, worker: worker.to_owned(), lease }),
            None => None,
        })
    }

    /// Extends the claim by its lease and records progress.
    pub async fn renew(self, claim: &Claim, progress: &Snapshot) -> Result<Renewal, StoreError> {
        let now = chrono::Utc::now();
        let until = timestamp_text(now + chrono::Duration::from_std(claim.lease).unwrap_or(chrono::Duration::MAX));
        let mut tx = self.store.catalogue.begin_as(&claim.job.owner_id).await?;
        let row: Option<(i64,)> = sqlx::query_as(
            "UPDATE jobs SET lease_until = $1, phase = $2, done = $3, total = $4, bytes = $5, updated_at = $6 \
             WHERE id = $7 AND owner_id = $8 AND claimed_by = $9 AND state = 'running' RETURNING cancel_requested",
        )
        .bind(until)
        .bind(&progress.phase)
        .bind(progress.done)
        .bind(progress.total)
        .bind(progress.bytes)
        .bind(timestamp_text(now))
        .bind(&claim.job.id)
        .bind(&claim.job.owner_id)
        .bind(&claim.worker)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(match row {
            Some((cancel,)) => Renewal::Held { cancel_requested: cancel != 0 },
            None => Renewal::Lost,
        })
    }

    /// Ends a claimed job in `state`; `false` when the claim was no longer ours.
    pub async fn settle(self, claim: &Claim, state: JobState, progress: &Snapshot, result: Option<&Value>, error: Option<&str>) -> Result<bool, StoreError> {
        let now = now_text();
        let mut tx = self.store.catalogue.begin_as(&claim.job.owner_id).await?;
        let settled = sqlx::query(
            "UPDATE jobs SET state = $1, phase = 'done', done = $2, total = $3, bytes = $4, result = $5, error = $6, \
             lease_until = NULL, finished_at = $7, updated_at = $7 \
             WHERE id = $8 AND owner_id = $9 AND claimed_by = $10 AND state = 'running'",
        )
        .bind(state.as_str())
        .bind(progress.done)
        .bind(progress.total)
        .bind(progress.bytes)
        .bind(result.map(json_text))
        .bind(error)
        .bind(&now)
        .bind(&claim.job.id)
        .bind(&claim.job.owner_id)
        .bind(&claim.worker)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(settled)
    }

    /// Gives a claimed job back to the queue untouched (a worker shutting down).
    pub async fn release(self, claim: &Claim) -> Result<(), StoreError> {
        let now = now_text();
        let mut tx = self.store.catalogue.begin_as(&claim.job.owner_id).await?;
        sqlx::query(
            "UPDATE jobs SET state = 'queued', phase = 'queued', claimed_by = NULL, lease_until = NULL, updated_at = $1 \
             WHERE id = $2 AND owner_id = $3 AND claimed_by = $4 AND state = 'running'",
        )
        .bind(&now)
        .bind(&claim.job.id)
        .bind(&claim.job.owner_id)
        .bind(&claim.worker)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Jobs by kind and state over every owner (for metrics).
    pub async fn counts(self) -> Result<Vec<(JobKind, JobState, i64)>, StoreError> {
        let sql = match self.store.catalogue.backend() {
            Backend::Postgres => "SELECT kind, state, jobs FROM lora_files_job_counts()",
            Backend::Sqlite => "SELECT kind, state, count(*) FROM jobs GROUP BY kind, state",
        };
        let rows: Vec<(String, String, i64)> = sqlx::query_as(sql).fetch_all(self.store.catalogue.pool()).await?;
        Ok(rows.into_iter().filter_map(|(kind, state, n)| Some((JobKind::parse(&kind)?, JobState::parse(&state)?, n))).collect())
    }
}

/// How often waiting for a job looks at it again.
const POLL: Duration = Duration::from_millis(100);

#[cfg(test)]
mod input_tests {
    use super::*;

    #[test]
    fn a_change_shows_how_many_conversations_it_names_not_their_ids() {
        #[derive(Serialize)]
        struct Shown {
            #[serde(serialize_with = "input_as_shown")]
            input: Value,
        }
        let input = serde_json::json!({"training_file_id": "f", "conversation_ids": ["a", "b", "c"], "conversation_id": null});
        let shown = serde_json::to_value(Shown { input }).unwrap();
        assert_eq!(shown["input"], serde_json::json!({"training_file_id": "f", "conversation_count": 3, "conversation_id": null}));
        let other = serde_json::to_value(Shown { input: serde_json::json!({"limit": 5}) }).unwrap();
        assert_eq!(other["input"], serde_json::json!({"limit": 5}));
    }
}
