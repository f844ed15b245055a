//! The engine's tests: every producer into a sink that checks what the engine promises, and
//! every failure the engine must turn into an error.
use super::digest::{self, checksum_of};
use super::sink_file::FileSink;
use super::*;
use crate::disk::qcow2::stream::qemu::{convert_qcow2, create, qemu_io, reference_bytes};
use crate::disk::{extents_from_data, Extent, ExtentKind};
use crate::error::Error;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// A disk in memory whose extents are given: data where listed, unallocated elsewhere.
struct MemDisk {
    bytes: Vec<u8>,
    data: Vec<(u64, u64)>,
}

impl DiskSource for MemDisk {
    fn virtual_size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        Ok(extents_from_data(
            offset,
            offset + len,
            self.data.iter().copied(),
        ))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let o = offset as usize;
        buf.copy_from_slice(&self.bytes[o..o + buf.len()]);
        Ok(())
    }

    fn format_name(&self) -> &'static str {
        "memory"
    }
}

/// Runs `copy` into a new sparse file `dest` with small chunks, three decode threads and a
/// window of four; returns what the file holds and the stats.
fn copy_to_file(
    dest: &std::path::Path,
    chunk_size: u64,
    checksum: Option<Checksum>,
    copy: impl FnOnce(&mut dyn Sink, &CopyOptions, &Control) -> Result<CopyStats>,
) -> (Vec<u8>, CopyStats) {
    let mut sink = FileSink::create(dest, false).unwrap();
    let opts = CopyOptions {
        chunk_size,
        sparse_size: 4096,
        threads: 3,
        window: 4,
        checksum,
        ..CopyOptions::default()
    };
    let cancel = AtomicBool::new(false);
    let ctl = Control {
        progress: &|_, _| {},
        cancel: &cancel,
    };
    let stats = copy(&mut sink, &opts, &ctl).unwrap();
    sink.commit().unwrap();
    (std::fs::read(dest).unwrap(), stats)
}

/// A raw stream with a zero stretch and a short last chunk, copied to a file: same bytes,
/// the holes not written, and each checksum as defined (block digests made on the decode
/// threads for whole chunks, the short tail's included).
#[test]
fn raw_stream_copies_exactly_and_hashes_on_the_decode_threads() {
    let mut bytes = vec![0u8; (3 << 20) + 5000];
    for (i, b) in bytes[..1 << 20].iter_mut().enumerate() {
        *b = (i % 251) as u8 + 1;
    }
    let n = bytes.len();
    bytes[n - 3] = 9;
    let dir = tempfile::tempdir().unwrap();
    for (i, checksum) in [
        None,
        Some(Checksum::Sha256),
        Some(Checksum::Sha256Blocks),
        Some(Checksum::Sha256Tree),
    ]
    .into_iter()
    .enumerate()
    {
        let reader = Box::new(std::io::Cursor::new(bytes.clone()));
        let dest = dir.path().join(format!("s-{i}.raw"));
        let (got, stats) = copy_to_file(&dest, 1 << 20, checksum, |sink, opts, ctl| {
            copy_stream(reader, sink, opts, ctl)
        });
        assert_eq!(got, bytes, "case {i}");
        // The tail's last zero-detection block is 904 bytes long.
        assert_eq!(stats.bytes_written, (1 << 20) + 904);
        let expect = checksum.map(|kind| digest::checksum_of(kind, &bytes));
        assert_eq!(stats.checksum, expect, "case {i}");
    }
}

/// Data extents that start and end inside chunks and inside zero-detection blocks, one of
/// them holding zero bytes, copied to a file with and without the checksum.
#[test]
fn partial_extents_copy_exactly_and_hash_the_whole_disk() {
    let size = 3 * 65536 + 1000;
    let mut bytes = vec![0u8; size];
    let data = vec![
        (100u64, 5000u64),
        (65536 + 4096, 8192),
        (2 * 65536 - 10, 20),
        (3 * 65536, 1000),
    ];
    for &(s, l) in &data {
        for i in s..s + l {
            bytes[i as usize] = (i % 251) as u8 + 1;
        }
    }
    // Listed as data but all zero: must be skipped, not written.
    let mut data = data;
    data.insert(2, (65536 + 20000, 4096));
    let disk = MemDisk {
        bytes: bytes.clone(),
        data,
    };
    let dir = tempfile::tempdir().unwrap();
    // 16 KiB chunks are hashed on the hasher thread, 64 KiB ones where they are read.
    let cases = [
        (65536, None),
        (65536, Some(Checksum::Sha256)),
        (65536, Some(Checksum::Sha256Blocks)),
        (16384, Some(Checksum::Sha256Blocks)),
        (65536, Some(Checksum::Sha256Tree)),
        (16384, Some(Checksum::Sha256Tree)),
        (16384, Some(Checksum::Sha256)),
    ];
    for (i, (chunk_size, checksum)) in cases.into_iter().enumerate() {
        let dest = dir.path().join(format!("out-{i}.raw"));
        let (got, stats) = copy_to_file(&dest, chunk_size, checksum, |sink, opts, ctl| {
            copy_disk(&disk, sink, opts, ctl)
        });
        assert_eq!(got, bytes);
        assert_eq!(stats.virtual_size, size as u64);
        assert_eq!(stats.bytes_written + stats.bytes_zero_skipped, size as u64);
        let expect = checksum.map(|kind| digest::checksum_of(kind, &bytes));
        assert_eq!(stats.checksum, expect, "case {i}");
    }
}

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

    fn write(&mut self, offset: u64, data: Vec<u8>, pool: &BufferPool) -> Result<()> {
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
        pool.put(data);
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
        window: 6,
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
    fn write(&mut self, _: u64, _: Vec<u8>, _: &BufferPool) -> Result<()> {
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

/// A disk of `size` bytes of 0x5a whose read at `panic_at` panics (a decode job that breaks).
struct PanickingDisk {
    size: u64,
    panic_at: u64,
}

impl DiskSource for PanickingDisk {
    fn virtual_size(&self) -> u64 {
        self.size
    }
    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        Ok(vec![Extent {
            offset,
            len: len.min(self.size - offset),
            kind: ExtentKind::Data,
        }])
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if (offset..offset + buf.len() as u64).contains(&self.panic_at) {
            panic!("read at {offset} broke");
        }
        buf.fill(0x5a);
        Ok(())
    }
    fn format_name(&self) -> &'static str {
        "memory"
    }
}

