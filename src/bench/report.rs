//! Benchmark results: one serializable record per target and phase, the side-by-side table,
//! and the regression gate against a saved baseline.
use super::{BenchConfig, Recorder, Rw};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Latency percentiles, microseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Lat {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// 99.99th percentile.
    pub p9999: f64,
    /// Slowest I/O.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// One target, one phase.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PhaseResult {
    /// The target as given.
    pub target: String,
    /// `first-write`, `overwrite`, `read`, or the rw name for a plain run.
    pub phase: String,
    /// Access pattern.
    pub rw: String,
    /// Block size, bytes.
    pub bs: u64,
    /// I/Os in flight per job.
    pub iodepth: usize,
    /// Jobs.
    pub jobs: usize,
    /// I/Os completed (after the ramp).
    pub ios: u64,
    /// Failed I/Os.
    pub errors: u64,
    /// First error, if any.
    pub first_error: Option<String>,
    /// Measured time, seconds.
    pub runtime_s: f64,
    /// I/Os per second.
    pub iops: f64,
    /// Bytes per second.
    pub bw_bytes_per_s: f64,
    /// Latency percentiles (µs).
    pub lat_us: Lat,
    /// CPU time of the benchmark process per I/O, µs (user + system, all threads).
    pub cpu_us_per_io: f64,
    /// Completions in each second.
    pub iops_series: Vec<u64>,
    /// Latency CDF points (µs, fraction) for plots.
    pub lat_cdf: Vec<(f64, f64)>,
    /// Allocated bytes of the target before the phase (when the storage tells).
    pub allocated_before: Option<u64>,
    /// Allocated bytes after.
    pub allocated_after: Option<u64>,
    /// Facts that qualify the numbers.
    pub notes: Vec<String>,
}

impl PhaseResult {
    /// Summarizes a merged recorder.
    pub fn new(
        target: &str,
        phase: &str,
        rw: Rw,
        cfg: &BenchConfig,
        rec: &Recorder,
        elapsed: Duration,
        cpu: Duration,
    ) -> Self {
        let secs = elapsed.as_secs_f64();
        let h = &rec.hist;
        let us = |q: f64| {
            if rec.ios == 0 {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1000.0
            }
        };
        let mut cdf = Vec::new();
        if rec.ios > 0 {
            for i in 0..=200 {
                // Denser near the tail, where the interesting part of a latency CDF is.
                let q = 1.0 - 10f64.powf(-(i as f64) / 40.0);
                cdf.push((us(q.clamp(0.0, 1.0)), q));
            }
            cdf.push((h.max() as f64 / 1000.0, 1.0));
        }
        PhaseResult {
            target: target.to_string(),
            phase: phase.to_string(),
            rw: rw.name().to_string(),
            bs: cfg.bs,
            iodepth: cfg.iodepth,
            jobs: cfg.jobs,
            ios: rec.ios,
            errors: rec.errors,
            first_error: rec.first_error.clone(),
            runtime_s: secs,
            iops: rec.ios as f64 / secs,
            bw_bytes_per_s: rec.bytes as f64 / secs,
            lat_us: Lat {
                p50: us(0.5),
                p90: us(0.9),
                p99: us(0.99),
                p999: us(0.999),
                p9999: us(0.9999),
                max: if rec.ios == 0 {
                    0.0
                } else {
                    h.max() as f64 / 1000.0
                },
                mean: if rec.ios == 0 { 0.0 } else { h.mean() / 1000.0 },
            },
            cpu_us_per_io: if rec.ios == 0 {
                0.0
            } else {
                cpu.as_secs_f64() * 1e6 / rec.ios as f64
            },
            // The last second is usually partial; plotting it as a drop would mislead.
            iops_series: rec
                .per_second
                .iter()
                .take((secs.floor() as usize).max(1))
                .copied()
                .collect(),
            lat_cdf: cdf,
            allocated_before: None,
            allocated_after: None,
            notes: Vec::new(),
        }
    }
}

/// Characters of the target column of the table.
const NAME_WIDTH: usize = 34;

/// `s` if it has at most `width` characters, else "..." and its last `width - 3`: the end of a
/// target (image or file name) tells targets apart better than its start. Counts characters,
/// not bytes, so a multibyte name is never cut inside a character, and the `{:<34}` padding
/// (which also counts characters) keeps the columns aligned.
fn tail_chars(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_string();
    }
    let keep = width.saturating_sub(3);
    format!("...{}", s.chars().skip(n - keep).collect::<String>())
}

/// Everything a bench run measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BenchReport {
    /// One entry per target and phase, in run order.
    pub results: Vec<PhaseResult>,
}

