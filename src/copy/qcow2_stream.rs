//! Copying a qcow2 image that arrives as a stream (stdin) into a sink, in one pass.
//!
//! stream → reader thread (2 MiB blocks) → forward-only decoder ([`crate::disk::qcow2::stream`],
//! its own thread: tables, claims, spill) → decode threads (compressed clusters decoded, every piece
//! zero-scanned) → this thread: non-zero runs written to the sink in the order they come.
//! The image's layout decides that order; the sink must accept writes anywhere (a fresh RBD
//! image created at the virtual size, which the header gives before any data).
//!
//! The checksum of the virtual disk is folded on its own thread in guest order behind a
//! frontier: pieces ahead of it wait until the gap before them is filled. With `sha256-blocks`
//! a piece that covers whole 64 KiB blocks (every cluster of 64 KiB or more) is hashed by the
//! decode thread that scanned it, and only its digests wait (32 bytes a block). Other pieces
//! wait with their data; images written by `qemu-img convert` arrive in guest order, so
//! nothing waits long. When more than the hash buffer would have to wait (data far out of
//! guest order), the hasher gives up and the copy reports no checksum
//! ([`StreamCopyStats::checksum_fell_back`]); the caller then hashes the finished target by
//! reading it back.
//!
//! Memory: `window` pieces of at most `chunk_size` in flight (read, decoded, or being written),
//! the hash buffer, the reader's two blocks, and the decoder's own bounded state.
//! Cancellation: every wait polls `Control::cancel`. This module never prints.
use super::digest::{whole_block_digests, BlockDigest};
use super::workers::Workers;
use super::{
    nonzero_runs, spawn_block_reader, BufferPool, Checksum, Control, CopyOptions, CopyStats,
    DiskHasher, Sink,
};
use crate::disk::qcow2::decode_cluster;
use crate::disk::qcow2::stream::{Event, Qcow2Stream, StreamStats, READ_BLOCK};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel as bounded, Receiver, RecvTimeoutError, SyncSender as Sender};
use std::time::{Duration, Instant};

/// Bytes of decoded data the hasher may hold while it waits for a gap in guest order to fill.
pub const HASH_BUFFER_BYTES: u64 = 256 << 20;
/// Pieces the hasher may hold waiting (zero runs cost no memory but count here).
const HASH_MAX_WAITING: usize = 1 << 20;
/// How often blocked waits look at the cancel flag.
const POLL: Duration = Duration::from_millis(100);

/// What a stream copy did.
#[derive(Clone, Debug)]
pub struct StreamCopyStats {
    /// Sizes, bytes written and skipped, time; `sha256` is `None` when the checksum was not
    /// wanted or [`StreamCopyStats::checksum_fell_back`].
    pub copy: CopyStats,
    /// Bytes read from the stream.
    pub bytes_read: u64,
    /// Bytes that arrived before the table naming them and went through the spill file.
    pub bytes_spilled: u64,
    /// The checksum was wanted but the data came too far out of guest order to hash on the
    /// fly: hash the target instead.
    pub checksum_fell_back: bool,
}

enum Msg {
    /// Guest bytes at `guest`, with their non-zero runs and, when the decode thread made
    /// them, their block digests.
    Piece {
        guest: u64,
        buf: Vec<u8>,
        runs: Vec<(usize, usize)>,
        digests: Option<Vec<BlockDigest>>,
    },
    /// Guest bytes that read as zeros.
    Zero {
        guest: u64,
        len: u64,
    },
    Failed(Error),
    /// The decoder is done and every piece was sent.
    End(StreamStats),
}

/// What the hasher hashes.
enum Hashed {
    /// Decoded bytes and their non-zero runs (the rest is hashed as zeros without a look).
    Data(Vec<u8>, Vec<(usize, usize)>),
    Zeros(u64),
    /// The block digests of this many bytes, made by a decode thread.
    Digests(Vec<BlockDigest>, u64),
}

/// Copies the qcow2 `stream` into `sink`; see the module documentation.
pub fn copy_qcow2_stream(
    stream: Qcow2Stream,
    sink: &mut dyn Sink,
    opts: &CopyOptions,
    ctl: &Control,
) -> Result<StreamCopyStats> {
    copy_qcow2_stream_with(stream, sink, opts, ctl, HASH_BUFFER_BYTES)
}

