//! The disk reader against qemu, feature by feature. Each fixture is made at test time by
//! qemu-img/qemu-io; the whole virtual disk is read through `rbdkit::disk` (big reads, odd
//! unaligned reads, many threads at once, and from memory) and compared byte for byte with
//! `qemu-img convert -O raw`, and the extents are compared with `qemu-img map --output=json`.
//! Bad images must fail with a one-line error naming the problem, never a panic.
mod qemu;
use qemu::{convert_qcow2, create, qemu_io, reference_bytes, reference_map, run, run_in};
use rbdkit::disk::qcow2::{decode_cluster, Mapping, Qcow2};
use rbdkit::disk::{DiskSource, ExtentKind, FilePolicy, Format, OpenOptions};
use std::path::Path;
use std::process::Command;

/// What the chain tests allow: files the image names, inside its own directory (the
/// default refuses them; `tests/untrusted_cli.rs` covers that).
fn chains() -> FilePolicy {
    FilePolicy::allow(&[]).unwrap()
}

/// `rbdkit::disk::open` with chains followed and `format` declared.
fn open(p: &Path, format: Option<Format>) -> rbdkit::Result<Box<dyn DiskSource>> {
    let opts = OpenOptions {
        format,
        files: chains(),
        ..Default::default()
    };
    rbdkit::disk::open(p, &opts)
}

/// Writes of every kind at cluster-straddling offsets: data, zeros over unallocated space,
/// zeros over data (a preallocated zero cluster in v3), data in the last partial megabyte.
const PATTERN: &[&str] = &[
    "write -P 0x11 0 100k",
    "write -P 0x22 1M 4k",
    "write -z 2M 512k",
    "write -P 0x33 3M 1M",
    "write -P 0x55 5M 256k",
    "write -z 5M 128k",
    "write -P 0x44 7340000 123k",
];

/// How strictly to compare with qemu's block status.
#[derive(Clone, Copy, PartialEq)]
enum Chain {
    /// qcow2 layers only: "present" must match too (unallocated = absent from every layer).
    Qcow2Only,
    /// A raw file below: qemu calls every raw byte present, we call raw holes unallocated.
    WithRaw,
}

/// Reads `img` every way the copy engine can and compares with qemu; returns the reference.
fn check(img: &Path, chain: Chain) -> Vec<u8> {
    let name = img.display().to_string();
    let want = reference_bytes(img);
    let disk = open(img, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(disk.format_name(), "qcow2", "{name}");
    assert_eq!(
        disk.virtual_size(),
        want.len() as u64,
        "{name}: virtual size"
    );
    assert_reads_match(disk.as_ref(), &want, &name);
    assert_extents_match(disk.as_ref(), img, &want, chain);

    // The same image parsed from memory, when it needs no other file.
    let bytes = std::fs::read(img).unwrap();
    match Qcow2::from_bytes(bytes, &name) {
        Ok(mem) => assert_reads_match(&mem, &want, &format!("{name} (in memory)")),
        Err(e) => {
            let h = Qcow2::open(img, &chains()).unwrap();
            let h = h.header();
            assert!(
                h.backing_file.is_some() || h.data_file.is_some(),
                "{name}: in-memory open failed: {e}"
            );
            assert!(e.to_string().contains("in-memory"), "{e}");
        }
    }
    want
}

fn assert_reads_match(disk: &dyn DiskSource, want: &[u8], name: &str) {
    let size = want.len();
    let first_diff = |got: &[u8], at: usize| {
        got.iter()
            .zip(&want[at..])
            .position(|(a, b)| a != b)
            .map(|i| at + i)
    };
    // The whole disk in one read, then in odd-sized unaligned pieces.
    let mut all = vec![0xeeu8; size];
    disk.read_at(0, &mut all)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(first_diff(&all, 0), None, "{name}: whole-disk read differs");
    // 1 MiB pieces cover the disk; smaller odd pieces sample it at 64 places (small reads
    // of big compressed clusters decode a whole cluster each, so covering the disk with them
    // would only measure the decoder).
    for piece in [511usize, 4097, 100_003, 1 << 20] {
        let stride = if piece == 1 << 20 {
            piece
        } else {
            (size / 64).max(piece)
        };
        let mut at = 13usize.min(size);
        let mut buf = vec![0u8; piece];
        while at < size {
            let n = piece.min(size - at);
            buf[..n].fill(0xee);
            disk.read_at(at as u64, &mut buf[..n])
                .unwrap_or_else(|e| panic!("{name}: read {n} at {at}: {e}"));
            assert_eq!(
                first_diff(&buf[..n], at),
                None,
                "{name}: {piece}-byte reads differ"
            );
            at += stride;
        }
    }
    // Four threads at once, interleaved 64 KiB + 7 pieces (the copy engine reads in parallel).
    let chunk = 65543usize;
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                let mut buf = vec![0u8; chunk];
                let mut at = t * chunk;
                while at < size {
                    let n = chunk.min(size - at);
                    disk.read_at(at as u64, &mut buf[..n])
                        .unwrap_or_else(|e| panic!("{name}: thread {t}: {e}"));
                    assert_eq!(first_diff(&buf[..n], at), None, "{name}: thread {t}");
                    at += 4 * chunk;
                }
            });
        }
    });
    // Past the end is an error, not a short read.
    let mut one = [0u8; 2];
    assert!(disk.read_at(size as u64 - 1, &mut one).is_err(), "{name}");
}

