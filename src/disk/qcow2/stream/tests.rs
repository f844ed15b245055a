//! The stream decoder against qemu: images made by qemu-img/qemu-io at test time, streamed in
//! odd-sized reads, applied to a zeroed disk and compared byte for byte with
//! `qemu-img convert -O raw`; late tables, the spill, the claim limit; bad streams.
use super::qemu::{convert_qcow2, create, qemu_io, reference_bytes, run};
use super::*;
use crate::disk::qcow2::decode_cluster;
use std::path::{Path, PathBuf};

/// Writes of every kind at cluster-straddling offsets (as tests/qcow2_reader.rs).
const PATTERN: &[&str] = &[
    "write -P 0x11 0 100k",
    "write -P 0x22 1M 4k",
    "write -z 2M 512k",
    "write -P 0x33 3M 1M",
    "write -P 0x55 5M 256k",
    "write -z 5M 128k",
    "write -P 0x44 7340000 123k",
];

/// A reader that hands out at most `step` bytes per read, to shake out boundary bugs.
struct Dribble {
    data: Vec<u8>,
    at: usize,
    step: usize,
}

impl Read for Dribble {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn open(bytes: Vec<u8>, step: usize) -> Result<Qcow2Stream> {
    let r = Dribble {
        data: bytes,
        at: 0,
        step,
    };
    Qcow2Stream::open(Box::new(r), "test stream")
}

/// Feeds a whole stream through a decoder with `claim_limit`, in reads of `step` bytes.
fn drive(s: Qcow2Stream, piece: u64, claim_limit: usize, emit: Emit) -> Result<StreamStats> {
    let (mut dec, first, mut reader) = s.into_parts(piece, Box::new(|n| vec![0xa5; n]));
    dec.set_claim_limit(claim_limit);
    dec.feed(&first, emit)?;
    let mut buf = vec![0u8; 300_000];
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            return dec.finish(emit);
        }
        dec.feed(&buf[..n], emit)?;
    }
}

/// Checks the events cover `[0, size)` exactly once, without holding per-byte state.
fn assert_covered_once(mut spans: Vec<(u64, u64)>, size: u64) {
    spans.sort_unstable();
    let mut at = 0;
    for (g, n) in spans {
        assert_eq!(g, at, "guest range at {g:#x}: gap or overlap before it");
        assert!(n > 0);
        at = g + n;
    }
    assert_eq!(at, size, "events end at {at:#x}, disk at {size:#x}");
}

/// Decodes `bytes` as a stream and applies the events to a zeroed disk.
fn decode(
    bytes: Vec<u8>,
    step: usize,
    piece: u64,
    claim_limit: usize,
) -> Result<(Vec<u8>, StreamStats)> {
    let s = open(bytes, step)?;
    let size = s.virtual_size();
    let comp = s.header().compression;
    let cs = s.header().cluster_size() as usize;
    let mut disk = vec![0u8; size as usize];
    let mut spans = Vec::new();
    let stats = drive(s, piece, claim_limit, &mut |ev| {
        match ev {
            Event::Data { guest, bytes } => {
                assert!(!bytes.is_empty());
                let last = guest + bytes.len() as u64 - 1;
                assert_eq!(guest / piece, last / piece, "piece crosses a boundary");
                spans.push((guest, bytes.len() as u64));
                disk[guest as usize..=last as usize].copy_from_slice(&bytes);
            }
            Event::Compressed {
                guest,
                host,
                input,
                len,
            } => {
                let mut out = vec![0u8; cs];
                decode_cluster(comp, &input, &mut out).map_err(|why| {
                    Error::bad_image("test stream", format!("cluster at {host:#x}: {why}"))
                })?;
                spans.push((guest, len as u64));
                disk[guest as usize..guest as usize + len].copy_from_slice(&out[..len]);
            }
            Event::Zero { guest, len } => spans.push((guest, len)),
        }
        Ok(())
    })?;
    assert_covered_once(spans, size);
    Ok((disk, stats))
}

/// Streams `img` (several read sizes and piece sizes) and compares with
/// `qemu-img convert -O raw`; returns the stats of the last run.
fn check_with(img: &Path, claim_limit: usize) -> StreamStats {
    let want = reference_bytes(img);
    let bytes = std::fs::read(img).unwrap();
    let mut stats = None;
    for (step, piece) in [(1 << 20, 4 << 20), (4093, 1 << 16), (usize::MAX, 1 << 22)] {
        let (got, st) = decode(bytes.clone(), step, piece, claim_limit)
            .unwrap_or_else(|e| panic!("{}: {e}", img.display()));
        assert_eq!(got.len(), want.len());
        if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
            panic!(
                "{} (read step {step}): first difference at guest byte {i:#x}",
                img.display()
            );
        }
        assert_eq!(st.bytes_read, bytes.len() as u64);
        eprintln!("{}: read step {step}, piece {piece}: {st:?}", img.display());
        stats = Some(st);
    }
    stats.unwrap()
}

