//! `-O qcow2` to stdout (`-`): a qcow2 image streamed in one forward pass through a pipe,
//! judged by qemu: `qemu-img check` finds no error and no leak, and `qemu-img convert -O raw`
//! of it is byte-identical to the source's raw (`rbd export` of the snapshot, `qemu-img
//! convert -O raw` of a file). Clusters are stored exactly where the source's allocation map
//! has data (all-zero ones inside it too), nothing for holes. A closed stdout, `--compress`
//! and sources whose map is not known before the copy (streams) end with one line, no panic.
mod common;
use common::qemu_img::*;
use common::*;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const CLUSTER: u64 = 65536;

/// Saves what rbdkit wrote to its stdout (a pipe: `Command::output` reads it through one, so
/// nothing could seek) as `out`, after checking it succeeded.
fn save_stdout(o: &Output, out: &Path, what: &str) {
    assert!(o.status.success(), "{what}: {}", stderr(o));
    assert_eq!(&o.stdout[..4], b"QFI\xfb", "{what}: not a qcow2 stream");
    std::fs::write(out, &o.stdout).unwrap();
}

/// Checks the streamed image `out` against the raw bytes `want`: sound, the same bytes, and
/// `clusters` data clusters stored.
fn assert_good_stream(out: &Path, want: &[u8], clusters: u64, what: &str) {
    let v = qemu_check(out);
    let got = qemu_raw(out);
    assert!(
        got == want,
        "{what}: qemu reads other bytes ({} vs {})",
        got.len(),
        want.len()
    );
    // qemu-img check leaves the count out of an image with no cluster.
    let stored = v["allocated-clusters"].as_u64().unwrap_or(0);
    assert_eq!(stored, clusters, "{what}: {v}");
    assert_eq!(v["compressed-clusters"].as_u64().unwrap_or(0), 0, "{what}");
}

/// Runs rbdkit (no cluster needed) with stdout and stderr captured.
fn rbdkit_local(args: &[&str], stdin: Stdio) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(args)
        .arg("--no-progress")
        .stdin(stdin)
        .output()
        .unwrap()
}

/// A sparse raw file: data and explicitly written zeros (allocated, so stored) at
/// 4 KiB-aligned places, holes elsewhere, a size off the cluster size but whole sectors,
/// crossing an L2 table's span (512 MiB). Stored clusters: those the written ranges touch.
#[test]
fn convert_a_sparse_raw_file_to_stdout_as_qcow2() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("sparse.raw");
    let size: u64 = (600 << 20) + 3 * 512;
    let f = std::fs::File::create(&raw).unwrap();
    f.set_len(size).unwrap();
    use std::os::unix::fs::FileExt;
    // (offset, length, byte): 0 is written zeros, an allocated extent holding only zeros.
    let writes: [(u64, u64, u8); 5] = [
        (4096, 8192, 0x11),
        (CLUSTER * 10, 2 * CLUSTER, 0),
        (CLUSTER * 12, 4096, 0x22),
        (511 << 20, 2 << 20, 0x33),
        (size - 1536, 1536, 0x44),
    ];
    for (at, n, b) in writes {
        f.write_all_at(&vec![b; n as usize], at).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    let mut touched: Vec<u64> = writes
        .iter()
        .flat_map(|&(at, n, _)| at / CLUSTER..(at + n).div_ceil(CLUSTER))
        .collect();
    touched.dedup();
    let o = rbdkit_local(&["convert", s(&raw), "-", "-O", "qcow2"], Stdio::null());
    let out = dir.path().join("out.qcow2");
    save_stdout(&o, &out, "convert sparse raw");
    let want = std::fs::read(&raw).unwrap();
    assert_good_stream(&out, &want, touched.len() as u64, "sparse raw");
    // Holes cost nothing: the image is the tables and the touched clusters.
    assert!(std::fs::metadata(&out).unwrap().len() < (touched.len() as u64 + 10) * CLUSTER);
}

