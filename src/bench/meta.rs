//! Run metadata written into the JSON (which rbdkit, when, where, the command line and every
//! setting), and the check of a baseline's settings against this run's before any I/O: a gate
//! that compares a 4K queue-depth-32 run with a 4K queue-depth-1 run measures nothing.
use super::BenchConfig;
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// Every setting that changes what a run measures, as given on the command line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// `--rw`.
    pub rw: String,
    /// `--mix`: read percentage of randrw.
    pub mix_read_pct: u32,
    /// `--bs`, bytes.
    pub bs: u64,
    /// `--iodepth`.
    pub iodepth: usize,
    /// `--jobs`.
    pub jobs: usize,
    /// `--runtime`, seconds (none: the default 10 s, or `--io-total` alone).
    pub runtime_s: Option<f64>,
    /// `--io-total`, bytes.
    pub io_total: Option<u64>,
    /// `--ramp`, seconds.
    pub ramp_s: f64,
    /// `--seed`.
    pub seed: u64,
    /// `--phases`.
    pub phases: bool,
    /// `--prefill`.
    #[serde(default)]
    pub prefill: bool,
    /// `--buffered` (page cache for file: targets).
    pub buffered: bool,
    /// `--size`, bytes (none: 1 GiB for a new target, its own size for an existing one).
    pub size: Option<u64>,
    /// `--repeat`.
    pub repeat: usize,
}

impl Settings {
    /// The settings of `cfg`, plus the CLI's own (`--size`, `--buffered`).
    pub fn new(cfg: &BenchConfig, size: Option<u64>, buffered: bool) -> Settings {
        Settings {
            rw: cfg.rw.name().into(),
            mix_read_pct: cfg.mix_read_pct,
            bs: cfg.bs,
            iodepth: cfg.iodepth,
            jobs: cfg.jobs,
            runtime_s: cfg.runtime.map(|d| d.as_secs_f64()),
            io_total: cfg.io_total,
            ramp_s: cfg.ramp.as_secs_f64(),
            seed: cfg.seed,
            phases: cfg.phases,
            prefill: cfg.prefill,
            buffered,
            size,
            repeat: cfg.repeat,
        }
    }

    /// The settings in which `baseline` differs from `self`, one "--option its (this run: ours)"
    /// per setting. The seed and the number of repeats may differ: they change the sample, not
    /// what is measured.
    pub fn differences(&self, baseline: &Settings) -> Vec<String> {
        let mut d = Vec::new();
        let mut cmp = |name: &str, old: String, new: String| {
            if old != new {
                d.push(format!("{name} {old} (this run: {new})"));
            }
        };
        let opt = |v: Option<String>| v.unwrap_or_else(|| "unset".into());
        cmp("--rw", baseline.rw.clone(), self.rw.clone());
        if self.rw == "randrw" || baseline.rw == "randrw" {
            cmp(
                "--mix",
                baseline.mix_read_pct.to_string(),
                self.mix_read_pct.to_string(),
            );
        }
        cmp("--bs", baseline.bs.to_string(), self.bs.to_string());
        cmp(
            "--iodepth",
            baseline.iodepth.to_string(),
            self.iodepth.to_string(),
        );
        cmp("--jobs", baseline.jobs.to_string(), self.jobs.to_string());
        cmp(
            "--runtime",
            opt(baseline.runtime_s.map(|s| format!("{s}s"))),
            opt(self.runtime_s.map(|s| format!("{s}s"))),
        );
        cmp(
            "--io-total",
            opt(baseline.io_total.map(|b| b.to_string())),
            opt(self.io_total.map(|b| b.to_string())),
        );
        cmp(
            "--ramp",
            format!("{}s", baseline.ramp_s),
            format!("{}s", self.ramp_s),
        );
        cmp(
            "--phases",
            baseline.phases.to_string(),
            self.phases.to_string(),
        );
        cmp(
            "--prefill",
            baseline.prefill.to_string(),
            self.prefill.to_string(),
        );
        cmp(
            "--buffered",
            baseline.buffered.to_string(),
            self.buffered.to_string(),
        );
        cmp(
            "--size",
            opt(baseline.size.map(|b| b.to_string())),
            opt(self.size.map(|b| b.to_string())),
        );
        d
    }
}

/// How, when and where a run happened.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunMeta {
    /// rbdkit's version.
    pub rbdkit_version: String,
    /// Start of the run, UTC, RFC 3339.
    pub time: String,
    /// Start of the run, seconds since the Unix epoch.
    pub unix_time: u64,
    /// Host name.
    pub host: String,
    /// The command line, one argument per entry.
    pub command_line: Vec<String>,
    /// Every setting.
    pub settings: Settings,
}

impl RunMeta {
    /// Metadata of a run starting now with `settings`.
    pub fn now(settings: Settings) -> RunMeta {
        let unix_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        RunMeta {
            rbdkit_version: env!("CARGO_PKG_VERSION").into(),
            time: rfc3339(unix_time),
            unix_time,
            host: hostname(),
            command_line: std::env::args().collect(),
            settings,
        }
    }
}

/// The host name, as `uname -n` prints it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (Howard Hinnant's civil_from_days: no
/// date crate for one timestamp).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn differences_name_the_setting() {
        let a = Settings {
            rw: "randwrite".into(),
            bs: 4096,
            iodepth: 16,
            jobs: 1,
            ..Default::default()
        };
        let b = Settings {
            iodepth: 32,
            seed: 9,
            repeat: 5,
            ..a.clone()
        };
        assert_eq!(a.differences(&b), ["--iodepth 32 (this run: 16)"]);
        assert!(a.differences(&a).is_empty());
    }
}
