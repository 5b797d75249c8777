//! Workers: loops that claim jobs, renew their lease while the job body runs
//! (writing its progress with each renewal), and settle it. A body calls the
//! same services a request would, with a [`Progress`] that stops it before it
//! commits when the job is cancelled, the claim is lost or the worker is
//! shutting down; a job given up for shutdown goes back to the queue.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::{Claim, EnrichInput, FileInput, Job, JobKind, JobState, Renewal, Snapshot};
use crate::enrichment::EnrichOutcome;
use crate::progress::Progress;
use crate::{Store, StoreError, TrainingFile};

/// How workers run.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// Jobs run at once by this process.
    pub workers: usize,
    /// How long a claim lasts unless renewed; renewed every third of it.
    pub lease: Duration,
    /// How long an idle worker waits before it looks for work again.
    pub idle_poll: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self { workers: 2, lease: Duration::from_secs(60), idle_poll: Duration::from_millis(250) }
    }
}

/// What a finished job did, as the worker reports it to whoever watches (metrics).
#[derive(Clone, Debug)]
pub struct Finished {
    pub kind: JobKind,
    pub state: JobState,
    pub seconds: f64,
    pub bytes: u64,
}

/// Called once per settled job.
pub type OnFinished = Arc<dyn Fn(&Finished) + Send + Sync>;

/// Running workers; [`Workers::shutdown`] stops them, releasing what they hold.
pub struct Workers {
    stop: watch::Sender<bool>,
    loops: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    /// Starts `settings.workers` loops on `store` (none when zero).
    pub fn spawn(store: Store, settings: WorkerSettings, on_finished: Option<OnFinished>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let name = worker_name();
        let loops = (0..settings.workers)
            .map(|i| {
                let (store, settings, stopped, on_finished) = (store.clone(), settings.clone(), stopped.clone(), on_finished.clone());
                let name = format!("{name}/{i}");
                tokio::spawn(async move { run_loop(store, name, settings, stopped, on_finished).await })
            })
            .collect();
        Self { stop, loops }
    }

    /// Stops claiming; a job in flight stops before it commits and goes back
    /// to the queue (or finishes, if it was already committing).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for handle in self.loops {
            let _ = handle.await;
        }
    }
}

/// `host:pid:token`: which process holds a claim, for operators.
fn worker_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).unwrap_or_else(|| "worker".into());
    format!("{host}:{}:{}", std::process::id(), crate::token())
}

async fn run_loop(store: Store, name: String, settings: WorkerSettings, mut stopped: watch::Receiver<bool>, on_finished: Option<OnFinished>) {
    while !*stopped.borrow() {
        match store.jobs().claim(&name, settings.lease).await {
            Ok(Some(claim)) => {
                let finished = run_claim(&store, claim, stopped.clone()).await;
                if let (Some(finished), Some(report)) = (finished, &on_finished) {
                    report(&finished);
                }
            }
            Ok(None) => {
                tokio::select! {
                    () = tokio::time::sleep(settings.idle_poll) => {}
                    _ = stopped.changed() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "claiming a job failed; trying again");
                tokio::time::sleep(settings.idle_poll * 4).await;
            }
        }
    }
}

/// What the body reports, kept in memory and written with each renewal.
struct Tracker {
    phase: Mutex<&'static str>,
    done: AtomicU64,
    total: u64,
    bytes: AtomicU64,
    cancel: AtomicBool,
    lost: AtomicBool,
    stopping: AtomicBool,
}

impl Tracker {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            phase: (*self.phase.lock().expect("no panics while holding it")).to_owned(),
            done: self.done.load(Ordering::Relaxed) as i64,
            total: self.total as i64,
            bytes: self.bytes.load(Ordering::Relaxed) as i64,
        }
    }
}

impl Progress for Tracker {
    fn phase(&self, phase: &'static str) {
        // A change that starts again on a newer version renders again.
        if phase == "rendering" {
            self.done.store(0, Ordering::Relaxed);
        }
        *self.phase.lock().expect("no panics while holding it") = phase;
    }

