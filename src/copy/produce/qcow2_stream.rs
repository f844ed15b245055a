//! A qcow2 image arriving as a stream (stdin) as a producer, decoded in one pass:
//! stream → reader thread (2 MiB blocks) → forward-only decoder ([`crate::disk::qcow2::stream`],
//! on the producer thread: tables, claims, spill) → decode threads (compressed clusters
//! decoded, every piece zero-scanned). Pieces come in the image's layout order, so the sink
//! must accept writes anywhere (a fresh RBD image created at the virtual size, which the
//! header gives before any data); images written by `qemu-img convert` arrive in guest order.
use super::batch::{Batch, Decode};
use super::raw_stream::spawn_block_reader;
use crate::copy::piece::ReadData;
use crate::copy::pipeline::{Emitter, Produce, Produced};
use crate::copy::BufferPool;
use crate::disk::qcow2::decode_cluster;
use crate::disk::qcow2::stream::{Event, Qcow2Stream, READ_BLOCK};
use crate::error::{Error, Result};
use std::sync::Arc;

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
        let comp = dec.compression();
        let decode: Decode = Arc::new(move |guest, host, input, out| {
            decode_cluster(comp, input, out).map_err(|why| {
                Error::bad_image(
                    name.clone(),
                    format!("compressed cluster for guest offset {guest:#x} at offset {host:#x}: {why}: the image is corrupt"),
                )
            })
        });
        let mut batch = Batch::new(dec.cluster_size() as usize, self.chunk, size, decode);
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
