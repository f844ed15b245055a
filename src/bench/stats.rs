//! Repeated runs as hyperfine treats them: mean ± σ per target and phase, "N× faster"
//! between targets, and a regression gate that only calls a difference a regression when it
//! is larger than the limit *and* larger than the noise both runs measured.
use super::{BenchReport, PhaseResult};
use serde::{Deserialize, Serialize};

/// Mean, sample standard deviation and range of one metric over repeated runs.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct MeanSd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one run: no noise measured).
    pub stddev: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Number of runs.
    pub n: usize,
}

impl MeanSd {
    /// Of `v` (all zero when empty).
    pub fn of(v: &[f64]) -> MeanSd {
        if v.is_empty() {
            return MeanSd::default();
        }
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = if v.len() > 1 {
            v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        MeanSd {
            mean,
            stddev: var.sqrt(),
            min: v.iter().copied().fold(f64::MAX, f64::min),
            max: v.iter().copied().fold(f64::MIN, f64::max),
            n: v.len(),
        }
    }
}

/// One target and phase over its repeated runs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Target.
    pub target: String,
    /// Phase.
    pub phase: String,
    /// Runs.
    pub runs: usize,
    /// I/Os per second.
    pub iops: MeanSd,
    /// Bytes per second.
    pub bw_bytes_per_s: MeanSd,
    /// Median latency, µs.
    pub p50_us: MeanSd,
    /// 99th percentile latency, µs.
    pub p99_us: MeanSd,
}

impl Summary {
    /// "target phase (N runs): IOPS mean ± σ [min … max], p99 mean ± σ µs", as hyperfine
    /// prints a command's time.
    pub fn line(&self) -> String {
        format!(
            "{} {} ({} runs): {:.0} ± {:.0} IOPS [{:.0} … {:.0}], {:.1} ± {:.1} MiB/s, p99 {:.0} ± {:.0} µs",
            self.target,
            self.phase,
            self.runs,
            self.iops.mean,
            self.iops.stddev,
            self.iops.min,
            self.iops.max,
            self.bw_bytes_per_s.mean / (1 << 20) as f64,
            self.bw_bytes_per_s.stddev / (1 << 20) as f64,
            self.p99_us.mean,
            self.p99_us.stddev
        )
    }
}

/// The results grouped by target and phase, in run order.
pub fn summarize(results: &[PhaseResult]) -> Vec<Summary> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in results {
        let k = (r.target.clone(), r.phase.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(target, phase)| {
            let runs: Vec<&PhaseResult> = results
                .iter()
                .filter(|r| r.target == target && r.phase == phase)
                .collect();
            let of = |f: &dyn Fn(&PhaseResult) -> f64| {
                MeanSd::of(&runs.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            Summary {
                runs: runs.len(),
                iops: of(&|r| r.iops),
                bw_bytes_per_s: of(&|r| r.bw_bytes_per_s),
                p50_us: of(&|r| r.lat_us.p50),
                p99_us: of(&|r| r.lat_us.p99),
                target,
                phase,
            }
        })
        .collect()
}

/// One target's speed relative to the fastest in a phase.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Slower {
    /// Target.
    pub target: String,
    /// Fastest mean IOPS / this target's mean IOPS.
    pub times: f64,
    /// Its standard deviation (propagated from both runs' σ, as hyperfine does).
    pub stddev: f64,
}

/// Per phase: the fastest target, and how many times faster it was than each other one.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Relative {
    /// Phase.
    pub phase: String,
    /// The target with the highest mean IOPS.
    pub fastest: String,
    /// The others, fastest first.
    pub than: Vec<Slower>,
}

impl Relative {
    /// hyperfine's summary: "'A' ran / 1.85 ± 0.10 times faster than 'B'".
    pub fn text(&self) -> String {
        let mut s = format!("Summary ({})\n  '{}' ran\n", self.phase, self.fastest);
        for o in &self.than {
            if o.stddev > 0.0 {
                s.push_str(&format!(
                    "    {:.2} ± {:.2} times faster than '{}'\n",
                    o.times, o.stddev, o.target
                ));
            } else {
                s.push_str(&format!(
                    "    {:.2} times faster than '{}'\n",
                    o.times, o.target
                ));
            }
        }
        s
    }
}

