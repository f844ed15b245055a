//! Live tests of `gluster://HOST/VOLUME/PATH` as a copy destination (`export`, `convert`) and
//! source (`import-raw`, `convert`, `checksum`) against the real GlusterFS volume of
//! scripts/gluster-server.sh and the dev cluster, with the brick directory and the `rbd` CLI
//! as witnesses. RBDKIT_GLUSTER_URL, RBDKIT_GLUSTER_BRICK and CEPH_CONF unset are failures.
//!
//! Files are removed on the brick directly, as tests/gluster_cli.rs does: connecting through
//! libgfapi just to unlink would cost each test glfs_fini's ~10 s.
mod common;
use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Imports a 64 MiB qcow2 with three data runs as `images/NAME`; returns the qcow2 and
/// `rbd export`'s bytes.
fn imported(dir: &Path, name: &str, c: &mut Cleanup) -> (PathBuf, Vec<u8>) {
    let q = three_run_qcow2(dir, name);
    let spec = format!("images/{name}");
    let o = rbdkit(&["import-raw", q.to_str().unwrap(), &spec]);
    assert!(o.status.success(), "{}", stderr(&o));
    c.add(&spec);
    (q, rbd_bytes(&spec))
}

fn rbd_bytes(spec: &str) -> Vec<u8> {
    let o = rbd_with(&conf(), &["export", "--no-progress", spec, "-"]);
    assert!(o.status.success(), "rbd export {spec}: {}", stderr(&o));
    o.stdout
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `gluster://.../FILE` and where FILE lies on the brick (removed when the test ends).
fn target(file: &str) -> (String, OnBrick) {
    let path = gluster_brick().join(file);
    (format!("{}/{file}", gluster_url()), OnBrick(path))
}

/// A file on the brick, removed when the test ends, passed or not.
struct OnBrick(PathBuf);

impl OnBrick {
    fn read(&self) -> Vec<u8> {
        std::fs::read(&self.0).unwrap_or_else(|e| panic!("{}: {e}", self.0.display()))
    }

    fn allocated(&self) -> u64 {
        std::fs::metadata(&self.0).unwrap().blocks() * 512
    }
}

impl Drop for OnBrick {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Entries of the brick's top directory whose name contains `name`: the final file and any
/// hidden temporary file of a copy to it.
fn on_brick_named(name: &str) -> Vec<String> {
    std::fs::read_dir(gluster_brick())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(name))
        .collect()
}

/// Export: the file on the volume is `rbd export`'s bytes, sparse on the brick, with the
/// checksum import-raw printed, and no temporary file is left. An existing file is refused and
/// kept; --overwrite replaces it. qcow2 output to gluster:// is refused before connecting.
#[test]
fn export_to_gluster_is_rbd_export_sparse_and_never_overwrites_unasked() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::new(&conf());
    let name = unique("glexp");
    let (_, want) = imported(dir.path(), &name, &mut c);
    let spec = format!("images/{name}");
    let (url, file) = target(&format!("{name}.raw"));
    let r = json(&rbdkit(&["export", &spec, &url, "--format", "json"]));
    assert!(
        file.read() == want,
        "the volume's file differs from rbd export"
    );
    assert!(
        file.allocated() < 8 << 20,
        "64 MiB with ~4.1 MiB of data holds {} bytes on the brick: not sparse",
        file.allocated()
    );
    assert_eq!(r["checksum"], sha256_tree_hex(&want).as_str());
    assert_eq!(r["bytes_read"], (3 << 20) + 100 * 1024 + (1 << 20));
    assert_eq!(on_brick_named(&name), [format!("{name}.raw")]);

    // Someone's file: refused and kept, then replaced with --overwrite.
    let tenant = dir.path().join("tenant.raw");
    std::fs::write(&tenant, vec![0x77u8; 1 << 20]).unwrap();
    let (kept_url, kept) = target(&format!("{name}-kept.raw"));
    let o = rbdkit(&["convert", tenant.to_str().unwrap(), &kept_url]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(kept.read(), vec![0x77u8; 1 << 20]);
    let o = rbdkit(&["export", &spec, &kept_url]);
    assert_one_line_error(&o, 1, &["already exists", "--overwrite", &kept_url]);
    assert_eq!(
        kept.read(),
        vec![0x77u8; 1 << 20],
        "the existing file changed"
    );
    let o = rbdkit(&["export", "--overwrite", &spec, &kept_url]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(kept.read() == want, "--overwrite did not replace the file");
    let mut left = on_brick_named(&name);
    left.sort();
    assert_eq!(left, [format!("{name}-kept.raw"), format!("{name}.raw")]);

    let o = rbdkit(&["export", &spec, &url, "-O", "qcow2", "--overwrite"]);
    assert_one_line_error(&o, 2, &["gluster://", "qcow2"]);
}

/// convert: a qcow2 onto the volume is qemu-img's raw output, sparse on the brick. A volume
/// that does not exist and a directory that does not exist are one line each.
#[test]
fn convert_qcow2_onto_gluster_is_qemu_img_raw() {
    let dir = tempfile::tempdir().unwrap();
    let name = unique("glconv");
    let q = three_run_qcow2(dir.path(), &name);
    let raw = dir.path().join("want.raw");
    run_ok(
        "qemu-img",
        &[
            "convert",
            "-O",
            "raw",
            q.to_str().unwrap(),
            raw.to_str().unwrap(),
        ],
    );
    let want = std::fs::read(&raw).unwrap();
    let (url, file) = target(&format!("{name}.raw"));
    let o = rbdkit(&["convert", q.to_str().unwrap(), &url, "--checksum", "sha256"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(file.read() == want, "differs from qemu-img convert -O raw");
    assert!(
        file.allocated() < 8 << 20,
        "{} bytes: not sparse",
        file.allocated()
    );
    assert_eq!(on_brick_named(&name), [format!("{name}.raw")]);

    let server = gluster_url().rsplit_once('/').unwrap().0.to_string();
    let missing = format!("{server}/no-such-volume-{name}/x.raw");
    let started = std::time::Instant::now();
    let o = rbdkit(&["convert", q.to_str().unwrap(), &missing]);
    assert_one_line_error(&o, 1, &["no-such-volume", "does not exist"]);
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    let o = rbdkit(&[
        "convert",
        q.to_str().unwrap(),
        &format!("{}/no-dir-{name}/x.raw", gluster_url()),
    ]);
    assert_one_line_error(&o, 1, &["no directory", "no-dir-"]);
    assert!(on_brick_named(&format!("no-dir-{name}")).is_empty());
}

/// import-raw from gluster://: the image is the volume's file (raw, holes from SEEK_DATA), and
/// `checksum` of the URL is the one import-raw printed; a qcow2 on the volume is read as
/// qcow2; one that names a backing file is refused, also with --allow-backing-files; a
/// missing file is one line.
#[test]
fn import_raw_from_gluster_is_the_volume_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::new(&conf());
    let name = unique("glimp");
    let (q, want) = imported(dir.path(), &name, &mut c);
    let (url, _file) = target(&format!("{name}.raw"));
    let o = rbdkit(&["export", &format!("images/{name}"), &url]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dest = format!("images/{name}-gl");
    let r = json(&rbdkit(&["import-raw", &url, &dest, "--format", "json"]));
    c.add(&dest);
    assert!(rbd_bytes(&dest) == want, "import from gluster:// differs");
    assert_eq!(r["source_format"], "raw");
    assert_eq!(r["checksum"], sha256_tree_hex(&want).as_str());
    let sum = json(&rbdkit(&["checksum", &url, "--format", "json"]));
    assert_eq!(sum["checksum"], r["checksum"]);

    // A qcow2's bytes on the volume (copied as declared raw): read as qcow2.
    let (qurl, _qfile) = target(&format!("{name}.qcow2"));
    let o = rbdkit(&[
        "convert",
        q.to_str().unwrap(),
        &qurl,
        "--source-format",
        "raw",
        "--trust-declared-raw",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let qdest = format!("images/{name}-q");
    let r = json(&rbdkit(&["import-raw", &qurl, &qdest, "--format", "json"]));
    c.add(&qdest);
    assert_eq!(r["source_format"], "qcow2");
    assert!(rbd_bytes(&qdest) == want, "qcow2 from gluster:// differs");

    // A qcow2 naming a backing file: refused, and cannot be allowed on a remote volume.
    let base = dir.path().join("base.raw");
    std::fs::write(&base, vec![1u8; 1 << 20]).unwrap();
    let overlay = dir.path().join("overlay.qcow2");
    run_ok(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            base.to_str().unwrap(),
            "-F",
            "raw",
            overlay.to_str().unwrap(),
        ],
    );
    let (ourl, _ofile) = target(&format!("{name}-overlay.qcow2"));
    let o = rbdkit(&[
        "convert",
        overlay.to_str().unwrap(),
        &ourl,
        "--source-format",
        "raw",
        "--trust-declared-raw",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let odest = format!("images/{name}-o");
    let o = rbdkit(&["import-raw", &ourl, &odest]);
    assert_one_line_error(&o, 1, &["backing file", "base.raw", "network volume"]);
    let o = rbdkit(&["import-raw", &ourl, &odest, "--allow-backing-files"]);
    assert_one_line_error(&o, 2, &["--allow-backing-files", "GlusterFS volume"]);
    assert!(!image_exists(&conf(), &odest));

    let o = rbdkit(&[
        "import-raw",
        &format!("{}/no-such-{name}", gluster_url()),
        &odest,
    ]);
    assert_one_line_error(&o, 1, &["no such file", "no-such-"]);
    assert!(!image_exists(&conf(), &odest));
}

/// Exit 1 with one error line that says `want` (the engine's own words for a panic, which
/// [`assert_one_line_error`] would refuse for saying "panicked").
fn failed_with(o: &Output, what: &str, want: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{what}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: one error line, got: {err}");
    assert!(err.contains(want), "{what}: should say {want:?}: {err}");
}

/// An engine panic (injected) during an export or a convert to gluster:// fails with one line
/// and leaves nothing on the volume: neither the file nor its temporary file.
#[test]
fn injected_panic_leaves_no_file_on_the_volume() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cleanup::new(&conf());
    let name = unique("glfault");
    let (q, _) = imported(dir.path(), &name, &mut c);
    let spec = format!("images/{name}");
    let faulty = |fault: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rbdkit"))
            .args(args)
            .arg("--no-progress")
            .env("CEPH_CONF", conf())
            .env("RBDKIT_INJECT_FAULT", fault)
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap()
    };
    // Every fault (as in tests/engine_faults_cli.rs): an early stop must not publish a
    // short file either.
    for &(fault, want) in ENGINE_FAULTS {
        let (url, _file) = target(&format!("{name}-{fault}.raw"));
        let o = faulty(fault, &["export", &spec, &url]);
        failed_with(&o, fault, want);
        assert!(
            on_brick_named(&name).is_empty(),
            "{fault}: left {:?}",
            on_brick_named(&name)
        );
    }
    let (url, _file) = target(&format!("{name}-conv.raw"));
    let o = faulty("decode-panic", &["convert", q.to_str().unwrap(), &url]);
    failed_with(&o, "decode-panic, convert", "a decode thread panicked");
    assert!(
        on_brick_named(&name).is_empty(),
        "convert left {:?}",
        on_brick_named(&name)
    );
}
