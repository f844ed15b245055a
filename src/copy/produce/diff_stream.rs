//! An `rbd export-diff` stream as a producer: its `w` records are cut at chunk boundaries and
//! zero-scanned on the decode threads, its `z` records become zero pieces, and the ranges no
//! record names are unchanged (the target keeps them). The records are read, and checked, on
//! the producer thread in the order they come, which is offset order (the reader refuses any
//! other).
use crate::backup::diff_format::{DiffReader, DiffRecord};
use crate::copy::piece::ReadData;
use crate::copy::pipeline::{Emitter, Produce, Produced};
use crate::error::Result;
use std::io::Read;

/// A diff stream whose header was read already.
pub(crate) struct DiffStreamProducer<R: Read + Send> {
    pub reader: DiffReader<R>,
    pub chunk: u64,
}

impl<R: Read + Send> Produce for DiffStreamProducer<R> {
    fn produce<'scope>(mut self, emit: &Emitter<'_, 'scope>) -> Result<Produced>
    where
        Self: 'scope,
    {
        let chunk = self.chunk.max(1);
        let total = self.reader.header.size;
        let mut pos = 0u64;
        while let Some(rec) = self.reader.next_record()? {
            emit.check()?;
            let (offset, len) = match rec {
                DiffRecord::Write { offset, len } | DiffRecord::Zero { offset, len } => {
                    (offset, len)
                }
            };
            emit.unchanged(pos, offset - pos)?;
            match rec {
                DiffRecord::Zero { .. } => emit.zeros(offset, len)?,
                DiffRecord::Write { .. } => {
                    let mut at = offset;
                    while at < offset + len {
                        let end = (at - at % chunk + chunk).min(offset + len);
                        let n = (end - at) as usize;
                        let mut buf = emit.pool().get(n);
                        self.reader.read_data(&mut buf[..n])?;
                        let read = ReadData {
                            buf,
                            extents: vec![(0, n)],
                        };
                        emit.submit_read(at, end == total, read)?;
                        at = end;
                    }
                }
            }
            pos = offset + len;
        }
        emit.unchanged(pos, total - pos)?;
        Ok(Produced {
            total,
            bytes_read: Some(self.reader.bytes),
            bytes_spilled: None,
        })
    }
}
