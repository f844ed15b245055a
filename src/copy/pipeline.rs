//! The pipeline every copy runs through: a producer on its own thread hands pieces of the disk
//! to the decode threads ([`Emitter`]), which read, decode, zero-scan and hash them; this
//! thread consumes them (in guest order, or as they come) into the sink; one hasher folds the
//! checksum behind a frontier (or, for `sha256` in guest order, this thread as it goes).
//!
//! Memory is bounded by one budget ([`CopyOptions::memory`], see [`BufferPool`]): the producer
//! takes each piece's buffer only once the buffers read, waiting, gathered, in the sink's writes
//! and in the hasher fit in it, whatever the image size; runs of zeros cost nothing.
//!
//! Every way a copy can go wrong ends here as an error, never as a short image: a failed or
//! panicking decode job, a producer that stops early or panics, a hasher that panics, a sink
//! that fails, a cancel. The consumer checks that the pieces tiled `[0, total)` exactly
//! ([`Coverage`]) before the sink is finished.
use super::combine::Combiner;
use super::coverage::Coverage;
use super::digest::per_block;
use super::fault::{injected, Fault};
use super::hasher::{hash_behind_frontier, Hashed};
use super::piece::{Body, Piece, ReadData, Scan};
use super::workers::{panic_message, thread_panicked, Workers};
use super::{BufferPool, Checksum, Control, CopyOptions, CopyStats, DiskHasher, PoolBuf, Sink};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel as bounded, Receiver, RecvTimeoutError, SyncSender as Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often blocked waits look at the cancel flag.
pub(crate) const POLL: Duration = Duration::from_millis(100);
/// How long the consumer waits for a piece while the sink has writes in flight, before it
/// takes back the buffers of those that finished.
const BUSY_POLL: Duration = Duration::from_millis(2);

/// In which order the consumer hands pieces on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Order {
    /// Guest order: the producer submits in guest order, the consumer puts back in order what
    /// the decode threads finish out of order. Any sink; the hasher never waits.
    Guest,
    /// As they come (a qcow2 stream, in its layout order): sinks that take writes anywhere.
    Layout,
}

/// What a producer reports when it has submitted everything.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Produced {
    /// Bytes of the virtual disk.
    pub total: u64,
    /// Bytes read from the input, for streams.
    pub bytes_read: Option<u64>,
    /// Bytes that went through a spill file (qcow2 streams).
    pub bytes_spilled: Option<u64>,
}

/// A source of pieces: walks its input on the producer thread and hands pieces to `emit`.
pub(crate) trait Produce: Send {
    /// Submits every piece of the disk, each byte once, and says how big it was.
    fn produce<'scope>(self, emit: &Emitter<'_, 'scope>) -> Result<Produced>
    where
        Self: 'scope;
}

enum Msg {
    Piece(Piece),
    Failed(Error),
    End(Produced),
}

/// What the producer hands pieces to.
pub(crate) struct Emitter<'a, 'scope> {
    tx: Sender<Msg>,
    workers: &'a Workers<'scope>,
    cancel: &'a AtomicBool,
    stop: &'a AtomicBool,
    pool: &'a BufferPool,
    scan: Arc<Scan>,
}

