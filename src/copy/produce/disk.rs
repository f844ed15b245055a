//! A random-access disk (raw file, qcow2 file, RBD image) as a producer: its data extents are
//! read on the decode threads a chunk at a time; holes become zero pieces without a read, a
//! whole run of them at once, so a 10 TiB disk holding megabytes costs what the megabytes cost.
use crate::copy::digest::BLOCK;
use crate::copy::piece::ReadData;
use crate::copy::pipeline::{Emitter, Produce, Produced};
use crate::disk::{DiskSource, ExtentKind};
use crate::error::Result;

/// Chunks whose extents are asked for at once: bounds the extent list a fragmented image
/// returns, and makes each call cover a gigabyte of holes with 4 MiB chunks.
const SPAN_CHUNKS: u64 = 256;

/// Reads `src` in chunks of `chunk` bytes (the object size, so writes never straddle objects).
pub(crate) struct DiskProducer<'a> {
    pub src: &'a dyn DiskSource,
    pub chunk: u64,
}

impl Produce for DiskProducer<'_> {
    fn produce<'scope>(self, emit: &Emitter<'_, 'scope>) -> Result<Produced>
    where
        Self: 'scope,
    {
        let (src, chunk) = (self.src, self.chunk.max(1));
        let size = src.virtual_size();
        let mut pos = 0u64;
        while pos < size {
            emit.check()?;
            let span_end = pos.saturating_add(chunk * SPAN_CHUNKS).min(size);
            let extents = src.extents(pos, span_end - pos)?;
            let data: Vec<(u64, u64)> = extents
                .iter()
                .filter(|e| e.kind == ExtentKind::Data)
                .map(|e| (e.offset, e.end()))
                .collect();
            // A diff's unchanged ranges split the span: pieces between them hold no unchanged
            // byte (all of a piece not written reads as zeros).
            let mut at = pos;
            for e in extents.iter().filter(|e| e.kind == ExtentKind::Unchanged) {
                let from = data.partition_point(|d| d.1 <= at);
                self.emit_range(emit, at, e.offset, &data[from..])?;
                emit.unchanged(e.offset, e.len)?;
                at = e.end();
            }
            let from = data.partition_point(|d| d.1 <= at);
            self.emit_range(emit, at, span_end, &data[from..])?;
            pos = span_end;
        }
        Ok(Produced {
            total: size,
            ..Produced::default()
        })
    }
}

impl<'a> DiskProducer<'a> {
    /// Emits `[at, range_end)`, whose data lies in `data` (`(start, end)`, sorted, those
    /// before `at` already dropped): zero pieces for the holes, a piece per chunk with data.
    fn emit_range<'scope>(
        &self,
        emit: &Emitter<'_, 'scope>,
        mut at: u64,
        range_end: u64,
        data: &[(u64, u64)],
    ) -> Result<()>
    where
        'a: 'scope,
    {
        let (src, chunk) = (self.src, self.chunk.max(1));
        let size = src.virtual_size();
        let mut next = data.iter().take_while(|d| d.0 < range_end).peekable();
        while at < range_end {
            // The chunk the next data extent starts in; everything before it is a hole.
            let Some(&&(first, _)) = next.peek() else {
                emit.zeros(at, range_end - at)?;
                break;
            };
            let first_data = first.max(at);
            let data_chunk = (first_data - first_data % chunk).max(at);
            if data_chunk > at {
                emit.zeros(at, data_chunk - at)?;
                at = data_chunk;
                continue;
            }
            let end = (at - at % chunk + chunk).min(range_end);
            let mut extents = Vec::new();
            while let Some(&&(s, e)) = next.peek() {
                let (s2, e2) = (s.max(at), e.min(end));
                if s2 < e2 {
                    extents.push(((s2 - at) as usize, (e2 - s2) as usize));
                }
                if e > end {
                    break;
                }
                next.next();
            }
            // The piece spans the chunk's data only, in whole checksum blocks (so the decode
            // thread still makes its block digests); the chunk's head and tail before and
            // after the data are zero pieces. A 4 MiB object holding 1 MiB then takes 1 MiB
            // of the budget, not 4, and its data goes out in its own buffer.
            let (lo, hi) = data_span(&extents, (end - at) as usize);
            let piece = at + lo as u64;
            emit.zeros(at, lo as u64)?;
            for e in &mut extents {
                e.0 -= lo;
            }
            emit.submit(piece, at + hi as u64 == size, hi - lo, move |mut buf| {
                for &(start, n) in &extents {
                    src.read_at(piece + start as u64, &mut buf[start..start + n])?;
                }
                Ok(ReadData { buf, extents })
            })?;
            emit.zeros(at + hi as u64, (end - at) - hi as u64)?;
            at = end;
        }
        Ok(())
    }
}

/// The part `[lo, hi)` of a chunk of `len` bytes that holds its `extents` (`(start, len)`
/// within the chunk, sorted), widened to whole checksum blocks and kept within the chunk.
fn data_span(extents: &[(usize, usize)], len: usize) -> (usize, usize) {
    let block = BLOCK as usize;
    match (extents.first(), extents.last()) {
        (Some(&(first, _)), Some(&(last, n))) => {
            let lo = first - first % block;
            let hi = (last + n).div_ceil(block).saturating_mul(block).min(len);
            (lo, hi)
        }
        _ => (0, len),
    }
}

#[cfg(test)]
mod tests {
    use super::data_span;

    #[test]
    fn a_chunks_piece_spans_its_data_in_whole_blocks() {
        const K: usize = 1024;
        // 1 MiB of data at 1 MiB in a 4 MiB chunk: exactly that.
        assert_eq!(
            data_span(&[(1024 * K, 1024 * K)], 4096 * K),
            (1024 * K, 2048 * K)
        );
        // Unaligned runs widen to the 64 KiB blocks around them.
        assert_eq!(
            data_span(&[(70 * K, 4 * K), (300 * K, 1)], 4096 * K),
            (64 * K, 320 * K)
        );
        // Never past the chunk, whose end may not be a block's (the disk's last chunk).
        assert_eq!(data_span(&[(0, 100)], 4000), (0, 4000));
        assert_eq!(data_span(&[], 4096 * K), (0, 4096 * K));
    }
}