impl BenchReport {
    /// The side-by-side table, one row per target and phase.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<NAME_WIDTH$} {:<11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>7} {:>6}\n",
            "target",
            "phase",
            "IOPS",
            "MiB/s",
            "p50 us",
            "p99 us",
            "p99.9 us",
            "max us",
            "cpu/io",
            "errors"
        );
        for r in &self.results {
            let name = tail_chars(&r.target, NAME_WIDTH);
            s.push_str(&format!(
                "{:<NAME_WIDTH$} {:<11} {:>9.0} {:>9.1} {:>9.0} {:>9.0} {:>9.0} {:>10.0} {:>7.1} {:>6}\n",
                name,
                r.phase,
                r.iops,
                r.bw_bytes_per_s / (1 << 20) as f64,
                r.lat_us.p50,
                r.lat_us.p99,
                r.lat_us.p999,
                r.lat_us.max,
                r.cpu_us_per_io,
                r.errors
            ));
        }
        s
    }
}

/// A metric that got worse than allowed.
#[derive(Clone, Debug, Serialize)]
pub struct Regression {
    /// Target.
    pub target: String,
    /// Phase.
    pub phase: String,
    /// Metric name (`iops`, `bw_bytes_per_s`, `lat_us.p99`).
    pub metric: String,
    /// Baseline value.
    pub old: f64,
    /// This run's value.
    pub new: f64,
    /// How much worse, percent.
    pub worse_by_pct: f64,
}

/// Compares results with a baseline: throughput lower or p99 latency higher by more than
/// `max_pct` percent is a regression. Results are matched by target, phase, rw, bs, iodepth.
pub fn compare(
    baseline: &BenchReport,
    current: &BenchReport,
    max_pct: f64,
) -> (Vec<Regression>, usize) {
    let mut out = Vec::new();
    let mut matched = 0;
    for new in &current.results {
        let Some(old) = baseline.results.iter().find(|o| {
            o.target == new.target
                && o.phase == new.phase
                && o.rw == new.rw
                && o.bs == new.bs
                && o.iodepth == new.iodepth
        }) else {
            continue;
        };
        matched += 1;
        let mut check = |metric: &str, o: f64, n: f64, higher_is_better: bool| {
            if o <= 0.0 {
                return;
            }
            let worse = if higher_is_better {
                (o - n) / o * 100.0
            } else {
                (n - o) / o * 100.0
            };
            if worse > max_pct {
                out.push(Regression {
                    target: new.target.clone(),
                    phase: new.phase.clone(),
                    metric: metric.into(),
                    old: o,
                    new: n,
                    worse_by_pct: worse,
                });
            }
        };
        check("iops", old.iops, new.iops, true);
        check(
            "bw_bytes_per_s",
            old.bw_bytes_per_s,
            new.bw_bytes_per_s,
            true,
        );
        check("lat_us.p99", old.lat_us.p99, new.lat_us.p99, false);
    }
    (out, matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_multibyte_names_are_cut_by_characters_and_stay_aligned() {
        assert_eq!(tail_chars("rbd:volumes/a", 34), "rbd:volumes/a");
        let umlauts = "ü".repeat(40);
        let cut = tail_chars(&umlauts, 34);
        assert_eq!(cut.chars().count(), 34);
        assert_eq!(cut, format!("...{}", "ü".repeat(31)));
        let emoji = format!("rbd:volumes/{}🦀🦀", "é".repeat(30));
        assert!(tail_chars(&emoji, 34).ends_with("é🦀🦀"));
        assert_eq!(tail_chars(&emoji, 34).chars().count(), 34);

        let row = |target: &str| {
            serde_json::from_value::<PhaseResult>(serde_json::json!({
                "target": target, "phase": "read", "rw": "randread", "bs": 4096,
                "iodepth": 1, "jobs": 1, "ios": 1, "errors": 0, "first_error": null,
                "runtime_s": 1.0, "iops": 1.0, "bw_bytes_per_s": 1.0,
                "lat_us": serde_json::to_value(Lat::default()).unwrap(),
                "cpu_us_per_io": 1.0, "iops_series": [], "lat_cdf": [],
                "allocated_before": null, "allocated_after": null, "notes": []
            }))
            .unwrap()
        };
        let report = BenchReport {
            results: vec![row(&umlauts), row(&emoji), row("file:/tmp/x")],
        };
        let table = report.table();
        // Every row puts the phase column at the same character position.
        assert_eq!(table.lines().count(), 4);
        for l in table.lines().skip(1) {
            let phase_at = l.chars().skip(NAME_WIDTH + 1).take(4).collect::<String>();
            assert_eq!(phase_at, "read", "{l}");
        }
    }
}
