//! The one copy engine behind `convert` (to a sparse file) and `import-raw` (to RBD).
//!
//! source extents → parallel read/decode (decode threads) → zero detection at `sparse_size` → sink.
//! Chunks are `chunk_size` bytes (the RBD object size), so writes never straddle objects.
//! Decoded chunks may finish in any order; the consumer puts them back in guest order to feed
//! the checksum of the virtual disk ([`digest`]) and the progress callback, and hands non-zero
//! runs to the sink, which may keep many writes in flight. The default `sha256-blocks` checksum
//! is hashed block by block on the decode threads; `sha256` on a hasher thread in guest order.
//! Memory is bounded: at most `window` chunks are read but not yet handed to the sink, whatever
//! the image size.
//! This module never prints; cancellation is a flag the caller sets (e.g. from SIGINT).
mod buffers;
mod checksum;
pub mod digest;
pub mod qcow2_stream;
pub mod sink_file;
#[cfg(feature = "rbd")]
pub mod sink_rbd;
mod workers;
mod zero;

pub use buffers::BufferPool;
pub use checksum::checksum_disk;
pub use digest::{Checksum, DiskHasher};
pub use zero::{is_zero, nonzero_runs};

use crate::disk::{read_full, DiskSource, ExtentKind};
use crate::error::{Error, Result};
use digest::{whole_block_digests, BlockDigest};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel as bounded, Receiver, RecvTimeoutError, SyncSender as Sender};
use std::time::Instant;
use workers::Workers;

/// Where copied data goes. Only non-zero runs are written; the target must read zeros elsewhere
/// (a fresh RBD image, a new sparse file).
pub trait Sink {
    /// Grows the target to at least `size` bytes (streams learn their size as they go).
    fn ensure_size(&mut self, size: u64) -> Result<()>;
    /// Writes `data` at `offset`; may keep it in flight and return it to `pool` later.
    fn write(&mut self, offset: u64, data: Vec<u8>, pool: &BufferPool) -> Result<()>;
    /// Waits for every write, makes them durable and sets the final size.
    fn finish(&mut self, size: u64) -> Result<()>;
    /// A writer the decode threads may call directly, in any order, when the target takes
    /// positional writes from many threads (a file). Data is then written while it is still
    /// in the CPU cache of the thread that read it, instead of after a trip through the
    /// ordering queue. `None` (the default): every write goes through [`Sink::write`].
    fn concurrent_writer(&self) -> Option<std::sync::Arc<dyn ConcurrentWrite>> {
        None
    }
}

/// Positional writes from many threads at once.
pub trait ConcurrentWrite: Send + Sync {
    /// Writes `data` at `offset`.
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()>;
}

/// Tuning of a copy.
#[derive(Clone, Debug)]
pub struct CopyOptions {
    /// Bytes per chunk; the RBD object size, so writes are object-aligned.
    pub chunk_size: u64,
    /// Zero-detection granularity (blocks of this size that are all zero are not written).
    pub sparse_size: u64,
    /// Threads reading and decoding chunks.
    pub threads: usize,
    /// Chunks decoded but not yet handed to the sink (bounds memory: window × chunk_size).
    pub window: usize,
    /// The checksum of the virtual disk content to compute, if any.
    pub checksum: Option<Checksum>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        // Reads of a dense image are I/O-bound: more reads in flight than cores keeps the disk
        // busy (measured: convert of a 1 GiB qcow2 from a cold cache 4.3-5.4 s with 2 threads,
        // 2.8-2.9 s with 8, on a 2-core machine). Compressed clusters just share the cores.
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(8);
        CopyOptions {
            chunk_size: 4 << 20,
            sparse_size: 4096,
            threads,
            window: 4 * threads + 8,
            checksum: Some(Checksum::Sha256Blocks),
        }
    }
}

/// What a copy did.
#[derive(Clone, Debug, Serialize)]
pub struct CopyStats {
    /// Virtual size of the source in bytes.
    pub virtual_size: u64,
    /// Bytes written to the target.
    pub bytes_written: u64,
    /// Bytes not written because they read as zeros.
    pub bytes_zero_skipped: u64,
    /// Wall time of the copy, seconds.
    pub elapsed_s: f64,
    /// The checksum (hex) of the virtual disk content, of the kind asked for in
    /// [`CopyOptions::checksum`].
    pub checksum: Option<String>,
}