/// The relative speeds of the targets in each phase that more than one target ran.
pub fn relative(summary: &[Summary]) -> Vec<Relative> {
    let mut phases: Vec<&str> = Vec::new();
    for x in summary {
        if !phases.contains(&x.phase.as_str()) {
            phases.push(&x.phase);
        }
    }
    let mut out = Vec::new();
    for phase in phases {
        let mut v: Vec<&Summary> = summary
            .iter()
            .filter(|x| x.phase == phase && x.iops.mean > 0.0)
            .collect();
        if v.len() < 2 {
            continue;
        }
        v.sort_by(|a, b| b.iops.mean.total_cmp(&a.iops.mean));
        let best = v[0];
        let rel = |m: &MeanSd| m.stddev / m.mean;
        out.push(Relative {
            phase: phase.into(),
            fastest: best.target.clone(),
            than: v[1..]
                .iter()
                .map(|o| {
                    let times = best.iops.mean / o.iops.mean;
                    Slower {
                        target: o.target.clone(),
                        times,
                        stddev: times * (rel(&best.iops).powi(2) + rel(&o.iops).powi(2)).sqrt(),
                    }
                })
                .collect(),
        });
    }
    out
}

/// The gate's verdict on one metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Not worse than the limit.
    Ok,
    /// Worse than the limit, but by no more than the noise the runs measured.
    WithinNoise,
    /// Worse than the limit and beyond the noise.
    Regression,
}

/// One metric of one target and phase, baseline against this run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GateCheck {
    /// Target.
    pub target: String,
    /// Phase.
    pub phase: String,
    /// `iops`, `bw_bytes_per_s` or `lat_us.p99`.
    pub metric: String,
    /// The baseline's runs.
    pub baseline: MeanSd,
    /// This run's.
    pub current: MeanSd,
    /// How much worse the mean is, percent (negative: better).
    pub worse_by_pct: f64,
    /// Two standard errors of the difference of the means, percent of the baseline's mean: a
    /// difference within it is noise (0 when neither side repeated its runs).
    pub noise_pct: f64,
    /// The verdict.
    pub verdict: Verdict,
}

/// The regression gate's comparison, written into the JSON.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GateReport {
    /// The baseline file.
    pub baseline: String,
    /// `--max-regression`, percent.
    pub max_regression_pct: f64,
    /// Whether no metric regressed.
    pub passed: bool,
    /// Every metric compared.
    pub checks: Vec<GateCheck>,
    /// Whether both sides measured their noise (more than one run each).
    pub noise_measured: bool,
}

impl GateReport {
    /// The metrics that regressed.
    pub fn regressions(&self) -> impl Iterator<Item = &GateCheck> {
        self.checks
            .iter()
            .filter(|c| c.verdict == Verdict::Regression)
    }

    /// One line saying what the gate decided and on what evidence.
    pub fn verdict_line(&self) -> String {
        let worse = self.regressions().count();
        let noisy = self
            .checks
            .iter()
            .filter(|c| c.verdict == Verdict::WithinNoise)
            .count();
        let noise = if self.noise_measured {
            format!(", {noisy} worse only within the noise the repeated runs measured")
        } else {
            ": noise not measured (one run on a side), pass --repeat N to both runs".into()
        };
        if self.passed {
            format!(
                "regression gate passed: {} metrics against {}, none worse than {}% beyond the noise{noise}",
                self.checks.len(),
                self.baseline,
                self.max_regression_pct
            )
        } else {
            format!(
                "regression gate failed: {worse} of {} metrics against {} worse than {}% beyond the noise{noise}",
                self.checks.len(),
                self.baseline,
                self.max_regression_pct
            )
        }
    }
}

