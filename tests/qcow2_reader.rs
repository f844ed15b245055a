//! The disk reader against qemu, feature by feature. Each fixture is made at test time by
//! qemu-img/qemu-io; the whole virtual disk is read through `rbdkit::disk` (big reads, odd
//! unaligned reads, many threads at once, and from memory) and compared byte for byte with
//! `qemu-img convert -O raw`, and the extents are compared with `qemu-img map --output=json`.
//! Backing chains and data files: `qcow2_reader_chains.rs`; bad images: `qcow2_reader_bad.rs`.
mod qcow2_check;
mod qemu;
use qcow2_check::{assert_reads_match, chains, check, merged, open, Chain, PATTERN};
use qemu::{convert_qcow2, create, qemu_io, reference_bytes, reference_map, run};
use rbdkit::disk::qcow2::{decode_cluster, Mapping, Qcow2};
use rbdkit::disk::{ExtentKind, Format, OpenOptions};
use std::process::Command;

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
    assert_eq!("vmdk".parse::<Format>().unwrap(), Format::Vmdk);
    assert_eq!("vpc".parse::<Format>().unwrap(), Format::Vhd);
    assert!("vdi".parse::<Format>().is_err());
    let tiny = dir.path().join("tiny");
    std::fs::write(&tiny, b"QF").unwrap();
    assert_eq!(open(&tiny, None).unwrap().format_name(), "raw");
    assert!(open(&raw, Some(Format::Qcow2)).is_err());
}

/// `convert --checksum sha256` prints what `sha256sum` prints for the output; `--checksum
/// sha256-tree` and `--checksum sha256-blocks` what the README's Python recipes recompute from
/// the file.
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
        (
            "sha256-tree",
            format!(
                "python3 -c \"{}\" < '{dest}'",
                rbdkit::copy::digest::TREE_RECIPE
            ),
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
