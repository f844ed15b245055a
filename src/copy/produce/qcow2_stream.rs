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
        )?;
        let mut batch = Batch {
            cs: dec.cluster_size() as usize,
            comp: dec.compression(),
            chunk: self.chunk.max(1),
            size,
            name,
            guest: 0,
            clusters: Vec::new(),
        };
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
/// 2.9-4.1 s; 256 KiB 2.4-2.7 s and 102-110 MiB peak RSS; 512 KiB 2.4 s and 122-126 MiB;
/// 4 MiB 1.9-2.3 s but 159-172 MiB, over the 128 MiB an import may take (the decoder then runs
/// ahead of the writes and the pipeline stays full; what holds the memory beyond the budget,
/// the budget's buffers being counted, is not pinned down).
const BATCH_BYTES: usize = 256 << 10;

/// Compressed clusters that continue one another within a chunk, decoded as one piece by one
/// decode thread: one job, one buffer and one message per [`BATCH_BYTES`] instead of per
/// cluster (a streamed import of a compressed image made about ten futex calls per cluster).
struct Batch {
    cs: usize,
    comp: Compression,
    chunk: u64,
    size: u64,
    name: String,
    /// Guest offset of the first cluster.
    guest: u64,
    /// Each cluster's host offset (for errors), compressed bytes and guest bytes. The
    /// compressed bytes count in the copy's budget until they are decoded: a queued piece
    /// holds them.
    clusters: Vec<(u64, PoolBuf, usize)>,
}

impl Batch {
    /// Guest offset just past the batch.
    fn end(&self) -> u64 {
        self.guest + self.clusters.iter().map(|c| c.2 as u64).sum::<u64>()
    }

    /// Adds a compressed cluster, first sending the batch when the cluster does not continue
    /// it within its chunk.
    fn add<'scope>(
        &mut self,
        emit: &Emitter<'_, 'scope>,
        guest: u64,
        host: u64,
        input: Vec<u8>,
        len: usize,
    ) -> Result<()> {
        let full = self.clusters.len() * self.cs >= BATCH_BYTES;
        if !self.clusters.is_empty()
            && (full || guest != self.end() || guest.is_multiple_of(self.chunk))
        {
            self.flush(emit)?;
        }
        if self.clusters.is_empty() {
            self.guest = guest;
        }
        self.clusters.push((host, emit.pool().adopt(input), len));
        Ok(())
    }

    /// Queues the batch's clusters as one piece.
    fn flush<'scope>(&mut self, emit: &Emitter<'_, 'scope>) -> Result<()> {
        if self.clusters.is_empty() {
            return Ok(());
        }
        let (guest, end) = (self.guest, self.end());
        let clusters = std::mem::take(&mut self.clusters);
        let (cs, comp, name) = (self.cs, self.comp, self.name.clone());
        emit.submit(guest, end == self.size, clusters.len() * cs, move |mut out| {
            for (i, (host, input, _)) in clusters.iter().enumerate() {
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
