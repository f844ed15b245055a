//! Faults on purpose, against the real dev cluster: the OSD killed and restarted mid-import,
//! mid-bench and mid-backup, monitors unreachable for every command, and the cluster driven
//! FULL mid-import and before and during a backup.
//! These tests disturb the whole cluster, so they run one at a time (a lock), and each puts
//! the cluster back the way it found it.
mod common;
use common::*;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static CLUSTER: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    CLUSTER.lock().unwrap_or_else(|e| e.into_inner())
}

fn ceph(args: &[&str]) -> std::process::Output {
    Command::new("timeout")
        .arg("60")
        .arg("ceph")
        .args(args)
        .env("CEPH_CONF", conf())
        .output()
        .unwrap()
}

fn osd_pid_file() -> std::path::PathBuf {
    cluster_dir().join("run").join("osd.0.pid")
}

fn kill_osd() {
    let pid: i32 = std::fs::read_to_string(osd_pid_file())
        .expect("osd.0 pid file")
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) with a pid read from the dev cluster's pid file.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    // SAFETY: signal 0 only checks that the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(Instant::now() < deadline, "osd.0 did not die");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_osd() {
    let st = Command::new("ceph-osd")
        .args(["-c", &conf(), "-i", "0"])
        .status()
        .unwrap();
    assert!(st.success(), "restart osd.0");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new("timeout")
            .args(["10", "rados", "-p", "images", "ls"])
            .env("CEPH_CONF", conf())
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "osd.0 did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn images_named(prefix: &str) -> Vec<String> {
    images_with_prefix(&conf(), "images", prefix)
}

/// An import from a pipe we feed ourselves, reporting as JSON.
fn start_import(name: &str, extra: &[&str]) -> (Child, std::process::ChildStdin) {
    import_from_pipe(&conf(), name, &[&["--format", "json"], extra].concat())
}

fn wait_for_temp(name: &str) {
    wait_for_temp_image(&conf(), name);
}

fn block(seed: u8) -> Vec<u8> {
    (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 ^ seed)
        .collect()
}

#[test]
fn osd_restart_mid_import_completes_with_the_right_checksum() {
    let _g = serial();
    let name = unique("osdrestart");
    let mut cleanup = Cleanup::new(&conf());
    cleanup.add(&format!("images/{name}"));
    let (child, mut stdin) = start_import(&name, &[]);
    let mut sent = Vec::new();
    for i in 0..16 {
        let b = block(i);
        sent.extend_from_slice(&b);
        stdin.write_all(&b).unwrap();
    }
    wait_for_temp(&name);
    kill_osd();
    // Writes now wait for the OSD; keep feeding from another thread.
    let mut rest = Vec::new();
    for i in 16..48 {
        let b = block(i);
        sent.extend_from_slice(&b);
        rest.push(b);
    }
    let writer = std::thread::spawn(move || {
        for b in rest {
            stdin.write_all(&b).unwrap();
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    start_osd();
    writer.join().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["checksum"].as_str().unwrap(), sha256_tree_hex(&sent));
    assert_eq!(j["virtual_size"].as_u64(), Some(48 << 20));
    assert_eq!(
        images_named(&name),
        vec![name.clone()],
        "only the final image, no leftover"
    );
}

#[test]
fn osd_restart_mid_bench_is_reported_not_hung() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let target = format!("rbd:volumes/{}", unique("benchfault"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args([
            "bench",
            &target,
            "--size",
            "64M",
            "--runtime",
            "6s",
            "--iodepth",
            "8",
            "--no-progress",
        ])
        .args(["--json", json.to_str().unwrap()])
        .env("CEPH_CONF", conf())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    kill_osd();
    std::thread::sleep(Duration::from_secs(3));
    start_osd();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "bench hung after the OSD came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let r = &report["results"][0];
    assert!(r["ios"].as_u64().unwrap() > 0, "{r}");
    let errors = r["errors"].as_u64().unwrap();
    // Either librbd retried everything (no errors) or the errors were counted and reported.
    assert_eq!(out.status.success(), errors == 0, "{}", stderr(&out));
    assert!(
        r["lat_us"]["max"].as_f64().unwrap() >= 1_000_000.0,
        "the outage shows in the max latency: {}",
        r["lat_us"]
    );
    assert!(!image_exists(&conf(), target.trim_start_matches("rbd:")));
}

#[test]
fn every_command_fails_fast_when_no_monitor_answers() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("ceph.conf");
    std::fs::write(&dead, "[global]\nmon_host = 127.0.0.1:1\n").unwrap();
    let raw = dir.path().join("x.raw");
    std::fs::write(&raw, vec![1u8; 4096]).unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["create", "volumes/x", "--size", "1G"],
        vec!["clone", "images/x@s", "volumes/y"],
        vec!["info", "images/x"],
        vec!["rm", "volumes/x"],
        vec!["import-raw", raw.to_str().unwrap(), "images/x"],
        vec!["cleanup", "images"],
        vec!["pg", "check"],
        vec!["bench", "rbd:volumes/x", "--runtime", "1s"],
    ];
    for args in commands {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
            .args(&args)
            .args(["--connect-timeout", "2", "-c", dead.to_str().unwrap()])
            .output()
            .unwrap();
        assert_one_line_error(&out, 1, &["no monitor answered within 2 s"]);
        // Generous bound: the point is "fails on its own", not a timing benchmark.
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{args:?} took {:?}",
            t.elapsed()
        );
    }
}

