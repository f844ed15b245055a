//! A raw byte stream (stdin) as a producer: read in chunks on a detached thread, zero-scanned
//! and block-hashed on the decode threads (one hasher thread would cap a stream at SHA-256's
//! 1.3 GiB/s). Its size is what arrives; a short chunk is the last.
use crate::copy::piece::ReadData;
use crate::copy::pipeline::{Emitter, Produce, Produced};
use crate::copy::{BufferPool, PoolBuf};
use crate::disk::read_full;
use crate::error::{Error, Result};
use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver};

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
        let blocks = spawn_block_reader(
            self.reader,
            emit.pool().clone(),
            chunk,
            "rbdkit-stream-reader",
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

/// Reads `reader` in blocks of `block` bytes on a detached thread, so a cancelled copy returns
/// at once even while a read is blocked (a pipe whose writer stalls). The thread ends after the
/// last (short) block or an error, when the receiver is dropped, or when the process does.
pub(crate) fn spawn_block_reader(
    mut reader: Box<dyn Read + Send>,
    pool: BufferPool,
    block: usize,
    name: &str,
) -> Result<Receiver<std::io::Result<PoolBuf>>> {
    let (tx, rx) = sync_channel::<std::io::Result<PoolBuf>>(2);
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
