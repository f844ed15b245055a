//! `export` (RBD → sparse raw file or stdout) and `copy` (RBD → RBD, also to a second cluster)
//! against the real dev clusters, with the `rbd` CLI as witness.
mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};

/// Imports a 64 MiB qcow2 with three data runs as `images/NAME`; returns `rbd export`'s bytes.
fn imported(dir: &Path, name: &str, c: &mut Cleanup) -> Vec<u8> {
    let q = three_run_qcow2(dir, name);
    let qs = q.to_str().unwrap();
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
    // `--no-checksum`, as import-raw takes it: the same bytes, no checksum.
    let bare = dir.path().join("bare.raw");
    let r = json(&rbdkit(&[
        "export",
        &spec,
        bare.to_str().unwrap(),
        "--no-checksum",
        "--format",
        "json",
    ]));
    assert!(
        std::fs::read(&bare).unwrap() == want,
        "--no-checksum output differs"
    );
    assert!(r["checksum"].is_null(), "{r}");

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

/// A thin 32 GiB image (three 4 MiB data runs, 8,192 objects) is exported, checksummed and
/// copied reading only its data (the objects that exist are found by listing the pool when it
/// holds few objects, else by librbd's walk); the results agree with the qcow2 it came from.
/// (Bigger would be slow to remove: `rbd rm` without an object map visits every object.)
#[test]
fn a_thin_image_is_read_only_where_it_has_data() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("t.qcow2");
    let qs = q.to_str().unwrap();
    run_ok("qemu-img", &["create", "-q", "-f", "qcow2", qs, "32G"]);
    run_ok(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            "-c",
            "write -P 0x61 0 4M",
            "-c",
            "write -P 0x62 20G 4M",
            "-c",
            "write -P 0x63 32764M 4M",
            qs,
        ],
    );
    let mut c = Cleanup::new(&conf());
    let name = unique("tib");
    let spec = format!("images/{name}");
    c.add(&spec);
    let imported = json(&rbdkit(&["import-raw", qs, &spec, "--format", "json"]));
    let sum = imported["checksum"].as_str().unwrap().to_string();
    let file_sum = json(&rbdkit(&["checksum", qs, "--format", "json"]));
    assert_eq!(file_sum["checksum"], sum.as_str(), "qcow2 file vs import");
    let image_sum = json(&rbdkit(&["checksum", &spec, "--format", "json"]));
    assert_eq!(
        image_sum["checksum"],
        sum.as_str(),
        "image read back vs import"
    );
    let out = dir.path().join("t.raw");
    let r = json(&rbdkit(&[
        "export",
        &spec,
        out.to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(r["checksum"], sum.as_str());
    assert_eq!(r["bytes_read"], 12 << 20);
    let dest = format!("volumes/{name}");
    c.add(&dest);
    let r = json(&rbdkit(&[
        "copy", &spec, &dest, "--verify", "--format", "json",
    ]));
    assert_eq!(r["checksum"], sum.as_str());
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(&out).unwrap();
    for (at, byte) in [(0u64, 0x61u8), (20 << 30, 0x62), (32764 << 20, 0x63)] {
        let mut b = vec![0u8; 4 << 20];
        f.read_exact_at(&mut b, at).unwrap();
        assert!(b.iter().all(|&x| x == byte), "data at {at}");
    }
}

/// `export` and `convert` onto an NFS share by `nfs://` URL, through the userspace client: the
/// file is the image's bytes, sparse, published only when complete (no temporary file left),
/// never overwritten unless asked; a bad export path is one line.
#[test]
fn export_and_convert_to_an_nfs_share() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::new(&conf());
    let name = unique("nfsx");
    let want = imported(dir.path(), &name, &mut c);
    let spec = format!("images/{name}");
    let (url, share) = (format!("{}/{name}.raw", nfs_url()), nfs_dir());
    let on_share = share.join(format!("{name}.raw"));
    let o = rbdkit(&["export", &spec, &url]);
    assert!(o.status.success(), "{}", stderr(&o));
    let _rm = RemoveOnDrop(on_share.clone());
    assert!(
        std::fs::read(&on_share).unwrap() == want,
        "content differs from rbd export"
    );
    let meta = std::fs::metadata(&on_share).unwrap();
    assert!(
        meta.blocks() * 512 < 8 << 20,
        "64 MiB with ~4 MiB of data holds {} bytes: not sparse",
        meta.blocks() * 512
    );
    let leftovers: Vec<_> = std::fs::read_dir(&share)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("rbdkit-partial"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    // An existing file is refused and kept; --overwrite replaces it.
    std::fs::write(&on_share, b"tenant data").unwrap();
    let o = rbdkit(&["export", &spec, &url]);
    assert_one_line_error(&o, 1, &["already exists", "--overwrite"]);
    assert_eq!(std::fs::read(&on_share).unwrap(), b"tenant data");
    let o = rbdkit(&["export", "--overwrite", &spec, &url]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read(&on_share).unwrap() == want);
    // convert: a qcow2 onto the share, byte-identical to qemu-img's raw output.
    let q = dir.path().join(format!("{name}.qcow2"));
    let conv_url = format!("{}/{name}-conv.raw", nfs_url());
    let conv_share = share.join(format!("{name}-conv.raw"));
    let o = rbdkit(&["convert", q.to_str().unwrap(), &conv_url]);
    assert!(o.status.success(), "{}", stderr(&o));
    let _rm2 = RemoveOnDrop(conv_share.clone());
    assert!(
        std::fs::read(&conv_share).unwrap() == want,
        "convert onto the share differs"
    );
    // A path the server does not export.
    let server = nfs_url().rsplit_once('/').unwrap().0.to_string();
    let o = rbdkit(&["export", &spec, &format!("{server}/no-such-export/x.raw")]);
    assert_one_line_error(&o, 1, &["no-such-export"]);
}

/// Removes a file when the test ends, passed or not.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `convert SRC -`: the raw image on stdout (qemu-img's bytes), the report on stderr; a qcow2
/// arriving on a pipe, whose data comes out of guest order, is refused in one line.
#[test]
fn convert_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("s.qcow2");
    let qs = q.to_str().unwrap();
    run_ok("qemu-img", &["create", "-q", "-f", "qcow2", qs, "24M"]);
    run_ok(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            "-c",
            "write -P 0x21 3M 2M",
            "-c",
            "write -P 0x22 20M 64k",
            qs,
        ],
    );
    let raw = dir.path().join("s.raw");
    run_ok(
        "qemu-img",
        &["convert", "-O", "raw", qs, raw.to_str().unwrap()],
    );
    let want = std::fs::read(&raw).unwrap();
    let o = rbdkit(&["convert", qs, "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        o.stdout == want,
        "stdout differs from qemu-img's raw output"
    );
    assert!(stderr(&o).contains("converted"), "{}", stderr(&o));
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(["convert", "-", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let bytes = std::fs::read(&q).unwrap();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&bytes);
    });
    let o = child.wait_with_output().unwrap();
    let _ = feeder.join();
    assert_one_line_error(&o, 2, &["out of guest order", "file"]);
}