/// Progress and cancellation, owned by the caller.
pub struct Control<'a> {
    /// Called in guest order with (bytes done, total bytes; 0 when unknown).
    pub progress: &'a (dyn Fn(u64, u64) + Sync),
    /// Set to stop the copy; it then fails with `Error::Interrupted`.
    pub cancel: &'a AtomicBool,
}

/// A chunk read and zero-scanned, waiting to be hashed and written in order.
struct Chunk {
    index: u64,
    offset: u64,
    len: usize,
    /// The non-zero runs (`(start, len)` within the chunk): what belongs in the target.
    runs: Vec<(usize, usize)>,
    /// Its `sha256-blocks` block digests, when the thread that read it made them (then the
    /// hasher needs no data).
    digests: Option<Vec<BlockDigest>>,
    body: Body,
}

/// What a chunk brings besides its runs.
enum Body {
    /// Known to read as zeros without reading it.
    Zeros,
    /// Read; its runs are still to be written, by the consumer.
    Unwritten(ReadData),
    /// Its runs are already in the target (written by the decode thread that read them). The
    /// data comes along only when the hasher needs it.
    Written(Option<ReadData>),
}

/// The bytes read for one chunk.
struct ReadData {
    buf: Vec<u8>,
    /// The ranges of `buf` that were read (`(start, len)`); the rest of the chunk reads as
    /// zeros and those bytes of `buf` are stale.
    extents: Vec<(usize, usize)>,
}

enum Msg {
    Chunk(Result<Chunk>),
    /// The producer is done; the source had this many bytes.
    End(u64),
}

/// Copies a random-access disk (raw file, qcow2) into `sink`.
pub fn copy_disk(
    src: &dyn DiskSource,
    sink: &mut dyn Sink,
    opts: &CopyOptions,
    ctl: &Control,
) -> Result<CopyStats> {
    let size = src.virtual_size();
    sink.ensure_size(size)?;
    let direct = sink.concurrent_writer();
    let pool = BufferPool::new(opts.window + 4);
    run_pipeline(sink, opts, ctl, &pool, size, |tx, tokens| {
        let chunk = opts.chunk_size;
        let n = size.div_ceil(chunk);
        let (sparse, kind) = (opts.sparse_size as usize, opts.checksum);
        std::thread::scope(|s| {
            let workers = match Workers::start(s, opts.threads) {
                Ok(w) => w,
                Err(e) => {
                    let _ = tx.send(Msg::Chunk(Err(Error::io("start the decode threads", e))));
                    return;
                }
            };
            for index in 0..n {
                if ctl.cancel.load(Ordering::Relaxed) || tokens.recv().is_err() {
                    return;
                }
                let offset = index * chunk;
                let len = chunk.min(size - offset) as usize;
                // Only the data extents are read and scanned: zero and unallocated ranges are
                // known to read as zeros (a sparse disk would otherwise cost a memset and a
                // zero scan of every hole).
                let data: Vec<(usize, usize)> = match src.extents(offset, len as u64) {
                    Ok(ext) => ext
                        .iter()
                        .filter(|e| e.kind == ExtentKind::Data)
                        .map(|e| ((e.offset - offset) as usize, e.len as usize))
                        .collect(),
                    Err(e) => {
                        let _ = tx.send(Msg::Chunk(Err(e)));
                        return;
                    }
                };
                let at = ChunkAt {
                    index,
                    offset,
                    len,
                    last: index + 1 == n,
                };
                if data.is_empty() {
                    let _ = tx.send(Msg::Chunk(Ok(Chunk {
                        index,
                        offset,
                        len,
                        runs: Vec::new(),
                        digests: None,
                        body: Body::Zeros,
                    })));
                } else {
                    let (tx, pool, direct) = (tx.clone(), &pool, &direct);
                    workers.submit(move || {
                        let msg = read_chunk(src, data, direct.as_deref(), pool, sparse, kind, at);
                        let _ = tx.send(Msg::Chunk(msg));
                    });
                }
            }
            let _ = tx.send(Msg::End(size));
        });
    })
}