fn check(img: &Path) -> StreamStats {
    check_with(img, MAX_PENDING_CLAIMS)
}

fn image(dir: &Path, name: &str, size: &str, opts: &[&str], cmds: &[&str]) -> PathBuf {
    let p = create(dir, name, size, opts);
    qemu_io(&p, "qcow2", cmds);
    p
}

#[test]
fn stream_v2_and_v3_match_qemu_without_spilling() {
    let d = tempfile::tempdir().unwrap();
    for (name, opts) in [
        ("v2.qcow2", vec!["-o", "compat=0.10"]),
        ("v3.qcow2", vec![]),
    ] {
        let img = image(d.path(), name, "8M", &opts, PATTERN);
        // qemu puts the refcount structures and the L1 table first, and each L2 table
        // before the data it maps: nothing needs spilling.
        let st = check(&img);
        assert_eq!(st.bytes_spilled, 0, "{name}: {st:?}");
        let converted = d.path().join(format!("c-{name}"));
        convert_qcow2(&img, &converted, &[]);
        let st = check(&converted);
        assert_eq!(st.bytes_spilled, 0, "{name} converted: {st:?}");
    }
}

#[test]
fn stream_cluster_sizes_512_and_2m() {
    let d = tempfile::tempdir().unwrap();
    for cs in ["512", "2M"] {
        let opts = ["-o", &format!("cluster_size={cs}")];
        let img = image(d.path(), &format!("cs{cs}.qcow2"), "8M", &opts, PATTERN);
        // Zeroing data (`write -z 5M 128k`) leaves it stale under zero clusters, which
        // are known not to be needed: still nothing to spill.
        let st = check(&img);
        assert_eq!(st.bytes_spilled, 0, "{cs}: {st:?}");
    }
}

#[test]
fn stream_zero_clusters_over_data() {
    let d = tempfile::tempdir().unwrap();
    let img = image(
        d.path(),
        "z.qcow2",
        "4M",
        &[],
        &[
            "write -P 0x66 0 4M",
            "write -z 64k 1M",
            "write -z -u 2M 128k",
        ],
    );
    check(&img);
}

#[test]
fn stream_compressed_deflate_and_zstd() {
    let d = tempfile::tempdir().unwrap();
    let rnd = d.path().join("rnd");
    run(
        "dd",
        &[
            "if=/dev/urandom",
            &format!("of={}", rnd.display()),
            "bs=1M",
            "count=1",
            "status=none",
        ],
    );
    let src = image(
        d.path(),
        "src.qcow2",
        "9M",
        &[],
        &[
            "write -P 0x11 0 3M",
            "write -P 0x22 3M 1M",
            "write -z 4M 64k",
            "write -P 0x33 5M 3000k",
            // Incompressible: qemu-img stores such clusters uncompressed.
            &format!("write -s {} 8M 1M", rnd.display()),
        ],
    );
    // 4 KiB clusters: an L2 table maps 2 MiB, and qemu-img packs compressed clusters so
    // that some land before the table that maps them: those go through the spill.
    for (name, extra, spills) in [
        ("deflate.qcow2", vec!["-c", "-o", "cluster_size=4096"], true),
        (
            "zstd.qcow2",
            vec!["-c", "-o", "cluster_size=4096,compression_type=zstd"],
            true,
        ),
        (
            "zstd64k.qcow2",
            vec!["-c", "-o", "compression_type=zstd"],
            false,
        ),
        (
            "deflate2m.qcow2",
            vec!["-c", "-o", "cluster_size=2M"],
            false,
        ),
    ] {
        let dst = d.path().join(name);
        convert_qcow2(&src, &dst, &extra);
        let st = check(&dst);
        assert_eq!(st.bytes_spilled > 0, spills, "{name}: {st:?}");
    }
}

