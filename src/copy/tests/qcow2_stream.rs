//! qcow2 streams: content and checksums as qemu reads them, spill, out-of-order data, cancel,
//! a corrupt cluster, a failing sink while the stream stalls.
use super::super::digest::checksum_of;
use super::super::*;
use crate::disk::qcow2::stream::qemu::{convert_qcow2, create, qemu_io, reference_bytes};
use crate::error::{Error, Result};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// A zeroed disk in memory that checks what the engine promises: writes inside the disk,
/// never overlapping, never an all-zero sparse block.
struct VecSink {
    disk: Vec<u8>,
    written: Vec<bool>,
    sparse: usize,
    finished: Option<u64>,
}

impl Sink for VecSink {
    fn ensure_size(&mut self, size: u64) -> Result<()> {
        if size as usize > self.disk.len() {
            self.disk.resize(size as usize, 0);
            self.written.resize(size as usize, false);
        }
        Ok(())
    }

    fn write(&mut self, offset: u64, data: PoolBuf) -> Result<()> {
        let o = offset as usize;
        assert!(o + data.len() <= self.disk.len(), "write past the end");
        for c in data.chunks(self.sparse) {
            assert!(!crate::copy::is_zero(c), "an all-zero block was written");
        }
        for w in &mut self.written[o..o + data.len()] {
            assert!(!*w, "overlapping writes at {offset:#x}");
            *w = true;
        }
        self.disk[o..o + data.len()].copy_from_slice(&data);
        Ok(())
    }

    fn finish(&mut self, size: u64) -> Result<()> {
        self.finished = Some(size);
        Ok(())
    }
}

fn opts(checksum: Checksum) -> CopyOptions {
    CopyOptions {
        chunk_size: 1 << 20,
        sparse_size: 4096,
        threads: 3,
        memory: 32 << 20,
        checksum: Some(checksum),
        hash_buffer: HASH_BUFFER_BYTES,
    }
}

/// A copy with the plain SHA-256, so the expected value is `sha256sum` of qemu's output.
fn copy(img: &Path, hash_buffer: u64, cancel: &AtomicBool) -> Result<(VecSink, CopyStats)> {
    copy_with_checksum(img, hash_buffer, cancel, Checksum::Sha256)
}

fn copy_with_checksum(
    img: &Path,
    hash_buffer: u64,
    cancel: &AtomicBool,
    checksum: Checksum,
) -> Result<(VecSink, CopyStats)> {
    let s = Qcow2Stream::open(Box::new(std::fs::File::open(img).unwrap()), "stdin")?;
    let mut sink = VecSink {
        disk: Vec::new(),
        written: Vec::new(),
        sparse: 4096,
        finished: None,
    };
    let last = std::sync::Mutex::new((0u64, 0u64));
    let progress = |d: u64, t: u64| {
        let mut l = last.lock().unwrap();
        assert!(d >= l.0, "progress went backwards");
        *l = (d, t);
    };
    let ctl = Control {
        progress: &progress,
        cancel,
    };
    let opts = CopyOptions {
        hash_buffer,
        ..opts(checksum)
    };
    let st = copy_qcow2_stream(s, &mut sink, &opts, &ctl)?;
    assert_eq!(*last.lock().unwrap(), (st.virtual_size, st.virtual_size));
    Ok((sink, st))
}

fn sha(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(b))
}

#[test]
fn qcow2_stream_copy_matches_qemu_with_checksum_and_spill() {
    let d = tempfile::tempdir().unwrap();
    let src = create(d.path(), "s.qcow2", "12M", &[]);
    qemu_io(
        &src,
        "qcow2",
        &[
            "write -P 0x11 0 3M",
            "write -P 0x22 3M 1M",
            "write -z 4M 64k",
            "write -P 0x33 5M 3000k",
            "write -P 0x44 11M 1M",
        ],
    );
    let c = d.path().join("c.qcow2");
    convert_qcow2(
        &src,
        &c,
        &["-c", "-o", "cluster_size=4096,compression_type=zstd"],
    );
    for img in [&src, &c] {
        let want = reference_bytes(img);
        let (sink, st) = copy(img, HASH_BUFFER_BYTES, &AtomicBool::new(false)).unwrap();
        assert!(sink.disk == want, "{}: content differs", img.display());
        assert_eq!(st.checksum.as_deref(), Some(sha(&want).as_str()));
        assert!(!st.checksum_fell_back);
        assert_eq!(sink.finished, Some(want.len() as u64));
        let nonzero: u64 = nonzero_runs(&want, 4096).iter().map(|r| r.1 as u64).sum();
        assert_eq!(st.bytes_written, nonzero);
        assert_eq!(st.bytes_read, Some(std::fs::metadata(img).unwrap().len()));
        eprintln!("{}: {st:?}", img.display());
    }
    let (_, st) = copy(&c, HASH_BUFFER_BYTES, &AtomicBool::new(false)).unwrap();
    assert!(
        st.bytes_spilled > Some(0),
        "compressed data before its L2 table: {st:?}"
    );
    // sha256-blocks: 64 KiB clusters are hashed by the decode threads, 4 KiB ones by the
    // hasher, with the same result as hashing qemu's output.
    for img in [&src, &c] {
        let want = checksum_of(Checksum::Sha256Blocks, &reference_bytes(img));
        let cancel = AtomicBool::new(false);
        let blocks = Checksum::Sha256Blocks;
        let (_, st) = copy_with_checksum(img, HASH_BUFFER_BYTES, &cancel, blocks).unwrap();
        assert_eq!(st.checksum, Some(want), "{}", img.display());
    }
}