/// Merges (start, len, key) runs with equal keys.
fn merged<K: PartialEq + Copy>(runs: impl Iterator<Item = (u64, u64, K)>) -> Vec<(u64, u64, K)> {
    let mut out: Vec<(u64, u64, K)> = Vec::new();
    for (s, l, k) in runs {
        match out.last_mut() {
            Some(last) if last.2 == k && last.0 + last.1 == s => last.1 += l,
            _ => out.push((s, l, k)),
        }
    }
    out
}

fn assert_extents_match(disk: &dyn DiskSource, img: &Path, want: &[u8], chain: Chain) {
    let name = img.display();
    let size = want.len() as u64;
    let ext = disk.extents(0, size).unwrap();
    // In guest order, covering the disk exactly, adjacent runs of one kind merged.
    let mut at = 0;
    for (i, e) in ext.iter().enumerate() {
        assert_eq!(e.offset, at, "{name}: extents not contiguous: {ext:?}");
        assert!(e.len > 0);
        if i > 0 {
            assert_ne!(ext[i - 1].kind, e.kind, "{name}: unmerged extents");
        }
        if e.kind != ExtentKind::Data {
            let bytes = &want[e.offset as usize..e.end() as usize];
            assert!(
                bytes.iter().all(|&b| b == 0),
                "{name}: {e:?} is not data but qemu reads non-zero bytes there"
            );
        }
        at = e.end();
    }
    assert_eq!(at, size, "{name}: extents do not cover the disk");
    // A window in the middle agrees with the whole-disk answer.
    let (w0, w1) = (size / 3 + 1000, size / 3 + 3_000_000.min(size / 2));
    for e in disk.extents(w0, w1 - w0).unwrap() {
        let whole = ext
            .iter()
            .find(|x| x.offset <= e.offset && e.end() <= x.end());
        assert!(
            whole.is_some_and(|x| x.kind == e.kind),
            "{name}: window extent {e:?}"
        );
    }
    let key = |data: bool, present: bool| match chain {
        Chain::Qcow2Only => (data, present),
        Chain::WithRaw => (data, true),
    };
    let ours = merged(ext.iter().map(|e| {
        (
            e.offset,
            e.len,
            key(
                e.kind == ExtentKind::Data,
                e.kind != ExtentKind::Unallocated,
            ),
        )
    }));
    let theirs = merged(
        reference_map(img)
            .iter()
            .map(|m| (m.start, m.length, key(m.data, m.present))),
    );
    assert_eq!(
        ours, theirs,
        "{name}: (data, present) runs differ from qemu-img map"
    );
}

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
            check(&p, Chain::Qcow2Only);
        }
    }
}

#[test]
fn zero_clusters_and_unallocated_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let p = create(dir.path(), "zero.qcow2", "8M", &[]);
    // Zero clusters over nothing, over data (kept allocated) and unmapped (-u).
    qemu_io(
        &p,
        "qcow2",
        &[
            "write -P 0x61 0 1M",
            "write -z 64k 128k",
            "write -z -u 512k 64k",
            "write -z 3M 1M",
            "write -P 0x62 6M 4k",
        ],
    );
    let want = check(&p, Chain::Qcow2Only);
    let disk = open(&p, None).unwrap();
    let kinds: Vec<(u64, u64, ExtentKind)> = disk
        .extents(0, 8 << 20)
        .unwrap()
        .iter()
        .map(|e| (e.offset, e.len, e.kind))
        .collect();
    use ExtentKind::*;
    assert_eq!(
        kinds,
        vec![
            (0, 64 << 10, Data),
            (64 << 10, 128 << 10, Zero),
            (192 << 10, 320 << 10, Data),
            (512 << 10, 64 << 10, Zero),
            (576 << 10, 448 << 10, Data),
            (1 << 20, 2 << 20, Unallocated),
            (3 << 20, 1 << 20, Zero),
            (4 << 20, 2 << 20, Unallocated),
            (6 << 20, 64 << 10, Data),
            ((6 << 20) + (64 << 10), (2 << 20) - (64 << 10), Unallocated),
        ]
    );
    assert!(want[64 << 10..192 << 10].iter().all(|&b| b == 0));
}

