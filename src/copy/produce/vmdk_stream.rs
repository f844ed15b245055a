//! A streamOptimized VMDK arriving as a stream (stdin: an OVA's disk) as a producer: stream →
//! reader thread (1 MiB blocks) → forward-only walk over its markers
//! ([`crate::disk::vmdk::stream`], on the producer thread) → decode threads (each grain
//! inflated, zero-scanned). Grains arrive in guest order (the walk refuses any other), and
//! what no grain covers is handed on as zeros. A grain larger than a chunk is cut into pieces
//! at chunk boundaries, each inflating the grain and keeping its part, so no piece straddles
//! a chunk (grains are 64 KiB in every image VMware or qemu writes: one piece each).
use super::raw_stream::spawn_block_reader;
use crate::copy::piece::ReadData;
use crate::copy::pipeline::{Emitter, Produce, Produced};
use crate::copy::{BufferPool, PoolBuf};
use crate::disk::vmdk::grain;
use crate::disk::vmdk::stream::{Event, VmdkStream};
use crate::error::{Error, Result};
use std::io::Read;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

/// Bytes per read from the stream.
const READ_BLOCK: usize = 1 << 20;

/// A VMDK stream decoded into pieces of at most `chunk` bytes.
pub(crate) struct VmdkStreamProducer {
    pub stream: VmdkStream,
    pub chunk: u64,
}

/// The reader thread's blocks as a `Read`, waiting through the emitter so a cancelled or
/// failed copy stops the walk even while the stream stalls.
struct Blocks<'e, 'a, 'scope> {
    emit: &'e Emitter<'a, 'scope>,
    rx: Receiver<std::io::Result<PoolBuf>>,
    cur: Option<PoolBuf>,
    at: usize,
    done: bool,
}

impl Read for Blocks<'_, '_, '_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(b) = &self.cur {
                if self.at < b.len() {
                    let n = (b.len() - self.at).min(out.len());
                    out[..n].copy_from_slice(&b[self.at..self.at + n]);
                    self.at += n;
                    return Ok(n);
                }
                // A short block was the last one.
                self.done |= b.len() < READ_BLOCK;
            }
            if self.done {
                return Ok(0);
            }
            let next = self
                .emit
                .recv(&self.rx)
                .map_err(|e| std::io::Error::other(e.to_string()))??;
            self.cur = Some(next);
            self.at = 0;
        }
    }
}

impl Produce for VmdkStreamProducer {
    fn produce<'scope>(self, emit: &Emitter<'_, 'scope>) -> Result<Produced>
    where
        Self: 'scope,
    {
        let size = self.stream.virtual_size();
        let name = self.stream.name().to_string();
        let (walk, reader) = self.stream.into_parts();
        let gb = walk.grain_bytes();
        let rx = spawn_block_reader(
            reader,
            BufferPool::new(4),
            READ_BLOCK,
            "rbdkit-vmdk-reader",
            None,
        )?;
        let mut blocks = Blocks {
            emit,
            rx,
            cur: None,
            at: 0,
            done: false,
        };
        let chunk = self.chunk.max(1);
        let pool = emit.pool().clone();
        let mut alloc = |n: usize| pool.raw(n);
        let mut on_event = |ev: Event| -> Result<()> {
            match ev {
                Event::Zero { guest, len } => emit.zeros(guest, len),
                Event::Grain {
                    guest,
                    payload,
                    len,
                } => {
                    let payload = Arc::new(payload);
                    let end = guest + len as u64;
                    let mut at = guest;
                    while at < end {
                        let piece_end = ((at / chunk + 1) * chunk).min(end);
                        let (skip, n) = ((at - guest) as usize, (piece_end - at) as usize);
                        let (payload, name) = (payload.clone(), name.clone());
                        let grain_len = gb as usize;
                        emit.submit(at, piece_end == size, n, move |mut out| {
                            let mut whole;
                            // One piece per grain (the usual case) inflates straight into it.
                            let dst: &mut [u8] = if skip == 0 && n == len && n == grain_len {
                                &mut out
                            } else {
                                whole = vec![0u8; grain_len];
                                &mut whole
                            };
                            let r = grain::inflate(&payload, dst, len);
                            r.map_err(|why| {
                                Error::bad_image(
                                    name,
                                    format!("compressed grain for guest offset {guest:#x}: {why}: the image is corrupt"),
                                )
                            })?;
                            if !(skip == 0 && n == len && n == grain_len) {
                                let part = dst[skip..skip + n].to_vec();
                                out.truncate(0);
                                out.extend_from_slice(&part);
                            }
                            out.truncate(n);
                            Ok(ReadData {
                                buf: out,
                                extents: vec![(0, n)],
                            })
                        })?;
                        at = piece_end;
                    }
                    Ok(())
                }
            }
        };
        let st = walk.run(&mut blocks, &mut alloc, &mut on_event)?;
        Ok(Produced {
            total: size,
            bytes_read: Some(st.bytes_read),
            bytes_spilled: None,
        })
    }
}
