//! The job queue and its workers, run on SQLite and on PostgreSQL.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::TestStore;
use lora_files_store::jobs::worker::{WorkerSettings, Workers};
use lora_files_store::progress::Progress;
use lora_files_store::training_files::DownloadFormat;
use lora_files_store::{on_both_backends, JobState, StoreError};
use serde_json::Value;

fn settings(workers: usize) -> WorkerSettings {
    WorkerSettings { workers, lease: Duration::from_secs(5), idle_poll: Duration::from_millis(20) }
}

/// The `conversations` and JSONL lines of a file's current version.
async fn content(t: &TestStore, owner: &str, file_id: &str) -> (Value, String) {
    let full: Value = serde_json::from_slice(&t.download(owner, file_id, DownloadFormat::Json, None).await).unwrap();
    let jsonl = String::from_utf8(t.download(owner, file_id, DownloadFormat::Jsonl, None).await.to_vec()).unwrap();
    (full["conversations"].clone(), jsonl)
}

async fn a_queued_create_runs_on_a_worker_like_a_direct_create(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 4).await;
    let (job, file) = t.store.jobs().enqueue_create(&t.alice, "queued", None, &ids).await.unwrap();
    assert_eq!((job.state, job.total, file.status.as_str(), file.version), (JobState::Queued, 4, "processing", 0));
    let workers = Workers::spawn(t.store.clone(), settings(1), None);
    let job = t.store.jobs().wait(&t.alice, &job.id, Duration::from_secs(30)).await.unwrap();
    workers.shutdown().await;
    assert_eq!((job.state, job.done, job.attempts), (JobState::Succeeded, 4, 1), "{job:?}");
    assert!(job.bytes > 0);
    assert_eq!(job.result.as_ref().unwrap()["version"], 1);
    let file = t.store.training_files().get(&t.alice, &file.id).await.unwrap();
    assert_eq!((file.status.as_str(), file.version, file.conversation_count), ("active", 1, 4));
    let direct = t.store.training_files().create(&t.alice, "direct", None, &ids).await.unwrap();
    assert_eq!(content(t, &t.alice, &file.id).await, content(t, &t.alice, &direct.id).await);
}

async fn a_job_whose_worker_died_is_taken_again_and_done_once(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 3).await;
    let file = t.store.training_files().create(&t.alice, "f", None, &ids[..1]).await.unwrap();
    let (job, _) = t.store.jobs().enqueue_add(&t.alice, &file.id, &ids[1..]).await.unwrap();
    // A worker claims it with a short lease and dies after the add committed
    // but before it recorded so.
    // The lease outlasts the add even on a loaded machine (a 300 ms one did not).
    let lease = Duration::from_secs(3);
    let claimed = std::time::Instant::now();
    let dead = t.store.jobs().claim("dead-worker", lease).await.unwrap().unwrap();
    assert_eq!(dead.job.id, job.id);
    t.store.training_files().add(&t.alice, &file.id, &ids[1..]).await.unwrap();
    if claimed.elapsed() < lease {
        assert!(t.store.jobs().claim("other", Duration::from_secs(5)).await.unwrap().is_none(), "a held claim is not taken");
    }
    tokio::time::sleep(lease.saturating_sub(claimed.elapsed()) + Duration::from_millis(100)).await;
    let workers = Workers::spawn(t.store.clone(), settings(1), None);
    let job = t.store.jobs().wait(&t.alice, &job.id, Duration::from_secs(30)).await.unwrap();
    workers.shutdown().await;
    assert_eq!((job.state, job.attempts), (JobState::Succeeded, 2), "{job:?}");
    let versions = t.store.training_files().versions(&t.alice, &file.id).await.unwrap();
    assert_eq!(versions.len(), 2, "the add landed once");
    // The dead worker's late report changes nothing.
    assert!(!t.store.jobs().settle(&dead, JobState::Failed, &Default::default(), None, Some("late")).await.unwrap());
    assert_eq!(t.store.jobs().get(&t.alice, &job.id).await.unwrap().state, JobState::Succeeded);
}

async fn cancelling_a_queued_create_leaves_nothing(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 2).await;
    let (job, file) = t.store.jobs().enqueue_create(&t.alice, "never", None, &ids).await.unwrap();
    let job = t.store.jobs().cancel(&t.alice, &job.id).await.unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert!(matches!(t.store.training_files().get(&t.alice, &file.id).await, Err(StoreError::NotFound)));
    assert!(t.store.jobs().claim("w", Duration::from_secs(5)).await.unwrap().is_none(), "a cancelled job is not run");
    // The name is free again.
    t.store.training_files().create(&t.alice, "never", None, &ids).await.unwrap();
}