/// Where a chunk lies in the guest.
#[derive(Clone, Copy)]
struct ChunkAt {
    index: u64,
    offset: u64,
    len: usize,
    /// The chunk ends the disk (its last block may be short).
    last: bool,
}

/// Reads and zero-scans the data `extents` (chunk-relative `(start, len)`) of one chunk on a
/// decode thread, and makes its block digests when it covers whole `sha256-blocks` blocks
/// (object-sized chunks do). With a concurrent writer it also writes the data runs there, and
/// keeps the buffer only if the hasher thread still needs it (`sha256`, or chunks smaller than
/// a block). The bytes between extents are left as they are: they are hashed as zeros without
/// being read.
fn read_chunk(
    src: &dyn DiskSource,
    extents: Vec<(usize, usize)>,
    direct: Option<&dyn ConcurrentWrite>,
    pool: &BufferPool,
    sparse: usize,
    kind: Option<Checksum>,
    at: ChunkAt,
) -> Result<Chunk> {
    let mut buf = pool.get(at.len);
    let mut runs = Vec::new();
    for &(start, n) in &extents {
        src.read_at(at.offset + start as u64, &mut buf[start..start + n])?;
        zero::push_nonzero_runs(&buf, start, n, sparse, &mut runs);
    }
    let digests = whole_block_digests(kind, at.offset, &buf, &runs, at.last);
    let read = ReadData { buf, extents };
    let body = match direct {
        None => Body::Unwritten(read),
        Some(w) => {
            for &(start, n) in &runs {
                w.write_at(at.offset + start as u64, &read.buf[start..start + n])?;
            }
            Body::Written(if kind.is_some() && digests.is_none() {
                Some(read)
            } else {
                pool.put(read.buf);
                None
            })
        }
    };
    Ok(Chunk {
        index: at.index,
        offset: at.offset,
        len: at.len,
        runs,
        digests,
        body,
    })
}

/// Copies a raw byte stream (e.g. stdin) into `sink`, growing the target as data arrives.
///
/// The stream is read on a detached thread, so a cancelled copy returns at once even while a
/// read is blocked (a pipe whose writer stalls); that thread ends when the process does.
pub fn copy_stream(
    reader: Box<dyn Read + Send>,
    sink: &mut dyn Sink,
    opts: &CopyOptions,
    ctl: &Control,
) -> Result<CopyStats> {
    let pool = BufferPool::new(opts.window + 4);
    let chunk = opts.chunk_size as usize;
    let data_rx = spawn_block_reader(reader, pool.clone(), chunk, "rbdkit-stream-reader")?;
    let (sparse, kind) = (opts.sparse_size as usize, opts.checksum);
    run_pipeline(sink, opts, ctl, &pool, 0, move |tx, tokens| {
        std::thread::scope(|s| {
            // Zero scan and block hashing on the decode threads, as for a disk: one hasher
            // thread would cap a raw stream at SHA-256's 1.3 GiB/s.
            let workers = match Workers::start(s, opts.threads) {
                Ok(w) => w,
                Err(e) => {
                    let _ = tx.send(Msg::Chunk(Err(Error::io("start the decode threads", e))));
                    return;
                }
            };
            let mut offset = 0u64;
            for index in 0.. {
                if tokens.recv().is_err() {
                    return;
                }
                let buf = loop {
                    if ctl.cancel.load(Ordering::Relaxed) {
                        return;
                    }
                    match data_rx.recv_timeout(POLL) {
                        Ok(r) => break r,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                };
                let buf = match buf {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Msg::Chunk(Err(Error::io("read input stream", e))));
                        return;
                    }
                };
                let len = buf.len();
                if len == 0 {
                    break;
                }
                // Only a short chunk is the last: then the disk ends with it.
                let last = len < chunk;
                let tx = tx.clone();
                workers.submit(move || {
                    let runs = nonzero_runs(&buf, sparse);
                    let digests = whole_block_digests(kind, offset, &buf, &runs, last);
                    // Outside its non-zero runs the chunk is zeros: the hasher need not read
                    // it there.
                    let extents = runs.clone();
                    let _ = tx.send(Msg::Chunk(Ok(Chunk {
                        index,
                        offset,
                        len,
                        runs,
                        digests,
                        body: Body::Unwritten(ReadData { buf, extents }),
                    })));
                });
                offset += len as u64;
                if len < chunk {
                    break;
                }
            }
            let _ = tx.send(Msg::End(offset));
        });
    })
}