/// Compares this run with a baseline per target and phase over all their runs: throughput
/// lower or p99 latency higher by more than `max_pct` percent *and* by more than twice the
/// standard error of the difference is a regression.
pub fn gate(baseline: &BenchReport, current: &BenchReport, name: &str, max_pct: f64) -> GateReport {
    let old = summarize(&baseline.results);
    let new = summarize(&current.results);
    let mut checks = Vec::new();
    let mut noise_measured = true;
    for n in &new {
        let Some(o) = old
            .iter()
            .find(|o| o.target == n.target && o.phase == n.phase)
        else {
            continue;
        };
        noise_measured &= o.runs > 1 && n.runs > 1;
        for (metric, om, nm, higher_is_better) in [
            ("iops", o.iops, n.iops, true),
            ("bw_bytes_per_s", o.bw_bytes_per_s, n.bw_bytes_per_s, true),
            ("lat_us.p99", o.p99_us, n.p99_us, false),
        ] {
            if om.mean <= 0.0 {
                continue;
            }
            let diff = if higher_is_better {
                om.mean - nm.mean
            } else {
                nm.mean - om.mean
            };
            let worse = diff / om.mean * 100.0;
            let se = (om.stddev.powi(2) / om.n.max(1) as f64
                + nm.stddev.powi(2) / nm.n.max(1) as f64)
                .sqrt();
            let noise = 2.0 * se / om.mean * 100.0;
            let verdict = if worse <= max_pct {
                Verdict::Ok
            } else if worse <= noise {
                Verdict::WithinNoise
            } else {
                Verdict::Regression
            };
            checks.push(GateCheck {
                target: n.target.clone(),
                phase: n.phase.clone(),
                metric: metric.into(),
                baseline: om,
                current: nm,
                worse_by_pct: worse,
                noise_pct: noise,
                verdict,
            });
        }
    }
    let passed = !checks.iter().any(|c| c.verdict == Verdict::Regression);
    GateReport {
        baseline: name.into(),
        max_regression_pct: max_pct,
        passed,
        noise_measured: noise_measured && !checks.is_empty(),
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(target: &str, iops: f64, run: usize) -> PhaseResult {
        let mut r: PhaseResult = serde_json::from_value(serde_json::json!({
            "target": target, "phase": "randwrite", "rw": "randwrite", "bs": 4096,
            "iodepth": 1, "jobs": 1, "ios": 1, "errors": 0, "first_error": null,
            "runtime_s": 1.0, "iops": iops, "bw_bytes_per_s": iops * 4096.0,
            "lat_us": {"p50": 10.0, "p90": 10.0, "p99": 10.0, "p999": 10.0, "p9999": 10.0,
                       "max": 10.0, "mean": 10.0},
            "cpu_us_per_io": 1.0, "iops_series": [], "lat_cdf": [],
            "allocated_before": null, "allocated_after": null, "notes": []
        }))
        .unwrap();
        r.run = run;
        r
    }

    fn report(target: &str, iops: &[f64]) -> BenchReport {
        BenchReport {
            results: iops
                .iter()
                .enumerate()
                .map(|(i, &v)| result(target, v, i))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn mean_and_sample_stddev() {
        let m = MeanSd::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(m.mean, 5.0);
        assert!((m.stddev - 2.138).abs() < 1e-3);
        assert_eq!((m.min, m.max, m.n), (2.0, 9.0, 8));
    }

    #[test]
    fn relative_speed_as_hyperfine_prints_it() {
        let mut r = report("a", &[200.0, 210.0, 190.0]);
        r.results.extend(report("b", &[100.0, 105.0, 95.0]).results);
        let rel = relative(&summarize(&r.results));
        assert_eq!(rel.len(), 1);
        assert_eq!(rel[0].fastest, "a");
        assert!((rel[0].than[0].times - 2.0).abs() < 1e-9);
        let text = rel[0].text();
        assert!(
            text.contains("'a' ran") && text.contains("2.00 ± 0.14 times faster than 'b'"),
            "{text}"
        );
    }

    #[test]
    fn the_gate_forgives_noise_but_not_a_real_drop() {
        // 15% lower, limit 10%, but the runs scatter by ±30%: noise.
        let noisy_old = report("t", &[100.0, 140.0, 60.0]);
        let noisy_new = report("t", &[85.0, 120.0, 50.0]);
        let g = gate(&noisy_old, &noisy_new, "base.json", 10.0);
        assert!(g.passed && g.noise_measured, "{g:?}");
        let iops = &g.checks[0];
        assert_eq!(iops.verdict, Verdict::WithinNoise);
        // The same drop with tight runs: a regression.
        let g = gate(
            &report("t", &[100.0, 101.0, 99.0]),
            &report("t", &[85.0, 86.0, 84.0]),
            "base.json",
            10.0,
        );
        assert!(!g.passed);
        assert_eq!(g.regressions().next().unwrap().metric, "iops");
        assert!(g.verdict_line().contains("failed"), "{}", g.verdict_line());
        // One run each: judged on the limit alone, and it says the noise is unknown.
        let g = gate(&report("t", &[100.0]), &report("t", &[95.0]), "b", 10.0);
        assert!(g.passed && !g.noise_measured);
        assert!(
            g.verdict_line().contains("--repeat"),
            "{}",
            g.verdict_line()
        );
    }
}