/// [`copy_qcow2_stream`] with a hash buffer of `hash_buffer` bytes.
pub fn copy_qcow2_stream_with(
    stream: Qcow2Stream,
    sink: &mut dyn Sink,
    opts: &CopyOptions,
    ctl: &Control,
    hash_buffer: u64,
) -> Result<StreamCopyStats> {
    let started = Instant::now();
    let size = stream.virtual_size();
    sink.ensure_size(size)?;
    let window = opts.window.max(1);
    let pool = BufferPool::new(window + 4);
    let name = stream.name().to_string();
    let alloc_pool = pool.clone();
    let (decoder, first, reader) =
        stream.into_parts(opts.chunk_size, Box::new(move |n: usize| alloc_pool.get(n)));
    let block_pool = BufferPool::new(4);
    let blocks = spawn_block_reader(
        reader,
        block_pool.clone(),
        READ_BLOCK,
        "rbdkit-qcow2-reader",
    )?;

    let (tx, rx) = bounded::<Msg>(window + 1);
    let (token_tx, token_rx) = bounded::<()>(window);
    for _ in 0..window {
        let _ = token_tx.send(());
    }
    let (sparse, kind) = (opts.sparse_size as usize, opts.checksum);
    // Set when the consumer is done (or failed): the decoder stops waiting for the stream.
    let stop = AtomicBool::new(false);
    let halted = || ctl.cancel.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed);
    std::thread::scope(|s| {
        let decode_pool = pool.clone();
        s.spawn(move || {
            let workers = match Workers::start(s, opts.threads) {
                Ok(w) => w,
                Err(e) => {
                    let _ = tx.send(Msg::Failed(Error::io("start the decode threads", e)));
                    return;
                }
            };
            let result = (|| {
                let mut dec = decoder;
                let (cs, comp) = (dec.cluster_size() as usize, dec.compression());
                let mut emit = |ev: Event| -> Result<()> {
                    if ev_needs_token(&ev) {
                        take_token(&token_rx, &halted)?;
                    }
                    match ev {
                        Event::Zero { guest, len } => {
                            tx.send(Msg::Zero { guest, len }).map_err(|_| stopped())
                        }
                        Event::Data { guest, bytes } => {
                            let tx = tx.clone();
                            workers.submit(move || {
                                let runs = nonzero_runs(&bytes, sparse);
                                let last = guest + bytes.len() as u64 == size;
                                let digests = whole_block_digests(kind, guest, &bytes, &runs, last);
                                let _ = tx.send(Msg::Piece {
                                    guest,
                                    buf: bytes,
                                    runs,
                                    digests,
                                });
                            });
                            Ok(())
                        }
                        Event::Compressed {
                            guest,
                            host,
                            input,
                            len,
                        } => {
                            let (tx, pool, name) = (tx.clone(), decode_pool.clone(), name.clone());
                            workers.submit(move || {
                                let mut out = pool.get(cs);
                                let msg = match decode_cluster(comp, &input, &mut out) {
                                    Ok(()) => {
                                        out.truncate(len);
                                        let runs = nonzero_runs(&out, sparse);
                                        let last = guest + len as u64 == size;
                                        let digests =
                                            whole_block_digests(kind, guest, &out, &runs, last);
                                        Msg::Piece {
                                            guest,
                                            buf: out,
                                            runs,
                                            digests,
                                        }
                                    }
                                    Err(why) => Msg::Failed(Error::bad_image(
                                        name,
                                        format!("compressed cluster for guest offset {guest:#x} at offset {host:#x}: {why}: the image is corrupt"),
                                    )),
                                };
                                pool.put(input);
                                let _ = tx.send(msg);
                            });
                            Ok(())
                        }
                    }
                };
                dec.feed(&first, &mut emit)?;
                loop {
                    let block = next_block(&blocks, &halted)?
                        .map_err(|e| Error::io(format!("read {}", dec.name()), e))?;
                    let short = block.len() < READ_BLOCK;
                    dec.feed(&block, &mut emit)?;
                    block_pool.put(block);
                    if short {
                        return dec.finish(&mut emit);
                    }
                }
            })();
            // Every piece is sent once the workers are done: End comes last.
            workers.finish();
            let _ = tx.send(match result {
                Ok(st) => Msg::End(st),
                Err(e) => Msg::Failed(e),
            });
        });
        let (hash_tx, hasher) = match opts.checksum {
            Some(kind) => {
                let (htx, hrx) = bounded::<(u64, Hashed)>(window);
                let hpool = pool.clone();
                let h = s.spawn(move || hash_in_guest_order(kind, hrx, &hpool, size, hash_buffer));
                (Some(htx), Some(h))
            }
            None => (None, None),
        };
        // rx, token_tx and hash_tx are dropped when this returns, early or not, which stops
        // the decoder and ends the hasher.
        let writes = Combiner::new(opts.chunk_size, &pool);
        let consumed = consume(rx, token_tx, hash_tx, sink, writes, ctl, &pool, size);
        stop.store(true, Ordering::Relaxed);
        let digest = hasher.and_then(|h| h.join().ok()).flatten();
        let (written, st) = consumed?;
        sink.finish(size)?;
        Ok(StreamCopyStats {
            copy: CopyStats {
                virtual_size: size,
                bytes_written: written,
                bytes_zero_skipped: size - written.min(size),
                elapsed_s: started.elapsed().as_secs_f64(),
                checksum: digest.clone(),
            },
            bytes_read: st.bytes_read,
            bytes_spilled: st.bytes_spilled,
            checksum_fell_back: opts.checksum.is_some() && digest.is_none(),
        })
    })
}