/// How often blocked waits look at the cancel flag.
const POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Reads `reader` in blocks of `block` bytes on a detached thread, so a cancelled copy returns
/// at once even while a read is blocked (a pipe whose writer stalls). The thread ends after the
/// last (short) block or an error, when the receiver is dropped, or when the process does.
pub(crate) fn spawn_block_reader(
    mut reader: Box<dyn Read + Send>,
    pool: BufferPool,
    block: usize,
    name: &str,
) -> Result<Receiver<std::io::Result<Vec<u8>>>> {
    let (tx, rx) = bounded::<std::io::Result<Vec<u8>>>(2);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || loop {
            let mut buf = pool.get(block);
            let r = read_full(reader.as_mut(), &mut buf).map(|n| {
                buf.truncate(n);
                buf
            });
            let last = !matches!(&r, Ok(b) if b.len() == block);
            if tx.send(r).is_err() || last {
                return;
            }
        })
        .map_err(|e| Error::io("start the stream reader thread", e))?;
    Ok(rx)
}

/// Runs `produce` on its own thread, hashes on another, and consumes chunks here in guest order.
fn run_pipeline(
    sink: &mut dyn Sink,
    opts: &CopyOptions,
    ctl: &Control,
    pool: &BufferPool,
    known_total: u64,
    produce: impl FnOnce(Sender<Msg>, Receiver<()>) + Send,
) -> Result<CopyStats> {
    let started = Instant::now();
    let window = opts.window.max(1);
    let (tx, rx) = bounded::<Msg>(window + 1);
    let (token_tx, token_rx) = bounded::<()>(window);
    for _ in 0..window {
        let _ = token_tx.send(());
    }
    std::thread::scope(|s| {
        s.spawn(move || produce(tx, token_rx));
        // The checksum is folded in guest order on its own thread, so hashing data (`sha256`,
        // or chunks not hashed where they were read) overlaps with reading and writing instead
        // of holding up the consumer.
        let (hash_tx, hasher) = match opts.checksum {
            Some(kind) => {
                let (htx, hrx) = bounded::<Hashed>(window);
                let hpool = pool.clone();
                let h = s.spawn(move || hash_in_order(kind, hrx, &hpool));
                (Some(htx), Some(h))
            }
            None => (None, None),
        };
        // `rx`, `token_tx` and `hash_tx` are moved in and dropped when consuming ends, early or
        // not, which unblocks the producer and ends the hasher.
        let stats = consume(rx, token_tx, hash_tx, sink, ctl, pool, known_total, started);
        let digest = hasher.and_then(|h| h.join().ok());
        stats.map(|mut st| {
            st.checksum = digest;
            st
        })
    })
}

/// What the hasher thread hashes, in guest order.
enum Hashed {
    /// A chunk's bytes; the buffer goes back to the pool afterwards.
    Data(ReadData),
    /// A run of this many zero bytes that was never read.
    Zeros(usize),
    /// A chunk's block digests, made by the thread that read it.
    Digests(Vec<BlockDigest>),
}

fn hash_in_order(kind: Checksum, rx: Receiver<Hashed>, pool: &BufferPool) -> String {
    let mut h = DiskHasher::new(kind);
    for m in rx {
        match m {
            Hashed::Data(ReadData { buf, extents }) => {
                h.feed(&buf, &extents);
                pool.put(buf);
            }
            Hashed::Zeros(n) => h.zeros(n as u64),
            Hashed::Digests(d) => h.blocks(&d),
        }
    }
    h.finish()
}

