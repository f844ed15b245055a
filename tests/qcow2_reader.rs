//! The qcow2 reader against qemu-img, feature by feature: each fixture is made at test time by
//! qemu-img/qemu-io, converted by `rbdkit convert`, and compared byte for byte with
//! `qemu-img convert -O raw`. Bad images must fail with one line, never a panic.
mod common;
use common::run_ok;
use std::path::{Path, PathBuf};
use std::process::Command;

fn qemu_io(img: &Path, fmt: &str, cmds: &[&str]) {
    let mut args = vec!["-f", fmt];
    for c in cmds {
        args.extend(["-c", c]);
    }
    args.push(img.to_str().unwrap());
    run_ok("qemu-io", &args);
}

fn create(dir: &Path, name: &str, size: &str, opts: &[&str]) -> PathBuf {
    let p = dir.join(name);
    let mut args = vec!["create", "-q", "-f", "qcow2"];
    args.extend(opts);
    args.extend([p.to_str().unwrap(), size]);
    run_ok("qemu-img", &args);
    p
}

/// Converts with rbdkit and with qemu-img, asserts identical output.
fn assert_same_as_qemu(src: &Path) {
    let dir = src.parent().unwrap();
    let name = src.file_name().unwrap().to_string_lossy();
    let ours = dir.join(format!("{name}.rbdkit.raw"));
    let theirs = dir.join(format!("{name}.qemu.raw"));
    let out = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args([
            "convert",
            "--overwrite",
            "--no-progress",
            src.to_str().unwrap(),
            ours.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    run_ok(
        "qemu-img",
        &[
            "convert",
            "-O",
            "raw",
            src.to_str().unwrap(),
            theirs.to_str().unwrap(),
        ],
    );
    let (a, b) = (
        std::fs::read(&ours).unwrap(),
        std::fs::read(&theirs).unwrap(),
    );
    assert_eq!(a.len(), b.len(), "{name}: size");
    if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
        panic!("{name}: first difference at byte {i}");
    }
}

fn assert_refused(src: &Path, needle: &str) {
    let out_path = src.with_extension("out.raw");
    let out = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args([
            "convert",
            "--overwrite",
            "--no-progress",
            src.to_str().unwrap(),
            out_path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}: {err}", src.display());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked"));
    assert!(
        !out_path.exists(),
        "nothing is written under the final name"
    );
}

const PATTERN: &[&str] = &[
    "write -P 0x11 0 100k",
    "write -P 0x22 1M 4k",
    "write -z 2M 512k",
    "write -P 0x33 3M 1M",
    "write -P 0x44 7340000 123k",
];

#[test]
fn v2_and_v3_at_every_cluster_size() {
    let dir = tempfile::tempdir().unwrap();
    for compat in ["0.10", "1.1"] {
        for cs in ["512", "4096", "65536", "2M"] {
            let p = create(
                dir.path(),
                &format!("c{cs}-{compat}.qcow2"),
                "9M",
                &["-o", &format!("compat={compat},cluster_size={cs}")],
            );
            qemu_io(&p, "qcow2", PATTERN);
            assert_same_as_qemu(&p);
        }
    }
}

#[test]
fn compressed_deflate_and_zstd() {
    let dir = tempfile::tempdir().unwrap();
    let base = create(dir.path(), "base.qcow2", "9M", &[]);
    qemu_io(&base, "qcow2", PATTERN);
    for (name, opts) in [
        ("deflate.qcow2", vec!["-c"]),
        ("zstd.qcow2", vec!["-c", "-o", "compression_type=zstd"]),
        ("deflate-4k.qcow2", vec!["-c", "-o", "cluster_size=4096"]),
        (
            "zstd-2m.qcow2",
            vec!["-c", "-o", "compression_type=zstd,cluster_size=2M"],
        ),
    ] {
        let p = dir.path().join(name);
        let mut args = vec!["convert", "-O", "qcow2"];
        args.extend(opts);
        args.extend([base.to_str().unwrap(), p.to_str().unwrap()]);
        run_ok("qemu-img", &args);
        assert_same_as_qemu(&p);
    }
}

#[test]
fn extended_l2_subclusters() {
    let dir = tempfile::tempdir().unwrap();
    let p = create(
        dir.path(),
        "ext.qcow2",
        "9M",
        &["-o", "extended_l2=on,cluster_size=64k"],
    );
    // 2 KiB subclusters: partial-cluster writes and zeroes exercise the bitmaps.
    qemu_io(
        &p,
        "qcow2",
        &[
            "write -P 0x55 0 2k",
            "write -P 0x66 6k 4k",
            "write -z 64k 8k",
            "write -P 0x77 200k 70k",
        ],
    );
    assert_same_as_qemu(&p);
    // Over a backing file, unallocated subclusters must come from the backing file.
    let base = create(dir.path(), "ext-base.qcow2", "9M", &[]);
    qemu_io(&base, "qcow2", &["write -P 0x99 0 1M"]);
    let top = create(
        dir.path(),
        "ext-top.qcow2",
        "9M",
        &[
            "-o",
            "extended_l2=on",
            "-b",
            "ext-base.qcow2",
            "-F",
            "qcow2",
        ],
    );
    qemu_io(&top, "qcow2", &["write -P 0xaa 4k 2k", "write -z 40k 4k"]);
    assert_same_as_qemu(&top);
}

