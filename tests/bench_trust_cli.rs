//! `rbdkit bench` checks what it can before the run and never loses a measurement: a `--plot`
//! or `--json` path that cannot be written and a baseline measured with other settings are
//! refused before any I/O (naming the setting), the table is printed even when writing the plot
//! fails afterwards, and the regression gate writes its comparison into the JSON and says when
//! it passes. Targets live in the NFS server's exported directory (RBDKIT_NFS_DIR).
mod common;
use common::*;
use serde_json::Value;
use std::path::PathBuf;

fn nfs_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("RBDKIT_NFS_DIR")
            .expect("RBDKIT_NFS_DIR is not set: run the tests with scripts/test.sh"),
    )
}

fn bench(args: &[&str]) -> std::process::Output {
    rbdkit(&[&["bench"], args].concat())
}

#[test]
fn unwritable_plot_and_json_paths_are_refused_before_any_io() {
    let path = nfs_dir().join(unique("plotcheck"));
    let target = format!("file:{}", path.display());
    for flag in ["--plot", "--json"] {
        let out = bench(&[
            &target,
            "--size",
            "16M",
            "--runtime",
            "1s",
            flag,
            "/nonexistent-dir/r.out",
        ]);
        assert_one_line_error(&out, 2, &[flag, "/nonexistent-dir/r.out", "before the run"]);
        assert!(
            !path.exists(),
            "{flag}: the target was created before the check"
        );
        assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    }
}

#[test]
fn a_baseline_with_other_settings_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.json");
    let path = nfs_dir().join(unique("basecheck"));
    let target = format!("file:{}", path.display());
    let common = [target.as_str(), "--size", "16M", "--runtime", "1s"];
    let out = bench(
        &[
            &common[..],
            &["--iodepth", "4", "--json", base.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = bench(
        &[
            &common[..],
            &["--iodepth", "8", "--baseline", base.to_str().unwrap()],
        ]
        .concat(),
    );
    assert_one_line_error(&out, 2, &["baseline", "--iodepth 4 (this run: 8)"]);
    let out = bench(
        &[
            &common[..],
            &[
                "--iodepth",
                "4",
                "--rw",
                "randrw",
                "--baseline",
                base.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert_one_line_error(&out, 2, &["--rw randwrite (this run: randrw)"]);
    // A baseline of other targets: refused before the run too, listing what it has.
    let other = format!("file:{}", nfs_dir().join(unique("other")).display());
    let out = bench(&[
        &other,
        "--size",
        "16M",
        "--runtime",
        "1s",
        "--iodepth",
        "4",
        "--baseline",
        base.to_str().unwrap(),
    ]);
    assert_one_line_error(&out, 2, &["no result for", &target]);
    assert!(!path.exists(), "targets the runs created are gone");
}

#[test]
fn the_table_is_printed_when_writing_the_plot_fails_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let plot_dir = dir.path().join("plots");
    std::fs::create_dir(&plot_dir).unwrap();
    let json = dir.path().join("r.json");
    let target = format!("file:{}", nfs_dir().join(unique("lost")).display());
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args([
            "bench",
            &target,
            "--size",
            "16M",
            "--runtime",
            "3s",
            "--no-progress",
            "--json",
            json.to_str().unwrap(),
            "--plot",
            plot_dir.join("r.svg").to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The path was fine when checked; it goes away while the benchmark runs.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    std::fs::remove_dir(&plot_dir).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("r.svg"), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(
        table.contains("randwrite") && table.contains("IOPS"),
        "{table}"
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(report["results"][0]["iops"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_gate_judges_repeated_runs_and_writes_its_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.json");
    let now = dir.path().join("now.json");
    let target = format!("file:{}", nfs_dir().join(unique("gate")).display());
    let args = [
        target.as_str(),
        "--size",
        "16M",
        "--runtime",
        "1s",
        "--repeat",
        "3",
        "--iodepth",
        "4",
    ];
    let out = bench(&[&args[..], &["--json", base.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let b: Value = serde_json::from_slice(&std::fs::read(&base).unwrap()).unwrap();
    assert_eq!(b["results"].as_array().unwrap().len(), 3, "three runs");
    assert_eq!(b["summary"][0]["runs"], 3);
    assert!(
        b["summary"][0]["iops"]["stddev"].as_f64().unwrap() > 0.0,
        "{}",
        b["summary"]
    );
    // Against itself with a generous limit: passes, says so, and the JSON holds the comparison.
    let out = bench(
        &[
            &args[..],
            &[
                "--baseline",
                base.to_str().unwrap(),
                "--max-regression",
                "1000",
                "--json",
                now.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("regression gate passed"),
        "{}",
        stderr(&out)
    );
    let n: Value = serde_json::from_slice(&std::fs::read(&now).unwrap()).unwrap();
    let gate = &n["gate"];
    assert_eq!(gate["passed"], true, "{gate}");
    assert_eq!(gate["noise_measured"], true, "{gate}");
    let checks = gate["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3, "iops, bw, p99: {gate}");
    for c in checks {
        assert_eq!(c["baseline"]["n"], 3);
        assert_eq!(c["current"]["n"], 3);
        assert!(c["noise_pct"].as_f64().unwrap() > 0.0, "{c}");
    }
    // A baseline claiming 10x the IOPS with tight runs: a regression beyond the noise; the
    // table is still printed and the failed comparison is in the JSON.
    let mut doctored = b.clone();
    for r in doctored["results"].as_array_mut().unwrap() {
        let v = r["iops"].as_f64().unwrap();
        r["iops"] = serde_json::json!(v * 10.0);
    }
    let bad = dir.path().join("doctored.json");
    std::fs::write(&bad, doctored.to_string()).unwrap();
    let out = bench(
        &[
            &args[..],
            &[
                "--baseline",
                bad.to_str().unwrap(),
                "--json",
                now.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("regression") && err.contains("iops") && err.contains("gate failed"),
        "{err}"
    );
    assert!(stdout(&out).contains("randwrite"), "{}", stdout(&out));
    let n: Value = serde_json::from_slice(&std::fs::read(&now).unwrap()).unwrap();
    assert_eq!(n["gate"]["passed"], false);
    assert!(
        n["gate"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["metric"] == "iops" && c["verdict"] == "regression"),
        "{}",
        n["gate"]
    );
}
