//! `/api/jobs`: background jobs as the API shows them (get, list, cancel, a
//! Server-Sent Events stream of progress), and how the original endpoints
//! answer with a job: 201/200 when it ends within `--sync-wait`, else 202.
//!
//! Without workers in this process (`serve --workers 0`) a request that does
//! not ask for `Prefer: respond-async` does its work in the request, as before
//! jobs (nothing would run the job while it waits); with the header the job is
//! queued for `lora-files worker` processes elsewhere.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;

use lora_files_store::{Job, JobState, TrainingFile};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::http::{page_limit, uuid_param, ApiQuery};
use crate::openapi::ErrorBody;
use crate::state::AppState;
use crate::training_files::TrainingFileBody;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/jobs", get(list_jobs))
        .route("/api/jobs/{id}", get(get_job))
        .route("/api/jobs/{id}/cancel", post(cancel_job))
        .route("/api/jobs/{id}/events", get(job_events))
}

/// `{"job": …}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct JobBody {
    pub job: Job,
}

/// The answer of a change still running: `{"job": …, "trainingFile": …}` (202).
#[derive(Serialize, utoipa::ToSchema)]
pub struct JobAccepted {
    pub job: Job,
    #[serde(rename = "trainingFile")]
    pub training_file: TrainingFile,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct JobList {
    pub jobs: Vec<Job>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobListQuery {
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`; every job when absent.
    #[param(pattern = "^(queued|running|succeeded|failed|cancelled)$")]
    pub state: Option<String>,
    /// 1–500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Whether the request asks for an answer at once (RFC 7240 `Prefer: respond-async`).
pub(crate) fn prefers_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|preference| preference.split(';').next().is_some_and(|token| token.trim().eq_ignore_ascii_case("respond-async")))
}

/// Whether a change asked for by `headers` goes through the queue (see the module doc).
pub(crate) fn queued(state: &AppState, headers: &HeaderMap) -> bool {
    state.settings.job_workers > 0 || prefers_async(headers)
}

/// Answers a queued change: `done` (201/200) with the file when the job
/// succeeds within the sync wait (none with `Prefer: respond-async`), an error
/// when it fails or is cancelled, else 202 with the job and the file as it is.
pub(crate) async fn answer(state: &AppState, user: &str, job: Job, done: StatusCode, headers: &HeaderMap) -> ApiResult<Response> {
    let asked_async = prefers_async(headers);
    let job = if asked_async { job } else { state.store.jobs().wait(user, &job.id, state.settings.sync_wait).await? };
    let file_id = job.training_file_id.clone().ok_or_else(|| ApiError::internal(format!("job {} names no training file", job.id)))?;
    match job.state {
        JobState::Succeeded => Ok((done, Json(TrainingFileBody::from(state.store.training_files().get(user, &file_id).await?))).into_response()),
        JobState::Failed => Err(job_failed(job)),
        JobState::Cancelled => Err(ApiError::new(StatusCode::CONFLICT, "cancelled", "the job was cancelled").with_details(json!({"job": job}))),
        JobState::Queued | JobState::Running => {
            let location = HeaderValue::from_str(&format!("/api/jobs/{}", job.id)).map_err(ApiError::internal)?;
            let training_file = state.store.training_files().get(user, &file_id).await?;
            let mut response = (StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(JobAccepted { job, training_file })).into_response();
            if asked_async {
                response.headers_mut().insert("preference-applied", HeaderValue::from_static("respond-async"));
            }
            Ok(response)
        }
    }
}

/// 422 `job_failed`: the job's error, and the job in `details`.
fn job_failed(job: Job) -> ApiError {
    let message = job.error.clone().unwrap_or_else(|| "the job failed".to_owned());
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "job_failed", message).with_details(json!({"job": job}))
}

/// One of the caller's jobs.
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs", params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = JobBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_job(State(state): State<AppState>, AuthUser(user): AuthUser, Path(id): Path<String>) -> ApiResult<Json<JobBody>> {
    let id = uuid_param("id", &id)?;
    Ok(Json(JobBody { job: state.store.jobs().get(&user, &id).await? }))
}

/// The caller's jobs, newest first.
#[utoipa::path(get, path = "/api/jobs", tag = "jobs", params(JobListQuery),
    responses((status = 200, body = JobList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_jobs(State(state): State<AppState>, AuthUser(user): AuthUser, ApiQuery(query): ApiQuery<JobListQuery>) -> ApiResult<Json<JobList>> {
    let limit = page_limit(query.limit)?;
    let job_state = match query.state.as_deref() {
        None => None,
        Some(text) => Some(JobState::parse(text).ok_or_else(|| ApiError::field("state", "must be queued, running, succeeded, failed or cancelled"))?),
    };
    let page = state.store.jobs().page(&user, job_state, limit, query.cursor.as_deref()).await?;
    Ok(Json(JobList { jobs: page.items, next_cursor: page.next_cursor }))
}

/// Cancels a job: a queued one at once (a file it would have created is
/// taken back); a running one stops before it commits. A finished job is
/// answered as it is.
#[utoipa::path(post, path = "/api/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = JobBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn cancel_job(State(state): State<AppState>, AuthUser(user): AuthUser, Path(id): Path<String>) -> ApiResult<Json<JobBody>> {
    let id = uuid_param("id", &id)?;
    Ok(Json(JobBody { job: state.store.jobs().cancel(&user, &id).await? }))
}

/// How often the event stream looks at its job.
const EVENT_POLL: Duration = Duration::from_millis(250);

/// The job's progress as Server-Sent Events: a `progress` event (data: the
/// job) whenever it changed, then one event named after its final state
/// (`succeeded`, `failed`, `cancelled`) and the end of the stream.
#[utoipa::path(get, path = "/api/jobs/{id}/events", tag = "jobs", params(("id" = String, Path, format = Uuid)),
    responses((status = 200, content_type = "text/event-stream", body = JobEvent, description = "`event: progress` with the job as data while it runs, then one `event: succeeded|failed|cancelled`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn job_events(State(state): State<AppState>, AuthUser(user): AuthUser, Path(id): Path<String>) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let id = uuid_param("id", &id)?;
    let first = state.store.jobs().get(&user, &id).await?;
    Ok(Sse::new(progress_events(state, user, first)).keep_alive(KeepAlive::default()))
}

/// One event of a job's stream, as the OpenAPI document describes it (each
/// is written by [`job_event`]).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct JobEvent {
    /// `progress` while the job runs, then its final state: `succeeded`,
    /// `failed` or `cancelled` (`error` when the job could not be read).
    #[schema(pattern = "^(progress|succeeded|failed|cancelled|error)$")]
    event: String,
    /// When the job last changed (RFC 3339).
    id: Option<String>,
    /// The job as `GET /api/jobs/{id}` answers it (`{"error"}` for `error`), as JSON text.
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// What the stream remembers between polls.
enum Watch {
    Changed(Job),
    Waiting(Job),
    Ended,
}

fn progress_events(state: AppState, user: String, first: Job) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(Watch::Changed(first), move |watch| {
        let (state, user) = (state.clone(), user.clone());
        async move {
            let mut last = match watch {
                Watch::Ended => return None,
                Watch::Changed(job) => return Some((Ok(job_event(&job)), if job.is_final() { Watch::Ended } else { Watch::Waiting(job) })),
                Watch::Waiting(job) => job,
            };
            loop {
                tokio::time::sleep(EVENT_POLL).await;
                let job = match state.store.jobs().get(&user, &last.id).await {
                    Ok(job) => job,
                    Err(error) => {
                        tracing::warn!(job = %last.id, %error, "reading a job for its event stream failed");
                        let event = Event::default().event("error").json_data(json!({"error": "could not read the job"})).expect("JSON serialises");
                        return Some((Ok(event), Watch::Ended));
                    }
                };
                if (job.state, &job.phase, job.done, job.total, job.bytes) != (last.state, &last.phase, last.done, last.total, last.bytes) {
                    return Some((Ok(job_event(&job)), if job.is_final() { Watch::Ended } else { Watch::Waiting(job) }));
                }
                last = job;
            }
        }
    })
}

fn job_event(job: &Job) -> Event {
    let name = if job.is_final() { job.state.as_str() } else { "progress" };
    Event::default().event(name).id(job.updated_at.clone()).json_data(job).expect("a job serialises")
}
