//! A bounded pool for CPU-heavy request work: signature checks, key and certificate parsing.
//!
//! Such work never runs on the async workers (a few slow requests would stall every service in
//! the process), and it never queues without limit: what waits is bounded in bytes of request
//! input, because a byte budget holds however the input is split into requests. Work that does
//! not fit is refused at once, so the caller can answer 503 instead of letting latency grow.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Default byte budget for queued plus running work: 64 full-size log entries.
pub const DEFAULT_QUEUED_BYTES: usize = 64 * 128 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorkError {
    /// The byte budget is spent: the server is at capacity for this kind of work.
    #[error("server is busy: more than {0} bytes of request work are waiting")]
    Busy(usize),
    /// The job panicked; the panic is logged and counted, never propagated.
    #[error("internal error while checking the request")]
    Panicked,
}

/// A cloneable handle to one pool.
#[derive(Clone, Debug)]
pub struct WorkPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// One permit per thread allowed to run jobs at once.
    threads: Semaphore,
    /// One permit per byte of input that may be queued or running.
    bytes: Semaphore,
    max_bytes: usize,
}

impl Default for WorkPool {
    fn default() -> Self {
        WorkPool::new(default_threads(), DEFAULT_QUEUED_BYTES)
    }
}

/// As many jobs at once as there are cores: more only adds context switches.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

impl WorkPool {
    pub fn new(threads: usize, max_queued_bytes: usize) -> WorkPool {
        // Permits are taken in u32 amounts, so the budget is one u32 at most.
        let max_bytes = max_queued_bytes.clamp(1, u32::MAX as usize);
        WorkPool {
            inner: Arc::new(Inner {
                threads: Semaphore::new(threads.max(1)),
                bytes: Semaphore::new(max_bytes),
                max_bytes,
            }),
        }
    }

    /// Runs `job` on a blocking thread once a thread slot is free, charging `cost` bytes
    /// against the budget until it finishes. A cost above the whole budget is charged as the
    /// whole budget, so one large job can still run when nothing else waits.
    pub async fn run<T, F>(&self, cost: usize, job: F) -> Result<T, WorkError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let charge = cost.clamp(1, self.inner.max_bytes) as u32;
        let _bytes = match self.inner.bytes.try_acquire_many(charge) {
            Ok(permit) => permit,
            Err(_) => {
                metrics::counter!("sigil_work_refused_total").increment(1);
                return Err(WorkError::Busy(self.inner.max_bytes));
            }
        };
        let _thread = self
            .inner
            .threads
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        match tokio::task::spawn_blocking(job).await {
            Ok(value) => Ok(value),
            Err(e) => {
                tracing::error!(error = %e, "request work panicked");
                metrics::counter!("sigil_panics_total", "where" => "work_pool").increment(1);
                Err(WorkError::Panicked)
            }
        }
    }

    /// Bytes of budget not in use (for tests and metrics).
    pub fn available_bytes(&self) -> usize {
        self.inner.bytes.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn runs_jobs_and_returns_their_values() {
        let pool = WorkPool::new(2, 1000);
        assert_eq!(pool.run(10, || 6 * 7).await, Ok(42));
        assert_eq!(pool.available_bytes(), 1000);
    }

    #[tokio::test]
    async fn refuses_work_beyond_the_byte_budget_and_recovers() {
        let pool = WorkPool::new(1, 100);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(80, move || {
                    wait.recv().ok();
                })
                .await
            })
        };
        // Let the first job take its 80 bytes.
        while pool.available_bytes() == 100 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(pool.run(30, || ()).await, Err(WorkError::Busy(100)));
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        assert_eq!(pool.run(30, || "ok").await, Ok("ok"));
    }

    #[tokio::test]
    async fn a_job_larger_than_the_budget_runs_alone() {
        let pool = WorkPool::new(1, 100);
        assert_eq!(pool.run(10_000, || 1).await, Ok(1));
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_frees_its_budget() {
        let pool = WorkPool::new(1, 100);
        let result: Result<(), _> = pool.run(50, || panic!("boom")).await;
        assert_eq!(result, Err(WorkError::Panicked));
        assert_eq!(pool.available_bytes(), 100);
    }

    #[tokio::test]
    async fn at_most_threads_jobs_run_at_once() {
        let pool = WorkPool::new(2, 1000);
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let jobs = (0..8).map(|_| {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            tokio::spawn(async move {
                pool.run(1, move || {
                    use std::sync::atomic::Ordering::SeqCst;
                    let now = running.fetch_add(1, SeqCst) + 1;
                    peak.fetch_max(now, SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, SeqCst);
                })
                .await
            })
        });
        for job in jobs.collect::<Vec<_>>() {
            job.await.unwrap().unwrap();
        }
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
