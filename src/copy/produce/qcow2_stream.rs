//! A qcow2 image arriving as a stream (stdin) as a producer, decoded in one pass:
//! stream → reader thread (2 MiB blocks) → forward-only decoder ([`crate::disk::qcow2::stream`],
//! on the producer thread: tables, claims, spill) → decode threads (compressed clusters
//! decoded, every piece zero-scanned). Pieces come in the image's layout order, so the sink
//! must accept writes anywhere (a fresh RBD image created at the virtual size, which the
//! header gives before any data); images written by `qemu-img convert` arrive in guest order.
use super::raw_stream::spawn_block_reader;
use crate::copy::piece::ReadData;
use crate::copy::pipeline::{Emitter, Produce, Produced};
use crate::copy::{BufferPool, PoolBuf};
use crate::disk::qcow2::stream::StreamDecoder;
use crate::disk::qcow2::stream::{Event, Qcow2Stream, READ_BLOCK};
use crate::disk::qcow2::{decode_cluster, Compression};
use crate::error::{Error, Result};

/// A qcow2 stream decoded into pieces of at most `chunk` bytes.
pub(crate) struct Qcow2StreamProducer {
    pub stream: Qcow2Stream,
    pub chunk: u64,
}

impl Produce for Qcow2StreamProducer {
    fn produce<'scope>(self, emit: &Emitter<'_, 'scope>) -> Result<Produced>
    where
        Self: 'scope,
    {
        let size = self.stream.virtual_size();
        let name = self.stream.name().to_string();
        let alloc_pool = emit.pool().clone();
        let (mut dec, first, reader) = self
            .stream
            .into_parts(self.chunk, Box::new(move |n: usize| alloc_pool.raw(n)));
        let block_pool = BufferPool::new(4);
        let blocks = spawn_block_reader(
            reader,
            block_pool.clone(),
            READ_BLOCK,
            "rbdkit-qcow2-reader",
            None,
        )?;
        let mut batch = ClusterBatch::new(&dec, self.chunk, size, name);
        let mut on_event = |ev: Event| -> Result<()> {
            match ev {
                Event::Compressed {
                    guest,
                    host,
                    input,
                    len,
                } => batch.add(emit, guest, host, input, len),
                Event::Zero { guest, len } => {
                    batch.flush(emit)?;
                    emit.zeros(guest, len)
                }
                Event::Data { guest, bytes } => {
                    batch.flush(emit)?;
                    let last = guest + bytes.len() as u64 == size;
                    let extents = vec![(0, bytes.len())];
                    emit.submit_read(
                        guest,
                        last,
                        ReadData {
                            buf: emit.pool().adopt(bytes),
                            extents,
                        },
                    )
                }
            }
        };
        dec.feed(&first, &mut on_event)?;
        let st = loop {
            let block = emit
                .recv(&blocks)?
                .map_err(|e| Error::io(format!("read {}", dec.name()), e))?;
            let short = block.len() < READ_BLOCK;
            dec.feed(&block, &mut on_event)?;
            if short {
                break dec.finish(&mut on_event)?;
            }
        };
        batch.flush(emit)?;
        Ok(Produced {
            total: size,
            bytes_read: Some(st.bytes_read),
            bytes_spilled: Some(st.bytes_spilled),
        })
    }
}

/// Guest bytes of compressed clusters decoded as one piece. Measured on a streamed import of
/// the compressed fs qcow2 of `bench-import.sh` (two runs each): one cluster per piece
/// 2.9-4.1 s; 256 KiB 2.2-2.7 s and 100-107 MiB peak RSS; 512 KiB 2.4 s and 119-123 MiB;
/// 4 MiB 1.9-2.3 s but 155-170 MiB, over the 128 MiB an import may take (the decoder then runs
/// ahead of the writes and the pipeline stays full; what holds the memory beyond the budget,
/// whose buffers are counted, is not pinned down).
const BATCH_BYTES: usize = 256 << 10;

/// Compressed clusters that continue one another, decoded as one piece by one decode thread:
/// one job, one buffer and one message per [`BATCH_BYTES`] instead of per cluster (a streamed
/// import of a compressed qcow2 made about ten futex calls per cluster). (A streamOptimized
/// VMDK's grains, batched the same way, came out no faster from a pipe and took 10 MiB more:
/// that stream costs the pipe's copies, not the jobs, so it keeps one piece per grain.)
struct ClusterBatch {
    cs: usize,
    comp: Compression,
    chunk: u64,
    /// The disk's size: the piece that reaches it is the last.
    size: u64,
    /// The image, for errors.
    name: String,
    /// Guest offset of the first cluster, and just past the last.
    guest: u64,
    end: u64,
    /// Each cluster's host offset (for errors) and compressed bytes (each decodes to a whole
    /// cluster; the last piece of the disk is cut at its end). The compressed bytes count in
    /// the copy's budget until they are decoded: a queued piece holds them.
    clusters: Vec<(u64, PoolBuf)>,
}

impl ClusterBatch {
    /// An empty batch for the clusters `dec` hands on, in pieces within chunks of `chunk`.
    fn new(dec: &StreamDecoder, chunk: u64, size: u64, name: String) -> ClusterBatch {
        ClusterBatch {
            cs: dec.cluster_size() as usize,
            comp: dec.compression(),
            chunk: chunk.max(1),
            size,
            name,
            guest: 0,
            end: 0,
            clusters: Vec::new(),
        }
    }

    /// Adds the cluster at `guest` (stored at `host`) providing `len` guest bytes, first
    /// sending the batch when the cluster does not continue it within its chunk or it is full.
    fn add(
        &mut self,
        emit: &Emitter<'_, '_>,
        guest: u64,
        host: u64,
        input: Vec<u8>,
        len: usize,
    ) -> Result<()> {
        let full = self.clusters.len() * self.cs >= BATCH_BYTES;
        if !self.clusters.is_empty()
            && (full || guest != self.end || guest.is_multiple_of(self.chunk))
        {
            self.flush(emit)?;
        }
        if self.clusters.is_empty() {
            self.guest = guest;
        }
        self.end = guest + len as u64;
        self.clusters.push((host, emit.pool().adopt(input)));
        Ok(())
    }

    /// Queues the gathered clusters as one piece.
    fn flush(&mut self, emit: &Emitter<'_, '_>) -> Result<()> {
        if self.clusters.is_empty() {
            return Ok(());
        }
        let (guest, end, cs, comp) = (self.guest, self.end, self.cs, self.comp);
        let clusters = std::mem::take(&mut self.clusters);
        let name = self.name.clone();
        emit.submit(guest, end == self.size, clusters.len() * cs, move |mut out| {
            for (i, (host, input)) in clusters.iter().enumerate() {
                let at = guest + (i * cs) as u64;
                decode_cluster(comp, input, &mut out[i * cs..(i + 1) * cs]).map_err(|why| {
                    Error::bad_image(
                        name.clone(),
                        format!("compressed cluster for guest offset {at:#x} at offset {host:#x}: {why}: the image is corrupt"),
                    )
                })?;
            }
            drop(clusters);
            let len = (end - guest) as usize;
            out.truncate(len);
            Ok(ReadData {
                buf: out,
                extents: vec![(0, len)],
            })
        })
    }
}
