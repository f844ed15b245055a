//! Per-job measurement: HdrHistograms of latencies (reads and writes apart, as fio reports
//! them), completions per second, errors; merged across jobs into one result.
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Latencies are recorded in nanoseconds up to this (longer ones are clamped and counted).
const MAX_NS: u64 = 60_000_000_000;

/// What one direction (reads or writes) measured.
#[derive(Clone)]
pub struct DirRecorder {
    /// Latency histogram (ns).
    pub hist: Histogram<u64>,
    /// Completed I/Os (after the ramp).
    pub ios: u64,
    /// Bytes moved (after the ramp).
    pub bytes: u64,
    /// Completions in each second since the end of the ramp.
    pub per_second: Vec<u64>,
}

impl DirRecorder {
    fn new() -> DirRecorder {
        DirRecorder {
            // 3 significant figures: ~0.1 % error, like fio's log-linear buckets.
            hist: Histogram::new_with_bounds(1, MAX_NS, 3)
                .unwrap_or_else(|_| Histogram::new(3).expect("valid sigfig")),
            ios: 0,
            bytes: 0,
            per_second: Vec::new(),
        }
    }

    fn record(&mut self, ns: u64, bytes: u64, sec: usize) {
        let _ = self.hist.record(ns);
        self.ios += 1;
        self.bytes += bytes;
        add_at(&mut self.per_second, sec, 1);
    }

    fn merge(&mut self, other: &DirRecorder) {
        let _ = self.hist.add(&other.hist);
        self.ios += other.ios;
        self.bytes += other.bytes;
        merge_series(&mut self.per_second, &other.per_second);
    }
}

fn add_at(v: &mut Vec<u64>, i: usize, n: u64) {
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    v[i] += n;
}

fn merge_series(a: &mut Vec<u64>, b: &[u64]) {
    if a.len() < b.len() {
        a.resize(b.len(), 0);
    }
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// Completions and bytes of a running phase, shared by its jobs, read by the live status line
/// while the phase runs (the recorders are only merged at the end).
#[derive(Default)]
pub struct Live {
    /// Completed I/Os, ramp included.
    pub ios: AtomicU64,
    /// Bytes completed, ramp included.
    pub bytes: AtomicU64,
}

/// What one job measured.
pub struct Recorder {
    /// Reads.
    pub read: DirRecorder,
    /// Writes.
    pub write: DirRecorder,
    /// Failed I/Os.
    pub errors: u64,
    /// I/Os issued (ramp included): how far a block list was consumed.
    pub issued: u64,
    /// First error message, for the report.
    pub first_error: Option<String>,
    /// Completions (reads and writes) in each second since the end of the ramp.
    pub per_second: Vec<u64>,
    /// When the last I/O completed: after a time limit, how long the drain took.
    pub last_done: Option<Instant>,
    ramp_end: Instant,
    live: Option<Arc<Live>>,
}

impl Recorder {
    /// A recorder for a phase that started at `start` and ignores completions before `ramp_end`.
    pub fn new(start: Instant, ramp: Duration) -> Recorder {
        Recorder {
            read: DirRecorder::new(),
            write: DirRecorder::new(),
            errors: 0,
            issued: 0,
            first_error: None,
            per_second: Vec::new(),
            last_done: None,
            ramp_end: start + ramp,
            live: None,
        }
    }

    /// The same, also counting completions into `live` for the status line.
    pub fn with_live(start: Instant, ramp: Duration, live: Arc<Live>) -> Recorder {
        Recorder {
            live: Some(live),
            ..Recorder::new(start, ramp)
        }
    }

    /// Completed I/Os of both directions.
    pub fn ios(&self) -> u64 {
        self.read.ios + self.write.ios
    }

    /// Bytes of both directions.
    pub fn bytes(&self) -> u64 {
        self.read.bytes + self.write.bytes
    }

    /// Both directions in one histogram.
    pub fn hist(&self) -> Histogram<u64> {
        let mut h = self.read.hist.clone();
        let _ = h.add(&self.write.hist);
        h
    }

    /// Records one completed I/O submitted at `submitted`, done at `done`; `read` tells the
    /// direction.
    pub fn record(&mut self, submitted: Instant, done: Instant, bytes: u64, read: bool) {
        if let Some(l) = &self.live {
            l.ios.fetch_add(1, Ordering::Relaxed);
            l.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        self.last_done = Some(self.last_done.map_or(done, |d| d.max(done)));
        if done < self.ramp_end {
            return;
        }
        let ns = done
            .saturating_duration_since(submitted)
            .as_nanos()
            .clamp(1, MAX_NS as u128) as u64;
        let sec = done.saturating_duration_since(self.ramp_end).as_secs() as usize;
        if read {
            self.read.record(ns, bytes, sec);
        } else {
            self.write.record(ns, bytes, sec);
        }
        add_at(&mut self.per_second, sec, 1);
    }

    /// Counts a failed I/O.
    pub fn error(&mut self, why: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(why());
        }
    }

    /// Adds another job's measurements.
    pub fn merge(&mut self, other: &Recorder) {
        self.read.merge(&other.read);
        self.write.merge(&other.write);
        self.errors += other.errors;
        self.issued += other.issued;
        if self.first_error.is_none() {
            self.first_error = other.first_error.clone();
        }
        merge_series(&mut self.per_second, &other.per_second);
        self.last_done = match (self.last_done, other.last_done) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_are_kept_apart() {
        let t0 = Instant::now();
        let mut r = Recorder::new(t0, Duration::ZERO);
        r.record(t0, t0 + Duration::from_micros(100), 4096, true);
        r.record(t0, t0 + Duration::from_micros(900), 4096, false);
        r.record(t0, t0 + Duration::from_micros(700), 4096, false);
        assert_eq!((r.read.ios, r.write.ios, r.ios()), (1, 2, 3));
        assert!(r.read.hist.max() < 200_000 && r.write.hist.min() > 600_000);
        assert_eq!(r.hist().len(), 3);
    }
}
