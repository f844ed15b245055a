//! The dynamic disk header ("cxsparse", 1024 big-endian bytes at the footer's data offset) and
//! the block allocation table (BAT) it points to: one 32-bit sector offset per block, or
//! 0xFFFFFFFF for a block not allocated. Each allocated block is a sector bitmap then
//! `block_size` bytes of data; like qemu, reads ignore the bitmap (qemu sets it whole on every
//! allocation, and Virtual PC's cleared bits read as the zeros it wrote there).
//!
//! Checked at open as qemu checks it, and more: the block size is a power of two of at least a
//! sector (and at most [`MAX_BLOCK`]); the table covers the disk, holds at most
//! [`MAX_ENTRIES`] entries and lies inside the file; every allocated block lies inside the
//! file (qemu: "the image has been truncated"); and, stricter than qemu, no block overlaps
//! another block, the table, the header or the footer copy.
use crate::disk::qcow2::ByteSource;
use crate::error::{Error, Result};

/// The header's cookie.
pub const COOKIE: &[u8; 8] = b"cxsparse";
/// Header size in bytes.
pub const LEN: usize = 1024;
/// Most BAT entries kept (64 MiB of table; at 2 MiB blocks, 32 TiB, past VHD's 2 TiB).
pub const MAX_ENTRIES: u64 = 16 << 20;
/// Largest block accepted: 256 MiB (qemu-img writes 2 MiB, or 512 KiB for small disks).
pub const MAX_BLOCK: u64 = 256 << 20;
/// A BAT entry for a block that is not allocated.
pub const UNALLOCATED: u32 = u32::MAX;

/// The checked header and table.
#[derive(Debug)]
pub struct Dynamic {
    /// Bytes of guest data per block.
    pub block_size: u64,
    /// Bytes of sector bitmap before each block's data.
    pub bitmap_size: u64,
    /// Where the table is.
    pub table_offset: u64,
    /// The table: the sector of each block, or [`UNALLOCATED`].
    pub bat: Vec<u32>,
    /// A differencing disk's parent name (UTF-16 in the header).
    pub parent: Option<String>,
}

fn be(b: &[u8], at: usize, n: usize) -> u64 {
    b[at..at + n]
        .iter()
        .fold(0u64, |acc, &x| acc << 8 | x as u64)
}

impl Dynamic {
    /// Reads the header at `offset` and the table it names from `file`, for a disk of `size`
    /// bytes; `shown` names the image in errors.
    pub fn read(file: &dyn ByteSource, offset: u64, size: u64, shown: &str) -> Result<Dynamic> {
        let bad = |why: String| Err(Error::bad_image(shown, why));
        let file_size = file.size();
        if offset.checked_add(LEN as u64).is_none_or(|e| e > file_size) {
            return bad(format!(
                "VHD dynamic header at offset {offset} lies outside the file ({file_size} bytes): the file is truncated or corrupt"
            ));
        }
        let mut h = [0u8; LEN];
        file.read_exact_at(&mut h, offset)
            .map_err(|e| Error::io(format!("read the VHD dynamic header of {shown}"), e))?;
        if &h[..8] != COOKIE {
            return bad(format!(
                "no VHD dynamic header (cxsparse) at offset {offset}: the image is corrupt"
            ));
        }
        let table_offset = be(&h, 16, 8);
        let entries = be(&h, 28, 4);
        let block_size = be(&h, 32, 4);
        if block_size < 512 || !block_size.is_power_of_two() || block_size > MAX_BLOCK {
            return bad(format!(
                "VHD block size {block_size} is invalid (a power of two from 512 bytes to {} MiB): the image is corrupt",
                MAX_BLOCK >> 20
            ));
        }
        if entries > MAX_ENTRIES {
            return bad(format!(
                "VHD block allocation table of {entries} entries is over the limit of {MAX_ENTRIES}: refused"
            ));
        }
        if entries * block_size < size {
            return bad(format!(
                "VHD block allocation table of {entries} blocks of {block_size} bytes does not cover the {size}-byte disk: the image is corrupt"
            ));
        }
        let table_len = entries * 4;
        if table_offset
            .checked_add(table_len)
            .is_none_or(|e| e > file_size)
        {
            return bad(format!(
                "VHD block allocation table at offset {table_offset} ({entries} entries) lies outside the file: the file is truncated or corrupt"
            ));
        }
        let mut raw = vec![0u8; table_len as usize];
        file.read_exact_at(&mut raw, table_offset)
            .map_err(|e| Error::io(format!("read the VHD block allocation table of {shown}"), e))?;
        let bat: Vec<u32> = raw
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        drop(raw);
        // One bit per sector, rounded up to whole sectors.
        let bitmap_size = (block_size / 512).div_ceil(8).div_ceil(512) * 512;
        let d = Dynamic {
            block_size,
            bitmap_size,
            table_offset,
            bat,
            parent: parent_name(&h),
        };
        d.check_blocks(offset, file_size, shown)?;
        Ok(d)
    }

    /// Every allocated block inside the file, none overlapping another or the metadata.
    fn check_blocks(&self, header_at: u64, file_size: u64, shown: &str) -> Result<()> {
        let span = self.bitmap_size + self.block_size;
        let mut starts: Vec<u64> = Vec::new();
        for (i, &e) in self.bat.iter().enumerate() {
            if e == UNALLOCATED {
                continue;
            }
            let at = e as u64 * 512;
            if at + span > file_size {
                return Err(Error::bad_image(
                    shown,
                    format!(
                        "VHD block {i} at offset {at} ends past the end of the file ({file_size} bytes): the image has been truncated"
                    ),
                ));
            }
            starts.push(at);
        }
        starts.sort_unstable();
        // Metadata: the footer copy at 0, the dynamic header, the table.
        let mut regions: Vec<(u64, u64)> = starts.iter().map(|&s| (s, span)).collect();
        regions.push((0, 512));
        regions.push((header_at, LEN as u64));
        regions.push((self.table_offset, self.bat.len() as u64 * 4));
        regions.sort_unstable();
        for w in regions.windows(2) {
            if w[1].1 > 0 && w[0].0 + w[0].1 > w[1].0 {
                return Err(Error::bad_image(
                    shown,
                    format!(
                        "VHD data at offsets {} and {} overlap: the image is corrupt (or built to claim more data than it holds)",
                        w[0].0, w[1].0
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Where guest offset `off` is stored, or `None` when its block is not allocated.
    pub fn host(&self, off: u64) -> Option<u64> {
        let b = (off / self.block_size) as usize;
        match self.bat.get(b) {
            Some(&e) if e != UNALLOCATED => {
                Some(e as u64 * 512 + self.bitmap_size + off % self.block_size)
            }
            _ => None,
        }
    }

    /// Blocks allocated.
    pub fn allocated_blocks(&self) -> u64 {
        self.bat.iter().filter(|&&e| e != UNALLOCATED).count() as u64
    }
}

/// The parent's Unicode name (UTF-16 big-endian, NUL-padded), if any.
fn parent_name(h: &[u8; LEN]) -> Option<String> {
    let units: Vec<u16> = h[64..576]
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    (!units.is_empty()).then(|| String::from_utf16_lossy(&units))
}
