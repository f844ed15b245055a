//! Live tests of `rbdkit import-raw` and `rbdkit convert`: fixtures made by qemu-img/qemu-io at
//! test time, results read back with `rbd export` and compared byte for byte with
//! `qemu-img convert -O raw` of the same source.
mod common;
use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A qcow2 with data, zero clusters, unallocated space and a compressed region.
fn make_qcow2(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let p = path.to_str().unwrap();
    let mut args = vec!["create", "-q", "-f", "qcow2"];
    args.extend(extra);
    args.extend([p, "64M"]);
    run_ok("qemu-img", &args);
    run_ok(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            "-c",
            "write -P 0xab 0 3M",
            "-c",
            "write -P 0x11 5M 64k",
            "-c",
            "write -z 8M 2M",
            "-c",
            "write -P 0x5a 20M 1M",
            "-c",
            "write -P 0x00 24M 1M",
            "-c",
            "write -P 0x77 63M 1M",
            p,
        ],
    );
    path
}

fn qemu_raw(src: &Path, dir: &Path) -> Vec<u8> {
    let out = dir.join(format!(
        "{}.expected.raw",
        src.file_name().unwrap().to_string_lossy()
    ));
    run_ok(
        "qemu-img",
        &[
            "convert",
            "-O",
            "raw",
            src.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    std::fs::read(out).unwrap()
}

fn rbd_export(conf: &str, spec: &str, dir: &Path) -> Vec<u8> {
    let out = dir.join("exported.raw");
    let _ = std::fs::remove_file(&out);
    let o = rbd_with(
        conf,
        &["export", "--no-progress", spec, out.to_str().unwrap()],
    );
    assert!(o.status.success(), "rbd export: {}", stderr(&o));
    std::fs::read(out).unwrap()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

fn leftovers(conf: &str, pool: &str, name: &str) -> Vec<String> {
    images_with_prefix(conf, pool, name)
}

/// `rbdkit import-raw SRC DEST EXTRA... --format json`, which must succeed; its report.
fn import_json(src: &Path, dest: &str, extra: &[&str]) -> serde_json::Value {
    let args = [
        &["import-raw", src.to_str().unwrap(), dest],
        extra,
        &["--format", "json"],
    ];
    let out = rbdkit(&args.concat());
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn imports_qcow2_identically_to_qemu_img_with_layering_only_and_checksum() {
    let conf = conf();
    let dir = tempfile::tempdir().unwrap();
    let src = make_qcow2(dir.path(), "a.qcow2", &[]);
    let expected = qemu_raw(&src, dir.path());
    let mut cleanup = Cleanup::new(&conf);
    let dest = format!("images/{}", unique("imp"));
    cleanup.add(&dest);
    let j = import_json(&src, &dest, &["--verify"]);
    assert_eq!(j["virtual_size"].as_u64(), Some(64 << 20));
    // The default checksum: a tree of per-block SHA-256s, hashed in parallel.
    assert_eq!(j["checksum_algorithm"], "sha256-tree");
    assert_eq!(
        j["checksum"].as_str(),
        Some(sha256_tree_hex(&expected).as_str())
    );
    assert!(j["sha256"].is_null(), "{j}");
    assert_eq!(j["verified"], true);
    // Only non-zero 4K blocks are written: 3M + 64k + 1M + 1M of data.
    assert_eq!(j["bytes_written"].as_u64(), Some((5 << 20) + (64 << 10)));
    assert_eq!(
        j["bytes_written"].as_u64().unwrap() + j["bytes_zero_skipped"].as_u64().unwrap(),
        64 << 20
    );
    let info = rbd_json(&conf, &["info", &dest]);
    assert_eq!(info["features"], serde_json::json!(["layering"]));
    assert!(
        rbd_export(&conf, &dest, dir.path()) == expected,
        "rbd export differs from qemu-img convert"
    );
    assert!(leftovers(
        &conf,
        "images",
        &format!("{}.", dest.split_once('/').unwrap().1)
    )
    .is_empty());
}

#[test]
fn compressed_and_zstd_qcow2_import_and_grow_with_size() {
    let conf = conf();
    let dir = tempfile::tempdir().unwrap();
    let plain = make_qcow2(dir.path(), "plain.qcow2", &[]);
    let mut cleanup = Cleanup::new(&conf);
    for (name, opts) in [
        ("zlib.qcow2", vec!["-c"]),
        ("zstd.qcow2", vec!["-c", "-o", "compression_type=zstd"]),
    ] {
        let src = dir.path().join(name);
        let mut args = vec!["convert", "-O", "qcow2"];
        args.extend(opts);
        args.extend([plain.to_str().unwrap(), src.to_str().unwrap()]);
        run_ok("qemu-img", &args);
        let expected = qemu_raw(&src, dir.path());
        let dest = format!("images/{}", unique("cmp"));
        cleanup.add(&dest);
        let out = rbdkit(&[
            "import-raw",
            src.to_str().unwrap(),
            &dest,
            "--size",
            "128M",
            "--concurrency",
            "4",
        ]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let info = rbd_json(&conf, &["info", &dest]);
        assert_eq!(info["size"].as_u64(), Some(128 << 20));
        let got = rbd_export(&conf, &dest, dir.path());
        assert!(
            got[..expected.len()] == expected[..],
            "{name}: content differs"
        );
        assert!(got[expected.len()..].iter().all(|&b| b == 0));
    }
}

#[test]
fn raw_and_qcow2_from_stdin() {
    let conf = conf();
    let dir = tempfile::tempdir().unwrap();
    let src = make_qcow2(dir.path(), "s.qcow2", &[]);
    let expected = qemu_raw(&src, dir.path());
    let raw = dir.path().join("s.qcow2.expected.raw");
    let mut cleanup = Cleanup::new(&conf);
    for input in [raw.clone(), src.clone()] {
        let dest = format!("images/{}", unique("stdin"));
        cleanup.add(&dest);
        // The plain SHA-256 (what `sha256sum` of the raw image prints), on request.
        let out = import_stdin(
            &conf,
            &dest,
            std::fs::read(&input).unwrap(),
            &["--checksum", "sha256"],
        );
        assert!(
            out.status.success(),
            "{}: {}",
            input.display(),
            stderr(&out)
        );
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(j["checksum_algorithm"], "sha256");
        assert_eq!(j["sha256"].as_str(), Some(sha256_hex(&expected).as_str()));
        assert_eq!(j["checksum"], j["sha256"]);
        assert_eq!(
            rbd_json(&conf, &["info", &dest])["size"].as_u64(),
            Some(expected.len() as u64)
        );
        assert!(
            rbd_export(&conf, &dest, dir.path()) == expected,
            "{}",
            input.display()
        );
        // A qcow2 stream is decoded as it arrives: qemu-img puts every table before the data
        // it maps, so nothing goes through the spill file.
        if input == src {
            assert_eq!(j["source_format"], "qcow2");
            assert_eq!(j["bytes_spilled"].as_u64(), Some(0), "{j}");
        } else {
            assert!(j.get("bytes_spilled").is_none(), "{j}");
        }
    }
}

/// A raw stream into 32 MiB objects: three of them read ahead are more than the copy's memory
/// budget, and the import used to wait forever for memory it held itself.
#[test]
fn a_raw_stream_into_large_objects_finishes() {
    let conf = conf();
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..200u32 << 20)
        .map(|i| (i / 4096 % 251) as u8 + 1)
        .collect();
    let mut cleanup = Cleanup::new(&conf);
    let dest = format!("images/{}", unique("stdin-32m"));
    cleanup.add(&dest);
    let out = import_stdin(
        &conf,
        &dest,
        data.clone(),
        &["--object-size", "32M", "--checksum", "sha256"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["sha256"].as_str(), Some(sha256_hex(&data).as_str()));
    assert!(rbd_export(&conf, &dest, dir.path()) == data);
}

/// Runs `rbdkit import-raw - images/NAME --format json EXTRA...` with `data` piped into it.
fn import_stdin(conf: &str, dest: &str, data: Vec<u8>, extra: &[&str]) -> std::process::Output {
    let name = dest
        .strip_prefix("images/")
        .expect("tests import into images/");
    let (child, mut stdin) = import_from_pipe(conf, name, &[&["--format", "json"], extra].concat());
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    // rbdkit may refuse a stream before reading all of it (a broken pipe is then expected).
    let _ = writer.join().unwrap();
    out
}

#[test]
fn qcow2_streams_from_stdin_spill_only_what_arrives_before_its_tables() {
    let conf = conf();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = make_qcow2(d, "base.qcow2", &[]);
    // 4 KiB clusters, zstd: qemu-img packs some compressed clusters before the L2 table that
    // maps them, so they arrive before anything says where they belong.
    let zstd = d.join("zstd.qcow2");
    run_ok(
        "qemu-img",
        &[
            "convert",
            "-c",
            "-O",
            "qcow2",
            "-o",
            "cluster_size=4096,compression_type=zstd",
            base.to_str().unwrap(),
            zstd.to_str().unwrap(),
        ],
    );
    // Growing an image past what its L1 table maps moves the table to the end of the file:
    // every table and all data arrive before it.
    let grown = make_qcow2(d, "grown.qcow2", &[]);
    let g = grown.to_str().unwrap();
    run_ok("qemu-img", &["resize", "-q", g, "700M"]);
    run_ok(
        "qemu-io",
        &["-f", "qcow2", "-c", "write -P 0x99 600M 2M", g],
    );
    // More than the 256 MiB hash buffer written in reverse guest order: the checksum cannot
    // be computed on the way and is read back from the image instead.
    let rev = d.join("reverse.qcow2");
    let r = rev.to_str().unwrap();
    run_ok("qemu-img", &["create", "-q", "-f", "qcow2", r, "320M"]);
    let mut io: Vec<String> = vec!["-f".into(), "qcow2".into()];
    for i in (0..20u32).rev() {
        io.extend(["-c".into(), format!("write -P {} {}M 16M", i + 1, i * 16)]);
    }
    io.push(r.into());
    run_ok(
        "qemu-io",
        &io.iter().map(String::as_str).collect::<Vec<_>>(),
    );

    let mut cleanup = Cleanup::new(&conf);
    // With sha256-tree the reversed image's 64 KiB clusters are hashed as they are decoded
    // and only their digests wait for guest order; the plain sha256 must wait with the data.
    for (src, spills, plain, read_back) in [
        (&zstd, true, false, false),
        (&grown, true, false, false),
        (&rev, false, false, false),
        (&rev, false, true, true),
    ] {
        let expected = qemu_raw(src, d);
        let dest = format!("images/{}", unique("q2s"));
        cleanup.add(&dest);
        let mut extra = vec!["--checksum", if plain { "sha256" } else { "sha256-tree" }];
        if !read_back {
            extra.push("--verify");
        }
        let out = import_stdin(&conf, &dest, std::fs::read(src).unwrap(), &extra);
        let name = format!("{} {extra:?}", src.display());
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(j["source_format"], "qcow2", "{name}");
        assert_eq!(j["virtual_size"].as_u64(), Some(expected.len() as u64));
        let want = if plain {
            sha256_hex(&expected)
        } else {
            sha256_tree_hex(&expected)
        };
        assert_eq!(j["checksum"].as_str(), Some(want.as_str()), "{name}");
        let spilled = j["bytes_spilled"].as_u64().expect("bytes_spilled");
        assert_eq!(spilled > 0, spills, "{name}: {j}");
        assert_eq!(
            j["checksum_read_back"].as_bool() == Some(true),
            read_back,
            "{name}: {j}"
        );
        if !read_back {
            assert_eq!(j["verified"], true, "{name}");
        }
        assert_eq!(
            rbd_json(&conf, &["info", &dest])["size"].as_u64(),
            Some(expected.len() as u64)
        );
        assert!(
            rbd_export(&conf, &dest, d) == expected,
            "{name}: rbd export differs from qemu-img convert"
        );
        eprintln!("{name}: spilled {spilled} bytes");
    }

    // A backing file cannot be followed from a pipe: refused before anything is created.
    let top = d.join("top.qcow2");
    run_ok(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            top.to_str().unwrap(),
        ],
    );
    let name = unique("q2sbad");
    let out = import_stdin(
        &conf,
        &format!("images/{name}"),
        std::fs::read(&top).unwrap(),
        &[],
    );
    assert_one_line_error(
        &out,
        1,
        &["stdin", "cannot have a backing file", "pass the file path"],
    );
    // A truncated stream: the temporary image is removed, nothing is published.
    let mut cut = std::fs::read(&base).unwrap();
    cut.truncate(cut.len() / 2);
    let out = import_stdin(&conf, &format!("images/{name}"), cut, &[]);
    assert_one_line_error(&out, 1, &["stdin", "truncated"]);
    assert!(leftovers(&conf, "images", &name).is_empty());
}

#[test]
fn snap_and_protect_make_a_glance_style_parent_ready_to_clone() {
    let conf = conf();
    let dir = tempfile::tempdir().unwrap();
    let src = make_qcow2(dir.path(), "g.qcow2", &[]);
    let mut cleanup = Cleanup::new(&conf);
    let image = format!("images/{}", unique("glance"));
    let vol = format!("volumes/{}", unique("vol"));
    cleanup.add(&image);
    cleanup.add(&vol);
    let out = rbdkit(&[
        "import-raw",
        src.to_str().unwrap(),
        &image,
        "--snap",
        "snap",
        "--protect",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        rbd_json(&conf, &["info", &format!("{image}@snap")])["protected"],
        "true"
    );
    let out = rbdkit(&["clone", &format!("{image}@snap"), &vol, "--size", "1G"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        rbd_json(&conf, &["info", &vol])["parent"]["snapshot"],
        "snap"
    );
}

/// `rbdkit checksum` gives, for the image, its snapshot and the qcow2 it came from, the
/// checksum the import printed; `--checksum sha256` gives what `sha256sum` gives for the bytes.
#[test]
fn checksum_reads_back_what_the_import_printed() {
    let conf = conf();
    let dir = tempfile::tempdir().unwrap();
    let src = make_qcow2(dir.path(), "k.qcow2", &[]);
    let expected = qemu_raw(&src, dir.path());
    let mut cleanup = Cleanup::new(&conf);
    let image = format!("images/{}", unique("sum"));
    cleanup.add(&image);
    let j = import_json(&src, &image, &["--snap", "snap"]);
    let printed = j["checksum"].as_str().unwrap().to_string();
    assert_eq!(printed, sha256_tree_hex(&expected));
    let snap = format!("{image}@snap");
    for target in [image.as_str(), snap.as_str(), src.to_str().unwrap()] {
        let out = rbdkit(&["checksum", target, "--format", "json"]);
        assert!(out.status.success(), "{target}: {}", stderr(&out));
        let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(c["checksum"].as_str(), Some(printed.as_str()), "{target}");
        assert_eq!(c["virtual_size"].as_u64(), Some(expected.len() as u64));
    }
    // An image imported before sha256-tree was the default is checked with the algorithm its
    // record names.
    let out = rbdkit(&["checksum", &image, "--checksum", "sha256-blocks"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("sha256-blocks {}  {image}", sha256_blocks_hex(&expected))
    );
    let out = rbdkit(&["checksum", &image, "--checksum", "sha256"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("sha256 {}  {image}", sha256_hex(&expected))
    );
    // A name that is neither a file nor an image: one line, and the image is named.
    let missing = format!("images/{}", unique("nosuch"));
    assert_one_line_error(&rbdkit(&["checksum", &missing]), 1, &[&missing, "ENOENT"]);
}

#[test]
fn existing_image_is_never_overwritten() {
    let conf = conf();
    let dir = tempfile::tempdir().unwrap();
    let src = make_qcow2(dir.path(), "e.qcow2", &[]);
    let mut cleanup = Cleanup::new(&conf);
    let dest = format!("images/{}", unique("exists"));
    assert!(rbd_with(&conf, &["create", &dest, "--size", "4M"])
        .status
        .success());
    cleanup.add(&dest);
    let out = rbdkit(&["import-raw", src.to_str().unwrap(), &dest]);
    assert_one_line_error(&out, 1, &[&dest, "EEXIST"]);
    assert_eq!(
        rbd_json(&conf, &["info", &dest])["size"].as_u64(),
        Some(4 << 20)
    );
}

#[test]
fn bad_sources_fail_cleanly_and_leave_no_image() {
    let conf = conf();
    let dir = tempfile::tempdir().unwrap();
    let good = make_qcow2(dir.path(), "good.qcow2", &[]);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.qcow2");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let garbage = dir.path().join("garbage.qcow2");
    let mut g = b"QFI\xfb".to_vec();
    g.extend(std::iter::repeat_n(0xff, 4096));
    std::fs::write(&garbage, &g).unwrap();
    let missing = dir.path().join("missing.qcow2");
    for (src, needle) in [
        (&truncated, "truncated.qcow2"),
        (&garbage, "garbage.qcow2"),
        (&missing, "missing.qcow2"),
    ] {
        let name = unique("bad");
        let dest = format!("images/{name}");
        let out = rbdkit(&["import-raw", src.to_str().unwrap(), &dest]);
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(0), "{needle}");
        assert_eq!(err.lines().count(), 1, "{needle}: {err}");
        assert!(err.contains(needle), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            leftovers(&conf, "images", &name).is_empty(),
            "{needle}: image left behind"
        );
    }
}

#[test]
fn convert_matches_qemu_img_byte_for_byte_and_is_sparse() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_qcow2(dir.path(), "c.qcow2", &["-o", "cluster_size=4096"]);
    let expected = qemu_raw(&src, dir.path());
    let dest = dir.path().join("c.raw");
    let out = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args([
            "convert",
            src.to_str().unwrap(),
            dest.to_str().unwrap(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(&dest).unwrap() == expected);
    use std::os::unix::fs::MetadataExt;
    let allocated = std::fs::metadata(&dest).unwrap().blocks() * 512;
    assert!(
        allocated <= 6 << 20,
        "zeros must be holes: {allocated} bytes allocated"
    );
}

/// An existing destination is an operational failure (exit 1, as EEXIST is for an image),
/// and the file is left exactly as it was.
#[test]
fn convert_onto_an_existing_file_exits_1_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_qcow2(dir.path(), "e.qcow2", &[]);
    let dest = dir.path().join("existing.raw");
    std::fs::write(&dest, b"someone else's data").unwrap();
    let before = std::fs::metadata(&dest).unwrap().modified().unwrap();
    let again = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(["convert", src.to_str().unwrap(), dest.to_str().unwrap()])
        .output()
        .unwrap();
    assert_one_line_error(&again, 1, &["already exists", "--overwrite"]);
    assert_eq!(std::fs::read(&dest).unwrap(), b"someone else's data");
    assert_eq!(
        std::fs::metadata(&dest).unwrap().modified().unwrap(),
        before
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("rbdkit-partial")),
        "no temporary file left: {names:?}"
    );
}
