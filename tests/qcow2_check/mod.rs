//! What the qcow2 reader tests share: opening with chains allowed, the write pattern, and the
//! check that reads an image every way the copy engine can and compares it with qemu (bytes
//! from `qemu-img convert -O raw`, extents from `qemu-img map`). Needs the including test crate
//! to declare `mod qemu;`.
#![allow(dead_code)]

use crate::qemu::{reference_bytes, reference_map};
use rbdkit::disk::qcow2::Qcow2;
use rbdkit::disk::{DiskSource, ExtentKind, FilePolicy, Format, OpenOptions};
use std::path::Path;

/// What the chain tests allow: files the image names, inside its own directory (the
/// default refuses them; `tests/untrusted_cli.rs` covers that).
pub fn chains() -> FilePolicy {
    FilePolicy::allow(&[]).unwrap()
}

/// `rbdkit::disk::open` with chains followed and `format` declared.
pub fn open(p: &Path, format: Option<Format>) -> rbdkit::Result<Box<dyn DiskSource>> {
    let opts = OpenOptions {
        format,
        files: chains(),
        ..Default::default()
    };
    rbdkit::disk::open(p, &opts)
}

/// Writes of every kind at cluster-straddling offsets: data, zeros over unallocated space,
/// zeros over data (a preallocated zero cluster in v3), data in the last partial megabyte.
pub const PATTERN: &[&str] = &[
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
pub enum Chain {
    /// qcow2 layers only: "present" must match too (unallocated = absent from every layer).
    Qcow2Only,
    /// A raw file below: qemu calls every raw byte present, we call raw holes unallocated.
    WithRaw,
}

/// Reads `img` every way the copy engine can and compares with qemu; returns the reference.
pub fn check(img: &Path, chain: Chain) -> Vec<u8> {
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

/// Reads `disk` whole, in odd unaligned pieces and from four threads; each must equal `want`.
pub fn assert_reads_match(disk: &dyn DiskSource, want: &[u8], name: &str) {
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
pub fn merged<K: PartialEq + Copy>(
    runs: impl Iterator<Item = (u64, u64, K)>,
) -> Vec<(u64, u64, K)> {
    let mut out: Vec<(u64, u64, K)> = Vec::new();
    for (s, l, k) in runs {
        match out.last_mut() {
            Some(last) if last.2 == k && last.0 + last.1 == s => last.1 += l,
            _ => out.push((s, l, k)),
        }
    }
    out
}

/// The extents cover the disk in order, agree with `want` (no non-data over non-zero bytes)
/// and with `qemu-img map`'s (data, present) runs.
pub fn assert_extents_match(disk: &dyn DiskSource, img: &Path, want: &[u8], chain: Chain) {
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