impl<'scope> Emitter<'_, 'scope> {
    /// The buffers of this copy (a producer that reads ahead allocates from here).
    pub fn pool(&self) -> &BufferPool {
        self.pool
    }

    /// True once the copy is cancelled or failed: stop producing.
    pub fn halted(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
            || self.stop.load(Ordering::Relaxed)
            || self.workers.failed()
    }

    /// An error when the copy is halted (the consumer reports the real cause).
    pub fn check(&self) -> Result<()> {
        if !self.halted() {
            return Ok(());
        }
        Err(if self.cancel.load(Ordering::Relaxed) {
            Error::Interrupted("copy stopped before completion".into())
        } else {
            Error::Other("copy pipeline stopped".into())
        })
    }

    /// Waits on `rx` while checking for a halt (a blocked pipe must not hold up a cancel).
    pub fn recv<T>(&self, rx: &Receiver<T>) -> Result<T> {
        loop {
            self.check()?;
            match rx.recv_timeout(POLL) {
                Ok(v) => return Ok(v),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Other("copy pipeline stopped".into()))
                }
            }
        }
    }

    /// `len` bytes at `guest` that read as zeros (no read, no memory).
    pub fn zeros(&self, guest: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.tx
            .send(Msg::Piece(Piece::zeros(guest, len)))
            .map_err(|_| Error::Other("copy pipeline stopped".into()))
    }

    /// `len` bytes at `guest` the target already holds (a diff's unchanged range).
    pub fn unchanged(&self, guest: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.tx
            .send(Msg::Piece(Piece::unchanged(guest, len)))
            .map_err(|_| Error::Other("copy pipeline stopped".into()))
    }

    /// Queues the piece of `len` bytes at `guest` for a decode thread: `fill` reads or decodes
    /// it into the buffer it is given, then the thread zero-scans it, hashes its blocks and,
    /// when the sink allows, writes it. `last`: the piece ends the disk. Its room in the copy's
    /// memory budget is taken here, in the order the producer walks the disk.
    pub fn submit(
        &self,
        guest: u64,
        last: bool,
        len: usize,
        fill: impl FnOnce(PoolBuf) -> Result<ReadData> + Send + 'scope,
    ) -> Result<()> {
        let Some(room) = self.pool.admit(len, &|| self.halted()) else {
            return self.check();
        };
        self.queue(guest, last, move || fill(room.into_buf()))
    }

    /// Queues a piece already in memory (a stream's block, a cluster the stream carried), once
    /// the memory in use fits in the budget.
    pub fn submit_read(&self, guest: u64, last: bool, read: ReadData) -> Result<()> {
        if self.pool.wait_until_fits(0, &|| self.halted()).is_none() {
            return self.check();
        }
        self.queue(guest, last, move || Ok(read))
    }

    fn queue(
        &self,
        guest: u64,
        last: bool,
        read: impl FnOnce() -> Result<ReadData> + Send + 'scope,
    ) -> Result<()> {
        let (tx, scan) = (self.tx.clone(), self.scan.clone());
        self.workers.submit(move || {
            if injected(Fault::DecodePanic) && guest > 0 {
                panic!("injected decode failure at guest offset {guest}");
            }
            let msg = match read().and_then(|read| scan.finish(guest, read, last)) {
                Ok(p) => Msg::Piece(p),
                Err(e) => Msg::Failed(e),
            };
            let _ = tx.send(msg);
        });
        Ok(())
    }
}

