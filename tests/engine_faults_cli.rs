//! Failures inside the copy engine, injected (`RBDKIT_INJECT_FAULT`), through the CLI and
//! against the real dev cluster: a decode job that panics, a producer that stops early or
//! panics, a hasher that panics. Each must end with exit 1, one error line naming the cause,
//! and nothing under the final name: no image (nor a temporary one) in the pool, no file.
mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The faults and what the error line must say.
const FAULTS: &[(&str, &str)] = ENGINE_FAULTS;

fn rbdkit_faulty(fault: &str, args: &[&str], stdin: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbdkit"));
    cmd.args(args)
        .arg("--no-progress")
        .env("CEPH_CONF", conf())
        .env("RBDKIT_INJECT_FAULT", fault)
        .env_remove("RUST_BACKTRACE");
    if let Some(p) = stdin {
        cmd.stdin(Stdio::from(std::fs::File::open(p).unwrap()));
    }
    cmd.output().expect("run rbdkit")
}

fn assert_failed_with(o: &Output, what: &str, want: &str) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{what}: exit status; stderr: {err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: one error line, got: {err}");
    assert!(
        err.contains(want),
        "{what}: error should say {want:?}: {err}"
    );
}

/// A 12 MiB qcow2 with data in every 4 MiB object (so every fault point is reached) and the
/// same disk as raw.
fn fixtures(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let q = dir.join("f.qcow2");
    let r = dir.join("f.raw");
    run_ok(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", q.to_str().unwrap(), "12M"],
    );
    run_ok(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            "-c",
            "write -P 0x11 0 5M",
            "-c",
            "write -P 0x22 6M 6M",
            q.to_str().unwrap(),
        ],
    );
    run_ok(
        "qemu-img",
        &[
            "convert",
            "-O",
            "raw",
            q.to_str().unwrap(),
            r.to_str().unwrap(),
        ],
    );
    (q, r)
}

#[test]
fn engine_failures_never_publish_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let (q, r) = fixtures(dir.path());
    let (qs, rs) = (q.to_str().unwrap(), r.to_str().unwrap());
    for &(fault, want) in FAULTS {
        // The source kinds: a qcow2 file, a raw file, a qcow2 stream, a raw stream; with
        // --verify the read-back runs the engine a second time.
        let cases: [(&str, &[&str], Option<&Path>); 5] = [
            ("qcow2 file", &[qs], None),
            ("raw file", &[rs], None),
            ("qcow2 stream", &["-"], Some(&q)),
            ("raw stream", &["-"], Some(&r)),
            ("qcow2 file --verify", &[qs, "--verify"], None),
        ];
        for (what, src, stdin) in cases {
            let name = unique("fault");
            let dest = format!("images/{name}");
            let mut args = vec!["import-raw", src[0], &dest];
            args.extend_from_slice(&src[1..]);
            let o = rbdkit_faulty(fault, &args, stdin);
            let what = format!("{fault}, import-raw from a {what}");
            assert_failed_with(&o, &what, want);
            assert!(
                !image_exists(&conf(), &dest),
                "{what}: the image was published"
            );
            let left = images_with_prefix(&conf(), "images", &name);
            assert!(left.is_empty(), "{what}: left behind {left:?}");
        }
        let out = dir.path().join(format!("out-{fault}.raw"));
        let o = rbdkit_faulty(
            fault,
            &[
                "convert",
                qs,
                out.to_str().unwrap(),
                "--checksum",
                "sha256-blocks",
            ],
            None,
        );
        assert_failed_with(&o, &format!("{fault}, convert"), want);
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("out-"))
            .collect();
        assert!(files.is_empty(), "{fault}, convert: left {files:?}");
    }
}

/// Without an injected fault the same commands succeed: the test above fails for the fault,
/// not for the set-up.
#[test]
fn the_same_commands_succeed_without_a_fault() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = fixtures(dir.path());
    let name = unique("nofault");
    let dest = format!("images/{name}");
    let mut c = Cleanup::new(&conf());
    c.add(&dest);
    let o = rbdkit_faulty("none", &["import-raw", "-", &dest, "--verify"], Some(&q));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(image_exists(&conf(), &dest));
    let out = dir.path().join("ok.raw");
    let o = rbdkit_faulty(
        "none",
        &["convert", q.to_str().unwrap(), out.to_str().unwrap()],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.exists());
}
