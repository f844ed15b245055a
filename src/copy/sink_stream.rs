//! A raw byte stream as a sink (stdout: `rbdkit export IMAGE -`): writes come in increasing
//! offset order ([`Sink::ordered`]) and the holes between them go out as zeros, so the stream
//! is the whole raw disk, as `rbd export IMAGE -` writes it.
use super::{PoolBuf, Sink};
use crate::error::{Error, Result};
use std::io::Write;

/// Zeros written at once for a hole.
static ZEROS: [u8; 1 << 16] = [0; 1 << 16];

/// The raw disk, written in order to `out`.
pub struct StreamSink {
    out: Box<dyn Write + Send>,
    /// What the stream is, for errors (`stdout`).
    name: String,
    /// Bytes written so far.
    pos: u64,
}

impl StreamSink {
    /// A sink writing to `out`, named `name` in errors.
    pub fn new(out: Box<dyn Write + Send>, name: &str) -> StreamSink {
        StreamSink {
            out,
            name: name.into(),
            pos: 0,
        }
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn put(&mut self, data: &[u8]) -> Result<()> {
        self.out
            .write_all(data)
            .map_err(|e| Error::io(format!("write {}", self.name), e))?;
        self.pos += data.len() as u64;
        Ok(())
    }

    /// Writes `data` at `offset`, at or after the position: the bytes before it as zeros.
    pub fn write_bytes(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        if offset < self.pos {
            return Err(Error::Other(format!(
                "write {} at offset {offset}: the stream is already at {}: this is a bug in rbdkit, please report it",
                self.name, self.pos
            )));
        }
        self.zeros_to(offset)?;
        self.put(data)
    }

    /// Writes zeros up to `offset`.
    fn zeros_to(&mut self, offset: u64) -> Result<()> {
        while self.pos < offset {
            let n = (offset - self.pos).min(ZEROS.len() as u64) as usize;
            self.put(&ZEROS[..n])?;
        }
        Ok(())
    }
}

impl Sink for StreamSink {
    fn ensure_size(&mut self, _size: u64) -> Result<()> {
        Ok(())
    }

    fn write(&mut self, offset: u64, data: PoolBuf) -> Result<()> {
        self.write_bytes(offset, &data)
    }

    fn finish(&mut self, size: u64) -> Result<()> {
        self.zeros_to(size)?;
        self.out
            .flush()
            .map_err(|e| Error::io(format!("flush {}", self.name), e))
    }

    fn ordered(&self) -> bool {
        true
    }
}
