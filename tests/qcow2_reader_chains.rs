//! The disk reader against qemu through other files: backing chains (qcow2 over qcow2 over
//! raw, relative names) and an external data file, compared with `qemu-img convert` and
//! `qemu-img map` as in `qcow2_reader.rs`.
mod qcow2_check;
mod qemu;
use qcow2_check::{chains, check, open, Chain, PATTERN};
use qemu::{create, qemu_io, reference_bytes, run};
use rbdkit::disk::qcow2::Qcow2;
use std::process::Command;

#[test]
fn backing_chain_qcow2_over_qcow2_over_raw_with_relative_names() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let raw = dir.path().join("sub/base.raw");
    run(
        "qemu-img",
        &["create", "-q", "-f", "raw", raw.to_str().unwrap(), "6M"],
    );
    qemu_io(&raw, "raw", &["write -P 0x10 0 5M"]);
    // mid is larger than base: its tail reads zeros from past the backing file's end.
    let mid = create(
        &dir.path().join("sub"),
        "mid.qcow2",
        "8M",
        &["-b", "base.raw", "-F", "raw"],
    );
    qemu_io(&mid, "qcow2", &["write -P 0x20 1M 1M", "write -z 3M 64k"]);
    let top = create(
        dir.path(),
        "top.qcow2",
        "9M",
        &["-b", "sub/mid.qcow2", "-F", "qcow2"],
    );
    qemu_io(
        &top,
        "qcow2",
        &["write -P 0x30 1536k 64k", "write -P 0x31 8M 1M"],
    );
    check(&top, Chain::WithRaw);
    // A chain whose formats must be probed: hide the backing format extension (qemu-img
    // insists on -F) by renaming its type to an unknown one, which readers ignore.
    let probed = create(
        dir.path(),
        "probed.qcow2",
        "9M",
        &["-b", "sub/mid.qcow2", "-F", "qcow2"],
    );
    let mut b = std::fs::read(&probed).unwrap();
    let at = b[..4096]
        .windows(4)
        .position(|w| w == [0xe2, 0x79, 0x2a, 0xca])
        .expect("backing format extension");
    b[at..at + 4].copy_from_slice(&[0x7e, 0x57, 0x00, 0x01]);
    std::fs::write(&probed, &b).unwrap();
    assert!(Qcow2::open(&probed, &chains())
        .unwrap()
        .header()
        .backing_format
        .is_none());
    check(&probed, Chain::WithRaw);
    // The CLI from another working directory resolves names against the image's directory.
    let out = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .current_dir("/")
        .args([
            "convert",
            "--overwrite",
            "--no-progress",
            "--allow-backing-files",
        ])
        .args([&top, &dir.path().join("x.raw")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(dir.path().join("x.raw")).unwrap(),
        reference_bytes(&top)
    );
}

#[test]
fn external_data_file() {
    let dir = tempfile::tempdir().unwrap();
    // Relative data file names, resolved against the image's directory.
    let p = create(
        dir.path(),
        "ext-data.qcow2",
        "9M",
        &["-o", "data_file=ext-data.bin"],
    );
    qemu_io(&p, "qcow2", PATTERN);
    check(&p, Chain::Qcow2Only);
    let raw = create(
        dir.path(),
        "ext-raw.qcow2",
        "9M",
        &["-o", "data_file=ext-raw.bin,data_file_raw=on"],
    );
    qemu_io(&raw, "qcow2", PATTERN);
    check(&raw, Chain::Qcow2Only);
    // The data file is missing.
    std::fs::remove_file(dir.path().join("ext-raw.bin")).unwrap();
    let e = open(&raw, None).err().unwrap().to_string();
    assert!(
        e.contains("external data file") && e.contains("ext-raw.bin"),
        "{e}"
    );
}