#[test]
fn compressed_deflate_and_zstd() {
    let dir = tempfile::tempdir().unwrap();
    let base = create(dir.path(), "base.qcow2", "9M", &[]);
    qemu_io(&base, "qcow2", PATTERN);
    for (name, opts) in [
        ("deflate.qcow2", vec!["-c"]),
        ("zstd.qcow2", vec!["-c", "-o", "compression_type=zstd"]),
        ("deflate-512.qcow2", vec!["-c", "-o", "cluster_size=512"]),
        ("deflate-4k.qcow2", vec!["-c", "-o", "cluster_size=4096"]),
        (
            "zstd-2m.qcow2",
            vec!["-c", "-o", "compression_type=zstd,cluster_size=2M"],
        ),
    ] {
        let p = dir.path().join(name);
        convert_qcow2(&base, &p, &opts);
        check(&p, Chain::Qcow2Only);
    }
    // Compressed clusters over a backing file, with some clusters overwritten uncompressed.
    let top = create(
        dir.path(),
        "ctop.qcow2",
        "9M",
        &["-b", "zstd.qcow2", "-F", "qcow2"],
    );
    qemu_io(
        &top,
        "qcow2",
        &["write -P 0x71 32k 8k", "write -c -P 0x72 8M 64k"],
    );
    check(&top, Chain::Qcow2Only);
}

