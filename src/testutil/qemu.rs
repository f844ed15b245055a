//! Fixtures made by qemu's own tools for the disk reader tests: images built with `qemu-img`
//! and `qemu-io`, the reference bytes from `qemu-img convert -O raw`, and the reference block
//! status from `qemu-img map --output=json`.
//!
//! One file for both kinds of test: the unit tests reach it as `crate::testutil::qemu` (test
//! builds only), the integration tests include it from `tests/qemu/mod.rs`. Library code never
//! sees it. It uses nothing but `std`, so it compiles in either crate.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `cmd args` (in `dir` when given), panicking with its stderr if it fails.
pub fn run_in(dir: Option<&Path>, cmd: &str, args: &[&str]) -> Vec<u8> {
    let mut c = Command::new(cmd);
    c.args(args);
    if let Some(d) = dir {
        c.current_dir(d);
    }
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("run {cmd} (is qemu-utils installed?): {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `cmd args`, panicking with its stderr if it fails.
pub fn run(cmd: &str, args: &[&str]) -> Vec<u8> {
    run_in(None, cmd, args)
}

/// `qemu-img create -f qcow2 OPTS DIR/NAME SIZE`, run inside `dir` so relative backing and
/// data file names are stored as given.
pub fn create(dir: &Path, name: &str, size: &str, opts: &[&str]) -> PathBuf {
    let mut args = vec!["create", "-q", "-f", "qcow2"];
    args.extend(opts);
    args.extend([name, size]);
    run_in(Some(dir), "qemu-img", &args);
    dir.join(name)
}

/// The directory holding `img`: qemu's tools run there because qemu resolves a relative
/// external data file name against its working directory (backing file names it resolves
/// against the image's directory, as rbdkit does for both).
fn home(img: &Path) -> Option<&Path> {
    img.parent()
}

/// `qemu-io -f FMT -c CMD... IMG`.
pub fn qemu_io(img: &Path, fmt: &str, cmds: &[&str]) {
    let mut args = vec!["-f", fmt];
    for c in cmds {
        args.extend(["-c", c]);
    }
    let path = img.to_str().expect("utf-8 temp path");
    args.push(path);
    run_in(home(img), "qemu-io", &args);
}

/// `qemu-img convert [ARGS] SRC DST` with the qcow2 output format.
pub fn convert_qcow2(src: &Path, dst: &Path, args: &[&str]) {
    let mut a = vec!["convert", "-O", "qcow2"];
    a.extend(args);
    a.extend([src.to_str().unwrap(), dst.to_str().unwrap()]);
    run_in(home(src), "qemu-img", &a);
}

/// The guest bytes of `img` as qemu reads them (`qemu-img convert -O raw`).
pub fn reference_bytes(img: &Path) -> Vec<u8> {
    let out = img.with_extension("qemu-reference.raw");
    run_in(
        home(img),
        "qemu-img",
        &[
            "convert",
            "-O",
            "raw",
            img.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    let bytes = std::fs::read(&out).expect("read qemu-img output");
    let _ = std::fs::remove_file(&out);
    bytes
}

/// One entry of `qemu-img map --output=json`.
#[derive(Debug, Clone, Copy)]
pub struct MapEntry {
    /// Guest offset.
    pub start: u64,
    /// Bytes.
    pub length: u64,
    /// Holds data (somewhere in the chain).
    pub data: bool,
    /// Reads as zeros.
    pub zero: bool,
    /// Allocated in some layer of the chain.
    pub present: bool,
}

/// qemu's block status of the whole chain of `img`.
pub fn reference_map(img: &Path) -> Vec<MapEntry> {
    let out = run_in(
        home(img),
        "qemu-img",
        &["map", "--output=json", img.to_str().unwrap()],
    );
    let v: serde_json::Value = serde_json::from_slice(&out).expect("qemu-img map JSON");
    v.as_array()
        .expect("qemu-img map prints an array")
        .iter()
        .map(|e| MapEntry {
            start: e["start"].as_u64().expect("start"),
            length: e["length"].as_u64().expect("length"),
            data: e["data"].as_bool().expect("data"),
            zero: e["zero"].as_bool().expect("zero"),
            // Older qemu-img omits "present"; it then means allocated data or zero.
            present: e["present"].as_bool().unwrap_or(true),
        })
        .collect()
}
