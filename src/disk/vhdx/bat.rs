//! The VHDX block allocation table (MS-VHDX 2.5): 64-bit entries, a state in bits 0-2 and the
//! block's file offset in megabytes in bits 20-63. Payload entries come in chunks of
//! `chunk_ratio` (2^23 × logical sector size / block size), each chunk followed by the entry of
//! its sector bitmap block, which only a differencing disk uses.
//!
//! State 5 is the pre-1.0 "unmapped" that qemu also reads as zeros.
//!
//! Checked at open: the table the disk needs fits its region and at most [`MAX_ENTRIES`];
//! every present block lies in the file, past the header section, and overlaps no other block
//! and no region (stricter than qemu, which checks the regions only); a block state that does
//! not exist, or PARTIALLY_PRESENT in a disk with no parent, is refused.
use super::header::{Region, HEADER_SECTION};
use super::metadata::Metadata;
use crate::disk::qcow2::ByteSource;
use crate::error::{Error, Result};

/// Most BAT entries read (128 MiB of table; 16 TiB at the smallest block size).
pub const MAX_ENTRIES: u64 = 16 << 20;

/// How a payload block reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// Not present, undefined or unmapped: zeros (there is no parent).
    Unallocated,
    /// Explicitly zero.
    Zero,
    /// At this file offset.
    At(u64),
}

/// The checked table.
#[derive(Debug)]
pub struct Bat {
    entries: Vec<u64>,
    chunk_ratio: u64,
    block_size: u64,
    blocks: u64,
}

impl Bat {
    /// Reads the table in region `r` of `file` for the disk `m`, checking every present block
    /// against the file and the other `regions`.
    pub fn read(
        file: &dyn ByteSource,
        r: Region,
        m: &Metadata,
        regions: &[Region],
        shown: &str,
    ) -> Result<Bat> {
        let bad = |why: String| Err(Error::bad_image(shown, why));
        let chunk_ratio = ((1u64 << 23) * m.logical_sector) / m.block_size;
        let blocks = m.size.div_ceil(m.block_size);
        let entries = blocks + (blocks - 1) / chunk_ratio;
        if entries > MAX_ENTRIES {
            return bad(format!("VHDX block allocation table of {entries} entries is over the limit of {MAX_ENTRIES}: refused"));
        }
        if entries * 8 > r.len {
            return bad(format!(
                "VHDX block allocation table needs {entries} entries but its region holds {}: the image is corrupt",
                r.len / 8
            ));
        }
        let mut raw = vec![0u8; (entries * 8) as usize];
        file.read_exact_at(&mut raw, r.offset).map_err(|e| {
            Error::io(
                format!("read the VHDX block allocation table of {shown}"),
                e,
            )
        })?;
        let entries: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        drop(raw);
        let bat = Bat {
            entries,
            chunk_ratio,
            block_size: m.block_size,
            blocks,
        };
        let size = file.size();
        let mut spans: Vec<(u64, u64)> = Vec::new();
        for b in 0..blocks {
            let e = bat.entries[bat.index(b)];
            match e & 7 {
                0..=3 | 5 => {}
                6 => {
                    let at = (e >> 20) << 20;
                    let need = m.block_size.min(m.size - b * m.block_size);
                    if at < HEADER_SECTION || at.checked_add(need).is_none_or(|end| end > size) {
                        return bad(format!(
                            "VHDX block {b} at offset {at} lies outside the file ({size} bytes): the image is truncated or corrupt"
                        ));
                    }
                    spans.push((at, need));
                }
                7 => return bad(format!("VHDX block {b} is partially present, which only a differencing disk may be: the image is corrupt")),
                s => return bad(format!("VHDX block {b} has the invalid state {s}: the image is corrupt")),
            }
        }
        spans.extend(
            regions
                .iter()
                .filter(|r| r.len > 0)
                .map(|r| (r.offset, r.len)),
        );
        spans.push((0, HEADER_SECTION));
        spans.sort_unstable();
        for w in spans.windows(2) {
            if w[0].0 + w[0].1 > w[1].0 {
                return bad(format!(
                    "VHDX data at offsets {} and {} overlap: the image is corrupt (or built to claim more data than it holds)",
                    w[0].0, w[1].0
                ));
            }
        }
        Ok(bat)
    }

    /// The table index of payload block `b`.
    fn index(&self, b: u64) -> usize {
        (b + b / self.chunk_ratio) as usize
    }

    /// How payload block `b` (below the block count) reads.
    pub fn block(&self, b: u64) -> Block {
        if b >= self.blocks {
            return Block::Unallocated;
        }
        let e = self.entries[self.index(b)];
        match e & 7 {
            2 => Block::Zero,
            6 => Block::At((e >> 20) << 20),
            _ => Block::Unallocated,
        }
    }

    /// Payload block size.
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// Blocks that hold data.
    pub fn present_blocks(&self) -> u64 {
        (0..self.blocks)
            .filter(|&b| matches!(self.block(b), Block::At(_)))
            .count() as u64
    }
}
