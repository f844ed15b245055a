//! Benchmark results: one serializable record per target and phase, the side-by-side table,
//! and the regression gate against a saved baseline.
use super::meta::RunMeta;
use super::recorder::DirRecorder;
use super::stats::{GateReport, Relative, Summary};
use super::{BenchConfig, Recorder, Rw};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Latency statistics, microseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Lat {
    /// Fastest I/O.
    #[serde(default)]
    pub min: f64,
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
    /// Standard deviation.
    #[serde(default)]
    pub stddev: f64,
}

/// The percentiles fio prints (`clat_ns.percentile`), in percent.
pub const FIO_PERCENTILES: [f64; 17] = [
    1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95,
    99.99,
];

impl Lat {
    /// From a histogram of nanoseconds (all zero when it is empty).
    pub fn from_hist(h: &Histogram<u64>) -> Lat {
        if h.is_empty() {
            return Lat::default();
        }
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Lat {
            min: h.min() as f64 / 1000.0,
            p50: us(0.5),
            p90: us(0.9),
            p99: us(0.99),
            p999: us(0.999),
            p9999: us(0.9999),
            max: h.max() as f64 / 1000.0,
            mean: h.mean() / 1000.0,
            stddev: h.stdev() / 1000.0,
        }
    }
}

/// One direction (reads or writes) of a phase: `randrw` reports them apart, as fio does.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DirStats {
    /// I/Os completed (after the ramp).
    pub ios: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// I/Os per second.
    pub iops: f64,
    /// Bytes per second.
    pub bw_bytes_per_s: f64,
    /// Latency statistics (µs).
    pub lat_us: Lat,
    /// (percent, µs) at fio's percentiles, for `--output-format fio-json`.
    pub percentiles_us: Vec<(f64, f64)>,
    /// Completions in each whole second.
    pub iops_series: Vec<u64>,
}

impl DirStats {
    fn new(d: &DirRecorder, secs: f64, whole_secs: usize) -> DirStats {
        DirStats {
            ios: d.ios,
            bytes: d.bytes,
            iops: d.ios as f64 / secs,
            bw_bytes_per_s: d.bytes as f64 / secs,
            lat_us: Lat::from_hist(&d.hist),
            percentiles_us: percentiles(&d.hist),
            iops_series: d.per_second.iter().take(whole_secs).copied().collect(),
        }
    }
}

fn percentiles(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    FIO_PERCENTILES
        .iter()
        .map(|&p| (p, h.value_at_quantile(p / 100.0) as f64 / 1000.0))
        .collect()
}

/// Time a phase took and the CPU it used.
#[derive(Clone, Copy, Debug, Default)]
pub struct Measured {
    /// Wall time after the ramp, drain included.
    pub elapsed: Duration,
    /// User CPU time of the process (all threads).
    pub usr: Duration,
    /// System CPU time of the process.
    pub sys: Duration,
    /// From the `--runtime` deadline to the last completion: I/Os in flight finishing.
    pub drain: Duration,
}

