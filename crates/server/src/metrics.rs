//! `GET /metrics` in the Prometheus text format (when `serve --metrics`):
//! requests by route and status with latency, jobs by kind and state, the
//! queue's depth, and the durations and bytes of the jobs this process ran.
//!
//! Aggregates only (no user, file or job ids), so the route needs no token;
//! it is off by default and answers 404 until turned on.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use lora_files_store::jobs::worker::{Finished, OnFinished};
use lora_files_store::{JobKind, JobState};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The process's metrics; the job figures are read from the catalogue when scraped.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    jobs: IntGaugeVec,
    queue_depth: IntGauge,
    job_seconds: HistogramVec,
    bytes_written: IntCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(Opts::new("lora_files_http_requests_total", "HTTP requests by route (the matched path), method and status"), &["route", "method", "status"])
            .expect("valid metric");
        let request_seconds = HistogramVec::new(HistogramOpts::new("lora_files_http_request_duration_seconds", "Time to answer a request (to its headers), by route and method"), &["route", "method"])
            .expect("valid metric");
        let jobs = IntGaugeVec::new(Opts::new("lora_files_jobs", "Jobs in the catalogue by kind and state (every process's)"), &["kind", "state"]).expect("valid metric");
        let queue_depth = IntGauge::new("lora_files_job_queue_depth", "Jobs queued and not yet claimed").expect("valid metric");
        let buckets = vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];
        let job_seconds = HistogramVec::new(HistogramOpts::new("lora_files_job_duration_seconds", "Time from claim to settle of the jobs this process ran").buckets(buckets), &["kind", "state"])
            .expect("valid metric");
        let bytes_written = IntCounter::new("lora_files_job_bytes_written_total", "Bytes of training-file objects written by the jobs this process ran").expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_seconds.clone()),
            Box::new(jobs.clone()),
            Box::new(queue_depth.clone()),
            Box::new(job_seconds.clone()),
            Box::new(bytes_written.clone()),
        ] {
            registry.register(collector).expect("each metric is registered once");
        }
        Self { registry, requests, request_seconds, jobs, queue_depth, job_seconds, bytes_written }
    }

    /// What a worker in this process calls when it settles a job.
    pub fn on_finished(self: &Arc<Self>) -> OnFinished {
        let metrics = self.clone();
        Arc::new(move |finished: &Finished| {
            metrics.job_seconds.with_label_values(&[finished.kind.as_str(), finished.state.as_str()]).observe(finished.seconds);
            metrics.bytes_written.inc_by(finished.bytes);
        })
    }

    fn observe_request(&self, route: &str, method: &str, status: StatusCode, seconds: f64) {
        self.requests.with_label_values(&[route, method, status.as_str()]).inc();
        self.request_seconds.with_label_values(&[route, method]).observe(seconds);
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Counts every request under its matched route (`/api/training-files/{id}`),
/// so ids never become labels; unmatched paths share one label.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !state.settings.metrics {
        return next.run(request).await;
    }
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |path| path.as_str()).to_owned();
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe_request(&route, method.as_str(), response.status(), started.elapsed().as_secs_f64());
    response
}

async fn metrics(State(state): State<AppState>) -> ApiResult<Response> {
    if !state.settings.metrics {
        return Err(ApiError::not_found());
    }
    let metrics = &state.metrics;
    let counts = state.store.jobs().counts().await?;
    for kind in JobKind::ALL {
        for job_state in JobState::ALL {
            let n = counts.iter().find(|(k, s, _)| *k == kind && *s == job_state).map_or(0, |(_, _, n)| *n);
            metrics.jobs.with_label_values(&[kind.as_str(), job_state.as_str()]).set(n);
        }
    }
    metrics.queue_depth.set(counts.iter().filter(|(_, s, _)| *s == JobState::Queued).map(|(_, _, n)| n).sum());
    let text = TextEncoder::new().encode_to_string(&metrics.registry.gather()).map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}