fn stopped() -> Error {
    Error::Other("copy pipeline stopped".into())
}

/// Pieces that hold memory wait for a token (one per piece in flight); zero runs do not.
fn ev_needs_token(ev: &Event) -> bool {
    !matches!(ev, Event::Zero { .. })
}

fn take_token(tokens: &Receiver<()>, halted: &dyn Fn() -> bool) -> Result<()> {
    loop {
        if halted() {
            return Err(Error::Interrupted("copy stopped before completion".into()));
        }
        match tokens.recv_timeout(POLL) {
            Ok(()) => return Ok(()),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err(stopped()),
        }
    }
}

fn next_block(
    blocks: &Receiver<std::io::Result<Vec<u8>>>,
    halted: &dyn Fn() -> bool,
) -> Result<std::io::Result<Vec<u8>>> {
    loop {
        if halted() {
            return Err(Error::Interrupted("copy stopped before completion".into()));
        }
        match blocks.recv_timeout(POLL) {
            Ok(b) => return Ok(b),
            Err(RecvTimeoutError::Timeout) => {}
            // The reader stops only after a short block or an error, both delivered first.
            Err(RecvTimeoutError::Disconnected) => return Err(stopped()),
        }
    }
}

/// Gathers data runs that continue one another into one write per object: a stream's pieces are
/// clusters (64 KiB by default), and writing each on its own would cost a librbd request and an
/// OSD op per cluster where one per 4 MiB object does. The runs are copied into the buffer
/// (the piece itself may still be on its way to the hasher).
struct Combiner {
    buf: Vec<u8>,
    /// Guest offset of `buf[0]`.
    start: u64,
    object: u64,
}

impl Combiner {
    fn new(object: u64, pool: &BufferPool) -> Combiner {
        Combiner {
            buf: Self::empty(object, pool),
            start: 0,
            object: object.max(1),
        }
    }

    /// An empty buffer with room for an object. Its bytes are not zeroed first: the pool's
    /// buffers come in several sizes, and zero-filling a small one up to 4 MiB on every write
    /// cost a third more CPU on a fragmented image.
    fn empty(object: u64, pool: &BufferPool) -> Vec<u8> {
        let mut b = pool.get(0);
        b.reserve(object as usize);
        b
    }

    /// Adds `bytes` at guest offset `at`, writing out what came before when they do not
    /// continue it within its object.
    fn add(
        &mut self,
        mut at: u64,
        mut bytes: &[u8],
        sink: &mut dyn Sink,
        pool: &BufferPool,
    ) -> Result<()> {
        while !bytes.is_empty() {
            let end = self.start + self.buf.len() as u64;
            if self.buf.is_empty() || at != end || end.is_multiple_of(self.object) {
                self.flush(sink, pool)?;
                self.start = at;
            }
            let room = (self.object - at % self.object).min(bytes.len() as u64) as usize;
            self.buf.extend_from_slice(&bytes[..room]);
            (at, bytes) = (at + room as u64, &bytes[room..]);
        }
        Ok(())
    }

    /// Writes out what is gathered.
    fn flush(&mut self, sink: &mut dyn Sink, pool: &BufferPool) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // A large run goes out in this buffer; a small one in a copy, so an object-sized
        // buffer is not held by a write of a few KiB.
        let out = if self.buf.len() as u64 >= self.object / 4 {
            std::mem::replace(&mut self.buf, Self::empty(self.object, pool))
        } else {
            let mut part = pool.get(self.buf.len());
            part.copy_from_slice(&self.buf);
            self.buf.clear();
            part
        };
        sink.write(self.start, out, pool)
    }
}