fn set_full_ratios(full: &str, backfill: &str, near: &str) {
    // Order matters: the monitor keeps nearfull <= backfillfull <= full at every step.
    let raising = full.parse::<f64>().unwrap() > 0.5;
    let steps: Vec<(&str, &str)> = if raising {
        vec![
            ("set-full-ratio", full),
            ("set-backfillfull-ratio", backfill),
            ("set-nearfull-ratio", near),
        ]
    } else {
        vec![
            ("set-nearfull-ratio", near),
            ("set-backfillfull-ratio", backfill),
            ("set-full-ratio", full),
        ]
    };
    for (cmd, v) in steps {
        assert!(
            ceph(&["osd", cmd, v]).status.success(),
            "ceph osd {cmd} {v}"
        );
    }
}

fn wait_health(full: bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = stdout(&ceph(&["health"]));
        if h.contains(" full osd") == full {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cluster never became {}: {h}",
            if full { "full" } else { "healthy" }
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Puts the full ratios back even if the test fails.
struct Unfull;
impl Drop for Unfull {
    fn drop(&mut self) {
        set_full_ratios("0.95", "0.90", "0.85");
    }
}

#[test]
fn a_full_cluster_stops_the_import_with_a_clear_error() {
    let _g = serial();
    let name = unique("full");
    // Already full: refused before anything is created.
    let unfull = Unfull;
    set_full_ratios("0.0007", "0.0006", "0.0005");
    wait_health(true);
    let raw = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(raw.path(), vec![7u8; 1 << 20]).unwrap();
    let out = rbdkit(&[
        "import-raw",
        raw.path().to_str().unwrap(),
        &format!("images/{name}-pre"),
    ]);
    assert_one_line_error(
        &out,
        1,
        &["cluster is full", "OSD_FULL", "nothing was created"],
    );
    assert!(images_named(&format!("{name}-pre")).is_empty());
    drop(unfull);
    wait_health(false);

    // Goes full mid-import: the import stops with the condition named instead of blocking.
    let unfull = Unfull;
    let (child, mut stdin) = start_import(&name, &["--op-timeout", "5"]);
    for i in 0..8 {
        stdin.write_all(&block(i)).unwrap();
    }
    wait_for_temp(&name);
    set_full_ratios("0.0007", "0.0006", "0.0005");
    wait_health(true);
    let writer = std::thread::spawn(move || {
        for i in 8..64 {
            if stdin.write_all(&block(i)).is_err() {
                break;
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    assert_one_line_error(&out, 1, &["cluster is full", &format!("images/{name}")]);
    assert!(
        !image_exists(&conf(), &format!("images/{name}")),
        "nothing under the final name"
    );
    drop(unfull);
    wait_health(false);
    // Whatever a full cluster would not let it remove, clean-up removes now.
    let out = rbdkit(&["cleanup", "images"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(images_named(&name).is_empty(), "{:?}", images_named(&name));
}

/// Snapshots of `spec`, by name.
fn snaps_of(spec: &str) -> Vec<String> {
    snap_names(&conf(), spec)
}

/// `rbd bench` writes of 4 MiB, `total` of them in `pattern` (seq or rand).
fn write_4m(spec: &str, total: &str, pattern: &str) {
    let o = rbd_with(
        &conf(),
        &[
            "bench",
            "--io-type",
            "write",
            "--io-size",
            "4M",
            "--io-total",
            total,
            "--io-pattern",
            pattern,
            spec,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A volume of 1 GiB holding `data` of sequential writes.
fn volume_with_data(c: &mut Cleanup, prefix: &str, data: &str) -> String {
    volume_of_size(c, prefix, "1G", data)
}

/// A volume of `size` holding `data` bytes written from its start.
fn volume_of_size(c: &mut Cleanup, prefix: &str, size: &str, data: &str) -> String {
    let spec = format!("volumes/{}", unique(prefix));
    assert!(rbd_with(&conf(), &["create", &spec, "--size", size])
        .status
        .success());
    c.add(&spec);
    write_4m(&spec, data, "seq");
    spec
}

/// `rbdkit backup SPEC backups` in the background, once it is copying data: its snapshot of the
/// volume exists and it has not finished. `before` names the snapshots the volume already has.
fn backup_copying(spec: &str, extra: &[&str], before: usize) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args([
            "backup",
            spec,
            "backups",
            "--format",
            "json",
            "--no-progress",
        ])
        .args(extra)
        .env("CEPH_CONF", conf())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while snaps_of(spec).len() <= before {
        assert!(
            Instant::now() < deadline,
            "the backup never took its snapshot"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the backup ended before the fault: {}",
        stderr(&child.wait_with_output().unwrap())
    );
    child
}

/// Restores `backups/BASE@SNAP` into a new image and compares it with `spec@snap` by content.
fn restore_equals(c: &mut Cleanup, base: &str, snap: &str, spec: &str) {
    let dest = format!("volumes/{}", unique("rstf"));
    let o = rbdkit(&["restore", &format!("{base}@{snap}"), &dest]);
    c.add(&dest);
    assert!(o.status.success(), "restore: {}", stderr(&o));
    let sum = |s: &str| {
        let o = Command::new("sh")
            .args(["-c", "rbd export --no-progress \"$0\" - | sha256sum", s])
            .env("CEPH_CONF", conf())
            .output()
            .unwrap();
        assert!(o.status.success());
        stdout(&o)
    };
    assert_eq!(sum(&dest), sum(&format!("{spec}@{snap}")), "{base}@{snap}");
}

#[test]
fn osd_restart_mid_backup_completes_and_restores_identical() {
    let _g = serial();
    let mut c = Cleanup::new(&conf());
    let spec = volume_with_data(&mut c, "volume-osdbk", "512M");
    let child = backup_copying(&spec, &[], 0);
    kill_osd();
    std::thread::sleep(Duration::from_secs(3));
    start_osd();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let base = j["base"].as_str().unwrap().to_string();
    c.add(&base);
    let snap = j["snap"].as_str().unwrap();
    assert_eq!(j["kind"], "full");
    restore_equals(&mut c, &base, snap, &spec);
}

#[test]
fn a_full_cluster_stops_a_backup_and_keeps_the_previous_one() {
    let _g = serial();
    let mut c = Cleanup::new(&conf());
    // 4 GiB and 2 GiB of random writes before the incremental: with one write in flight it
    // copies for seconds, longer than the full flag takes to reach the client (512 MiB on
    // 1 GiB raced it once the engine got faster).
    let spec = volume_of_size(&mut c, "volume-fullbk", "4G", "256M");
    let first = rbdkit(&["backup", &spec, "backups", "--format", "json"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let j: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let base = j["base"].as_str().unwrap().to_string();
    c.add(&base);
    let s1 = j["snap"].as_str().unwrap().to_string();
    write_4m(&spec, "2G", "rand");

    // Already full: the incremental is refused and leaves no snapshot behind.
    let unfull = Unfull;
    set_full_ratios("0.0007", "0.0006", "0.0005");
    wait_health(true);
    let out = rbdkit(&["backup", &spec, "backups", "--op-timeout", "5"]);
    assert_one_line_error(&out, 1, &["cluster is full"]);
    drop(unfull);
    wait_health(false);
    assert_eq!(snaps_of(&spec), vec![s1.clone()], "the volume's snapshots");
    assert_eq!(snaps_of(&base), vec![s1.clone()], "the backups");

    // Goes full while the incremental copies: it stops with the condition named.
    let unfull = Unfull;
    // One write in flight, so it is still copying when the monitor's full flag arrives.
    let slow = ["--op-timeout", "5", "--concurrency", "1", "--threads", "1"];
    let child = backup_copying(&spec, &slow, 1);
    set_full_ratios("0.0007", "0.0006", "0.0005");
    let out = child.wait_with_output().unwrap();
    wait_health(true);
    drop(unfull);
    wait_health(false);
    if out.status.success() {
        panic!(
            "the backup finished before the cluster was full: {}",
            stderr(&out)
        );
    }
    assert_one_line_error(&out, 1, &["cluster is full"]);
    assert_eq!(snaps_of(&base), vec![s1.clone()], "no new backup on {base}");
    // The volume keeps no snapshot of the failed backup once clean-up has run.
    let o = rbdkit(&["cleanup", "volumes"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(snaps_of(&spec), vec![s1.clone()], "the volume's snapshots");
    restore_equals(&mut c, &base, &s1, &spec);
}