/// The public hooks the criterion benches use: one L2 lookup, one cluster decode.
#[test]
fn lookup_and_cluster_decode_are_public() {
    let dir = tempfile::tempdir().unwrap();
    let base = create(dir.path(), "b.qcow2", "4M", &[]);
    qemu_io(&base, "qcow2", &["write -P 0x11 0 256k", "write -z 1M 64k"]);
    let img = Qcow2::open(&base, &chains()).unwrap();
    let (m, run) = img.lookup(100).unwrap();
    assert!(matches!(m, Mapping::Data(h) if h % 65536 == 100), "{m:?}");
    assert_eq!(run, 65536 - 100);
    let (m2, run2) = img.lookup_run(100, 1 << 30).unwrap();
    assert_eq!(m2, m);
    assert!(run2 >= run && run2 <= (256 << 10) - 100, "{run2}");
    assert_eq!(img.lookup(1 << 20).unwrap(), (Mapping::Zero, 65536));
    assert_eq!(
        img.lookup_run(2 << 20, 1 << 30).unwrap(),
        (Mapping::Unallocated, (512 << 20) - (2 << 20)),
        "the rest of the L2 table"
    );
    assert!(img.lookup(1 << 40).is_err());

    for (name, opt) in [
        ("d.qcow2", "compression_type=zlib"),
        ("z.qcow2", "compression_type=zstd"),
    ] {
        let c = dir.path().join(name);
        convert_qcow2(&base, &c, &["-c", "-o", opt]);
        let img = Qcow2::open(&c, &chains()).unwrap();
        let Mapping::Compressed(coff, clen) = img.lookup(65536).unwrap().0 else {
            panic!("{name}: cluster 1 is not compressed");
        };
        let file = std::fs::read(&c).unwrap();
        let end = (coff + clen).min(file.len() as u64) as usize;
        let mut out = vec![0u8; 65536];
        decode_cluster(
            img.header().compression,
            &file[coff as usize..end],
            &mut out,
        )
        .unwrap();
        assert!(out.iter().all(|&b| b == 0x11), "{name}");
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
    // 2 KiB subclusters: partial-cluster writes and zeroes exercise both bitmaps.
    qemu_io(
        &p,
        "qcow2",
        &[
            "write -P 0x55 0 2k",
            "write -P 0x66 6k 4k",
            "write -z 64k 8k",
            "write -P 0x77 200k 70k",
            "write -z 210k 2k",
        ],
    );
    check(&p, Chain::Qcow2Only);
    let at_32k = dir.path().join("ext-32k.qcow2");
    convert_qcow2(&p, &at_32k, &["-o", "extended_l2=on,cluster_size=32k"]);
    check(&at_32k, Chain::Qcow2Only);
    // Over a backing file, unallocated subclusters come from the backing file.
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
    check(&top, Chain::Qcow2Only);
}

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

#[test]
fn dirty_bit_is_read_through() {
    let dir = tempfile::tempdir().unwrap();
    // With lazy refcounts qemu marks the image dirty on first write; SIGKILL leaves it so.
    let p = create(
        dir.path(),
        "dirty.qcow2",
        "9M",
        &["-o", "lazy_refcounts=on"],
    );
    let out = Command::new("qemu-io")
        .args([
            "-f",
            "qcow2",
            "-c",
            "write -P 0x12 0 64k",
            "-c",
            "write -z 1M 64k",
        ])
        .args(["-c", "sigraise 9", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "qemu-io should have been killed");
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(bytes[79] & 1, 1, "qemu-io left the image clean");
    let img = Qcow2::open(&p, &chains()).unwrap();
    assert!(img.header().dirty);
    check(&p, Chain::Qcow2Only);
    // And the bit set by hand on an image with compressed clusters.
    let c = dir.path().join("dirty-c.qcow2");
    let base = create(dir.path(), "clean.qcow2", "9M", &[]);
    qemu_io(&base, "qcow2", PATTERN);
    convert_qcow2(&base, &c, &["-c"]);
    let mut bytes = std::fs::read(&c).unwrap();
    bytes[79] |= 1;
    std::fs::write(&c, &bytes).unwrap();
    assert!(Qcow2::open(&c, &chains()).unwrap().header().dirty);
    assert_eq!(
        check(&c, Chain::Qcow2Only),
        reference_bytes(&base),
        "dirty compressed image"
    );
}

#[test]
fn raw_source_and_format_detection() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    run(
        "qemu-img",
        &["create", "-q", "-f", "raw", raw.to_str().unwrap(), "8M"],
    );
    qemu_io(
        &raw,
        "raw",
        &["write -P 0x41 1M 64k", "write -P 0x42 5M 1M"],
    );
    let disk = open(&raw, None).unwrap();
    assert_eq!(disk.format_name(), "raw");
    let want = std::fs::read(&raw).unwrap();
    assert_reads_match(disk.as_ref(), &want, "disk.raw");
    // Holes are unallocated, data is data, as qemu's block status says (both use SEEK_DATA).
    let ext = disk.extents(0, 8 << 20).unwrap();
    let ours = merged(
        ext.iter()
            .map(|e| (e.offset, e.len, e.kind == ExtentKind::Data)),
    );
    let theirs = merged(
        reference_map(&raw)
            .iter()
            .map(|m| (m.start, m.length, m.data)),
    );
    assert_eq!(ours, theirs);
    assert!(
        ext.iter().any(|e| e.kind == ExtentKind::Unallocated),
        "{ext:?}"
    );

    // A qcow2 file declared raw is refused unless the declaration is trusted, and then it
    // is its bytes; format names parse; a short file is raw.
    let q = create(dir.path(), "q.qcow2", "1M", &[]);
    let e = open(&q, Some(Format::Raw)).err().unwrap().to_string();
    assert!(e.contains("--trust-declared-raw"), "{e}");
    let trusted = OpenOptions {
        format: Some(Format::Raw),
        trust_declared_raw: true,
        ..Default::default()
    };
    let as_raw = rbdkit::disk::open(&q, &trusted).unwrap();
    assert_eq!(as_raw.virtual_size(), std::fs::metadata(&q).unwrap().len());
    assert_eq!("qcow2".parse::<Format>().unwrap(), Format::Qcow2);
    assert_eq!("raw".parse::<Format>().unwrap(), Format::Raw);
    assert!("vmdk".parse::<Format>().is_err());
    let tiny = dir.path().join("tiny");
    std::fs::write(&tiny, b"QF").unwrap();
    assert_eq!(open(&tiny, None).unwrap().format_name(), "raw");
    assert!(open(&raw, Some(Format::Qcow2)).is_err());
}

/// The library error for `bytes` as an image: one line, mentioning `needle`.
fn refused(dir: &Path, name: &str, bytes: &[u8], needle: &str) {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    refused_path(&p, needle);
    // From memory too (same parser), unless the failure is about another file.
    if !needle.contains("loops") && !needle.contains("not found") {
        let r = Qcow2::from_bytes(bytes.to_vec(), name).and_then(|img| {
            rbdkit::disk::scan(&img, u64::MAX)?;
            Ok(())
        });
        let e = r
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted from memory"));
        assert!(e.to_string().contains(needle), "{name}: {e}");
    }
}

fn refused_path(p: &Path, needle: &str) {
    let name = p.display();
    // Opening may succeed when the damage is in the data; reading everything must then fail.
    let r = open(p, None).and_then(|d| {
        d.extents(0, d.virtual_size())?;
        rbdkit::disk::scan(d.as_ref(), u64::MAX)
    });
    let e = r
        .err()
        .unwrap_or_else(|| panic!("{name}: accepted"))
        .to_string();
    assert_eq!(e.lines().count(), 1, "{name}: {e}");
    assert!(e.contains(needle), "{name}: expected {needle:?} in: {e}");
    // The CLI: exit status 1, one line on stderr, no output file.
    let out_path = p.with_extension("out.raw");
    let out = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(["convert", "--overwrite", "--no-progress"])
        .args([p, &out_path])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{name}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out_path.exists(), "{name}: output left behind");
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn bad_images_are_refused_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let good = create(dir, "good.qcow2", "9M", &[]);
    qemu_io(&good, "qcow2", PATTERN);
    let bytes = std::fs::read(&good).unwrap();
    let patched = |at: usize, v: &[u8]| {
        let mut b = bytes.clone();
        b[at..at + v.len()].copy_from_slice(v);
        b
    };
    // Truncated: data clusters beyond the end of the file; header only; nothing.
    refused(
        dir,
        "truncated.qcow2",
        &bytes[..bytes.len() / 2],
        "beyond the end",
    );
    refused(dir, "tiny.qcow2", &bytes[..50], "too short");
    // Garbage after the magic.
    let mut g = b"QFI\xfb".to_vec();
    g.extend(std::iter::repeat_n(0xa5u8, 8192));
    refused(dir, "garbage.qcow2", &g, "qcow2 version");
    // Header fields out of range.
    refused(
        dir,
        "cbits.qcow2",
        &patched(20, &30u32.to_be_bytes()),
        "cluster_bits",
    );
    refused(
        dir,
        "huge.qcow2",
        &patched(24, &(1u64 << 63).to_be_bytes()),
        "virtual size",
    );
    refused(
        dir,
        "l1big.qcow2",
        &patched(36, &u32::MAX.to_be_bytes()),
        "L1 table",
    );
    refused(
        dir,
        "l1small.qcow2",
        &patched(36, &0u32.to_be_bytes()),
        "L1 table has 0 entries",
    );
    refused(
        dir,
        "l1eof.qcow2",
        &patched(40, &(1u64 << 40).to_be_bytes()),
        "extends beyond the end",
    );
    refused(
        dir,
        "l1align.qcow2",
        &patched(40, &0x10200u64.to_be_bytes()),
        "not cluster-aligned",
    );
    refused(
        dir,
        "hlen.qcow2",
        &patched(100, &70000u32.to_be_bytes()),
        "header_length",
    );
    // An L2 table beyond the end of the file, and one not aligned.
    let l1 = be64(&bytes, 40) as usize;
    let l2 = be64(&bytes, l1);
    let flags = l2 & !0x00ff_ffff_ffff_fe00;
    refused(
        dir,
        "l2eof.qcow2",
        &patched(l1, &(flags | 1 << 40).to_be_bytes()),
        "L2 table at offset",
    );
    refused(
        dir,
        "l2align.qcow2",
        &patched(l1, &(l2 + 512).to_be_bytes()),
        "not cluster-aligned",
    );
    // A data cluster offset not aligned.
    let l2 = (l2 & 0x00ff_ffff_ffff_fe00) as usize;
    let e0 = be64(&bytes, l2);
    refused(
        dir,
        "dalign.qcow2",
        &patched(l2, &(e0 + 512).to_be_bytes()),
        "not aligned",
    );
    // Corrupt bit, unknown incompatible feature, AES by hand.
    refused(
        dir,
        "corrupt.qcow2",
        &patched(79, &[bytes[79] | 2]),
        "marked corrupt",
    );
    refused(
        dir,
        "unknown.qcow2",
        &patched(77, &[1]),
        "unknown incompatible",
    );
    refused(
        dir,
        "aes.qcow2",
        &patched(32, &1u32.to_be_bytes()),
        "encrypted (AES)",
    );

    // Corrupt compressed data, deflate and zstd.
    for (name, opts) in [
        ("zbad.qcow2", vec!["-c"]),
        ("zstdbad.qcow2", vec!["-c", "-o", "compression_type=zstd"]),
    ] {
        let zc = dir.join(format!("src-{name}"));
        convert_qcow2(&good, &zc, &opts);
        let mut z = std::fs::read(&zc).unwrap();
        let n = z.len();
        for b in &mut z[n - 20000..n - 100] {
            *b ^= 0x5a;
        }
        refused(dir, name, &z, "compressed cluster");
    }

    // Extended L2: a subcluster both allocated and zero.
    let ext = create(dir, "ext.qcow2", "1M", &["-o", "extended_l2=on"]);
    qemu_io(&ext, "qcow2", &["write -P 1 0 4k"]);
    let eb = std::fs::read(&ext).unwrap();
    let l2 = (be64(&eb, be64(&eb, 40) as usize) & 0x00ff_ffff_ffff_fe00) as usize;
    let mut both = eb.clone();
    both[l2 + 8..l2 + 16].copy_from_slice(&(be64(&eb, l2 + 8) | 1 << 32).to_be_bytes());
    refused(dir, "ext-both.qcow2", &both, "both allocated and zero");

    // Backing loop a -> b -> a, and a chain deeper than the limit.
    let a = create(dir, "loop-a.qcow2", "1M", &[]);
    create(
        dir,
        "loop-b.qcow2",
        "1M",
        &["-b", "loop-a.qcow2", "-F", "qcow2"],
    );
    run_in(
        Some(dir),
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
            "loop-a.qcow2",
        ],
    );
    refused_path(&a, "loops");
    create(dir, "d0.qcow2", "1M", &[]);
    for i in 1..=16 {
        create(
            dir,
            &format!("d{i}.qcow2"),
            "1M",
            &["-b", &format!("d{}.qcow2", i - 1), "-F", "qcow2"],
        );
    }
    assert!(
        open(&dir.join("d15.qcow2"), None).is_ok(),
        "16 images deep is fine"
    );
    refused_path(&dir.join("d16.qcow2"), "deeper than 16");

    // Encryption (LUKS), made by qemu-img.
    let luks = dir.join("luks.qcow2");
    run(
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
    refused_path(&luks, "encrypted (LUKS)");
    // A missing backing file.
    let orphan = create(
        dir,
        "orphan.qcow2",
        "1M",
        &["-b", "gone.qcow2", "-F", "qcow2", "-u"],
    );
    refused_path(&orphan, "not found");
    // Backing files that are no disk: a FIFO (opening it would block forever), a char device.
    run_in(Some(dir), "mkfifo", &["fifo"]);
    let on_fifo = create(
        dir,
        "on-fifo.qcow2",
        "1M",
        &["-b", "fifo", "-F", "raw", "-u"],
    );
    refused_path(&on_fifo, "is a FIFO: refused");
    let on_zero = create(
        dir,
        "on-zero.qcow2",
        "1M",
        &["-b", "/dev/zero", "-F", "raw", "-u"],
    );
    refused_path(&on_zero, "is a character device: refused");
}

