//! `export` (RBD → sparse raw file or stdout) and `copy` (RBD → RBD, also to a second cluster)
//! against the real dev clusters, with the `rbd` CLI as witness.
mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};

/// Imports a 64 MiB qcow2 with three data runs as `images/NAME`; returns `rbd export`'s bytes.
fn imported(dir: &Path, name: &str, c: &mut Cleanup) -> Vec<u8> {
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
    let spec = format!("images/{name}");
    let o = rbdkit(&["import-raw", qs, &spec]);
    assert!(o.status.success(), "{}", stderr(&o));
    c.add(&spec);
    rbd_bytes(&conf(), &spec)
}

fn rbd_bytes(conf: &str, spec: &str) -> Vec<u8> {
    let o = rbd_with(conf, &["export", "--no-progress", spec, "-"]);
    assert!(o.status.success(), "rbd export {spec}: {}", stderr(&o));
    o.stdout
}

fn json(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn export_to_a_file_and_to_stdout_matches_rbd_export() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::new(&conf());
    let name = unique("exp");
    let want = imported(dir.path(), &name, &mut c);
    let spec = format!("images/{name}");
    let out = dir.path().join("out.raw");
    let r = json(&rbdkit(&[
        "export",
        &spec,
        out.to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert!(
        std::fs::read(&out).unwrap() == want,
        "file differs from rbd export"
    );
    // Sparse: only the data (about 4.1 MiB) is allocated.
    use std::os::unix::fs::MetadataExt;
    let allocated = std::fs::metadata(&out).unwrap().blocks() * 512;
    assert!(allocated < 8 << 20, "{allocated} bytes allocated");
    assert_eq!(r["checksum"], sha256_tree_hex(&want).as_str());
    assert_eq!(r["bytes_read"], (3 << 20) + 100 * 1024 + (1 << 20));

    let o = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(["export", &spec, "-", "--no-progress"])
        .env("CEPH_CONF", conf())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout == want, "stream differs from rbd export");
    assert!(
        stderr(&o).contains("to stdout"),
        "the report goes to stderr"
    );

    // A snapshot: what the image held then, not what it holds now.
    let o = rbd_with(&conf(), &["snap", "create", &format!("{spec}@s1")]);
    assert!(o.status.success(), "{}", stderr(&o));
    run_ok(
        "rbd",
        &[
            "-c",
            &conf(),
            "bench",
            "--io-type",
            "write",
            "--io-size",
            "4K",
            "--io-total",
            "64K",
            &spec,
        ],
    );
    let snap_out = dir.path().join("snap.raw");
    let o = rbdkit(&["export", &format!("{spec}@s1"), snap_out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::read(&snap_out).unwrap() == want,
        "snapshot export differs"
    );
}

#[test]
fn export_never_overwrites_and_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::new(&conf());
    let name = unique("expx");
    let want = imported(dir.path(), &name, &mut c);
    let spec = format!("images/{name}");
    let out = dir.path().join("kept.raw");
    std::fs::write(&out, b"keep me").unwrap();
    let o = rbdkit(&["export", &spec, out.to_str().unwrap()]);
    assert_one_line_error(&o, 1, &["already exists", "--overwrite"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    let o = rbdkit(&["export", &spec, out.to_str().unwrap(), "--overwrite"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read(&out).unwrap() == want);

    let missing = dir.path().join("missing.raw");
    let o = rbdkit(&[
        "export",
        &format!("images/{}", unique("nosuch")),
        missing.to_str().unwrap(),
    ]);
    assert_one_line_error(&o, 1, &["ENOENT"]);
    assert!(!missing.exists());

    // A decode job that panics mid-export: exit 1 and no file under the name.
    let o = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(["export", &spec, missing.to_str().unwrap(), "--no-progress"])
        .env("CEPH_CONF", conf())
        .env("RBDKIT_INJECT_FAULT", "decode-panic")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("a decode thread panicked"),
        "{}",
        stderr(&o)
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("missing"))
        .collect();
    assert!(names.is_empty(), "left {names:?}");
}

#[test]
fn copy_to_another_pool_and_another_cluster_is_identical() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::new(&conf());
    let name = unique("cp");
    let want = imported(dir.path(), &name, &mut c);
    let spec = format!("images/{name}");
    let o = rbd_with(&conf(), &["snap", "create", &format!("{spec}@base")]);
    assert!(o.status.success(), "{}", stderr(&o));

    let dest = format!("volumes/{name}");
    c.add(&dest);
    let r = json(&rbdkit(&[
        "copy",
        &format!("{spec}@base"),
        &dest,
        "--verify",
        "--format",
        "json",
    ]));
    assert!(rbd_bytes(&conf(), &dest) == want, "copy differs");
    assert_eq!(r["verified"], true);
    assert_eq!(r["checksum"], sha256_tree_hex(&want).as_str());
    assert_eq!(r["bytes_written"], (3 << 20) + 100 * 1024 + (1 << 20));
    // Never over an existing image.
    let o = rbdkit(&["copy", &spec, &dest]);
    assert_one_line_error(&o, 1, &["already exists"]);

    // To the second cluster, as its own client.admin, with its own conf.
    let other = conf_v2();
    let mut c2 = Cleanup::new(&other);
    let dest2 = format!("volumes/{name}");
    c2.add(&dest2);
    let o = rbdkit(&["copy", &spec, &dest2, "--dest-conf", &other, "--verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        rbd_bytes(&other, &dest2) == want,
        "cross-cluster copy differs"
    );
    let o = rbdkit(&[
        "copy",
        &spec,
        &format!("volumes/{}", unique("nope")),
        "--dest-conf",
        "/nonexistent.conf",
    ]);
    assert_eq!(
        o.status.code().map(|c| c != 0),
        Some(true),
        "{}",
        stderr(&o)
    );
}
