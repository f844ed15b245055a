//! An `rbd export-diff` stream as a copy target ([`crate::backup::diff_format`]): each
//! non-zero run becomes a `w` record and, in a diff from a snapshot, each range that changed to
//! zeros a `z` record, in offset order, so `rbd import-diff` applies it to an image holding the
//! from-snapshot (or, from no snapshot, to a new image).
use super::{PoolBuf, Sink};
use crate::backup::diff_format::{DiffHeader, DiffWriter};
use crate::error::Result;
use std::io::Write;

/// Writes a diff stream.
pub struct DiffSink<W: Write> {
    w: DiffWriter<W>,
    incremental: bool,
    /// Bytes in `z` records.
    pub bytes_zeroed: u64,
}

impl<W: Write> DiffSink<W> {
    /// Starts the stream with `header` (its size is the image's at the end).
    pub fn new(out: W, header: &DiffHeader) -> Result<Self> {
        Ok(DiffSink {
            incremental: header.from_snap.is_some(),
            w: DiffWriter::new(out, header)?,
            bytes_zeroed: 0,
        })
    }

    /// Bytes of stream written.
    pub fn bytes(&self) -> u64 {
        self.w.bytes
    }
}

impl<W: Write> Sink for DiffSink<W> {
    fn ensure_size(&mut self, _size: u64) -> Result<()> {
        Ok(())
    }

    fn write(&mut self, offset: u64, data: PoolBuf) -> Result<()> {
        self.w.write(offset, &data)
    }

    fn finish(&mut self, _size: u64) -> Result<()> {
        self.w.finish()
    }

    fn ordered(&self) -> bool {
        true
    }

    /// A diff from a snapshot must say what became zeros; a diff from nothing applies to a new
    /// image, which reads zeros already.
    fn overwrites(&self) -> bool {
        self.incremental
    }

    fn zero(&mut self, offset: u64, len: u64) -> Result<()> {
        if len > 0 {
            self.w.zero(offset, len)?;
            self.bytes_zeroed += len;
        }
        Ok(())
    }
}
