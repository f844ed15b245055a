//! Compressed units of a stream (a qcow2's clusters) that continue one another, decoded as one
//! piece by one decode thread: one job, one buffer and one message per [`BATCH_BYTES`] instead
//! of per 64 KiB unit. A streamed import of a compressed qcow2 made about ten futex calls per
//! unit. (A streamOptimized VMDK's grains, batched the same way, came out no faster from a
//! pipe, 2.65-2.96 s against 2.49-2.92, and took 10 MiB more: its stream costs the pipe's
//! copies, not the jobs, so it keeps one piece per grain.)
use crate::copy::piece::ReadData;
use crate::copy::pipeline::Emitter;
use crate::copy::PoolBuf;
use crate::error::Result;
use std::sync::Arc;

/// Guest bytes decoded as one piece. Measured on a streamed import of the compressed fs qcow2
/// of `bench-import.sh` (two runs each): one cluster per piece 2.9-4.1 s; 256 KiB 2.2-2.7 s
/// and 100-107 MiB peak RSS; 512 KiB 2.4 s and 119-123 MiB; 4 MiB 1.9-2.3 s but 155-170 MiB,
/// over the 128 MiB an import may take (the decoder then runs ahead of the writes and the
/// pipeline stays full; what holds the memory beyond the budget, whose buffers are counted, is
/// not pinned down).
pub(crate) const BATCH_BYTES: usize = 256 << 10;

/// Decodes the unit at guest offset `guest` (`tag`: where it came from, for the error) from
/// `input` into `out`, one whole unit; the error is the whole message.
pub(crate) type Decode = Arc<dyn Fn(u64, u64, &[u8], &mut [u8]) -> Result<()> + Send + Sync>;

/// Units gathered for one piece.
pub(crate) struct Batch {
    /// Bytes a unit decodes to.
    unit: usize,
    chunk: u64,
    /// The disk's size: the piece that reaches it is the last.
    size: u64,
    decode: Decode,
    /// Guest offset of the first unit.
    guest: u64,
    /// Each unit's tag, compressed bytes and guest bytes (a whole unit but at the disk's end).
    /// The compressed bytes count in the copy's budget until they are decoded: a queued piece
    /// holds them.
    units: Vec<(u64, PoolBuf, usize)>,
}

impl Batch {
    /// An empty batch of units of `unit` bytes, in pieces within chunks of `chunk` bytes.
    pub fn new(unit: usize, chunk: u64, size: u64, decode: Decode) -> Batch {
        Batch {
            unit,
            chunk: chunk.max(1),
            size,
            decode,
            guest: 0,
            units: Vec::new(),
        }
    }

    /// Guest offset just past the batch.
    fn end(&self) -> u64 {
        self.guest + self.units.iter().map(|u| u.2 as u64).sum::<u64>()
    }

    /// Adds the unit at `guest` providing `len` guest bytes, first sending the batch when the
    /// unit does not continue it within its chunk or the batch is full.
    pub fn add(
        &mut self,
        emit: &Emitter<'_, '_>,
        guest: u64,
        tag: u64,
        input: Vec<u8>,
        len: usize,
    ) -> Result<()> {
        let full = self.units.len() * self.unit >= BATCH_BYTES;
        if !self.units.is_empty()
            && (full || guest != self.end() || guest.is_multiple_of(self.chunk))
        {
            self.flush(emit)?;
        }
        if self.units.is_empty() {
            self.guest = guest;
        }
        self.units.push((tag, emit.pool().adopt(input), len));
        Ok(())
    }

    /// Queues the gathered units as one piece.
    pub fn flush(&mut self, emit: &Emitter<'_, '_>) -> Result<()> {
        if self.units.is_empty() {
            return Ok(());
        }
        let (guest, end, unit) = (self.guest, self.end(), self.unit);
        let units = std::mem::take(&mut self.units);
        let decode = self.decode.clone();
        emit.submit(
            guest,
            end == self.size,
            units.len() * unit,
            move |mut out| {
                for (i, (tag, input, _)) in units.iter().enumerate() {
                    let at = guest + (i * unit) as u64;
                    decode(at, *tag, input, &mut out[i * unit..(i + 1) * unit])?;
                }
                drop(units);
                let len = (end - guest) as usize;
                out.truncate(len);
                Ok(ReadData {
                    buf: out,
                    extents: vec![(0, len)],
                })
            },
        )
    }
}