/// Clusters overlapping the ranges `qemu-img map` says hold data (not zero-flagged ones,
/// even where qemu keeps their host cluster allocated).
fn qemu_data_clusters(img: &Path) -> u64 {
    let o = Command::new("qemu-img")
        .args(["map", "--output=json", s(img)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut clusters: Vec<u64> = Vec::new();
    for e in v.as_array().unwrap() {
        if e["data"] == true && e["zero"] == false {
            let (start, len) = (e["start"].as_u64().unwrap(), e["length"].as_u64().unwrap());
            clusters.extend(start / CLUSTER..(start + len).div_ceil(CLUSTER));
        }
    }
    clusters.sort_unstable();
    clusters.dedup();
    clusters.len() as u64
}

/// qcow2 files in (qemu's zero clusters are not stored, even one qemu keeps allocated; a
/// dense image; an empty one): the stream stores exactly the clusters holding data in the
/// source.
#[test]
fn convert_a_qcow2_file_to_stdout_as_qcow2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sources = [
        qemu_image(
            d,
            "sparse.qcow2",
            "1100M",
            &[
                "write -P 0x51 1M 5M",
                "write -z 2M 64k",
                "write -P 0x52 30M 100k",
                "write -P 0x53 600M 1M",
                "write -P 0x54 1099M 1M",
            ],
        ),
        qemu_image(d, "dense.qcow2", "12M", &["write -P 0x5a 0 12M"]),
        qemu_image(d, "odd.qcow2", "10489344", &["write -P 0x66 0 10489344"]),
        qemu_image(d, "empty.qcow2", "0", &[]),
    ];
    for src in &sources {
        let what = src.display().to_string();
        let allocated = qemu_data_clusters(src);
        let o = rbdkit_local(&["convert", s(src), "-", "-O", "qcow2"], Stdio::null());
        let out = src.with_extension("out.qcow2");
        save_stdout(&o, &out, &what);
        assert_good_stream(&out, &qemu_raw(src), allocated, &what);
    }
}

/// Stdout closed early (`| head -c 1000`): one error line or the quiet EPIPE exit, never a
/// panic; what came first was the qcow2 header.
#[test]
fn a_closed_stdout_ends_the_stream_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let src = qemu_image(dir.path(), "big.qcow2", "64M", &["write -P 0x61 0 64M"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(["convert", s(&src), "-", "-O", "qcow2", "--no-progress"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_BACKTRACE")
        .spawn()
        .unwrap();
    let mut head = vec![0u8; 1000];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    // The read end is dropped here: every later write fails with EPIPE.
    let o = child.wait_with_output().unwrap();
    assert_eq!(&head[..4], b"QFI\xfb");
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    match o.status.code() {
        Some(141) => {}
        Some(1) => assert_one_line_error(&o, 1, &["stdout", "Broken pipe"]),
        other => panic!("exit {other:?}: {err}"),
    }
}

/// `--compress` with `-`, and sources whose allocation map is not known before the copy (a
/// qcow2 or raw stream on stdin), are refused with one line, exit 2, nothing on stdout.
#[test]
fn compress_and_streams_to_a_qcow2_stdout_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = qemu_image(dir.path(), "src.qcow2", "4M", &["write -P 0x31 0 1M"]);
    for c in ["zlib", "zstd"] {
        let o = rbdkit_local(
            &["convert", s(&src), "-", "-O", "qcow2", "--compress", c],
            Stdio::null(),
        );
        assert_one_line_error(&o, 2, &["--compress with -", "write to a file"]);
        assert!(o.stdout.is_empty());
        // Refused before connecting to any cluster.
        let o = rbdkit_local(
            &[
                "export",
                "images/whatever@s",
                "-",
                "-O",
                "qcow2",
                "--compress",
                c,
            ],
            Stdio::null(),
        );
        assert_one_line_error(&o, 2, &["--compress with -"]);
        assert!(o.stdout.is_empty());
    }
    let raw = dir.path().join("src.raw");
    std::fs::write(&raw, qemu_raw(&src)).unwrap();
    for (input, fmt) in [(&src, "qcow2"), (&raw, "raw")] {
        let stdin = Stdio::from(std::fs::File::open(input).unwrap());
        let o = rbdkit_local(&["convert", "-", "-", "-O", "qcow2"], stdin);
        assert_one_line_error(
            &o,
            2,
            &[&format!("({fmt} stream)"), "save it to a file first"],
        );
        assert!(o.stdout.is_empty(), "{fmt}");
    }
}

/// Live: `export POOL/IMG@SNAP - -O qcow2` of a snapshot with data and holes, through a pipe,
/// matches `rbd export` of the snapshot (the image written after the snapshot changes
/// nothing), with 4 MiB objects and with objects smaller than a cluster.
#[test]
fn export_of_a_snapshot_to_stdout_as_qcow2_matches_rbd_export() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = Cleanup::new(&conf());
    let raw = export_source_raw(d);
    for obj in ["4M", "16K"] {
        let spec = import_with_snapshot(&conf(), &raw, obj, "q2stream", &mut c);
        let snap = format!("{spec}@s");
        // The head changes after the snapshot, in a hole of it (0..1M): the export of the
        // snapshot must not see it.
        let o = rbd_with(
            &conf(),
            &[
                "bench",
                "--io-type",
                "write",
                "--io-size",
                "64K",
                "--io-total",
                "1M",
                "--io-pattern",
                "seq",
                &spec,
            ],
        );
        assert!(o.status.success(), "rbd bench: {}", stderr(&o));
        let want = {
            let o = rbd_with(&conf(), &["export", "--no-progress", &snap, "-"]);
            assert!(o.status.success(), "{}", stderr(&o));
            o.stdout
        };
        let o = rbdkit(&["export", &snap, "-", "-O", "qcow2"]);
        let out = d.join(format!("exp-{obj}.qcow2"));
        save_stdout(&o, &out, &format!("export {snap}"));
        let v = qemu_check(&out);
        let got = qemu_raw(&out);
        assert!(got == want, "{obj}: qemu reads other bytes than rbd export");
        // Stored: at least every cluster holding data, at most the objects that exist.
        let nonzero = want
            .chunks(CLUSTER as usize)
            .filter(|c| c.iter().any(|&b| b != 0))
            .count() as u64;
        let stored = v["allocated-clusters"].as_u64().unwrap();
        assert!(stored >= nonzero, "{obj}: {stored} < {nonzero}: {v}");
        assert!(
            stored < want.len() as u64 / CLUSTER,
            "{obj}: holes were stored: {v}"
        );
    }
}