/// Writes pieces as they come; returns the bytes written and the decoder's stats.
#[allow(clippy::too_many_arguments)]
fn consume(
    rx: Receiver<Msg>,
    tokens: Sender<()>,
    hash_tx: Option<Sender<(u64, Hashed)>>,
    sink: &mut dyn Sink,
    mut writes: Combiner,
    ctl: &Control,
    pool: &BufferPool,
    size: u64,
) -> Result<(u64, StreamStats)> {
    let (mut done, mut written) = (0u64, 0u64);
    loop {
        if ctl.cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted("copy stopped before completion".into()));
        }
        let msg = match rx.recv_timeout(POLL) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => {
                if ctl.cancel.load(Ordering::Relaxed) {
                    return Err(Error::Interrupted("copy stopped before completion".into()));
                }
                return Err(Error::Other("copy pipeline stopped unexpectedly".into()));
            }
        };
        match msg {
            Msg::Piece {
                guest,
                buf,
                runs,
                digests,
            } => {
                let len = buf.len();
                written += runs.iter().map(|r| r.1 as u64).sum::<u64>();
                for &(start, n) in &runs {
                    writes.add(guest + start as u64, &buf[start..start + n], sink, pool)?;
                }
                match (&hash_tx, digests) {
                    (Some(h), Some(d)) => {
                        let _ = h.send((guest, Hashed::Digests(d, len as u64)));
                        pool.put(buf);
                    }
                    (Some(h), None) => {
                        let _ = h.send((guest, Hashed::Data(buf, runs)));
                    }
                    (None, _) => pool.put(buf),
                }
                done += len as u64;
                let _ = tokens.send(());
            }
            Msg::Zero { guest, len } => {
                if let Some(h) = &hash_tx {
                    let _ = h.send((guest, Hashed::Zeros(len)));
                }
                done += len;
            }
            Msg::Failed(e) => return Err(e),
            Msg::End(st) => {
                writes.flush(sink, pool)?;
                return Ok((written, st));
            }
        }
        (ctl.progress)(done.min(size), size);
    }
}

/// The checksum of the disk in guest order; `None` if more than `cap` bytes would have to
/// wait for a gap to fill, or if the pieces do not tile `[0, size)` exactly.
fn hash_in_guest_order(
    kind: Checksum,
    rx: Receiver<(u64, Hashed)>,
    pool: &BufferPool,
    size: u64,
    cap: u64,
) -> Option<String> {
    let mut h = DiskHasher::new(kind);
    let mut frontier = 0u64;
    let mut waiting: BTreeMap<u64, Hashed> = BTreeMap::new();
    let mut held = 0u64;
    let mut gave_up = false;
    let recycle = |item: Hashed| {
        if let Hashed::Data(b, _) = item {
            pool.put(b);
        }
    };
    for (guest, item) in rx {
        if gave_up {
            recycle(item);
            continue;
        }
        if guest < frontier || waiting.contains_key(&guest) {
            gave_up = true;
            recycle(item);
            continue;
        }
        if let Hashed::Data(b, _) = &item {
            held += b.len() as u64;
        }
        waiting.insert(guest, item);
        while let Some(e) = waiting.first_entry() {
            if *e.key() != frontier {
                break;
            }
            match e.remove() {
                Hashed::Data(b, runs) => {
                    h.feed(&b, &runs);
                    frontier += b.len() as u64;
                    held -= b.len() as u64;
                    pool.put(b);
                }
                Hashed::Zeros(n) => {
                    frontier += n;
                    h.zeros(n);
                }
                Hashed::Digests(d, n) => {
                    frontier += n;
                    h.blocks(&d);
                }
            }
        }
        if held > cap || waiting.len() > HASH_MAX_WAITING {
            gave_up = true;
            for (_, item) in std::mem::take(&mut waiting) {
                recycle(item);
            }
        }
    }
    (!gave_up && waiting.is_empty() && frontier == size).then(|| h.finish())
}

#[cfg(test)]
mod tests {
    use super::super::digest::checksum_of;
    use super::*;
    use crate::disk::qcow2::stream::qemu::{convert_qcow2, create, qemu_io, reference_bytes};
    use std::path::Path;

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

    /// A sink that records the (offset, len) of each write.
    #[derive(Default)]
    struct Writes(Vec<(u64, usize)>);