#[test]
fn stream_extended_l2_subclusters() {
    let d = tempfile::tempdir().unwrap();
    let img = image(
        d.path(),
        "ext.qcow2",
        "8M",
        &["-o", "extended_l2=on"],
        &[
            "write -P 0x11 0 3k",
            "write -P 0x22 70k 5k",
            "write -z 72k 1k",
            "write -P 0x33 1M 200k",
            "write -z 1100k 30k",
            "write -P 0x44 8000k 192k",
        ],
    );
    check(&img);
    let conv = d.path().join("ext-conv.qcow2");
    convert_qcow2(&img, &conv, &["-o", "extended_l2=on,cluster_size=128k"]);
    check(&conv);
}

/// Moves every L2 table of `img` to the end of the file, after all data, and zeroes the
/// old copy: still valid for qemu, which reads by offset, and the worst order for a stream.
fn tables_to_end(img: &Path) {
    let mut f = std::fs::read(img).unwrap();
    let be = |b: &[u8]| b.iter().fold(0u64, |a, &x| a << 8 | x as u64);
    let cs = 1usize << be(&f[20..24]);
    let l1n = be(&f[36..40]) as usize;
    let l1o = be(&f[40..48]) as usize;
    f.resize(f.len().div_ceil(cs) * cs, 0);
    for i in 0..l1n {
        let at = l1o + 8 * i;
        let e = be(&f[at..at + 8]);
        let t = (e & OFFSET_MASK) as usize;
        if t == 0 {
            continue;
        }
        let table = f[t..t + cs].to_vec();
        f[t..t + cs].fill(0);
        let moved = (e & !OFFSET_MASK) | f.len() as u64;
        f.extend_from_slice(&table);
        f[at..at + 8].copy_from_slice(&moved.to_be_bytes());
    }
    std::fs::write(img, f).unwrap();
}

#[test]
fn stream_l2_tables_after_their_data_go_through_the_spill() {
    let d = tempfile::tempdir().unwrap();
    // 512-byte clusters: an L2 table maps 32 KiB, so there are many tables.
    let img = image(
        d.path(),
        "late.qcow2",
        "2M",
        &["-o", "cluster_size=512"],
        &[
            "write -P 0x11 0 100k",
            "write -P 0x77 1500k 300k",
            "write -z 1600k 8k",
        ],
    );
    tables_to_end(&img);
    let st = check(&img);
    assert!(
        st.bytes_spilled >= 392 << 10 && st.tables_late == 0,
        "{st:?}"
    );
    let c = d.path().join("late-c.qcow2");
    convert_qcow2(&img, &c, &["-c", "-o", "cluster_size=4096"]);
    tables_to_end(&c);
    let st = check(&c);
    assert!(st.bytes_spilled > 0, "{st:?}");
}

#[test]
fn stream_l1_table_after_data() {
    let d = tempfile::tempdir().unwrap();
    // Growing an image past what its L1 table maps moves the table to the end of the file.
    for cs in ["512", "4096"] {
        let opts = ["-o", &format!("cluster_size={cs}")];
        let img = image(d.path(), &format!("grown{cs}.qcow2"), "8M", &opts, PATTERN);
        run("qemu-img", &["resize", "-q", img.to_str().unwrap(), "24M"]);
        qemu_io(&img, "qcow2", &["write -P 0x99 20M 64k"]);
        let st = check(&img);
        assert!(st.bytes_spilled > 0 && st.tables_late > 0, "{cs}: {st:?}");
    }
}

#[test]
fn stream_reverse_guest_order() {
    let d = tempfile::tempdir().unwrap();
    let cmds: Vec<String> = (0..16)
        .rev()
        .map(|i| format!("write -P {} {}k 64k", i + 1, i * 128))
        .collect();
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    let img = image(d.path(), "rev.qcow2", "4M", &[], &cmds);
    check(&img);
}

#[test]
fn stream_claim_limit_defers_tables_to_the_end() {
    let d = tempfile::tempdir().unwrap();
    // Every L2 table early (its range's first cluster written first), the bulk of each
    // range's data later: many claims pending at once.
    let mut cmds: Vec<String> = (0..64)
        .map(|k| format!("write -P 1 {}k 512", k * 32))
        .collect();
    cmds.extend((0..64).map(|k| format!("write -P {} {}k 32k", k + 2, k * 32)));
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    let img = image(
        d.path(),
        "early.qcow2",
        "2M",
        &["-o", "cluster_size=512"],
        &cmds,
    );
    let st = check_with(&img, 100);
    assert!(st.tables_deferred > 0 && st.bytes_spilled > 0, "{st:?}");
    let st = check(&img);
    assert!(st.tables_deferred == 0 && st.bytes_spilled == 0, "{st:?}");
}

