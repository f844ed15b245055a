//! The VHDX metadata region (MS-VHDX 2.6): a table of items, of which a reader needs the file
//! parameters (block size, has-parent), the virtual disk size and the logical sector size.
//! Checked as qemu checks them: a block size that is a power of two from 1 MiB to 256 MiB, a
//! logical and physical sector size of 512 or 4096, a disk size of at most 64 TiB that is a
//! whole number of logical sectors; an unknown item marked required is refused.
use super::header::{guid, Region};
use crate::disk::qcow2::ByteSource;
use crate::error::{Error, Result};

const FILE_PARAMETERS: [u8; 16] = guid(
    0xCAA1_6737,
    0xFA36,
    0x4D43,
    [0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B],
);
const DISK_SIZE: [u8; 16] = guid(
    0x2FA5_4224,
    0xCD1B,
    0x4876,
    [0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8],
);
const PAGE83: [u8; 16] = guid(
    0xBECA_12AB,
    0xB2E6,
    0x4523,
    [0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46],
);
const LOGICAL_SECTOR: [u8; 16] = guid(
    0x8141_BF1D,
    0xA96F,
    0x4709,
    [0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F],
);
const PHYSICAL_SECTOR: [u8; 16] = guid(
    0xCDA3_48C7,
    0x445D,
    0x4471,
    [0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56],
);
const PARENT_LOCATOR: [u8; 16] = guid(
    0xA8D3_5F2D,
    0xB30B,
    0x454D,
    [0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C],
);

/// Largest virtual disk VHDX defines: 64 TiB.
pub const MAX_SIZE: u64 = 64 << 40;
const MAX_ITEMS: u64 = 2047;
const TABLE_LEN: usize = 64 << 10;

/// What the metadata says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// Payload block size in bytes.
    pub block_size: u64,
    /// The disk is a differencing disk (it has a parent).
    pub has_parent: bool,
    /// Blocks stay allocated when trimmed (a fixed disk).
    pub leave_allocated: bool,
    /// Virtual size in bytes.
    pub size: u64,
    /// Logical sector size (512 or 4096).
    pub logical_sector: u64,
}

fn le(b: &[u8], at: usize, n: usize) -> u64 {
    b[at..at + n]
        .iter()
        .rev()
        .fold(0u64, |acc, &x| acc << 8 | x as u64)
}

impl Metadata {
    /// Reads the metadata region `r` of `file`.
    pub fn read(file: &dyn ByteSource, r: Region, shown: &str) -> Result<Metadata> {
        let bad = |why: String| Err(Error::bad_image(shown, why));
        if r.len < TABLE_LEN as u64 {
            return bad(format!(
                "VHDX metadata region of {} bytes is too small for its table: the image is corrupt",
                r.len
            ));
        }
        let mut t = vec![0u8; TABLE_LEN];
        file.read_exact_at(&mut t, r.offset)
            .map_err(|e| Error::io(format!("read the VHDX metadata of {shown}"), e))?;
        if &t[..8] != b"metadata" {
            return bad("no VHDX metadata table (signature): the image is corrupt".into());
        }
        let count = le(&t, 10, 2);
        if count > MAX_ITEMS {
            return bad(format!(
                "VHDX metadata table of {count} items: the image is corrupt"
            ));
        }
        let (mut params, mut size, mut lss, mut pss) = (None, None, None, None);
        for i in 0..count as usize {
            let e = &t[32 + 32 * i..64 + 32 * i];
            let (off, len, flags) = (le(e, 16, 4), le(e, 20, 4), le(e, 24, 4));
            let id: [u8; 16] = e[..16].try_into().expect("16 bytes");
            let want = match id {
                FILE_PARAMETERS => 8,
                DISK_SIZE => 8,
                LOGICAL_SECTOR | PHYSICAL_SECTOR => 4,
                PAGE83 | PARENT_LOCATOR => continue,
                _ if flags & 4 != 0 => {
                    return bad("VHDX has a required metadata item rbdkit does not know: not supported, convert it with qemu-img first".into())
                }
                _ => continue,
            };
            if len < want || off < TABLE_LEN as u64 || off + len > r.len {
                return bad(format!("VHDX metadata item {i} at offset {off} ({len} bytes) lies outside its region: the image is corrupt"));
            }
            let mut v = [0u8; 8];
            file.read_exact_at(&mut v[..want as usize], r.offset + off)
                .map_err(|e| Error::io(format!("read the VHDX metadata of {shown}"), e))?;
            let value = le(&v, 0, want as usize);
            let slot = match id {
                FILE_PARAMETERS => &mut params,
                DISK_SIZE => &mut size,
                LOGICAL_SECTOR => &mut lss,
                _ => &mut pss,
            };
            if slot.replace(value).is_some() {
                return bad("VHDX metadata names an item twice: the image is corrupt".into());
            }
        }
        let (Some(params), Some(size), Some(lss)) = (params, size, lss) else {
            return bad("VHDX metadata lacks the file parameters, the disk size or the logical sector size: the image is corrupt".into());
        };
        let block_size = params & 0xffff_ffff;
        let flags = params >> 32;
        if !block_size.is_power_of_two() || !((1 << 20)..=(256 << 20)).contains(&block_size) {
            return bad(format!("VHDX block size {block_size} is invalid (a power of two from 1 MiB to 256 MiB): the image is corrupt"));
        }
        for (what, s) in [("logical", Some(lss)), ("physical", pss)] {
            if let Some(s) = s.filter(|&s| s != 512 && s != 4096) {
                return bad(format!(
                    "VHDX {what} sector size {s} is invalid (512 or 4096): the image is corrupt"
                ));
            }
        }
        if size == 0 || size > MAX_SIZE || size % lss != 0 {
            return bad(format!("VHDX virtual disk size {size} is invalid (1 to 64 TiB, whole sectors): the image is corrupt"));
        }
        Ok(Metadata {
            block_size,
            has_parent: flags & 2 != 0,
            leave_allocated: flags & 1 != 0,
            size,
            logical_sector: lss,
        })
    }
}