    impl Sink for Writes {
        fn ensure_size(&mut self, _: u64) -> Result<()> {
            Ok(())
        }
        fn write(&mut self, offset: u64, data: Vec<u8>, _: &BufferPool) -> Result<()> {
            self.0.push((offset, data.len()));
            Ok(())
        }
        fn finish(&mut self, _: u64) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn runs_that_continue_each_other_become_one_write_per_object() {
        let pool = BufferPool::new(4);
        let mut sink = Writes::default();
        let mut c = Combiner::new(1 << 20, &pool);
        let d = vec![1u8; 3 << 19];
        c.add(0, &d[..4096], &mut sink, &pool).unwrap();
        c.add(4096, &d[..8192], &mut sink, &pool).unwrap(); // continues: gathered
        c.add(65536, &d[..4096], &mut sink, &pool).unwrap(); // gap: the first write goes out
        c.add(69632, &d[..1 << 20], &mut sink, &pool).unwrap(); // crosses into the next object
                                                                // A gap, then a run that crosses into the next object.
        c.add((3 << 20) - 4096, &d[..8192], &mut sink, &pool)
            .unwrap();
        c.flush(&mut sink, &pool).unwrap();
        let want = [
            (0, 12288),
            (65536, (1 << 20) - 65536),
            (1 << 20, 69632),
            ((3 << 20) - 4096, 4096),
            (3 << 20, 4096),
        ];
        assert_eq!(sink.0, want);
    }

    fn opts(checksum: Checksum) -> CopyOptions {
        CopyOptions {
            chunk_size: 1 << 20,
            sparse_size: 4096,
            threads: 3,
            window: 6,
            checksum: Some(checksum),
        }
    }

    /// A copy with the plain SHA-256, so the expected value is `sha256sum` of qemu's output.
    fn copy(
        img: &Path,
        hash_buffer: u64,
        cancel: &AtomicBool,
    ) -> Result<(VecSink, StreamCopyStats)> {
        copy_with_checksum(img, hash_buffer, cancel, Checksum::Sha256)
    }

    fn copy_with_checksum(
        img: &Path,
        hash_buffer: u64,
        cancel: &AtomicBool,
        checksum: Checksum,
    ) -> Result<(VecSink, StreamCopyStats)> {
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
        let st = copy_qcow2_stream_with(s, &mut sink, &opts(checksum), &ctl, hash_buffer)?;
        assert_eq!(
            *last.lock().unwrap(),
            (st.copy.virtual_size, st.copy.virtual_size)
        );
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
            assert_eq!(st.copy.checksum.as_deref(), Some(sha(&want).as_str()));
            assert!(!st.checksum_fell_back);
            assert_eq!(sink.finished, Some(want.len() as u64));
            let nonzero: u64 = nonzero_runs(&want, 4096).iter().map(|r| r.1 as u64).sum();
            assert_eq!(st.copy.bytes_written, nonzero);
            assert_eq!(st.bytes_read, std::fs::metadata(img).unwrap().len());
            eprintln!("{}: {st:?}", img.display());
        }
        let (_, st) = copy(&c, HASH_BUFFER_BYTES, &AtomicBool::new(false)).unwrap();
        assert!(
            st.bytes_spilled > 0,
            "compressed data before its L2 table: {st:?}"
        );
        // sha256-blocks: 64 KiB clusters are hashed by the decode threads, 4 KiB ones by the
        // hasher, with the same result as hashing qemu's output.
        for img in [&src, &c] {
            let want = checksum_of(Checksum::Sha256Blocks, &reference_bytes(img));
            let cancel = AtomicBool::new(false);
            let blocks = Checksum::Sha256Blocks;
            let (_, st) = copy_with_checksum(img, HASH_BUFFER_BYTES, &cancel, blocks).unwrap();
            assert_eq!(st.copy.checksum, Some(want), "{}", img.display());
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
        assert_eq!(st.copy.checksum.as_deref(), Some(sha(&want).as_str()));
        // 2 MiB of buffer cannot bridge 7 MiB of reversed data: no checksum, same content.
        let (sink, st) = copy(&img, 2 << 20, &AtomicBool::new(false)).unwrap();
        assert!(sink.disk == want);
        assert!(
            st.copy.checksum.is_none() && st.checksum_fell_back,
            "{st:?}"
        );
        // sha256-blocks: the decode threads hash the 64 KiB clusters, only digests wait, and
        // no buffer is needed for the data at all.
        let (sink, st) =
            copy_with_checksum(&img, 0, &AtomicBool::new(false), Checksum::Sha256Blocks).unwrap();
        assert!(sink.disk == want);
        let blocks = checksum_of(Checksum::Sha256Blocks, &want);
        assert_eq!(st.copy.checksum, Some(blocks), "{st:?}");
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
        let Err(e) = copy_qcow2_stream(s, &mut FailingSink, &opts(Checksum::Sha256Blocks), &ctl)
        else {
            panic!("a broken sink succeeded");
        };
        assert!(e.to_string().contains("the target broke"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
        drop(tx);
    }
}