#[test]
fn qcow2_stream_out_of_order_falls_back_to_no_checksum() {
    let d = tempfile::tempdir().unwrap();
    let img = create(d.path(), "rev.qcow2", "8M", &[]);
    let cmds: Vec<String> = (0..8)
        .rev()
        .map(|i| format!("write -P {} {}M 1M", i + 1, i))
        .collect();
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    qemu_io(&img, "qcow2", &cmds);
    let want = reference_bytes(&img);
    // Enough buffer: the hash still comes out right, out of order.
    let (sink, st) = copy(&img, 64 << 20, &AtomicBool::new(false)).unwrap();
    assert!(sink.disk == want);
    assert_eq!(st.checksum.as_deref(), Some(sha(&want).as_str()));
    // 2 MiB of buffer cannot bridge 7 MiB of reversed data: no checksum, same content.
    let (sink, st) = copy(&img, 2 << 20, &AtomicBool::new(false)).unwrap();
    assert!(sink.disk == want);
    assert!(st.checksum.is_none() && st.checksum_fell_back, "{st:?}");
    // sha256-blocks: the decode threads hash the 64 KiB clusters, only digests wait, and
    // no buffer is needed for the data at all.
    let (sink, st) =
        copy_with_checksum(&img, 0, &AtomicBool::new(false), Checksum::Sha256Blocks).unwrap();
    assert!(sink.disk == want);
    let blocks = checksum_of(Checksum::Sha256Blocks, &want);
    assert_eq!(st.checksum, Some(blocks), "{st:?}");
    assert!(!st.checksum_fell_back);
}

#[test]
fn qcow2_stream_cancel_and_corrupt_cluster() {
    let d = tempfile::tempdir().unwrap();
    let src = create(d.path(), "s.qcow2", "4M", &[]);
    qemu_io(&src, "qcow2", &["write -P 0x11 0 4M"]);
    let Err(e) = copy(&src, HASH_BUFFER_BYTES, &AtomicBool::new(true)) else {
        panic!("a cancelled copy succeeded");
    };
    assert!(matches!(e, Error::Interrupted(_)), "{e}");

    let c = d.path().join("c.qcow2");
    convert_qcow2(&src, &c, &["-c"]);
    // Damage the compressed data (it follows the metadata, at 0x50000).
    let mut b = std::fs::read(&c).unwrap();
    for x in &mut b[0x50000..0x50040] {
        *x = 0xff;
    }
    std::fs::write(&c, b).unwrap();
    let Err(e) = copy(&c, HASH_BUFFER_BYTES, &AtomicBool::new(false)) else {
        panic!("a corrupt cluster was decoded");
    };
    let e = e.to_string();
    assert!(
        e.starts_with("stdin: compressed cluster for guest offset"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1);
}

/// Hands out what the test sends; blocks while nothing is sent (a stalled pipe).
struct Pipe(std::sync::mpsc::Receiver<Vec<u8>>, Vec<u8>);

impl std::io::Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.1.is_empty() {
            match self.0.recv() {
                Ok(b) => self.1 = b,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.1.len());
        buf[..n].copy_from_slice(&self.1[..n]);
        self.1.drain(..n);
        Ok(n)
    }
}

struct FailingSink;

impl Sink for FailingSink {
    fn ensure_size(&mut self, _: u64) -> Result<()> {
        Ok(())
    }
    fn write(&mut self, _: u64, _: PoolBuf) -> Result<()> {
        Err(Error::Other("the target broke".into()))
    }
    fn finish(&mut self, _: u64) -> Result<()> {
        Ok(())
    }
}

#[test]
fn qcow2_stream_sink_failure_ends_the_copy_while_the_stream_stalls() {
    let d = tempfile::tempdir().unwrap();
    let src = create(d.path(), "s.qcow2", "64M", &[]);
    qemu_io(&src, "qcow2", &["write -P 0x11 0 64M"]);
    let bytes = std::fs::read(&src).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Half the image, then nothing: the writer of the pipe stalls.
    tx.send(bytes[..bytes.len() / 2].to_vec()).unwrap();
    let s = Qcow2Stream::open(Box::new(Pipe(rx, Vec::new())), "stdin").unwrap();
    let cancel = AtomicBool::new(false);
    let ctl = Control {
        progress: &|_, _| {},
        cancel: &cancel,
    };
    let started = Instant::now();
    let Err(e) = copy_qcow2_stream(s, &mut FailingSink, &opts(Checksum::Sha256Blocks), &ctl) else {
        panic!("a broken sink succeeded");
    };
    assert!(e.to_string().contains("the target broke"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(tx);
}
