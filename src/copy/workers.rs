//! The decode threads: a fixed set of named threads that run jobs from one bounded queue.
//!
//! Not a work-stealing pool: an idle rayon worker yields the CPU dozens of times before it
//! sleeps, and these jobs come one at a time from a single producer, so workers are often idle.
//! On two cores shared with an OSD those yields cost real time (measured: 6,100 `sched_yield`s
//! in a 1 GiB sparse convert, 156,000 in a compressed 2 GiB import from a pipe). A worker
//! waiting here sleeps on the queue at once.
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};

/// A job: any work that may borrow from the enclosing scope.
pub(crate) type Job<'scope> = Box<dyn FnOnce() + Send + 'scope>;

/// Running decode threads; [`Workers::finish`] waits for every submitted job.
pub(crate) struct Workers<'scope> {
    queue: SyncSender<Job<'scope>>,
    threads: Vec<ScopedJoinHandle<'scope, ()>>,
}

impl<'scope> Workers<'scope> {
    /// Starts `n` threads named `rbdkit-decode-N` in `scope`. The queue holds `n` jobs, so a
    /// producer that runs ahead blocks in [`Workers::submit`].
    pub(crate) fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        n: usize,
    ) -> std::io::Result<Self> {
        let (queue, jobs) = sync_channel::<Job<'scope>>(n.max(1));
        let jobs = Arc::new(Mutex::new(jobs));
        let mut threads = Vec::with_capacity(n.max(1));
        for i in 0..n.max(1) {
            let jobs = jobs.clone();
            // The thread waiting for a job holds the lock; the others sleep on it.
            let next = move || jobs.lock().unwrap_or_else(|e| e.into_inner()).recv().ok();
            let thread = std::thread::Builder::new()
                .name(format!("rbdkit-decode-{i}"))
                .spawn_scoped(scope, move || {
                    while let Some(job) = next() {
                        job();
                    }
                })?;
            threads.push(thread);
        }
        Ok(Workers { queue, threads })
    }

    /// Queues `job`, waiting while the queue is full.
    pub(crate) fn submit(&self, job: impl FnOnce() + Send + 'scope) {
        // The receiving end lives as long as the threads, which only end after `finish`.
        let _ = self.queue.send(Box::new(job));
    }

    /// Closes the queue and waits until every job has run.
    pub(crate) fn finish(self) {
        drop(self.queue);
        for t in self.threads {
            // A panicking job is reported by the scope when it ends.
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_job_runs_before_finish_returns() {
        let count = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let w = Workers::start(s, 3).unwrap();
            for _ in 0..100 {
                w.submit(|| {
                    count.fetch_add(1, Ordering::Relaxed);
                });
            }
            w.finish();
            assert_eq!(count.load(Ordering::Relaxed), 100);
        });
    }
}