fn quiet_control(cancel: &AtomicBool) -> Control<'_> {
    Control {
        progress: &|_, _| {},
        cancel,
    }
}

fn small_opts(checksum: Option<Checksum>) -> CopyOptions {
    CopyOptions {
        chunk_size: 1 << 20,
        threads: 3,
        window: 4,
        checksum,
        ..CopyOptions::default()
    }
}

/// A decode job that panics fails the copy (file sink, direct writes; discard sink, digests
/// only; a sink written by the consumer), whatever the checksum: never a short result.
#[test]
fn a_panicking_decode_job_fails_the_copy() {
    let disk = PanickingDisk {
        size: 16 << 20,
        panic_at: 9 << 20,
    };
    let cancel = AtomicBool::new(false);
    let dir = tempfile::tempdir().unwrap();
    for (i, checksum) in [
        None,
        Some(Checksum::Sha256),
        Some(Checksum::Sha256Blocks),
        Some(Checksum::Sha256Tree),
    ]
    .into_iter()
    .enumerate()
    {
        let dest = dir.path().join(format!("p{i}.raw"));
        let mut sink = FileSink::create(&dest, false).unwrap();
        let e = copy_disk(
            &disk,
            &mut sink,
            &small_opts(checksum),
            &quiet_control(&cancel),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("a decode thread panicked (read at 9437184 broke)"),
            "{e}"
        );
        drop(sink);
        assert!(!dest.exists(), "nothing under the final name");
        let mut writes = Writes::default();
        let e = copy_disk(
            &disk,
            &mut writes,
            &small_opts(checksum),
            &quiet_control(&cancel),
        )
        .unwrap_err();
        assert!(e.to_string().contains("panicked"), "{e}");
        assert!(writes.finished.is_none(), "the sink was not finished");
        let e = checksum_disk(
            &disk,
            &small_opts(checksum.or(Some(Checksum::Sha256Blocks))),
            &quiet_control(&cancel),
        )
        .unwrap_err();
        assert!(e.to_string().contains("panicked"), "{e}");
    }
}

/// A sink that records its writes and whether it was finished.
#[derive(Default)]
struct Writes {
    writes: Vec<(u64, usize)>,
    finished: Option<u64>,
}

impl Sink for Writes {
    fn ensure_size(&mut self, _: u64) -> Result<()> {
        Ok(())
    }
    fn write(&mut self, offset: u64, data: Vec<u8>, pool: &BufferPool) -> Result<()> {
        self.writes.push((offset, data.len()));
        pool.put(data);
        Ok(())
    }
    fn finish(&mut self, size: u64) -> Result<()> {
        self.finished = Some(size);
        Ok(())
    }
}

/// A producer that sends the pieces it is given, then reports `total`.
struct Scripted {
    pieces: Vec<(u64, u64)>,
    total: u64,
    panic: bool,
}

impl pipeline::Produce for Scripted {
    fn produce<'scope>(self, emit: &pipeline::Emitter<'_, 'scope>) -> Result<pipeline::Produced>
    where
        Self: 'scope,
    {
        for (i, &(guest, len)) in self.pieces.iter().enumerate() {
            if self.panic && i == 1 {
                panic!("producer broke");
            }
            emit.submit(guest, false, move |pool| {
                let mut buf = pool.get(len as usize);
                buf.fill(1);
                Ok(piece::ReadData {
                    buf,
                    extents: vec![(0, len as usize)],
                })
            })?;
        }
        Ok(pipeline::Produced {
            total: self.total,
            ..Default::default()
        })
    }
}