    fn advanced(&self, conversations: u64, bytes: u64) {
        self.done.fetch_add(conversations, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.lost.load(Ordering::Relaxed) {
            Err(StoreError::Cancelled("another worker took the job over"))
        } else if self.cancel.load(Ordering::Relaxed) {
            Err(StoreError::Cancelled("cancelled"))
        } else if self.stopping.load(Ordering::Relaxed) {
            Err(StoreError::Cancelled("the worker is shutting down"))
        } else {
            Ok(())
        }
    }
}

/// Runs one claimed job to a final state (or back to the queue); what it did, when it settled.
async fn run_claim(store: &Store, claim: Claim, mut stopped: watch::Receiver<bool>) -> Option<Finished> {
    let started = Instant::now();
    let tracker = Arc::new(Tracker {
        phase: Mutex::new("starting"),
        done: AtomicU64::new(0),
        total: claim.job.total.max(0) as u64,
        bytes: AtomicU64::new(0),
        cancel: AtomicBool::new(claim.job.cancel_requested),
        lost: AtomicBool::new(false),
        stopping: AtomicBool::new(false),
    });
    let heartbeat = {
        let (store, claim, tracker) = (store.clone(), claim.clone(), tracker.clone());
        let tick = (claim.lease / 3).min(Duration::from_millis(500));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(tick) => {}
                    _ = stopped.changed() => tracker.stopping.store(true, Ordering::Relaxed),
                }
                if *stopped.borrow() {
                    tracker.stopping.store(true, Ordering::Relaxed);
                }
                match store.jobs().renew(&claim, &tracker.snapshot()).await {
                    Ok(Renewal::Held { cancel_requested }) => tracker.cancel.store(cancel_requested, Ordering::Relaxed),
                    Ok(Renewal::Lost) => {
                        tracker.lost.store(true, Ordering::Relaxed);
                        return;
                    }
                    Err(error) => tracing::warn!(job = %claim.job.id, %error, "renewing a claim failed; trying again"),
                }
            }
        })
    };
    tracing::info!(job = %claim.job.id, kind = claim.job.kind.as_str(), attempt = claim.job.attempts, "running a job");
    let outcome = run_body(store, &claim.job, &*tracker).await;
    heartbeat.abort();
    let _ = heartbeat.await;
    if tracker.lost.load(Ordering::Relaxed) {
        tracing::warn!(job = %claim.job.id, "the claim ran out while the job ran; another worker has it");
        return None;
    }
    let jobs = store.jobs();
    let snapshot = tracker.snapshot();
    let files = store.training_files();
    let (state, result, error) = match outcome {
        Ok(result) => (JobState::Succeeded, Some(result), None),
        Err(StoreError::Cancelled(_)) if !tracker.cancel.load(Ordering::Relaxed) && tracker.stopping.load(Ordering::Relaxed) => {
            if let Err(error) = jobs.release(&claim).await {
                tracing::warn!(job = %claim.job.id, %error, "could not release a job; it is taken again when its claim runs out");
            }
            return None;
        }
        Err(StoreError::Cancelled(_)) => {
            if let (JobKind::Create, Some(file_id)) = (claim.job.kind, &claim.job.training_file_id) {
                if let Err(error) = files.abandon_create(&claim.job.owner_id, file_id, false).await {
                    tracing::warn!(job = %claim.job.id, %error, "could not take back the file of a cancelled create");
                }
            }
            (JobState::Cancelled, None, None)
        }
        Err(error) => {
            if let (JobKind::Create, Some(file_id)) = (claim.job.kind, &claim.job.training_file_id) {
                if let Err(error) = files.abandon_create(&claim.job.owner_id, file_id, true).await {
                    tracing::warn!(job = %claim.job.id, %error, "could not mark the file of a failed create");
                }
            }
            (JobState::Failed, None, Some(error.to_string()))
        }
    };
    match jobs.settle(&claim, state, &snapshot, result.as_ref(), error.as_deref()).await {
        Ok(true) => {
            tracing::info!(job = %claim.job.id, state = state.as_str(), error = error.as_deref().unwrap_or(""), "job settled");
            Some(Finished { kind: claim.job.kind, state, seconds: started.elapsed().as_secs_f64(), bytes: snapshot.bytes as u64 })
        }
        Ok(false) => None,
        Err(error) => {
            tracing::warn!(job = %claim.job.id, %error, "could not record how a job ended; it runs again when its claim runs out");
            None
        }
    }
}