fn err_of(bytes: Vec<u8>) -> String {
    match decode(bytes, 1 << 20, 4 << 20, MAX_PENDING_CLAIMS) {
        Ok(_) => panic!("decoded without an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn truncated_garbage_and_backed_streams_fail_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let img = image(d.path(), "t.qcow2", "8M", &[], PATTERN);
    let full = std::fs::read(&img).unwrap();
    for cut in [
        0usize,
        3,
        50,
        100,
        0x10000,
        0x30004,
        0x40000,
        0x48000,
        full.len() - 1,
    ] {
        let e = err_of(full[..cut].to_vec());
        assert!(
            e.contains("truncated") || e.contains("too short"),
            "cut at {cut}: {e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    let mut garbage = full[..4].to_vec();
    garbage.extend((0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let e = err_of(garbage);
    assert!(e.starts_with("test stream: "), "{e}");
    assert!(err_of(b"not a qcow2 at all".repeat(100)).contains("not a qcow2"));

    image(d.path(), "base.qcow2", "8M", &[], &["write -P 1 0 64k"]);
    let top = create(
        d.path(),
        "top.qcow2",
        "8M",
        &["-b", "base.qcow2", "-F", "qcow2"],
    );
    let e = err_of(std::fs::read(&top).unwrap());
    assert!(
        e.contains("cannot have a backing file") && e.contains("base.qcow2"),
        "{e}"
    );
    let df = create(d.path(), "df.qcow2", "8M", &["-o", "data_file=df.raw"]);
    let e = err_of(std::fs::read(&df).unwrap());
    assert!(e.contains("external data file"), "{e}");
}

/// Decodes without materialising the disk (a corrupt header may claim 64 PiB), checking
/// only that events stay inside the disk and never overlap. Stops (with an error) after
/// 64 MiB of data: a corrupt image may map one cluster everywhere on a huge disk.
fn decode_anything(bytes: Vec<u8>) -> Result<StreamStats> {
    let s = open(bytes, 1 << 16)?;
    let size = s.virtual_size();
    let cs = s.header().cluster_size() as usize;
    let comp = s.header().compression;
    let mut spans = Vec::new();
    let mut budget = 64u64 << 20;
    let st = drive(s, 1 << 16, 64, &mut |ev| {
        if !matches!(ev, Event::Zero { .. }) {
            budget = budget
                .checked_sub(1 << 16)
                .ok_or(Error::Other("budget".into()))?;
        }
        let (g, n) = match ev {
            Event::Data { guest, bytes } => (guest, bytes.len() as u64),
            Event::Zero { guest, len } => (guest, len),
            Event::Compressed {
                guest, input, len, ..
            } => {
                let mut out = vec![0u8; cs];
                let _ = decode_cluster(comp, &input, &mut out);
                (guest, len as u64)
            }
        };
        assert!(
            n > 0 && g + n <= size,
            "event {g:#x}+{n} outside the disk ({size})"
        );
        spans.push((g, n));
        Ok(())
    })?;
    assert_covered_once(spans, size);
    Ok(st)
}

#[test]
fn corrupted_streams_never_panic() {
    let d = tempfile::tempdir().unwrap();
    let a = image(
        d.path(),
        "a.qcow2",
        "4M",
        &["-o", "cluster_size=4096"],
        &PATTERN[..4],
    );
    let c = d.path().join("c.qcow2");
    convert_qcow2(&a, &c, &["-c", "-o", "cluster_size=4096"]);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut ok, mut failed) = (0, 0);
    for img in [a, c] {
        let good = std::fs::read(&img).unwrap();
        // Mostly the metadata at the front: header, refcounts, L1, first L2 tables.
        let limit = good.len().min(0x8000);
        for _ in 0..400 {
            let mut b = good.clone();
            for _ in 0..1 + next() % 8 {
                let i = (next() as usize) % limit;
                b[i] = next() as u8;
            }
            match decode_anything(b) {
                Ok(_) => ok += 1,
                Err(e) => {
                    assert_eq!(e.to_string().lines().count(), 1, "{e}");
                    failed += 1;
                }
            }
        }
    }
    eprintln!("{ok} corrupted streams decoded, {failed} refused");
    assert!(failed > 0);
}

#[test]
fn fuzz_corpus_streams_without_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut n = 0;
    for dir in ["corpus", "crashes"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            if let Err(e) = decode_anything(bytes) {
                assert_eq!(e.to_string().lines().count(), 1, "{e}");
            }
            n += 1;
        }
    }
    assert!(n >= 20, "the fuzz corpus sample is missing ({n} files)");
}
