//! Per-job measurement: an HdrHistogram of latencies, completions per second, errors; merged
//! across jobs into one result.
use hdrhistogram::Histogram;
use std::time::{Duration, Instant};

/// Latencies are recorded in nanoseconds up to this (longer ones are clamped and counted).
const MAX_NS: u64 = 60_000_000_000;

/// What one job measured.
pub struct Recorder {
    /// Latency histogram (ns).
    pub hist: Histogram<u64>,
    /// Completed I/Os (after the ramp).
    pub ios: u64,
    /// Bytes moved (after the ramp).
    pub bytes: u64,
    /// Failed I/Os.
    pub errors: u64,
    /// I/Os issued (ramp included): how far a block list was consumed.
    pub issued: u64,
    /// First error message, for the report.
    pub first_error: Option<String>,
    /// Completions in each second since `start`.
    pub per_second: Vec<u64>,
    ramp_end: Instant,
}

impl Recorder {
    /// A recorder for a phase that started at `start` and ignores completions before `ramp_end`.
    pub fn new(start: Instant, ramp: Duration) -> Recorder {
        Recorder {
            // 3 significant figures: ~0.1 % error, like fio's log-linear buckets.
            hist: Histogram::new_with_bounds(1, MAX_NS, 3)
                .unwrap_or_else(|_| Histogram::new(3).expect("valid sigfig")),
            ios: 0,
            bytes: 0,
            errors: 0,
            issued: 0,
            first_error: None,
            per_second: Vec::new(),
            ramp_end: start + ramp,
        }
    }

    /// Records one completed I/O submitted at `submitted`, done at `done`.
    pub fn record(&mut self, submitted: Instant, done: Instant, bytes: u64) {
        if done < self.ramp_end {
            return;
        }
        let ns = done
            .saturating_duration_since(submitted)
            .as_nanos()
            .clamp(1, MAX_NS as u128) as u64;
        let _ = self.hist.record(ns);
        self.ios += 1;
        self.bytes += bytes;
        let sec = done.saturating_duration_since(self.ramp_end).as_secs() as usize;
        if self.per_second.len() <= sec {
            self.per_second.resize(sec + 1, 0);
        }
        self.per_second[sec] += 1;
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
        let _ = self.hist.add(&other.hist);
        self.ios += other.ios;
        self.bytes += other.bytes;
        self.errors += other.errors;
        self.issued += other.issued;
        if self.first_error.is_none() {
            self.first_error = other.first_error.clone();
        }
        if self.per_second.len() < other.per_second.len() {
            self.per_second.resize(other.per_second.len(), 0);
        }
        for (a, b) in self.per_second.iter_mut().zip(&other.per_second) {
            *a += b;
        }
    }
}
