//! A raw byte stream (stdin) as a producer: read in chunks on a detached thread, zero-scanned
//! and block-hashed on the decode threads (one hasher thread would cap a stream at SHA-256's
//! 1.3 GiB/s). Its size is what arrives; a short chunk is the last.
use crate::copy::piece::ReadData;
use crate::copy::pipeline::{Emitter, Produce, Produced};
use crate::copy::{BufferPool, PoolBuf};
use crate::disk::read_full;
use crate::error::{Error, Result};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

/// A stream read in chunks of `chunk` bytes.
pub(crate) struct RawStreamProducer {
    pub reader: Box<dyn Read + Send>,
    pub chunk: usize,
}

impl Produce for RawStreamProducer {
    fn produce<'scope>(self, emit: &Emitter<'_, 'scope>) -> Result<Produced>
    where
        Self: 'scope,
    {
        let chunk = self.chunk.max(1);
        // The reader takes its blocks from the copy's budget, waiting for room before each;
        // `done` lets it stop waiting once this producer has returned.
        let done = Arc::new(AtomicBool::new(false));
        let _stop = SetOnDrop(done.clone());
        let blocks = spawn_block_reader(
            self.reader,
            emit.pool().clone(),
            chunk,
            "rbdkit-stream-reader",
            Some(done),
        )?;
        let mut offset = 0u64;
        loop {
            let buf = emit
                .recv(&blocks)?
                .map_err(|e| Error::io("read input stream", e))?;
            let len = buf.len();
            if len == 0 {
                break;
            }
            // Outside its non-zero runs the chunk is zeros: the scan looks at all of it.
            let extents = vec![(0, len)];
            emit.submit_read(offset, len < chunk, ReadData { buf, extents })?;
            offset += len as u64;
            if len < chunk {
                break;
            }
        }
        Ok(Produced {
            total: offset,
            bytes_read: Some(offset),
            bytes_spilled: None,
        })
    }
}

/// Sets its flag when dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Reads `reader` in blocks of `block` bytes on a detached thread, so a cancelled copy returns
/// at once even while a read is blocked (a pipe whose writer stalls). The thread ends after the
/// last (short) block or an error, when the receiver is dropped, or when the process does.
/// With `budget_until`, each block waits for room in `pool`'s budget (until the flag is set):
/// blocks read ahead then count in it without overrunning it. Taken without waiting, three
/// blocks read ahead, the producer's and the gathering buffer were more than a 64 MiB budget
/// with 16 MiB objects, and the producer waited forever for memory only it could free.
pub(crate) fn spawn_block_reader(
    mut reader: Box<dyn Read + Send>,
    pool: BufferPool,
    block: usize,
    name: &str,
    budget_until: Option<Arc<AtomicBool>>,
) -> Result<Receiver<std::io::Result<PoolBuf>>> {
    let (tx, rx) = sync_channel::<std::io::Result<PoolBuf>>(2);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || loop {
            if let Some(stop) = &budget_until {
                let halted = || stop.load(Ordering::Relaxed);
                if pool.wait_until_fits(block as u64, &halted).is_none() {
                    return;
                }
            }
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
