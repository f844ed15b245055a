//! Shared fixture for live tests: the dev cluster from `CEPH_CONF` (a missing cluster is a
//! failure, never a skip), unique names, the `rbdkit` binary and the `rbd` CLI as an
//! independent witness, and clean-up of what a test made.
#![allow(dead_code)]

pub mod qemu_img;

use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The main dev cluster's conf (clone v1). Panics with the fix when unset.
pub fn conf() -> String {
    conf_from("CEPH_CONF")
}

/// The second dev cluster's conf (clone v2, require-min-compat-client mimic).
pub fn conf_v2() -> String {
    conf_from("RBDKIT_CEPH_CONF_V2")
}

/// The reef dev cluster's conf: Debian 13's Ceph 18.2.7, run from its own root filesystem
/// (`scripts/ceph-rootfs.sh`), for the tests that compare rbdkit's reef model with a real reef
/// monitor and mgr.
pub fn conf_reef() -> String {
    conf_from("RBDKIT_CEPH_CONF_REEF")
}

/// The tentacle dev cluster's conf: Debian 14's Ceph 20.2.x, from its own root filesystem, for
/// the tests that compare rbdkit's tentacle model with a real tentacle monitor and mgr.
pub fn conf_tentacle() -> String {
    conf_from("RBDKIT_CEPH_CONF_TENTACLE")
}

fn conf_from(var: &str) -> String {
    match std::env::var(var) {
        Ok(c) if std::path::Path::new(&c).exists() => c,
        Ok(c) => panic!("{var}={c} does not exist: start the dev cluster with scripts/test.sh"),
        Err(_) => panic!(
            "{var} is not set: live tests need the dev cluster; run them with scripts/test.sh"
        ),
    }
}

/// The dev cluster's state directory (keyrings of client.glance and client.cinder live there).
pub fn cluster_dir() -> PathBuf {
    match std::env::var("RBDKIT_CLUSTER_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => PathBuf::from(conf())
            .parent()
            .expect("conf has a directory")
            .to_path_buf(),
    }
}

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs the rbdkit binary against `conf`.
pub fn rbdkit_with(conf: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(args)
        .env("CEPH_CONF", conf)
        .arg("--no-progress")
        .output()
        .expect("run rbdkit")
}

/// Runs the rbdkit binary against the main cluster.
pub fn rbdkit(args: &[&str]) -> Output {
    rbdkit_with(&conf(), args)
}

/// Runs `cmd` to the end (stdout and stderr captured) and returns its output with its peak
/// RSS in KiB, from `wait4` of that one child (`getrusage` of children would mix in every
/// other test's processes, which run in parallel in this process).
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which clippy does not see
pub fn output_with_peak_rss(cmd: &mut Command) -> (Output, u64) {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        out.read_to_end(&mut v).map(|_| v)
    });
    let mut stderr = Vec::new();
    err.read_to_end(&mut stderr).expect("read stderr");
    let stdout = reader.join().unwrap().expect("read stdout");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of that plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes only to the two out-pointers, which point at live locals; the pid
    // is our own child, not yet reaped (std never waited for it).
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    let status = std::os::unix::process::ExitStatusExt::from_raw(status);
    (
        Output {
            status,
            stdout,
            stderr,
        },
        usage.ru_maxrss as u64,
    )
}

/// Runs the rbd CLI against `conf`.
pub fn rbd_with(conf: &str, args: &[&str]) -> Output {
    Command::new("rbd")
        .args(args)
        .env("CEPH_CONF", conf)
        .output()
        .expect("run rbd")
}

