//! `convert -O qcow2` and `export -O qcow2` (`--compress zlib|zstd`): the qcow2 files rbdkit
//! writes, judged by qemu: `qemu-img check` finds no error and no leak, `qemu-img convert -O
//! raw` of them is byte-identical to the source's raw, and so is rbdkit's own convert back;
//! zero clusters are not stored; compressed clusters are compressed as asked. Sources made by
//! qemu-img and qemu-io; exports against the real dev cluster, with `rbd export` as witness.
mod common;
use common::qemu_img::*;
use common::*;
use std::path::Path;
use std::process::{Command, Output};

const CLUSTER: usize = 65536;

/// 64 KiB clusters of `raw` holding any non-zero byte.
fn nonzero_clusters(raw: &[u8]) -> u64 {
    raw.chunks(CLUSTER)
        .filter(|c| c.iter().any(|&b| b != 0))
        .count() as u64
}

fn compression_type(img: &Path) -> String {
    let o = Command::new("qemu-img")
        .args(["info", "--output=json", s(img)])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["format-specific"]["data"]["compression-type"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Checks the qcow2 file `out` rbdkit wrote from a disk whose raw bytes are `want`,
/// compressed with `compress` ("" for none).
fn assert_good_qcow2(out: &Path, want: &[u8], compress: &str, what: &str) {
    let v = qemu_check(out);
    let got = qemu_raw(out);
    assert!(
        got == want,
        "{what}: qemu reads other bytes ({} vs {})",
        got.len(),
        want.len()
    );
    let back = out.with_extension("back.raw");
    let o = rbdkit(&["convert", s(out), s(&back), "--overwrite"]);
    assert!(o.status.success(), "{what}: {}", stderr(&o));
    assert!(
        std::fs::read(&back).unwrap() == want,
        "{what}: rbdkit reads other bytes"
    );
    std::fs::remove_file(&back).unwrap();
    // Exactly the clusters holding data are stored: zero clusters are not.
    assert_eq!(
        v["allocated-clusters"].as_u64(),
        Some(nonzero_clusters(want)),
        "{what}: {v}"
    );
    let compressed = v["compressed-clusters"].as_u64().unwrap_or(0);
    match compress {
        "" => assert_eq!(compressed, 0, "{what}: {v}"),
        c => {
            assert!(compressed > 0, "{what}: nothing compressed: {v}");
            let t = if c == "zlib" { "zlib" } else { "zstd" };
            assert_eq!(compression_type(out), t, "{what}");
        }
    }
}

fn convert_qcow2(src: &Path, out: &Path, compress: &str, extra: &[&str]) -> Output {
    let mut args = vec!["convert", s(src), s(out), "-O", "qcow2", "--overwrite"];
    if !compress.is_empty() {
        args.extend(["--compress", compress]);
    }
    args.extend(extra);
    rbdkit(&args)
}

/// Sources of every shape: dense, sparse, zero runs inside data, compressible and not, a
/// size off the cluster size (but whole sectors: qemu reads no other), an empty disk, and a
/// disk crossing an L2 table's span (512 MiB).
#[test]
fn convert_to_qcow2_reads_back_identical_in_qemu_and_rbdkit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sources = [
        qemu_image(d, "dense.qcow2", "12M", &["write -P 0x5a 0 12M"]),
        qemu_image(
            d,
            "sparse.qcow2",
            "64M",
            &[
                "write -P 0x11 1M 64k",
                "write -P 0x22 40M 300k",
                "write -P 0x33 63M 4k",
            ],
        ),
        // Zero runs inside data: a whole zero cluster, and zeros in the middle of one.
        qemu_image(
            d,
            "holes.qcow2",
            "8M",
            &[
                "write -P 0x44 0 8M",
                "write -z 1M 128k",
                "write -z 2M 8k",
                "write -z 3M 512",
            ],
        ),
        // 10 MiB + 3.5 KiB: the last cluster is partial.
        qemu_image(d, "odd.qcow2", "10489344", &["write -P 0x66 0 10489344"]),
        qemu_image(d, "empty.qcow2", "0", &[]),
        qemu_image(
            d,
            "wide.qcow2",
            "1100M",
            &[
                "write -P 0x77 0 64k",
                "write -P 0x78 600M 1M",
                "write -P 0x79 1099M 1M",
            ],
        ),
    ];
    // Incompressible data (random bytes) next to compressible: both kinds of cluster.
    let mixed = d.join("mixed.raw");
    let mut bytes = vec![0u8; 6 << 20];
    let mut x = 0x1234_5678_9abc_def0u64;
    for b in bytes[..2 << 20].iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    for (i, b) in bytes[3 << 20..].iter_mut().enumerate() {
        *b = b"compressible text "[i % 18];
    }
    std::fs::write(&mixed, &bytes).unwrap();
    for src in sources.iter().chain([&mixed]) {
        let want = qemu_raw(src);
        for compress in ["", "zlib", "zstd"] {
            let what = format!("{} --compress {compress:?}", src.display());
            let out = d.join("out.qcow2");
            let o = convert_qcow2(src, &out, compress, &[]);
            assert!(o.status.success(), "{what}: {}", stderr(&o));
            if want.is_empty() {
                qemu_check(&out);
                assert!(qemu_raw(&out).is_empty(), "{what}");
                continue;
            }
            assert_good_qcow2(&out, &want, compress, &what);
        }
    }
    // One decode thread and the smallest zero-detection block give the same image.
    let src = &sources[2];
    let out = d.join("one-thread.qcow2");
    let o = convert_qcow2(
        src,
        &out,
        "zlib",
        &["--threads", "1", "--sparse-size", "512"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_good_qcow2(&out, &qemu_raw(src), "zlib", "one thread");
}

/// Other formats in (a streamOptimized VMDK file, a VHDX), and a raw stream from stdin.
#[test]
fn convert_other_formats_and_a_raw_stream_to_qcow2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = qemu_image(
        d,
        "base.qcow2",
        "20M",
        &["write -P 0x21 0 3M", "write -P 0x22 17M 2M"],
    );
    let want = qemu_raw(&base);
    for (fmt, opts) in [
        ("vmdk", "subformat=streamOptimized"),
        ("vhdx", "subformat=dynamic"),
    ] {
        let src = d.join(format!("src.{fmt}"));
        run_ok(
            "qemu-img",
            &["convert", "-O", fmt, "-o", opts, s(&base), s(&src)],
        );
        let out = d.join(format!("from-{fmt}.qcow2"));
        let o = convert_qcow2(&src, &out, "zstd", &[]);
        assert!(o.status.success(), "{fmt}: {}", stderr(&o));
        // VHDX rounds nothing here: 20 MiB is whole blocks.
        assert_good_qcow2(&out, &want, "zstd", fmt);
    }
    let raw = d.join("base.raw");
    std::fs::write(&raw, &want).unwrap();
    let out = d.join("from-stdin.qcow2");
    let o = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args([
            "convert",
            "-",
            s(&out),
            "-O",
            "qcow2",
            "--compress",
            "zlib",
            "--no-progress",
        ])
        .stdin(std::fs::File::open(&raw).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "stdin: {}", stderr(&o));
    assert_good_qcow2(&out, &want, "zlib", "raw stream");
}

/// An existing file is refused and kept; --overwrite replaces it. Combinations that make no
/// sense are refused with one line (exit 2) before anything is written.
#[test]
fn existing_outputs_are_kept_and_nonsense_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = qemu_image(d, "src.qcow2", "4M", &["write -P 0x31 0 1M"]);
    let out = d.join("out.qcow2");
    std::fs::write(&out, b"precious").unwrap();
    let o = rbdkit(&["convert", s(&src), s(&out), "-O", "qcow2"]);
    assert_one_line_error(&o, 1, &["already exists", "--overwrite"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    let o = convert_qcow2(&src, &out, "zlib", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_good_qcow2(&out, &qemu_raw(&src), "zlib", "overwritten");

    let raw = d.join("out.raw");
    let o = rbdkit(&["convert", s(&src), s(&raw), "--compress", "zlib"]);
    assert_one_line_error(&o, 2, &["--compress goes with -O qcow2"]);
    let o = rbdkit(&[
        "convert",
        s(&src),
        s(&raw),
        "-O",
        "raw",
        "--compress",
        "zstd",
    ]);
    assert_one_line_error(&o, 2, &["--compress goes with -O qcow2"]);
    // To stdout qcow2 goes uncompressed only (tests/qcow2_stream_cli.rs streams it).
    let o = rbdkit(&["convert", s(&src), "-", "-O", "qcow2", "--compress", "zlib"]);
    assert_one_line_error(&o, 2, &["--compress with - (stdout)"]);
    let o = rbdkit(&[
        "convert",
        s(&src),
        "nfs://127.0.0.1/export/x.qcow2",
        "-O",
        "qcow2",
    ]);
    assert_one_line_error(&o, 2, &["nfs://", "not supported"]);
    let o = rbdkit(&["convert", s(&src), s(&raw), "-O", "vmdk"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!raw.exists());
}

/// A copy that fails half way (a decode thread panics, injected) leaves nothing under the
/// final name and no temporary file.
#[test]
fn a_failed_convert_leaves_no_qcow2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = qemu_image(d, "src.qcow2", "16M", &["write -P 0x41 0 16M"]);
    let outdir = d.join("out");
    std::fs::create_dir(&outdir).unwrap();
    let out = outdir.join("out.qcow2");
    for compress in ["", "zlib"] {
        let mut args = vec!["convert", s(&src), s(&out), "-O", "qcow2", "--no-progress"];
        if !compress.is_empty() {
            args.extend(["--compress", compress]);
        }
        let o = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
            .args(&args)
            .env("RBDKIT_INJECT_FAULT", "decode-panic")
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("a decode thread panicked"),
            "{}",
            stderr(&o)
        );
        let left: Vec<_> = std::fs::read_dir(&outdir).unwrap().collect();
        assert!(left.is_empty(), "--compress {compress:?}: left {left:?}");
    }
}

/// Live: `export -O qcow2` of an image and of a snapshot, plain and compressed, matches
/// `rbd export`; objects smaller than a cluster still make whole-cluster pieces.
#[test]
fn export_to_qcow2_matches_rbd_export() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = Cleanup::new(&conf());
    let raw = export_source_raw(d);
    for obj in ["4M", "16K"] {
        let spec = import_with_snapshot(&conf(), &raw, obj, "q2out", &mut c);
        let want = {
            let o = rbd_with(
                &conf(),
                &["export", "--no-progress", &format!("{spec}@s"), "-"],
            );
            assert!(o.status.success());
            o.stdout
        };
        for (from, compress) in [
            (spec.clone(), ""),
            (format!("{spec}@s"), "zlib"),
            (spec.clone(), "zstd"),
        ] {
            let out = d.join(format!("exp-{obj}-{compress}.qcow2"));
            let mut args = vec!["export", from.as_str(), s(&out), "-O", "qcow2"];
            if !compress.is_empty() {
                args.extend(["--compress", compress]);
            }
            let o = rbdkit(&args);
            assert!(
                o.status.success(),
                "export {from} {compress}: {}",
                stderr(&o)
            );
            assert_good_qcow2(
                &out,
                &want,
                compress,
                &format!("export {from} ({obj} objects) {compress}"),
            );
        }
        // An existing file is refused and kept.
        let out = d.join(format!("exp-{obj}-.qcow2"));
        let before = std::fs::read(&out).unwrap();
        let o = rbdkit(&["export", &spec, s(&out), "-O", "qcow2"]);
        assert_one_line_error(&o, 1, &["already exists"]);
        assert!(std::fs::read(&out).unwrap() == before);
    }
    // Refused before connecting.
    let o = rbdkit(&[
        "export",
        "images/whatever",
        "-",
        "-O",
        "qcow2",
        "--compress",
        "zstd",
    ]);
    assert_one_line_error(&o, 2, &["--compress with - (stdout)"]);
    let o = rbdkit(&[
        "export",
        "images/whatever",
        "nfs://127.0.0.1/e/x.qcow2",
        "-O",
        "qcow2",
    ]);
    assert_one_line_error(&o, 2, &["nfs://", "not supported"]);
    let o = rbdkit(&["export", "images/whatever", "x.raw", "--compress", "zlib"]);
    assert_one_line_error(&o, 2, &["--compress goes with -O qcow2"]);
}
