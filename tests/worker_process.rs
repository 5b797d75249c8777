//! `lora-files worker` processes: a job survives a kill -9 of its worker and
//! is finished, once, by the next one.

use std::process::{Child, Command};
use std::time::Duration;

use lora_files_store::testing::{Backend, TestStore};
use lora_files_store::JobState;

/// Enough conversations that a create outlasts a few lease renewals (each
/// renewal writes the job's progress) even in a debug build on SQLite.
const COPIES: i64 = 1500;

fn worker(t: &TestStore) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lora-files"));
    command.args(["worker", "--workers", "1", "--job-claim-seconds", "2", "--data-dir"]).arg(t.dir.path()).env("RUST_LOG", "warn");
    if let Some(url) = &t.config.database_url {
        command.args(["--database-url", url]);
    }
    command.spawn().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_job_survives_kill_9_of_its_worker_and_finishes_once() {
    survives_kill_9(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_job_survives_kill_9_of_its_worker_and_finishes_once() {
    survives_kill_9(Backend::Postgres).await;
}

async fn survives_kill_9(backend: Backend) {
    let t = TestStore::new(backend).await;
    let ids = t.import_copies(&t.alice, COPIES as usize).await;
    let (job, file) = t.store.jobs().enqueue_create(&t.alice, "big", None, &ids).await.unwrap();
    let mut first = worker(&t);
    // Killed as soon as it holds the job: a create no longer counts tokens
    // inside the job, and waiting for its first progress report could see
    // the job end instead (it did, in CI).
    let mut seen_running = false;
    for _ in 0..6000 {
        let now = t.store.jobs().get(&t.alice, &job.id).await.unwrap();
        if now.state == JobState::Running {
            seen_running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let last = t.store.jobs().get(&t.alice, &job.id).await.unwrap();
    assert!(seen_running, "the worker never took the job: {last:?}");
    first.kill().unwrap();
    first.wait().unwrap();
    let mut second = worker(&t);
    let done = t.store.jobs().wait(&t.alice, &job.id, Duration::from_secs(120)).await.unwrap();
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!((done.state, done.attempts), (JobState::Succeeded, 2), "{done:?}");
    let file = t.store.training_files().get(&t.alice, &file.id).await.unwrap();
    assert_eq!((file.version, file.conversation_count, file.status.as_str()), (1, COPIES, "active"));
    assert_eq!(t.store.training_files().versions(&t.alice, &file.id).await.unwrap().len(), 1, "created once");
    t.cleanup().await;
}