/// A producer that stops early, skips a piece, sends one twice or panics fails the copy in
/// either order, and the sink is never finished.
#[test]
fn a_producer_that_stops_early_or_panics_fails_the_copy() {
    let cancel = AtomicBool::new(false);
    let m = 1u64 << 20;
    type Case<'a> = (&'a [(u64, u64)], u64, bool, &'a str);
    let cases: &[Case] = &[
        (
            &[(0, m), (m, m)],
            3 * m,
            false,
            "bytes 2097152..3145728 of 3145728 never arrived",
        ),
        (
            &[(0, m), (2 * m, m)],
            3 * m,
            false,
            "bytes 1048576..2097152 of 3145728 never arrived",
        ),
        (&[(0, m), (0, m)], m, false, "came twice"),
        (
            &[(0, m), (m, m)],
            2 * m,
            true,
            "the producer thread panicked (producer broke)",
        ),
    ];
    for order in [pipeline::Order::Guest, pipeline::Order::Layout] {
        for &(pieces, total, panic, want) in cases {
            if order == pipeline::Order::Guest && want == "came twice" {
                // In guest order a duplicate waits behind the frontier: reported as a gap.
                continue;
            }
            let mut sink = Writes::default();
            let p = Scripted {
                pieces: pieces.to_vec(),
                total,
                panic,
            };
            let opts = small_opts(Some(Checksum::Sha256Blocks));
            let e = pipeline::run(p, &mut sink, &opts, &quiet_control(&cancel), order, total)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{order:?}: {e}");
            assert!(sink.finished.is_none(), "{order:?}: {want}");
        }
    }
}

/// A stream whose reader fails part-way fails the copy.
#[test]
fn a_stream_that_breaks_fails_the_copy() {
    struct Breaks(u64);
    impl std::io::Read for Breaks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("the pipe broke"));
            }
            let n = (buf.len() as u64).min(self.0) as usize;
            buf[..n].fill(3);
            self.0 -= n as u64;
            Ok(n)
        }
    }
    let cancel = AtomicBool::new(false);
    let mut sink = Writes::default();
    let e = copy_stream(
        Box::new(Breaks(5 << 20)),
        &mut sink,
        &small_opts(Some(Checksum::Sha256)),
        &quiet_control(&cancel),
    )
    .unwrap_err();
    assert!(e.to_string().contains("the pipe broke"), "{e}");
    assert!(sink.finished.is_none());
}

/// A raw stream sink gets the whole disk in order, holes as zeros; a qcow2 stream (layout
/// order) is refused for it before anything is read.
#[test]
fn a_stream_sink_gets_the_raw_disk_in_order() {
    let size = (5 << 20) + 777;
    let mut bytes = vec![0u8; size];
    for (i, b) in bytes[(2 << 20) - 100..(3 << 20) + 5].iter_mut().enumerate() {
        *b = (i % 249) as u8 + 1;
    }
    bytes[size - 1] = 7;
    let disk = MemDisk {
        bytes: bytes.clone(),
        data: vec![(0, size as u64)],
    };
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let cancel = AtomicBool::new(false);
    let out = Shared::default();
    let mut sink = sink_stream::StreamSink::new(Box::new(out.clone()), "stdout");
    let st = copy_disk(
        &disk,
        &mut sink,
        &small_opts(Some(Checksum::Sha256)),
        &quiet_control(&cancel),
    )
    .unwrap();
    assert!(*out.0.lock().unwrap() == bytes);
    assert_eq!(st.checksum, Some(checksum_of(Checksum::Sha256, &bytes)));

    let d = tempfile::tempdir().unwrap();
    let img = create(d.path(), "s.qcow2", "4M", &[]);
    let s = crate::disk::qcow2::Qcow2Stream::open(
        Box::new(std::fs::File::open(&img).unwrap()),
        "stdin",
    )
    .unwrap();
    let mut sink = sink_stream::StreamSink::new(Box::new(Shared::default()), "stdout");
    let e =
        copy_qcow2_stream(s, &mut sink, &small_opts(None), &quiet_control(&cancel)).unwrap_err();
    assert!(
        e.to_string().contains("cannot be written to a stream"),
        "{e}"
    );
}

/// Holes cost nothing: a 64 TiB disk holding one chunk of data is walked by extents, not
/// chunk by chunk (16 million chunks would take minutes here).
#[test]
fn a_huge_sparse_disk_costs_what_its_data_costs() {
    let size = 64u64 << 40;
    struct Sparse(u64);
    impl DiskSource for Sparse {
        fn virtual_size(&self) -> u64 {
            self.0
        }
        fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
            let end = (offset + len).min(self.0);
            Ok(extents_from_data(offset, end, [(self.0 / 2, 4096)]))
        }
        fn read_at(&self, _: u64, buf: &mut [u8]) -> Result<()> {
            buf.fill(9);
            Ok(())
        }
        fn format_name(&self) -> &'static str {
            "memory"
        }
    }
    let cancel = AtomicBool::new(false);
    let mut sink = Writes::default();
    let st = copy_disk(
        &Sparse(size),
        &mut sink,
        &small_opts(None),
        &quiet_control(&cancel),
    )
    .unwrap();
    assert_eq!(sink.writes, vec![(size / 2, 4096)]);
    assert_eq!((st.virtual_size, st.bytes_written), (size, 4096));
}
