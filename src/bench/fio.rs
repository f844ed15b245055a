//! `--output-format fio-json`: the report in the shape of `fio --output-format=json`, with
//! fio's field names and units for the fields both tools measure, so scripts and dashboards
//! written for fio read rbdkit's numbers. Checked against fio 3.33's output.
//!
//! What differs, and why: rbdkit times each I/O from submission to completion, which is fio's
//! total latency `lat_ns`; it has no separate submission latency, so `slat_ns` is zero and
//! `clat_ns` repeats `lat_ns`. The percentiles are in both (fio puts them in `clat_ns`, and in
//! `lat_ns` only with `lat_percentiles=1`).
use super::report::{DirStats, PhaseResult};
use super::BenchReport;
use serde_json::{json, Map, Value};

/// fio's percentile key: `"99.900000"`.
fn pct_key(p: f64) -> String {
    format!("{p:.6}")
}

fn lat(d: &DirStats) -> Value {
    let ns = |us: f64| (us * 1000.0).round() as u64;
    let pct: Map<String, Value> = d
        .percentiles_us
        .iter()
        .map(|(p, us)| (pct_key(*p), json!(ns(*us))))
        .collect();
    json!({
        "min": ns(d.lat_us.min),
        "max": ns(d.lat_us.max),
        "mean": d.lat_us.mean * 1000.0,
        "stddev": d.lat_us.stddev * 1000.0,
        "N": d.ios,
        "percentile": pct,
    })
}

fn series_stats(v: &[u64]) -> (f64, f64, f64, f64, usize) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0, 0.0, 0);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<u64>() as f64 / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let min = *v.iter().min().unwrap_or(&0) as f64;
    let max = *v.iter().max().unwrap_or(&0) as f64;
    (min, max, mean, var.sqrt(), v.len())
}

/// One direction as fio prints `read` or `write` (all zero when the phase did not do it).
fn dir(d: Option<&DirStats>, r: &PhaseResult) -> Value {
    let empty = DirStats::default();
    let d = d.unwrap_or(&empty);
    let runtime_ms = if d.ios > 0 {
        (r.runtime_s * 1000.0).round() as u64
    } else {
        0
    };
    let (imin, imax, imean, isd, isamples) = series_stats(&d.iops_series);
    let kib = r.bs as f64 / 1024.0;
    json!({
        "io_bytes": d.bytes,
        "io_kbytes": d.bytes / 1024,
        "bw_bytes": d.bw_bytes_per_s.round() as u64,
        "bw": (d.bw_bytes_per_s / 1024.0).round() as u64,
        "iops": d.iops,
        "runtime": runtime_ms,
        "total_ios": d.ios,
        "short_ios": 0,
        "drop_ios": 0,
        "slat_ns": {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0},
        "clat_ns": lat(d),
        "lat_ns": lat(d),
        "bw_min": (imin * kib).round() as u64,
        "bw_max": (imax * kib).round() as u64,
        "bw_mean": imean * kib,
        "bw_dev": isd * kib,
        "bw_samples": isamples,
        "iops_min": imin as u64,
        "iops_max": imax as u64,
        "iops_mean": imean,
        "iops_stddev": isd,
        "iops_samples": isamples,
    })
}

/// The report as `fio --output-format=json` prints a run: one job per target, phase and run.
pub fn fio_json(report: &BenchReport) -> Value {
    let meta = report.meta.clone().unwrap_or_default();
    let s = &meta.settings;
    let mut global = Map::new();
    global.insert("rw".into(), json!(s.rw));
    global.insert("bs".into(), json!(s.bs.to_string()));
    global.insert("iodepth".into(), json!(s.iodepth.to_string()));
    global.insert("numjobs".into(), json!(s.jobs.to_string()));
    if s.rw == "randrw" {
        global.insert("rwmixread".into(), json!(s.mix_read_pct.to_string()));
    }
    if let Some(r) = s.runtime_s {
        global.insert("runtime".into(), json!(format!("{r}")));
    }
    if let Some(b) = s.io_total {
        global.insert("io_size".into(), json!(b.to_string()));
    }
    global.insert("ramp_time".into(), json!(format!("{}", s.ramp_s)));
    global.insert("randseed".into(), json!(s.seed.to_string()));
    let jobs: Vec<Value> = report
        .results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let total_cpu = r.usr_cpu_pct + r.sys_cpu_pct;
            json!({
                "jobname": if r.run > 0 { format!("{} {} #{}", r.target, r.phase, r.run + 1) } else { format!("{} {}", r.target, r.phase) },
                "groupid": i,
                "error": i64::from(r.errors > 0),
                "elapsed": r.runtime_s.round() as u64,
                "job options": {"filename": r.target, "rw": r.rw, "bs": r.bs.to_string(),
                                "iodepth": r.iodepth.to_string(), "numjobs": r.jobs.to_string()},
                "read": dir(r.read.as_ref(), r),
                "write": dir(r.write.as_ref(), r),
                "trim": dir(None, r),
                "job_runtime": (r.runtime_s * 1000.0).round() as u64,
                "usr_cpu": r.usr_cpu_pct,
                "sys_cpu": r.sys_cpu_pct,
                "total_cpu": total_cpu,
                "rbdkit": {"phase": r.phase, "run": r.run, "errors": r.errors,
                           "notes": r.notes, "drain_s": r.drain_s},
            })
        })
        .collect();
    json!({
        "fio version": format!("rbdkit-{}", meta.rbdkit_version),
        "timestamp": meta.unix_time,
        "timestamp_ms": meta.unix_time * 1000,
        "time": meta.time,
        "global options": global,
        "jobs": jobs,
    })
}