#[test]
fn backing_chain_qcow2_over_qcow2_over_raw_with_relative_names() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("base.raw");
    run_ok(
        "qemu-img",
        &["create", "-q", "-f", "raw", raw.to_str().unwrap(), "6M"],
    );
    qemu_io(&raw, "raw", &["write -P 0x10 0 6M"]);
    let mid = create(
        dir.path(),
        "mid.qcow2",
        "8M",
        &["-b", "base.raw", "-F", "raw"],
    );
    qemu_io(&mid, "qcow2", &["write -P 0x20 1M 1M", "write -z 3M 64k"]);
    let top = create(
        dir.path(),
        "top.qcow2",
        "9M",
        &["-b", "mid.qcow2", "-F", "qcow2"],
    );
    qemu_io(
        &top,
        "qcow2",
        &["write -P 0x30 1536k 64k", "write -P 0x31 8M 1M"],
    );
    assert_same_as_qemu(&top);
    // Reading from another working directory still resolves the names against the image's dir.
    let out = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .current_dir("/")
        .args([
            "convert",
            "--overwrite",
            "--no-progress",
            top.to_str().unwrap(),
            dir.path().join("x.raw").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn external_data_file_and_dirty_bit() {
    let dir = tempfile::tempdir().unwrap();
    // qemu-img creates a relative data file name against its working directory; use a full path.
    let data = dir.path().join("ext-data.bin");
    let opt = format!("data_file={}", data.display());
    let p = create(dir.path(), "ext-data.qcow2", "9M", &["-o", &opt]);
    qemu_io(&p, "qcow2", PATTERN);
    assert_same_as_qemu(&p);
    // The dirty bit (incompatible feature bit 0) is harmless for reading.
    let d = create(dir.path(), "dirty.qcow2", "9M", &[]);
    qemu_io(&d, "qcow2", PATTERN);
    let mut bytes = std::fs::read(&d).unwrap();
    bytes[79] |= 1;
    std::fs::write(&d, &bytes).unwrap();
    assert_same_as_qemu(&d);
}

#[test]
fn bad_images_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = create(dir.path(), "good.qcow2", "9M", &[]);
    qemu_io(&good, "qcow2", PATTERN);
    let bytes = std::fs::read(&good).unwrap();
    let write = |name: &str, b: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    // Truncated: data clusters beyond the end of the file.
    assert_refused(
        &write("truncated.qcow2", &bytes[..bytes.len() / 2]),
        "beyond the end",
    );
    // Header only.
    assert_refused(&write("tiny.qcow2", &bytes[..50]), "too short");
    // Garbage after the magic.
    let mut g = b"QFI\xfb".to_vec();
    g.extend(std::iter::repeat(0xffu8).take(8192));
    assert_refused(&write("garbage.qcow2", &g), "qcow2 version");
    // L1 table beyond EOF.
    let mut l1 = bytes.clone();
    l1[40..48].copy_from_slice(&(1u64 << 40).to_be_bytes());
    assert_refused(&write("l1.qcow2", &l1), "L1 table");
    // Absurd virtual size.
    let mut huge = bytes.clone();
    huge[24..32].copy_from_slice(&(1u64 << 63).to_be_bytes());
    assert_refused(&write("huge.qcow2", &huge), "virtual size");
    // Corrupt bit, unknown incompatible feature.
    let mut corrupt = bytes.clone();
    corrupt[79] |= 2;
    assert_refused(&write("corrupt.qcow2", &corrupt), "marked corrupt");
    let mut unknown = bytes.clone();
    unknown[77] |= 1;
    assert_refused(&write("unknown.qcow2", &unknown), "unknown incompatible");
    // Corrupt compressed data.
    let zc = dir.path().join("z.qcow2");
    run_ok(
        "qemu-img",
        &[
            "convert",
            "-c",
            "-O",
            "qcow2",
            good.to_str().unwrap(),
            zc.to_str().unwrap(),
        ],
    );
    let mut z = std::fs::read(&zc).unwrap();
    let n = z.len();
    for b in &mut z[n - 20000..n - 100] {
        *b ^= 0x5a;
    }
    assert_refused(&write("zbad.qcow2", &z), "compressed cluster");
    // Backing loop a -> b -> a.
    let a = create(dir.path(), "loop-a.qcow2", "1M", &[]);
    let _b = create(
        dir.path(),
        "loop-b.qcow2",
        "1M",
        &["-b", "loop-a.qcow2", "-F", "qcow2"],
    );
    run_ok(
        "qemu-img",
        &[
            "rebase",
            "-u",
            "-f",
            "qcow2",
            "-b",
            "loop-b.qcow2",
            "-F",
            "qcow2",
            a.to_str().unwrap(),
        ],
    );
    assert_refused(&a, "loops");
    // Encryption (LUKS).
    let luks = dir.path().join("luks.qcow2");
    run_ok(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "--object",
            "secret,id=sec0,data=not-a-real-secret",
            "-o",
            "encrypt.format=luks,encrypt.key-secret=sec0",
            luks.to_str().unwrap(),
            "4M",
        ],
    );
    assert_refused(&luks, "encrypted");
    // Missing backing file.
    let orphan = create(
        dir.path(),
        "orphan.qcow2",
        "1M",
        &["-b", "gone.qcow2", "-F", "qcow2", "-u"],
    );
    assert_refused(&orphan, "not found");
}