/// `convert --checksum sha256` prints what `sha256sum` prints for the output; `--checksum
/// sha256-blocks` what the README's Python recipe recomputes from the file.
#[test]
fn convert_checksums_match_sha256sum_and_the_readme_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let img = create(dir.path(), "c.qcow2", "9M", &[]);
    qemu_io(&img, "qcow2", PATTERN);
    let out_file = dir.path().join("c.raw");
    let (src, dest) = (img.to_str().unwrap(), out_file.to_str().unwrap());
    let shell =
        |cmd: String| String::from_utf8_lossy(&run("bash", &["-c", &cmd]))[..64].to_string();
    for (algo, witness) in [
        ("sha256", format!("sha256sum '{dest}'")),
        (
            "sha256-blocks",
            format!("python3 -c \"{}\" < '{dest}'", rbdkit::copy::digest::RECIPE),
        ),
    ] {
        let args = [
            "convert",
            "--overwrite",
            "--no-progress",
            "--format",
            "json",
        ];
        let extra = ["--checksum", algo, src, dest];
        let out = run(
            env!("CARGO_BIN_EXE_rbdkit"),
            &[&args[..], &extra[..]].concat(),
        );
        let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(j["checksum_algorithm"], algo);
        assert_eq!(j["checksum"].as_str().unwrap(), shell(witness), "{algo}");
    }
}