async fn a_running_job_cancelled_stops_before_it_commits(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 3).await;
    let (job, file) = t.store.jobs().enqueue_create(&t.alice, "stopped", None, &ids).await.unwrap();
    let dead = t.store.jobs().claim("dead-worker", Duration::from_millis(300)).await.unwrap().unwrap();
    let asked = t.store.jobs().cancel(&t.alice, &job.id).await.unwrap();
    assert_eq!((asked.state, asked.cancel_requested), (JobState::Running, true));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let workers = Workers::spawn(t.store.clone(), settings(1), None);
    let job = t.store.jobs().wait(&t.alice, &job.id, Duration::from_secs(30)).await.unwrap();
    workers.shutdown().await;
    assert_eq!(job.state, JobState::Cancelled, "{job:?}");
    assert!(matches!(t.store.training_files().get(&t.alice, &file.id).await, Err(StoreError::NotFound)));
    assert!(t.objects(&format!("training-files/{}", file.id)).await.is_empty(), "no object left");
    drop(dead);
}

/// Stops the change after `after` conversations, as a cancelled job does.
struct StopAfter {
    after: u64,
    done: AtomicU64,
}

impl Progress for StopAfter {
    fn phase(&self, _: &'static str) {}
    fn advanced(&self, conversations: u64, _: u64) {
        self.done.fetch_add(conversations, Ordering::SeqCst);
    }
    fn check(&self) -> Result<(), StoreError> {
        if self.done.load(Ordering::SeqCst) >= self.after { Err(StoreError::Cancelled("cancelled")) } else { Ok(()) }
    }
}

async fn a_cancelled_add_leaves_the_previous_version_and_no_objects(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 6).await;
    let file = t.store.training_files().create(&t.alice, "kept", None, &ids[..2]).await.unwrap();
    let before = content(t, &t.alice, &file.id).await;
    let objects = t.objects("training-files").await;
    let stop = StopAfter { after: 2, done: AtomicU64::new(0) };
    let result = t.store.training_files().with_progress(&stop).add(&t.alice, &file.id, &ids[2..]).await;
    assert!(matches!(result, Err(StoreError::Cancelled(_))), "{result:?}");
    assert_eq!(stop.done.load(Ordering::SeqCst), 2, "it stopped mid-way");
    assert_eq!(t.store.training_files().get(&t.alice, &file.id).await.unwrap(), file);
    assert_eq!(content(t, &t.alice, &file.id).await, before);
    assert_eq!(t.objects("training-files").await, objects, "what it wrote was deleted");
}

async fn a_failed_create_leaves_the_file_failed_with_the_jobs_error(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 2).await;
    let (job, file) = t.store.jobs().enqueue_create(&t.alice, "doomed", None, &ids).await.unwrap();
    // The source disappears between the request and the work.
    let source = t.store.conversations().get(&t.alice, &ids[1]).await.unwrap().unwrap();
    t.delete_object(source.enriched_file_path.as_deref().unwrap()).await;
    let workers = Workers::spawn(t.store.clone(), settings(1), None);
    let job = t.store.jobs().wait(&t.alice, &job.id, Duration::from_secs(30)).await.unwrap();
    workers.shutdown().await;
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    assert!(job.error.as_deref().unwrap().contains("storage"), "{job:?}");
    assert_eq!(t.store.training_files().get(&t.alice, &file.id).await.unwrap().status, "failed");
}

async fn jobs_are_listed_by_state_and_hidden_from_others(t: &TestStore) {
    let ids = t.import_copies(&t.alice, 2).await;
    let (first, _) = t.store.jobs().enqueue_create(&t.alice, "a", None, &ids).await.unwrap();
    let (second, _) = t.store.jobs().enqueue_create(&t.alice, "b", None, &ids).await.unwrap();
    t.store.jobs().cancel(&t.alice, &first.id).await.unwrap();
    let queued = t.store.jobs().list(&t.alice, Some(JobState::Queued), None, 50).await.unwrap();
    assert_eq!(queued.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), [second.id.as_str()]);
    assert_eq!(t.store.jobs().list(&t.alice, None, None, 50).await.unwrap().len(), 2);
    assert!(t.store.jobs().list(&t.bob, None, None, 50).await.unwrap().is_empty());
    assert!(matches!(t.store.jobs().get(&t.bob, &second.id).await, Err(StoreError::NotFound)));
    assert_eq!(t.store.jobs().cancel(&t.bob, &second.id).await.map(|_| ()).unwrap_err().to_string(), "not found");
    let counts = t.store.jobs().counts().await.unwrap();
    assert_eq!(counts.iter().map(|(_, _, n)| n).sum::<i64>(), 2);
}

on_both_backends!(
    a_queued_create_runs_on_a_worker_like_a_direct_create,
    a_job_whose_worker_died_is_taken_again_and_done_once,
    cancelling_a_queued_create_leaves_nothing,
    a_running_job_cancelled_stops_before_it_commits,
    a_cancelled_add_leaves_the_previous_version_and_no_objects,
    a_failed_create_leaves_the_file_failed_with_the_jobs_error,
    jobs_are_listed_by_state_and_hidden_from_others,
);