/// The work of one job; idempotent, so a second run after a worker died
/// finds it done and says so.
async fn run_body(store: &Store, job: &Job, progress: &dyn Progress) -> Result<Value, StoreError> {
    progress.check()?;
    let owner = job.owner_id.as_str();
    let input = || serde_json::from_value::<FileInput>(job.input.clone()).map_err(|e| StoreError::Internal(format!("job {}: bad input: {e}", job.id)));
    let files = store.training_files().with_progress(progress);
    let file = match job.kind {
        JobKind::Create => {
            let input = input()?;
            files.fill(owner, &input.training_file_id, &input.conversation_ids).await?
        }
        JobKind::Add => {
            let input = input()?;
            let (file_id, ids) = (&input.training_file_id, &input.conversation_ids);
            if files.holds_all(owner, file_id, ids).await? {
                files.get(owner, file_id).await?
            } else {
                match files.add(owner, file_id, ids).await {
                    Err(StoreError::AlreadyInFile(_)) if files.holds_all(owner, file_id, ids).await? => files.get(owner, file_id).await?,
                    other => other?,
                }
            }
        }
        JobKind::Remove => {
            let input = input()?;
            let file_id = &input.training_file_id;
            let conversation_id = input.conversation_id.as_deref().unwrap_or_default();
            if !files.holds(owner, file_id, conversation_id).await? {
                files.get(owner, file_id).await?
            } else {
                match files.remove(owner, file_id, conversation_id).await {
                    Err(StoreError::NotFound) if !files.holds(owner, file_id, conversation_id).await? => files.get(owner, file_id).await?,
                    other => other?,
                }
            }
        }
        JobKind::Compact => {
            progress.phase("compacting");
            files.compact(owner, &input()?.training_file_id).await?
        }
        JobKind::Enrich => return enrich(store, job, progress).await,
        JobKind::Import => return Err(StoreError::invalid("kind", "import jobs are run by `lora-files import` where the files are")),
    };
    Ok(file_result(&file))
}

fn file_result(file: &TrainingFile) -> Value {
    json!({"training_file_id": file.id, "version": file.version, "conversation_count": file.conversation_count})
}

/// Enriches the job's conversations; cancelling stops between them (each
/// conversation's enrichment is its own commit). Any failure fails the job,
/// naming each conversation that failed.
async fn enrich(store: &Store, job: &Job, progress: &dyn Progress) -> Result<Value, StoreError> {
    let input: EnrichInput = serde_json::from_value(job.input.clone()).map_err(|e| StoreError::Internal(format!("job {}: bad input: {e}", job.id)))?;
    progress.phase("enriching");
    let (mut enriched, mut skipped, mut failures) = (0, 0, Vec::new());
    let mut runs = std::pin::pin!(store.enrichment().run_each(&job.owner_id, &input.conversation_ids));
    while let Some((id, result)) = runs.next().await {
        match result {
            Ok(run) => match run.outcome {
                EnrichOutcome::Enriched => enriched += 1,
                EnrichOutcome::Skipped => skipped += 1,
                EnrichOutcome::Failed => failures.push(format!("{id}: {}", run.conversation.enrichment_error.unwrap_or(run.conversation.enrichment_status))),
            },
            Err(StoreError::NotFound) => failures.push(format!("{id}: no such conversation")),
            Err(error) => failures.push(format!("{id}: {error}")),
        }
        progress.advanced(1, 0);
        progress.check()?;
    }
    if !failures.is_empty() {
        return Err(StoreError::Internal(format!(
            "{} of {} conversation(s) failed to enrich ({enriched} enriched, {skipped} already were): {}",
            failures.len(),
            input.conversation_ids.len(),
            failures.join("; ")
        )));
    }
    Ok(json!({"enriched": enriched, "skipped": skipped}))
}
