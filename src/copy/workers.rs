//! The decode threads: a fixed set of named threads that run jobs from one bounded queue.
//!
//! Not a work-stealing pool: an idle rayon worker yields the CPU dozens of times before it
//! sleeps, and these jobs come one at a time from a single producer, so workers are often idle.
//! On two cores shared with an OSD those yields cost real time (measured: 6,100 `sched_yield`s
//! in a 1 GiB sparse convert, 156,000 in a compressed 2 GiB import from a pipe). A worker
//! waiting here sleeps on the queue at once.
//!
//! A job that panics loses the piece it was making, so a panic must fail the copy: the worker
//! catches it, records it in [`Workers::failure`] (which the producer polls, so it stops
//! submitting) and goes on with the next job; [`Workers::finish`] returns it as an error.
//! `std::thread::scope` would not report it: it re-raises only panics of threads nobody joined.
use crate::error::{Error, Result};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};

/// A job: any work that may borrow from the enclosing scope.
pub(crate) type Job<'scope> = Box<dyn FnOnce() + Send + 'scope>;

/// Running decode threads; [`Workers::finish`] waits for every submitted job.
pub(crate) struct Workers<'scope> {
    queue: SyncSender<Job<'scope>>,
    threads: Vec<ScopedJoinHandle<'scope, ()>>,
    panicked: Arc<Panicked>,
}

/// The first panic of a job, if any.
#[derive(Default)]
struct Panicked {
    any: AtomicBool,
    first: Mutex<Option<String>>,
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
        let panicked = Arc::new(Panicked::default());
        let mut threads = Vec::with_capacity(n.max(1));
        for i in 0..n.max(1) {
            let (jobs, panicked) = (jobs.clone(), panicked.clone());
            // The thread waiting for a job holds the lock; the others sleep on it.
            let next = move || jobs.lock().unwrap_or_else(|e| e.into_inner()).recv().ok();
            let thread = std::thread::Builder::new()
                .name(format!("rbdkit-decode-{i}"))
                .spawn_scoped(scope, move || {
                    while let Some(job) = next() {
                        // The job owns everything it touches (its buffer, a sender): nothing
                        // it leaves half-done is seen again, so unwinding past it is sound.
                        if let Err(p) = catch_unwind(AssertUnwindSafe(job)) {
                            panicked.record(panic_message(p.as_ref()));
                        }
                    }
                })?;
            threads.push(thread);
        }
        Ok(Workers {
            queue,
            threads,
            panicked,
        })
    }

    /// Queues `job`, waiting while the queue is full.
    pub(crate) fn submit(&self, job: impl FnOnce() + Send + 'scope) {
        // The receiving end lives as long as the threads, which only end after `finish`.
        let _ = self.queue.send(Box::new(job));
    }

    /// True once a job has panicked: the copy is lost, stop submitting.
    pub(crate) fn failed(&self) -> bool {
        self.panicked.any.load(Ordering::Relaxed)
    }

    /// Closes the queue and waits until every job has run; an error if one panicked.
    pub(crate) fn finish(self) -> Result<()> {
        drop(self.queue);
        for t in self.threads {
            // Jobs cannot unwind out of the loop; a thread that still failed is a failure too.
            if let Err(p) = t.join() {
                self.panicked.record(panic_message(p.as_ref()));
            }
        }
        match self
            .panicked
            .first
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            Some(why) => Err(thread_panicked("a decode thread", &why)),
            None => Ok(()),
        }
    }
}

impl Panicked {
    fn record(&self, why: String) {
        self.first
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(why);
        self.any.store(true, Ordering::Relaxed);
    }
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// The error of a copy whose `who` (a thread of the engine) panicked: a bug, never a result.
pub(crate) fn thread_panicked(who: &str, why: &str) -> Error {
    Error::Other(format!(
        "copy failed: {who} panicked ({}): this is a bug in rbdkit, please report it",
        crate::text::escape(why)
    ))
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
            w.finish().unwrap();
            assert_eq!(count.load(Ordering::Relaxed), 100);
        });
    }

    #[test]
    fn a_panicking_job_fails_finish_and_the_others_still_run() {
        let count = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let w = Workers::start(s, 2).unwrap();
            for i in 0..20 {
                let count = &count;
                w.submit(move || {
                    if i == 7 {
                        panic!("job {i} broke");
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                });
            }
            let e = w.finish().unwrap_err().to_string();
            assert!(e.contains("a decode thread panicked (job 7 broke)"), "{e}");
            assert_eq!(count.load(Ordering::Relaxed), 19);
        });
    }
}
