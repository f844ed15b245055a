//! What `rbdkit bench` reports, held to fio and hyperfine: randrw's reads and writes apart,
//! min/mean/stddev beside the percentiles, usr/sys CPU, run metadata with every setting,
//! `--repeat` with mean ± σ and "N× faster", `--output-format fio-json` with the field names
//! of fio on this machine, the note (and `--prefill`) about writes into holes, and a live
//! status line only on a terminal. Targets: a file in the NFS export and an RBD image.
mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

fn nfs_dir() -> String {
    std::env::var("RBDKIT_NFS_DIR")
        .expect("RBDKIT_NFS_DIR is not set: run the tests with scripts/test.sh")
}

fn file_target(prefix: &str) -> String {
    format!("file:{}/{}", nfs_dir(), unique(prefix))
}

fn bench_json(args: &[&str]) -> (std::process::Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = rbdkit(&[&["bench"], args, &["--json", json.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    (
        out,
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap(),
    )
}

fn check_lat(l: &Value, what: &str) {
    let k = |n: &str| {
        l[n].as_f64()
            .unwrap_or_else(|| panic!("{what}: no {n}: {l}"))
    };
    assert!(
        k("min") > 0.0 && k("min") <= k("p50") && k("p50") <= k("max"),
        "{what}: {l}"
    );
    assert!(
        k("min") <= k("mean") && k("mean") <= k("max"),
        "{what}: {l}"
    );
    assert!(k("stddev") > 0.0, "{what}: {l}");
}

#[test]
fn randrw_reports_reads_and_writes_apart_with_cpu_and_metadata() {
    let file = file_target("mix");
    let rbd = format!("rbd:volumes/{}", unique("mix"));
    let (out, report) = bench_json(&[
        &file,
        &rbd,
        "--size",
        "16M",
        "--rw",
        "randrw",
        "--mix",
        "70",
        "--ramp",
        "0.2s",
        "--runtime",
        "1s",
        "--iodepth",
        "4",
    ]);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        let t = r["target"].as_str().unwrap();
        let (rd, wr) = (&r["read"], &r["write"]);
        let (ri, wi) = (rd["ios"].as_u64().unwrap(), wr["ios"].as_u64().unwrap());
        assert_eq!(ri + wi, r["ios"].as_u64().unwrap(), "{t}");
        // --mix 70: about 70 % reads.
        let frac = ri as f64 / (ri + wi) as f64;
        assert!((0.6..0.8).contains(&frac), "{t}: {frac}");
        check_lat(&r["lat_us"], t);
        check_lat(&rd["lat_us"], t);
        check_lat(&wr["lat_us"], t);
        assert!(rd["iops"].as_f64().unwrap() > 0.0 && wr["bw_bytes_per_s"].as_f64().unwrap() > 0.0);
        let (u, s) = (
            r["usr_cpu_pct"].as_f64().unwrap(),
            r["sys_cpu_pct"].as_f64().unwrap(),
        );
        assert!(
            u >= 0.0 && s >= 0.0 && u + s > 0.0 && u + s <= 200.0 * 1.5,
            "{t}: usr {u} sys {s}"
        );
    }
    let table = stdout(&out);
    for col in ["min us", "mean us", "stdev us", "usr%", "sys%"] {
        assert!(table.contains(col), "{col}: {table}");
    }
    assert_eq!(
        table
            .lines()
            .filter(|l| l.trim_start().starts_with("read "))
            .count(),
        2,
        "{table}"
    );
    assert_eq!(
        table
            .lines()
            .filter(|l| l.trim_start().starts_with("write "))
            .count(),
        2,
        "{table}"
    );
    // Run metadata: version, time, host, command line, every setting.
    let m = &report["meta"];
    assert_eq!(m["rbdkit_version"], env!("CARGO_PKG_VERSION"));
    assert!(
        m["time"].as_str().unwrap().ends_with('Z')
            && m["unix_time"].as_u64().unwrap() > 1_600_000_000
    );
    assert!(!m["host"].as_str().unwrap().is_empty());
    let cmd: Vec<&str> = m["command_line"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        cmd.contains(&"--mix") && cmd.contains(&rbd.as_str()),
        "{cmd:?}"
    );
    let s = &m["settings"];
    assert_eq!(s["rw"], "randrw");
    assert_eq!(s["mix_read_pct"], 70);
    assert_eq!(s["ramp_s"], 0.2);
    assert_eq!(s["runtime_s"], 1.0);
    assert_eq!(s["iodepth"], 4);
    assert_eq!(s["size"], 16 << 20);
    for k in [
        "bs", "jobs", "io_total", "seed", "phases", "prefill", "buffered", "repeat",
    ] {
        assert!(s.get(k).is_some(), "{k}: {s}");
    }
}

#[test]
fn repeat_prints_mean_and_sigma_and_how_many_times_faster() {
    let a = file_target("repa");
    let b = file_target("repb");
    // The same device at queue depth 1 vs 8 would differ; two files at one depth give two
    // comparable means, which is all the summary needs.
    let (out, report) = bench_json(&[
        &a,
        &b,
        "--size",
        "16M",
        "--runtime",
        "1s",
        "--repeat",
        "2",
        "--iodepth",
        "2",
    ]);
    assert_eq!(report["results"].as_array().unwrap().len(), 4);
    let runs: Vec<u64> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run"].as_u64().unwrap())
        .collect();
    assert_eq!(runs, [0, 1, 0, 1]);
    let table = stdout(&out);
    assert!(
        table.contains("(2 runs)") && table.contains(" ± "),
        "{table}"
    );
    assert!(table.contains("#2"), "{table}");
    assert!(
        table.contains("Summary (randwrite)")
            && table.contains(" ran\n")
            && table.contains("times faster than"),
        "{table}"
    );
    let rel = &report["relative"][0];
    assert!(rel["than"][0]["times"].as_f64().unwrap() >= 1.0, "{rel}");
    assert!(rel["than"][0]["stddev"].as_f64().is_some(), "{rel}");
}

/// Keys of a JSON object.
fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

#[test]
fn fio_json_has_fios_field_names() {
    // fio on this machine is the reference for the names.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("fio.dat");
    let fio = Command::new("fio")
        .args([
            // Options before the first --name are global: fio then prints "global options".
            "--size=4M",
            "--rw=randrw",
            "--bs=4k",
            "--iodepth=1",
            "--ioengine=psync",
            "--runtime=1",
            "--time_based",
            "--name=ref",
            &format!("--filename={}", f.display()),
            "--output-format=json",
        ])
        .output()
        .expect("fio is installed (scripts/install-deps.sh)");
    assert!(
        fio.status.success(),
        "{}",
        String::from_utf8_lossy(&fio.stderr)
    );
    let reference: Value = serde_json::from_slice(&fio.stdout).unwrap();
    let target = file_target("fiojson");
    let out = rbdkit(&[
        "bench",
        &target,
        "--size",
        "16M",
        "--rw",
        "randrw",
        "--runtime",
        "1s",
        "--output-format",
        "fio-json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ours: Value = serde_json::from_slice(&out.stdout).expect("stdout is fio's JSON alone");
    // Top level and job level: our keys are fio's (plus one "rbdkit" object of our own).
    for k in keys(&ours) {
        assert!(reference.get(&k).is_some(), "top-level {k} is not fio's");
    }
    let (rj, oj) = (&reference["jobs"][0], &ours["jobs"][0]);
    for k in keys(oj) {
        assert!(
            k == "rbdkit" || k == "total_cpu" || rj.get(&k).is_some(),
            "job key {k} is not fio's"
        );
    }
    for common in [
        "jobname",
        "read",
        "write",
        "usr_cpu",
        "sys_cpu",
        "job_runtime",
        "elapsed",
        "job options",
        "error",
    ] {
        assert!(oj.get(common).is_some(), "{common}");
    }
    for dir in ["read", "write"] {
        let (r, o) = (&rj[dir], &oj[dir]);
        for k in keys(o) {
            assert!(r.get(&k).is_some(), "{dir}.{k} is not fio's");
        }
        for k in [
            "io_bytes",
            "bw_bytes",
            "bw",
            "iops",
            "runtime",
            "total_ios",
            "lat_ns",
            "clat_ns",
            "iops_mean",
            "iops_stddev",
            "bw_mean",
        ] {
            assert!(o.get(k).is_some(), "{dir}.{k} missing");
        }
        for lat in ["lat_ns", "clat_ns"] {
            for k in ["min", "max", "mean", "stddev", "N"] {
                assert!(
                    r[lat].get(k).is_some() && o[lat].get(k).is_some(),
                    "{dir}.{lat}.{k}"
                );
            }
        }
        assert_eq!(
            keys(&o["clat_ns"]["percentile"]),
            keys(&r["clat_ns"]["percentile"]),
            "{dir}: percentile keys"
        );
        // Values in fio's units: bw in KiB/s, runtime in ms, latencies in ns.
        let iops = o["iops"].as_f64().unwrap();
        assert!(iops > 0.0);
        assert_eq!(
            o["bw"].as_u64().unwrap(),
            (o["bw_bytes"].as_f64().unwrap() / 1024.0).round() as u64
        );
        let by_count = o["total_ios"].as_f64().unwrap() / (o["runtime"].as_f64().unwrap() / 1000.0);
        assert!((by_count / iops - 1.0).abs() < 0.01, "{by_count} vs {iops}");
        assert!(
            o["lat_ns"]["min"].as_u64().unwrap() > 1000,
            "ns, not µs: {}",
            o["lat_ns"]
        );
        assert!(
            o["clat_ns"]["percentile"]["99.000000"].as_u64().unwrap()
                >= o["lat_ns"]["min"].as_u64().unwrap()
        );
    }
    assert_eq!(ours["global options"]["rw"], "randrw");
    assert_eq!(ours["global options"]["rwmixread"], "50");
    // What qualifies the numbers goes to stderr, stdout stays JSON.
    assert!(stderr(&out).contains("prefilled"), "{}", stderr(&out));
}

#[test]
fn writes_into_a_fresh_target_say_they_hit_holes_unless_prefilled() {
    let (out, report) = bench_json(&[&file_target("holes"), "--size", "16M", "--runtime", "1s"]);
    let notes = report["results"][0]["notes"].to_string();
    assert!(
        notes.contains("holes") && notes.contains("fio") && notes.contains("--prefill"),
        "{notes}"
    );
    assert!(
        stdout(&out).contains("--prefill measures as fio does"),
        "{}",
        stdout(&out)
    );
    let (_, report) = bench_json(&[
        &file_target("holes"),
        "--size",
        "16M",
        "--runtime",
        "1s",
        "--prefill",
    ]);
    let r = &report["results"][0];
    let notes = r["notes"].to_string();
    assert!(
        notes.contains("prefilled 16777216") && !notes.contains("into holes"),
        "{notes}"
    );
    assert!(r["allocated_before"].as_u64().unwrap() >= 16 << 20, "{r}");
    // --phases measures the holes on purpose: --prefill with it is refused.
    let out = rbdkit(&[
        "bench",
        &file_target("holes"),
        "--phases",
        "--prefill",
        "--runtime",
        "1s",
    ]);
    assert_one_line_error(&out, 2, &["--prefill", "holes"]);
}

#[test]
fn the_status_line_shows_on_a_terminal_only() {
    let target = file_target("status");
    let args = format!("bench {target} --size 16M --runtime 3s --iodepth 2");
    // Piped: no status line (no carriage returns), only the phase messages.
    let out = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(args.split(' '))
        .env("CEPH_CONF", conf())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains('\r') && !stderr(&out).contains("MiB/s"),
        "{}",
        stderr(&out)
    );
    // On a terminal (script(1) gives it a pty): a refreshed "N s, IOPS, MiB/s" line.
    let out = Command::new("script")
        .args([
            "-qfec",
            &format!("{} {args}", env!("CARGO_BIN_EXE_rbdkit")),
            "/dev/null",
        ])
        .env("CEPH_CONF", conf())
        .output()
        .expect("script(1) from util-linux");
    assert!(out.status.success(), "{}", stdout(&out));
    let tty = stdout(&out);
    assert!(
        tty.contains("\r\x1b[K") && tty.contains("randwrite: 1 s,") && tty.contains("IOPS,"),
        "{tty:?}"
    );
}