/// One target, one phase.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PhaseResult {
    /// The target as given.
    pub target: String,
    /// `first-write`, `overwrite`, `read`, or the rw name for a plain run.
    pub phase: String,
    /// Which of `--repeat N` runs (0-based).
    #[serde(default)]
    pub run: usize,
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
    /// Measured time, seconds (drain included).
    pub runtime_s: f64,
    /// Of which the drain after the `--runtime` deadline, seconds.
    #[serde(default)]
    pub drain_s: f64,
    /// I/Os per second.
    pub iops: f64,
    /// Bytes per second.
    pub bw_bytes_per_s: f64,
    /// Latency statistics (µs) of reads and writes together.
    pub lat_us: Lat,
    /// Reads alone (absent when the phase did not read).
    #[serde(default)]
    pub read: Option<DirStats>,
    /// Writes alone (absent when the phase did not write).
    #[serde(default)]
    pub write: Option<DirStats>,
    /// CPU time of the benchmark process per I/O, µs (user + system, all threads).
    pub cpu_us_per_io: f64,
    /// User CPU, percent of one core over the phase (fio's `usr_cpu`).
    #[serde(default)]
    pub usr_cpu_pct: f64,
    /// System CPU, percent of one core (fio's `sys_cpu`).
    #[serde(default)]
    pub sys_cpu_pct: f64,
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
        m: Measured,
    ) -> Self {
        let secs = m.elapsed.as_secs_f64();
        let h = rec.hist();
        let ios = rec.ios();
        let mut cdf = Vec::new();
        if ios > 0 {
            for i in 0..=200 {
                // Denser near the tail, where the interesting part of a latency CDF is.
                let q = 1.0 - 10f64.powf(-(i as f64) / 40.0);
                cdf.push((h.value_at_quantile(q.clamp(0.0, 1.0)) as f64 / 1000.0, q));
            }
            cdf.push((h.max() as f64 / 1000.0, 1.0));
        }
        // The last second is usually partial (and holds the drain); plotting it as a drop
        // would mislead.
        let whole = (secs.floor() as usize).max(1);
        let dir = |d: &DirRecorder| (d.ios > 0).then(|| DirStats::new(d, secs, whole));
        let pct = |d: Duration| d.as_secs_f64() / secs * 100.0;
        PhaseResult {
            target: target.to_string(),
            phase: phase.to_string(),
            run: 0,
            rw: rw.name().to_string(),
            bs: cfg.bs,
            iodepth: cfg.iodepth,
            jobs: cfg.jobs,
            ios,
            errors: rec.errors,
            first_error: rec.first_error.clone(),
            runtime_s: secs,
            drain_s: m.drain.as_secs_f64(),
            iops: ios as f64 / secs,
            bw_bytes_per_s: rec.bytes() as f64 / secs,
            lat_us: Lat::from_hist(&h),
            read: dir(&rec.read),
            write: dir(&rec.write),
            cpu_us_per_io: if ios == 0 {
                0.0
            } else {
                (m.usr + m.sys).as_secs_f64() * 1e6 / ios as f64
            },
            usr_cpu_pct: pct(m.usr),
            sys_cpu_pct: pct(m.sys),
            iops_series: rec.per_second.iter().take(whole).copied().collect(),
            lat_cdf: cdf,
            allocated_before: None,
            allocated_after: None,
            notes: Vec::new(),
        }
    }

    /// The rows a table shows for this result: the phase, then for a mixed workload its reads
    /// and writes apart.
    pub fn rows(&self) -> Vec<(String, f64, f64, &Lat)> {
        let mut v = vec![(
            self.phase.clone(),
            self.iops,
            self.bw_bytes_per_s,
            &self.lat_us,
        )];
        if let (Some(r), Some(w)) = (&self.read, &self.write) {
            for (name, d) in [("read", r), ("write", w)] {
                v.push((format!("  {name}"), d.iops, d.bw_bytes_per_s, &d.lat_us));
            }
        }
        v
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
    /// How, when and where it ran (absent in files of older rbdkit versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<RunMeta>,
    /// One entry per target, phase and run, in run order.
    pub results: Vec<PhaseResult>,
    /// Per target and phase over the `--repeat` runs: mean, standard deviation, range.
    #[serde(default)]
    pub summary: Vec<Summary>,
    /// Per phase, how much faster the fastest target was than each other (by mean IOPS).
    #[serde(default)]
    pub relative: Vec<Relative>,
    /// The regression gate's comparison with `--baseline`, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateReport>,
}

impl BenchReport {
    /// Every target's notes, each once, as `TARGET: note`, in the order they first appear
    /// (the table's footer and the plot's).
    pub fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = Vec::new();
        for r in &self.results {
            for n in &r.notes {
                let n = format!("{}: {n}", r.target);
                if !notes.contains(&n) {
                    notes.push(n);
                }
            }
        }
        notes
    }

    /// The side-by-side table, one row per target and phase (a mixed workload adds its reads
    /// and writes apart), then the summary of repeated runs and the relative speeds.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<NAME_WIDTH$} {:<13} {:>9} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>5} {:>5} {:>6} {:>6}\n",
            "target",
            "phase",
            "IOPS",
            "MiB/s",
            "min us",
            "mean us",
            "stdev us",
            "p50 us",
            "p99 us",
            "p99.9 us",
            "max us",
            "usr%",
            "sys%",
            "cpu/io",
            "errors"
        );
        let repeated = self.results.iter().any(|r| r.run > 0);
        for r in &self.results {
            let name = tail_chars(&r.target, NAME_WIDTH);
            for (i, (phase, iops, bw, l)) in r.rows().into_iter().enumerate() {
                let phase = if repeated && i == 0 {
                    format!("{phase} #{}", r.run + 1)
                } else {
                    phase
                };
                let tail = if i == 0 {
                    format!(
                        " {:>5.0} {:>5.0} {:>6.1} {:>6}",
                        r.usr_cpu_pct, r.sys_cpu_pct, r.cpu_us_per_io, r.errors
                    )
                } else {
                    String::new()
                };
                s.push_str(&format!(
                    "{:<NAME_WIDTH$} {:<13} {:>9.0} {:>8.1} {:>7.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>9.0}{tail}\n",
                    if i == 0 { name.as_str() } else { "" },
                    phase,
                    iops,
                    bw / (1 << 20) as f64,
                    l.min,
                    l.mean,
                    l.stddev,
                    l.p50,
                    l.p99,
                    l.p999,
                    l.max,
                ));
            }
        }
        if self.summary.iter().any(|x| x.runs > 1) {
            s.push('\n');
            for x in &self.summary {
                s.push_str(&x.line());
                s.push('\n');
            }
        }
        for rel in &self.relative {
            s.push('\n');
            s.push_str(&rel.text());
        }
        s
    }
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
            ..Default::default()
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