/// `rbd ... --format json`, parsed; panics with rbd's stderr on failure.
pub fn rbd_json(conf: &str, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.extend(["--format", "json"]);
    let out = rbd_with(conf, &a);
    assert!(
        out.status.success(),
        "rbd {a:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("rbd printed JSON")
}

/// The names of `spec`'s snapshots, oldest first (`rbd snap ls`).
pub fn snap_names(conf: &str, spec: &str) -> Vec<String> {
    rbd_json(conf, &["snap", "ls", spec])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// Whether `rbd info` finds the image.
pub fn image_exists(conf: &str, spec: &str) -> bool {
    rbd_with(conf, &["info", spec]).status.success()
}

/// Runs a third-party tool (qemu-img, qemu-io, ...) and fails the test with its stderr if it fails.
pub fn run_ok(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Images in `pool` whose names start with `prefix` (the rbd CLI as witness).
pub fn images_with_prefix(conf: &str, pool: &str, prefix: &str) -> Vec<String> {
    stdout(&rbd_with(conf, &["ls", pool]))
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Starts `rbdkit import-raw - images/NAME` reading a pipe the test feeds.
pub fn import_from_pipe(conf: &str, name: &str, extra: &[&str]) -> (Child, ChildStdin) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args([
            "import-raw",
            "-",
            &format!("images/{name}"),
            "--no-progress",
        ])
        .args(extra)
        .env("CEPH_CONF", conf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rbdkit import-raw");
    let stdin = child.stdin.take().expect("piped stdin");
    (child, stdin)
}

/// Waits (at most 60 s) until the temporary image of an import of `images/NAME` exists.
pub fn wait_for_temp_image(conf: &str, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !images_with_prefix(conf, "images", name)
        .iter()
        .any(|n| n.contains(".rbdkit-partial."))
    {
        assert!(
            Instant::now() < deadline,
            "the temporary image never appeared"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a failure with a one-line error that mentions every `needle`.
pub fn assert_one_line_error(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit status; stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected a one-line error, got: {err}");
    for n in needles {
        assert!(err.contains(n), "error should mention {n:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

/// Removes images (children first: give them in creation order) when dropped, snapshots too.
pub struct Cleanup {
    conf: String,
    specs: Vec<String>,
}

impl Cleanup {
    /// Nothing registered yet.
    pub fn new(conf: &str) -> Self {
        Cleanup {
            conf: conf.to_string(),
            specs: Vec::new(),
        }
    }

    /// Remove `spec` (pool/image) at the end.
    pub fn add(&mut self, spec: &str) {
        self.specs.push(spec.to_string());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for spec in self.specs.iter().rev() {
            if let Ok(out) = Command::new("rbd")
                .args(["snap", "ls", spec, "--format", "json"])
                .env("CEPH_CONF", &self.conf)
                .output()
            {
                let snaps: serde_json::Value =
                    serde_json::from_slice(&out.stdout).unwrap_or_default();
                for s in snaps.as_array().into_iter().flatten() {
                    if let Some(name) = s["name"].as_str() {
                        let at = format!("{spec}@{name}");
                        let _ = rbd_with(&self.conf, &["snap", "unprotect", &at]);
                        let _ = rbd_with(&self.conf, &["snap", "rm", &at]);
                    }
                }
            }
            let _ = rbd_with(&self.conf, &["rm", "--no-progress", spec]);
        }
    }
}

/// The `sha256-tree` checksum of `data` (the default), from its definition: RFC 6962's hash
/// tree over the SHA-256 of every 64 KiB block (the last may be shorter), nodes
/// `SHA-256(0x01 || left || right)`, written recursively (the engine builds it with a stack).
pub fn sha256_tree_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                // RFC 6962: the left subtree holds the largest power of two below n.
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                let (l, r) = (mth(&leaves[..k]), mth(&leaves[k..]));
                let mut h = Sha256::new();
                h.update([1u8]);
                h.update(l);
                h.update(r);
                h.finalize().into()
            }
        }
    }
    let leaves: Vec<[u8; 32]> = data
        .chunks(64 << 10)
        .map(|b| Sha256::digest(b).into())
        .collect();
    hex::encode(mth(&leaves))
}

/// The `sha256-blocks` checksum of `data` (the default before `sha256-tree`), from its
/// definition: the SHA-256 of the SHA-256 digests of every 64 KiB block.
pub fn sha256_blocks_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut outer = Sha256::new();
    for block in data.chunks(64 << 10) {
        outer.update(Sha256::digest(block));
    }
    hex::encode(outer.finalize())
}

/// The NFS share the tests write to (`nfs://HOST:PORT/EXPORT`), started by scripts/test.sh.
pub fn nfs_url() -> String {
    std::env::var("RBDKIT_NFS_URL").expect(
        "RBDKIT_NFS_URL is not set: run the tests with scripts/test.sh (it starts the NFS server)",
    )
}

/// The local directory the NFS server exports, to check what arrived on the share.
pub fn nfs_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("RBDKIT_NFS_DIR")
            .expect("RBDKIT_NFS_DIR is not set: run the tests with scripts/test.sh"),
    )
}

/// The GlusterFS volume the tests write to (`gluster://HOST/VOLUME`), started by
/// scripts/test.sh with scripts/gluster-server.sh. Unset is a failure, never a skip.
pub fn gluster_url() -> String {
    std::env::var("RBDKIT_GLUSTER_URL").expect(
        "RBDKIT_GLUSTER_URL is not set: run the tests with scripts/test.sh (it starts the GlusterFS server), or export `bash scripts/gluster-server.sh url`",
    )
}

/// The brick directory of that volume, where its files lie as plain files: the witness of
/// what arrived on the volume.
pub fn gluster_brick() -> PathBuf {
    PathBuf::from(std::env::var("RBDKIT_GLUSTER_BRICK").expect(
        "RBDKIT_GLUSTER_BRICK is not set: run the tests with scripts/test.sh, or export `bash scripts/gluster-server.sh dir`",
    ))
}

/// The iSCSI LUN the tests write to (`iscsi://HOST:PORT/IQN/1`, thin-provisioned), started by
/// scripts/test.sh with scripts/lvm-iscsi.sh. Unset is a failure, never a skip.
pub fn iscsi_url() -> String {
    std::env::var("RBDKIT_ISCSI_URL").expect(
        "RBDKIT_ISCSI_URL is not set: run the tests with scripts/test.sh (it starts tgtd), or export `bash scripts/lvm-iscsi.sh url`",
    )
}

/// The backing file of that LUN: the witness of what arrived on it.
pub fn iscsi_backing() -> PathBuf {
    PathBuf::from(std::env::var("RBDKIT_ISCSI_BACKING").expect(
        "RBDKIT_ISCSI_BACKING is not set: run the tests with scripts/test.sh, or export `bash scripts/lvm-iscsi.sh backing`",
    ))
}

/// LUN 2 of the same target (64 MiB, no thin provisioning, so no UNMAP) and its backing file.
pub fn iscsi_thick() -> (String, PathBuf) {
    let url = iscsi_url();
    let base = url
        .strip_suffix("/1")
        .expect("RBDKIT_ISCSI_URL names LUN 1");
    let file = std::env::var("RBDKIT_ISCSI_THICK_BACKING").expect(
        "RBDKIT_ISCSI_THICK_BACKING is not set: run the tests with scripts/test.sh, or export `bash scripts/lvm-iscsi.sh backing 2`",
    );
    (format!("{base}/2"), PathBuf::from(file))
}

/// `rbdkit bench ARGS --no-progress` with no Ceph cluster named (CEPH_CONF removed), for
/// targets that need none (gluster://, iscsi://).
pub fn bench_local(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .arg("bench")
        .args(args)
        .arg("--no-progress")
        .env_remove("CEPH_CONF")
        .output()
        .expect("run rbdkit")
}

/// [`bench_local`] with `--json`, asserting success: the report.
pub fn bench_local_json(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = bench_local(&[args, &["--json", json.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
}

/// Asserts that one bench result measured something sound: I/Os, no errors, ordered
/// percentiles, CPU per I/O, and a note that mentions `note` (the library that did the I/O).
pub fn assert_measured(r: &serde_json::Value, note: &str) {
    let what = format!("{} {}", r["target"], r["phase"]);
    assert!(r["iops"].as_f64().unwrap() > 0.0, "{what}: {r}");
    let errors = r["errors"].as_u64();
    assert_eq!(errors, Some(0), "{what}: {}", r["first_error"]);
    assert!(r["lat_us"]["p99"].as_f64().unwrap() >= r["lat_us"]["p50"].as_f64().unwrap());
    assert!(r["cpu_us_per_io"].as_f64().unwrap() > 0.0, "{what}");
    let notes = r["notes"].to_string();
    assert!(notes.contains(note), "{what}: {notes}");
}

/// The `ceph` CLI against `conf`, with a 60 s limit (a cluster that stopped answering fails
/// the test instead of hanging it).
pub fn ceph_with(conf: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("60")
        .arg("ceph")
        .args(args)
        .env("CEPH_CONF", conf)
        .output()
        .expect("run ceph")
}

/// [`ceph_with`], panicking with ceph's stderr when it fails.
pub fn ceph_ok(conf: &str, args: &[&str]) {
    let o = ceph_with(conf, args);
    assert!(o.status.success(), "ceph {args:?}: {}", stderr(&o));
}

/// Runs `scripts/dev-cluster.sh COMMAND --dir DIR [ARGS]` on the dev cluster of `conf`, one call
/// at a time per test binary (its `mgr` and `osds` commands are idempotent, not concurrent), and
/// panics with the script's output when it fails.
pub fn dev_cluster(conf: &str, command: &str, args: &[&str]) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::path::Path::new(conf)
        .parent()
        .expect("conf has a directory");
    let t = Instant::now();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/dev-cluster.sh");
    let o = Command::new("bash")
        .args([script, command, "--dir"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "dev-cluster.sh {command}: {}{}",
        stdout(&o),
        stderr(&o)
    );
    eprintln!(
        "dev-cluster.sh {command} {args:?}: {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

/// The CRUSH root that [`second_root`] fills with three OSDs of their own.
pub const SECOND_ROOT: &str = "second";

/// Makes sure the dev cluster of `conf` has a CRUSH root [`SECOND_ROOT`] with three OSDs, beside
/// the default root's one: room for an erasure-coded 2+1 pool and for pools on a second root.
/// The default root's pools do not move.
pub fn second_root(conf: &str) {
    dev_cluster(conf, "osds", &["--root", SECOND_ROOT, "--count", "3"]);
}

/// A 64 MiB qcow2 `DIR/NAME.qcow2` with three data runs: 0x33 at 1 MiB (3 MiB), 0x44 at
/// 40 MiB (100 KiB), 0x55 at 63 MiB (1 MiB).
pub fn three_run_qcow2(dir: &std::path::Path, name: &str) -> PathBuf {
    let q = dir.join(format!("{name}.qcow2"));
    let qs = q.to_str().unwrap();
    run_ok("qemu-img", &["create", "-q", "-f", "qcow2", qs, "64M"]);
    run_ok(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            "-c",
            "write -P 0x33 1M 3M",
            "-c",
            "write -P 0x44 40M 100k",
            "-c",
            "write -P 0x55 63M 1M",
            qs,
        ],
    );
    q
}

/// The copy engine's injectable faults (`RBDKIT_INJECT_FAULT`) and what the error line says.
pub const ENGINE_FAULTS: &[(&str, &str)] = &[
    (
        "decode-panic",
        "a decode thread panicked (injected decode failure",
    ),
    (
        "producer-stops-early",
        "never arrived; nothing was published",
    ),
    (
        "producer-panic",
        "the producer thread panicked (injected producer failure)",
    ),
    (
        "hasher-panic",
        "the hasher thread panicked (injected hasher failure)",
    ),
];