/// Runs `producer` into `sink`; `known_total` is the disk size when known up front (the sink
/// is grown to it first, and progress shows it), 0 for a stream.
pub(crate) fn run(
    producer: impl Produce,
    sink: &mut dyn Sink,
    opts: &CopyOptions,
    ctl: &Control,
    order: Order,
    known_total: u64,
) -> Result<CopyStats> {
    if order == Order::Layout && sink.ordered() {
        return Err(Error::InvalidInput(
            "this source arrives out of guest order and cannot be written to a stream; write it to a file or an image".into(),
        ));
    }
    // A disk's size is known up front: the target gets it before the first write.
    if known_total > 0 {
        sink.ensure_size(known_total)?;
    }
    let started = Instant::now();
    // Pieces that fit in the budget at once: the queues are as long (zero pieces, which hold
    // no memory, wait there too).
    let pieces = (opts.memory / opts.chunk_size.max(1)).clamp(1, 1 << 16) as usize;
    let pool = BufferPool::with_budget(pieces + 4, opts.memory);
    let (tx, rx) = bounded::<Msg>(pieces + 1);
    let rx = if injected(Fault::ProducerStopsEarly) {
        stops_early(rx)
    } else {
        rx
    };
    let scan = Arc::new(Scan {
        sparse: opts.sparse_size as usize,
        checksum: opts.checksum,
        block_digests: per_block(opts.checksum) || sink.takes_block_digests(),
        // A target that holds data must see each piece's zero runs in order with its data.
        direct: if sink.overwrites() {
            None
        } else {
            sink.concurrent_writer()
        },
    });
    // Set when the consumer is done (or failed): the producer stops waiting for its input.
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (pool_ref, stop_ref) = (&pool, &stop);
        let producer_thread = std::thread::Builder::new()
            .name("rbdkit-producer".into())
            .spawn_scoped(s, move || {
                let workers = match Workers::start(s, opts.threads) {
                    Ok(w) => w,
                    Err(e) => {
                        let _ = tx.send(Msg::Failed(Error::io("start the decode threads", e)));
                        return;
                    }
                };
                let emit = Emitter {
                    tx: tx.clone(),
                    workers: &workers,
                    cancel: ctl.cancel,
                    stop: stop_ref,
                    pool: pool_ref,
                    scan,
                };
                if injected(Fault::ProducerPanic) {
                    panic!("injected producer failure");
                }
                let produced = producer.produce(&emit);
                drop(emit);
                // Every piece is sent once the workers are done: End comes last. A panicked
                // job outranks the producer's own error (it stopped because of it).
                let msg = match (workers.finish(), produced) {
                    (Err(e), _) | (Ok(()), Err(e)) => Msg::Failed(e),
                    (Ok(()), Ok(p)) => Msg::End(p),
                };
                let _ = tx.send(msg);
            })
            .map_err(|e| Error::io("start the producer thread", e))?;
        let (hashing, hasher) = match opts.checksum {
            // Whole-image SHA-256 in guest order is folded by the consumer itself (see
            // `Hashing::Here`); everything else by the hasher thread, behind its frontier.
            Some(Checksum::Sha256) if order == Order::Guest => (
                Hashing::Here(Box::new(DiskHasher::new(Checksum::Sha256))),
                None,
            ),
            Some(kind) => {
                let (htx, hrx) = bounded::<(u64, Hashed)>(pieces);
                // Out-of-order data waits in the hasher for pieces not read yet: it must leave
                // them room in the budget (next to the sink's writes), or it would wait forever.
                let cap = opts.hash_buffer.min(opts.memory / 4);
                let h = std::thread::Builder::new()
                    .name("rbdkit-hasher".into())
                    .spawn_scoped(s, move || hash_behind_frontier(kind, hrx, cap))
                    .map_err(|e| Error::io("start the hasher thread", e))?;
                (Hashing::Thread(htx), Some(h))
            }
            None => (Hashing::None, None),
        };
        let consumer = Consumer {
            sink: &mut *sink,
            hashing,
            writes: Combiner::new(opts.chunk_size, &pool),
            chunk: opts.chunk_size,
            coverage: Coverage::default(),
            done: 0,
            written: 0,
            progress: ctl.progress,
            known_total,
        };
        // `rx` and the consumer's senders are dropped when consuming ends, early or not, which
        // unblocks the producer and ends the hasher.
        let consumed = consumer.run(rx, order, ctl.cancel);
        stop.store(true, Ordering::Relaxed);
        // A panic is the cause of whatever the consumer saw (a disconnect, a hasher gone).
        if let Err(p) = producer_thread.join() {
            return Err(thread_panicked(
                "the producer thread",
                &panic_message(p.as_ref()),
            ));
        }
        let from_thread = match hasher.map(|h| h.join()) {
            Some(Err(p)) => {
                return Err(thread_panicked(
                    "the hasher thread",
                    &panic_message(p.as_ref()),
                ))
            }
            Some(Ok(h)) => h,
            None => None,
        };
        let Consumed {
            produced,
            written,
            hashed,
        } = consumed?;
        let hashed = hashed.or(from_thread);
        if let Some((_, n)) = &hashed {
            if *n != produced.total {
                return Err(Error::Other(format!(
                    "copy failed: the checksum covers {n} of {} bytes: this is a bug in rbdkit, please report it",
                    produced.total
                )));
            }
        }
        sink.finish(produced.total)?;
        // Every buffer comes back on success: one that did not would shrink the budget of
        // every copy after it in this process.
        #[cfg(test)]
        assert_eq!(pool.in_use(), 0, "buffers not returned to the pool");
        Ok(CopyStats {
            virtual_size: produced.total,
            bytes_written: written,
            bytes_zero_skipped: produced.total - written.min(produced.total),
            elapsed_s: started.elapsed().as_secs_f64(),
            checksum_fell_back: opts.checksum.is_some() && hashed.is_none(),
            checksum: hashed.map(|h| h.0),
            bytes_read: produced.bytes_read,
            bytes_spilled: produced.bytes_spilled,
        })
    })
}

