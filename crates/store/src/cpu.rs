//! The store's CPU pool: one thread per core for CPU work that comes as
//! many small pieces (reading and rendering a change's conversations).
//!
//! Not tokio's blocking pool: it adds a thread whenever none is idle at
//! the instant a task arrives, so a blocking task per conversation grew it
//! to 35–70 threads during a create, and each thread's allocator kept the
//! pages of buffers other threads had freed: a create of 30 000 peaked at
//! 200 MB of RSS for 45 MB of live data (`docs/performance.md`). Here the
//! same few threads allocate and free a conversation's buffers.

use crate::StoreError;

type Job = Box<dyn FnOnce() + Send>;

/// A handle on the pool; its threads end when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct CpuPool {
    queue: flume::Sender<Job>,
}

impl CpuPool {
    /// A pool of one thread per core.
    pub fn new() -> Result<Self, StoreError> {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        // Room for a little work per thread: queueing more only holds more in memory.
        let (queue, jobs) = flume::bounded::<Job>(threads * 2);
        for n in 0..threads {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("lora-files-cpu-{n}"))
                .spawn(move || {
                    for job in jobs.iter() {
                        job();
                    }
                })
                .map_err(|e| StoreError::Internal(format!("cannot start a CPU thread: {e}")))?;
        }
        Ok(Self { queue })
    }

    /// Runs `work` on the pool (waiting while it is busy) and answers its
    /// result. `work` runs outside the async runtime, so it may block; when
    /// the caller has stopped waiting before its turn, it does not run.
    pub async fn compute<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, StoreError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job = move || {
            if answer.is_closed() {
                return;
            }
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ = answer.send(result);
        };
        self.queue.send_async(Box::new(job)).await.map_err(|_| StoreError::Internal("the CPU pool has stopped".into()))?;
        match answered.await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) => Err(StoreError::Internal("a computation panicked".into())),
            Err(_) => Err(StoreError::Internal("the CPU pool has stopped".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_in_order_and_survives_a_panicking_job() {
        let pool = CpuPool::new().unwrap();
        let answers = futures::future::join_all((0..64u64).map(|n| pool.compute(move || n * n))).await;
        assert_eq!(answers.into_iter().map(Result::unwrap).collect::<Vec<_>>(), (0..64u64).map(|n| n * n).collect::<Vec<_>>());
        let panicked = pool.compute(|| -> u8 { panic!("a bad conversation") }).await;
        assert!(matches!(panicked, Err(StoreError::Internal(message)) if message.contains("panicked")));
        assert_eq!(pool.compute(|| 7).await.unwrap(), 7, "the threads outlive a panic");
    }

    #[tokio::test]
    async fn runs_off_the_runtime_on_its_own_threads() {
        let pool = CpuPool::new().unwrap();
        let (in_runtime, name) = pool.compute(|| (tokio::runtime::Handle::try_current().is_ok(), std::thread::current().name().map(str::to_owned))).await.unwrap();
        assert!(!in_runtime, "object_store does a local store's I/O inline only outside a runtime");
        assert!(name.unwrap().starts_with("lora-files-cpu-"));
    }
}