#[allow(clippy::too_many_arguments)]
fn consume(
    rx: Receiver<Msg>,
    tokens: Sender<()>,
    hash_tx: Option<Sender<Hashed>>,
    sink: &mut dyn Sink,
    ctl: &Control,
    pool: &BufferPool,
    known_total: u64,
    started: Instant,
) -> Result<CopyStats> {
    let mut pending: BTreeMap<u64, Chunk> = BTreeMap::new();
    let (mut next, mut done, mut written, mut skipped) = (0u64, 0u64, 0u64, 0u64);
    let mut end: Option<u64> = None;
    loop {
        if ctl.cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted("copy stopped before completion".into()));
        }
        if let Some(total) = end {
            if done >= total && pending.is_empty() {
                break;
            }
        }
        let msg = match rx.recv_timeout(POLL) {
            Err(RecvTimeoutError::Timeout) => continue,
            Ok(m) => Ok(m),
            Err(RecvTimeoutError::Disconnected) => Err(()),
        };
        match msg {
            Ok(Msg::Chunk(c)) => {
                let c = c?;
                pending.insert(c.index, c);
            }
            Ok(Msg::End(total)) => end = Some(total),
            Err(()) => {
                if ctl.cancel.load(Ordering::Relaxed) {
                    return Err(Error::Interrupted("copy stopped before completion".into()));
                }
                if end.is_none() || !pending.is_empty() {
                    return Err(Error::Other("copy pipeline stopped unexpectedly".into()));
                }
                break;
            }
        }
        while let Some(mut c) = pending.remove(&next) {
            // The hasher gets the chunk's digests if it has them, else its data (below).
            let data_to_hasher = match (&hash_tx, c.digests.take()) {
                (Some(h), Some(d)) => {
                    let _ = h.send(Hashed::Digests(d));
                    None
                }
                (Some(h), None) => Some(h),
                (None, _) => None,
            };
            // A chunk's buffer goes to the hasher, which returns it to the pool, or straight back.
            let retire = |read: ReadData| match data_to_hasher {
                Some(h) => {
                    let _ = h.send(Hashed::Data(read));
                }
                None => pool.put(read.buf),
            };
            next += 1;
            let chunk_end = c.offset + c.len as u64;
            sink.ensure_size(chunk_end)?;
            let data_len: usize = c.runs.iter().map(|r| r.1).sum();
            written += data_len as u64;
            skipped += (c.len - data_len) as u64;
            match c.body {
                Body::Zeros => {
                    if let Some(h) = data_to_hasher {
                        let _ = h.send(Hashed::Zeros(c.len));
                    }
                }
                Body::Written(None) => {}
                Body::Written(Some(read)) => retire(read),
                Body::Unwritten(read) => {
                    let whole = c.runs.len() == 1 && c.runs[0] == (0, c.len);
                    if whole && data_to_hasher.is_none() {
                        sink.write(c.offset, read.buf, pool)?;
                    } else {
                        // The sink gets copies of the data runs; the chunk itself goes to
                        // the hasher, which returns it to the pool.
                        for &(start, len) in &c.runs {
                            let mut part = pool.get(len);
                            part.copy_from_slice(&read.buf[start..start + len]);
                            sink.write(c.offset + start as u64, part, pool)?;
                        }
                        retire(read);
                    }
                }
            }
            done = chunk_end;
            (ctl.progress)(done, known_total);
            let _ = tokens.send(());
        }
    }
    drop(hash_tx);
    sink.finish(done)?;
    Ok(CopyStats {
        virtual_size: done,
        bytes_written: written,
        bytes_zero_skipped: skipped,
        elapsed_s: started.elapsed().as_secs_f64(),
        checksum: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::Extent;

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
            let end = offset + len;
            let mut out = Vec::new();
            let mut pos = offset;
            for &(s, l) in &self.data {
                let (s, e) = (s.max(offset), (s + l).min(end));
                if s >= e {
                    continue;
                }
                if pos < s {
                    out.push(Extent {
                        offset: pos,
                        len: s - pos,
                        kind: ExtentKind::Unallocated,
                    });
                }
                out.push(Extent {
                    offset: s,
                    len: e - s,
                    kind: ExtentKind::Data,
                });
                pos = e;
            }
            if pos < end {
                out.push(Extent {
                    offset: pos,
                    len: end - pos,
                    kind: ExtentKind::Unallocated,
                });
            }
            Ok(out)
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
        let mut sink = sink_file::FileSink::create(dest, false).unwrap();
        let opts = CopyOptions {
            chunk_size,
            sparse_size: 4096,
            threads: 3,
            window: 4,
            checksum,
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
        for (i, checksum) in [None, Some(Checksum::Sha256), Some(Checksum::Sha256Blocks)]
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
}
