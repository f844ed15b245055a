//! Live tests of `rbdkit bench` against the real NFS server (userspace NFSv3), a file in the
//! exported directory (io_uring, O_DIRECT) and an RBD image on the dev cluster.
mod common;
use common::*;
use serde_json::Value;

fn bench(args: &[&str]) -> std::process::Output {
    rbdkit(&[&["bench"], args].concat())
}

/// Runs `bench` with `args` and `--json`, expects success, and returns its output and the JSON
/// report.
fn bench_report(args: &[&str]) -> (std::process::Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let out = bench(&[args, &["--json", json.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let report = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (out, report)
}

fn check_result(r: &Value) {
    let name = format!("{} {}", r["target"], r["phase"]);
    assert!(r["iops"].as_f64().unwrap() > 0.0, "{name}: {r}");
    assert!(r["bw_bytes_per_s"].as_f64().unwrap() > 0.0, "{name}");
    assert_eq!(
        r["errors"].as_u64(),
        Some(0),
        "{name}: {}",
        r["first_error"]
    );
    let l = &r["lat_us"];
    let ps: Vec<f64> = ["p50", "p90", "p99", "p999", "p9999", "max"]
        .iter()
        .map(|k| l[k].as_f64().unwrap())
        .collect();
    assert!(ps[0] > 0.0, "{name}: {l}");
    assert!(
        ps.windows(2).all(|w| w[0] <= w[1]),
        "{name}: percentiles must not decrease: {l}"
    );
    assert!(r["cpu_us_per_io"].as_f64().unwrap() > 0.0, "{name}");
    assert!(!r["iops_series"].as_array().unwrap().is_empty(), "{name}");
}

#[test]
fn phases_on_nfs_file_and_rbd_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("r.svg");
    let file_name = unique("vol");
    let nfs = format!("{}/{}", nfs_url(), unique("nfsvol"));
    let file = format!("file:{}/{file_name}", nfs_dir().display());
    let rbd = format!("rbd:volumes/{}", unique("benchvol"));
    let (out, report) = bench_report(&[
        &nfs,
        &file,
        &rbd,
        "--size",
        "64M",
        "--phases",
        "--runtime",
        "1s",
        "--iodepth",
        "8",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 9, "3 targets x 3 phases");
    for t in [&nfs, &file, &rbd] {
        let phases: Vec<&str> = results
            .iter()
            .filter(|r| r["target"] == t.as_str())
            .map(|r| r["phase"].as_str().unwrap())
            .collect();
        assert_eq!(phases, ["first-write", "overwrite", "read"], "{t}");
        let first = results.iter().find(|r| r["target"] == t.as_str()).unwrap();
        let (before, after) = (
            first["allocated_before"].as_u64().unwrap(),
            first["allocated_after"].as_u64().unwrap(),
        );
        assert!(
            after > before,
            "{t}: writing into holes allocates ({before} -> {after})"
        );
    }
    for r in results {
        check_result(r);
    }
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg")
            && svg.contains("Latency by percentile")
            && svg.contains("IOPS over time"),
        "{svg}"
    );
    assert!(svg.contains("first-write"), "legend names the phases");
    // The table shows every target; targets the run created are gone.
    let table = stdout(&out);
    assert!(
        table.contains("first-write") && table.contains("rbd_cache"),
        "{table}"
    );
    assert!(!std::path::Path::new(&format!("{}/{file_name}", nfs_dir().display())).exists());
    assert!(!image_exists(&conf(), rbd.trim_start_matches("rbd:")));
}

/// `--phases --repeat`: each run's first-write phase writes into holes again, because bench
/// empties the targets it created between runs (shrinks them to 0 and grows them back), and the
/// summary has the runs of every phase. An existing target is not emptied: refused.
#[test]
fn repeated_phases_write_into_holes_every_run() {
    let nfs = format!("{}/{}", nfs_url(), unique("nfsrep"));
    let file = format!("file:{}/{}", nfs_dir().display(), unique("rep"));
    let rbd = format!("rbd:volumes/{}", unique("benchrep"));
    let (_, report) = bench_report(&[
        &nfs,
        &file,
        &rbd,
        "--size",
        "8M",
        "--phases",
        "--repeat",
        "2",
        "--runtime",
        "1s",
    ]);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 18, "3 targets x 2 runs x 3 phases");
    for t in [&nfs, &file, &rbd] {
        for run in 0..2 {
            let first = results
                .iter()
                .find(|r| {
                    r["target"] == t.as_str() && r["run"] == run && r["phase"] == "first-write"
                })
                .unwrap_or_else(|| panic!("{t}: no first-write phase in run {run}"));
            let (before, after) = (
                first["allocated_before"].as_u64().unwrap(),
                first["allocated_after"].as_u64().unwrap(),
            );
            // NFS-Ganesha and the filesystem may keep a block of metadata: far below 8 MiB.
            assert!(
                before < 1 << 20,
                "{t} run {run}: {before} bytes allocated before the first write"
            );
            assert!(after > before, "{t} run {run}: {before} -> {after}");
        }
    }
    for s in report["summary"].as_array().unwrap() {
        assert_eq!(s["runs"], 2, "{s}");
    }
    // An existing target keeps its data: emptying it is refused before anything is written.
    let existing = std::env::temp_dir().join(unique("keep"));
    std::fs::write(&existing, vec![9u8; 1 << 20]).unwrap();
    let target = format!("file:{}", existing.display());
    let out = bench(&[
        &target,
        "--phases",
        "--repeat",
        "2",
        "--allow-existing",
        "--runtime",
        "1s",
    ]);
    // (after the --allow-existing notice, which names what a run would overwrite)
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let last = stderr(&out).lines().last().unwrap_or_default().to_string();
    assert!(
        last.contains("--repeat") && last.contains("name a new target"),
        "{last}"
    );
    assert_eq!(std::fs::read(&existing).unwrap(), vec![9u8; 1 << 20]);
    let _ = std::fs::remove_file(&existing);
}

#[test]
fn reads_of_a_fresh_target_are_prefilled_first() {
    let file = format!("file:{}/{}", nfs_dir().display(), unique("readvol"));
    let (_, report) = bench_report(&[
        &file,
        "--size",
        "16M",
        "--rw",
        "randread",
        "--runtime",
        "1s",
    ]);
    let r = &report["results"][0];
    check_result(r);
    assert!(r["notes"].to_string().contains("prefilled"), "{r}");
    assert!(
        r["allocated_before"].as_u64().unwrap() >= 16 << 20,
        "read from written data only"
    );
}

/// `--iodepth N` keeps N requests in flight the whole run, as fio does, on every kind of
/// target. By Little's law the mean number in flight is IOPS × mean latency; a file loop that
/// reaped every finished request before refilling the free slots one by one held 9-10 of 16.
#[test]
fn every_target_keeps_the_queue_depth_it_is_given() {
    let nfs = format!("{}/{}", nfs_url(), unique("depthnfs"));
    let file = format!("file:{}/{}", nfs_dir().display(), unique("depth"));
    let rbd = format!("rbd:volumes/{}", unique("depthvol"));
    let (_, report) = bench_report(&[
        &nfs,
        &file,
        &rbd,
        "--size",
        "64M",
        "--rw",
        "randread",
        "--iodepth",
        "16",
        "--runtime",
        "2s",
    ]);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{report}");
    for r in results {
        check_result(r);
        let in_flight = r["iops"].as_f64().unwrap() * r["lat_us"]["mean"].as_f64().unwrap() / 1e6;
        assert!(
            (0.85 * 16.0..=16.5).contains(&in_flight),
            "{}: mean requests in flight {in_flight:.1}, asked for 16: {r}",
            r["target"]
        );
    }
}

#[test]
fn regression_gate_names_the_metric() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.json");
    let file = format!("file:{}/{}", nfs_dir().display(), unique("gate"));
    let out = bench(&[
        &file,
        "--size",
        "16M",
        "--runtime",
        "1s",
        "--json",
        base.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Same settings against the honest baseline with a generous limit: passes.
    let out = bench(&[
        &file,
        "--size",
        "16M",
        "--runtime",
        "1s",
        "--baseline",
        base.to_str().unwrap(),
        "--max-regression",
        "10000",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Against a baseline claiming 10x the IOPS: fails and says which metric.
    let mut doctored: Value = serde_json::from_slice(&std::fs::read(&base).unwrap()).unwrap();
    let iops = doctored["results"][0]["iops"].as_f64().unwrap();
    doctored["results"][0]["iops"] = serde_json::json!(iops * 10.0);
    let bad = dir.path().join("doctored.json");
    std::fs::write(&bad, doctored.to_string()).unwrap();
    let out = bench(&[
        &file,
        "--size",
        "16M",
        "--runtime",
        "1s",
        "--baseline",
        bad.to_str().unwrap(),
        "--max-regression",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("regression") && err.contains("iops") && err.contains(&file),
        "{err}"
    );
}

#[test]
fn bad_targets_are_one_line_errors() {
    let out = bench(&["ftp://x/y", "--runtime", "1s"]);
    assert_one_line_error(&out, 2, &["ftp://x/y", "rbd:POOL/IMAGE"]);
    let out = bench(&["rbd:nosuchpool/img", "--runtime", "1s", "--size", "16M"]);
    assert_one_line_error(&out, 1, &["nosuchpool"]);
    let out = bench(&[
        "nfs://127.0.0.1:1/export/f",
        "--runtime",
        "1s",
        "--nfs-mount-port",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("nfs://127.0.0.1") && err.contains("mount"),
        "{err}"
    );
}