/// What the consumer hands back when the producer's end came.
struct Consumed {
    produced: Produced,
    /// Bytes written into the sink.
    written: u64,
    /// The checksum and the bytes it covers, when the consumer made it ([`Hashing::Here`]).
    hashed: Option<(String, u64)>,
}

/// Where a copy's checksum is folded.
enum Hashing {
    None,
    /// By the consumer, as it delivers each piece in guest order, before the piece goes out:
    /// `sha256`, which must see every byte on one thread. A hasher thread would hold each
    /// piece while a copy of it went to the sink: a dense import had 84 MiB of buffers out
    /// under its 64 MiB budget (117-137 MiB peak RSS), and the copy cost CPU.
    Here(Box<DiskHasher>),
    /// By the hasher thread, behind its frontier.
    Thread(Sender<(u64, Hashed)>),
}

/// This thread's end of the pipeline.
struct Consumer<'a> {
    sink: &'a mut dyn Sink,
    hashing: Hashing,
    writes: Combiner,
    chunk: u64,
    coverage: Coverage,
    done: u64,
    written: u64,
    progress: &'a (dyn Fn(u64, u64) + Sync),
    known_total: u64,
}

impl Consumer<'_> {
    /// Hands every piece on until the producer's end; returns what it reported, the bytes
    /// written and the checksum when it was made here.
    fn run(mut self, rx: Receiver<Msg>, order: Order, cancel: &AtomicBool) -> Result<Consumed> {
        let mut pending: BTreeMap<u64, Piece> = BTreeMap::new();
        let mut frontier = 0u64;
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Interrupted("copy stopped before completion".into()));
            }
            let msg = match rx.try_recv() {
                Ok(m) => Ok(m),
                Err(_) => {
                    // Nothing ready: the sink's finished writes give their memory back, which
                    // the producer may be waiting for; while writes are in flight, look again
                    // soon.
                    let busy = self.sink.reap_finished()?;
                    rx.recv_timeout(if busy { BUSY_POLL } else { POLL })
                }
            };
            let msg = match msg {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Other(
                        "copy failed: the producer stopped without finishing".into(),
                    ))
                }
            };
            match msg {
                Msg::Piece(p) if order == Order::Layout => self.deliver(p)?,
                Msg::Piece(p) => {
                    pending.insert(p.guest, p);
                    while let Some(p) = pending.remove(&frontier) {
                        frontier = p.end();
                        self.deliver(p)?;
                    }
                }
                Msg::Failed(e) => return Err(e),
                Msg::End(produced) => {
                    for (_, p) in std::mem::take(&mut pending) {
                        self.coverage.add(p.guest, p.len)?;
                    }
                    self.coverage.complete(produced.total)?;
                    self.writes.flush(self.sink)?;
                    let hashed = match self.hashing {
                        Hashing::Here(h) => Some((h.finish(), self.done)),
                        _ => None,
                    };
                    return Ok(Consumed {
                        produced,
                        written: self.written,
                        hashed,
                    });
                }
            }
        }
    }

    /// Writes a piece's runs and sends it to the hasher.
    fn deliver(&mut self, mut p: Piece) -> Result<()> {
        self.coverage.add(p.guest, p.len)?;
        self.sink.ensure_size(p.end())?;
        self.written += p.data_len();
        let digests = p.digests.take();
        let data_to_hasher = matches!(self.hashing, Hashing::Thread(_)) && digests.is_none();
        if matches!(p.body, Body::Unchanged) && !matches!(self.hashing, Hashing::None) {
            return Err(Error::Other(
                "copy failed: a diff's unchanged ranges cannot be checksummed on the way: this is a bug in rbdkit, please report it".into(),
            ));
        }
        if let Hashing::Here(h) = &mut self.hashing {
            match &p.body {
                Body::Zeros => h.zeros(p.len),
                Body::Unwritten(read) | Body::Written(Some(read)) => h.feed(&read.buf, &read.extents),
                Body::Written(None) | Body::Unchanged => return Err(Error::Other(
                    "copy failed: a piece came without its data to checksum: this is a bug in rbdkit, please report it".into(),
                )),
            }
        }
        if let Some(d) = digests {
            if self.sink.takes_block_digests() {
                self.sink.block_digests(p.guest, p.len, &d)?;
            }
            self.hash(p.guest, Hashed::Digests(d, p.len))?;
        }
        let overwrite = self.sink.overwrites();
        let alone = self.goes_out_alone(&p);
        match p.body {
            Body::Unchanged => {}
            Body::Zeros => {
                if data_to_hasher {
                    self.hash(p.guest, Hashed::Zeros(p.len))?;
                }
                if overwrite {
                    self.writes.flush(self.sink)?;
                    self.sink.zero(p.guest, p.len)?;
                }
            }
            Body::Written(None) => {}
            Body::Written(Some(read)) => self.retire(p.guest, read, data_to_hasher)?,
            Body::Unwritten(read) => {
                if alone && !data_to_hasher {
                    // A large run goes out in its own buffer, not copied: the copy cost a
                    // sparse image (1 MiB runs) 5 % of its CPU, and the gathering buffer's
                    // pages.
                    self.writes.flush(self.sink)?;
                    self.sink.write(p.guest, read.buf)?;
                } else {
                    // Into a target that holds data, everything between the runs is zeroed,
                    // in order (a diff stream records it as it comes).
                    let mut pos = 0usize;
                    for &(start, n) in &p.runs {
                        if overwrite && start > pos {
                            self.writes.flush(self.sink)?;
                            self.sink.zero(p.guest + pos as u64, (start - pos) as u64)?;
                        }
                        let data = &read.buf[start..start + n];
                        self.writes.add(p.guest + start as u64, data, self.sink)?;
                        pos = start + n;
                    }
                    if overwrite && (pos as u64) < p.len {
                        self.writes.flush(self.sink)?;
                        self.sink.zero(p.guest + pos as u64, p.len - pos as u64)?;
                    }
                    self.retire(p.guest, read, data_to_hasher)?;
                }
            }
        }
        self.done += p.len;
        (self.progress)(self.done, self.known_total);
        Ok(())
    }

    /// Whether a read piece is written from its own buffer rather than gathered: it is all
    /// data, lies within one object and is [`Combiner::large`].
    fn goes_out_alone(&self, p: &Piece) -> bool {
        p.runs == [(0, p.len as usize)]
            && self.writes.large(p.len)
            && p.guest / self.chunk == (p.end() - 1) / self.chunk
    }

    /// A piece's buffer goes to the hasher, or straight back to the pool.
    fn retire(&self, guest: u64, read: ReadData, to_hasher: bool) -> Result<()> {
        if to_hasher {
            self.hash(guest, Hashed::Data(read))
        } else {
            Ok(())
        }
    }

    fn hash(&self, guest: u64, item: Hashed) -> Result<()> {
        match &self.hashing {
            Hashing::Thread(h) => h
                .send((guest, item))
                .map_err(|_| Error::Other("copy failed: the hasher thread stopped".into())),
            _ => Ok(()),
        }
    }
}

/// The injected early stop ([`Fault::ProducerStopsEarly`]): every piece after the first is
/// lost on its way to the consumer (its buffer returned), the producer's end still arrives.
/// A filter on the channel, so no producer pays for the check.
fn stops_early(rx: Receiver<Msg>) -> Receiver<Msg> {
    let (tx, out) = bounded::<Msg>(1);
    std::thread::spawn(move || {
        let mut first = true;
        for msg in rx {
            match msg {
                Msg::Piece(_) if !first => {}
                msg => {
                    first &= !matches!(msg, Msg::Piece(_));
                    if tx.send(msg).is_err() {
                        return;
                    }
                }
            }
        }
    });
    out
}
